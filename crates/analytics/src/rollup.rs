//! The background pass that turns received page views into visits and daily rollups. It runs
//! every minute through the job queue (one instance at a time, under a lease), moves the page
//! views received since the last pass out of the unindexed inbox, picks up the visitors whose
//! page views arrived since the last pass, recomputes their visits around the new views (merging
//! visits a late event joins) and rebuilds the rollups of every day whose visits changed. It
//! also rotates the daily salt: yesterday's is destroyed.

use std::collections::{BTreeSet, HashMap};

use passme_core::CoreError;
use passme_core::clock::SharedClock;
use passme_core::jobs::{EnqueueOptions, JobQueue};
use passme_core::lease::Holder;
use passme_store::Store;
use serde_json::json;

use crate::aggregate::Aggregate;
use crate::visits::{DAY_MS, VISIT_GAP_MS, day_of, sessionise};

pub const JOB_KIND: &str = "analytics.rollup";
/// The lease one instance holds while its pass runs (`passme status` shows the last pass).
pub const PASS_LEASE: &str = "analytics.pass";
const WATERMARK: &str = "rollup_received_watermark";
/// Page views are re-read this far behind the watermark, so a group committed late by another
/// process is not missed; re-reading is harmless because visits are recomputed, not added.
const OVERLAP_MS: i64 = 30_000;
/// Visitors recomputed per round of queries.
const BATCH: usize = 500;

/// How much the pass writes per transaction: on SQLite a transaction holds the one write lock
/// that page-view acknowledgements wait for. While acknowledgements are being written the pass
/// writes in pieces of a millisecond or two (moving 50,000 page views in one transaction had put
/// acknowledgement p99 at 370–630 ms); when they are not, in big pieces, which move page views
/// in visitor order and so write the visitor index several times faster per row.
#[derive(Debug, Clone, Copy)]
struct Pieces {
    inbox_rows: usize,
    visitors: usize,
}

const QUIET: Pieces = Pieces { inbox_rows: 5_000, visitors: BATCH };
const BUSY: Pieces = Pieces { inbox_rows: 25, visitors: 5 };

/// The most page views one pass moves out of the inbox; the next pass moves the rest.
const MAX_MOVED: u64 = 1_000_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollupReport {
    pub visitors: usize,
    pub days: usize,
    pub salts_destroyed: u64,
}

#[derive(Debug, Clone)]
pub struct Rollups {
    store: Store,
    clock: SharedClock,
}

impl Rollups {
    pub fn new(store: Store, clock: SharedClock) -> Rollups {
        Rollups { store, clock }
    }

    pub async fn run(&self) -> Result<RollupReport, CoreError> {
        let now = self.clock.now_ms();
        self.drain_inbox().await?;
        let watermark = self.store.analytics_state(WATERMARK).await?.unwrap_or(0);
        let mut touched = self.store.visitors_received((watermark - OVERLAP_MS).max(0), now).await?;
        touched.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut days = BTreeSet::new();
        for same_site in touched.chunk_by(|a, b| a.0 == b.0) {
            for batch in same_site.chunks(BATCH) {
                let site = &batch[0].0;
                for day in self.revisit(site, batch).await? {
                    days.insert((site.clone(), day));
                }
            }
        }
        for (site, day) in &days {
            self.rebuild_day(site, *day).await?;
        }
        // Views still in the inbox (more arrived than one pass moves) are read by the next pass.
        let next = self.store.inbox_oldest_received().await?.map_or(now, |oldest| oldest.min(now));
        self.store.set_analytics_state(WATERMARK, next).await?;
        let salts_destroyed = self.store.destroy_salts_before(day_of(now)).await?;
        Ok(RollupReport { visitors: touched.len(), days: days.len(), salts_destroyed })
    }

    /// Runs the pass unless another instance is running one (a pass over a large backlog can take
    /// longer than the minute between passes): two passes never rewrite visits at once.
    /// `None` when the pass was left to the instance running it.
    pub async fn run_exclusive(&self, holder: &Holder) -> Result<Option<RollupReport>, CoreError> {
        passme_core::lease::exclusively(&self.store, &self.clock, PASS_LEASE, holder, self.run()).await
    }

    /// Moves received page views from the inbox into the events table, a slice per transaction
    /// so ingestion waits at most one slice for the write lock. Bounded, so a pass ends even
    /// while page views arrive faster than it moves them.
    async fn drain_inbox(&self) -> Result<u64, CoreError> {
        let mut moved = 0;
        while moved < MAX_MOVED {
            let slice = self.pieces().inbox_rows;
            let n = self.store.move_inbox(slice).await?;
            moved += n;
            if n < slice as u64 {
                break;
            }
            // Let the requests waiting on this runtime's threads run between slices.
            tokio::task::yield_now().await;
        }
        Ok(moved)
    }

    fn pieces(&self) -> Pieces {
        if self.store.acknowledging() { BUSY } else { QUIET }
    }

    /// Recomputes the visits of a batch of one site's visitors around their new page views: a
    /// visitor's span is widened to every stored visit within 30 minutes of the new views (a late
    /// view can join visits), and the visits starting in it are replaced. Returns changed days.
    async fn revisit(&self, site: &str, batch: &[(String, i64, i64, i64)]) -> Result<Vec<i64>, CoreError> {
        let visitors: Vec<i64> = batch.iter().map(|t| t.1).collect();
        let lo = batch.iter().map(|t| t.2).min().unwrap_or(0) - VISIT_GAP_MS;
        let hi = batch.iter().map(|t| t.3).max().unwrap_or(0) + VISIT_GAP_MS;
        let mut spans: HashMap<i64, (i64, i64)> = batch.iter().map(|t| (t.1, (t.2 - VISIT_GAP_MS, t.3 + VISIT_GAP_MS))).collect();
        for (visitor, start, end) in self.store.visits_touching(site, &visitors, lo, hi).await? {
            if let Some(span) = spans.get_mut(&visitor)
                && start <= span.1
                && end >= span.0
            {
                *span = (span.0.min(start), span.1.max(end));
            }
        }
        let (from, to) = spans.values().fold((i64::MAX, i64::MIN), |(a, b), s| (a.min(s.0), b.max(s.1)));
        let views = self.store.events_of_visitors(site, &visitors, from, to).await?;
        let mut visits = Vec::new();
        for one in views.chunk_by(|a, b| a.visitor == b.visitor) {
            let (start, end) = spans[&one[0].visitor];
            let within: Vec<_> = one.iter().filter(|v| v.ts >= start && v.ts <= end).cloned().collect();
            visits.extend(sessionise(&within));
        }
        let mut spans: Vec<(i64, i64, i64)> = spans.into_iter().map(|(v, (a, b))| (v, a, b)).collect();
        spans.sort_unstable_by_key(|s| s.0);
        // Visits come out in visitor order (the views were read so), as the spans now are: each
        // group of visitors is replaced with its own visits in one short transaction.
        let mut days = Vec::new();
        let (mut spans, mut rest) = (spans.as_slice(), visits.as_slice());
        while !spans.is_empty() {
            let (group, later) = spans.split_at(self.pieces().visitors.min(spans.len()));
            let last = group[group.len() - 1].0;
            let (mine, others) = rest.split_at(rest.partition_point(|v| v.visitor <= last));
            days.extend(self.store.replace_visits_many(site, group, mine).await?);
            (spans, rest) = (later, others);
            tokio::task::yield_now().await;
        }
        days.sort_unstable();
        days.dedup();
        Ok(days)
    }

    async fn rebuild_day(&self, site: &str, day: i64) -> Result<(), CoreError> {
        let mut aggregate = Aggregate::default();
        self.store.each_visit(site, day, day, &[], |visit| aggregate.add(&visit)).await?;
        let (totals, sketch) = (aggregate.totals, std::mem::take(&mut aggregate.visitors));
        self.store.replace_rollup(site, day, totals, &aggregate.breakdowns()).await?;
        self.store.put_sketch(site, day, sketch.count(), &sketch.encode()).await?;
        Ok(())
    }

    /// Recomputes every visit and rollup of a site in `[from_day, to_day]` from the raw page
    /// views, a page of visitors at a time (`passme analytics rebuild`, the dashboard benchmark).
    /// Visits are cut at the range's edges.
    pub async fn rebuild(&self, site: &str, from_day: i64, to_day: i64) -> Result<usize, CoreError> {
        const PAGE: usize = 50_000;
        let (from, to) = (from_day * DAY_MS, (to_day + 1) * DAY_MS);
        while self.drain_inbox().await? > 0 {}
        self.store.delete_visits(site, from, to).await?;
        let mut after = None;
        let mut total = 0;
        loop {
            let mut views = self.store.site_events_page(site, from, to, after, PAGE).await?;
            let complete = views.len() < PAGE;
            if !complete {
                // The page may end inside a visitor: leave that visitor for the next page, unless
                // it is the only one, whose views are then read whole.
                let last = views[views.len() - 1].visitor;
                let cut = views.partition_point(|v| v.visitor != last);
                if cut == 0 {
                    views = self.store.visitor_events(site, last, from, to - 1).await?;
                } else {
                    views.truncate(cut);
                }
            }
            let Some(last) = views.last().map(|v| v.visitor) else { break };
            let mut visits = Vec::new();
            for one in views.chunk_by(|a, b| a.visitor == b.visitor) {
                visits.extend(sessionise(one));
            }
            total += visits.len();
            self.store.insert_visits(&visits).await?;
            after = Some(last);
            if complete {
                break;
            }
        }
        for day in from_day..=to_day {
            self.rebuild_day(site, day).await?;
        }
        Ok(total)
    }

    /// Enqueues this minute's pass; a no-op when another process already did.
    pub async fn schedule(queue: &JobQueue, now_ms: i64) -> Result<bool, CoreError> {
        let id = format!("analytics-rollup:{}", now_ms / 60_000);
        let (_, new) = queue.enqueue(JOB_KIND, &json!({}), EnqueueOptions { id: Some(id), ..Default::default() }).await?;
        Ok(new)
    }
}

/// Wraps the pass as a job handler. The pass's lease is held by the job's worker, as long at a
/// time as the job's own lease (`lease_ms`).
pub fn handler(rollups: Rollups, lease_ms: i64) -> impl Fn(passme_store::Job) -> passme_core::jobs::HandlerFuture + Send + Sync + 'static {
    move |job| {
        let rollups = rollups.clone();
        let holder = Holder { id: job.locked_by.unwrap_or_else(|| passme_core::crypto::random_id::<8>("holder_")), lease_ms };
        Box::pin(async move {
            match rollups.run_exclusive(&holder).await? {
                Some(report) => tracing::debug!(visitors = report.visitors, days = report.days, "analytics rollup pass"),
                None => tracing::debug!("analytics rollup pass left to the instance running one"),
            }
            Ok(())
        })
    }
}
