//! Bearer-token authentication: HS256 development tokens signed with `PLINTH_JWT_SECRET`, and
//! RS256/ES256 tokens verified against a JWKS file in production. The first authenticated
//! request of an (issuer, subject) pair records the user.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    decode, decode_header, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use plinth_commands::EventStore;
use plinth_domain::{Actor, UserId};

use crate::error::ApiError;
use crate::settings::Settings;

/// The issuer of development tokens minted by `plinth token`.
pub const DEV_ISSUER: &str = "plinth-dev";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub iss: Option<String>,
    pub exp: u64,
    #[serde(default)]
    pub iat: Option<u64>,
}

/// Checks tokens. Holds keys only; never logs them.
#[derive(Clone)]
pub struct Verifier {
    // Shared, not copied: the state that holds the verifier is cloned for every request.
    hs256: Option<Arc<DecodingKey>>,
    jwks: Option<Arc<JwksKeys>>,
}

/// The keys of a JWKS file by `kid`, decoded once at start rather than on every request.
pub type JwksKeys = HashMap<String, DecodingKey>;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.hs256.is_some())
            .field("jwks_keys", &self.jwks.as_ref().map(|keys| keys.len()))
            .finish()
    }
}

impl Verifier {
    pub fn new(secret: Option<&str>, jwks_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let jwks = match jwks_file {
            Some(path) => Some(Arc::new(read_jwks(path)?)),
            None => None,
        };
        Ok(Self {
            hs256: secret.map(|s| Arc::new(DecodingKey::from_secret(s.as_bytes()))),
            jwks,
        })
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 => (
                self.hs256
                    .as_deref()
                    .ok_or("HS256 tokens are not accepted here")?,
                Algorithm::HS256,
            ),
            alg @ (Algorithm::RS256 | Algorithm::ES256) => {
                let keys = self.jwks.as_ref().ok_or("no JWKS is configured")?;
                let kid = header.kid.as_deref().ok_or("token has no `kid`")?;
                let key = keys
                    .get(kid)
                    .ok_or_else(|| format!("unknown key id `{kid}`"))?;
                (key, alg)
            }
            other => return Err(format!("algorithm {other:?} is not accepted")),
        };
        let mut validation = Validation::new(alg);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        decode::<Claims>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| format!("invalid token: {e}"))
    }
}

/// Reads the JWKS file: readable, a JWKS document, with at least one key, each with a `kid`
/// (tokens name their key by it) and usable for verifying. Of two keys with one `kid`, the
/// first counts.
pub fn read_jwks(path: &std::path::Path) -> anyhow::Result<JwksKeys> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("PLINTH_JWKS_FILE {shown} cannot be read"))?;
    let jwks: JwkSet = serde_json::from_str(&text)
        .with_context(|| format!("PLINTH_JWKS_FILE {shown} is not a JWKS document"))?;
    if jwks.keys.is_empty() {
        anyhow::bail!("PLINTH_JWKS_FILE {shown} holds no key");
    }
    let mut keys = JwksKeys::new();
    for (n, jwk) in jwks.keys.iter().enumerate() {
        let kid = jwk
            .common
            .key_id
            .as_deref()
            .with_context(|| format!("PLINTH_JWKS_FILE {shown}: key {n} has no `kid`"))?;
        let key = DecodingKey::from_jwk(jwk)
            .with_context(|| format!("PLINTH_JWKS_FILE {shown}: key `{kid}` is unusable"))?;
        keys.entry(kid.to_owned()).or_insert(key);
    }
    Ok(keys)
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
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub issuer: String,
    pub subject: String,
}

impl<S> FromRequestParts<S> for Caller
where
    Auth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    /// Authenticates once per request: later extractors of the same request (a typed path id,
    /// a read) find the caller in the request's extensions.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = authenticate(parts, &Auth::from_ref(state)).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

async fn authenticate(parts: &Parts, auth: &Auth) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated("missing `Authorization: Bearer <token>`".into())
        })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::Unauthenticated("expected `Authorization: Bearer <token>`".into())
        })?;
    let claims = auth
        .verifier
        .verify(token.trim())
        .map_err(ApiError::Unauthenticated)?;
    // A blank subject names nobody: it would otherwise be one shared user (and match an
    // empty entry of the administrators' list).
    if claims.sub.trim().is_empty() {
        return Err(ApiError::Unauthenticated(
            "the token's `sub` is empty".into(),
        ));
    }
    let issuer = claims.iss.unwrap_or_default();
    // The user is recorded with its issuer and subject (an event, a read-model row): text
    // PostgreSQL cannot store would fail that write, or the projector after it.
    if claims
        .sub
        .chars()
        .chain(issuer.chars())
        .any(char::is_control)
    {
        return Err(ApiError::Unauthenticated(
            "the token's `sub` or `iss` holds control characters".into(),
        ));
    }
    let identity = (issuer, claims.sub);
    let known = auth
        .known_users
        .0
        .read()
        .expect("not poisoned")
        .get(&identity)
        .cloned();
    let user_id = match known {
        Some(user_id) => user_id,
        None => {
            // identity-api's id for a new user, the legacy one for a user recorded before.
            let user_id = auth
                .store
                .ensure_user(&identity.0, &identity.1)
                .await
                .map_err(|e| ApiError::Unavailable {
                    detail: format!("could not record the user: {e}"),
                    retry_after_secs: 1,
                })?;
            auth.known_users
                .0
                .write()
                .expect("not poisoned")
                .insert(identity.clone(), user_id.clone());
            user_id
        }
    };
    let (issuer, subject) = identity;
    let platform_admin = auth.settings.is_platform_admin(&issuer, &subject);
    Ok(Caller {
        actor: Actor {
            user_id,
            platform_admin,
        },
        issuer,
        subject,
    })
}
