//! Which OpenID issuers Plinth trusts, from `PLINTH_OIDC_ISSUER` + `PLINTH_OIDC_AUDIENCE` (one)
//! or `PLINTH_OIDC_ISSUERS_FILE` (several, each with its audiences, algorithms and claims).
//! Checked at start like every other setting: each mistake is named, and `plinth serve` exits 2.

use std::collections::HashSet;
use std::path::Path;

use jsonwebtoken::Algorithm;
use reqwest::Url;
use serde::Deserialize;

use crate::settings::Settings;

/// Algorithms of an issuer that names none: what OpenID providers sign with by default.
const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The `iss` its tokens carry, compared exactly (a trailing slash matters).
    pub issuer: String,
    /// A token must name at least one of them in `aud`.
    pub audiences: Vec<String>,
    /// The only algorithms its tokens may use: asymmetric ones, never `none` or HS*.
    pub algorithms: Vec<Algorithm>,
    /// Which claims give the subject, the name and the e-mail address.
    pub claims: ClaimNames,
    /// Where its keys are, when not where its discovery document says.
    pub jwks_uri: Option<Url>,
}

/// The claims a token's identity is read from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    pub subject: String,
    pub name: String,
    pub email: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            name: "name".into(),
            email: "email".into(),
        }
    }
}

impl IssuerConfig {
    /// Where discovery starts: the issuer, without a trailing slash, then
    /// `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0, §4).
    pub fn discovery_url(&self) -> Url {
        let base = self.issuer.trim_end_matches('/');
        Url::parse(&format!("{base}/.well-known/openid-configuration"))
            .expect("an issuer URL checked at start stays a URL with a path appended")
    }
}

/// The issuers file: `[[issuers]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuersFile {
    issuers: Vec<IssuerEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerEntry {
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    claims: ClaimNames,
    #[serde(default)]
    jwks_uri: Option<String>,
}

/// The configured issuers (none when OpenID is not configured), or every mistake, each naming
/// the variable (and, in the file, the issuer) it is about.
pub fn configured(settings: &Settings) -> Result<Vec<IssuerConfig>, Vec<String>> {
    let single = settings.oidc_issuer.is_some() || !settings.oidc_audience.is_empty();
    match (&settings.oidc_issuers_file, single) {
        (Some(_), true) => Err(vec![
            "PLINTH_OIDC_ISSUERS_FILE cannot be combined with PLINTH_OIDC_ISSUER / \
             PLINTH_OIDC_AUDIENCE: put every issuer in the file"
                .into(),
        ]),
        (Some(path), false) => from_file(path),
        (None, true) => single_issuer(settings).map(|issuer| vec![issuer]),
        (None, false) => Ok(Vec::new()),
    }
}

fn single_issuer(settings: &Settings) -> Result<IssuerConfig, Vec<String>> {
    let mut wrong = Vec::new();
    let issuer = settings.oidc_issuer.clone().unwrap_or_default();
    if settings.oidc_issuer.is_none() {
        wrong.push("PLINTH_OIDC_AUDIENCE is set without PLINTH_OIDC_ISSUER".to_owned());
    } else if let Err(e) = check_url(&issuer) {
        wrong.push(format!("PLINTH_OIDC_ISSUER {e}"));
    }
    let audiences = trimmed(&settings.oidc_audience);
    if settings.oidc_issuer.is_some() && audiences.is_empty() {
        wrong.push(
            "PLINTH_OIDC_AUDIENCE is required with PLINTH_OIDC_ISSUER: the audience Plinth's \
             tokens are issued for (a token for another service must not get in)"
                .to_owned(),
        );
    }
    if !wrong.is_empty() {
        return Err(wrong);
    }
    Ok(IssuerConfig {
        issuer,
        audiences,
        algorithms: DEFAULT_ALGORITHMS.to_vec(),
        claims: ClaimNames::default(),
        jwks_uri: None,
    })
}

fn from_file(path: &Path) -> Result<Vec<IssuerConfig>, Vec<String>> {
    let shown = format!("PLINTH_OIDC_ISSUERS_FILE {}", path.display());
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{shown} cannot be read: {e}")])?;
    let file: IssuersFile = toml::from_str(&text).map_err(|e| {
        vec![format!(
            "{shown} is not a valid issuers file: {}",
            e.message()
        )]
    })?;
    if file.issuers.is_empty() {
        return Err(vec![format!("{shown} names no issuer")]);
    }
    let mut wrong = Vec::new();
    let mut seen = HashSet::new();
    let mut issuers = Vec::new();
    for (n, entry) in file.issuers.into_iter().enumerate() {
        let label = format!("{shown}: issuer {} (`{}`)", n + 1, entry.issuer);
        if !seen.insert(entry.issuer.clone()) {
            wrong.push(format!("{label} is listed twice"));
        }
        match entry_config(entry) {
            Ok(issuer) => issuers.push(issuer),
            Err(errors) => wrong.extend(errors.into_iter().map(|e| format!("{label}: {e}"))),
        }
    }
    if wrong.is_empty() {
        Ok(issuers)
    } else {
        Err(wrong)
    }
}

fn entry_config(entry: IssuerEntry) -> Result<IssuerConfig, Vec<String>> {
    let mut wrong = Vec::new();
    if let Err(e) = check_url(&entry.issuer) {
        wrong.push(format!("`issuer` {e}"));
    }
    let audiences = trimmed(&entry.audiences);
    if audiences.is_empty() {
        wrong.push("`audiences` must name at least one audience".to_owned());
    }
    let algorithms = match &entry.algorithms {
        None => DEFAULT_ALGORITHMS.to_vec(),
        Some(names) => parse_algorithms(names).unwrap_or_else(|e| {
            wrong.push(e);
            Vec::new()
        }),
    };
    for (what, claim) in [
        ("subject", &entry.claims.subject),
        ("name", &entry.claims.name),
        ("email", &entry.claims.email),
    ] {
        if claim.trim().is_empty() {
            wrong.push(format!("`claims.{what}` is empty"));
        }
    }
    let jwks_uri = match entry.jwks_uri.as_deref().map(check_url).transpose() {
        Ok(uri) => uri,
        Err(e) => {
            wrong.push(format!("`jwks_uri` {e}"));
            None
        }
    };
    if !wrong.is_empty() {
        return Err(wrong);
    }
    Ok(IssuerConfig {
        issuer: entry.issuer,
        audiences,
        algorithms,
        claims: entry.claims,
        jwks_uri,
    })
}

/// The algorithms an issuer may sign with: asymmetric ones only. HS* would let anyone who has
/// the issuer's public key (everyone: it is published) sign tokens as the issuer.
fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    if names.is_empty() {
        return Err("`algorithms` is empty: leave it out for RS256 and ES256".into());
    }
    names
        .iter()
        .map(|name| match name.parse::<Algorithm>() {
            Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => Err(format!(
                "`algorithms`: {name} is never accepted from an OpenID issuer (a shared-secret \
                 algorithm; the issuer's keys are public)"
            )),
            Ok(alg) => Ok(alg),
            Err(_) => Err(format!(
                "`algorithms`: `{name}` is not one of RS256, RS384, RS512, PS256, PS384, PS512, \
                 ES256, ES384, EdDSA"
            )),
        })
        .collect()
}

/// An issuer's (or a JWKS's) URL: https, or http on a loopback address (a provider on the
/// same machine, as in tests); no credentials, query or fragment (an issuer has none, OpenID
/// Connect Discovery 1.0 §3).
pub fn check_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("`{text}` has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "`{text}` must be https (http only on a loopback address)"
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` must not hold credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}` must have no query or fragment"));
    }
    Ok(url)
}

fn trimmed(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls_are_https_or_loopback_http() {
        assert!(check_url("https://idp.example.com/realms/a").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://[::1]:8080").is_ok());
        assert!(check_url("http://localhost:8080").is_ok());
        assert!(check_url("http://idp.example.com").is_err());
        assert!(check_url("ftp://idp.example.com").is_err());
        assert!(check_url("https://user:pw@idp.example.com").is_err());
        assert!(check_url("https://idp.example.com/?tenant=a").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn shared_secret_and_unknown_algorithms_are_refused() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_algorithms(&names(&["RS256", "EdDSA"])).unwrap(),
            vec![Algorithm::RS256, Algorithm::EdDSA]
        );
        for bad in ["HS256", "HS512", "none", "rs256", ""] {
            assert!(parse_algorithms(&names(&[bad])).is_err(), "{bad}");
        }
        assert!(parse_algorithms(&[]).is_err());
    }

    #[test]
    fn discovery_is_under_the_issuer_without_its_trailing_slash() {
        let issuer = |s: &str| IssuerConfig {
            issuer: s.into(),
            audiences: vec!["a".into()],
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            claims: ClaimNames::default(),
            jwks_uri: None,
        };
        assert_eq!(
            issuer("https://idp.example.com/realms/a/")
                .discovery_url()
                .as_str(),
            "https://idp.example.com/realms/a/.well-known/openid-configuration"
        );
        assert_eq!(
            issuer("https://idp.example.com").discovery_url().as_str(),
            "https://idp.example.com/.well-known/openid-configuration"
        );
    }
}
