//! Examples for the bodies of a document that carry none: composed from the examples their
//! schemas' fields carry (or, lacking those, a value of the field's type), so the `/docs` page
//! shows an example of every request and answer.

use serde_json::{Map, Value};

use super::ids;

/// Gives every request and answer body without an example one built from its schema.
pub(super) fn fill_examples(operation: &mut Value, schemas: &Value) {
    let fill = |content: &mut Value| {
        for media in content
            .as_object_mut()
            .into_iter()
            .flat_map(|c| c.values_mut())
        {
            if media["example"].is_null() {
                if let Some(example) = example_of(&media["schema"], schemas, 0) {
                    media["example"] = example;
                }
            }
        }
    };
    // `get_mut`, not indexing: indexing a missing key would add it.
    if let Some(content) = operation
        .get_mut("requestBody")
        .and_then(|body| body.get_mut("content"))
    {
        fill(content);
    }
    if let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    {
        for content in responses.values_mut().filter_map(|r| r.get_mut("content")) {
            fill(content);
        }
    }
}

/// An example of `schema`: its own, or one composed from its parts' examples.
pub(super) fn example_of(schema: &Value, schemas: &Value, depth: usize) -> Option<Value> {
    if depth > 12 {
        return None;
    }
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next()?;
        return example_of(&schemas[name], schemas, depth + 1);
    }
    if let Some(example) = schema.get("example").filter(|e| !e.is_null()) {
        return Some(example.clone());
    }
    if let Some(example) = schema["examples"].as_array().and_then(|e| e.first()) {
        return Some(example.clone());
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(options) = schema[combinator].as_array() {
            return options
                .iter()
                .filter_map(|o| example_of(o, schemas, depth + 1))
                .find(|e| !e.is_null());
        }
    }
    if let Some(parts) = schema["allOf"].as_array() {
        let mut merged = Map::new();
        for part in parts {
            match example_of(part, schemas, depth + 1) {
                Some(Value::Object(fields)) => merged.extend(fields),
                Some(other) if parts.len() == 1 => return Some(other),
                _ => {}
            }
        }
        return Some(Value::Object(merged));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ if schema["properties"].is_object() => vec!["object"],
        _ => vec![],
    };
    let kind = types
        .iter()
        .find(|t| **t != "null")
        .copied()
        .or(types.first().copied())?;
    Some(match kind {
        "object" => {
            let mut fields = Map::new();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    if let Some(example) = example_of(property, schemas, depth + 1) {
                        fields.insert(name.clone(), example);
                    }
                }
            } else if schema["additionalProperties"].is_object() {
                let value = example_of(&schema["additionalProperties"], schemas, depth + 1)?;
                fields.insert("key".to_owned(), value);
            }
            Value::Object(fields)
        }
        "array" => Value::Array(
            example_of(&schema["items"], schemas, depth + 1)
                .into_iter()
                .collect(),
        ),
        "string" => match schema["format"].as_str() {
            Some("uuid") => ids::SKU.into(),
            Some("date-time") => "2026-11-21T10:00:00Z".into(),
            _ => schema["enum"]
                .as_array()
                .and_then(|e| e.first())
                .cloned()
                .unwrap_or_else(|| "text".into()),
        },
        "integer" => 1.into(),
        "number" => 1.5.into(),
        "boolean" => false.into(),
        _ => Value::Null,
    })
}
