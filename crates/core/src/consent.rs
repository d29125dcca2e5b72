//! Cookie consent: what a visitor chose per category, the cookie that remembers it, and the
//! hash-chained ledger that proves every choice (given, changed, withdrawn).
//!
//! The cookie is only a memo of the choice; the ledger is the proof. A choice made under an older
//! policy version counts as no choice: the visitor is asked again and, until they answer, only
//! necessary cookies are set.

use passme_store::AccountId;
use std::net::IpAddr;

use base64::Engine as _;
use passme_policy::CookieCategory;
use passme_store::{AuditRow, Store};
use serde::Serialize;
use serde_json::json;

use crate::CoreError;
use crate::audit::{AuditEvent, ChainLog};
use crate::clock::SharedClock;
use crate::net::truncate_ip;

pub const COOKIE_NAME: &str = "__Host-consent";

/// A choice per optional category; necessary cookies need no choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct Choices {
    pub preferences: bool,
    pub statistics: bool,
    pub marketing: bool,
}

impl Choices {
    pub const NONE: Choices = Choices { preferences: false, statistics: false, marketing: false };
    pub const ALL: Choices = Choices { preferences: true, statistics: true, marketing: true };

    /// The consent gate: may cookies (or processing) of this category happen?
    pub fn allows(&self, category: CookieCategory) -> bool {
        match category {
            CookieCategory::Necessary => true,
            CookieCategory::Preferences => self.preferences,
            CookieCategory::Statistics => self.statistics,
            CookieCategory::Marketing => self.marketing,
        }
    }

    fn bits(&self) -> String {
        [self.preferences, self.statistics, self.marketing].iter().map(|&b| if b { '1' } else { '0' }).collect()
    }

    fn from_bits(bits: &str) -> Option<Choices> {
        let flags: Vec<bool> = bits
            .chars()
            .map(|c| match c {
                '1' => Some(true),
                '0' => Some(false),
                _ => None,
            })
            .collect::<Option<_>>()?;
        match flags[..] {
            [preferences, statistics, marketing] => Some(Choices { preferences, statistics, marketing }),
            _ => None,
        }
    }
}

/// The `__Host-consent` cookie: `v1.<consent id>.<policy version>.<bits>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentCookie {
    /// 16 random bytes, base64url: the anonymous subject of the ledger.
    pub id: String,
    pub policy_version: String,
    pub choices: Choices,
}

impl ConsentCookie {
    /// Parses strictly; anything else (other separators, lengths, alphabets, NUL bytes) is no
    /// consent at all.
    pub fn parse(value: &str) -> Option<ConsentCookie> {
        if value.len() > 128 {
            return None;
        }
        let mut parts = value.split('.');
        let (Some("v1"), Some(id), Some(version), Some(bits), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let id_ok = id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let version_ok = !version.is_empty() && version.len() <= 32 && version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !id_ok || !version_ok {
            return None;
        }
        Some(ConsentCookie { id: id.into(), policy_version: version.into(), choices: Choices::from_bits(bits)? })
    }

    pub fn encode(&self) -> String {
        format!("v1.{}.{}.{}", self.id, self.policy_version, self.choices.bits())
    }
}

/// Where a visitor stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentState {
    /// No (valid) choice: show the banner, set only necessary cookies.
    Unanswered,
    /// A choice under the current policy version.
    Current(ConsentCookie),
    /// A choice under an older policy version: ask again, honour nothing optional meanwhile.
    Outdated(ConsentCookie),
}

impl ConsentState {
    pub fn of(cookie: Option<ConsentCookie>, policy_version: &str) -> ConsentState {
        match cookie {
            None => ConsentState::Unanswered,
            Some(c) if c.policy_version == policy_version => ConsentState::Current(c),
            Some(c) => ConsentState::Outdated(c),
        }
    }

    /// What may happen now.
    pub fn choices(&self) -> Choices {
        match self {
            ConsentState::Current(c) => c.choices,
            ConsentState::Unanswered | ConsentState::Outdated(_) => Choices::NONE,
        }
    }

    /// Whether to ask (banner).
    pub fn needs_answer(&self) -> bool {
        !matches!(self, ConsentState::Current(_))
    }

    pub fn previous(&self) -> Option<&ConsentCookie> {
        match self {
            ConsentState::Unanswered => None,
            ConsentState::Current(c) | ConsentState::Outdated(c) => Some(c),
        }
    }
}

/// What one recorded choice did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAction {
    Given,
    Changed,
    Withdrawn,
}

impl ConsentAction {
    /// The action's name in the ledger.
    pub fn name(self) -> &'static str {
        match self {
            ConsentAction::Given => "consent.given",
            ConsentAction::Changed => "consent.changed",
            ConsentAction::Withdrawn => "consent.withdrawn",
        }
    }

    fn parse(name: &str) -> Option<ConsentAction> {
        [ConsentAction::Given, ConsentAction::Changed, ConsentAction::Withdrawn].into_iter().find(|a| a.name() == name)
    }
}

/// One recorded choice, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub at: i64,
    pub action: ConsentAction,
    pub choices: Choices,
    pub policy_version: String,
    /// The version of the banner the visitor answered.
    pub banner_version: String,
    /// The /24 or /48 network the choice came from.
    pub network: String,
    /// Who made the choice: `visitor`, or `account:ID` when signed in.
    pub actor: String,
}

impl ConsentRecord {
    fn of(row: &AuditRow) -> Option<ConsentRecord> {
        let action = ConsentAction::parse(&row.action)?;
        let details: serde_json::Value = serde_json::from_str(&row.details).ok()?;
        Some(ConsentRecord {
            at: row.at,
            action,
            choices: serde_json::from_value(details.get("choices")?.clone()).ok()?,
            policy_version: details.get("policy_version")?.as_str()?.to_string(),
            banner_version: text(&details, "banner_version"),
            network: text(&details, "ip_prefix"),
            actor: row.actor.clone(),
        })
    }
}

fn text(details: &serde_json::Value, key: &str) -> String {
    details.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

/// Records choices in the ledger.
#[derive(Debug, Clone)]
pub struct ConsentLedger {
    log: ChainLog,
}

impl ConsentLedger {
    pub fn new(store: Store, clock: SharedClock) -> ConsentLedger {
        ConsentLedger { log: ChainLog::consent(store, clock) }
    }

    /// Records a choice and returns the cookie that remembers it. The consent id carries over
    /// from a previous choice, so one visitor's history stays one subject.
    pub async fn record(
        &self,
        previous: Option<&ConsentCookie>,
        choices: Choices,
        account_id: Option<&AccountId>,
        policy_version: &str,
        banner_version: &str,
        ip: IpAddr,
    ) -> Result<ConsentCookie, CoreError> {
        let id =
            previous.map_or_else(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()), |p| p.id.clone());
        let action = match previous {
            None => "consent.given",
            Some(p) if p.choices != Choices::NONE && choices == Choices::NONE => "consent.withdrawn",
            Some(_) => "consent.changed",
        };
        let actor = account_id.map_or_else(|| "visitor".to_string(), |a| format!("account:{a}"));
        let details = json!({
            "choices": choices,
            "policy_version": policy_version,
            "banner_version": banner_version,
            "ip_prefix": truncate_ip(ip),
        });
        self.log.record(AuditEvent { actor: &actor, action, subject: &format!("consent:{id}"), details }).await?;
        Ok(ConsentCookie { id, policy_version: policy_version.into(), choices })
    }

    /// Every recorded choice of one consent id, oldest first: the proof shown to the visitor.
    pub async fn history(&self, consent_id: &str) -> Result<Vec<ConsentRecord>, CoreError> {
        let rows = self.log.entries_for(&format!("consent:{consent_id}")).await?;
        Ok(rows.iter().filter_map(ConsentRecord::of).collect())
    }

    pub fn log(&self) -> &ChainLog {
        &self.log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_malformed_ones_are_no_consent() {
        let cookie = ConsentCookie {
            id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            policy_version: "2026-11-29".into(),
            choices: Choices { preferences: true, statistics: false, marketing: true },
        };
        assert_eq!(ConsentCookie::parse(&cookie.encode()), Some(cookie.clone()));
        let good = cookie.encode();
        for bad in [
            String::new(),
            good.replace('.', ""),
            good.replace("v1.", "v2."),
            format!("{good}.1"),
            good.replace(".101", ".10"),
            good.replace(".101", ".102"),
            good.replace("AAAA", "AA\0A"),
            "x".repeat(8192),
            good.replace("2026-11-29", "2026/11/29"),
        ] {
            assert_eq!(ConsentCookie::parse(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_outdated_choice_allows_nothing_optional_and_asks_again() {
        let old = ConsentCookie { id: "AAAAAAAAAAAAAAAAAAAAAA".into(), policy_version: "2025-01-01".into(), choices: Choices::ALL };
        let state = ConsentState::of(Some(old), "2026-11-29");
        assert!(state.needs_answer());
        assert_eq!(state.choices(), Choices::NONE);
        assert!(state.choices().allows(CookieCategory::Necessary));
        assert!(!state.choices().allows(CookieCategory::Marketing));
    }
}
