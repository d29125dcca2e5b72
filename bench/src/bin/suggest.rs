//! Offline evaluation of the suggester (`passme_core::personalise::Model`) against the popularity
//! baseline: precision@k on a held-out split of a synthetic population.
//!
//! The population is generated, not real (no real data may be used for this): each person has an
//! industry and interests (what a linked provider's public profile would say) and uses items
//! with probabilities that depend on them, plus noise. 80 % of people train the model; for each of
//! the other 20 % half of their items (at least one) are hidden, the model sees the rest and the
//! profile, and we count how many of its top-k are hidden items. The same for the baseline (the
//! most used items the person does not use yet) and for the model without partner data (use only).
//!
//! Run: `cargo run --release -p passme-bench --bin suggest [-- --people 20000 --seed 7]`

use std::collections::BTreeSet;

use passme_bench::arg;
use passme_core::personalise::{Feature, ITEMS, Model, Person};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const INDUSTRIES: &[(&str, f64)] = &[("software", 0.3), ("retail", 0.2), ("finance", 0.15), ("health", 0.15), ("education", 0.2)];
const INTERESTS: &[&str] = &["ai", "privacy", "design", "data", "writing", "travel"];

/// How likely someone is to use `item`, given their industry and interests.
fn adoption(item: &str, industry: &str, interests: &[&str]) -> f64 {
    let has = |i: &str| interests.contains(&i);
    let p: f64 = match item {
        "plan_pro" => 0.25 + if has("ai") { 0.2 } else { 0.0 },
        "plan_team" => 0.05 + if industry == "finance" || industry == "health" { 0.35 } else { 0.0 },
        "api_tokens" => 0.05 + if industry == "software" { 0.5 } else { 0.0 } + if has("data") { 0.2 } else { 0.0 },
        "theme_dark" => 0.2 + if industry == "software" { 0.3 } else { 0.0 } + if has("design") { 0.2 } else { 0.0 },
        "text_large" => 0.08 + if industry == "education" { 0.3 } else { 0.0 } + if has("writing") { 0.15 } else { 0.0 },
        "lang_da" => 0.3 + if has("travel") { -0.2 } else { 0.1 },
        _ => 0.0,
    };
    p.clamp(0.0, 0.95)
}

fn person(rng: &mut StdRng) -> (Person, Vec<Feature>) {
    let mut roll = rng.random::<f64>();
    let industry = INDUSTRIES
        .iter()
        .find(|(_, p)| {
            roll -= p;
            roll < 0.0
        })
        .map_or("education", |(i, _)| *i);
    let mut interests: Vec<&str> = INTERESTS.to_vec();
    interests.shuffle(rng);
    interests.truncate(rng.random_range(1..=3));
    let partner: Vec<Feature> = std::iter::once(("industry", industry))
        .chain(interests.iter().map(|i| ("interests", *i)))
        .map(|(field, value)| Feature::Partner { provider: "example".into(), field: field.into(), value: value.into() })
        .collect();
    let items: BTreeSet<String> =
        ITEMS.iter().filter(|i| rng.random::<f64>() < adoption(i, industry, &interests)).map(|i| i.to_string()).collect();
    let mut features = partner.clone();
    features.extend(items.iter().map(|i| Feature::Uses { item: i.clone() }));
    (Person { features, items }, partner)
}

/// The person as seen with `hidden` items withheld; `with_partner` false drops the profile.
fn observed(person: &Person, partner: &[Feature], hidden: &BTreeSet<String>, with_partner: bool) -> Person {
    let items: BTreeSet<String> = person.items.difference(hidden).cloned().collect();
    let mut features: Vec<Feature> = if with_partner { partner.to_vec() } else { Vec::new() };
    features.extend(items.iter().map(|i| Feature::Uses { item: i.clone() }));
    Person { features, items }
}

fn main() {
    let (people, seed): (usize, u64) = (arg("--people", 20_000), arg("--seed", 7));
    let mut rng = StdRng::seed_from_u64(seed);
    let population: Vec<(Person, Vec<Feature>)> = (0..people).map(|_| person(&mut rng)).collect();
    let split = people * 8 / 10;
    let started = std::time::Instant::now();
    let model = Model::train(population[..split].iter().map(|(p, _)| p));
    let trained = started.elapsed();

    println!("suggester offline evaluation: {people} synthetic people (seed {seed}), {split} train / {} held out", people - split);
    println!("{:<34} {:>12} {:>12}", "", "precision@1", "precision@3");
    for (name, kind) in [("popularity baseline", 0), ("model, use only (no partner data)", 1), ("model, partner data + use", 2)] {
        let (mut hits1, mut hits3, mut cases) = (0usize, 0usize, 0usize);
        let mut rng = StdRng::seed_from_u64(seed + 1);
        for (person, partner) in &population[split..] {
            if person.items.is_empty() {
                continue;
            }
            let mut items: Vec<String> = person.items.iter().cloned().collect();
            items.shuffle(&mut rng);
            let hidden: BTreeSet<String> = items.into_iter().take(person.items.len().div_ceil(2)).collect();
            let seen = observed(person, partner, &hidden, kind == 2);
            let ranked: Vec<String> = match kind {
                0 => model.popular(&seen, 3),
                _ => model.suggest(&seen, 3).into_iter().map(|s| s.item).collect(),
            };
            cases += 1;
            hits1 += ranked.iter().take(1).filter(|i| hidden.contains(*i)).count();
            hits3 += ranked.iter().take(3).filter(|i| hidden.contains(*i)).count();
        }
        println!("{name:<34} {:>12.3} {:>12.3}", hits1 as f64 / cases as f64, hits3 as f64 / (3 * cases) as f64);
    }
    println!("trained on {split} people in {:.1} ms", trained.as_secs_f64() * 1000.0);
}
