//! The published privacy policy: the seed's sections and wording (from the `[[sections]]`
//! declarations), with the parts the seed leaves vague generated from the declarations.

use super::document::{Doc, Node, Row, Span};
use crate::Policy;
use crate::model::*;

pub fn build(policy: &Policy, lang: Lang) -> Doc {
    let title = match lang {
        Lang::Da => "Privatlivspolitik",
        Lang::En => "Privacy policy",
    };
    let version = match lang {
        Lang::Da => format!("Version {}, gældende fra {}.", policy.meta.version, policy.meta.effective),
        Lang::En => format!("Version {}, in effect from {}.", policy.meta.version, policy.meta.effective),
    };
    let mut nodes = vec![Node::Para(vec![Span::plain(version)])];
    for section in &policy.sections {
        nodes.push(Node::Heading { level: 2, anchor: section.id.get_ref().clone(), text: section.title.get(lang).to_string() });
        for block in &section.blocks {
            let promises = |list: &[toml::Spanned<String>]| list.iter().map(|p| p.get_ref().clone()).collect::<Vec<_>>();
            if let (Some(da), Some(en)) = (&block.da, &block.en) {
                let text = if lang == Lang::Da { da } else { en };
                nodes.push(Node::Para(vec![Span { text: text.trim().to_string(), promises: promises(&block.promises) }]));
            }
            if let Some(items) = &block.items {
                let items = items
                    .iter()
                    .map(|i| {
                        vec![Span { text: if lang == Lang::Da { i.da.clone() } else { i.en.clone() }, promises: promises(&i.promises) }]
                    })
                    .collect();
                nodes.push(Node::List(items));
            }
            if let Some(generated) = &block.generate {
                nodes.extend(generate(policy, *generated.get_ref(), lang));
            }
        }
    }
    Doc { lang, title: title.to_string(), nodes }
}

fn generate(policy: &Policy, part: Generated, lang: Lang) -> Vec<Node> {
    match part {
        Generated::Controller => vec![Node::Para(vec![Span::plain(controller_sentence(policy, lang))])],
        Generated::PaymentData => field_list(policy, &[Capability::Billing], lang),
        Generated::TrackingData => field_list(policy, &[Capability::Tracking], lang),
        Generated::ThirdPartyData => field_list(policy, &[Capability::Linking, Capability::Personalisation], lang),
        Generated::Purposes => purposes(policy, lang),
        Generated::Processors => processors(policy, lang),
        Generated::SecurityMeasures => {
            vec![Node::List(policy.security.iter().map(|s| vec![Span::promising(s.text.get(lang), s.id.get_ref())]).collect())]
        }
        Generated::RetentionTable => retention_table(policy, lang),
        Generated::CookieTable => cookie_table(policy, lang),
        Generated::Contact => {
            let text = match lang {
                Lang::Da => format!(
                    "Skriv til {} – vi svarer inden for en måned, jf. databeskyttelsesforordningens artikel 12, stk. 3.",
                    policy.controller.email
                ),
                Lang::En => {
                    format!("Write to {} – we answer within one month, as article 12(3) of the GDPR requires.", policy.controller.email)
                }
            };
            vec![Node::Para(vec![Span::plain(text)])]
        }
    }
}

pub(super) fn controller_sentence(policy: &Policy, lang: Lang) -> String {
    let c = &policy.controller;
    let place = match &c.address {
        Some(address) => format!("{address}, {}", c.country.get(lang)),
        None => c.country.get(lang).to_string(),
    };
    match lang {
        Lang::Da => format!(
            "Dataansvarlig er {}, {place}. Kontakt: {}. Tilsynsmyndighed: {} ({}).",
            c.name, c.email, c.authority.da, c.authority_url
        ),
        Lang::En => format!(
            "The controller is {}, {place}. Contact: {}. Supervisory authority: {} ({}).",
            c.name, c.email, c.authority.en, c.authority_url
        ),
    }
}

/// What happens when the period ends, as a verb and the rest of the phrase: ("slettes", ""),
/// ("anonymiseres", " (IP-adressen afkortes …)"), ("arkiveres", " isoleret … efter 35 dage").
fn action_parts(action: Action, lang: Lang) -> (&'static str, String) {
    match action {
        Action::Delete => (lang.pick("slettes", "deleted"), String::new()),
        Action::Anonymise { method } => {
            let how = match method {
                AnonymiseMethod::TruncateIp => {
                    lang.pick("IP-adressen afkortes til /24 (IPv4) eller /48 (IPv6)", "the IP address is cut to /24 (IPv4) or /48 (IPv6)")
                }
                AnonymiseMethod::DestroyKey => {
                    lang.pick("nøglen bag de hashede værdier destrueres", "the key behind the hashed values is destroyed")
                }
                AnonymiseMethod::Nullify => {
                    lang.pick("værdien fjernes, resten af posten bevares", "the value is removed, the rest of the record kept")
                }
                AnonymiseMethod::Aggregate => lang.pick("kun samlede optællinger bevares", "only aggregate counts are kept"),
                AnonymiseMethod::GeneraliseClient => lang.pick(
                    "kun browser- og styresystemfamilien bevares, ikke versionerne",
                    "only the browser and operating-system family is kept, not the versions",
                ),
                AnonymiseMethod::RemoveText => {
                    lang.pick("den frie tekst fjernes, resten af posten bevares", "the free text is removed, the rest of the record kept")
                }
                AnonymiseMethod::Pseudonymise => lang.pick(
                    "id'et erstattes af en tilfældig værdi, så posterne ikke kan kobles",
                    "the id is replaced by a random value, so the records cannot be linked",
                ),
                AnonymiseMethod::CoarsenTime => lang.pick("tidspunktet rundes ned til hele timer", "the time is rounded down to the hour"),
            };
            (lang.pick("anonymiseres", "anonymised"), format!(" ({how})"))
        }
        Action::Archive { cleanup } => match lang {
            Lang::Da => {
                ("arkiveres", format!(" isoleret fra adgang og behandling og slettes af arkivoprydningen efter {}", cleanup.describe(lang)))
            }
            Lang::En => (
                "archived",
                format!(", isolated from access and processing, and deleted by the archive clean-up after {}", cleanup.describe(lang)),
            ),
        },
    }
}

/// For a table cell: "slettes", "anonymiseres (…)".
pub(super) fn action_label(action: Action, lang: Lang) -> String {
    let (verb, rest) = action_parts(action, lang);
    format!("{verb}{rest}")
}

/// "opbevares i 30 dage efter …; derefter slettes de" / "kept for 30 days after …, then deleted".
pub(super) fn retention_sentence(rule: &RetentionRule, lang: Lang) -> String {
    let (verb, rest) = action_parts(rule.action, lang);
    match lang {
        Lang::Da => format!("opbevares i {} {}; derefter {verb} de{rest}", rule.period.describe(lang), rule.trigger.label(lang)),
        Lang::En => format!("kept for {} {}, then {verb}{rest}", rule.period.describe(lang), rule.trigger.label(lang)),
    }
}

pub(super) fn purpose_names(policy: &Policy, field: &Field, lang: Lang) -> String {
    field
        .purposes
        .iter()
        .filter_map(|p| policy.purpose(p.get_ref()))
        .map(|p| p.text.get(lang).to_lowercase())
        .collect::<Vec<_>>()
        .join("; ")
}

fn field_list(policy: &Policy, capabilities: &[Capability], lang: Lang) -> Vec<Node> {
    let used_for = lang.pick("bruges til at", "used to");
    let items = policy
        .fields()
        .filter(|(c, _)| capabilities.contains(&c.capability))
        .map(|(_, f)| {
            let mut spans = vec![Span::plain(format!("{}: {used_for} {};", f.name.get(lang), purpose_names(policy, f, lang)))];
            if let Some(rule) = policy.rule_for_field(f.id.get_ref()) {
                spans.push(Span::promising(format!("{}.", retention_sentence(rule, lang)), &rule.id));
            }
            spans
        })
        .collect();
    vec![Node::List(items)]
}

fn purposes(policy: &Policy, lang: Lang) -> Vec<Node> {
    let basis_word = match lang {
        Lang::Da => "Retsgrundlag",
        Lang::En => "Legal basis",
    };
    let items = policy
        .purposes
        .iter()
        .map(|p| {
            let bases = p.legal_basis.iter().map(|b| b.label(lang)).collect::<Vec<_>>().join(", ");
            let mut text = format!("{} — {basis_word}: {bases}.", p.text.get(lang));
            if let Some(note) = &p.basis_note {
                text.push(' ');
                text.push_str(note.get(lang));
            }
            match p.consent_gate {
                Some(_) => vec![Span::promising(text, format!("consent.{}", p.id.get_ref()))],
                None => vec![Span::plain(text)],
            }
        })
        .collect();
    vec![Node::List(items)]
}

fn processors(policy: &Policy, lang: Lang) -> Vec<Node> {
    let header = match lang {
        Lang::Da => ["Modtager", "Opgave", "Modtager disse oplysninger", "Placering og overførselsgrundlag", "Privatlivspolitik"],
        Lang::En => ["Recipient", "Task", "Receives", "Location and transfer safeguard", "Privacy policy"],
    };
    let rows = policy
        .processors
        .iter()
        .map(|p| {
            let receives = p
                .receives
                .iter()
                .filter_map(|f| policy.field(f.get_ref()))
                .map(|(_, f)| f.name.get(lang).to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let names = |ids: &[toml::Spanned<String>]| {
                ids.iter()
                    .filter_map(|f| policy.field(f.get_ref()))
                    .map(|(_, f)| f.name.get(lang).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut service = p.service.get(lang).to_string();
            if !p.sends.is_empty() {
                let sends = names(&p.sends);
                service.push_str(&match lang {
                    Lang::Da => format!(" Sender os: {sends}."),
                    Lang::En => format!(" Sends us: {sends}."),
                });
            }
            if !p.profile_fields.is_empty() {
                let fields = p.profile_fields.iter().map(|f| f.name.get(lang)).collect::<Vec<_>>().join(", ");
                service.push_str(&match lang {
                    Lang::Da => format!(" Af profilen gemmer vi kun: {fields}."),
                    Lang::En => format!(" Of the profile we keep only: {fields}."),
                });
            }
            let role = match (p.role, lang) {
                (ProcessorRole::Processor, Lang::Da) => "databehandler",
                (ProcessorRole::Processor, Lang::En) => "processor",
                (ProcessorRole::IndependentController, Lang::Da) => "selvstændig dataansvarlig",
                (ProcessorRole::IndependentController, Lang::En) => "independent controller",
            };
            let location = match &p.safeguard {
                Some(s) => format!("{}; {}", p.location.get(lang), s.get(lang)),
                None => p.location.get(lang).to_string(),
            };
            Row {
                cells: vec![format!("{} ({role})", p.name.get(lang)), service, receives, location, p.privacy_url.clone()],
                promises: vec![format!("processor.{}", p.id.get_ref())],
            }
        })
        .collect();
    vec![Node::Table { header: header.iter().map(|h| h.to_string()).collect(), rows }]
}

fn retention_table(policy: &Policy, lang: Lang) -> Vec<Node> {
    let header = match lang {
        Lang::Da => ["Kategori", "Oplysning", "Opbevaringsperiode", "Derefter", "Begrundelse"],
        Lang::En => ["Category", "Information", "Retention period", "Then", "Reason"],
    };
    let rows = policy
        .categories
        .iter()
        .flat_map(|c| c.fields.iter().map(move |f| (c, f)))
        .filter_map(|(c, f)| {
            let rule = policy.rule_for_field(f.id.get_ref())?;
            Some(Row {
                cells: vec![
                    c.name.get(lang).to_string(),
                    f.name.get(lang).to_string(),
                    format!("{} {}", rule.period.describe(lang), rule.trigger.label(lang)),
                    action_label(rule.action, lang),
                    rule.reason.get(lang).to_string(),
                ],
                promises: vec![rule.id.clone()],
            })
        })
        .collect();
    vec![Node::Table { header: header.iter().map(|h| h.to_string()).collect(), rows }]
}

pub(super) fn lifetime_label(lifetime: &str, lang: Lang) -> String {
    if lifetime == "session" {
        return match lang {
            Lang::Da => "indtil browseren lukkes".into(),
            Lang::En => "until the browser is closed".into(),
        };
    }
    crate::Period::parse(lifetime).map_or_else(|_| lifetime.to_string(), |p| p.describe(lang))
}

fn cookie_table(policy: &Policy, lang: Lang) -> Vec<Node> {
    let categories = CookieCategory::ALL
        .iter()
        .filter_map(|&c| policy.cookie_category(c).map(|d| vec![Span::plain(format!("{}: {}", c.label(lang), d.description.get(lang)))]))
        .collect();
    let header = match lang {
        Lang::Da => ["Navn", "Kategori", "Levetid", "Formål", "Hvis du fravælger den"],
        Lang::En => ["Name", "Category", "Lifetime", "Purpose", "If you refuse it"],
    };
    let rows = policy
        .cookies
        .iter()
        .map(|c| Row {
            cells: vec![
                c.name.get_ref().clone(),
                c.category.label(lang).to_string(),
                lifetime_label(c.lifetime.get_ref(), lang),
                c.purpose.get(lang).to_string(),
                c.without.as_ref().map_or_else(String::new, |w| w.get(lang).to_string()),
            ],
            promises: vec![format!("cookie.{}", c.name.get_ref())],
        })
        .collect();
    vec![Node::List(categories), Node::Table { header: header.iter().map(|h| h.to_string()).collect(), rows }]
}
