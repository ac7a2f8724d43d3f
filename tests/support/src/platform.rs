//! A synthetic platform's log, written in bulk: a 10-ary tenant tree, locations and resource
//! providers made available and authorized in subtrees, users with grants, then the metadata
//! and renames a busy platform records most. For measuring (`plinth bench rebuild`, `bench
//! audit`) and for tests on a large log; the caller projects it if it needs read models.

use std::collections::BTreeSet;

use deadpool_postgres::Pool;
use rand::rngs::StdRng;
use rand::Rng;

use plinth_domain::values::{AnnotationValue, Description, Name, QualifiedName, Role, StatusData};
use plinth_domain::{Event, LocationId, ResourceId, ResourceProviderId, Scope, TenantId, UserId};

use crate::LogWriter;

/// The size of the platform to write.
#[derive(Debug, Clone)]
pub struct PlatformShape {
    /// Events in the log.
    pub events: u64,
    /// Tenants in the tree (capped by the number of events).
    pub tenants: usize,
    pub resource_providers: usize,
}

impl Default for PlatformShape {
    fn default() -> Self {
        Self {
            events: 1_000_000,
            tenants: 10_000,
            resource_providers: 1_000,
        }
    }
}

fn name(s: &str) -> Name {
    Name::parse(s).expect("valid name")
}

fn qn(s: &str) -> QualifiedName {
    QualifiedName::parse(s).expect("valid qualified name")
}

/// The synthetic platform: a 10-ary tenant tree (tenant i's parent is (i-1)/10), locations,
/// resource providers each available and authorized (with include_subtenants) in a subtree of
/// its owner, users with grants; then metadata and renames up to the event count.
#[derive(Debug, Clone)]
pub struct SyntheticPlatform {
    /// The tenant tree, 10-ary: tenant i's parent is tenant (i - 1) / 10.
    pub tenants: Vec<TenantId>,
    /// For each resource provider, the tenant index where it is authorized.
    pub rps: Vec<(ResourceProviderId, usize)>,
    pub locations: Vec<LocationId>,
    /// The actors of its events, each of an equal share of them.
    pub actors: Vec<String>,
}

/// The indices of tenant `i`'s children in a tree of `n` tenants.
pub fn children_of(i: usize, n: usize) -> impl Iterator<Item = usize> {
    (10 * i + 1..=10 * i + 10).filter(move |c| *c < n)
}

fn path_of(i: usize, tenants: &[TenantId]) -> Vec<TenantId> {
    let mut path = Vec::new();
    let mut at = i;
    while at > 0 {
        at = (at - 1) / 10;
        path.push(tenants[at].clone());
    }
    path.reverse();
    path
}

/// Events per transaction of the synthetic log. Short transactions: an open one holds back the
/// cluster's snapshot horizon, which every gap-safe reader waits on (tests running beside a
/// synthetic log's writing would wait seconds for their own events otherwise).
const WRITE_BATCH: usize = 10_000;

/// Writes the synthetic log into the (empty, migrated) database behind `pool`, drawing its
/// choices from `rng` (seed it for a repeatable log).
pub async fn write_platform_log(
    pool: &Pool,
    options: &PlatformShape,
    rng: &mut StdRng,
) -> anyhow::Result<SyntheticPlatform> {
    let mut client = pool.get().await?;
    let mut log = LogWriter::with_actors(ACTORS);
    let mut batch: Vec<(String, Event)> = Vec::with_capacity(WRITE_BATCH);
    let mut written = 0u64;
    let total = options.events;
    macro_rules! push {
        ($stream:expr, $event:expr) => {{
            batch.push(($stream.to_string(), $event));
            written += 1;
            if batch.len() >= WRITE_BATCH {
                log.write(&mut client, &batch).await?;
                batch.clear();
            }
        }};
    }
    let n_tenants = options.tenants.min((total / 10).max(2) as usize);
    let mut tenants = Vec::with_capacity(n_tenants);
    for i in 0..n_tenants {
        let id = TenantId::generate();
        tenants.push(id.clone());
        let path = path_of(i, &tenants);
        push!(
            id,
            Event::TenantCreated {
                tenant_id: id.clone(),
                name: name(&format!("tenant-{i}")),
                description: None,
                parent_id: path.last().cloned(),
                depth: path.len() as u32,
                path,
            }
        );
    }
    let users: Vec<UserId> = (0..100)
        .map(|i| UserId::for_identity("bench", &format!("user-{i}")))
        .collect();
    for u in &users {
        push!(
            u,
            Event::UserCreated {
                user_id: u.clone(),
                issuer: "bench".into(),
                subject: u.to_string(),
            }
        );
    }
    for u in &users {
        let t = &tenants[rng.gen_range(0..n_tenants)];
        push!(
            t,
            Event::TenantAccessGranted {
                tenant_id: t.clone(),
                user_id: u.clone(),
                role: Role::Viewer,
            }
        );
    }
    // Owners are tenants with children, so that availability goes to a strict descendant.
    let owners: Vec<usize> = (0..n_tenants)
        .filter(|i| children_of(*i, n_tenants).next().is_some())
        .collect();
    let mut locations = Vec::new();
    for k in 0..(n_tenants / 10).max(1) {
        let owner = owners[k % owners.len()];
        let id = LocationId::generate();
        push!(
            id,
            Event::LocationCreated {
                location_id: id.clone(),
                tenant_id: tenants[owner].clone(),
                name: name(&format!("location-{k}")),
                description: None,
            }
        );
        let child = children_of(owner, n_tenants)
            .next()
            .expect("owners have children");
        push!(
            id,
            Event::LocationMadeAvailable {
                location_id: id.clone(),
                tenant_id: tenants[child].clone(),
                include_subtenants: true,
            }
        );
        locations.push((id, owner));
    }
    let scopes: BTreeSet<Scope> = ["loadbalancer:*", "network:read"]
        .iter()
        .map(|s| Scope::parse(s).expect("valid scope"))
        .collect();
    let n_rps = options.resource_providers.min((total / 40).max(1) as usize);
    let mut rps = Vec::with_capacity(n_rps);
    for k in 0..n_rps {
        let owner = owners[rng.gen_range(0..owners.len())];
        let at: Vec<usize> = children_of(owner, n_tenants).collect();
        let at = at[rng.gen_range(0..at.len())];
        let id = ResourceProviderId::generate();
        push!(
            id,
            Event::ResourceProviderCreated {
                resource_provider_id: id.clone(),
                tenant_id: tenants[owner].clone(),
                name: name(&format!("rp-{k}")),
                description: None,
                scopes: scopes.clone(),
            }
        );
        push!(
            id,
            Event::ResourceProviderMadeAvailable {
                resource_provider_id: id.clone(),
                tenant_id: tenants[at].clone(),
                include_subtenants: true,
            }
        );
        push!(
            id,
            Event::ProviderAuthorized {
                resource_provider_id: id.clone(),
                tenant_id: tenants[at].clone(),
                include_subtenants: true,
                scopes: scopes.clone(),
            }
        );
        let same_owner: Vec<&LocationId> = locations
            .iter()
            .filter(|(_, o)| *o == owner)
            .map(|(l, _)| l)
            .collect();
        if let Some(l) = same_owner.first() {
            push!(
                id,
                Event::ResourceProviderLocationAdded {
                    resource_provider_id: id.clone(),
                    location_id: (*l).clone(),
                }
            );
        }
        rps.push((id, at));
    }
    // The bulk: what a busy platform records most, metadata and renames.
    let status =
        StatusData::parse(serde_json::json!({"ready": true, "replicas": 3})).expect("valid status");
    let mut k = 0u64;
    while written < total {
        k += 1;
        let t = rng.gen_range(0..n_tenants);
        let resource: ResourceId = tenants[t].clone().into();
        let event = match k % 10 {
            0 => Event::TenantUpdated {
                tenant_id: tenants[t].clone(),
                name: name(&format!("tenant-{t}")),
                description: Some(Description::parse(&format!("renamed {k}")).expect("valid")),
            },
            1..=4 => Event::AnnotationSet {
                resource_id: resource,
                key: qn(&format!("example.com/key-{}", k % 7)),
                value: AnnotationValue::parse(&format!("value-{k}")).expect("valid"),
            },
            5..=7 => Event::StatusSet {
                resource_id: resource,
                source: qn(&format!("example.com/probe-{}", k % 3)),
                data: status.clone(),
            },
            8 => Event::FinalizerAdded {
                resource_id: resource,
                finalizer: qn("example.com/protect"),
            },
            _ => Event::AnnotationRemoved {
                resource_id: resource,
                key: qn(&format!("example.com/key-{}", (k + 3) % 7)),
            },
        };
        push!(tenants[t], event);
    }
    log.write(&mut client, &batch).await?;
    Ok(SyntheticPlatform {
        tenants,
        rps,
        locations: locations.into_iter().map(|(l, _)| l).collect(),
        actors: log.actors().to_vec(),
    })
}

/// Users the synthetic log's events are recorded for, in turn: an actor's audit page then
/// picks one event in 100 from the whole log.
const ACTORS: usize = 100;
