//! Personalisation (the policy's "personalisation" capability): the person's consent, the
//! partner profile data kept under it, and suggestions of services and settings predicted from
//! that data and the person's own use, each with the reason shown.
//!
//! Without consent nothing is kept, nothing is inferred, and withdrawing deletes both at once.
//! The person's own use enters as aggregates only (which plan, whether they use API tokens,
//! their interface settings), never as raw tracking.
//!
//! The [`Model`] is a naive Bayes scorer over co-occurrence counts among the people who
//! consented: an item's score is its base rate times the lift each of the person's features
//! gives it; the reason shown is the feature with the highest lift. `bench/src/bin/suggest.rs`
//! evaluates it offline against the popularity baseline.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use passme_store::{AccountId, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;

/// The purpose (and consent) everything here rests on.
pub const PURPOSE: &str = "personalise";
/// How many suggestions a person sees at most.
pub const SHOWN: usize = 3;

/// The services and settings that can be suggested, as the catalogue names them
/// (`suggest.item_<id>`).
pub const ITEMS: &[&str] = &["plan_pro", "plan_team", "api_tokens", "theme_dark", "text_large", "lang_da"];

/// Why a feature is known about the person: it is what the shown reason says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feature {
    /// A public profile field a linked provider sent.
    Partner { provider: String, field: String, value: String },
    /// Something the person already uses.
    Uses { item: String },
}

impl Feature {
    /// The key counts are kept under: the same field and value from any provider count alike.
    fn key(&self) -> String {
        match self {
            Feature::Partner { field, value, .. } => format!("{field}={}", value.to_lowercase()),
            Feature::Uses { item } => format!("uses={item}"),
        }
    }
}

/// What is known about one person: features, and the items they already use.
#[derive(Debug, Clone, Default)]
pub struct Person {
    pub features: Vec<Feature>,
    pub items: BTreeSet<String>,
}

/// Co-occurrence counts among people.
#[derive(Debug, Clone, Default)]
pub struct Model {
    people: usize,
    items: HashMap<String, usize>,
    features: HashMap<String, usize>,
    pairs: HashMap<(String, String), usize>,
}

/// A suggested item, its score and the feature that argued most for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub item: String,
    pub score: f64,
    pub because: Option<Feature>,
}

impl Model {
    pub fn train<'a>(people: impl IntoIterator<Item = &'a Person>) -> Model {
        let mut model = Model::default();
        for person in people {
            model.people += 1;
            let keys: BTreeSet<String> = person.features.iter().map(Feature::key).collect();
            for item in &person.items {
                *model.items.entry(item.clone()).or_default() += 1;
            }
            for key in &keys {
                *model.features.entry(key.clone()).or_default() += 1;
                for item in &person.items {
                    *model.pairs.entry((key.clone(), item.clone())).or_default() += 1;
                }
            }
        }
        model
    }

    fn base_rate(&self, item: &str) -> f64 {
        (self.items.get(item).copied().unwrap_or(0) as f64 + 1.0) / (self.people as f64 + 2.0)
    }

    /// P(item | feature) / P(item), smoothed towards 1 for rare features.
    fn lift(&self, key: &str, item: &str) -> f64 {
        let with = self.features.get(key).copied().unwrap_or(0) as f64;
        let both = self.pairs.get(&(key.to_string(), item.to_string())).copied().unwrap_or(0) as f64;
        let prior = self.base_rate(item);
        // Two pseudo-observations at the base rate keep one odd person from deciding.
        ((both + 2.0 * prior) / (with + 2.0)) / prior
    }

    /// The `k` best items the person does not use yet, best first, each with its reason.
    pub fn suggest(&self, person: &Person, k: usize) -> Vec<Scored> {
        // Each key counts once, with the first feature that carries it.
        let mut seen = BTreeSet::new();
        let features: Vec<(String, &Feature)> =
            person.features.iter().map(|f| (f.key(), f)).filter(|(key, _)| seen.insert(key.clone())).collect();
        let mut scored: Vec<Scored> = ITEMS
            .iter()
            .filter(|item| !person.items.contains(**item))
            .map(|item| {
                let mut score = self.base_rate(item).ln();
                let mut because: Option<(f64, &Feature)> = None;
                for (key, feature) in &features {
                    let lift = self.lift(key, item);
                    score += lift.ln();
                    if lift > 1.0 && because.is_none_or(|(best, _)| lift > best) {
                        because = Some((lift, feature));
                    }
                }
                Scored { item: (*item).to_string(), score, because: because.map(|(_, f)| f.clone()) }
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.item.cmp(&b.item)));
        scored.truncate(k);
        scored
    }

    /// The baseline: the `k` most used items the person does not use yet.
    pub fn popular(&self, person: &Person, k: usize) -> Vec<String> {
        let mut items: Vec<&str> = ITEMS.iter().copied().filter(|i| !person.items.contains(*i)).collect();
        items.sort_by(|a, b| self.items.get(*b).cmp(&self.items.get(*a)).then_with(|| a.cmp(b)));
        items.into_iter().take(k).map(str::to_string).collect()
    }
}

/// A suggestion as the account page shows it.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub item: String,
    pub because: Option<Feature>,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct Personalisation {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
}

impl Personalisation {
    pub fn new(store: Store, clock: SharedClock) -> Personalisation {
        Personalisation { audit: AuditLog::new(store.clone(), clock.clone()), store, clock }
    }

    /// Since when the person consents, if they do.
    pub async fn consent(&self, account_id: &AccountId) -> Result<Option<i64>, CoreError> {
        Ok(self.store.account_consent(account_id, PURPOSE).await?)
    }

    pub async fn give(&self, account_id: &AccountId) -> Result<(), CoreError> {
        self.store.give_account_consent(account_id, PURPOSE, self.clock.now_ms()).await?;
        self.record(account_id, "consent.personalise.given", json!({})).await
    }

    /// Withdraws the consent and deletes, at once, everything kept or inferred under it.
    pub async fn withdraw(&self, account_id: &AccountId) -> Result<u64, CoreError> {
        self.store.withdraw_account_consent(account_id, PURPOSE).await?;
        let deleted = self.store.delete_personalisation_data(account_id).await?;
        self.record(account_id, "consent.personalise.withdrawn", json!({ "rows_deleted": deleted })).await?;
        Ok(deleted)
    }

    async fn record(&self, account_id: &AccountId, action: &str, details: serde_json::Value) -> Result<(), CoreError> {
        let subject = format!("account:{account_id}");
        self.audit.record(AuditEvent { actor: &subject, action, subject: &subject, details }).await?;
        Ok(())
    }

    /// What is known about a person: partner profile features and use aggregates.
    pub async fn person(&self, account_id: &AccountId) -> Result<Person, CoreError> {
        let mut person = Person::default();
        for profile in self.store.partner_profiles_of(account_id).await? {
            let claims: BTreeMap<String, serde_json::Value> = serde_json::from_str(&profile.claims).unwrap_or_default();
            for (field, value) in claims {
                let values: Vec<String> = match value {
                    serde_json::Value::String(s) => vec![s],
                    serde_json::Value::Array(list) => list.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                    _ => Vec::new(),
                };
                // A name says nothing about what is useful; it is shown, never used to predict.
                if field == "name" {
                    continue;
                }
                for value in values {
                    person.features.push(Feature::Partner { provider: profile.provider.clone(), field: field.clone(), value });
                }
            }
        }
        for item in self.used_items(account_id).await? {
            person.features.push(Feature::Uses { item: item.clone() });
            person.items.insert(item);
        }
        Ok(person)
    }

    /// The items the person already uses, from aggregates of their own account.
    async fn used_items(&self, account_id: &AccountId) -> Result<BTreeSet<String>, CoreError> {
        let mut items = BTreeSet::new();
        let (theme, lang, text) = self.store.account_prefs(account_id).await?;
        if theme.as_deref() == Some("dark") {
            items.insert("theme_dark".to_string());
        }
        if text.as_deref() == Some("large") {
            items.insert("text_large".to_string());
        }
        if lang.as_deref() == Some("da") {
            items.insert("lang_da".to_string());
        }
        if self.store.api_tokens_of(account_id).await?.iter().any(|t| t.revoked_at.is_none()) {
            items.insert("api_tokens".to_string());
        }
        for subscription in self.store.billing_subscriptions_of(account_id).await? {
            if matches!(subscription.status.as_str(), "active" | "trialing" | "past_due") {
                let plan = subscription.price_id.to_lowercase();
                if plan.contains("team") {
                    items.insert("plan_team".to_string());
                } else if plan.contains("pro") {
                    items.insert("plan_pro".to_string());
                }
            }
        }
        Ok(items)
    }

    /// Predicts again from the consenting population and stores the person's top suggestions;
    /// without consent stores nothing (and deletes what there was). Returns how many.
    pub async fn recompute(&self, account_id: &AccountId) -> Result<usize, CoreError> {
        if self.consent(account_id).await?.is_none() {
            self.store.delete_personalisation_data(account_id).await?;
            return Ok(0);
        }
        // The person consents, so they are one of the population: read each person once.
        let mut population = Vec::new();
        let mut person = None;
        for other in self.store.accounts_with_consent(PURPOSE).await? {
            let known = self.person(&other).await?;
            if &other == account_id {
                person = Some(known.clone());
            }
            population.push(known);
        }
        let model = Model::train(&population);
        let person = match person {
            Some(person) => person,
            // Consent withdrawn in the meantime: nothing is inferred.
            None => return Ok(0),
        };
        let suggestions: Vec<(String, String)> = model
            .suggest(&person, SHOWN)
            .into_iter()
            // Only what has a reason to show is suggested.
            .filter_map(|s| s.because.map(|b| (s.item, serde_json::to_string(&b).unwrap_or_default())))
            .collect();
        self.store.replace_suggestions(account_id, &suggestions, self.clock.now_ms()).await?;
        Ok(suggestions.len())
    }

    /// The open (not dismissed) suggestions; none without consent.
    pub async fn suggestions(&self, account_id: &AccountId) -> Result<Vec<Suggestion>, CoreError> {
        if self.consent(account_id).await?.is_none() {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .suggestions_of(account_id)
            .await?
            .into_iter()
            .filter(|s| s.dismissed_at.is_none())
            .map(|s| Suggestion { because: serde_json::from_str(&s.reason).ok(), item: s.item, created_at: s.created_at })
            .collect())
    }

    pub async fn dismiss(&self, account_id: &AccountId, item: &str) -> Result<(), CoreError> {
        if self.store.dismiss_suggestion(account_id, item, self.clock.now_ms()).await? {
            Ok(())
        } else {
            Err(CoreError::NotFound { code: "suggestion_unknown" })
        }
    }

    /// Deletes everything inferred (dismissed ones too); the profile data stays while consent does.
    pub async fn forget_inferred(&self, account_id: &AccountId) -> Result<u64, CoreError> {
        Ok(self.store.delete_suggestions(account_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(field: &str, value: &str) -> Feature {
        Feature::Partner { provider: "example".into(), field: field.into(), value: value.into() }
    }

    fn person(features: Vec<Feature>, items: &[&str]) -> Person {
        let mut p = Person { features, items: items.iter().map(|s| s.to_string()).collect() };
        for item in items {
            p.features.push(Feature::Uses { item: (*item).to_string() });
        }
        p
    }

    #[test]
    fn a_partner_field_that_goes_with_an_item_suggests_it_with_that_reason() {
        let mut people = Vec::new();
        for _ in 0..20 {
            people.push(person(vec![partner("industry", "Software")], &["api_tokens"]));
            people.push(person(vec![partner("industry", "Retail")], &["theme_dark"]));
        }
        let model = Model::train(&people);
        let newcomer = person(vec![partner("industry", "software")], &[]);
        let top = model.suggest(&newcomer, 1);
        assert_eq!(top[0].item, "api_tokens");
        assert_eq!(top[0].because, Some(partner("industry", "software")));
        // The baseline cannot tell them apart (both used by 20).
        assert_eq!(model.popular(&newcomer, 2).len(), 2);
    }

    #[test]
    fn what_the_person_already_uses_is_never_suggested() {
        let people = vec![person(vec![], &["api_tokens", "theme_dark"]); 5];
        let model = Model::train(&people);
        let someone = person(vec![], &["api_tokens"]);
        assert!(model.suggest(&someone, 10).iter().all(|s| s.item != "api_tokens"));
        assert!(!model.popular(&someone, 10).contains(&"api_tokens".to_string()));
    }
}
