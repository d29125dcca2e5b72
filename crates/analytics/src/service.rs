//! The ingestion path as one service: validate a batch, drop bots, enrich what is kept, pick the
//! visitor id the caller's consent allows, and hand the rows to the group commit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use passme_core::clock::SharedClock;
use passme_core::limits::SharedLimit;
use passme_core::net::truncate_ip;
use passme_store::{EventRow, Store};

use crate::asn::AsnTable;
use crate::event::{self, Drop, EventError, EventIn, Site};
use crate::ingest::{IngestError, Ingestor};
use crate::useragent::UserAgents;
use crate::visitor::VisitorIds;
use crate::visits::day_of;

/// Per address: a burst of this many page views, refilled at [`REFILL_PER_SEC`], for the whole
/// fleet. A flood from one address is refused without touching anyone else's allowance.
const BURST: f64 = 200.0;
const REFILL_PER_SEC: f64 = 20.0;

#[derive(Debug)]
pub struct Analytics {
    pub sites: Vec<Site>,
    pub asn: Option<Arc<AsnTable>>,
    pub visitors: VisitorIds,
    pub ingestor: Ingestor,
    store: Store,
    clock: SharedClock,
    /// Page views per address, counted across every instance.
    pub limit: SharedLimit,
}

/// Who sent the batch, as far as the policy lets us use it.
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    pub ip: IpAddr,
    pub user_agent: &'a str,
    /// The visitor cookie's value, given only when statistics consent allows it.
    pub visitor_cookie: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub stored: usize,
    pub dropped: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    #[error("{}", .0.message)]
    Invalid(EventError),
    #[error("a batch holds at most {} events", event::MAX_BATCH)]
    BatchTooLarge,
    #[error("too many events from this address; slow down")]
    RateLimited,
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl Analytics {
    pub fn new(
        store: Store,
        clock: SharedClock,
        master_key: &[u8; 32],
        sites: Vec<Site>,
        asn: Option<Arc<AsnTable>>,
        queue_events: usize,
    ) -> Analytics {
        let (ingestor, _) = Ingestor::start(store.clone(), clock.clone(), queue_events);
        Analytics {
            sites,
            asn,
            visitors: VisitorIds::new(store.clone(), master_key),
            limit: SharedLimit::new(store.clone(), master_key, "tracking", BURST, REFILL_PER_SEC),
            ingestor,
            store,
            clock,
        }
    }

    /// Loads the ISP table, or explains how to make it; tracking works without ISPs meanwhile.
    pub fn load_asn(path: &Path) -> Option<Arc<AsnTable>> {
        match AsnTable::load(path) {
            Ok(table) => {
                let (v4, v6) = table.len();
                tracing::info!(path = %path.display(), v4, v6, source = %table.source, "ISP table loaded");
                Some(Arc::new(table))
            }
            Err(e) => {
                tracing::warn!(error = %e, "no ISP table: ISPs show as unknown until `passme geo import` writes one");
                None
            }
        }
    }

    pub async fn accept(&self, caller: &Caller<'_>, batch: Vec<EventIn>) -> Result<Accepted, AcceptError> {
        if batch.len() > event::MAX_BATCH {
            return Err(AcceptError::BatchTooLarge);
        }
        let now = self.clock.now_ms();
        if !self.limit.allow(caller.ip, batch.len(), now).await.map_err(|_| IngestError::Unavailable)? {
            return Err(AcceptError::RateLimited);
        }
        let mut views = Vec::with_capacity(batch.len());
        let mut spam = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            match event::validate(i, e, &self.sites, now).map_err(AcceptError::Invalid)? {
                Ok(view) => views.push(view),
                Err(Drop::ReferrerSpam) => spam.push(e.site.clone()),
            }
        }
        let client = UserAgents::shared().parse(caller.user_agent);
        if let Some(reason) = client.bot {
            self.count_dropped(batch.iter().map(|e| e.site.clone()), reason, now).await;
            return Ok(Accepted { stored: 0, dropped: batch.len() });
        }
        self.count_dropped(spam.iter().cloned(), "referrer_spam", now).await;
        let isp = self.asn.as_ref().and_then(|t| t.lookup(caller.ip)).map_or_else(String::new, |i| format!("AS{} {}", i.asn, i.name));
        let (ip, ip_prefix) = (caller.ip.to_string(), truncate_ip(caller.ip));
        let mut rows = Vec::with_capacity(views.len());
        for view in views {
            let visitor = match caller.visitor_cookie {
                Some(cookie) => self.visitors.from_cookie(cookie),
                None => self.visitors.daily(now, caller.ip, caller.user_agent, &view.site).await.map_err(|_| IngestError::Unavailable)?,
            };
            rows.push(EventRow {
                site: view.site,
                visitor,
                ts: view.ts,
                received_at: now,
                path: view.path,
                source: view.source,
                utm_source: view.utm_source,
                utm_medium: view.utm_medium,
                utm_campaign: view.utm_campaign,
                browser: client.browser.clone(),
                browser_version: client.browser_version.clone(),
                os: client.os.clone(),
                os_version: client.os_version.clone(),
                isp: isp.clone(),
                ip: Some(ip.clone()),
                ip_prefix: ip_prefix.clone(),
            });
        }
        let stored = rows.len();
        self.ingestor.submit(rows).await?;
        Ok(Accepted { stored, dropped: spam.len() })
    }

    async fn count_dropped(&self, sites: impl Iterator<Item = String>, reason: &str, now: i64) {
        let mut per_site: HashMap<String, i64> = HashMap::new();
        for site in sites {
            *per_site.entry(site).or_default() += 1;
        }
        for (site, n) in per_site {
            if let Err(e) = self.store.count_dropped(&site, day_of(now), reason, n).await {
                tracing::warn!(error = %e, "could not count dropped page views");
            }
        }
    }
}
