//! The plans PassMe sells, from configuration, and what a subscription's status means for access.

use passme_core::config::PlanConfig;
use passme_policy::Lang;

use crate::BillingError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: String,
    pub name_da: String,
    pub name_en: String,
    pub price: String,
    pub interval: String,
    pub entitlements: Vec<String>,
}

impl Plan {
    pub fn name(&self, lang: Lang) -> &str {
        lang.pick(&self.name_da, &self.name_en)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    plans: Vec<Plan>,
}

const INTERVALS: &[&str] = &["day", "week", "month", "year"];

fn well_formed_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl Catalogue {
    /// Checks the configured plans: ids, prices and entitlement names well formed, ids and prices
    /// unique, a known interval, both names present.
    pub fn from_config(plans: &[PlanConfig]) -> Result<Catalogue, BillingError> {
        let invalid = |message: String| BillingError::Config { message };
        let mut out: Vec<Plan> = Vec::new();
        for p in plans {
            if !well_formed_id(&p.id) || !well_formed_id(&p.price) {
                return Err(invalid(format!("billing.plans: plan {:?} needs an id and a price of letters, digits, -_.:", p.id)));
            }
            if out.iter().any(|o| o.id == p.id || o.price == p.price) {
                return Err(invalid(format!("billing.plans: plan {:?} repeats an id or a price", p.id)));
            }
            if !INTERVALS.contains(&p.interval.as_str()) {
                return Err(invalid(format!(
                    "billing.plans: plan {:?} has interval {:?}; expected one of {INTERVALS:?}",
                    p.id, p.interval
                )));
            }
            if p.name.da.trim().is_empty() || p.name.en.trim().is_empty() {
                return Err(invalid(format!("billing.plans: plan {:?} needs a Danish and an English name", p.id)));
            }
            if let Some(bad) = p.entitlements.iter().find(|e| !well_formed_id(e)) {
                return Err(invalid(format!("billing.plans: plan {:?} has a malformed entitlement {bad:?}", p.id)));
            }
            out.push(Plan {
                id: p.id.clone(),
                name_da: p.name.da.clone(),
                name_en: p.name.en.clone(),
                price: p.price.clone(),
                interval: p.interval.clone(),
                entitlements: p.entitlements.clone(),
            });
        }
        Ok(Catalogue { plans: out })
    }

    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    pub fn by_price(&self, price: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.price == price)
    }
}

/// A subscription status as the provider reports it. Anything else is `Unknown` and grants
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
    Paused,
    Unknown(String),
}

impl Status {
    pub fn parse(s: &str) -> Status {
        match s {
            "incomplete" => Status::Incomplete,
            "incomplete_expired" => Status::IncompleteExpired,
            "trialing" => Status::Trialing,
            "active" => Status::Active,
            "past_due" => Status::PastDue,
            "canceled" => Status::Canceled,
            "unpaid" => Status::Unpaid,
            "paused" => Status::Paused,
            other => Status::Unknown(other.to_string()),
        }
    }

    /// Whether the product is available. `past_due` keeps access while the provider retries the
    /// payment (the user sees a notice); `unpaid` is where retries gave up.
    pub fn grants_access(&self) -> bool {
        matches!(self, Status::Active | Status::Trialing | Status::PastDue)
    }

    /// A subscription in this status can never become active again.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Status::Canceled | Status::IncompleteExpired)
    }

    /// Whether the user must act on a payment.
    pub fn payment_problem(&self) -> bool {
        matches!(self, Status::PastDue | Status::Unpaid | Status::Incomplete)
    }
}

#[cfg(test)]
mod tests {
    use passme_core::config::PlanName;

    use super::*;

    fn plan(id: &str, price: &str, interval: &str) -> PlanConfig {
        PlanConfig {
            id: id.into(),
            name: PlanName { da: "Pro".into(), en: "Pro".into() },
            price: price.into(),
            interval: interval.into(),
            entitlements: vec!["chat".into()],
        }
    }

    #[test]
    fn only_active_trialing_and_past_due_grant_access() {
        let granting: Vec<&str> =
            ["incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused", "x"]
                .into_iter()
                .filter(|s| Status::parse(s).grants_access())
                .collect();
        assert_eq!(granting, ["trialing", "active", "past_due"]);
        assert!(Status::parse("canceled").is_terminal() && Status::parse("incomplete_expired").is_terminal());
    }

    #[test]
    fn the_catalogue_refuses_repeats_bad_intervals_and_bad_ids() {
        assert!(Catalogue::from_config(&[plan("pro", "price_1", "month"), plan("team", "price_2", "year")]).is_ok());
        assert!(Catalogue::from_config(&[plan("pro", "price_1", "month"), plan("pro", "price_2", "year")]).is_err());
        assert!(Catalogue::from_config(&[plan("pro", "price_1", "month"), plan("team", "price_1", "year")]).is_err());
        assert!(Catalogue::from_config(&[plan("pro", "price_1", "fortnight")]).is_err());
        assert!(Catalogue::from_config(&[plan("pro plan", "price_1", "month")]).is_err());
        let catalogue = Catalogue::from_config(&[plan("pro", "price_1", "month")]).expect("valid");
        assert_eq!(catalogue.by_price("price_1").map(|p| p.id.as_str()), Some("pro"));
    }
}
