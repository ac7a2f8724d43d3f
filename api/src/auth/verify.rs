//! A token's checks. Which keys verify a token depends on its `iss`:
//! - a configured OpenID issuer (exact match): only that issuer's keys (fetched by discovery),
//!   only the algorithms configured for it (never HS*), and `aud` must name one of its
//!   audiences;
//! - anything else: the development secret (HS256, `PLINTH_JWT_SECRET`) or the keys of
//!   `PLINTH_JWKS_FILE` (RS256/ES256), as before OpenID issuers existed. They check the
//!   signature and lifetime, not `iss` or `aud`.
//!
//! Whatever the path: at most [`MAX_TOKEN_BYTES`], never `alg: none`, never a key the token
//! names itself (`jku`, `x5u`, `jwk`, `x5c` are refused, not ignored), `exp` required and
//! `nbf` honoured, each within [`LEEWAY_SECS`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Header, Validation};

use super::issuers::IssuerConfig;
use super::oidc::{IssuerKeys, Lookup, OidcIssuers};
use super::{read_jwks, Claims, JwksKeys};

/// A JWT access token is one or two KiB; sixteen leaves room for large group claims.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Who a verified token speaks for: the issuer and the claims its mapping names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 401: the token is not valid here.
    Invalid(String),
    /// 503: the token's issuer is trusted, but none of its keys could be fetched yet.
    IssuerUnavailable(String),
}

/// Checks tokens. Holds keys only; never logs them.
#[derive(Clone)]
pub struct Verifier {
    // Shared, not copied: the state that holds the verifier is cloned for every request.
    hs256: Option<Arc<DecodingKey>>,
    jwks: Option<Arc<JwksKeys>>,
    oidc: Option<Arc<OidcIssuers>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.hs256.is_some())
            .field("jwks_keys", &self.jwks.as_ref().map(|keys| keys.len()))
            .field("oidc", &self.oidc)
            .finish()
    }
}

/// How the OpenID issuers' keys are kept.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    /// Keys are fetched again this often.
    pub refresh: Duration,
    /// Longest a fetch may take.
    pub fetch_timeout: Duration,
}

impl Verifier {
    /// A verifier of development tokens (`secret`), of the JWKS file's, and of `issuers`' tokens,
    /// whose keys start being fetched in the background (a tokio runtime must be running).
    pub fn new(
        secret: Option<&str>,
        jwks_file: Option<&std::path::Path>,
        issuers: Vec<IssuerConfig>,
        policy: Option<KeyPolicy>,
    ) -> anyhow::Result<Self> {
        let jwks = match jwks_file {
            Some(path) => Some(Arc::new(read_jwks(path)?)),
            None => None,
        };
        let oidc = match policy {
            Some(policy) if !issuers.is_empty() => Some(Arc::new(OidcIssuers::start(
                issuers,
                policy.refresh,
                policy.fetch_timeout,
            )?)),
            _ => None,
        };
        Ok(Self {
            hs256: secret.map(|s| Arc::new(DecodingKey::from_secret(s.as_bytes()))),
            jwks,
            oidc,
        })
    }

    /// Verifies a token and says whom it speaks for.
    pub async fn verify(&self, token: &str) -> Result<Identity, Rejection> {
        let invalid = |detail: String| Rejection::Invalid(detail);
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid(format!(
                "the token is larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = decode_header(token).map_err(|e| invalid(format!("malformed token: {e}")))?;
        refuse_named_keys(&header).map_err(invalid)?;
        if let Some(oidc) = &self.oidc {
            let issuer = peek_issuer(token).map_err(invalid)?;
            if let Some(keys) = issuer.as_deref().and_then(|iss| oidc.get(iss)) {
                return verify_from_issuer(token, &header, keys).await;
            }
            if self.hs256.is_none() && self.jwks.is_none() {
                return Err(invalid(match issuer {
                    // Shortened: the problem should not echo kilobytes of someone's text.
                    Some(iss) => format!(
                        "the token's issuer `{}` is not trusted here",
                        iss.chars().take(200).collect::<String>()
                    ),
                    None => "the token names no issuer (`iss`)".into(),
                }));
            }
        }
        self.verify_static(token, &header).map_err(invalid)
    }

    /// The development secret or the JWKS file.
    fn verify_static(&self, token: &str, header: &Header) -> Result<Identity, String> {
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
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = decode::<Claims>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| format!("invalid token: {e}"))?;
        Ok(Identity {
            issuer: claims.iss.unwrap_or_default(),
            subject: claims.sub,
            name: None,
            email: None,
        })
    }
}

/// A token that says where to find its key is trying to choose who vouches for it.
fn refuse_named_keys(header: &Header) -> Result<(), String> {
    let named = [
        ("jku", header.jku.is_some()),
        ("x5u", header.x5u.is_some()),
        ("jwk", header.jwk.is_some()),
        ("x5c", header.x5c.is_some()),
    ];
    match named.iter().find(|(_, present)| *present) {
        Some((field, _)) => Err(format!(
            "the token names its own key (`{field}`): keys come only from the configured issuers"
        )),
        None => Ok(()),
    }
}

/// The token's `iss`, read before its signature is checked: only to choose whose keys check it.
fn peek_issuer(token: &str) -> Result<Option<String>, String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or("malformed token: no payload")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "malformed token: the payload is not base64url")?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|_| "malformed token: the payload is not a JSON object")?;
    // Two `iss` (or `sub`) claims: which one the issuer meant is anyone's guess.
    crate::strict_json::check(&bytes).map_err(|e| format!("ambiguous token payload: {e}"))?;
    match claims.get("iss") {
        None => Ok(None),
        Some(serde_json::Value::String(iss)) => Ok(Some(iss.clone())),
        Some(_) => Err("the token's `iss` is not a string".into()),
    }
}

/// A token of a configured OpenID issuer, against that issuer's keys and rules only.
async fn verify_from_issuer(
    token: &str,
    header: &Header,
    keys: &IssuerKeys,
) -> Result<Identity, Rejection> {
    let config = &keys.config;
    let invalid = |detail: String| Rejection::Invalid(detail);
    if !config.algorithms.contains(&header.alg) {
        return Err(invalid(format!(
            "algorithm {:?} is not accepted from `{}`",
            header.alg, config.issuer
        )));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| invalid("the token names no key (`kid`)".into()))?;
    let key = match keys.key(kid).await {
        Lookup::Found(key) => key,
        Lookup::Unknown => {
            return Err(invalid(format!(
                "`{}` publishes no key `{kid}`",
                config.issuer
            )))
        }
        Lookup::NeverFetched(error) => {
            return Err(Rejection::IssuerUnavailable(format!(
                "the keys of `{}` could not be fetched yet ({error}); retry shortly",
                config.issuer
            )))
        }
    };
    if key.alg.is_some_and(|alg| alg != header.alg) {
        return Err(invalid(format!(
            "the key `{kid}` is for another algorithm than {:?}",
            header.alg
        )));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&config.audiences);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &validation)
        .map_err(|e| invalid(format!("invalid token: {e}")))?
        .claims;
    identity(config, &claims).map_err(invalid)
}

/// The identity the issuer's claim mapping reads from verified claims.
fn identity(
    config: &IssuerConfig,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Identity, String> {
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let subject = text(&config.claims.subject).ok_or_else(|| {
        format!(
            "the token has no `{}` string (the subject, for `{}`)",
            config.claims.subject, config.issuer
        )
    })?;
    Ok(Identity {
        issuer: config.issuer.clone(),
        subject,
        name: text(&config.claims.name),
        email: text(&config.claims.email),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::issuers::ClaimNames;
    use serde_json::json;

    fn config() -> IssuerConfig {
        IssuerConfig {
            issuer: "https://idp.example".into(),
            audiences: vec!["plinth".into()],
            algorithms: vec![Algorithm::RS256],
            claims: ClaimNames {
                subject: "oid".into(),
                name: "display".into(),
                email: "mail".into(),
            },
            jwks_uri: None,
        }
    }

    #[test]
    fn the_identity_comes_from_the_mapped_claims() {
        let claims = json!({"sub": "ignored", "oid": "u-1", "display": "Ann", "mail": 3});
        let identity = identity(&config(), claims.as_object().unwrap()).unwrap();
        assert_eq!(identity.subject, "u-1");
        assert_eq!(identity.name.as_deref(), Some("Ann"));
        assert_eq!(
            identity.email, None,
            "a non-string claim is no e-mail address"
        );
        let without = json!({"sub": "u-1"});
        assert!(identity_of(&without).is_err());
    }

    fn identity_of(claims: &serde_json::Value) -> Result<Identity, String> {
        identity(&config(), claims.as_object().unwrap())
    }

    #[test]
    fn the_issuer_is_peeked_from_the_payload() {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = |payload: String| format!("e30.{payload}.sig");
        assert_eq!(
            peek_issuer(&token(b64(json!({"iss": "https://a"})))).unwrap(),
            Some("https://a".into())
        );
        assert_eq!(peek_issuer(&token(b64(json!({})))).unwrap(), None);
        assert!(peek_issuer(&token(b64(json!({"iss": 1}))))
            .unwrap_err()
            .contains("not a string"));
        assert!(peek_issuer(&token("!!".into())).is_err());
        assert!(peek_issuer(&token(b64(json!([1])))).is_err());
        assert!(peek_issuer("onlyone").is_err());
        let twice = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"iss":"https://a","iss":"https://b"}"#);
        assert_eq!(
            peek_issuer(&token(twice)).unwrap_err(),
            "ambiguous token payload: duplicate key at iss"
        );
    }

    #[test]
    fn a_header_naming_a_key_is_refused() {
        for field in ["jku", "x5u", "x5c"] {
            let mut header = Header::new(Algorithm::RS256);
            match field {
                "jku" => header.jku = Some("https://evil".into()),
                "x5u" => header.x5u = Some("https://evil".into()),
                _ => header.x5c = Some(vec!["MII".into()]),
            }
            assert!(refuse_named_keys(&header).unwrap_err().contains(field));
        }
        assert!(refuse_named_keys(&Header::new(Algorithm::RS256)).is_ok());
    }
}
