//! Messaging: the message log, people's choices per topic and channel, the suppression list, push
//! subscriptions, announcements, partner audience exports and the service's signing keys.

use sqlx::Row;

use crate::jobs::{NewJob, insert_job};
use crate::{AccountId, Store, StoreError, on_pool, row_mapper};

/// A message to log and the job that sends it, stored together or not at all.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Derived from the message's idempotency key.
    pub id: String,
    pub account_id: Option<AccountId>,
    pub campaign_id: Option<String>,
    pub channel: String,
    pub template: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: String,
    pub account_id: Option<AccountId>,
    pub campaign_id: Option<String>,
    pub channel: String,
    pub template: String,
    pub status: String,
    pub detail: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A queued message and whom it is for, read together when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecipient {
    pub status: String,
    /// The recipient, while their account is active: address and chosen language.
    pub active: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefRow {
    pub topic: String,
    pub channel: String,
    pub state: String,
    pub grant_id: Option<String>,
    pub changed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscriptionRow {
    pub id: String,
    pub account_id: AccountId,
    pub endpoint: String,
    pub sealed_keys: String,
    pub device: String,
    pub created_at: i64,
    pub last_sent_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    pub id: String,
    pub kind: String,
    pub segment: String,
    pub channels: String,
    pub subject_da: String,
    pub subject_en: String,
    pub body_da: String,
    pub body_en: String,
    pub created_at: i64,
    pub cursor: Option<String>,
    pub queued: i64,
    pub finished_at: Option<i64>,
}

/// Who an announcement or an audience may reach: an active account with a confirmed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub account_id: AccountId,
    pub email: String,
}

/// Which accounts a campaign reaches. Empty filters match everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// The price id of an active subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The language the person chose (`da`, `en`); no choice counts as Danish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Signed in within this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_within_days: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerExportRow {
    pub id: String,
    pub partner: String,
    pub requested_by: String,
    pub created_at: i64,
    pub people: i64,
    pub status: String,
    pub delivered_at: Option<i64>,
}

const MESSAGE_COLUMNS: &str = "id, account_id, campaign_id, channel, template, status, detail, created_at, updated_at";

row_mapper!(message_from_row -> MessageRow, |row| {
    Ok(MessageRow {
        id: row.try_get("id")?,
        account_id: row.try_get::<Option<String>, _>("account_id")?.map(AccountId::new),
        campaign_id: row.try_get("campaign_id")?,
        channel: row.try_get("channel")?,
        template: row.try_get("template")?,
        status: row.try_get("status")?,
        detail: row.try_get("detail")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
});

row_mapper!(recipient_from_row -> Recipient, |row| {
    Ok(Recipient { account_id: AccountId::new(row.try_get::<String, _>("id")?), email: row.try_get("email")? })
});

row_mapper!(push_from_row -> PushSubscriptionRow, |row| {
    Ok(PushSubscriptionRow {
        id: row.try_get("id")?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?),
        endpoint: row.try_get("endpoint")?,
        sealed_keys: row.try_get("sealed_keys")?,
        device: row.try_get("device")?,
        created_at: row.try_get("created_at")?,
        last_sent_at: row.try_get("last_sent_at")?,
    })
});

row_mapper!(campaign_from_row -> CampaignRow, |row| {
    Ok(CampaignRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        segment: row.try_get("segment")?,
        channels: row.try_get("channels")?,
        subject_da: row.try_get("subject_da")?,
        subject_en: row.try_get("subject_en")?,
        body_da: row.try_get("body_da")?,
        body_en: row.try_get("body_en")?,
        created_at: row.try_get("created_at")?,
        cursor: row.try_get("cursor")?,
        queued: row.try_get("queued")?,
        finished_at: row.try_get("finished_at")?,
    })
});

impl Store {
    /// Logs messages as queued and stores the jobs that send them, in one transaction. A message
    /// whose id is logged already is skipped with its job; returns how many were new.
    pub async fn enqueue_messages(&self, messages: &[(NewMessage, NewJob)], now: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut new = 0;
            for (message, job) in messages {
                let inserted = sqlx::query(
                    "INSERT INTO message_log (id, account_id, campaign_id, channel, template, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'queued', $6, $6) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&message.id)
                .bind(&message.account_id)
                .bind(&message.campaign_id)
                .bind(&message.channel)
                .bind(&message.template)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    insert_job!(job, now).execute(&mut *tx).await?;
                    new += 1;
                }
            }
            tx.commit().await?;
            Ok(new)
        })
    }

    /// Logs a message that was decided without a job (refused at once); a no-op if logged already.
    pub async fn log_message(&self, message: &NewMessage, status: &str, detail: Option<&str>, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "INSERT INTO message_log (id, account_id, campaign_id, channel, template, status, detail, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&message.id)
            .bind(&message.account_id)
            .bind(&message.campaign_id)
            .bind(&message.channel)
            .bind(&message.template)
            .bind(status)
            .bind(detail)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// How many messages are in `status`, optionally with one `detail`.
    pub async fn count_messages(&self, status: &str, detail: Option<&str>) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM message_log WHERE status = $1 AND ($2 IS NULL OR detail = $2)")
                .bind(status)
                .bind(detail)
                .fetch_one(pool)
                .await?;
            Ok(row.try_get("n")?)
        })
    }

    /// A message's status and, while their account is active, its recipient's address and
    /// language: one query where sending needs three.
    pub async fn message_recipient(&self, id: &str) -> Result<Option<MessageRecipient>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT m.status, a.email, a.pref_lang, a.status AS account_status FROM message_log m \
                 LEFT JOIN accounts a ON a.id = m.account_id WHERE m.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let active = match row.try_get::<Option<String>, _>("account_status")?.as_deref() {
                Some("active") => Some((row.try_get::<String, _>("email")?, row.try_get::<Option<String>, _>("pref_lang")?)),
                _ => None,
            };
            Ok(Some(MessageRecipient { status: row.try_get("status")?, active }))
        })
    }

    /// Records how a message went; `detail` is a stable code, never a body.
    pub async fn set_message_status(&self, id: &str, status: &str, detail: Option<&str>, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE message_log SET status = $1, detail = $2, updated_at = $3 WHERE id = $4")
                .bind(status)
                .bind(detail)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// A person's messages, newest first.
    pub async fn messages_of(&self, account_id: &AccountId, limit: i64) -> Result<Vec<MessageRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {MESSAGE_COLUMNS} FROM message_log WHERE account_id = $1 ORDER BY created_at DESC, id LIMIT $2")))
                .bind(account_id)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            Ok(rows.iter().map(message_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// The ids of a campaign's messages sent on `channel`, after `after`, in order.
    pub async fn messages_page(&self, campaign_id: &str, channel: &str, after: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id FROM message_log WHERE campaign_id = $1 AND channel = $2 AND status = 'sent' AND id > $3 ORDER BY id LIMIT $4")
                .bind(campaign_id)
                .bind(channel)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
        })
    }

    /// How many of a campaign's messages are in each status.
    pub async fn campaign_statuses(&self, campaign_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM message_log WHERE campaign_id = $1 GROUP BY status ORDER BY status")
                .bind(campaign_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| Ok((r.try_get("status")?, r.try_get("n")?))).collect()
        })
    }

    pub async fn message_prefs(&self, account_id: &AccountId) -> Result<Vec<PrefRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT topic, channel, state, grant_id, changed_at FROM message_prefs WHERE account_id = $1 ORDER BY topic, channel")
                .bind(account_id)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(PrefRow {
                        topic: r.try_get("topic")?,
                        channel: r.try_get("channel")?,
                        state: r.try_get("state")?,
                        grant_id: r.try_get("grant_id")?,
                        changed_at: r.try_get("changed_at")?,
                    })
                })
                .collect()
        })
    }

    pub async fn set_message_pref(
        &self,
        account_id: &AccountId,
        topic: &str,
        channel: &str,
        state: &str,
        grant_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO message_prefs (account_id, topic, channel, state, grant_id, changed_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (account_id, topic, channel) DO UPDATE SET state = excluded.state, grant_id = excluded.grant_id, changed_at = excluded.changed_at",
            )
            .bind(account_id)
            .bind(topic)
            .bind(channel)
            .bind(state)
            .bind(grant_id)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Turns a choice off only if it still rests on `grant_id`; false when it does not (a link
    /// from an earlier sign-up, or already off).
    pub async fn withdraw_message_grant(
        &self,
        account_id: &AccountId,
        topic: &str,
        channel: &str,
        grant_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE message_prefs SET state = 'off', grant_id = NULL, changed_at = $1 \
                 WHERE account_id = $2 AND topic = $3 AND channel = $4 AND grant_id = $5 AND state <> 'off'",
            )
            .bind(now)
            .bind(account_id)
            .bind(topic)
            .bind(channel)
            .bind(grant_id)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// The reason an address hash is suppressed, if it is.
    pub async fn suppression(&self, address_hash: &str) -> Result<Option<String>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT reason FROM suppressions WHERE address_hash = $1").bind(address_hash).fetch_optional(pool).await?;
            Ok(row.map(|r| r.try_get("reason")).transpose()?)
        })
    }

    /// Suppresses an address. A bounce or complaint replaces an unsubscribe (it suppresses more);
    /// nothing replaces a bounce or complaint but [`Store::lift_suppression`].
    pub async fn suppress(&self, address_hash: &str, reason: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO suppressions (address_hash, reason, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (address_hash) DO UPDATE SET reason = excluded.reason, created_at = excluded.created_at \
                 WHERE suppressions.reason = 'unsubscribed' AND excluded.reason <> 'unsubscribed'",
            )
            .bind(address_hash)
            .bind(reason)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Removes a suppression of the given reason; true when one went.
    pub async fn lift_suppression(&self, address_hash: &str, reason: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM suppressions WHERE address_hash = $1 AND reason = $2").bind(address_hash).bind(reason).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Stores a subscription; `Conflict` when its endpoint is registered already.
    pub async fn insert_push_subscription(&self, row: &PushSubscriptionRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO push_subscriptions (id, account_id, endpoint, sealed_keys, device, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&row.id)
            .bind(&row.account_id)
            .bind(&row.endpoint)
            .bind(&row.sealed_keys)
            .bind(&row.device)
            .bind(row.created_at)
            .execute(pool)
            .await
            .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    pub async fn push_subscription_by_endpoint(&self, endpoint: &str) -> Result<Option<PushSubscriptionRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT * FROM push_subscriptions WHERE endpoint = $1").bind(endpoint).fetch_optional(pool).await?;
            Ok(row.as_ref().map(push_from_row).transpose()?)
        })
    }

    pub async fn push_subscriptions_of(&self, account_id: &AccountId) -> Result<Vec<PushSubscriptionRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT * FROM push_subscriptions WHERE account_id = $1 ORDER BY created_at, id").bind(account_id).fetch_all(pool).await?;
            Ok(rows.iter().map(push_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// The subscriptions of every account from `first` to `last` (by id): one query for a batch.
    pub async fn push_subscriptions_between(&self, first: &AccountId, last: &AccountId) -> Result<Vec<PushSubscriptionRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT * FROM push_subscriptions WHERE account_id >= $1 AND account_id <= $2 ORDER BY account_id, created_at, id")
                .bind(first)
                .bind(last)
                .fetch_all(pool)
                .await?;
            Ok(rows.iter().map(push_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// The (account, channel) pairs from `first` to `last` whose choice for `topic` is on.
    pub async fn prefs_on_between(&self, topic: &str, first: &AccountId, last: &AccountId) -> Result<Vec<(AccountId, String)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT account_id, channel FROM message_prefs WHERE topic = $1 AND state = 'on' AND account_id >= $2 AND account_id <= $3",
            )
            .bind(topic)
            .bind(first)
            .bind(last)
            .fetch_all(pool)
            .await?;
            rows.iter().map(|r| Ok((AccountId::new(r.try_get::<String, _>("account_id")?), r.try_get("channel")?))).collect()
        })
    }

    /// Deletes one subscription; with an account, only if it is that account's.
    pub async fn delete_push_subscription(&self, id: &str, account_id: Option<&AccountId>) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = match account_id {
                Some(account) => sqlx::query("DELETE FROM push_subscriptions WHERE id = $1 AND account_id = $2").bind(id).bind(account).execute(pool).await?,
                None => sqlx::query("DELETE FROM push_subscriptions WHERE id = $1").bind(id).execute(pool).await?,
            };
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn mark_push_sent(&self, id: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE push_subscriptions SET last_sent_at = $1 WHERE id = $2").bind(now).bind(id).execute(pool).await?;
            Ok(())
        })
    }

    pub async fn insert_campaign(&self, c: &CampaignRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO campaigns (id, kind, segment, channels, subject_da, subject_en, body_da, body_en, created_at, queued) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
            )
            .bind(&c.id)
            .bind(&c.kind)
            .bind(&c.segment)
            .bind(&c.channels)
            .bind(&c.subject_da)
            .bind(&c.subject_en)
            .bind(&c.body_da)
            .bind(&c.body_en)
            .bind(c.created_at)
            .execute(pool)
            .await
            .map_err(crate::error::conflict_or)?;
            Ok(())
        })
    }

    pub async fn campaign(&self, id: &str) -> Result<Option<CampaignRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT * FROM campaigns WHERE id = $1").bind(id).fetch_optional(pool).await?;
            Ok(row.as_ref().map(campaign_from_row).transpose()?)
        })
    }

    pub async fn recent_campaigns(&self, limit: i64) -> Result<Vec<CampaignRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT * FROM campaigns ORDER BY created_at DESC, id LIMIT $1").bind(limit).fetch_all(pool).await?;
            Ok(rows.iter().map(campaign_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// Records how far a campaign's fan-out got, only if it was still at `from_cursor`: two
    /// instances running the same batch cannot both advance it.
    pub async fn advance_campaign(
        &self,
        id: &str,
        from_cursor: Option<&str>,
        to_cursor: Option<&str>,
        queued: i64,
        finished_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE campaigns SET cursor = $1, queued = queued + $2, finished_at = $3 \
                 WHERE id = $4 AND finished_at IS NULL AND COALESCE(cursor, '') = COALESCE($5, '')",
            )
            .bind(to_cursor)
            .bind(queued)
            .bind(finished_at)
            .bind(id)
            .bind(from_cursor)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// The next accounts of a segment after `after` (by id): active, with a confirmed address.
    pub async fn segment_recipients(
        &self,
        segment: &Segment,
        after: Option<&str>,
        limit: i64,
        now: i64,
    ) -> Result<Vec<Recipient>, StoreError> {
        let active_since = segment.active_within_days.map(|days| now - days.max(0) * 86_400_000);
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT a.id, a.email FROM accounts a \
                 WHERE a.status = 'active' AND a.email_verified_at IS NOT NULL AND a.id > $1 \
                   AND ($2 IS NULL OR COALESCE(a.pref_lang, 'da') = $2) \
                   AND ($3 IS NULL OR EXISTS (SELECT 1 FROM billing_subscriptions s WHERE s.account_id = a.id AND s.price_id = $3 \
                        AND s.status IN ('active', 'trialing', 'past_due'))) \
                   AND ($4 IS NULL OR EXISTS (SELECT 1 FROM sessions x WHERE x.account_id = a.id AND x.last_seen_at >= $4)) \
                 ORDER BY a.id LIMIT $5",
            )
            .bind(after.unwrap_or(""))
            .bind(segment.lang.as_deref())
            .bind(segment.plan.as_deref())
            .bind(active_since)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(recipient_from_row).collect()
        })
    }

    /// Active accounts with a confirmed address whose choice for (topic, channel) is on.
    pub async fn recipients_with_pref(&self, topic: &str, channel: &str) -> Result<Vec<Recipient>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT a.id, a.email FROM accounts a JOIN message_prefs p ON p.account_id = a.id \
                 WHERE p.topic = $1 AND p.channel = $2 AND p.state = 'on' AND a.status = 'active' AND a.email_verified_at IS NOT NULL \
                 ORDER BY a.id",
            )
            .bind(topic)
            .bind(channel)
            .fetch_all(pool)
            .await?;
            rows.iter().map(recipient_from_row).collect()
        })
    }

    /// Records an export and who is in it, in one transaction.
    pub async fn insert_partner_export(&self, export: &PartnerExportRow, audience: &[(AccountId, String)]) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO partner_exports (id, partner, requested_by, created_at, people, status) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&export.id)
                .bind(&export.partner)
                .bind(&export.requested_by)
                .bind(export.created_at)
                .bind(export.people)
                .bind(&export.status)
                .execute(&mut *tx)
                .await?;
            for (account_id, hash) in audience {
                sqlx::query("INSERT INTO partner_audience (export_id, account_id, email_hash, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&export.id)
                    .bind(account_id)
                    .bind(hash)
                    .bind(export.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn set_partner_export_status(&self, id: &str, status: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE partner_exports SET status = $1, delivered_at = CASE WHEN $1 = 'delivered' THEN $2 ELSE delivered_at END WHERE id = $3")
                .bind(status)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn partner_export(&self, id: &str) -> Result<Option<PartnerExportRow>, StoreError> {
        Ok(self.partner_exports_where("WHERE id = $1", id).await?.pop())
    }

    pub async fn recent_partner_exports(&self, partner: &str) -> Result<Vec<PartnerExportRow>, StoreError> {
        self.partner_exports_where("WHERE partner = $1", partner).await
    }

    async fn partner_exports_where(&self, filter: &'static str, value: &str) -> Result<Vec<PartnerExportRow>, StoreError> {
        on_pool!(self, pool => {
            // `filter` is one of this module's constants, never input.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id, partner, requested_by, created_at, people, status, delivered_at FROM partner_exports {filter} ORDER BY created_at DESC, id LIMIT 100"
            )))
            .bind(value)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(PartnerExportRow {
                        id: r.try_get("id")?,
                        partner: r.try_get("partner")?,
                        requested_by: r.try_get("requested_by")?,
                        created_at: r.try_get("created_at")?,
                        people: r.try_get("people")?,
                        status: r.try_get("status")?,
                        delivered_at: r.try_get("delivered_at")?,
                    })
                })
                .collect()
        })
    }

    /// The hashed addresses of an export, in order.
    pub async fn partner_audience(&self, export_id: &str) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT email_hash FROM partner_audience WHERE export_id = $1 ORDER BY email_hash").bind(export_id).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(r.try_get("email_hash")?)).collect()
        })
    }

    /// Removes a person from every kept audience; returns (partner, hashed address) for each
    /// partner that received them, so each can be asked to delete it.
    pub async fn forget_partner_audience(&self, account_id: &AccountId) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query(
                "SELECT DISTINCT e.partner, a.email_hash FROM partner_audience a JOIN partner_exports e ON e.id = a.export_id \
                 WHERE a.account_id = $1 ORDER BY e.partner, a.email_hash",
            )
            .bind(account_id)
            .fetch_all(&mut *tx)
            .await?;
            let shared = rows.iter().map(|r| Ok((r.try_get("partner")?, r.try_get("email_hash")?))).collect::<Result<Vec<_>, sqlx::Error>>()?;
            sqlx::query("DELETE FROM partner_audience WHERE account_id = $1").bind(account_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(shared)
        })
    }

    /// Deletes a person's devices and choices and takes them out of kept audiences; returns
    /// (partner, hashed address) for each partner that received them. Their message log stays
    /// for its declared retention; the suppression list keeps their address hashed.
    pub async fn forget_messaging_of(&self, account_id: &AccountId) -> Result<Vec<(String, String)>, StoreError> {
        let shared = self.forget_partner_audience(account_id).await?;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM push_subscriptions WHERE account_id = $1").bind(account_id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM message_prefs WHERE account_id = $1").bind(account_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(shared)
        })
    }

    /// The stored key pair for `purpose`: (public, sealed private).
    pub async fn signing_key(&self, purpose: &str) -> Result<Option<(String, String)>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT public_key, sealed_private FROM signing_keys WHERE purpose = $1").bind(purpose).fetch_optional(pool).await?;
            Ok(row.map(|r| Ok::<_, sqlx::Error>((r.try_get("public_key")?, r.try_get("sealed_private")?))).transpose()?)
        })
    }

    /// Stores a key pair unless one exists; the caller reads back whichever won.
    pub async fn insert_signing_key(&self, purpose: &str, public_key: &str, sealed_private: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO signing_keys (purpose, public_key, sealed_private, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (purpose) DO NOTHING")
                .bind(purpose)
                .bind(public_key)
                .bind(sealed_private)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
