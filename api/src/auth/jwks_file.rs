//! `PLINTH_JWKS_FILE`: keys pinned in a file, read once at start.

use std::collections::HashMap;

use anyhow::Context as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;

/// The keys of a JWKS file by `kid`, decoded once at start rather than on every request.
pub type JwksKeys = HashMap<String, DecodingKey>;

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
