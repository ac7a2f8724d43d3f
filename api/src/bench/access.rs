//! Access-check latency: `queries::access_check`, the statement behind `GET /v1/access/check`,
//! and `queries::allowed`, behind `GET /api/v1/allow` (HTTP aside), on a projected synthetic
//! platform. Run by `plinth bench rebuild` on its log.

use std::time::Instant;

use deadpool_postgres::Client;
use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;

use plinth_domain::{Action, Actor, Scope, UserId};
use plinth_projections::read::queries;
use plinth_test_support::{children_of, SyntheticPlatform};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccessReport {
    pub(crate) tenants: usize,
    pub(crate) checks: usize,
    pub(crate) allowed: usize,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    /// `/api/v1/allow`'s check, for people (by role) and resource providers (by scope).
    pub(crate) allow: AllowReport,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AllowReport {
    pub(crate) checks: usize,
    pub(crate) allowed: usize,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
}

/// Times `checks` access checks: half inside a resource provider's authorized subtree (mostly
/// allowed), half anywhere in the tree.
pub(crate) async fn measure(
    client: &Client,
    world: &SyntheticPlatform,
    checks: usize,
    rng: &mut StdRng,
) -> anyhow::Result<AccessReport> {
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
        queries::access_check(client, rp.as_str(), t.as_str(), &scopes[0]).await?;
    }
    for _ in 0..checks {
        let (rp, at) = &world.rps[rng.gen_range(0..world.rps.len())];
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
        let ok = queries::access_check(client, rp.as_str(), world.tenants[tenant].as_str(), scope)
            .await?;
        histogram.record(began.elapsed().as_micros().max(1) as u64)?;
        allowed += usize::from(ok);
    }
    Ok(AccessReport {
        tenants: n,
        checks,
        allowed,
        p50_us: histogram.value_at_quantile(0.50),
        p99_us: histogram.value_at_quantile(0.99),
        max_us: histogram.max(),
        allow: measure_allow(client, world, checks, rng).await?,
    })
}

/// A tenant below `at` (itself or a descendant), or anywhere, half the time each.
fn pick_tenant(at: usize, n: usize, rng: &mut StdRng) -> usize {
    if !rng.gen_bool(0.5) {
        return rng.gen_range(0..n);
    }
    let mut t = at;
    while rng.gen_bool(0.6) {
        let children: Vec<usize> = children_of(t, n).collect();
        if children.is_empty() {
            break;
        }
        t = children[rng.gen_range(0..children.len())];
    }
    t
}

/// Times `checks` permission checks of `/api/v1/allow` on tenants: half by resource providers
/// (below where they are authorized half of those), half by people (each with a viewer's role
/// somewhere); actions `<type>_<verb>` of a few types and verbs.
async fn measure_allow(
    client: &Client,
    world: &SyntheticPlatform,
    checks: usize,
    rng: &mut StdRng,
) -> anyhow::Result<AllowReport> {
    let n = world.tenants.len();
    let actions: Vec<Action> = ["loadbalancer_create", "loadbalancer_get", "network_get"]
        .iter()
        .map(|a| Action::parse(a).expect("valid action"))
        .collect();
    let people: Vec<UserId> = world
        .actors
        .iter()
        .filter_map(|a| UserId::parse(a).ok())
        .collect();
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    let mut allowed = 0;
    for round in 0..(200 + checks) {
        let (actor, tenant) = if people.is_empty() || rng.gen_bool(0.5) {
            let (rp, at) = &world.rps[rng.gen_range(0..world.rps.len())];
            let actor = Actor::resource_provider(rp.clone(), "bench".into(), "bench".into());
            (actor, pick_tenant(*at, n, rng))
        } else {
            let person = people[rng.gen_range(0..people.len())].clone();
            (Actor::user(person, false), rng.gen_range(0..n))
        };
        let action = &actions[rng.gen_range(0..actions.len())];
        let began = Instant::now();
        let ok = queries::allowed(client, &actor, world.tenants[tenant].as_str(), action).await?;
        // The first 200 warm the statement cache and the buffer cache.
        if round >= 200 {
            histogram.record(began.elapsed().as_micros().max(1) as u64)?;
            allowed += usize::from(ok);
        }
    }
    Ok(AllowReport {
        checks,
        allowed,
        p50_us: histogram.value_at_quantile(0.50),
        p99_us: histogram.value_at_quantile(0.99),
        max_us: histogram.max(),
    })
}
