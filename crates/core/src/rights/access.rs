//! Access and portability (GDPR articles 15 and 20): every row that is about the person, from
//! every personal table linked to their account, as JSON and as one CSV per table, in one archive.
//! Credentials (password and token hashes, remember-me validators, one-time links) are left out:
//! they are ours to check, not information about the person.

use std::collections::BTreeMap;

use passme_store::{AccountId, Store};
use serde::Serialize;

use crate::CoreError;

/// Where a table's rows about a person are found, and which of its columns are left out.
struct Source {
    table: &'static str,
    /// `column = value` or, for the logs, `actor` / `subject` naming the account.
    link: Link,
    hidden: &'static [&'static str],
}

enum Link {
    Column(&'static str),
    /// The audit and consent logs name an account as `account:ID` in these columns.
    LogSubject(&'static [&'static str]),
}

const SOURCES: &[Source] = &[
    Source { table: "accounts", link: Link::Column("id"), hidden: &["password_hash", "email_key"] },
    Source { table: "sessions", link: Link::Column("account_id"), hidden: &["id"] },
    Source { table: "account_roles", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "api_tokens", link: Link::Column("account_id"), hidden: &["id"] },
    Source { table: "consent_ledger", link: Link::LogSubject(&["actor", "subject"]), hidden: &["prev_hash", "hash"] },
    Source { table: "audit_log", link: Link::LogSubject(&["actor", "subject"]), hidden: &["prev_hash", "hash"] },
    Source { table: "billing_customers", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "billing_subscriptions", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "billing_invoices", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "objections", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "linked_accounts", link: Link::Column("account_id"), hidden: &[] },
    // Which tokens are held and until when; the sealed tokens themselves are credentials, and an
    // export is no place for them.
    Source {
        table: "linked_tokens",
        link: Link::Column("account_id"),
        hidden: &["id_token", "access_token", "refresh_token", "refresh_lease_until"],
    },
    Source { table: "partner_profiles", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "suggestions", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "account_consents", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "message_log", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "message_prefs", link: Link::Column("account_id"), hidden: &[] },
    // Which devices get push; the browser's keys are credentials for writing to it.
    Source { table: "push_subscriptions", link: Link::Column("account_id"), hidden: &["sealed_keys"] },
    Source { table: "partner_audience", link: Link::Column("account_id"), hidden: &[] },
    // What fraud scanning saw (keyed hashes, which name nothing outside this database) and what
    // it decided, with the rules and the values they read.
    Source { table: "fraud_events", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "fraud_decisions", link: Link::Column("account_id"), hidden: &["reviewed_by"] },
    // Actions under the terms about the person. Requests from authorities are left out: the
    // law may forbid telling the person (the register is kept for the authorities and courts).
    Source { table: "terms_actions", link: Link::Column("account_id"), hidden: &["decided_by", "resolved_by"] },
    Source { table: "support_tickets", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "support_messages", link: Link::Column("account_id"), hidden: &["staff_id"] },
    Source { table: "support_signals", link: Link::Column("account_id"), hidden: &[] },
    Source { table: "privacy_requests", link: Link::Column("account_id"), hidden: &["verify_hash", "verify_expires"] },
];

/// The tables an export reads (for the test that every table linked to an account is in it).
pub fn exported_tables() -> impl Iterator<Item = &'static str> {
    SOURCES.iter().map(|s| s.table)
}

/// A person's data: per table, the rows about them, each a column → value map.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Export {
    pub account_id: String,
    pub exported_at: i64,
    pub tables: BTreeMap<String, Vec<BTreeMap<String, Option<String>>>>,
}

impl Export {
    pub async fn of(store: &Store, account_id: &AccountId, now: i64) -> Result<Export, CoreError> {
        let schema = store.schema().await?;
        let mut export = Export { account_id: account_id.to_string(), exported_at: now, tables: BTreeMap::new() };
        for source in SOURCES {
            let Some(table) = schema.iter().find(|t| t.name == source.table) else { continue };
            let columns: Vec<&str> = table.columns.iter().map(String::as_str).filter(|c| !source.hidden.contains(c)).collect();
            let subject = format!("account:{account_id}");
            let rows = match &source.link {
                Link::Column(column) => store.rows_where(source.table, &columns, &[column], account_id.as_str()).await?,
                Link::LogSubject(links) => store.rows_where(source.table, &columns, links, &subject).await?,
            };
            let rows = rows.into_iter().map(|values| columns.iter().map(|c| c.to_string()).zip(values).collect()).collect();
            export.tables.insert(source.table.to_string(), rows);
        }
        Ok(export)
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// One table as CSV: a header line, then a line per row. Values that a spreadsheet would run
    /// as a formula are prefixed with `'`.
    pub fn csv(&self, table: &str) -> String {
        let Some(rows) = self.tables.get(table) else { return String::new() };
        let Some(first) = rows.first() else { return String::new() };
        let columns: Vec<&String> = first.keys().collect();
        let mut out = columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
        out.push_str("\r\n");
        for row in rows {
            let line: Vec<String> = columns.iter().map(|c| csv_field(row.get(*c).cloned().flatten().as_deref().unwrap_or(""))).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// The archive: `data.json` and one CSV per table with rows, in a tar file.
    pub fn archive(&self) -> Vec<u8> {
        let mut tar = super::tar::Tar::default();
        tar.add("passme-export/data.json", self.json().as_bytes(), self.exported_at);
        for (table, rows) in &self.tables {
            if !rows.is_empty() {
                tar.add(&format!("passme-export/{table}.csv"), self.csv(table).as_bytes(), self.exported_at);
            }
        }
        tar.finish()
    }
}

fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_string() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let mut export = Export::default();
        let row = |a: &str, b: &str| BTreeMap::from([("a".to_string(), Some(a.to_string())), ("b".to_string(), Some(b.to_string()))]);
        export.tables.insert("t".into(), vec![row("plain", "with, comma"), row("say \"hi\"", "=HYPERLINK(\"x\")")]);
        assert_eq!(export.csv("t"), "a,b\r\nplain,\"with, comma\"\r\n\"say \"\"hi\"\"\",\"'=HYPERLINK(\"\"x\"\")\"\r\n");
        assert_eq!(export.csv("missing"), "");
    }
}
