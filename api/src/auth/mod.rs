//! Bearer-token authentication: who is calling.
//!
//! - [`verify`]: a token's checks (signature, algorithm, issuer, audience, lifetime), against
//!   a configured OpenID issuer's keys, the development secret (`PLINTH_JWT_SECRET`, HS256) or
//!   a JWKS file (`PLINTH_JWKS_FILE`).
//! - [`issuers`]: which OpenID issuers are trusted, and how each one's claims are read.
//! - [`oidc`]: their keys, by discovery, cached and refreshed; [`fetch`]: bounded fetches.
//! - [`jwks_file`]: reading the JWKS file at start.
//! - [`caller`]: the [`Caller`] extractor, which turns a verified token's (issuer, subject)
//!   into the acting user, recording the user on its first request.

pub mod caller;
pub mod fetch;
pub mod issuers;
pub mod jwks_file;
pub mod oidc;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use plinth_commands::EventStore;
use plinth_domain::UserId;

use crate::settings::Settings;

pub use caller::Caller;
pub use jwks_file::{read_jwks, JwksKeys};
pub use verify::Verifier;

/// The issuer of development tokens minted by `plinth token`.
pub const DEV_ISSUER: &str = "plinth-dev";

/// The claims of a development token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub iss: Option<String>,
    pub exp: u64,
    #[serde(default)]
    pub iat: Option<u64>,
}

/// Mints a development token (HS256) for `subject`, valid for `ttl_secs`.
pub fn mint_dev_token(secret: &str, subject: &str, ttl_secs: u64) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp() as u64;
    let claims = Claims {
        sub: subject.to_owned(),
        iss: Some(DEV_ISSUER.to_owned()),
        exp: now + ttl_secs,
        iat: Some(now),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Users known to exist, by (issuer, subject), so that only a user's first request pays for
/// recording it or finding which of its two possible ids it has (docs/adr/0014).
#[derive(Debug, Default, Clone)]
pub struct KnownUsers(Arc<RwLock<HashMap<(String, String), UserId>>>);

/// What authenticating a request needs: the part of the application state the [`Caller`]
/// extractor reaches through `FromRef`, so that authentication depends on no other part.
#[derive(Debug, Clone)]
pub struct Auth {
    pub verifier: Verifier,
    pub known_users: KnownUsers,
    /// Records a user on its first request.
    pub store: EventStore,
    /// Names the platform administrators.
    pub settings: Arc<Settings>,
    /// Per-principal rate limits; `None` when off (`PLINTH_RATE_LIMIT=0`).
    pub limits: Option<Arc<crate::limits::RateLimits>>,
}
