//! In-app promotions, tailored to the campaign that brought a visitor only with their marketing
//! consent (the `__Host-pm_ads` cookie exists only then). Without consent, or without a campaign,
//! everyone sees the same general promotion.

/// The cookie that remembers the campaign (declared in the policy, category "marketing").
pub const COOKIE: &str = "__Host-pm_ads";

/// A campaign id as links carry it (`?utm_campaign=team-launch`): lower-case letters, digits and
/// dashes, at most 40. Anything else is ignored, never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign(String);

impl Campaign {
    pub fn parse(value: &str) -> Option<Campaign> {
        let ok = !value.is_empty() && value.len() <= 40 && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| Campaign(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a visitor is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// The same for everyone: no consent, or no campaign.
    General,
    Team,
    Developers,
}

impl Promotion {
    pub fn id(self) -> &'static str {
        match self {
            Promotion::General => "general",
            Promotion::Team => "team",
            Promotion::Developers => "developers",
        }
    }

    /// The promotion for a campaign; the campaign counts only with marketing consent.
    pub fn choose(marketing_consent: bool, campaign: Option<&Campaign>) -> Promotion {
        match campaign.filter(|_| marketing_consent).map(Campaign::as_str) {
            Some(c) if c.starts_with("team") => Promotion::Team,
            Some(c) if c.starts_with("dev") || c.starts_with("api") => Promotion::Developers,
            _ => Promotion::General,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_tailors_only_with_consent() {
        let team = Campaign::parse("team-launch");
        assert_eq!(Promotion::choose(true, team.as_ref()), Promotion::Team);
        assert_eq!(Promotion::choose(false, team.as_ref()), Promotion::General);
        assert_eq!(Promotion::choose(true, None), Promotion::General);
        assert_eq!(Campaign::parse("<script>"), None);
        assert_eq!(Campaign::parse(&"a".repeat(41)), None);
    }
}
