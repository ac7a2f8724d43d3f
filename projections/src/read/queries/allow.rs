//! May a principal do an action on a resource (`GET|POST /api/v1/allow`)? Decided on the read
//! models, as every read is: the resource's governing tenant (`read.resources`), then the
//! person's effective role there (`read.grants` on the tenant and its ancestors) or the
//! resource provider's scopes there (its live authorizations, where it is still available).

use deadpool_postgres::GenericClient;

use plinth_domain::{Action, Actor, Principal, Role};

use super::resource_providers::access_check;

/// Whether `actor` may do `action` on resource `id`. A resource that does not exist (or was
/// deleted) allows nothing, to anyone: the answer is the same as a denial, so ids cannot be
/// probed.
pub async fn allowed(
    client: &impl GenericClient,
    actor: &Actor,
    id: &str,
    action: &Action,
) -> anyhow::Result<bool> {
    let Some(tenant) = governing_tenant(client, id).await? else {
        return Ok(false);
    };
    if actor.platform_admin {
        return Ok(true);
    }
    match &actor.principal {
        Principal::User(user) => {
            let role = effective_role(client, user.as_str(), &tenant).await?;
            Ok(role.is_some_and(|r| action.allowed_to_role(r)))
        }
        Principal::ResourceProvider { id: rp, .. } => {
            access_check(client, rp.as_str(), &tenant, action.scope()).await
        }
    }
}

/// The live tenant that governs resource `id` (a tenant governs itself), if it is live too.
async fn governing_tenant(client: &impl GenericClient, id: &str) -> anyhow::Result<Option<String>> {
    let statement = client
        .prepare_cached(
            "select r.tenant_id from read.resources r join read.tenants t on t.id = r.tenant_id
             where r.id = $1 and r.lifecycle <> 'deleted' and t.lifecycle <> 'deleted'",
        )
        .await?;
    Ok(client
        .query_opt(&statement, &[&id])
        .await?
        .map(|row| row.get(0)))
}

/// `user`'s role in effect on `tenant`: the highest of its grants on the tenant and its
/// ancestors (one primary-key probe per tenant of the chain).
async fn effective_role(
    client: &impl GenericClient,
    user: &str,
    tenant: &str,
) -> anyhow::Result<Option<Role>> {
    let statement = client
        .prepare_cached(
            "select max(g.rank) from read.tenants t
                 join read.grants g on g.user_id = $1 and g.tenant_id = any(t.ancestors || t.id)
             where t.id = $2",
        )
        .await?;
    let rank: Option<i16> = client
        .query_one(&statement, &[&user, &tenant])
        .await?
        .get(0);
    Ok(match rank {
        Some(3) => Some(Role::Admin),
        Some(2) => Some(Role::Editor),
        Some(1) => Some(Role::Viewer),
        _ => None,
    })
}
