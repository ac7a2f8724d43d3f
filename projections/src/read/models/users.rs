//! Users (`read.users`, who they are at their identity provider) and their access grants
//! (`read.grants`, a role per (user, tenant)): what the authorization of reads looks up. Part
//! of the `tenants` projection, with the tenant tree.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use plinth_domain::{Event, Role};

use super::engine::{
    unzip4, Entities, Keyed, KeyedTable, Patch, Patched, Row, Staged, Table, Value,
};
use super::Envelope;

pub(super) const TABLES: &[Table] = &[Table::entity::<UserRow>(), Table::Keyed(&GRANTS)];

/// The role and its rank by (user, tenant).
const GRANTS: KeyedTable = KeyedTable {
    name: "grants",
    key: ("user_id", "tenant_id"),
    values: &[
        Value {
            column: "role",
            param: "text[]",
            upsert: "u.role",
            staged: "txt",
        },
        Value {
            column: "rank",
            param: "int2[]",
            upsert: "u.rank",
            staged: "num",
        },
    ],
};

/// What `read.users` holds.
#[derive(Debug)]
struct UserRow {
    id: String,
    issuer: String,
    subject: String,
    created_at: DateTime<Utc>,
}

impl Row for UserRow {
    const TABLE: &'static str = "users";
    const COLUMNS: &'static str = "id, issuer, subject, created_at";
    const PATCHED: Patched = Patched::Never;
    fn types() -> Vec<Type> {
        vec![Type::TEXT, Type::TEXT, Type::TEXT, Type::TIMESTAMPTZ]
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn patch(&mut self, _: &Patch) {}
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![&self.id, &self.issuer, &self.subject, &self.created_at]
    }
}

/// The rank stored beside a role, so that `max()` gives the effective role.
pub(crate) fn role_rank(role: Role) -> i16 {
    match role {
        Role::Viewer => 1,
        Role::Editor => 2,
        Role::Admin => 3,
    }
}

/// One batch's changes to users and grants.
#[derive(Debug, Default)]
pub(super) struct Users {
    users: Entities<UserRow>,
    grants: Keyed<(&'static str, i16)>,
}

impl Users {
    pub(super) fn add(&mut self, e: &Envelope<'_>, event: &Event) {
        use Event as E;
        match event {
            E::UserCreated {
                user_id,
                issuer,
                subject,
            } => self.users.create(UserRow {
                id: user_id.to_string(),
                issuer: issuer.clone(),
                subject: subject.clone(),
                created_at: e.recorded_at,
            }),
            E::TenantAccessGranted {
                tenant_id,
                user_id,
                role,
            } => self.grants.put(
                user_id.as_str(),
                tenant_id.as_str(),
                (role.as_str(), role_rank(*role)),
            ),
            E::TenantAccessRevoked { tenant_id, user_id } => {
                self.grants.remove(user_id.as_str(), tenant_id.as_str())
            }
            _ => {}
        }
    }

    pub(super) async fn flush(&self, tx: &Transaction<'_>, schema: &str) -> anyhow::Result<()> {
        self.users.flush(tx, schema).await?;
        let up = self.grants.delete(tx, schema, &GRANTS).await?;
        if !up.is_empty() {
            let (a, b, role, rank) = unzip4(up.iter().map(|(a, b, v)| (*a, *b, v.0, v.1)));
            GRANTS.upsert(tx, schema, &[&a, &b, &role, &rank]).await?;
        }
        Ok(())
    }

    pub(super) async fn stage(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        seq: i64,
    ) -> anyhow::Result<()> {
        self.users.stage(tx, schema, seq).await?;
        self.grants
            .stage(tx, schema, &GRANTS, seq, |v| Staged {
                txt: Some(v.0),
                num: Some(v.1),
                ..Staged::default()
            })
            .await
    }
}
