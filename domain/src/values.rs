//! Validated value types. Each has `parse` and no constructor that skips validation, so a value
//! that exists is a value that is valid; serde goes through `parse` too.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("name must be 1 to 255 characters after trimming")]
    Name,
    #[error("description must be at most 4096 characters")]
    Description,
    #[error("`{0}` is not a scope (expected `<resource>:<action>` or `<resource>:*`)")]
    Scope(String),
    #[error("`{0}` is not a qualified name (expected `[dns-subdomain/]name`, name ≤ 63 chars)")]
    QualifiedName(String),
    #[error("annotation value must be at most 65536 bytes")]
    AnnotationValue,
    #[error("status data must be a JSON object of at most 65536 bytes")]
    StatusData,
    #[error("`{0}` is not a role (expected viewer, editor or admin)")]
    Role(String),
    #[error("{0} must not contain the NUL character (U+0000)")]
    Nul(&'static str),
    #[error("an identity's issuer and subject must each be 1 to 1024 characters, not blank, without control characters")]
    IdentityPart,
}

/// Text PostgreSQL cannot store: it refuses U+0000 in `text` and `jsonb`. Refused up front, so
/// that such a value is a 400 and never a failed write (or an event no projector can apply).
/// No stored event can hold it (every write of one failed), so events still decode.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// True when a string anywhere in `value` (keys included) holds U+0000.
fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => has_nul(s),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| has_nul(k) || json_has_nul(v)),
        _ => false,
    }
}

macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// A display name: 1–255 characters once trimmed, without U+0000; stored trimmed. (Other
/// control characters stay allowed: names in logs written before would otherwise no longer
/// decode.)
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let trimmed = s.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > 255 {
            return Err(ValueError::Name);
        }
        if has_nul(trimmed) {
            return Err(ValueError::Nul("name"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The key under which sibling names must be unique: case-insensitive.
    pub fn uniqueness_key(&self) -> String {
        self.0.to_lowercase()
    }
}
string_value!(Name);

/// Free text, at most 4096 characters (newlines and tabs welcome, U+0000 not).
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

impl Description {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        if s.chars().count() > 4096 {
            return Err(ValueError::Description);
        }
        if has_nul(s) {
            return Err(ValueError::Nul("description"));
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(Description);

fn is_scope_word(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// `<resource>:<action>` or `<resource>:*`, lowercase words (`loadbalancer:*`, `network:read`).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::Scope(s.chars().take(64).collect());
        let (resource, action) = s.split_once(':').ok_or_else(bad)?;
        if !is_scope_word(resource) || !(action == "*" || is_scope_word(action)) {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn resource(&self) -> &str {
        self.0.split_once(':').expect("validated").0
    }

    pub fn action(&self) -> &str {
        self.0.split_once(':').expect("validated").1
    }

    /// `x:*` covers every `x:…`; otherwise only itself.
    pub fn covers(&self, other: &Scope) -> bool {
        self == other || (self.action() == "*" && self.resource() == other.resource())
    }
}
string_value!(Scope);

/// True when some scope of `granted` covers `wanted`.
pub fn scopes_cover(granted: &BTreeSet<Scope>, wanted: &Scope) -> bool {
    granted.iter().any(|g| g.covers(wanted))
}

/// A Kubernetes-style qualified name: an optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric
/// (`example.com/owner`, `plinth.io/protect`). Used for annotation keys, status sources and
/// finalizers.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct QualifiedName(String);

fn is_k8s_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

impl QualifiedName {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let valid = match s.split_once('/') {
            Some((prefix, name)) => is_dns_subdomain(prefix) && is_k8s_name(name),
            None => is_k8s_name(s),
        };
        if !valid {
            return Err(ValueError::QualifiedName(s.chars().take(64).collect()));
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(QualifiedName);

/// An issuer (`iss`) or a subject (`sub`) of the tokens a resource provider signs in with,
/// exactly as the token carries them: 1–1024 characters, not blank, without control characters
/// (the rules a token's subject passes at authentication, so a bound identity can match one).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct IdentityPart(String);

impl IdentityPart {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        if s.trim().is_empty() || s.chars().count() > 1024 || s.chars().any(char::is_control) {
            return Err(ValueError::IdentityPart);
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(IdentityPart);

/// An annotation's value: any string up to 64 KiB without U+0000.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct AnnotationValue(String);

impl AnnotationValue {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        if s.len() > 65_536 {
            return Err(ValueError::AnnotationValue);
        }
        if has_nul(s) {
            return Err(ValueError::Nul("annotation value"));
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(AnnotationValue);

/// A status: a JSON object up to 64 KiB when serialized, without U+0000 in any string.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub struct StatusData(serde_json::Map<String, serde_json::Value>);

impl StatusData {
    pub fn parse(value: serde_json::Value) -> Result<Self, ValueError> {
        match value {
            serde_json::Value::Object(map) => {
                let size = serde_json::to_vec(&map)
                    .map_err(|_| ValueError::StatusData)?
                    .len();
                if size > 65_536 {
                    return Err(ValueError::StatusData);
                }
                if map.iter().any(|(k, v)| has_nul(k) || json_has_nul(v)) {
                    return Err(ValueError::Nul("status data"));
                }
                Ok(Self(map))
            }
            _ => Err(ValueError::StatusData),
        }
    }

    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }
}

impl TryFrom<serde_json::Value> for StatusData {
    type Error = ValueError;
    fn try_from(v: serde_json::Value) -> Result<Self, Self::Error> {
        Self::parse(v)
    }
}

impl From<StatusData> for serde_json::Value {
    fn from(v: StatusData) -> Self {
        serde_json::Value::Object(v.0)
    }
}

/// A user's role on a tenant; each role includes the ones before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads a tenant subtree and its resources.
    Viewer,
    /// Also creates, updates and deletes locations, resource providers, providers, metadata
    /// and availability.
    Editor,
    /// Also manages sub-tenants, access grants and resource provider authorizations.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "editor" => Ok(Self::Editor),
            "admin" => Ok(Self::Admin),
            other => Err(ValueError::Role(other.chars().take(32).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Sarah Corp ").unwrap().as_str(), "Sarah Corp");
        assert_eq!(Name::parse("   "), Err(ValueError::Name));
        assert!(Name::parse(&"é".repeat(255)).is_ok());
        assert_eq!(Name::parse(&"x".repeat(256)), Err(ValueError::Name));
        assert_eq!(Name::parse("Prod").unwrap().uniqueness_key(), "prod");
    }

    /// PostgreSQL refuses U+0000 in text and jsonb: such a value must be refused here (a 400),
    /// never reach a write (a 500) or an event no projector could apply.
    #[test]
    fn text_postgresql_cannot_store_is_refused() {
        assert_eq!(Name::parse("a\u{0}b"), Err(ValueError::Nul("name")));
        assert_eq!(
            Description::parse("x\u{0}"),
            Err(ValueError::Nul("description"))
        );
        assert!(Description::parse("two\nlines\tand a tab").is_ok());
        assert_eq!(
            AnnotationValue::parse("\u{0}"),
            Err(ValueError::Nul("annotation value"))
        );
        for nested in [
            serde_json::json!({"a": "\u{0}"}),
            serde_json::json!({"a\u{0}": 1}),
            serde_json::json!({"a": [{"b": ["\u{0}"]}]}),
        ] {
            assert_eq!(
                StatusData::parse(nested),
                Err(ValueError::Nul("status data"))
            );
        }
        assert!(StatusData::parse(serde_json::json!({"a": ["ok", {"b": 1}]})).is_ok());
    }

    #[test]
    fn wildcard_scopes_cover_their_resource_only() {
        let all_lb = Scope::parse("loadbalancer:*").unwrap();
        assert!(all_lb.covers(&Scope::parse("loadbalancer:create").unwrap()));
        assert!(!all_lb.covers(&Scope::parse("network:read").unwrap()));
        let read = Scope::parse("network:read").unwrap();
        assert!(read.covers(&read));
        assert!(!read.covers(&Scope::parse("network:write").unwrap()));
    }

    #[test]
    fn qualified_names_follow_kubernetes() {
        for ok in ["owner", "example.com/owner", "plinth.io/protect", "a.b-c_d"] {
            assert!(QualifiedName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/x",
            "Example.com/x",
            "x/",
            "-x",
            "a/b/c",
            &"x".repeat(64),
        ] {
            assert!(QualifiedName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_data_must_be_an_object() {
        assert!(StatusData::parse(serde_json::json!({"ready": true})).is_ok());
        assert!(StatusData::parse(serde_json::json!([1])).is_err());
        let huge = "x".repeat(70_000);
        assert!(StatusData::parse(serde_json::json!({ "x": huge })).is_err());
    }

    proptest! {
        #[test]
        fn scope_parse_accepts_exactly_the_grammar(s in "[a-z0-9:*_-]{0,12}") {
            let grammar = s.split_once(':').is_some_and(|(r, a)| {
                is_scope_word(r) && (a == "*" || is_scope_word(a))
            });
            prop_assert_eq!(Scope::parse(&s).is_ok(), grammar);
        }

        #[test]
        fn scopes_round_trip_through_json(r in "[a-z][a-z0-9_-]{0,10}", a in "[a-z][a-z0-9]{0,8}|\\*") {
            let scope = Scope::parse(&format!("{r}:{a}")).unwrap();
            let json = serde_json::to_string(&scope).unwrap();
            prop_assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        }

        #[test]
        fn a_scope_covers_itself_and_wildcards_cover_all_actions(r in "[a-z]{1,8}", a in "[a-z]{1,8}") {
            let exact = Scope::parse(&format!("{r}:{a}")).unwrap();
            let wild = Scope::parse(&format!("{r}:*")).unwrap();
            prop_assert!(exact.covers(&exact));
            prop_assert!(wild.covers(&exact));
            prop_assert!(!exact.covers(&wild));
        }
    }
}
