//! The GDPR article 30(1) record of processing activities, one entry per purpose, computed from
//! the same declarations as the published policy.

use std::collections::BTreeSet;

use super::document::{Doc, Node, Span};
use super::policy_text::{controller_sentence, retention_sentence};
use crate::Policy;
use crate::model::*;

pub fn build(policy: &Policy, lang: Lang) -> Doc {
    let (title, labels) = match lang {
        Lang::Da => (
            "Fortegnelse over behandlingsaktiviteter (artikel 30)",
            [
                "Retsgrundlag",
                "Kategorier af registrerede",
                "Kategorier af personoplysninger",
                "Modtagere",
                "Overførsel til tredjelande",
                "Slettefrister",
                "Ingen modtagere",
                "Ingen overførsel",
            ],
        ),
        Lang::En => (
            "Record of processing activities (article 30)",
            [
                "Legal basis",
                "Categories of data subjects",
                "Categories of personal data",
                "Recipients",
                "Transfers to third countries",
                "Time limits for erasure",
                "No recipients",
                "No transfers",
            ],
        ),
    };
    let mut nodes = vec![Node::Para(vec![Span::plain(controller_sentence(policy, lang))])];
    let version = match lang {
        Lang::Da => format!("Udarbejdet fra erklæringerne i politikversion {}.", policy.meta.version),
        Lang::En => format!("Generated from the declarations of policy version {}.", policy.meta.version),
    };
    nodes.push(Node::Para(vec![Span::plain(version)]));
    for purpose in &policy.purposes {
        let pid = purpose.id.get_ref();
        let fields: Vec<(&Category, &Field)> = policy.fields().filter(|(_, f)| f.purposes.iter().any(|p| p.get_ref() == pid)).collect();
        let subjects: BTreeSet<&str> = fields.iter().map(|(c, _)| c.subjects.get(lang)).collect();
        let data: Vec<String> = fields.iter().map(|(_, f)| f.name.get(lang).to_string()).collect();
        let recipients: Vec<&Processor> = policy.processors.iter().filter(|p| p.purposes.iter().any(|pp| pp.get_ref() == pid)).collect();
        let transfers: Vec<String> =
            recipients.iter().filter_map(|p| p.safeguard.as_ref().map(|s| format!("{}: {}", p.name.get(lang), s.get(lang)))).collect();
        let erasure: Vec<Vec<Span>> = fields
            .iter()
            .filter_map(|(_, f)| {
                policy
                    .rule_for_field(f.id.get_ref())
                    .map(|r| vec![Span::promising(format!("{}: {}.", f.name.get(lang), retention_sentence(r, lang)), &r.id)])
            })
            .collect();
        let join = |items: Vec<String>, empty: &str| if items.is_empty() { empty.to_string() } else { items.join("; ") };
        nodes.push(Node::Heading { level: 2, anchor: format!("purpose-{pid}"), text: purpose.text.get(lang).to_string() });
        nodes.push(Node::List(vec![
            vec![Span::plain(format!(
                "{}: {}",
                labels[0],
                purpose.legal_basis.iter().map(|b| b.label(lang)).collect::<Vec<_>>().join(", ")
            ))],
            vec![Span::plain(format!("{}: {}", labels[1], subjects.into_iter().collect::<Vec<_>>().join("; ")))],
            vec![Span::plain(format!("{}: {}", labels[2], join(data, "-")))],
            vec![Span::plain(format!(
                "{}: {}",
                labels[3],
                join(recipients.iter().map(|p| p.name.get(lang).to_string()).collect(), labels[6])
            ))],
            vec![Span::plain(format!("{}: {}", labels[4], join(transfers, labels[7])))],
        ]));
        nodes.push(Node::Para(vec![Span::plain(format!("{}:", labels[5]))]));
        nodes.push(Node::List(erasure));
    }
    let security = match lang {
        Lang::Da => "Tekniske og organisatoriske sikkerhedsforanstaltninger (artikel 32)",
        Lang::En => "Technical and organisational security measures (article 32)",
    };
    nodes.push(Node::Heading { level: 2, anchor: "security".into(), text: security.into() });
    nodes.push(Node::List(policy.security.iter().map(|s| vec![Span::promising(s.text.get(lang), s.id.get_ref())]).collect()));
    Doc { lang, title: title.into(), nodes }
}
