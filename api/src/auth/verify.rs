//! A token's checks.

use std::sync::Arc;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};

use super::{read_jwks, Claims, JwksKeys};

/// Checks tokens. Holds keys only; never logs them.
#[derive(Clone)]
pub struct Verifier {
    // Shared, not copied: the state that holds the verifier is cloned for every request.
    hs256: Option<Arc<DecodingKey>>,
    jwks: Option<Arc<JwksKeys>>,
}

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
