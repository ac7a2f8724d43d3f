//! Infratographer-compatible prefixed identifiers (`<prefix>-<21 url-safe chars>`; a user id's
//! body is 21 or 43 characters, see [`UserId`]).
//!
//! New identifiers are derived from a UUIDv7 and encoded with an alphabet whose characters sort
//! in ASCII order, so identifiers created later sort later: inserts stay at the right edge of
//! B-tree indexes instead of scattering over them.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Characters after the prefix.
pub const ID_BODY_LEN: usize = 21;

/// Characters after the prefix of a user id as identity-api derives it: a whole SHA-256 digest
/// in unpadded base64url (docs/adr/0014-identity-api-user-ids.md).
pub const USER_ID_BODY_LEN: usize = 43;

/// The url-safe base64 characters in ASCII order: encoding with them preserves numeric order.
const SORTABLE_ALPHABET: &[u8; 64] =
    b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "`{0}` is not a prefixed id (expected `<prefix>-<21 url-safe characters>`, \
         or 21 or 43 for a user id `idntusr-…`)"
    )]
    Malformed(String),
    #[error("`{id}` has prefix `{found}`, expected `{expected}`")]
    WrongPrefix {
        id: String,
        found: String,
        expected: &'static str,
    },
    #[error("`{0}` does not name a resource that carries metadata")]
    UnknownKind(String),
}

/// The first character of every new identifier's body (docs/adr/0013-gidx-like-ids.md). Bodies
/// used to start with the alphabet's `-` (the top bits of the millisecond timestamp are zero for
/// centuries), giving ids like `tnntten--P7l…` that do not read like gidx ones; `1` is
/// alphanumeric and sorts after `-`, so every new id still sorts after every older one.
pub const BODY_VERSION: char = '1';

/// Encodes a UUIDv7 into 21 sortable characters: [`BODY_VERSION`], then 120 bits — the 48-bit
/// millisecond timestamp, the 12 bits of `rand_a` and the top 60 of `rand_b` (where the `uuid`
/// crate keeps its per-millisecond counter), in that order, so later ids sort later.
fn encode_uuid_v7(uuid: uuid::Uuid) -> String {
    let raw = uuid.as_u128();
    // Layout: 48-bit ms timestamp | 4 version bits | 12 rand_a | 2 variant bits | 62 rand_b.
    let timestamp = raw >> 80;
    let rand_a = (raw >> 64) & 0xfff;
    let rand_b = raw & ((1u128 << 62) - 1);
    let packed: u128 = (timestamp << 72) | (rand_a << 60) | (rand_b >> 2); // 120 bits
    let chars = ID_BODY_LEN - 1;
    std::iter::once(BODY_VERSION)
        .chain((0..chars).map(|i| {
            let shift = 6 * (chars - 1 - i);
            SORTABLE_ALPHABET[((packed >> shift) & 0x3f) as usize] as char
        }))
        .collect()
}

fn is_url_safe(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// The body lengths an id with `prefix` may have: user ids have two (Plinth's earlier
/// derivation and identity-api's), every other kind one.
fn body_lengths(prefix: &str) -> &'static [usize] {
    if prefix == UserId::PREFIX {
        &[ID_BODY_LEN, USER_ID_BODY_LEN]
    } else {
        &[ID_BODY_LEN]
    }
}

/// Checks `<prefix>-<body>` and returns the prefix.
fn split_prefixed(s: &str) -> Result<(&str, &str), IdError> {
    let malformed = || IdError::Malformed(s.chars().take(64).collect());
    let (prefix, body) = s.split_once('-').ok_or_else(malformed)?;
    if prefix.len() != 7 || !prefix.bytes().all(|c| c.is_ascii_lowercase()) {
        return Err(malformed());
    }
    if !body_lengths(prefix).contains(&body.len()) || !body.bytes().all(is_url_safe) {
        return Err(malformed());
    }
    Ok((prefix, body))
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered identifier.
            pub fn generate() -> Self {
                Self(format!("{}-{}", $prefix, encode_uuid_v7(uuid::Uuid::now_v7())))
            }

            /// Parses and checks the prefix.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let (prefix, _) = split_prefixed(s)?;
                if prefix != $prefix {
                    return Err(IdError::WrongPrefix {
                        id: s.to_owned(),
                        found: prefix.to_owned(),
                        expected: $prefix,
                    });
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

prefixed_id!(
    /// A tenant (`tnntten-…`).
    TenantId,
    "tnntten"
);
prefixed_id!(
    /// A location (`lctnloc-…`).
    LocationId,
    "lctnloc"
);
prefixed_id!(
    /// A resource provider (`resopro-…`): the identity through which providers reach tenants.
    ResourceProviderId,
    "resopro"
);
prefixed_id!(
    /// A concrete provider (`resoprv-…`), e.g. load balancer provider "Foo".
    ProviderId,
    "resoprv"
);
prefixed_id!(
    /// A user (`idntusr-…`), derived from the token's issuer and subject: 43 characters after
    /// the prefix, as identity-api derives them, or 21 for users Plinth recorded before it
    /// adopted that derivation.
    UserId,
    "idntusr"
);

impl UserId {
    /// The id identity-api gives (issuer, subject), which other Infratographer services see as
    /// `actorID`: `idntusr-` + unpadded base64url(sha256(issuer + subject)), no separator
    /// between the two, the whole digest (43 characters).
    pub fn for_identity(issuer: &str, subject: &str) -> Self {
        let mut digest = Sha256::new();
        digest.update(issuer.as_bytes());
        digest.update(subject.as_bytes());
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.finalize());
        debug_assert_eq!(encoded.len(), USER_ID_BODY_LEN);
        Self(format!("{}-{encoded}", Self::PREFIX))
    }

    /// The id Plinth derived for (issuer, subject) before it adopted identity-api's:
    /// `idntusr-` + the first 21 characters of base64url(sha256(issuer + "|" + subject)).
    /// Only to find users recorded then, whose ids stay theirs (ADR 0014); never for new users.
    pub fn legacy_for_identity(issuer: &str, subject: &str) -> Self {
        let digest = Sha256::digest(format!("{issuer}|{subject}").as_bytes());
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        Self(format!("{}-{}", Self::PREFIX, &encoded[..ID_BODY_LEN]))
    }
}

/// The kinds of aggregate, one event stream each. Also names the Kafka topic suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    Tenant,
    User,
    Location,
    ResourceProvider,
    Provider,
}

impl AggregateKind {
    pub const ALL: [AggregateKind; 5] = [
        Self::Tenant,
        Self::User,
        Self::Location,
        Self::ResourceProvider,
        Self::Provider,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::User => "user",
            Self::Location => "location",
            Self::ResourceProvider => "resource_provider",
            Self::Provider => "provider",
        }
    }

    /// Plural, kebab-case: the topic suffix (`<prefix>.tenants`) and URL segment.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Tenant => "tenants",
            Self::User => "users",
            Self::Location => "locations",
            Self::ResourceProvider => "resource-providers",
            Self::Provider => "providers",
        }
    }

    /// A fresh, time-ordered id for a new stream of this kind. Users have none: their ids
    /// derive from their identity ([`UserId::for_identity`]) and no command creates one.
    pub fn new_stream_id(self) -> String {
        match self {
            Self::Tenant => TenantId::generate().to_string(),
            Self::Location => LocationId::generate().to_string(),
            Self::ResourceProvider => ResourceProviderId::generate().to_string(),
            Self::Provider => ProviderId::generate().to_string(),
            Self::User => unreachable!("user ids derive from the identity"),
        }
    }

    /// The kind of the stream named by `id`, from its prefix.
    pub fn of_stream(id: &str) -> Option<Self> {
        let (prefix, _) = split_prefixed(id).ok()?;
        Some(match prefix {
            TenantId::PREFIX => Self::Tenant,
            UserId::PREFIX => Self::User,
            LocationId::PREFIX => Self::Location,
            ResourceProviderId::PREFIX => Self::ResourceProvider,
            ProviderId::PREFIX => Self::Provider,
            _ => return None,
        })
    }
}

/// Any resource that carries metadata (annotations, statuses, finalizers). Users are outside the
/// tenant tree and have no owner to authorize metadata changes against, so they carry none.
#[derive(
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceId(String);

impl ResourceId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match AggregateKind::of_stream(s) {
            Some(AggregateKind::User) | None => {
                split_prefixed(s)?;
                Err(IdError::UnknownKind(s.to_owned()))
            }
            Some(_) => Ok(Self(s.to_owned())),
        }
    }

    pub fn kind(&self) -> AggregateKind {
        AggregateKind::of_stream(&self.0).expect("validated at parse")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ResourceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ResourceId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ResourceId> for String {
    fn from(id: ResourceId) -> String {
        id.0
    }
}

macro_rules! into_resource_id {
    ($($t:ty),*) => {$(
        impl From<$t> for ResourceId {
            fn from(id: $t) -> Self {
                ResourceId(id.0)
            }
        }
    )*};
}
into_resource_id!(TenantId, LocationId, ResourceProviderId, ProviderId);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_ids_parse_and_sort_by_creation_time() {
        let mut previous = TenantId::generate();
        for _ in 0..2_000 {
            let next = TenantId::generate();
            assert!(TenantId::parse(next.as_str()).is_ok());
            assert!(next > previous, "{next} should sort after {previous}");
            previous = next;
        }
    }

    #[test]
    fn new_bodies_start_alphanumeric_and_sort_after_the_older_form() {
        // An id of the earlier encoding (body starting with `-`), from a stored log.
        let older = TenantId::parse("tnntten--P7lIodXJ-h1HSb6i-sQ-").unwrap();
        for _ in 0..100 {
            let id = TenantId::generate();
            let body = &id.as_str()[8..];
            assert!(body.starts_with(BODY_VERSION), "{id}");
            assert!(body.as_bytes()[0].is_ascii_alphanumeric());
            // No `--` after the prefix; the body's random characters may still hold `-`.
            assert!(!id.as_str()[7..].starts_with("--"), "{id}");
            assert!(id > older, "{id} should sort after {older}");
        }
    }

    #[test]
    fn the_timestamp_follows_the_version_character() {
        // 2026-01-02T03:04:05Z in ms, then zero random bits: the 8 characters after the
        // version are the 48-bit timestamp in the sortable alphabet.
        let ms: u128 = 1_767_323_045_000;
        let uuid = uuid::Uuid::from_u128((ms << 80) | (0x7 << 76) | (0b10 << 62));
        let body = encode_uuid_v7(uuid);
        assert_eq!(body.len(), ID_BODY_LEN);
        let ts: u128 = body[1..9].bytes().fold(0, |acc, c| {
            let v = SORTABLE_ALPHABET.iter().position(|a| *a == c).unwrap() as u128;
            (acc << 6) | v
        });
        assert_eq!(ts, ms);
        assert!(body[9..].bytes().all(|c| c == b'-'));
    }

    #[test]
    fn user_ids_are_deterministic_per_issuer_and_subject() {
        let a = UserId::for_identity("https://issuer", "alice");
        assert_eq!(a, UserId::for_identity("https://issuer", "alice"));
        assert_ne!(a, UserId::for_identity("https://issuer", "bob"));
        assert_ne!(a, UserId::for_identity("https://other", "alice"));
        assert!(UserId::parse(a.as_str()).is_ok());
        assert_eq!(a.as_str().len(), 8 + USER_ID_BODY_LEN);
    }

    #[test]
    fn user_ids_are_identity_apis() {
        // printf %s 'https://example.comfoo@example.com' | openssl dgst -sha256 -binary
        //   | basenc --base64url   (minus the trailing `=`)
        assert_eq!(
            UserId::for_identity("https://example.com", "foo@example.com").as_str(),
            "idntusr-G9KRgCBGlE6lYkoLKCdKufqP_TO04_qhq87Gs5Y75Gg"
        );
        // printf %s 'https://example.com|foo@example.com' | … | cut -c1-21
        assert_eq!(
            UserId::legacy_for_identity("https://example.com", "foo@example.com").as_str(),
            "idntusr-Y5eCcKq9aOOHpj0AhzxiT"
        );
    }

    #[test]
    fn user_ids_parse_with_either_body_length_and_no_other() {
        for body_len in [ID_BODY_LEN, USER_ID_BODY_LEN] {
            let id = format!("idntusr-{}", "aZ09-_".repeat(8).get(..body_len).unwrap());
            assert_eq!(UserId::parse(&id).unwrap().as_str(), id);
            assert_eq!(AggregateKind::of_stream(&id), Some(AggregateKind::User));
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<UserId>(&json).unwrap().as_str(), id);
        }
        for body_len in [0, 20, 22, 42, 44, 64] {
            let id = format!("idntusr-{}", "a".repeat(body_len));
            assert!(
                matches!(UserId::parse(&id), Err(IdError::Malformed(_))),
                "{body_len}"
            );
        }
        let bad_char = format!("idntusr-{}", "a".repeat(42) + "=");
        assert!(matches!(
            UserId::parse(&bad_char),
            Err(IdError::Malformed(_))
        ));
        let padded = format!("idntusr-{}", "G9KRgCBGlE6lYkoLKCdKufqP_TO04_qhq87Gs5Y75Gg=");
        assert!(UserId::parse(&padded).is_err());
    }

    #[test]
    fn only_user_ids_have_the_long_body() {
        let long = "a".repeat(USER_ID_BODY_LEN);
        assert!(matches!(
            TenantId::parse(&format!("tnntten-{long}")),
            Err(IdError::Malformed(_))
        ));
        assert!(LocationId::parse(&format!("lctnloc-{long}")).is_err());
        assert!(ResourceProviderId::parse(&format!("resopro-{long}")).is_err());
        assert!(ProviderId::parse(&format!("resoprv-{long}")).is_err());
        assert_eq!(AggregateKind::of_stream(&format!("tnntten-{long}")), None);
        assert!(ResourceId::parse(&format!("tnntten-{long}")).is_err());
        // A long user id is still a user's, which carries no metadata.
        assert!(matches!(
            ResourceId::parse(&format!("idntusr-{long}")),
            Err(IdError::UnknownKind(_))
        ));
    }

    #[test]
    fn wrong_prefix_is_rejected_with_both_prefixes_named() {
        let loc = LocationId::generate();
        let err = TenantId::parse(loc.as_str()).unwrap_err();
        assert!(matches!(
            err,
            IdError::WrongPrefix {
                expected: "tnntten",
                ..
            }
        ));
    }

    #[test]
    fn users_carry_no_metadata() {
        let user = UserId::for_identity("i", "s");
        assert!(matches!(
            ResourceId::parse(user.as_str()),
            Err(IdError::UnknownKind(_))
        ));
        let tenant = TenantId::generate();
        assert_eq!(
            ResourceId::parse(tenant.as_str()).unwrap().kind(),
            AggregateKind::Tenant
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_the_documented_shape(s in "\\PC{0,40}") {
            let ok = TenantId::parse(&s).is_ok();
            let shaped = s.len() == 29
                && s.starts_with("tnntten-")
                && s[8..].bytes().all(is_url_safe);
            prop_assert_eq!(ok, shaped);
        }

        #[test]
        fn user_ids_accept_only_the_two_documented_shapes(
            s in "idntusr-([A-Za-z0-9_-]{20,22}|[A-Za-z0-9_-]{42,44}|[A-Za-z0-9_=+/.-]{0,50})"
        ) {
            let ok = UserId::parse(&s).is_ok();
            let body = &s[8..];
            let shaped = (body.len() == ID_BODY_LEN || body.len() == USER_ID_BODY_LEN)
                && body.bytes().all(is_url_safe);
            prop_assert_eq!(ok, shaped);
        }

        #[test]
        fn any_well_shaped_id_round_trips(body in "[A-Za-z0-9_-]{21}") {
            let s = format!("lctnloc-{body}");
            let id = LocationId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<LocationId>(&json).unwrap(), id);
        }
    }
}
