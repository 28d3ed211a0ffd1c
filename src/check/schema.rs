//! The per-object checks, offline: the CRD's structural schema (with the API server's wording),
//! its CEL rules (kube's client-side CEL validator) and object metadata.

use std::collections::BTreeMap;

use kube::core::cel::Validator;
use serde_json::Value;

use super::Severity;

/// The OpenAPI schema of each roster kind (by kind), as served.
pub(super) fn schemas() -> BTreeMap<String, Value> {
    crate::crds::all()
        .into_iter()
        .filter_map(|(_, crd)| {
            let kind = crd.spec.names.kind.clone();
            let schema = crd
                .spec
                .versions
                .iter()
                .find(|v| v.name == crate::api::VERSION)?
                .schema
                .as_ref()?
                .open_api_v3_schema
                .as_ref()?;
            Some((kind, serde_json::to_value(schema).ok()?))
        })
        .collect()
}

/// The per-object checks; `object` comes back with schema defaults applied and without `status`.
pub(super) fn validate_object(
    validator: &Validator,
    schema: &Value,
    object: &mut Value,
) -> Vec<(Severity, String, String)> {
    let mut problems = Vec::new();
    if let Some(o) = object.as_object_mut()
        && o.remove("status").is_some()
    {
        problems.push((
            Severity::Warning,
            "status".to_string(),
            "status is ignored when an object is applied; the operator computes it".to_string(),
        ));
    }
    match object.pointer("/metadata/name").and_then(Value::as_str) {
        None => problems.push((
            Severity::Error,
            "metadata".into(),
            "metadata.name: Required value".into(),
        )),
        Some(name) if !dns_subdomain(name) => problems.push((
            Severity::Error,
            "metadata".into(),
            format!(
                "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        )),
        _ => {}
    }
    if let Some(ns) = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        && !(dns_label(ns))
    {
        problems.push((
            Severity::Error,
            "metadata".into(),
            format!("metadata.namespace: Invalid value: {ns:?}: a lowercase RFC 1123 label must be at most 63 characters of lower case alphanumerics or '-', starting and ending with an alphanumeric"),
        ));
    }
    prune_nulls(schema, object);
    let mut structural = Vec::new();
    validate_schema(schema, object, "", &mut structural);
    problems.extend(
        structural
            .into_iter()
            .map(|(rule, message)| (Severity::Error, format!("schema/{rule}"), message)),
    );
    if let Err(errors) = validator.validate(schema, object, None) {
        for e in errors.iter() {
            // roster's CEL messages name their field already.
            let message = if e.field_path.is_empty() || e.message.starts_with(&e.field_path) {
                e.message.clone()
            } else {
                e.to_string()
            };
            problems.push((Severity::Error, "cel".into(), message));
        }
    }
    *object = kube::core::cel::apply_defaults(schema, object);
    problems
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// The API server drops `null` values of fields that are not nullable before it validates.
fn prune_nulls(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            map.retain(|k, v| {
                let sub = props.and_then(|p| p.get(k)).or(additional);
                !v.is_null() || sub.is_some_and(|s| s["nullable"] == Value::Bool(true))
            });
            for (k, v) in map.iter_mut() {
                if let Some(sub) = props.and_then(|p| p.get(k)).or(additional) {
                    prune_nulls(sub, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for v in items {
                    prune_nulls(sub, v);
                }
            }
        }
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join_path(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// What kube's CEL validator leaves out: the structural schema, with the API server's wording.
fn validate_schema(schema: &Value, value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let shown = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        return;
    }
    if !type_matches(schema, value, shown, out) {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        out.push((
            "enum".into(),
            format!(
                "{shown}: Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        ));
    }
    match value {
        Value::Object(map) => validate_fields(schema, map, path, out),
        Value::Array(items) => validate_items(schema, items, path, shown, out),
        Value::String(s) => validate_length(schema, s, shown, out),
        Value::Number(n) => validate_number(schema, n, shown, out),
        _ => {}
    }
}

/// Whether `value` has the schema's `type` (an integer is a number); says so when it has not.
fn type_matches(
    schema: &Value,
    value: &Value,
    shown: &str,
    out: &mut Vec<(String, String)>,
) -> bool {
    let Some(t) = schema.get("type").and_then(Value::as_str) else {
        return true;
    };
    let actual = json_type(value);
    let ok = actual == t || (t == "number" && actual == "integer");
    if !ok {
        out.push((
            "type".into(),
            format!(
                "{shown}: Invalid value: \"{actual}\": {shown} in body must be of type {t}: \"{actual}\""
            ),
        ));
    }
    ok
}

/// An object's fields: `required`, unknown fields, and each field against its own schema.
fn validate_fields(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<(String, String)>,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                out.push((
                    "required".into(),
                    format!("{}: Required value", join_path(path, r)),
                ));
            }
        }
    }
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for (k, v) in map {
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue; // implicit in every CRD, validated by the API server itself
        }
        let sub_path = join_path(path, k);
        match props.and_then(|p| p.get(k)).or(additional) {
            Some(sub) => validate_schema(sub, v, &sub_path, out),
            None if props.is_some() && !preserve => out.push((
                "unknownField".into(),
                format!("unknown field \"{sub_path}\": the {} schema does not declare it (check the spelling and indentation)", if path.is_empty() { "object's" } else { "field's" }),
            )),
            None => {}
        }
    }
}

/// An array's `minItems`/`maxItems`, and each item against `items`.
fn validate_items(
    schema: &Value,
    items: &[Value],
    path: &str,
    shown: &str,
    out: &mut Vec<(String, String)>,
) {
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        out.push((
            "minItems".into(),
            format!("{shown} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && (items.len() as u64) > max
    {
        out.push((
            "maxItems".into(),
            format!(
                "{shown}: Too many: {}: must have at most {max} items",
                items.len()
            ),
        ));
    }
    if let Some(sub) = schema.get("items") {
        for (i, v) in items.iter().enumerate() {
            validate_schema(sub, v, &format!("{path}[{i}]"), out);
        }
    }
}

/// A string's `minLength`/`maxLength`, in characters.
fn validate_length(schema: &Value, s: &str, shown: &str, out: &mut Vec<(String, String)>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        out.push((
            "minLength".into(),
            format!("{shown} in body should be at least {min} chars long"),
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        out.push((
            "maxLength".into(),
            format!("{shown}: Too long: may not be more than {max} characters"),
        ));
    }
}

/// A number's `minimum`/`maximum` and `int32` format.
fn validate_number(
    schema: &Value,
    n: &serde_json::Number,
    shown: &str,
    out: &mut Vec<(String, String)>,
) {
    let x = n.as_f64().unwrap_or_default();
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && x < min
    {
        out.push((
            "minimum".into(),
            format!("{shown} in body should be greater than or equal to {min}"),
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && x > max
    {
        out.push((
            "maximum".into(),
            format!("{shown} in body should be less than or equal to {max}"),
        ));
    }
    let int32 = schema.get("format").and_then(Value::as_str) == Some("int32");
    if int32 && n.as_i64().is_none_or(|i| i32::try_from(i).is_err()) {
        out.push((
            "format".into(),
            format!("{shown} in body must be a 32-bit integer"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_schema_errors_read_like_the_api_servers() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": { "type": "string", "enum": ["owner", "member"] },
                "n": { "type": "integer", "minimum": 1.0, "format": "int32" },
                "list": { "type": "array", "maxItems": 1, "items": { "type": "string", "maxLength": 2 } }
            }
        });
        let mut out = Vec::new();
        validate_schema(
            &schema,
            &serde_json::json!({ "role": "boss", "n": 0, "list": ["abc", "d"], "extra": 1 }),
            "spec",
            &mut out,
        );
        let mut rules: Vec<&str> = out.iter().map(|(r, _)| r.as_str()).collect();
        rules.sort();
        assert_eq!(
            rules,
            ["enum", "maxItems", "maxLength", "minimum", "unknownField"]
        );
        assert!(
            out.iter()
                .any(|(_, m)| m.contains("spec.role: Unsupported value: \"boss\""))
        );
        let mut out = Vec::new();
        validate_schema(&schema, &serde_json::json!({}), "spec", &mut out);
        assert_eq!(out[0].1, "spec.role: Required value");
    }
}
