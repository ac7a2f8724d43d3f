//! `plinth serve` settings: each a flag and an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings the operator has to fix. `plinth` exits 2 on them, as on a usage error, so that a
/// supervisor can tell them from failures a restart may cure (systemd's
/// `RestartPreventExitStatus=2` in `deploy/plinth.service`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSettings(String);

/// Settings of the server. Secrets are never printed (see the `Debug` impl).
#[derive(Clone, clap::Args)]
pub struct Settings {
    /// PostgreSQL connection string. With `--dev` and unset, a local server or a private
    /// cluster under `.plinth/` is used.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address the HTTP API listens on.
    #[arg(long, env = "PLINTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// HS256 secret for development tokens (`plinth token`).
    #[arg(long, env = "PLINTH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// JWKS file with the RS256/ES256 keys that production tokens are verified against.
    #[arg(long, env = "PLINTH_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// The OpenID issuer whose tokens are accepted (its exact `iss`); keys by discovery.
    #[arg(long, env = "PLINTH_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Comma-separated audiences: a token of PLINTH_OIDC_ISSUER must name one in `aud`.
    #[arg(long, env = "PLINTH_OIDC_AUDIENCE", value_delimiter = ',')]
    pub oidc_audience: Vec<String>,
    /// TOML file of several trusted issuers, each with its audiences, algorithms and claim
    /// names (instead of PLINTH_OIDC_ISSUER and PLINTH_OIDC_AUDIENCE).
    #[arg(long, env = "PLINTH_OIDC_ISSUERS_FILE")]
    pub oidc_issuers_file: Option<PathBuf>,
    /// Seconds between fetches of each issuer's keys: a key the issuer stops publishing is
    /// refused at most this long after.
    #[arg(long, env = "PLINTH_OIDC_REFRESH_SECS", default_value_t = 300)]
    pub oidc_refresh_secs: u64,
    /// Comma-separated platform administrators, each a token subject (any issuer) or
    /// `issuer|subject`. Empty entries are ignored: they never match anyone.
    #[arg(
        long,
        env = "PLINTH_PLATFORM_ADMINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub platform_admins: Vec<String>,
    /// Kafka bootstrap servers; unset: nothing is published, events wait in the store.
    #[arg(long, env = "PLINTH_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Prefix of the Kafka topics (`<prefix>.tenants`, …).
    #[arg(long, env = "PLINTH_KAFKA_TOPIC_PREFIX", default_value = "plinth")]
    pub kafka_topic_prefix: String,
    /// NATS server URL; set: the NATS relay runs too, publishing Infratographer change and
    /// event messages to JetStream (docs/infratographer.md).
    #[arg(long, env = "PLINTH_NATS_URL")]
    pub nats_url: Option<String>,
    /// Subject prefix of the NATS messages.
    #[arg(long, env = "PLINTH_NATS_PREFIX", default_value = "com.infratographer")]
    pub nats_prefix: String,
    /// `source` of the NATS messages.
    #[arg(long, env = "PLINTH_NATS_SOURCE", default_value = "plinth")]
    pub nats_source: String,
    /// `chained`: each NATS publish names the one before it (`Nats-Expected-Last-Msg-Id`), so
    /// stream order is log order, in a stream no one else publishes to; `unchained`: for a
    /// stream shared with other publishers.
    #[arg(long, env = "PLINTH_NATS_ORDERING", default_value = "chained")]
    pub nats_ordering: String,
    /// Comma-separated PostgreSQL URLs of hot standbys (streaming replicas of DATABASE_URL's
    /// cluster, same database) that serve the read routes; commands, projectors and relays
    /// stay on DATABASE_URL. Empty: every read goes to the primary.
    #[arg(
        long,
        env = "PLINTH_READ_DATABASE_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub read_database_urls: Vec<String>,
    /// A replica whose replay lags the primary by more than this leaves rotation until it is
    /// back within it.
    #[arg(long, env = "PLINTH_READ_REPLICA_MAX_LAG_MS", default_value_t = 5_000)]
    pub read_replica_max_lag_ms: u64,
    /// How long a `?min_position=` read waits for a replica to replay that far before the
    /// primary answers it (within the read's 3 s): at most 2,000.
    #[arg(long, env = "PLINTH_READ_REPLICA_WAIT_MS", default_value_t = 1_000)]
    pub read_replica_wait_ms: u64,
    /// Largest PostgreSQL connection pool.
    #[arg(long, env = "PLINTH_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,
    /// Group-commit writer tasks (each commits one batch at a time).
    #[arg(long, env = "PLINTH_WRITERS", default_value_t = 2)]
    pub writers: usize,
    /// Stream states the writers keep decoded between batches (ADR 0009); past it the cache
    /// starts over. Each costs a few hundred bytes to a few KiB.
    #[arg(long, env = "PLINTH_WRITE_CACHE_STATES", default_value_t = plinth_commands::DEFAULT_CACHED_STATES)]
    pub write_cache_states: usize,
    /// Seconds before a request is answered with 408.
    #[arg(long, env = "PLINTH_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Requests a second each principal (token subject) may send, with bursts of twice that;
    /// past it, 429 with Retry-After. 0 turns the limit off.
    #[arg(long, env = "PLINTH_RATE_LIMIT", default_value_t = 1000)]
    pub rate_limit: u32,
    /// Seconds a client has to send a request's headers; past it the connection is closed.
    #[arg(long, env = "PLINTH_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// HTTP connections open at once; past it a new connection is closed at once.
    #[arg(long, env = "PLINTH_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// `/readyz` answers 503 while a projection is more than this many events behind the log.
    #[arg(long, env = "PLINTH_READY_MAX_LAG_EVENTS", default_value_t = 10_000)]
    pub ready_max_lag_events: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("listen", &self.listen)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("jwks_file", &self.jwks_file)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_audience", &self.oidc_audience)
            .field("oidc_issuers_file", &self.oidc_issuers_file)
            .field("oidc_refresh_secs", &self.oidc_refresh_secs)
            .field("platform_admins", &self.platform_admins)
            .field("kafka_brokers", &self.kafka_brokers)
            .field("kafka_topic_prefix", &self.kafka_topic_prefix)
            // The URL may carry credentials.
            .field("nats_url", &self.nats_url.as_ref().map(|_| "<set>"))
            .field("nats_prefix", &self.nats_prefix)
            .field("nats_source", &self.nats_source)
            .field("nats_ordering", &self.nats_ordering)
            // The URLs may carry credentials.
            .field("read_database_urls", &self.read_database_urls.len())
            .field("read_replica_max_lag_ms", &self.read_replica_max_lag_ms)
            .field("read_replica_wait_ms", &self.read_replica_wait_ms)
            .field("db_pool_size", &self.db_pool_size)
            .field("writers", &self.writers)
            .field("write_cache_states", &self.write_cache_states)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("rate_limit", &self.rate_limit)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field("ready_max_lag_events", &self.ready_max_lag_events)
            .finish()
    }
}

impl Settings {
    /// Checks every setting before anything connects or binds, and names each one that is
    /// wrong (by its environment variable, where operators set it) with what it must be: a
    /// server that starts with a zero pool or an unreadable key file fails later and less
    /// clearly. The listen address is checked by binding it, right after (`plinth serve`).
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut wrong = Vec::new();
        match &self.database_url {
            None => wrong.push("DATABASE_URL is not set (or run `plinth serve --dev`)".to_owned()),
            // The parser's message never repeats the URL: it may hold a password.
            Some(url) => {
                if let Err(e) = url.parse::<tokio_postgres::Config>() {
                    wrong.push(format!(
                        "DATABASE_URL is not a PostgreSQL connection string: {e}"
                    ));
                }
            }
        }
        for (i, url) in self.read_database_urls.iter().enumerate() {
            if let Err(e) = url.trim().parse::<tokio_postgres::Config>() {
                wrong.push(format!(
                    "PLINTH_READ_DATABASE_URLS entry {} is not a PostgreSQL connection string: {e}",
                    i + 1
                ));
            }
        }
        if self.read_replica_max_lag_ms == 0 {
            wrong.push("PLINTH_READ_REPLICA_MAX_LAG_MS must be at least 1".to_owned());
        }
        if self.read_replica_wait_ms > 2_000 {
            // The read's whole wait is 3 s: the primary needs the rest to answer in its place.
            wrong.push("PLINTH_READ_REPLICA_WAIT_MS must be at most 2000".to_owned());
        }
        if self.db_pool_size < 1 {
            wrong.push("PLINTH_DB_POOL_SIZE must be at least 1".to_owned());
        }
        if self.writers < 1 {
            wrong.push("PLINTH_WRITERS must be at least 1".to_owned());
        }
        if self.write_cache_states < 1 {
            wrong.push("PLINTH_WRITE_CACHE_STATES must be at least 1".to_owned());
        }
        if self.request_timeout_secs == 0 {
            wrong.push("PLINTH_REQUEST_TIMEOUT_SECS must be more than 0".to_owned());
        }
        if self.header_read_timeout_secs == 0 {
            wrong.push("PLINTH_HEADER_READ_TIMEOUT_SECS must be more than 0".to_owned());
        }
        if self.max_connections < 1 {
            wrong.push("PLINTH_MAX_CONNECTIONS must be at least 1".to_owned());
        }
        if self.ready_max_lag_events == 0 {
            // 0 would turn every replica unready after each command, until the projectors
            // apply it: readiness would flap under any load.
            wrong.push("PLINTH_READY_MAX_LAG_EVENTS must be at least 1".to_owned());
        }
        if self
            .jwt_secret
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            wrong.push("PLINTH_JWT_SECRET is set but empty: anyone could sign tokens".to_owned());
        }
        if let Err(errors) = crate::auth::issuers::configured(self) {
            wrong.extend(errors);
        }
        let oidc_configured = self.oidc_issuer.is_some() || self.oidc_issuers_file.is_some();
        if self.jwt_secret.is_none() && self.jwks_file.is_none() && !oidc_configured {
            wrong.push(
                "no way to verify tokens: set PLINTH_OIDC_ISSUER (or PLINTH_OIDC_ISSUERS_FILE), \
                 PLINTH_JWKS_FILE or PLINTH_JWT_SECRET"
                    .to_owned(),
            );
        }
        if self.oidc_refresh_secs == 0 {
            wrong.push("PLINTH_OIDC_REFRESH_SECS must be more than 0".to_owned());
        }
        if let Some(path) = &self.jwks_file {
            if let Err(e) = crate::auth::read_jwks(path) {
                wrong.push(format!("{e:#}"));
            }
        }
        if self
            .kafka_brokers
            .as_deref()
            .is_some_and(|b| b.trim().is_empty())
        {
            wrong
                .push("PLINTH_KAFKA_BROKERS is set but empty (unset it not to publish)".to_owned());
        }
        // Kafka's own rule for topic names, which the prefix starts.
        let prefix = &self.kafka_topic_prefix;
        if prefix.is_empty()
            || prefix.len() > 200
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            wrong.push(
                "PLINTH_KAFKA_TOPIC_PREFIX must be 1 to 200 characters of [A-Za-z0-9._-]"
                    .to_owned(),
            );
        }
        if self.nats_ordering().is_none() {
            wrong.push("PLINTH_NATS_ORDERING must be `chained` or `unchained`".to_owned());
        }
        match wrong.len() {
            0 => Ok(()),
            1 => Err(InvalidSettings(format!("invalid setting: {}", wrong[0])).into()),
            _ => Err(
                InvalidSettings(format!("invalid settings:\n  - {}", wrong.join("\n  - "))).into(),
            ),
        }
    }

    /// `PLINTH_NATS_ORDERING`, `None` if it is neither `chained` nor `unchained`.
    pub fn nats_ordering(&self) -> Option<plinth_projections::nats::Ordering> {
        self.nats_ordering.parse().ok()
    }

    /// Whether the token (issuer, subject) names a platform administrator: an entry equal to
    /// the subject, or to `issuer|subject`. An empty or blank subject is nobody, whatever the
    /// list holds (an unset variable parses as one empty entry).
    pub fn is_platform_admin(&self, issuer: &str, subject: &str) -> bool {
        if subject.trim().is_empty() {
            return false;
        }
        let qualified = format!("{issuer}|{subject}");
        self.platform_admins
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .any(|entry| entry == subject || entry == qualified)
    }

    /// Settings for tests and benchmarks: everything explicit, nothing from the environment.
    pub fn for_database(database_url: &str, jwt_secret: &str, platform_admins: &[&str]) -> Self {
        Self {
            database_url: Some(database_url.to_owned()),
            listen: "127.0.0.1:0".parse().expect("valid"),
            jwt_secret: Some(jwt_secret.to_owned()),
            jwks_file: None,
            oidc_issuer: None,
            oidc_audience: Vec::new(),
            oidc_issuers_file: None,
            oidc_refresh_secs: 300,
            platform_admins: platform_admins.iter().map(|s| s.to_string()).collect(),
            kafka_brokers: None,
            kafka_topic_prefix: "plinth".into(),
            nats_url: None,
            nats_prefix: "com.infratographer".into(),
            nats_source: "plinth".into(),
            nats_ordering: "chained".into(),
            read_database_urls: Vec::new(),
            read_replica_max_lag_ms: 5_000,
            read_replica_wait_ms: 1_000,
            db_pool_size: 16,
            writers: 2,
            write_cache_states: plinth_commands::DEFAULT_CACHED_STATES,
            request_timeout_secs: 30,
            // Off: tests and benchmarks drive one principal far past any ordinary client.
            rate_limit: 0,
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            ready_max_lag_events: 10_000,
        }
    }
}
