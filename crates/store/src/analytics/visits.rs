//! Visits derived from the page views, replaced whole when a late view changes them.

// The row types, column lists and binding macros are shared by every part.
use super::*;

impl Store {
    pub async fn delete_visits(&self, site: &str, from: i64, to: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM analytics_sessions WHERE site = $1 AND started_at >= $2 AND started_at < $3")
                .bind(site)
                .bind(from)
                .bind(to)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    pub async fn insert_visits(&self, visits: &[VisitRow]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_visits!(self.engine(), &mut *tx, visits);
            tx.commit().await?;
            Ok(())
        })
    }

    /// The visits of `visitors` that touch `[lo, hi]`: (visitor, start, end).
    pub async fn visits_touching(&self, site: &str, visitors: &[i64], lo: i64, hi: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let sql = format!(
            "SELECT visitor, started_at, ended_at FROM analytics_sessions WHERE site = $1 AND started_at <= $3 AND ended_at >= $2 AND visitor IN ({})",
            list(4, visitors.len())
        );
        on_pool!(self, pool => {
            let rows = bind_range_and!(sql, site, lo, hi, visitors.iter().copied()).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get("visitor")?, row.try_get("started_at")?, row.try_get("ended_at")?));
            }
            Ok(out)
        })
    }

    /// For each (visitor, from, to), replaces the visitor's visits starting in `[from, to]`; then
    /// inserts `visits`. One transaction; returns the days whose visits changed.
    pub async fn replace_visits_many(&self, site: &str, spans: &[(i64, i64, i64)], visits: &[VisitRow]) -> Result<Vec<i64>, StoreError> {
        let _turn = self.background_write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut days = Vec::new();
            for (visitor, from, to) in spans {
                let old = sqlx::query(
                    "DELETE FROM analytics_sessions WHERE site = $1 AND visitor = $2 AND started_at >= $3 AND started_at <= $4 RETURNING day",
                )
                .bind(site)
                .bind(visitor)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *tx)
                .await?;
                for row in &old {
                    days.push(row.try_get::<i64, _>("day")?);
                }
            }
            insert_visits!(self.engine(), &mut *tx, visits);
            tx.commit().await?;
            days.extend(visits.iter().map(|v| v.day));
            days.sort_unstable();
            days.dedup();
            Ok(days)
        })
    }

    /// Calls `f` with every visit of a site that started in `[from_day, to_day]` and matches
    /// every filter, streaming (a range may hold millions). A page filter means the visit viewed
    /// the page.
    pub async fn each_visit(
        &self,
        site: &str,
        from_day: i64,
        to_day: i64,
        filters: &[(Dimension, String)],
        mut f: impl FnMut(VisitRow) + Send,
    ) -> Result<(), StoreError> {
        let mut conditions = vec!["site = $1".to_string(), "day >= $2".into(), "day <= $3".into()];
        for (i, (dimension, _)) in filters.iter().enumerate() {
            let n = i + 4;
            conditions.push(match (dimension.visit_column(), self.engine()) {
                (Some(column), _) => format!("{column} = ${n}"),
                // A quick narrowing only; the decoded pages decide below.
                (None, Engine::Sqlite) => format!("instr(' ' || pages, ' ' || ${n} || ' ') > 0"),
                (None, Engine::Postgres) => format!("strpos(' ' || pages, ' ' || ${n} || ' ') > 0"),
            });
        }
        let sql = format!("SELECT {VISIT_COLUMNS} FROM analytics_sessions WHERE {}", conditions.join(" AND "));
        let pages_wanted: Vec<&str> = filters.iter().filter(|(d, _)| *d == Dimension::Page).map(|(_, v)| v.as_str()).collect();
        on_pool!(self, pool => {
            let query = bind_range_and!(sql, site, from_day, to_day, filters.iter().map(|(_, v)| v));
            let mut rows = query.fetch(pool);
            while let Some(row) = next_row(&mut rows).await {
                let visit = visit_from_row!(row?);
                if pages_wanted.iter().all(|want| visit.pages.iter().any(|(path, _)| path == want)) {
                    f(visit);
                }
            }
            Ok(())
        })
    }
}
