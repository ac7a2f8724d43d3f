//! May a principal do an action on a resource (`GET|POST /api/v1/allow`)? Decided on the read
//! models, as every read is: the resource's governing tenant (`read.resources`), then the
//! person's effective role there (`read.grants` on the tenant and its ancestors) or the
//! resource provider's scopes there (its live authorizations, where it is still available).
//! One statement per check, as `/v1/access/check` is.

use deadpool_postgres::GenericClient;

use plinth_domain::{Action, Actor, Principal, Role};

use super::resource_providers::available_at_sql;

/// The live resource `$1` and its live governing tenant `t` (a tenant governs itself).
const GOVERNED: &str = "read.resources res join read.tenants t on t.id = res.tenant_id
     where res.id = $1 and res.lifecycle <> 'deleted' and t.lifecycle <> 'deleted'";

/// Whether `actor` may do `action` on resource `id`. A resource that does not exist (or was
/// deleted) allows nothing, to anyone: the answer is the same as a denial, so ids cannot be
/// probed.
pub async fn allowed(
    client: &impl GenericClient,
    actor: &Actor,
    id: &str,
    action: &Action,
) -> anyhow::Result<bool> {
    if actor.platform_admin {
        return exists(client, id).await;
    }
    match &actor.principal {
        Principal::User(user) => {
            let role = effective_role(client, id, user.as_str()).await?;
            Ok(role.is_some_and(|r| action.allowed_to_role(r)))
        }
        Principal::ResourceProvider { id: rp, .. } => {
            holds_scope(client, id, rp.as_str(), action).await
        }
    }
}

async fn exists(client: &impl GenericClient, id: &str) -> anyhow::Result<bool> {
    let statement = client
        .prepare_cached(&format!("select exists (select 1 from {GOVERNED})"))
        .await?;
    Ok(client.query_one(&statement, &[&id]).await?.get(0))
}

/// `user`'s role in effect on the tenant governing resource `id`: the highest of its grants on
/// the tenant and its ancestors (one primary-key probe per tenant of the chain).
async fn effective_role(
    client: &impl GenericClient,
    id: &str,
    user: &str,
) -> anyhow::Result<Option<Role>> {
    let statement = client
        .prepare_cached(
            "select max(g.rank)
             from read.resources res
                 join read.tenants t on t.id = res.tenant_id
                 join read.grants g on g.user_id = $2 and g.tenant_id = any(t.ancestors || t.id)
             where res.id = $1 and res.lifecycle <> 'deleted' and t.lifecycle <> 'deleted'",
        )
        .await?;
    let rank: Option<i16> = client.query_one(&statement, &[&id, &user]).await?.get(0);
    Ok(match rank {
        Some(3) => Some(Role::Admin),
        Some(2) => Some(Role::Editor),
        Some(1) => Some(Role::Viewer),
        _ => None,
    })
}

/// Whether resource provider `rp` holds the action's scope (or its resource's `:*`) in the
/// tenant governing resource `id`: a live authorization at the tenant or an ancestor (with
/// include_subtenants), where the provider is still available.
async fn holds_scope(
    client: &impl GenericClient,
    id: &str,
    rp: &str,
    action: &Action,
) -> anyhow::Result<bool> {
    let sql = format!(
        "select exists (
             select 1
             from {GOVERNED}
               and exists (
                   select 1
                   from read.rp_authorizations a
                       join read.tenants u on u.id = a.tenant_id
                       join read.resource_providers r on r.id = $2 and r.lifecycle <> 'deleted'
                   where a.rp_id = $2 and a.tenant_id = any(t.ancestors || t.id)
                     and (a.tenant_id = t.id or a.include_subtenants)
                     and a.scopes && array[$3::text, $4::text]
                     and {}))",
        available_at_sql("$2", "u")
    );
    let statement = client.prepare_cached(&sql).await?;
    let wildcard = format!("{}:*", action.resource());
    let row = client
        .query_one(&statement, &[&id, &rp, &action.scope().as_str(), &wildcard])
        .await?;
    Ok(row.get(0))
}
