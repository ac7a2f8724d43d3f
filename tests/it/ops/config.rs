//! `plinth serve` refuses to start on a wrong setting, before connecting to anything, with one
//! message naming the setting and what it must be. One test per rule.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use plinth_test_support::test_server_url;

use crate::support::plinth_binary;

/// Runs `plinth serve` with a valid environment changed by `env` (`None`: unset); returns its
/// stderr once it exited 2, the code of a setting to fix (a restart would not help). A server
/// that starts instead is a failure of the test (killed).
async fn refused(env: &[(&str, Option<&str>)]) -> String {
    let (code, stderr) = exit_of(env).await;
    assert_eq!(code, Some(2), "{env:?}: {stderr}");
    stderr
}

/// Runs `plinth serve` as [`refused`] does; returns its exit code and stderr.
async fn exit_of(env: &[(&str, Option<&str>)]) -> (Option<i32>, String) {
    let mut command = Command::new(plinth_binary());
    command
        .arg("serve")
        .env_remove("PLINTH_KAFKA_BROKERS")
        .env("DATABASE_URL", test_server_url())
        .env("PLINTH_LISTEN", "127.0.0.1:0")
        .env("PLINTH_JWT_SECRET", "config-secret")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    for (name, value) in env {
        match value {
            Some(v) => command.env(name, v),
            None => command.env_remove(name),
        };
    }
    let output = tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .unwrap_or_else(|_| panic!("plinth serve started with {env:?}"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

async fn assert_refused(env: &[(&str, Option<&str>)], message: &str) {
    let stderr = refused(env).await;
    assert!(
        stderr.contains(message),
        "{env:?}: expected {message:?} in:\n{stderr}"
    );
}

/// A file in the temporary directory holding `text`.
fn file_with(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("plinth-jwks-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_pool_of_zero_connections_is_refused() {
    assert_refused(
        &[("PLINTH_DB_POOL_SIZE", Some("0"))],
        "PLINTH_DB_POOL_SIZE must be at least 1",
    )
    .await;
}

#[tokio::test]
async fn a_write_cache_of_no_states_is_refused() {
    assert_refused(
        &[("PLINTH_WRITE_CACHE_STATES", Some("0"))],
        "PLINTH_WRITE_CACHE_STATES must be at least 1",
    )
    .await;
}

#[tokio::test]
async fn zero_writers_are_refused() {
    assert_refused(
        &[("PLINTH_WRITERS", Some("0"))],
        "PLINTH_WRITERS must be at least 1",
    )
    .await;
}

#[tokio::test]
async fn a_zero_request_timeout_is_refused() {
    assert_refused(
        &[("PLINTH_REQUEST_TIMEOUT_SECS", Some("0"))],
        "PLINTH_REQUEST_TIMEOUT_SECS must be more than 0",
    )
    .await;
}

#[tokio::test]
async fn a_zero_header_read_timeout_is_refused() {
    assert_refused(
        &[("PLINTH_HEADER_READ_TIMEOUT_SECS", Some("0"))],
        "PLINTH_HEADER_READ_TIMEOUT_SECS must be more than 0",
    )
    .await;
}

#[tokio::test]
async fn a_cap_of_no_connections_is_refused() {
    assert_refused(
        &[("PLINTH_MAX_CONNECTIONS", Some("0"))],
        "PLINTH_MAX_CONNECTIONS must be at least 1",
    )
    .await;
}

#[tokio::test]
async fn a_zero_readiness_lag_is_refused() {
    assert_refused(
        &[("PLINTH_READY_MAX_LAG_EVENTS", Some("0"))],
        "PLINTH_READY_MAX_LAG_EVENTS must be at least 1",
    )
    .await;
}

#[tokio::test]
async fn a_read_replica_url_that_is_not_one_is_refused_without_repeating_it() {
    let stderr = refused(&[(
        "PLINTH_READ_DATABASE_URLS",
        Some("postgres://u:secret-pw@127.0.0.1/db,postgres://u:secret-pw@host:notaport/db"),
    )])
    .await;
    assert!(
        stderr.contains("PLINTH_READ_DATABASE_URLS entry 2 is not a PostgreSQL connection string"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-pw"), "{stderr}");
}

#[tokio::test]
async fn a_replica_wait_longer_than_the_reads_wait_allows_is_refused() {
    assert_refused(
        &[("PLINTH_READ_REPLICA_WAIT_MS", Some("2500"))],
        "PLINTH_READ_REPLICA_WAIT_MS must be at most 2000",
    )
    .await;
}

#[tokio::test]
async fn a_zero_replica_lag_bound_is_refused() {
    assert_refused(
        &[("PLINTH_READ_REPLICA_MAX_LAG_MS", Some("0"))],
        "PLINTH_READ_REPLICA_MAX_LAG_MS must be at least 1",
    )
    .await;
}

#[tokio::test]
async fn a_number_that_is_not_one_is_refused_naming_its_flag() {
    assert_refused(
        &[("PLINTH_DB_POOL_SIZE", Some("many"))],
        "invalid value 'many' for '--db-pool-size",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_log_format_is_refused() {
    assert_refused(
        &[("PLINTH_LOG_FORMAT", Some("xml"))],
        "PLINTH_LOG_FORMAT must be `text` or `json`",
    )
    .await;
}

#[tokio::test]
async fn a_missing_database_url_is_refused() {
    assert_refused(&[("DATABASE_URL", None)], "DATABASE_URL is not set").await;
}

#[tokio::test]
async fn a_malformed_database_url_is_refused_without_showing_it() {
    let stderr = refused(&[(
        "DATABASE_URL",
        Some("postgres://u:hunter2-secret@127.0.0.1:notaport/db"),
    )])
    .await;
    assert!(
        stderr.contains("DATABASE_URL is not a PostgreSQL connection string"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
}

#[tokio::test]
async fn no_way_to_verify_tokens_is_refused() {
    assert_refused(
        &[("PLINTH_JWT_SECRET", None)],
        "no way to verify tokens: set PLINTH_OIDC_ISSUER (or PLINTH_OIDC_ISSUERS_FILE), \
         PLINTH_JWKS_FILE or PLINTH_JWT_SECRET",
    )
    .await;
}

#[tokio::test]
async fn a_blank_jwt_secret_is_refused() {
    assert_refused(
        &[("PLINTH_JWT_SECRET", Some("   "))],
        "PLINTH_JWT_SECRET is set but empty",
    )
    .await;
}

#[tokio::test]
async fn an_unreadable_jwks_file_is_refused() {
    assert_refused(
        &[("PLINTH_JWKS_FILE", Some("/nonexistent/jwks.json"))],
        "PLINTH_JWKS_FILE /nonexistent/jwks.json cannot be read",
    )
    .await;
}

#[tokio::test]
async fn a_jwks_file_that_is_not_jwks_is_refused() {
    let path = file_with("{\"not\": \"a key set\"}");
    assert_refused(
        &[("PLINTH_JWKS_FILE", Some(path.to_str().unwrap()))],
        "is not a JWKS document",
    )
    .await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn an_empty_jwks_is_refused() {
    let path = file_with("{\"keys\": []}");
    assert_refused(
        &[("PLINTH_JWKS_FILE", Some(path.to_str().unwrap()))],
        "holds no key",
    )
    .await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_jwks_key_without_kid_is_refused() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jwks.json");
    let text = std::fs::read_to_string(fixture)
        .unwrap()
        .replace("\"kid\": \"test-es256\",", "");
    let path = file_with(&text);
    assert_refused(
        &[("PLINTH_JWKS_FILE", Some(path.to_str().unwrap()))],
        "key 0 has no `kid`",
    )
    .await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn an_issuer_that_is_not_an_https_url_is_refused() {
    for (issuer, message) in [
        ("idp.example.com", "PLINTH_OIDC_ISSUER `idp.example.com` is not a URL"),
        (
            "http://idp.example.com",
            "PLINTH_OIDC_ISSUER `http://idp.example.com` must be https (http only on a loopback address)",
        ),
        (
            "https://idp.example.com/?realm=a",
            "must have no query or fragment",
        ),
    ] {
        assert_refused(
            &[
                ("PLINTH_OIDC_ISSUER", Some(issuer)),
                ("PLINTH_OIDC_AUDIENCE", Some("plinth")),
            ],
            message,
        )
        .await;
    }
}

#[tokio::test]
async fn an_issuer_without_an_audience_is_refused() {
    assert_refused(
        &[("PLINTH_OIDC_ISSUER", Some("https://idp.example.com"))],
        "PLINTH_OIDC_AUDIENCE is required with PLINTH_OIDC_ISSUER",
    )
    .await;
    assert_refused(
        &[("PLINTH_OIDC_AUDIENCE", Some("plinth"))],
        "PLINTH_OIDC_AUDIENCE is set without PLINTH_OIDC_ISSUER",
    )
    .await;
}

#[tokio::test]
async fn an_issuers_file_with_mistakes_is_refused_naming_each() {
    let path = file_with(
        "[[issuers]]\n\
         issuer = \"https://a.example.com\"\n\
         audiences = []\n\
         algorithms = [\"HS256\", \"RS256\"]\n\
         \n\
         [[issuers]]\n\
         issuer = \"https://a.example.com\"\n\
         audiences = [\"plinth\"]\n\
         jwks_uri = \"http://keys.example.com/jwks\"\n\
         [issuers.claims]\n\
         subject = \"\"\n",
    );
    let shown = path.display().to_string();
    let stderr = refused(&[("PLINTH_OIDC_ISSUERS_FILE", Some(&shown))]).await;
    for message in [
        "issuer 1 (`https://a.example.com`): `audiences` must name at least one audience",
        "issuer 1 (`https://a.example.com`): `algorithms`: HS256 is never accepted from an OpenID issuer",
        "issuer 2 (`https://a.example.com`) is listed twice",
        "issuer 2 (`https://a.example.com`): `claims.subject` is empty",
        "issuer 2 (`https://a.example.com`): `jwks_uri` `http://keys.example.com/jwks` must be https",
    ] {
        assert!(stderr.contains(message), "expected {message:?} in:\n{stderr}");
    }
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn an_issuers_file_that_is_not_one_is_refused() {
    for (text, message) in [
        ("issuers = 3", "is not a valid issuers file"),
        (
            "[[issuers]]\nissuer = \"https://a.example.com\"\naudiences = [\"p\"]\ncolour = \"red\"\n",
            "unknown field `colour`",
        ),
        ("issuers = []", "names no issuer"),
    ] {
        let path = file_with(text);
        let shown = path.display().to_string();
        assert_refused(&[("PLINTH_OIDC_ISSUERS_FILE", Some(&shown))], message).await;
        let _ = std::fs::remove_file(path);
    }
    assert_refused(
        &[(
            "PLINTH_OIDC_ISSUERS_FILE",
            Some("/nonexistent/issuers.toml"),
        )],
        "PLINTH_OIDC_ISSUERS_FILE /nonexistent/issuers.toml cannot be read",
    )
    .await;
}

#[tokio::test]
async fn an_issuers_file_and_a_single_issuer_together_are_refused() {
    assert_refused(
        &[
            (
                "PLINTH_OIDC_ISSUERS_FILE",
                Some("/nonexistent/issuers.toml"),
            ),
            ("PLINTH_OIDC_ISSUER", Some("https://idp.example.com")),
        ],
        "PLINTH_OIDC_ISSUERS_FILE cannot be combined with PLINTH_OIDC_ISSUER",
    )
    .await;
}

#[tokio::test]
async fn a_zero_key_refresh_period_is_refused() {
    assert_refused(
        &[("PLINTH_OIDC_REFRESH_SECS", Some("0"))],
        "PLINTH_OIDC_REFRESH_SECS must be more than 0",
    )
    .await;
}

#[tokio::test]
async fn a_listen_address_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, stderr) = exit_of(&[("PLINTH_LISTEN", Some(&address))]).await;
    // Exit 1, not 2: the address may be free in a moment (the previous process draining), so
    // a supervisor's restart is worth it.
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("PLINTH_LISTEN {address} cannot be bound")),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
}

#[tokio::test]
async fn an_invalid_kafka_topic_prefix_is_refused() {
    assert_refused(
        &[("PLINTH_KAFKA_TOPIC_PREFIX", Some("no spaces!"))],
        "PLINTH_KAFKA_TOPIC_PREFIX must be 1 to 200 characters of [A-Za-z0-9._-]",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_nats_ordering_is_refused() {
    assert_refused(
        &[("PLINTH_NATS_ORDERING", Some("ordered"))],
        "PLINTH_NATS_ORDERING must be `chained` or `unchained`",
    )
    .await;
}

#[tokio::test]
async fn an_empty_broker_list_is_refused() {
    assert_refused(
        &[("PLINTH_KAFKA_BROKERS", Some(" "))],
        "PLINTH_KAFKA_BROKERS is set but empty",
    )
    .await;
}

#[tokio::test]
async fn every_wrong_setting_is_named_at_once() {
    let stderr = refused(&[
        ("PLINTH_DB_POOL_SIZE", Some("0")),
        ("PLINTH_WRITERS", Some("0")),
    ])
    .await;
    assert!(
        stderr.contains("PLINTH_DB_POOL_SIZE must be at least 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("PLINTH_WRITERS must be at least 1"),
        "{stderr}"
    );
}
