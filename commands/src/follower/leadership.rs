//! Leadership: one process at a time feeds a consumer, by holding a session-level advisory
//! lock. The lock lives on a connection that is never shared or returned to a pool, so that
//! it ends exactly when that connection does: a process that crashes, is killed or loses its
//! network releases it, and a standby retrying the lock takes over from the checkpoint.

use anyhow::Context as _;
use deadpool_postgres::Pool;
use tokio_postgres::NoTls;

/// Which lock: advisory locks are numbers, one `bigint` or two `int`s (key spaces apart).
#[derive(Debug, Clone, Copy)]
pub enum LockKey<'a> {
    /// `pg_try_advisory_lock(bigint)`.
    Number(i64),
    /// `pg_try_advisory_lock(hashtext(space), hashtext(name))`: one lock per name in a space.
    Named { space: &'a str, name: &'a str },
}

/// A connection for holding leadership locks (and doing the holder's own small writes).
/// Dropping it closes the connection, which releases every lock it holds.
#[derive(Debug)]
pub enum LockConnection {
    /// Taken out of the pool for good: returned, it would carry its locks to the next user.
    Pooled(deadpool_postgres::ClientWrapper),
    /// A connection of its own (e.g. to bypass a pooler that does not keep sessions).
    Dedicated(tokio_postgres::Client),
}

impl LockConnection {
    /// Takes a connection out of `pool`.
    pub async fn take(pool: &Pool) -> anyhow::Result<Self> {
        let client = pool
            .get()
            .await
            .context("failed to connect to PostgreSQL")?;
        Ok(Self::Pooled(deadpool_postgres::Object::take(client)))
    }

    /// Opens a connection of its own to `config`.
    pub async fn connect(config: &tokio_postgres::Config) -> anyhow::Result<Self> {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .context("failed to connect to PostgreSQL")?;
        // Ends when the client is dropped (or the connection fails, which the client sees).
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "a leadership connection failed");
            }
        });
        Ok(Self::Dedicated(client))
    }

    /// Takes `key` unless another session holds it. Held until this connection ends.
    pub async fn try_lock(&self, key: LockKey<'_>) -> anyhow::Result<bool> {
        let row = match key {
            LockKey::Number(n) => {
                self.query_one("select pg_try_advisory_lock($1)", &[&n])
                    .await?
            }
            LockKey::Named { space, name } => {
                self.query_one(
                    "select pg_try_advisory_lock(hashtext($1), hashtext($2))",
                    &[&space, &name],
                )
                .await?
            }
        };
        Ok(row.get(0))
    }

    /// Fails once the connection is gone, and with it the locks: the holder must stop.
    pub fn ensure_open(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.is_closed(),
            "the connection holding leadership closed"
        );
        Ok(())
    }
}

impl std::ops::Deref for LockConnection {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &tokio_postgres::Client {
        match self {
            Self::Pooled(client) => client,
            Self::Dedicated(client) => client,
        }
    }
}
