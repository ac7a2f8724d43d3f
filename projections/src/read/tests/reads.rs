//! The reads the API answers from, asked for every tenant, resource provider, user and scope
//! of a run and compared with what the naive model answers.

use std::collections::{BTreeMap, BTreeSet};

use plinth_domain::aggregate::{available_to, ResourceProvider};
use plinth_domain::memory::MemoryStore;
use plinth_domain::{effective_role, Lifecycle, Scope, TenantId, UserId};

use super::draw::live;
use crate::read::queries::{self, PageRequest, Viewer};

const CHECKED: [&str; 5] = ["lb:read", "lb:write", "lb:*", "net:read", "net:write"];

/// Asks the read models what the naive model answers, for every tenant, location, resource
/// provider, user and scope of the run.
pub(super) async fn compare_with_model(
    client: &deadpool_postgres::Client,
    store: &MemoryStore,
    users: &[UserId],
) {
    let all = PageRequest {
        after: None,
        limit: 1000,
    };
    let tenants: Vec<(&String, &plinth_domain::aggregate::Tenant)> = store
        .streams
        .iter()
        .filter(|(id, _)| live(store, id))
        .filter_map(|(id, a)| a.as_tenant().map(|t| (id, t)))
        .collect();
    for (id, t) in &tenants {
        let view = queries::tenant(client, &Viewer::Platform, id)
            .await
            .unwrap()
            .expect("tenant")
            .tenant;
        assert_eq!(view.name, t.name.as_str());
        assert_eq!(view.parent_id, t.parent_id.as_ref().map(|p| p.to_string()));
        // Descendants from the model: live tenants whose path contains this one.
        let expected: BTreeSet<String> = tenants
            .iter()
            .filter(|(_, d)| d.path.iter().any(|a| a.as_str() == id.as_str()))
            .map(|(d, _)| (*d).clone())
            .collect();
        let got: BTreeSet<String> = queries::descendants(client, &Viewer::Platform, id, None, &all)
            .await
            .unwrap()
            .unwrap()
            .items
            .into_iter()
            .map(|d| d.tenant.id)
            .collect();
        assert_eq!(got, expected, "descendants of {id}");
        // Usable locations.
        let tenant_id = TenantId::parse(id).unwrap();
        let expected: BTreeSet<(String, String)> = store
            .streams
            .iter()
            .filter(|(lid, _)| live(store, lid))
            .filter_map(|(lid, a)| a.as_location().map(|l| (lid, l)))
            .filter(|(_, l)| available_to(&l.tenant_id, &l.available_to, &tenant_id, &t.path))
            .map(|(lid, l)| {
                let via = if l.tenant_id == tenant_id {
                    "owned"
                } else {
                    "available"
                };
                ((*lid).clone(), via.to_owned())
            })
            .collect();
        let got: BTreeSet<(String, String)> =
            queries::tenant_locations(client, &Viewer::Platform, id, &all)
                .await
                .unwrap()
                .unwrap()
                .items
                .into_iter()
                .map(|u| (u.location.id, u.via))
                .collect();
        assert_eq!(got, expected, "locations usable by {id}");
        // Access checks for every resource provider and scope.
        for (rp_id, agg) in &store.streams {
            let Some(rp) = agg.as_resource_provider() else {
                continue;
            };
            for scope in CHECKED {
                let scope = Scope::parse(scope).unwrap();
                let expected = agg.lifecycle != Lifecycle::Deleted
                    && rp.holds_scope(&tenant_id, &t.path, &scope);
                let got = queries::access_check(client, rp_id, id, &scope)
                    .await
                    .unwrap();
                assert_eq!(got, expected, "{rp_id} holds {scope} in {id}");
            }
        }
        // Who may read it (any effective role).
        for user in users {
            let expected = effective_role(store, user, &tenant_id).is_some();
            let got = queries::can_view_tenant(client, &Viewer::User(user.to_string()), id)
                .await
                .unwrap();
            assert_eq!(got, expected, "{user} reads {id}");
        }
        // Metadata.
        let agg = &store.streams[id.as_str()];
        let metadata = queries::metadata(client, &Viewer::Platform, id)
            .await
            .unwrap()
            .expect("metadata");
        let annotations: BTreeMap<String, String> = agg
            .metadata
            .annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got: BTreeMap<String, String> = metadata
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(got, annotations, "annotations of {id}");
        assert_eq!(metadata.statuses.len(), agg.metadata.statuses.len());
        let finalizers: Vec<String> = agg
            .metadata
            .finalizers
            .iter()
            .map(|f| f.to_string())
            .collect();
        assert_eq!(metadata.finalizers, finalizers);
        assert_eq!(
            metadata.deletion_requested_at.is_some(),
            agg.metadata.deletion_requested_at.is_some()
        );
    }
    // Roots.
    let expected: BTreeSet<String> = tenants
        .iter()
        .filter(|(_, t)| t.parent_id.is_none())
        .map(|(id, _)| (*id).clone())
        .collect();
    let got: BTreeSet<String> = queries::roots(client, &Viewer::Platform, &all)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(got, expected, "roots");
    resource_providers_agree(client, store, &tenants).await;
}

/// The scopes `rp` holds at `tenant` (whose ancestors are `path`): those of its authorizations
/// there, or at an ancestor with include_subtenants, where it is available.
fn held_scopes(rp: &ResourceProvider, tenant: &TenantId, path: &[TenantId]) -> BTreeSet<String> {
    let at_ancestors = path.iter().enumerate().map(|(i, a)| (a, &path[..i]));
    std::iter::once((tenant, path))
        .chain(at_ancestors)
        .filter_map(|(at, at_path)| {
            let auth = rp.authorizations.get(at)?;
            ((at == tenant || auth.include_subtenants) && rp.is_available_at(at, at_path))
                .then_some(auth)
        })
        .flat_map(|auth| auth.scopes.iter().map(|s| s.to_string()))
        .collect()
}

/// The two reads built on authorizations besides the access check: the resource providers a
/// tenant may use (and what they hold there), and the tenants where a resource provider holds
/// scopes.
async fn resource_providers_agree(
    client: &deadpool_postgres::Client,
    store: &MemoryStore,
    tenants: &[(&String, &plinth_domain::aggregate::Tenant)],
) {
    let all = PageRequest {
        after: None,
        limit: 1000,
    };
    let rps: Vec<(&String, &ResourceProvider)> = store
        .streams
        .iter()
        .filter(|(id, _)| live(store, id))
        .filter_map(|(id, a)| a.as_resource_provider().map(|r| (id, r)))
        .collect();
    // (rp, available, held scopes) by tenant, and (tenant, held scopes) by rp.
    let mut by_rp: BTreeMap<&str, BTreeSet<(String, Vec<String>)>> = rps
        .iter()
        .map(|(id, _)| (id.as_str(), BTreeSet::new()))
        .collect();
    for (id, t) in tenants {
        let tenant_id = TenantId::parse(id).unwrap();
        let mut expected = BTreeSet::new();
        for (rp_id, rp) in &rps {
            let held: Vec<String> = held_scopes(rp, &tenant_id, &t.path).into_iter().collect();
            let available = rp.is_available_at(&tenant_id, &t.path);
            if !held.is_empty() {
                by_rp
                    .get_mut(rp_id.as_str())
                    .unwrap()
                    .insert(((*id).clone(), held.clone()));
            }
            if available || !held.is_empty() {
                expected.insert(((*rp_id).clone(), available, !held.is_empty(), held));
            }
        }
        let got: BTreeSet<(String, bool, bool, Vec<String>)> =
            queries::tenant_resource_providers(client, &Viewer::Platform, id, &all)
                .await
                .unwrap()
                .unwrap()
                .items
                .into_iter()
                .map(|r| (r.id, r.available, r.authorized, r.scopes))
                .collect();
        assert_eq!(got, expected, "resource providers of {id}");
    }
    for (rp_id, expected) in by_rp {
        let got: BTreeSet<(String, Vec<String>)> =
            queries::resource_provider_tenants(client, &Viewer::Platform, rp_id, &all)
                .await
                .unwrap()
                .unwrap()
                .items
                .into_iter()
                .map(|u| (u.tenant_id, u.scopes.unwrap()))
                .collect();
        assert_eq!(got, expected, "tenants where {rp_id} holds scopes");
    }
}
