//! The declarations, as typed data. Every list item remembers where it was declared so that
//! validation can point at a file and line.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::period::Period;

/// A text in both languages the service publishes in. Both are required: a declaration with only
/// one language does not load.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub da: String,
    pub en: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Da,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Da => "da",
            Lang::En => "en",
        }
    }

    /// Chooses between a Danish and an English text.
    pub fn pick<'a>(self, da: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Da => da,
            Lang::En => en,
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "da" => Some(Lang::Da),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

impl Text {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Da => &self.da,
            Lang::En => &self.en,
        }
    }
}

/// Where an item was declared: file index into [`crate::Sources`] and byte offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    #[serde(skip)]
    pub file: usize,
    #[serde(skip)]
    pub offset: usize,
}

/// The parts of PassMe a promise belongs to. A promise of a capability that is implemented must be
/// proved by at least one test; the others are listed as pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Platform,
    Accounts,
    Consent,
    Tracking,
    Billing,
    Linking,
    Personalisation,
    Support,
    Messaging,
    Fraud,
    Compliance,
    Retention,
    Rights,
}

impl Capability {
    pub fn id(self) -> &'static str {
        match self {
            Capability::Platform => "platform",
            Capability::Accounts => "accounts",
            Capability::Consent => "consent",
            Capability::Tracking => "tracking",
            Capability::Billing => "billing",
            Capability::Linking => "linking",
            Capability::Personalisation => "personalisation",
            Capability::Support => "support",
            Capability::Messaging => "messaging",
            Capability::Fraud => "fraud",
            Capability::Compliance => "compliance",
            Capability::Retention => "retention",
            Capability::Rights => "rights",
        }
    }
}

/// GDPR article 6(1) legal bases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    LegitimateInterest,
}

impl LegalBasis {
    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (LegalBasis::Consent, Lang::Da) => "samtykke (art. 6, stk. 1, litra a)",
            (LegalBasis::Consent, Lang::En) => "consent (art. 6(1)(a))",
            (LegalBasis::Contract, Lang::Da) => "opfyldelse af kontrakt (art. 6, stk. 1, litra b)",
            (LegalBasis::Contract, Lang::En) => "performance of a contract (art. 6(1)(b))",
            (LegalBasis::LegalObligation, Lang::Da) => "retlig forpligtelse (art. 6, stk. 1, litra c)",
            (LegalBasis::LegalObligation, Lang::En) => "legal obligation (art. 6(1)(c))",
            (LegalBasis::LegitimateInterest, Lang::Da) => "legitim interesse (art. 6, stk. 1, litra f)",
            (LegalBasis::LegitimateInterest, Lang::En) => "legitimate interest (art. 6(1)(f))",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    pub name: String,
    pub email: String,
    /// Postal address; omitted from the published text until declared.
    pub address: Option<String>,
    pub country: Text,
    pub authority: Text,
    pub authority_url: String,
}

/// One entry of the policy's "Informationsbrug" list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    pub id: Spanned<String>,
    pub text: Text,
    pub legal_basis: Vec<LegalBasis>,
    /// Why the basis holds, e.g. the legitimate interest weighed.
    pub basis_note: Option<Text>,
    /// When processing for this purpose depends on consent, the capability that gates it.
    pub consent_gate: Option<Capability>,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub id: Spanned<String>,
    pub capability: Capability,
    pub name: Text,
    pub subjects: Text,
    pub source: Text,
    pub fields: Vec<Field>,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub id: Spanned<String>,
    pub name: Text,
    /// Overrides the category's capability when another capability owns this field's storage.
    pub capability: Option<Capability>,
    pub purposes: Vec<Spanned<String>>,
    pub legal_basis: Vec<LegalBasis>,
    pub retention: Spanned<RetentionDecl>,
    /// `table.column` pairs where this field is stored.
    #[serde(default)]
    pub columns: Vec<Spanned<String>>,
}

/// A retention rule as written; validation turns it into a [`RetentionRule`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionDecl {
    pub id: String,
    pub period: Option<String>,
    pub trigger: Option<Trigger>,
    pub action: Option<ActionKind>,
    pub method: Option<AnonymiseMethod>,
    /// For archived data: how long after archiving the clean-up routine deletes it.
    pub cleanup: Option<String>,
    pub reason: Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Collected,
    LastActivity,
    AccountClosed,
    SessionEnded,
    ConsentWithdrawn,
    Unlinked,
    SubscriptionEnded,
    FinancialYearEnd,
    TicketClosed,
    RequestCompleted,
    JobFinished,
    Unsubscribed,
    Archived,
}

impl Trigger {
    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Trigger::Collected, Lang::Da) => "efter indsamling",
            (Trigger::Collected, Lang::En) => "after collection",
            (Trigger::LastActivity, Lang::Da) => "efter seneste aktivitet",
            (Trigger::LastActivity, Lang::En) => "after the last activity",
            (Trigger::AccountClosed, Lang::Da) => "efter at kontoen er lukket",
            (Trigger::AccountClosed, Lang::En) => "after the account is closed",
            (Trigger::SessionEnded, Lang::Da) => "efter at sessionen er afsluttet",
            (Trigger::SessionEnded, Lang::En) => "after the session ends",
            (Trigger::ConsentWithdrawn, Lang::Da) => "efter at samtykket er trukket tilbage",
            (Trigger::ConsentWithdrawn, Lang::En) => "after consent is withdrawn",
            (Trigger::Unlinked, Lang::Da) => "efter at forbindelsen er fjernet",
            (Trigger::Unlinked, Lang::En) => "after the account is unlinked",
            (Trigger::SubscriptionEnded, Lang::Da) => "efter at abonnementet er ophørt",
            (Trigger::SubscriptionEnded, Lang::En) => "after the subscription ends",
            (Trigger::FinancialYearEnd, Lang::Da) => "efter udgangen af regnskabsåret",
            (Trigger::FinancialYearEnd, Lang::En) => "after the end of the financial year",
            (Trigger::TicketClosed, Lang::Da) => "efter at sagen er lukket",
            (Trigger::TicketClosed, Lang::En) => "after the case is closed",
            (Trigger::RequestCompleted, Lang::Da) => "efter at anmodningen er afsluttet",
            (Trigger::RequestCompleted, Lang::En) => "after the request is completed",
            (Trigger::JobFinished, Lang::Da) => "efter at opgaven er afsluttet",
            (Trigger::JobFinished, Lang::En) => "after the job finishes",
            (Trigger::Unsubscribed, Lang::Da) => "efter afmelding",
            (Trigger::Unsubscribed, Lang::En) => "after unsubscribing",
            (Trigger::Archived, Lang::Da) => "efter arkivering",
            (Trigger::Archived, Lang::En) => "after archiving",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Delete,
    Anonymise,
    Archive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnonymiseMethod {
    /// IPv4 to /24, IPv6 to /48.
    TruncateIp,
    /// Replace identifiers with a keyed hash whose key is then destroyed.
    DestroyKey,
    /// Set the value to NULL, keeping the rest of the row.
    Nullify,
    /// Keep only aggregate counts; delete the rows.
    Aggregate,
    /// Keep the browser and operating-system family, drop their versions.
    GeneraliseClient,
    /// Remove free text, keeping the rest of the record.
    RemoveText,
    /// Replace identifiers with random values, so records can no longer be linked.
    Pseudonymise,
    /// Round timestamps down to the hour.
    CoarsenTime,
}

/// A validated retention rule: every rule has a period, a trigger and an action.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionRule {
    pub id: String,
    pub field: String,
    pub capability: Capability,
    pub period: Period,
    pub trigger: Trigger,
    pub action: Action,
    pub reason: Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Delete,
    Anonymise { method: AnonymiseMethod },
    Archive { cleanup: Period },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub name: Spanned<String>,
    /// False when no column of the table can hold personal data.
    pub personal: bool,
    /// Columns of a personal table that hold no personal data, each with the reason.
    #[serde(default)]
    pub technical: Vec<Spanned<String>>,
    /// How a person's rows leave a personal table when they erase their account (the deletion
    /// manifest).
    pub erasure: Option<Erasure>,
    pub note: Option<String>,
    #[serde(skip)]
    pub origin: Origin,
}

/// How a person's rows leave a table at their erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Erasure {
    /// Deleted at once with the account.
    WithAccount,
    /// Not linked to the account (a daily-salted visitor hash, a hashed key): anonymised or
    /// deleted by its fields' retention rules, which the erasure cannot speed up.
    Expires,
    /// Kept because a legal duty requires it, until its fields' retention rules end it; the
    /// erasure tells the person what was kept, why and until when.
    LegalDuty,
}

impl Erasure {
    pub fn id(self) -> &'static str {
        match self {
            Erasure::WithAccount => "with_account",
            Erasure::Expires => "expires",
            Erasure::LegalDuty => "legal_duty",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessorRole {
    Processor,
    IndependentController,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Processor {
    pub id: Spanned<String>,
    pub name: Text,
    pub capability: Capability,
    pub role: ProcessorRole,
    pub service: Text,
    /// Field ids this recipient receives, and nothing else.
    pub receives: Vec<Spanned<String>>,
    /// Field ids this party sends us (an identity provider's tokens and profile).
    #[serde(default)]
    pub sends: Vec<Spanned<String>>,
    /// OAuth scopes PassMe may ask this party for; a configured provider asking for any other
    /// does not start.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The public profile fields kept from what it sends, each a claim and what people call
    /// it; everything else is dropped on arrival.
    #[serde(default)]
    pub profile_fields: Vec<ProfileField>,
    pub purposes: Vec<Spanned<String>>,
    pub location: Text,
    pub safeguard: Option<Text>,
    pub privacy_url: String,
    #[serde(skip)]
    pub origin: Origin,
}

/// A profile field a processor may send: the claim it arrives as, and its name in each language.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileField {
    pub claim: String,
    pub name: Text,
}

impl Processor {
    /// The names of a profile field in each language, when this processor declares it.
    pub fn profile_field(&self, claim: &str) -> Option<&Text> {
        self.profile_fields.iter().find(|f| f.claim == claim).map(|f| &f.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CookieCategory {
    Necessary,
    Preferences,
    Statistics,
    Marketing,
}

impl CookieCategory {
    pub const ALL: [CookieCategory; 4] =
        [CookieCategory::Necessary, CookieCategory::Preferences, CookieCategory::Statistics, CookieCategory::Marketing];

    pub fn id(self) -> &'static str {
        match self {
            CookieCategory::Necessary => "necessary",
            CookieCategory::Preferences => "preferences",
            CookieCategory::Statistics => "statistics",
            CookieCategory::Marketing => "marketing",
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (CookieCategory::Necessary, Lang::Da) => "Nødvendige",
            (CookieCategory::Necessary, Lang::En) => "Necessary",
            (CookieCategory::Preferences, Lang::Da) => "Præferencer",
            (CookieCategory::Preferences, Lang::En) => "Preferences",
            (CookieCategory::Statistics, Lang::Da) => "Statistik",
            (CookieCategory::Statistics, Lang::En) => "Statistics",
            (CookieCategory::Marketing, Lang::Da) => "Markedsføring",
            (CookieCategory::Marketing, Lang::En) => "Marketing",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cookie {
    pub name: Spanned<String>,
    pub category: CookieCategory,
    pub capability: Capability,
    /// `session` or an ISO 8601 period such as `P30D`.
    pub lifetime: Spanned<String>,
    pub purpose: Text,
    /// What stops working when this cookie is refused.
    pub without: Option<Text>,
    #[serde(skip)]
    pub origin: Origin,
}

/// A cookie category's explanation, shown on the banner and the settings page.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CookieCategoryDecl {
    pub category: CookieCategory,
    pub description: Text,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityMeasure {
    pub id: Spanned<String>,
    pub capability: Capability,
    pub text: Text,
    #[serde(skip)]
    pub origin: Origin,
}

/// A section of the published policy, in the seed's order.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub id: Spanned<String>,
    pub title: Text,
    pub blocks: Vec<Block>,
    #[serde(skip)]
    pub origin: Origin,
}

/// One block of a section: a paragraph, a list, or a part generated from the declarations.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    pub da: Option<String>,
    pub en: Option<String>,
    #[serde(default)]
    pub promises: Vec<Spanned<String>>,
    pub items: Option<Vec<ListItem>>,
    pub generate: Option<Spanned<Generated>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListItem {
    pub da: String,
    pub en: String,
    #[serde(default)]
    pub promises: Vec<Spanned<String>>,
}

/// Parts of the policy text computed from the declarations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generated {
    Controller,
    PaymentData,
    TrackingData,
    ThirdPartyData,
    Purposes,
    Processors,
    SecurityMeasures,
    RetentionTable,
    CookieTable,
    Contact,
}
