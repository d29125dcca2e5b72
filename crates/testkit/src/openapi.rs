//! Checks answers against the OpenAPI document: is the status documented for the operation, is
//! the content type one it names, and does the body fit the schema. The schema check covers the
//! JSON Schema that utoipa writes (`$ref`, `type` with `null`, `properties` and `required`,
//! `items`, `oneOf`/`anyOf`/`allOf`, `enum`, `additionalProperties`, length, size and range
//! bounds) and is strict about objects: a property the schema does not name is an error, since
//! an undocumented field is a drift between the API and its document.

use serde_json::Value;

use crate::TestResponse;

/// The documented operation for `method` and a documented path template (`/api/v1/sessions/{id}`).
pub fn operation<'a>(doc: &'a Value, method: &str, template: &str) -> Result<&'a Value, String> {
    doc.pointer(&format!("/paths/{}/{}", template.replace('~', "~0").replace('/', "~1"), method.to_ascii_lowercase()))
        .ok_or_else(|| format!("{method} {template} is not in the document"))
}

/// Whether `response` is what the document promises for `method template`.
pub fn check_response(doc: &Value, method: &str, template: &str, response: &TestResponse) -> Result<(), String> {
    let op = operation(doc, method, template)?;
    let status = response.status.as_u16().to_string();
    let documented = op.pointer(&format!("/responses/{status}")).ok_or_else(|| {
        format!("{method} {template} answered {status}, which is not documented: {}", response.text().chars().take(300).collect::<String>())
    })?;
    let Some(content) = documented.get("content").and_then(Value::as_object).filter(|c| !c.is_empty()) else {
        return if response.body.is_empty() {
            Ok(())
        } else {
            Err(format!("{method} {template} {status}: documented without a body, answered {}", response.text()))
        };
    };
    let content_type = response.header("content-type").unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let media = content.get(essence).ok_or_else(|| {
        format!("{method} {template} {status}: content type {content_type:?} is not among {:?}", content.keys().collect::<Vec<_>>())
    })?;
    let schema = media.get("schema").ok_or_else(|| format!("{method} {template} {status} {essence}: no schema"))?;
    let value = if essence.contains("json") {
        serde_json::from_slice(&response.body).map_err(|e| format!("{method} {template} {status}: not JSON ({e})"))?
    } else {
        Value::String(response.text())
    };
    validate(doc, schema, &value, "$").map_err(|e| format!("{method} {template} {status}: {e}"))
}

/// Whether `value` fits `schema`; the error names the first place it does not.
pub fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    check(doc, schema, value, at, true)
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value, at: &str) -> Result<&'a Value, String> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = reference.strip_prefix('#').and_then(|p| doc.pointer(p)).ok_or_else(|| format!("{at}: dangling {reference}"))?;
            resolve(doc, target, at)
        }
        None => Ok(schema),
    }
}

/// The property names an object schema knows, its `allOf` parts' included; `None` when it
/// accepts any (no `properties` anywhere, or `additionalProperties`).
fn known_properties(doc: &Value, schema: &Value) -> Option<Vec<String>> {
    let schema = resolve(doc, schema, "").ok()?;
    if schema.get("additionalProperties").is_some_and(|a| a != &Value::Bool(false)) {
        return None;
    }
    let mut names: Vec<String> =
        schema.get("properties").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default();
    let parts = schema.get("allOf").and_then(Value::as_array);
    if parts.is_none() && schema.get("properties").is_none() {
        return None;
    }
    for part in parts.into_iter().flatten() {
        names.extend(known_properties(doc, part)?);
    }
    Some(names)
}

/// `strict`: a property the schema does not know is an error. Off for the parts of an `allOf`,
/// each of which knows only its share; the whole checks the union.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, strict: bool) -> Result<(), String> {
    let schema = resolve(doc, schema, at)?;
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            check(doc, part, value, at, false)?;
        }
        if strict
            && let (Some(map), Some(known)) = (value.as_object(), known_properties(doc, schema))
            && let Some(extra) = map.keys().find(|k| !known.contains(k))
        {
            return Err(format!("{at}.{extra}: not in the schema"));
        }
    }
    for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let fits = options.iter().filter(|o| check(doc, o, value, at, strict).is_ok()).count();
            if fits == 0 || (exactly_one && fits > 1) {
                return Err(format!("{at}: {fits} of the {key} alternatives fit {}", short(value)));
            }
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {} is not one of {allowed:?}", short(value)));
    }
    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !names.iter().any(|t| type_fits(t, value)) {
            return Err(format!("{at}: expected {names:?}, got {}", short(value)));
        }
    }
    check_bounds(schema, value, at)?;
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    return Err(format!("{at}: the required property {name:?} is missing"));
                }
            }
            for (name, item) in map {
                let path = format!("{at}.{name}");
                match (properties.and_then(|p| p.get(name)), schema.get("additionalProperties")) {
                    (Some(property), _) => validate(doc, property, item, &path)?,
                    (None, Some(Value::Bool(true))) => {}
                    (None, Some(extra @ Value::Object(_))) => validate(doc, extra, item, &path)?,
                    (None, _) if strict && properties.is_some() => return Err(format!("{path}: not in the schema")),
                    (None, _) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(doc, item_schema, item, &format!("{at}[{i}]"))?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn type_fits(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

fn check_bounds(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let size = match value {
        Value::String(s) => Some((s.chars().count() as f64, "minLength", "maxLength")),
        Value::Array(a) => Some((a.len() as f64, "minItems", "maxItems")),
        _ => None,
    };
    if let Some((n, min, max)) = size
        && (bound(min).is_some_and(|b| n < b) || bound(max).is_some_and(|b| n > b))
    {
        return Err(format!("{at}: size {n} outside [{:?}, {:?}]", bound(min), bound(max)));
    }
    if let Some(n) = value.as_f64()
        && (bound("minimum").is_some_and(|b| n < b) || bound("maximum").is_some_and(|b| n > b))
    {
        return Err(format!("{at}: {n} outside [{:?}, {:?}]", bound("minimum"), bound("maximum")));
    }
    Ok(())
}

fn short(value: &Value) -> String {
    value.to_string().chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::validate;

    #[test]
    fn the_validator_refuses_what_does_not_fit() {
        let doc = json!({ "components": { "schemas": {
            "Pet": { "type": "object", "required": ["name"], "properties": {
                "name": { "type": "string", "minLength": 1 },
                "age": { "type": ["integer", "null"], "minimum": 0 },
                "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 2 },
            } }
        } } });
        let pet = json!({ "$ref": "#/components/schemas/Pet" });
        assert!(validate(&doc, &pet, &json!({ "name": "Rex", "age": null, "tags": ["a"] }), "$").is_ok());
        for bad in [
            json!({ "age": 3 }),
            json!({ "name": "" }),
            json!({ "name": "Rex", "age": -1 }),
            json!({ "name": "Rex", "age": "3" }),
            json!({ "name": "Rex", "tags": ["a", "b", "c"] }),
            json!({ "name": "Rex", "colour": "brown" }),
            json!("Rex"),
        ] {
            assert!(validate(&doc, &pet, &bad, "$").is_err(), "{bad}");
        }
        let flattened = json!({ "allOf": [pet.clone(), { "type": "object", "properties": { "owner": { "type": "string" } } }] });
        assert!(validate(&doc, &flattened, &json!({ "name": "Rex", "owner": "Ola" }), "$").is_ok(), "each part knows its share");
        assert!(validate(&doc, &flattened, &json!({ "name": "Rex", "vet": "Kim" }), "$").is_err(), "the whole knows no more");
        let either = json!({ "oneOf": [pet.clone(), { "type": "array", "items": pet }] });
        assert!(validate(&doc, &either, &json!([{ "name": "A" }, { "name": "B" }]), "$").is_ok());
        assert!(validate(&doc, &either, &json!(42), "$").is_err());
    }
}
