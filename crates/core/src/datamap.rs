//! The data map check: the live database schema against the policy declarations. Every table must
//! be classified; every column of a personal table must be a declared field or a declared
//! technical column; every declared column must exist; and every field of an implemented
//! capability must be stored somewhere. This keeps each new table and column honest.

use std::collections::{HashMap, HashSet};

use passme_policy::Policy;
use passme_store::TableSchema;

/// Problems found, as sentences; empty when schema and declarations agree.
pub fn check(policy: &Policy, schema: &[TableSchema], implemented: &dyn Fn(passme_policy::Capability) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    let live: HashMap<&str, HashSet<&str>> =
        schema.iter().map(|t| (t.name.as_str(), t.columns.iter().map(String::as_str).collect())).collect();
    let mut mapped: HashSet<(String, String)> = HashSet::new();
    for (category, field) in policy.fields() {
        let fid = field.id.get_ref();
        let capability = policy.field_capability(category, field);
        if field.columns.is_empty() && implemented(capability) {
            problems.push(format!("field {fid} belongs to the implemented capability {} but maps to no column", capability.id()));
        }
        for column in &field.columns {
            let Some((table, col)) = column.get_ref().split_once('.') else { continue };
            mapped.insert((table.to_string(), col.to_string()));
            match live.get(table) {
                Some(cols) if !cols.contains(col) => problems.push(format!("field {fid} maps to {table}.{col}, which does not exist")),
                None if implemented(capability) => {
                    problems.push(format!("field {fid} maps to {table}.{col}, but table {table} does not exist"))
                }
                _ => {}
            }
        }
    }
    for table in schema {
        let Some(declared) = policy.table(&table.name) else {
            problems.push(format!("table {} is not classified in the policy declarations ([[tables]])", table.name));
            continue;
        };
        if !declared.personal {
            continue;
        }
        let technical: HashSet<&str> = declared.technical.iter().map(|c| c.get_ref().as_str()).collect();
        for column in &table.columns {
            if !technical.contains(column.as_str()) && !mapped.contains(&(table.name.clone(), column.clone())) {
                problems.push(format!("column {}.{column} can hold personal data but is mapped to no declared field (map it in a field's columns, or list it as technical)", table.name));
            }
        }
        for column in &technical {
            if !table.columns.iter().any(|c| c == column) {
                problems.push(format!("technical column {}.{column} is declared but does not exist", table.name));
            }
        }
    }
    problems
}
