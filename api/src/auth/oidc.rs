//! Each trusted issuer's signing keys, by OpenID discovery (`/.well-known/openid-configuration`
//! names the `jwks_uri`), cached in memory and fetched again:
//! - on a schedule (`PLINTH_OIDC_REFRESH_SECS`), so a key the issuer stopped publishing stops
//!   working within that period;
//! - when a token names a key id the cache does not hold (a key rotated in), at most once per
//!   [`refetch_interval`], so forged key ids cannot make Plinth hammer the issuer.
//!
//! Only configured URLs are fetched: the discovery URL under the configured issuer, and the
//! `jwks_uri` it names only when it has the issuer's origin (scheme, host and port), or the
//! `jwks_uri` the issuers file names. A failed fetch keeps the keys fetched before it.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde::Deserialize;

use super::fetch::Fetcher;
use super::issuers::{check_url, IssuerConfig};

/// Longest wait between two fetches after failures (they start at one second and double).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// How soon after a fetch an unknown key id may cause another: ten seconds, or the refresh
/// period if shorter.
pub fn refetch_interval(refresh: Duration) -> Duration {
    refresh.min(Duration::from_secs(10))
}

/// A verification key of an issuer.
#[derive(Clone)]
pub struct IssuerKey {
    pub key: DecodingKey,
    /// The algorithm the JWK is pinned to (`alg`), if it names one.
    pub alg: Option<Algorithm>,
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey").field("alg", &self.alg).finish()
    }
}

/// What a key lookup found.
#[derive(Debug)]
pub enum Lookup {
    Found(IssuerKey),
    /// The issuer's current keys do not include it.
    Unknown,
    /// No fetch of the issuer's keys has succeeded yet; the last failure.
    NeverFetched(String),
}

/// The trusted issuers' keys, by issuer.
#[derive(Debug, Default)]
pub struct OidcIssuers {
    by_issuer: HashMap<String, Arc<IssuerKeys>>,
}

impl OidcIssuers {
    /// Starts fetching every issuer's keys in the background: an issuer that does not answer
    /// does not hold up the server, its tokens are refused until its keys arrive.
    pub fn start(
        configs: Vec<IssuerConfig>,
        refresh: Duration,
        fetch_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let fetcher = Fetcher::new(fetch_timeout)?;
        let mut by_issuer = HashMap::new();
        for config in configs {
            let keys = Arc::new(IssuerKeys::new(config, fetcher.clone(), refresh));
            spawn_refresher(&keys, refresh);
            by_issuer.insert(keys.config.issuer.clone(), keys);
        }
        Ok(Self { by_issuer })
    }

    /// The keys of `issuer`, if it is trusted (exact match).
    pub fn get(&self, issuer: &str) -> Option<&Arc<IssuerKeys>> {
        self.by_issuer.get(issuer)
    }

    pub fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }
}

/// One issuer's configuration and cached keys.
pub struct IssuerKeys {
    pub config: IssuerConfig,
    fetcher: Fetcher,
    refetch_interval: Duration,
    /// `None` until a fetch succeeds.
    keys: RwLock<Option<Arc<HashMap<String, IssuerKey>>>>,
    last_error: RwLock<String>,
    /// One fetch at a time; when the last one started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.read().expect("not poisoned");
        f.debug_struct("IssuerKeys")
            .field("issuer", &self.config.issuer)
            .field(
                "kids",
                &keys.as_ref().map(|k| k.keys().cloned().collect::<Vec<_>>()),
            )
            .finish()
    }
}

impl IssuerKeys {
    fn new(config: IssuerConfig, fetcher: Fetcher, refresh: Duration) -> Self {
        Self {
            config,
            fetcher,
            refetch_interval: refetch_interval(refresh),
            keys: RwLock::new(None),
            last_error: RwLock::new("its keys are being fetched".into()),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    /// The key `kid`, fetching the keys again first if the cache lacks it and no fetch
    /// started within the refetch interval.
    pub async fn key(&self, kid: &str) -> Lookup {
        if let Some(key) = self.cached(kid) {
            return Lookup::Found(key);
        }
        self.refetch_unless_recent().await;
        let keys = self.keys.read().expect("not poisoned").clone();
        match keys {
            Some(keys) => keys
                .get(kid)
                .cloned()
                .map_or(Lookup::Unknown, Lookup::Found),
            None => Lookup::NeverFetched(self.last_error.read().expect("not poisoned").clone()),
        }
    }

    fn cached(&self, kid: &str) -> Option<IssuerKey> {
        let keys = self.keys.read().expect("not poisoned");
        keys.as_ref().and_then(|keys| keys.get(kid).cloned())
    }

    async fn refetch_unless_recent(&self) {
        let mut last = self.fetching.lock().await;
        // A fetch that ended while this request waited for the lock counts as recent: its
        // answer is the one this request would get.
        if last.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            return;
        }
        *last = Some(Instant::now());
        let _ = self.fetch_and_store().await;
    }

    /// Fetches the keys now (the schedule), whatever the rate limit.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut last = self.fetching.lock().await;
        *last = Some(Instant::now());
        self.fetch_and_store().await
    }

    async fn fetch_and_store(&self) -> Result<usize, String> {
        let issuer = self.config.issuer.as_str();
        match self.fetch().await {
            Ok(keys) => {
                let count = keys.len();
                let mut kids: Vec<&String> = keys.keys().collect();
                kids.sort();
                tracing::debug!(issuer, ?kids, "fetched the issuer's keys");
                metrics::counter!("plinth_oidc_key_fetches_total", "issuer" => issuer.to_owned(), "outcome" => "ok").increment(1);
                metrics::gauge!("plinth_oidc_keys", "issuer" => issuer.to_owned())
                    .set(count as f64);
                metrics::gauge!("plinth_oidc_keys_fetched_timestamp_seconds", "issuer" => issuer.to_owned())
                    .set(chrono::Utc::now().timestamp() as f64);
                *self.keys.write().expect("not poisoned") = Some(Arc::new(keys));
                Ok(count)
            }
            Err(error) => {
                tracing::warn!(
                    issuer,
                    error,
                    "could not fetch the issuer's keys; keeping the ones fetched before"
                );
                metrics::counter!("plinth_oidc_key_fetches_total", "issuer" => issuer.to_owned(), "outcome" => "failed").increment(1);
                *self.last_error.write().expect("not poisoned") = error.clone();
                Err(error)
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, IssuerKey>, String> {
        let jwks_uri = match &self.config.jwks_uri {
            Some(uri) => uri.clone(),
            None => self.discover().await?,
        };
        let jwks: RawJwks = self.fetcher.get_json(&jwks_uri).await?;
        usable_keys(jwks).map_err(|e| format!("{jwks_uri}: {e}"))
    }

    /// The `jwks_uri` of the issuer's discovery document, which must name the issuer itself
    /// (OpenID Connect Discovery 1.0 §4.3) and keep to its origin.
    async fn discover(&self) -> Result<Url, String> {
        let url = self.config.discovery_url();
        let document: Discovery = self.fetcher.get_json(&url).await?;
        if document.issuer != self.config.issuer {
            return Err(format!(
                "{url} names the issuer `{}`, not `{}`",
                document.issuer, self.config.issuer
            ));
        }
        let jwks_uri = check_url(&document.jwks_uri).map_err(|e| format!("{url}: jwks_uri {e}"))?;
        if jwks_uri.origin() != url.origin() {
            return Err(format!(
                "{url}: jwks_uri {jwks_uri} is not on the issuer's origin; name it as \
                 `jwks_uri` in PLINTH_OIDC_ISSUERS_FILE to trust it"
            ));
        }
        Ok(jwks_uri)
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// The JWKS's signing keys by `kid`. Keys Plinth cannot use are left out rather than failing
/// the whole set (a provider may publish encryption keys, or key types this build lacks):
/// those without a `kid` (a token names its key by it), for encryption, shared secrets
/// (`oct`: never from a public document), or unreadable. A set with no usable key is an
/// error, so a broken answer never replaces working keys. Of two keys with one `kid`, the
/// first counts.
fn usable_keys(jwks: RawJwks) -> Result<HashMap<String, IssuerKey>, String> {
    let mut keys = HashMap::new();
    for value in jwks.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
            || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
        {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(named) => match Algorithm::from_str(&named.to_string()) {
                Ok(alg) => Some(alg),
                Err(_) => continue, // an encryption algorithm
            },
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.entry(kid).or_insert(IssuerKey { key, alg });
    }
    if keys.is_empty() {
        return Err("the JWKS holds no usable signing key".into());
    }
    Ok(keys)
}

/// Fetches an issuer's keys now, then every `period`; after a failure sooner (1 s, doubling,
/// up to a minute or the period). Ends when the issuer's keys are dropped (a test's server).
fn spawn_refresher(keys: &Arc<IssuerKeys>, period: Duration) {
    let weak: Weak<IssuerKeys> = Arc::downgrade(keys);
    tokio::spawn(async move {
        let mut retry = Duration::from_secs(1);
        loop {
            let Some(keys) = weak.upgrade() else { return };
            let wait = match keys.refresh().await {
                Ok(_) => {
                    retry = Duration::from_secs(1);
                    period
                }
                Err(_) => {
                    let wait = retry.min(period);
                    retry = (retry * 2).min(MAX_RETRY_WAIT);
                    wait
                }
            };
            drop(keys);
            tokio::time::sleep(wait).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa_jwk(kid: Option<&str>, extra: serde_json::Value) -> serde_json::Value {
        // The public half of tests/fixtures' style: any valid modulus does.
        let mut jwk = json!({
            "kty": "RSA",
            "e": "AQAB",
            "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
        });
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        for (k, v) in extra.as_object().unwrap() {
            jwk[k] = v.clone();
        }
        jwk
    }

    fn set(keys: Vec<serde_json::Value>) -> RawJwks {
        RawJwks { keys }
    }

    #[test]
    fn keys_plinth_cannot_use_are_left_out_not_fatal() {
        let keys = usable_keys(set(vec![
            rsa_jwk(Some("sig"), json!({"alg": "RS256", "use": "sig"})),
            rsa_jwk(None, json!({})),
            rsa_jwk(Some("enc"), json!({"use": "enc"})),
            rsa_jwk(Some("oaep"), json!({"alg": "RSA-OAEP"})),
            json!({"kty": "oct", "kid": "secret", "k": "c2VjcmV0"}),
            json!({"kty": "XYZ", "kid": "future"}),
            json!("not a key"),
        ]))
        .unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["sig"]);
        assert_eq!(keys["sig"].alg, Some(Algorithm::RS256));
    }

    #[test]
    fn a_set_without_a_usable_key_is_an_error() {
        assert!(usable_keys(set(vec![])).is_err());
        assert!(usable_keys(set(vec![
            json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"})
        ]))
        .is_err());
    }

    #[test]
    fn the_refetch_interval_is_ten_seconds_or_the_refresh_period() {
        assert_eq!(
            refetch_interval(Duration::from_secs(300)),
            Duration::from_secs(10)
        );
        assert_eq!(
            refetch_interval(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }
}
