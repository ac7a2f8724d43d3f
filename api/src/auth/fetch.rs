//! Bounded HTTP fetches of an issuer's documents: a time limit, a size limit, no redirects
//! (a redirect would be a URL nobody configured), no proxy from the environment.

use std::time::Duration;

use reqwest::Url;
use serde::de::DeserializeOwned;

/// A discovery document or a JWKS is a few KiB; a larger answer is not one.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Fetches JSON documents within bounds.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
}

impl Fetcher {
    /// A fetcher whose every fetch (connect, headers and body) ends within `timeout`.
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("plinth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, timeout })
    }

    /// `GET url`, expecting 200 and a JSON body of at most [`MAX_DOCUMENT_BYTES`]. The error
    /// says what went wrong, for logs and for the problem a refused token gets.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, String> {
        // reqwest's own timeout covers the body too; this one also covers our reading of it.
        tokio::time::timeout(self.timeout, self.get_bounded(url))
            .await
            .map_err(|_| format!("{url} did not answer within {:?}", self.timeout))?
            .and_then(|body| {
                serde_json::from_slice(&body)
                    .map_err(|e| format!("{url} did not answer JSON of the expected shape: {e}"))
            })
    }

    async fn get_bounded(&self, url: &Url) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url} could not be fetched: {}", without_url(&e)))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("{url} answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large(url));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url} broke off: {}", without_url(&e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large(url));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn too_large(url: &Url) -> String {
    format!("{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
}

/// reqwest's message names the URL again; ours already does.
fn without_url(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "no connection".to_owned()
    } else {
        "failed".to_owned()
    };
    while let Some(source) = cause.source() {
        text = format!("{text}: {source}");
        cause = source;
    }
    text
}
