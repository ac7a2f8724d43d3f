//! `plinth bench rebuild`: how fast the read models rebuild from a large log, how much memory
//! that takes, and how fast `access/check` answers over 10,000 tenants and 1,000 resource
//! providers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::Pool;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use plinth_domain::values::{AnnotationValue, Description, Name, QualifiedName, Role, StatusData};
use plinth_domain::{Event, LocationId, ResourceId, ResourceProviderId, Scope, TenantId, UserId};

use super::projection::ProjectionSet;
use super::rebuild::{rebuild, RebuildProgress};
use super::synthetic::LogWriter;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Events in the synthetic log.
    pub events: u64,
    /// Tenants in the tree (capped by the number of events).
    pub tenants: usize,
    pub resource_providers: usize,
    /// Access checks to time.
    pub checks: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            events: 1_000_000,
            tenants: 10_000,
            resource_providers: 1_000,
            checks: 20_000,
        }
    }
}

/// The figures.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub events: u64,
    pub tenants: usize,
    pub resource_providers: usize,
    pub log_write: Duration,
    pub rebuild: Duration,
    pub rebuild_events_per_sec: f64,
    /// Peak resident memory of this process (VmHWM) before and after the rebuild, in KiB.
    pub peak_rss_before_kib: u64,
    pub peak_rss_after_kib: u64,
    pub checks: usize,
    pub allowed: usize,
    pub check_p50_us: u64,
    pub check_p99_us: u64,
    pub check_max_us: u64,
}

/// The peak resident set size of this process, in KiB (Linux; 0 elsewhere).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
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
struct World {
    tenants: Vec<TenantId>,
    /// For each resource provider, the tenant index where it is authorized.
    rps: Vec<(ResourceProviderId, usize)>,
    locations: Vec<LocationId>,
    /// The actors of its events.
    actors: Vec<String>,
}

fn children_of(i: usize, n: usize) -> impl Iterator<Item = usize> {
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

async fn write_log(pool: &Pool, options: &BenchOptions, rng: &mut StdRng) -> anyhow::Result<World> {
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
    Ok(World {
        tenants,
        rps,
        locations: locations.into_iter().map(|(l, _)| l).collect(),
        actors: log.actors().to_vec(),
    })
}

/// Users the synthetic log's events are recorded for, in turn: an actor's audit page then
/// picks one event in 100 from the whole log.
const ACTORS: usize = 100;

/// The synthetic platform's log, written and projected.
#[derive(Debug, Clone)]
pub struct SyntheticPlatform {
    /// The tenant tree, 10-ary: tenant i's parent is tenant (i - 1) / 10.
    pub tenants: Vec<TenantId>,
    /// The actors of its events, each of an equal share of them.
    pub actors: Vec<String>,
}

/// Writes the synthetic log of [`bench_rebuild`] into the (empty, migrated) database behind
/// `pool` and rebuilds every projection from it: for measuring reads on a large log.
pub async fn synthetic_platform(
    pool: &Pool,
    options: &BenchOptions,
) -> anyhow::Result<SyntheticPlatform> {
    let world = write_log(pool, options, &mut StdRng::seed_from_u64(7))
        .await
        .context("failed to write the synthetic log")?;
    rebuild(pool, ProjectionSet::all(), |_| {}).await?;
    Ok(SyntheticPlatform {
        tenants: world.tenants,
        actors: world.actors,
    })
}

/// Writes the synthetic log into the (empty, migrated) database behind `pool`, rebuilds every
/// projection from it, then times access checks.
pub async fn bench_rebuild(
    pool: &Pool,
    options: &BenchOptions,
    mut on_progress: impl FnMut(RebuildProgress) + Send,
) -> anyhow::Result<BenchReport> {
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let world = write_log(pool, options, &mut rng)
        .await
        .context("failed to write the synthetic log")?;
    let log_write = started.elapsed();
    let peak_rss_before_kib = peak_rss_kib();
    let report = rebuild(pool, ProjectionSet::all(), &mut on_progress).await?;
    let peak_rss_after_kib = peak_rss_kib();

    let client = pool.get().await?;
    let n = world.tenants.len();
    let scopes: Vec<Scope> = ["loadbalancer:create", "network:read", "network:write"]
        .iter()
        .map(|s| Scope::parse(s).expect("valid scope"))
        .collect();
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    let mut allowed = 0;
    // Warm the statement cache and the buffer cache first.
    for _ in 0..200 {
        let (rp, _) = &world.rps[rng.gen_range(0..world.rps.len())];
        let t = &world.tenants[rng.gen_range(0..n)];
        super::queries::access_check(&client, rp.as_str(), t.as_str(), &scopes[0]).await?;
    }
    for _ in 0..options.checks {
        let (rp, at) = &world.rps[rng.gen_range(0..world.rps.len())];
        // Half the checks inside the authorized subtree (mostly allowed), half anywhere.
        let tenant = if rng.gen_bool(0.5) {
            let mut t = *at;
            while rng.gen_bool(0.6) {
                let children: Vec<usize> = children_of(t, n).collect();
                if children.is_empty() {
                    break;
                }
                t = children[rng.gen_range(0..children.len())];
            }
            t
        } else {
            rng.gen_range(0..n)
        };
        let scope = &scopes[rng.gen_range(0..scopes.len())];
        let began = Instant::now();
        let ok = super::queries::access_check(
            &client,
            rp.as_str(),
            world.tenants[tenant].as_str(),
            scope,
        )
        .await?;
        histogram.record(began.elapsed().as_micros().max(1) as u64)?;
        allowed += usize::from(ok);
    }
    let _ = &world.locations;
    Ok(BenchReport {
        events: report.events,
        tenants: n,
        resource_providers: world.rps.len(),
        log_write,
        rebuild: report.elapsed,
        rebuild_events_per_sec: report.events_per_second(),
        peak_rss_before_kib,
        peak_rss_after_kib,
        checks: options.checks,
        allowed,
        check_p50_us: histogram.value_at_quantile(0.50),
        check_p99_us: histogram.value_at_quantile(0.99),
        check_max_us: histogram.max(),
    })
}
