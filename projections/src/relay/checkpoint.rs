//! A relay's checkpoint (`relay_checkpoints`, see `migrations/V20__relay.sql`) and its
//! leadership lock.

use deadpool_postgres::Pool;
use plinth_commands::follower::{LockConnection, LockKey};
use plinth_commands::Checkpoint;
use tokio_postgres::Client;

/// The checkpoint of relay `name`: every event at or before it was confirmed by the broker.
/// `None` if that relay never ran.
pub async fn checkpoint(pool: &Pool, name: &str) -> anyhow::Result<Option<Checkpoint>> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "select tx, position from relay_checkpoints where name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|r| Checkpoint {
        tx: r.get(0),
        position: r.get(1),
    }))
}

/// Loads the checkpoint of `name`, creating it at the start of the log.
pub(crate) async fn load(client: &Client, name: &str) -> anyhow::Result<Checkpoint> {
    client
        .execute(
            "insert into relay_checkpoints (name) values ($1) on conflict (name) do nothing",
            &[&name],
        )
        .await?;
    let row = client
        .query_one(
            "select tx, position from relay_checkpoints where name = $1",
            &[&name],
        )
        .await?;
    Ok(Checkpoint {
        tx: row.get(0),
        position: row.get(1),
    })
}

pub(crate) async fn save(client: &Client, name: &str, at: Checkpoint) -> anyhow::Result<()> {
    client
        .execute(
            "update relay_checkpoints set tx = $2, position = $3, updated_at = now() where name = $1",
            &[&name, &at.tx, &at.position],
        )
        .await?;
    Ok(())
}

/// Tries to become the leader of `name`. A session-level advisory lock: it is held until this
/// connection ends, so a crashed or killed leader releases it with its connection. The
/// two-key form lives in a key space apart from the one-key migration lock.
pub(crate) async fn try_lead(client: &LockConnection, name: &str) -> anyhow::Result<bool> {
    client
        .try_lock(LockKey::Named {
            space: "plinth_relay",
            name,
        })
        .await
}
