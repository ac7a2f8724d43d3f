//! The consumer-facing event catalogue, generated from the Rust types so it cannot drift:
//! `docs/events.schema.json` (the JSON Schema of `plinth_domain::Event`) and the generated
//! part of `docs/events.md`. A test compares both with what the types generate;
//! `PLINTH_UPDATE_SCHEMA=1` rewrites them.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use plinth_domain::{upcast, Event};
use serde_json::Value;

const BEGIN: &str = "<!-- BEGIN GENERATED: event catalogue -->";
const END: &str = "<!-- END GENERATED: event catalogue -->";

const RESOURCE_TOPICS: &[&str] = &["tenants", "locations", "resource-providers", "providers"];

/// The topic suffixes an event type is published to, and the data field that holds its
/// stream id (the message key). Metadata events go wherever their resource's stream goes.
fn routing(event_type: &str) -> (&'static [&'static str], &'static str) {
    match event_type {
        "TenantCreated"
        | "TenantUpdated"
        | "TenantDeleted"
        | "TenantAccessGranted"
        | "TenantAccessRevoked" => (&["tenants"], "tenant_id"),
        "UserCreated" => (&["users"], "user_id"),
        "LocationCreated"
        | "LocationUpdated"
        | "LocationDeleted"
        | "LocationMadeAvailable"
        | "LocationAvailabilityRevoked" => (&["locations"], "location_id"),
        "ResourceProviderCreated"
        | "ResourceProviderUpdated"
        | "ResourceProviderDeleted"
        | "ResourceProviderMadeAvailable"
        | "ResourceProviderAvailabilityRevoked"
        | "ResourceProviderLocationAdded"
        | "ResourceProviderLocationRemoved"
        | "ProviderAuthorized"
        | "ProviderAuthorizationRevoked"
        | "ResourceProviderIdentityBound"
        | "ResourceProviderIdentityUnbound" => (&["resource-providers"], "resource_provider_id"),
        "ProviderRegistered" | "ProviderUnregistered" => (&["providers"], "provider_id"),
        "AnnotationSet" | "AnnotationRemoved" | "StatusSet" | "StatusRemoved"
        | "FinalizerAdded" | "FinalizerRemoved" | "DeletionRequested" => {
            (RESOURCE_TOPICS, "resource_id")
        }
        other => panic!(
            "event type {other} has no topic in the catalogue: add it to relay::catalogue::routing"
        ),
    }
}

/// Topic suffixes (after `<prefix>.`) that carry `event_type`.
pub fn topics_of_event_type(event_type: &str) -> &'static [&'static str] {
    routing(event_type).0
}

/// The JSON Schema of every event (`{"event_type": …, "data": {…}}`), pretty-printed.
pub fn event_schema_json() -> String {
    let mut schema = serde_json::to_value(schemars::schema_for!(Event)).expect("schemas serialize");
    // Versioned: each variant names the schema version its data is in (what a consumer sees in
    // `plinth_schema_version`), and the history lists how older versions differ.
    for variant in schema["oneOf"].as_array_mut().into_iter().flatten() {
        let name = variant["properties"]["event_type"]["enum"][0]
            .as_str()
            .map(str::to_owned);
        if let (Some(name), Some(fields)) = (name, variant.as_object_mut()) {
            fields.insert(
                "x-plinth-schema-version".to_owned(),
                upcast::current_version(&name).into(),
            );
        }
    }
    let history: Vec<Value> = upcast::HISTORY
        .iter()
        .map(|c| serde_json::json!({"event_type": c.event_type, "version": c.version, "change": c.what}))
        .collect();
    schema["x-plinth-schema-history"] = Value::Array(history);
    let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    text.push('\n');
    text
}

/// The generated part of `docs/events.md`: per event type its topic, key and data schema.
pub fn catalogue_markdown() -> String {
    let schema: Value = serde_json::from_str(&event_schema_json()).expect("valid JSON");
    let variants = schema["oneOf"]
        .as_array()
        .expect("Event is an enum of variants");
    let mut entries = Vec::new();
    for variant in variants {
        let name = variant["properties"]["event_type"]["enum"][0]
            .as_str()
            .expect("a tagged variant")
            .to_owned();
        entries.push((
            name,
            variant["description"].as_str().map(str::to_owned),
            variant["properties"]["data"].clone(),
        ));
    }
    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN}");
    out.push_str(
        "<!-- Generated from the Rust types by `cargo test -p plinth-tests --test it relay::the_event_catalogue`;\n     \
         run it with PLINTH_UPDATE_SCHEMA=1 to regenerate. Do not edit by hand. -->\n\n",
    );
    out.push_str(
        "## Event types\n\n| Event type | Schema version | Topic | Key (= `ce_subject`) |\n|---|---|---|---|\n",
    );
    for (name, _, _) in &entries {
        let (topics, key) = routing(name);
        let _ = writeln!(
            out,
            "| [`{name}`](#{}) | {} | {} | `{key}` |",
            name.to_lowercase(),
            upcast::current_version(name),
            topic_list(topics)
        );
    }
    for (name, description, data) in &entries {
        let (topics, key) = routing(name);
        let _ = writeln!(out, "\n### {name}\n");
        if let Some(description) = description {
            let _ = writeln!(out, "{description}\n");
        }
        let _ = writeln!(
            out,
            "Topic: {} · key: the `{key}` field · schema version {}.\n",
            topic_list(topics),
            upcast::current_version(name)
        );
        for change in upcast::HISTORY.iter().filter(|c| c.event_type == name) {
            let _ = writeln!(out, "- Version {}: {}.", change.version, change.what);
        }
        if upcast::HISTORY.iter().any(|c| c.event_type == name) {
            out.push('\n');
        }
        out.push_str("| Field | Type | Required | Description |\n|---|---|---|---|\n");
        let required: Vec<&str> = data["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (field, schema) in data["properties"].as_object().into_iter().flatten() {
            let _ = writeln!(
                out,
                "| `{field}` | {} | {} | {} |",
                type_of(schema),
                if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                one_line(schema["description"].as_str().unwrap_or(""))
            );
        }
        let _ = writeln!(
            out,
            "\n<details><summary>JSON Schema of the data</summary>\n\n```json\n{}\n```\n</details>",
            serde_json::to_string_pretty(data).expect("serializes")
        );
    }
    out.push_str("\n### Shared definitions\n\n| Type | JSON | Description |\n|---|---|---|\n");
    for (name, schema) in schema["definitions"].as_object().into_iter().flatten() {
        let json_type = match schema["type"].as_str() {
            Some(t) => t.to_owned(),
            None => enum_values(schema).unwrap_or_else(|| "see schema".to_owned()),
        };
        let _ = writeln!(
            out,
            "| <a id=\"def-{}\"></a>`{name}` | {json_type} | {} |",
            name.to_lowercase(),
            one_line(schema["description"].as_str().unwrap_or(""))
        );
    }
    let _ = writeln!(out, "\n{END}");
    out
}

/// A property's type in words, linking named types to the definitions table.
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[`{name}`](#def-{})", name.to_lowercase());
    }
    if let Some(any) = schema["anyOf"].as_array() {
        let parts: Vec<String> = any.iter().map(type_of).collect();
        return parts.join(" or ");
    }
    match schema["type"].as_str() {
        Some("array") => {
            let set = if schema["uniqueItems"] == Value::Bool(true) {
                "set"
            } else {
                "array"
            };
            format!("{set} of {}", type_of(&schema["items"]))
        }
        Some("string") if schema["format"].is_string() => {
            format!("string ({})", schema["format"].as_str().unwrap_or(""))
        }
        Some(t) => t.to_owned(),
        None => "see schema".to_owned(),
    }
}

/// `"a" | "b"` for enums of strings (e.g. roles).
fn enum_values(schema: &Value) -> Option<String> {
    let variants = schema["oneOf"].as_array()?;
    let values: Option<Vec<String>> = variants
        .iter()
        .map(|v| Some(format!("`\"{}\"`", v["enum"][0].as_str()?)))
        .collect();
    Some(values?.join(" \\| "))
}

fn one_line(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

fn topic_list(topics: &[&str]) -> String {
    topics
        .iter()
        .map(|t| format!("`<prefix>.{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `docs_dir/events.schema.json` and the generated part of `docs_dir/events.md`
/// against the types; with `update`, rewrites them instead.
pub fn check_docs(docs_dir: &Path, update: bool) -> anyhow::Result<()> {
    let schema_path = docs_dir.join("events.schema.json");
    let md_path = docs_dir.join("events.md");
    let schema = event_schema_json();
    let md = std::fs::read_to_string(&md_path)
        .with_context(|| format!("failed to read {}", md_path.display()))?;
    let (Some(begin), Some(end)) = (md.find(BEGIN), md.find(END)) else {
        anyhow::bail!("{} lacks the generated-section markers", md_path.display());
    };
    let end = end + END.len() + usize::from(md[end + END.len()..].starts_with('\n'));
    let generated = catalogue_markdown();
    if update {
        std::fs::write(&schema_path, &schema)?;
        std::fs::write(
            &md_path,
            format!("{}{generated}{}", &md[..begin], &md[end..]),
        )?;
        return Ok(());
    }
    let stored = std::fs::read_to_string(&schema_path).unwrap_or_default();
    anyhow::ensure!(
        stored == schema,
        "{} does not match the Rust types; regenerate with PLINTH_UPDATE_SCHEMA=1",
        schema_path.display()
    );
    anyhow::ensure!(
        md[begin..end] == generated,
        "the generated part of {} does not match the Rust types; regenerate with PLINTH_UPDATE_SCHEMA=1",
        md_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_a_topic_and_its_key_field_in_its_data() {
        let schema: Value = serde_json::from_str(&event_schema_json()).unwrap();
        let variants = schema["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), Event::TYPES.len());
        for variant in variants {
            let name = variant["properties"]["event_type"]["enum"][0]
                .as_str()
                .unwrap();
            assert!(Event::TYPES.contains(&name));
            let (topics, key) = routing(name);
            assert!(!topics.is_empty());
            assert!(
                variant["properties"]["data"]["properties"]
                    .get(key)
                    .is_some(),
                "{name} lacks {key}"
            );
        }
    }
}
