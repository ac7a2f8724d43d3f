//! Schema evolution: the version each event type is written in today, and the upcasters that
//! turn data stored in an older version into the current shape.
//!
//! Stored events are never rewritten (the log is append-only and hash-chained), so every reader
//! meets old shapes forever. [`Event::decode`](crate::Event::decode) runs the chain of upcasters
//! from the stored version up to the current one before deserializing, so projectors, rebuilds,
//! temporal reads, the audit log and the relays all see one shape per type. An upcaster is a
//! pure function of the old data: it may rename, restructure or derive fields, never look
//! anything up.
//!
//! To change a type's shape: bump its entry in [`current_version`], add the step from the
//! previous version to [`upcast_once`], and describe it in [`HISTORY`] (which the event
//! catalogue for consumers prints).

use serde_json::Value;

use crate::event::DecodeError;

/// One change of an event type's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaChange {
    pub event_type: &'static str,
    /// The version the change produced (upcast from `version - 1`).
    pub version: i32,
    pub what: &'static str,
}

/// Every shape change so far, oldest first.
pub const HISTORY: &[SchemaChange] = &[SchemaChange {
    event_type: "TenantCreated",
    version: 2,
    what: "adds `depth`, the number of ancestors (0 for a root); \
           upcast from version 1 as the length of `path`",
}];

/// The schema version new events of `event_type` are written in: the highest version
/// [`HISTORY`] names for it, else 1.
pub fn current_version(event_type: &str) -> i32 {
    HISTORY
        .iter()
        .filter(|c| c.event_type == event_type)
        .map(|c| c.version)
        .max()
        .unwrap_or(1)
}

/// Upcasts `data` of `event_type`, stored in schema `version`, to the current version.
/// A version from the future (written by a newer Plinth) or below 1 is an error, never a guess.
pub fn upcast(event_type: &str, version: i32, mut data: Value) -> Result<Value, DecodeError> {
    let current = current_version(event_type);
    if !(1..=current).contains(&version) {
        return Err(DecodeError::UnknownVersion {
            event_type: event_type.to_owned(),
            version,
        });
    }
    for from in version..current {
        data = upcast_once(event_type, from, data)?;
    }
    Ok(data)
}

/// One step: `data` of `event_type` at `from` → at `from + 1`.
fn upcast_once(event_type: &str, from: i32, data: Value) -> Result<Value, DecodeError> {
    match (event_type, from) {
        ("TenantCreated", 1) => tenant_created_v1_to_v2(data),
        _ => Err(DecodeError::UnknownVersion {
            event_type: event_type.to_owned(),
            version: from,
        }),
    }
}

/// TenantCreated v2 adds `depth`: the length of `path` (its ancestors, root first).
fn tenant_created_v1_to_v2(mut data: Value) -> Result<Value, DecodeError> {
    let depth = data
        .get("path")
        .and_then(Value::as_array)
        .map(Vec::len)
        .ok_or_else(|| DecodeError::Upcast {
            event_type: "TenantCreated".to_owned(),
            from: 1,
            reason: "`path` is missing or not an array".to_owned(),
        })?;
    if let Value::Object(fields) = &mut data {
        fields.insert("depth".to_owned(), depth.into());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tenant_created_v1_gains_its_depth() {
        let v1 = json!({"tenant_id": "t", "name": "n", "description": null,
                        "parent_id": "p", "path": ["r", "p"]});
        let v2 = upcast("TenantCreated", 1, v1).unwrap();
        assert_eq!(v2["depth"], json!(2));
        assert_eq!(v2["path"], json!(["r", "p"]));
    }

    #[test]
    fn current_data_passes_through_unchanged() {
        let data = json!({"tenant_id": "t"});
        assert_eq!(upcast("TenantDeleted", 1, data.clone()).unwrap(), data);
        let v2 = json!({"path": [], "depth": 0});
        assert_eq!(upcast("TenantCreated", 2, v2.clone()).unwrap(), v2);
    }

    #[test]
    fn versions_from_the_future_or_below_one_are_refused() {
        for (t, v) in [
            ("TenantCreated", 3),
            ("TenantDeleted", 2),
            ("TenantDeleted", 0),
        ] {
            assert!(
                matches!(upcast(t, v, json!({})), Err(DecodeError::UnknownVersion { version, .. }) if version == v),
                "{t} v{v}"
            );
        }
    }

    #[test]
    fn a_v1_without_its_path_is_a_clear_error() {
        let err = upcast("TenantCreated", 1, json!({"tenant_id": "t"})).unwrap_err();
        assert!(err.to_string().contains("`path`"), "{err}");
    }

    #[test]
    fn every_change_follows_the_previous_version() {
        for change in HISTORY {
            assert!(change.version >= 2);
            let earlier = HISTORY
                .iter()
                .filter(|c| c.event_type == change.event_type && c.version < change.version)
                .count() as i32;
            assert_eq!(earlier, change.version - 2, "{change:?}");
        }
    }
}
