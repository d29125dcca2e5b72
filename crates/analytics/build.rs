//! Converts the vendored uap-core `regexes.yaml` to JSON once, so the binary parses it with the
//! JSON parser it already has instead of carrying a YAML parser.

use std::path::PathBuf;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::String(i.to_string()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(map) => Value::Object(map.iter().filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), to_json(v)))).collect()),
        _ => Value::Null,
    }
}

fn main() {
    let source = "data/uap-core/regexes.yaml";
    println!("cargo::rerun-if-changed={source}");
    let text = std::fs::read_to_string(source).expect("the vendored uap-core regexes.yaml is readable");
    let docs = YamlLoader::load_from_str(&text).expect("uap-core regexes.yaml is valid YAML");
    let json = to_json(docs.first().expect("regexes.yaml holds one document"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("uap-regexes.json");
    std::fs::write(out, serde_json::to_string(&json).expect("JSON serialises")).expect("OUT_DIR is writable");
}
