//! Who may do what: a tenant's access grants (direct and inherited) and a user's roles.

use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::tenants::visible_tenant;
use super::{Page, PageRequest, Viewer};

/// A grant that applies at a tenant.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct GrantView {
    pub user_id: String,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub role: String,
    /// The tenant the grant was given on: the tenant asked about, or one of its ancestors.
    pub source_tenant_id: String,
    pub inherited: bool,
    #[serde(skip)]
    key: String,
}

/// Why a grants query was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantsRefusal {
    /// The tenant does not exist or the viewer may not see it (404).
    NotVisible,
    /// The viewer sees the tenant but is not its administrator (403).
    NotAdmin,
}

/// Rank of `admin` in `read.grants`.
const ADMIN_RANK: i16 = 3;

/// The grants that apply at tenant `id` (on it and on its ancestors), root first, for the
/// tenant's administrators. One index probe per ancestor.
pub async fn tenant_grants(
    client: &impl GenericClient,
    viewer: &Viewer,
    id: &str,
    page: &PageRequest,
) -> anyhow::Result<Result<Page<GrantView>, GrantsRefusal>> {
    let Some(t) = visible_tenant(client, viewer, id).await? else {
        return Ok(Err(GrantsRefusal::NotVisible));
    };
    if t.rank < Some(ADMIN_RANK) {
        return Ok(Err(GrantsRefusal::NotAdmin));
    }
    // The cursor is "<depth of the source>:<user id>", the sort key.
    let (after_depth, after_user) = page
        .after()
        .split_once(':')
        .and_then(|(d, u)| Some((d.parse::<i32>().ok()?, u.to_owned())))
        .unwrap_or((-1, String::new()));
    let rows = client
        .query(
            "select g.user_id, u.issuer, u.subject, g.role, g.tenant_id, s.depth
             from read.grants g
                 join read.tenants s on s.id = g.tenant_id
                 left join read.users u on u.id = g.user_id
             where g.tenant_id = any($1::text[]) and (s.depth, g.user_id) > ($2, $3)
             order by s.depth, g.user_id limit $4",
            &[
                &[t.ancestors.as_slice(), &[id.to_owned()]].concat(),
                &after_depth,
                &after_user,
                &page.fetch(),
            ],
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            let source: String = r.get("tenant_id");
            let user_id: String = r.get("user_id");
            GrantView {
                key: format!("{}:{user_id}", r.get::<_, i32>("depth")),
                user_id,
                issuer: r.get("issuer"),
                subject: r.get("subject"),
                role: r.get("role"),
                inherited: source != id,
                source_tenant_id: source,
            }
        })
        .collect();
    Ok(Ok(Page::from_rows(items, page.limit, |g: &GrantView| {
        g.key.clone()
    })))
}

/// A user's role on a tenant subtree.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RoleView {
    /// The tenant the grant is on; the role applies to its whole subtree.
    pub tenant_id: String,
    pub tenant_name: String,
    /// The role granted here.
    pub role: String,
    /// The role in effect here: the highest of this grant and those on the tenant's ancestors.
    pub effective_role: String,
    #[serde(skip)]
    path: String,
}

/// User `user_id`'s grants on live tenants, depth-first, each with its effective role; for the
/// user itself and platform administrators (anyone else: `None`, as if it did not exist).
pub async fn user_roles(
    client: &impl GenericClient,
    viewer: &Viewer,
    user_id: &str,
    page: &PageRequest,
) -> anyhow::Result<Option<Page<RoleView>>> {
    if matches!(viewer, Viewer::User(u) if u != user_id) {
        return Ok(None);
    }
    let known = client
        .query_opt("select 1 from read.users where id = $1", &[&user_id])
        .await?
        .is_some();
    if !known {
        return Ok(None);
    }
    let rows = client
        .query(
            "select t.id, t.name, t.path, g.role,
                    (select case max(e.rank) when 3 then 'admin' when 2 then 'editor' else 'viewer' end
                     from read.grants e
                     where e.user_id = $1 and e.tenant_id = any(t.ancestors || t.id)) as effective
             from read.grants g join read.tenants t on t.id = g.tenant_id
             where g.user_id = $1 and t.lifecycle <> 'deleted' and t.path > $2
             order by t.path limit $3",
            &[&user_id, &page.after(), &page.fetch()],
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| RoleView {
            tenant_id: r.get("id"),
            tenant_name: r.get("name"),
            role: r.get("role"),
            effective_role: r.get("effective"),
            path: r.get("path"),
        })
        .collect();
    Ok(Some(Page::from_rows(items, page.limit, |r: &RoleView| {
        r.path.clone()
    })))
}
