//! Fraud scanning: events (keyed hashes only), the counts the signals are made of, versioned
//! rules, decisions and their review, and the allow and deny lists.

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool, row_mapper};

/// One sign-up, sign-in, checkout or link, as fraud scanning keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudEventRow {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub success: bool,
    pub account_id: Option<AccountId>,
    pub network: String,
    pub asn: Option<i64>,
    pub device: Option<String>,
    pub card: Option<String>,
    pub email: Option<String>,
}

/// The counts over recent events that the signals are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FraudCounts {
    pub network_attempts_10m: i64,
    pub network_failures_10m: i64,
    /// Accounts are told apart by id, or before they exist (a sign-up) by their address.
    pub network_accounts_24h: i64,
    pub network_signups_1h: i64,
    pub account_failures_1h: i64,
    /// Other networks and providers than this event's in the last hour (travel between networks).
    pub account_other_networks_1h: i64,
    pub account_other_asns_1h: i64,
    pub account_cards_24h: i64,
    pub account_declines_1h: i64,
    pub account_known_network: bool,
    pub device_accounts_24h: i64,
    pub card_accounts_24h: i64,
    pub card_declines_1h: i64,
    pub email_signups_30d: i64,
    /// Page views tracked in the last hour from the event's visitor at its exact address
    /// (received, or still waiting in the inbox).
    pub address_pageviews_1h: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudRuleRow {
    pub id: String,
    pub version: i64,
    pub name: String,
    pub expression: String,
    pub outcome: String,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudDecisionRow {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub account_id: Option<AccountId>,
    pub outcome: String,
    /// JSON: the rules that fired.
    pub fired: String,
    /// JSON: the signal values they read.
    pub inputs: String,
    /// `none`, `open` (waiting for an analyst) or `closed`.
    pub review: String,
    pub appeal: Option<String>,
    pub appealed_at: Option<i64>,
    pub label: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
    pub review_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudListRow {
    pub id: String,
    pub list: String,
    pub kind: String,
    pub value_hash: String,
    pub key_id: String,
    pub key_created_at: i64,
    pub reason: String,
    pub added_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

const RULE_COLUMNS: &str = "id, version, name, expression, outcome, enabled, created_by, created_at";
const DECISION_COLUMNS: &str =
    "id, at, kind, account_id, outcome, fired, inputs, review, appeal, appealed_at, label, reviewed_by, reviewed_at, review_note";
const LIST_COLUMNS: &str = "id, list, kind, value_hash, key_id, key_created_at, reason, added_by, created_at, expires_at";

row_mapper!(rule_from_row -> FraudRuleRow, |row| {
    Ok(FraudRuleRow {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        name: row.try_get("name")?,
        expression: row.try_get("expression")?,
        outcome: row.try_get("outcome")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
});

row_mapper!(decision_from_row -> FraudDecisionRow, |row| {
    Ok(FraudDecisionRow {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        kind: row.try_get("kind")?,
        account_id: row.try_get::<Option<String>, _>("account_id")?.map(AccountId::new),
        outcome: row.try_get("outcome")?,
        fired: row.try_get("fired")?,
        inputs: row.try_get("inputs")?,
        review: row.try_get("review")?,
        appeal: row.try_get("appeal")?,
        appealed_at: row.try_get("appealed_at")?,
        label: row.try_get("label")?,
        reviewed_by: row.try_get("reviewed_by")?,
        reviewed_at: row.try_get("reviewed_at")?,
        review_note: row.try_get("review_note")?,
    })
});

row_mapper!(list_from_row -> FraudListRow, |row| {
    Ok(FraudListRow {
        id: row.try_get("id")?,
        list: row.try_get("list")?,
        kind: row.try_get("kind")?,
        value_hash: row.try_get("value_hash")?,
        key_id: row.try_get("key_id")?,
        key_created_at: row.try_get("key_created_at")?,
        reason: row.try_get("reason")?,
        added_by: row.try_get("added_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
});

impl Store {
    /// Stores an event and, when there is one, the decision about it, together.
    pub async fn record_fraud(&self, event: &FraudEventRow, decision: Option<&FraudDecisionRow>) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO fraud_events (id, at, kind, success, account_id, network, asn, device, card, email) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&event.id)
            .bind(event.at)
            .bind(&event.kind)
            .bind(i64::from(event.success))
            .bind(&event.account_id)
            .bind(&event.network)
            .bind(event.asn)
            .bind(&event.device)
            .bind(&event.card)
            .bind(&event.email)
            .execute(&mut *tx)
            .await?;
            if let Some(d) = decision {
                sqlx::query(
                    "INSERT INTO fraud_decisions (id, at, kind, account_id, outcome, fired, inputs, review) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&d.id)
                .bind(d.at)
                .bind(&d.kind)
                .bind(&d.account_id)
                .bind(&d.outcome)
                .bind(&d.fired)
                .bind(&d.inputs)
                .bind(&d.review)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The counts for an event about to be decided (the event itself not yet stored), in one
    /// statement: a decision is on the request's path.
    /// `address` and `visitor` find the page views tracking kept for the same browser at the same
    /// full address (the visitor index leads; the full address confirms it).
    pub async fn fraud_counts(
        &self,
        event: &FraudEventRow,
        address: Option<&str>,
        visitor: Option<i64>,
    ) -> Result<FraudCounts, StoreError> {
        let now = event.at;
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT \
                   (SELECT COUNT(*) FROM fraud_events WHERE network = $1 AND at >= $2 AND kind = $3) AS n_attempts, \
                   (SELECT COUNT(*) FROM fraud_events WHERE network = $1 AND at >= $2 AND success = 0) AS n_failures, \
                   (SELECT COUNT(DISTINCT COALESCE(account_id, email)) FROM fraud_events WHERE network = $1 AND at >= $4) AS n_accounts, \
                   (SELECT COUNT(*) FROM fraud_events WHERE network = $1 AND at >= $5 AND kind = 'signup') AS n_signups, \
                   (SELECT COUNT(*) FROM fraud_events WHERE account_id = $6 AND at >= $5 AND success = 0) AS a_failures, \
                   (SELECT COUNT(DISTINCT network) FROM fraud_events WHERE account_id = $6 AND at >= $5 AND network <> $1) AS a_networks, \
                   (SELECT COUNT(DISTINCT asn) FROM fraud_events WHERE account_id = $6 AND at >= $5 AND COALESCE(asn, -1) <> $8) AS a_asns, \
                   (SELECT COUNT(DISTINCT card) FROM fraud_events WHERE account_id = $6 AND at >= $4) AS a_cards, \
                   (SELECT COUNT(*) FROM fraud_events WHERE account_id = $6 AND at >= $5 AND card IS NOT NULL AND success = 0) AS a_declines, \
                   (SELECT COUNT(*) FROM fraud_events WHERE account_id = $6 AND at >= $7 AND network = $1 AND success = 1) AS a_known, \
                   (SELECT COUNT(DISTINCT COALESCE(account_id, email)) FROM fraud_events WHERE device = $9 AND at >= $4) AS d_accounts, \
                   (SELECT COUNT(DISTINCT COALESCE(account_id, email)) FROM fraud_events WHERE card = $10 AND at >= $4 AND COALESCE(account_id, '') <> COALESCE($6, '')) AS c_accounts, \
                   (SELECT COUNT(*) FROM fraud_events WHERE card = $10 AND at >= $5 AND success = 0) AS c_declines, \
                   (SELECT COUNT(*) FROM fraud_events WHERE email = $11 AND at >= $7 AND kind = 'signup') AS e_signups",
            )
            .bind(&event.network)
            .bind(now - 10 * MINUTE)
            .bind(&event.kind)
            .bind(now - DAY)
            .bind(now - HOUR)
            .bind(&event.account_id)
            .bind(now - 30 * DAY)
            .bind(event.asn.unwrap_or(-1))
            .bind(&event.device)
            .bind(&event.card)
            .bind(&event.email)
            .fetch_one(pool)
            .await?;
            // Page views only where there is a browser to look for (not for what the payment
            // provider reports).
            let views = match (address, visitor) {
                (Some(address), Some(visitor)) => sqlx::query_scalar::<_, i64>(
                    "SELECT (SELECT COUNT(*) FROM analytics_events WHERE site = 'passme' AND visitor = $1 AND ts >= $2 AND ip = $3) \
                          + (SELECT COUNT(*) FROM analytics_inbox WHERE visitor = $1 AND ts >= $2 AND ip = $3)",
                )
                .bind(visitor)
                .bind(now - HOUR)
                .bind(address)
                .fetch_one(pool)
                .await?,
                _ => 0,
            };
            Ok(FraudCounts {
                network_attempts_10m: row.try_get("n_attempts")?,
                network_failures_10m: row.try_get("n_failures")?,
                network_accounts_24h: row.try_get("n_accounts")?,
                network_signups_1h: row.try_get("n_signups")?,
                account_failures_1h: row.try_get("a_failures")?,
                account_other_networks_1h: row.try_get("a_networks")?,
                account_other_asns_1h: row.try_get("a_asns")?,
                account_cards_24h: row.try_get("a_cards")?,
                account_declines_1h: row.try_get("a_declines")?,
                account_known_network: row.try_get::<i64, _>("a_known")? > 0,
                device_accounts_24h: row.try_get("d_accounts")?,
                card_accounts_24h: row.try_get("c_accounts")?,
                card_declines_1h: row.try_get("c_declines")?,
                email_signups_30d: row.try_get("e_signups")?,
                address_pageviews_1h: views,
            })
        })
    }

    /// The newest version of every rule, enabled or not, by id.
    pub async fn fraud_rules(&self) -> Result<Vec<FraudRuleRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RULE_COLUMNS} FROM fraud_rules r WHERE version = (SELECT MAX(version) FROM fraud_rules WHERE id = r.id) ORDER BY id"
            )))
            .fetch_all(pool)
            .await?;
            rows.iter().map(rule_from_row).collect()
        })
    }

    /// Every version of one rule, newest first.
    pub async fn fraud_rule_versions(&self, id: &str) -> Result<Vec<FraudRuleRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLUMNS} FROM fraud_rules WHERE id = $1 ORDER BY version DESC")))
                .bind(id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(rule_from_row).collect()
        })
    }

    /// Stores a rule's next version. `expected` is the version the author edited (0 for a new
    /// rule); when someone saved another since, nothing is stored and `false` comes back.
    pub async fn save_fraud_rule(&self, rule: &FraudRuleRow, expected: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO fraud_rules ({RULE_COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
                 WHERE (SELECT COALESCE(MAX(version), 0) FROM fraud_rules WHERE id = $1) = $9 ON CONFLICT (id, version) DO NOTHING"
            )))
            .bind(&rule.id)
            .bind(expected + 1)
            .bind(&rule.name)
            .bind(&rule.expression)
            .bind(&rule.outcome)
            .bind(i64::from(rule.enabled))
            .bind(&rule.created_by)
            .bind(rule.created_at)
            .bind(expected)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(inserted == 1)
        })
    }

    pub async fn fraud_decision(&self, id: &str) -> Result<Option<FraudDecisionRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DECISION_COLUMNS} FROM fraud_decisions WHERE id = $1"))).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(decision_from_row).transpose()
        })
    }

    /// Decisions waiting for an analyst, oldest first (appeals among them).
    pub async fn fraud_review_queue(&self, limit: i64) -> Result<Vec<FraudDecisionRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DECISION_COLUMNS} FROM fraud_decisions WHERE review = 'open' ORDER BY at LIMIT $1")))
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(decision_from_row).collect()
        })
    }

    /// The decisions about one account, newest first.
    pub async fn fraud_decisions_of(&self, account_id: &AccountId) -> Result<Vec<FraudDecisionRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DECISION_COLUMNS} FROM fraud_decisions WHERE account_id = $1 ORDER BY at DESC")))
                .bind(account_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(decision_from_row).collect()
        })
    }

    /// The rules that fired and the label of every labelled decision: rule precision.
    pub async fn fraud_labels(&self) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT fired, label FROM fraud_decisions WHERE label IS NOT NULL").fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("fired")?, r.try_get("label")?))).collect()
        })
    }

    /// Closes an open review with a label; `false` when it was not open (decided by someone else).
    pub async fn review_fraud_decision(&self, id: &str, label: &str, by: &str, note: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE fraud_decisions SET review = 'closed', label = $2, reviewed_by = $3, review_note = $4, reviewed_at = $5 \
                 WHERE id = $1 AND review = 'open'",
            )
            .bind(id)
            .bind(label)
            .bind(by)
            .bind(note)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// The person's appeal of a decision about them opens it for review again; once per decision.
    pub async fn appeal_fraud_decision(&self, id: &str, account_id: &AccountId, text: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE fraud_decisions SET review = 'open', appeal = $3, appealed_at = $4 \
                 WHERE id = $1 AND account_id = $2 AND appealed_at IS NULL AND outcome <> 'allow'",
            )
            .bind(id)
            .bind(account_id)
            .bind(text)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// The list keys' salts, making this year's if there is none: `(id, salt, created_at)`,
    /// newest first. Two instances making it at once keep the first one's.
    pub async fn fraud_list_keys(&self, year_id: &str, new_salt: &str, now: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        on_pool!(self, pool => {
            let select = "SELECT id, salt, created_at FROM fraud_list_keys ORDER BY created_at DESC";
            let mut rows = sqlx::query(select).fetch_all(pool).await?;
            if !rows.iter().any(|r| r.try_get::<String, _>("id").is_ok_and(|id| id == year_id)) {
                sqlx::query("INSERT INTO fraud_list_keys (id, salt, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
                    .bind(year_id)
                    .bind(new_salt)
                    .bind(now)
                    .execute(pool)
                    .await?;
                rows = sqlx::query(select).fetch_all(pool).await?;
            }
            rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("salt")?, r.try_get("created_at")?))).collect()
        })
    }

    pub async fn add_fraud_list_entry(&self, entry: &FraudListRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO fraud_lists ({LIST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")))
                .bind(&entry.id)
                .bind(&entry.list)
                .bind(&entry.kind)
                .bind(&entry.value_hash)
                .bind(&entry.key_id)
                .bind(entry.key_created_at)
                .bind(&entry.reason)
                .bind(&entry.added_by)
                .bind(entry.created_at)
                .bind(entry.expires_at)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The list entries in force for any of `hashes`.
    pub async fn fraud_list_matches(&self, hashes: &[String], now: i64) -> Result<Vec<FraudListRow>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = (0..hashes.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {LIST_COLUMNS} FROM fraud_lists WHERE (expires_at IS NULL OR expires_at > $1) AND value_hash IN ({placeholders})"
        );
        on_pool!(self, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(now);
            for hash in hashes {
                query = query.bind(hash);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter().map(list_from_row).collect()
        })
    }

    /// Every list entry still in force, newest first.
    pub async fn fraud_list_entries(&self, now: i64) -> Result<Vec<FraudListRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LIST_COLUMNS} FROM fraud_lists WHERE expires_at IS NULL OR expires_at > $1 ORDER BY created_at DESC LIMIT 500"
            )))
            .bind(now)
            .fetch_all(pool)
            .await?;
            rows.iter().map(list_from_row).collect()
        })
    }

    pub async fn remove_fraud_list_entry(&self, id: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM fraud_lists WHERE id = $1").bind(id).execute(pool).await?.rows_affected() == 1)
        })
    }
}
