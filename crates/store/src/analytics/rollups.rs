//! Daily rollups, visitor sketches and the counts of page views not counted.

// The row types, column lists and binding macros are shared by every part.
use super::*;

impl Store {
    /// Replaces a day's rollups: its totals and every breakdown row, in one transaction.
    pub async fn replace_rollup(&self, site: &str, day: i64, totals: Totals, rows: &[BreakdownRow]) -> Result<(), StoreError> {
        const PER_ROW: usize = 8;
        let total = BreakdownRow { dimension: Dimension::Page, value: String::new(), totals };
        let all: Vec<(&str, &BreakdownRow)> =
            std::iter::once(("", &total)).filter(|_| totals.sessions > 0).chain(rows.iter().map(|r| (r.dimension.name(), r))).collect();
        let _turn = self.background_write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM analytics_rollup WHERE site = $1 AND day = $2").bind(site).bind(day).execute(&mut *tx).await?;
            for chunk in power_of_two_chunks(&all) {
                let sql = format!(
                    "INSERT INTO analytics_rollup (site, day, dimension, value, sessions, pageviews, bounces, duration_ms) VALUES {}",
                    placeholders(self.engine(), chunk.len(), PER_ROW)
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (dimension, row) in chunk {
                    query = query
                        .bind(site)
                        .bind(day)
                        .bind(*dimension)
                        .bind(&row.value)
                        .bind(row.totals.sessions)
                        .bind(row.totals.pageviews)
                        .bind(row.totals.bounces)
                        .bind(row.totals.duration_ms);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn put_sketch(&self, site: &str, day: i64, visitors: i64, sketch: &str) -> Result<(), StoreError> {
        let _turn = self.background_write_turn().await;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO analytics_visitor_sketches (site, day, visitors, sketch) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (site, day) DO UPDATE SET visitors = excluded.visitors, sketch = excluded.sketch",
            )
            .bind(site)
            .bind(day)
            .bind(visitors)
            .bind(sketch)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Daily totals from the rollups, with each day's visitor count and sketch.
    pub async fn rollup_days(&self, site: &str, from_day: i64, to_day: i64) -> Result<Vec<DayRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT r.day, r.sessions, r.pageviews, r.bounces, r.duration_ms, v.visitors, v.sketch FROM analytics_rollup r \
                 LEFT JOIN analytics_visitor_sketches v ON v.site = r.site AND v.day = r.day \
                 WHERE r.site = $1 AND r.dimension = '' AND r.day >= $2 AND r.day <= $3 ORDER BY r.day",
            )
            .bind(site)
            .bind(from_day)
            .bind(to_day)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let visitors: Option<i64> = row.try_get("visitors")?;
                out.push(DayRow { day: row.try_get("day")?, totals: totals_from_row!(row), visitors: visitors.unwrap_or(0), sketch: row.try_get("sketch")? });
            }
            Ok(out)
        })
    }

    /// Every dimension's values summed over the days, from the rollups.
    pub async fn rollup_breakdowns(&self, site: &str, from_day: i64, to_day: i64) -> Result<Vec<BreakdownRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT dimension, value, CAST(SUM(sessions) AS BIGINT) AS sessions, CAST(SUM(pageviews) AS BIGINT) AS pageviews, \
                 CAST(SUM(bounces) AS BIGINT) AS bounces, CAST(SUM(duration_ms) AS BIGINT) AS duration_ms FROM analytics_rollup \
                 WHERE site = $1 AND day >= $2 AND day <= $3 AND dimension <> '' GROUP BY dimension, value",
            )
            .bind(site)
            .bind(from_day)
            .bind(to_day)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let name: String = row.try_get("dimension")?;
                let Some(dimension) = Dimension::parse(&name) else { continue };
                out.push(BreakdownRow { dimension, value: row.try_get("value")?, totals: totals_from_row!(row) });
            }
            Ok(out)
        })
    }

    pub async fn count_dropped(&self, site: &str, day: i64, reason: &str, events: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO analytics_dropped (site, day, reason, events) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (site, day, reason) DO UPDATE SET events = analytics_dropped.events + excluded.events",
            )
            .bind(site)
            .bind(day)
            .bind(reason)
            .bind(events)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn dropped(&self, site: &str, from_day: i64, to_day: i64) -> Result<Vec<(String, i64)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT reason, CAST(SUM(events) AS BIGINT) AS events FROM analytics_dropped WHERE site = $1 AND day >= $2 AND day <= $3 \
                 GROUP BY reason ORDER BY reason",
            )
            .bind(site)
            .bind(from_day)
            .bind(to_day)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get("reason")?, row.try_get("events")?));
            }
            Ok(out)
        })
    }
}
