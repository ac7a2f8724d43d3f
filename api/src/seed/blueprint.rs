//! The platform to seed, decided before anything is written: the tenant tree, users and their
//! grants, locations, resource providers and providers with their availability, locations and
//! authorizations, and what is deleted or revoked at the end. Everything refers to everything
//! else by index, because the write side picks the ids; `run` turns the blueprint into
//! commands once the ids exist.
//!
//! Every choice comes from one `StdRng` seeded with `--seed`, in a fixed order, so the same
//! seed (and the same Plinth build) gives the same platform. Every planned command is valid by
//! construction (availability only to strict descendants, locations only where usable,
//! authorizations only where available, deletes only of what has no dependents), so each one
//! appends exactly the events the plan counts.

use std::collections::{BTreeSet, HashMap, HashSet};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::names;

/// What was asked for.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub(crate) tenants: usize,
    pub(crate) events: u64,
    pub(crate) seed: u64,
    /// Appended to root names, so that seeding again (`--append`) never takes a name a root
    /// of an earlier run holds (roots are siblings of each other).
    pub(crate) root_suffix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenantPlan {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) parent: Option<usize>,
    pub(crate) depth: usize,
    /// The root of its tree (itself for a root): its admin acts for the whole tree.
    pub(crate) root: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrantPlan {
    pub(crate) tenant: usize,
    pub(crate) user: usize,
    pub(crate) role: &'static str,
}

/// Availability (or an authorization's reach): a tenant, and whether its subtree is included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reach {
    pub(crate) tenant: usize,
    pub(crate) include_subtenants: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocationPlan {
    pub(crate) owner: usize,
    pub(crate) name: String,
    pub(crate) available_to: Vec<Reach>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorizationPlan {
    pub(crate) reach: Reach,
    /// `None`: every scope the resource provider requests (the command's default).
    pub(crate) scopes: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceProviderPlan {
    pub(crate) owner: usize,
    pub(crate) name: String,
    pub(crate) scopes: &'static [&'static str],
    pub(crate) available_to: Vec<Reach>,
    pub(crate) locations: Vec<usize>,
    pub(crate) authorizations: Vec<AuthorizationPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderPlan {
    pub(crate) tenant: usize,
    pub(crate) resource_provider: usize,
    pub(crate) name: String,
}

/// The end of the story: what is taken away again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Removals {
    /// Leaf tenants deleted at once.
    pub(crate) tenants: Vec<usize>,
    /// Leaf tenants deleted through the finalizer lifecycle: finalizer added, deletion
    /// requested (`deleting`), finalizer removed (deleted).
    pub(crate) finalized_tenants: Vec<usize>,
    pub(crate) locations: Vec<usize>,
    pub(crate) providers: Vec<usize>,
    /// Indices into `Blueprint::grants`.
    pub(crate) grants: Vec<usize>,
    /// (location, index into its `available_to`).
    pub(crate) location_availability: Vec<(usize, usize)>,
    /// (resource provider, index into its `authorizations`).
    pub(crate) authorizations: Vec<(usize, usize)>,
}

impl Removals {
    /// The events the removals append: one per command, two for the last finalizer of a
    /// deleting tenant (`FinalizerRemoved`, `TenantDeleted`), so three commands and four
    /// events per finalized tenant.
    pub(crate) fn events(&self) -> u64 {
        (self.tenants.len()
            + 4 * self.finalized_tenants.len()
            + self.locations.len()
            + self.providers.len()
            + self.grants.len()
            + self.location_availability.len()
            + self.authorizations.len()) as u64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blueprint {
    /// In creation order: every parent before its children.
    pub(crate) tenants: Vec<TenantPlan>,
    /// Token subjects (issuer `plinth-dev`, so `plinth token --subject` speaks for them).
    pub(crate) users: Vec<String>,
    /// The first `roots` grants make user r the admin of root r.
    pub(crate) grants: Vec<GrantPlan>,
    pub(crate) locations: Vec<LocationPlan>,
    pub(crate) resource_providers: Vec<ResourceProviderPlan>,
    pub(crate) providers: Vec<ProviderPlan>,
    pub(crate) removals: Removals,
}

impl Blueprint {
    pub(crate) fn roots(&self) -> usize {
        self.tenants.iter().filter(|t| t.parent.is_none()).count()
    }

    /// Events the structure appends before the bulk of metadata and updates (users included),
    /// and with the removals at the end.
    pub(crate) fn structural_events(&self) -> u64 {
        let rps = &self.resource_providers;
        (self.tenants.len()
            + self.users.len()
            + self.grants.len()
            + self.locations.len()
            + self
                .locations
                .iter()
                .map(|l| l.available_to.len())
                .sum::<usize>()
            + rps.len()
            + rps
                .iter()
                .map(|r| r.available_to.len() + r.locations.len() + r.authorizations.len())
                .sum::<usize>()
            + self.providers.len()) as u64
            + self.removals.events()
    }

    pub(crate) fn max_depth(&self) -> usize {
        self.tenants.iter().map(|t| t.depth).max().unwrap_or(0)
    }

    pub(crate) fn widest_fan_out(&self) -> usize {
        let mut children: HashMap<usize, usize> = HashMap::new();
        for p in self.tenants.iter().filter_map(|t| t.parent) {
            *children.entry(p).or_default() += 1;
        }
        children.into_values().max().unwrap_or(0)
    }
}

/// Draws the blueprint for `shape`.
pub(crate) fn draw(shape: &Shape) -> Blueprint {
    let mut rng = StdRng::seed_from_u64(shape.seed);
    let tree = Tree::draw(shape, &mut rng);
    let users = draw_users(&tree, &mut rng);
    let grants = draw_grants(&tree, users.len(), &mut rng);
    let locations = draw_locations(&tree, &mut rng);
    let resource_providers = draw_resource_providers(&tree, &locations, &mut rng);
    let providers = draw_providers(&resource_providers, &mut rng);
    let mut blueprint = Blueprint {
        tenants: tree.tenants,
        users,
        grants,
        locations,
        resource_providers,
        providers,
        removals: Removals::default(),
    };
    blueprint.removals = draw_removals(&blueprint, &tree.children, &mut rng);
    blueprint
}

/// The tenant tree while it is drawn.
struct Tree {
    tenants: Vec<TenantPlan>,
    children: Vec<Vec<usize>>,
    /// Lower-cased names per parent (`None`: the roots), for unique sibling names.
    taken: HashSet<(Option<usize>, String)>,
    /// Tenants by depth, for the deep chains and wide fan-outs, which start at fixed levels.
    by_depth: Vec<Vec<usize>>,
}

impl Tree {
    /// Several roots; under them a few deep chains (6 to 9 levels), a few wide fan-outs (10 to
    /// 50 children of one tenant) and, for the rest, a bushy tree: each tenant under a random
    /// earlier one of the top five levels, as organisations grow.
    fn draw(shape: &Shape, rng: &mut StdRng) -> Self {
        let n = shape.tenants.max(1);
        let roots = (((n as f64).sqrt() / 4.0) as usize).clamp(3, 64).min(n);
        let mut tree = Self {
            tenants: Vec::with_capacity(n),
            children: Vec::with_capacity(n),
            taken: HashSet::new(),
            by_depth: Vec::new(),
        };
        for r in 0..roots {
            let base = match names::STORY_ROOTS.get(r) {
                Some(name) => (*name).to_owned(),
                None => format!(
                    "{} {} {}",
                    names::COMPANY_FIRST.choose(rng).expect("non-empty"),
                    names::COMPANY_SECOND.choose(rng).expect("non-empty"),
                    names::COMPANY_SUFFIX.choose(rng).expect("non-empty"),
                ),
            };
            tree.add(None, &format!("{base}{}", shape.root_suffix), rng);
        }
        let chains = (n / 100).max(1);
        for _ in 0..chains {
            let length = rng.gen_range(6..=9);
            // Start at a root or a root's child, so the chain's end is 6 to 10 deep.
            let mut at = tree.pick_at(0..=1, rng);
            for level in names::CHAIN_LEVELS.iter().take(length) {
                if tree.tenants.len() >= n {
                    break;
                }
                at = tree.add(Some(at), level, rng);
            }
        }
        let fan_outs = (n / 250).max(1);
        for _ in 0..fan_outs {
            let width = rng.gen_range(10..=50);
            let hub = tree.pick_at(1..=2, rng);
            let kind = names::FAN_OUT_KINDS.choose(rng).expect("non-empty");
            for k in 1..=width {
                if tree.tenants.len() >= n {
                    break;
                }
                tree.add(Some(hub), &format!("{kind} {k:03}"), rng);
            }
        }
        while tree.tenants.len() < n {
            // Under the top five levels: depth beyond that is the deep chains' alone.
            let parent = tree.pick_at(0..=4, rng);
            let department = names::DEPARTMENTS.choose(rng).expect("non-empty");
            tree.add(Some(parent), department, rng);
        }
        tree
    }

    /// A random tenant that satisfies `prefer` (a few tries), else any.
    fn pick(&self, rng: &mut StdRng, prefer: impl Fn(&TenantPlan) -> bool) -> usize {
        let mut candidate = rng.gen_range(0..self.tenants.len());
        for _ in 0..8 {
            if prefer(&self.tenants[candidate]) {
                break;
            }
            candidate = rng.gen_range(0..self.tenants.len());
        }
        candidate
    }

    /// A random tenant at a depth in `depths` (the nearest level above when none is there).
    fn pick_at(&self, depths: std::ops::RangeInclusive<usize>, rng: &mut StdRng) -> usize {
        let top = (*depths.end()).min(self.by_depth.len() - 1);
        let start = (*depths.start()).min(top);
        let levels = &self.by_depth[start..=top];
        let mut k = rng.gen_range(0..levels.iter().map(Vec::len).sum::<usize>());
        for level in levels {
            if k < level.len() {
                return level[k];
            }
            k -= level.len();
        }
        unreachable!("k is below the number of candidates")
    }

    /// Adds a tenant named `base`, or `base 2`, `base 3`, … when a sibling has the name.
    fn add(&mut self, parent: Option<usize>, base: &str, rng: &mut StdRng) -> usize {
        let mut name = base.to_owned();
        let mut k = 1;
        while !self.taken.insert((parent, name.to_lowercase())) {
            k += 1;
            name = format!("{base} {k}");
        }
        let index = self.tenants.len();
        let (depth, root) = match parent {
            Some(p) => (self.tenants[p].depth + 1, self.tenants[p].root),
            None => (0, index),
        };
        let description = rng
            .gen_bool(0.3)
            .then(|| format!("{name}, seeded (level {depth})"));
        self.tenants.push(TenantPlan {
            name,
            description,
            parent,
            depth,
            root,
        });
        self.children.push(Vec::new());
        if self.by_depth.len() <= depth {
            self.by_depth.resize(depth + 1, Vec::new());
        }
        self.by_depth[depth].push(index);
        if let Some(p) = parent {
            self.children[p].push(index);
        }
        index
    }

    /// A random strict descendant of `owner` (None for a leaf): one step down, then further
    /// down with even odds at each level.
    fn descendant(&self, owner: usize, rng: &mut StdRng) -> Option<usize> {
        let mut at = *self.children[owner].choose(rng)?;
        while rng.gen_bool(0.5) {
            match self.children[at].choose(rng) {
                Some(c) => at = *c,
                None => break,
            }
        }
        Some(at)
    }

    /// A random tenant with children, preferring the top of the trees (owners of shared
    /// locations and resource providers are platform and organisation level).
    fn owner(&self, rng: &mut StdRng) -> Option<usize> {
        for _ in 0..64 {
            let t = self.pick(rng, |t| t.depth <= 2);
            if !self.children[t].is_empty() {
                return Some(t);
            }
        }
        (0..self.tenants.len()).find(|t| !self.children[*t].is_empty())
    }

    /// `n` distinct strict descendants of `owner` at most.
    fn reaches(&self, owner: usize, n: usize, include: f64, rng: &mut StdRng) -> Vec<Reach> {
        let mut reaches: Vec<Reach> = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(tenant) = self.descendant(owner, rng) else {
                break;
            };
            if reaches.iter().all(|r| r.tenant != tenant) {
                reaches.push(Reach {
                    tenant,
                    include_subtenants: rng.gen_bool(include),
                });
            }
        }
        reaches
    }
}

fn draw_users(tree: &Tree, rng: &mut StdRng) -> Vec<String> {
    let roots = tree.tenants.iter().filter(|t| t.parent.is_none()).count();
    let n = (tree.tenants.len() / 8).max(roots + 5);
    // Distinct by their index; the name only makes them easy to tell apart.
    (1..=n)
        .map(|i| format!("{}-{i}", names::USERS.choose(rng).expect("non-empty")))
        .collect()
}

/// User r administers root r (and acts there); every other user gets one or two grants at a
/// random level, admins high up, viewers anywhere.
fn draw_grants(tree: &Tree, users: usize, rng: &mut StdRng) -> Vec<GrantPlan> {
    let roots: Vec<usize> = (0..tree.tenants.len())
        .filter(|t| tree.tenants[*t].parent.is_none())
        .collect();
    let mut grants: Vec<GrantPlan> = roots
        .iter()
        .enumerate()
        .map(|(user, tenant)| GrantPlan {
            tenant: *tenant,
            user,
            role: "admin",
        })
        .collect();
    let mut seen: HashSet<(usize, usize)> = grants.iter().map(|g| (g.tenant, g.user)).collect();
    for user in roots.len()..users {
        for _ in 0..rng.gen_range(1..=2) {
            let tenant = rng.gen_range(0..tree.tenants.len());
            let role = match (tree.tenants[tenant].depth, rng.gen_range(0..10)) {
                (0..=1, 0..=2) => "admin",
                (_, 0..=4) => "editor",
                _ => "viewer",
            };
            if seen.insert((tenant, user)) {
                grants.push(GrantPlan { tenant, user, role });
            }
        }
    }
    grants
}

fn draw_locations(tree: &Tree, rng: &mut StdRng) -> Vec<LocationPlan> {
    let roots = tree.tenants.iter().filter(|t| t.parent.is_none()).count();
    let n = (tree.tenants.len() / 8).max(2 * roots);
    let mut locations = Vec::with_capacity(n);
    let mut taken = HashSet::new();
    for _ in 0..n {
        let Some(owner) = tree.owner(rng) else { break };
        let base = names::LOCATIONS.choose(rng).expect("non-empty");
        let mut name = (*base).to_owned();
        let mut k = 1;
        while !taken.insert((owner, name.clone())) {
            k += 1;
            name = format!("{base} {k}");
        }
        let available_to = tree.reaches(owner, rng.gen_range(1..=3), 0.5, rng);
        locations.push(LocationPlan {
            owner,
            name,
            available_to,
        });
    }
    locations
}

/// The locations `tenant` may use: its own, those made available to it, and those made
/// available with `include_subtenants` to an ancestor (the domain's rule).
fn usable_locations(tree: &Tree, locations: &[LocationPlan], tenant: usize) -> Vec<usize> {
    let mut ancestors = HashSet::new();
    let mut at = tree.tenants[tenant].parent;
    while let Some(a) = at {
        ancestors.insert(a);
        at = tree.tenants[a].parent;
    }
    (0..locations.len())
        .filter(|l| {
            let l = &locations[*l];
            l.owner == tenant
                || l.available_to.iter().any(|r| {
                    r.tenant == tenant || (r.include_subtenants && ancestors.contains(&r.tenant))
                })
        })
        .collect()
}

fn draw_resource_providers(
    tree: &Tree,
    locations: &[LocationPlan],
    rng: &mut StdRng,
) -> Vec<ResourceProviderPlan> {
    let roots = tree.tenants.iter().filter(|t| t.parent.is_none()).count();
    let n = (tree.tenants.len() / 20).max(roots);
    let mut rps = Vec::with_capacity(n);
    for k in 1..=n {
        let Some(owner) = tree.owner(rng) else { break };
        let (kind, scopes) = *names::RESOURCE_PROVIDERS.choose(rng).expect("non-empty");
        let available_to = tree.reaches(owner, rng.gen_range(1..=3), 0.6, rng);
        let mut usable = usable_locations(tree, locations, owner);
        usable.shuffle(rng);
        usable.truncate(rng.gen_range(1..=2));
        usable.sort_unstable();
        let mut authorizations = Vec::new();
        // Where it is available, the tenant's admins mostly authorize it: for themselves, or
        // (when their whole subtree got it) for all their sub-tenants; with every scope it
        // requests, or only some.
        for reach in &available_to {
            if !rng.gen_bool(0.8) {
                continue;
            }
            authorizations.push(AuthorizationPlan {
                reach: Reach {
                    tenant: reach.tenant,
                    include_subtenants: reach.include_subtenants && rng.gen_bool(0.6),
                },
                scopes: draw_scopes(scopes, rng),
            });
        }
        if rng.gen_bool(0.2) {
            authorizations.push(AuthorizationPlan {
                reach: Reach {
                    tenant: owner,
                    include_subtenants: false,
                },
                scopes: draw_scopes(scopes, rng),
            });
        }
        rps.push(ResourceProviderPlan {
            owner,
            name: format!("{kind} {k}"),
            scopes,
            available_to,
            locations: usable,
            authorizations,
        });
    }
    rps
}

/// Half the time every requested scope (`None`), else a non-empty subset of them.
fn draw_scopes(requested: &'static [&'static str], rng: &mut StdRng) -> Option<Vec<&'static str>> {
    if requested.len() < 2 || rng.gen_bool(0.5) {
        return None;
    }
    let mut subset: Vec<&'static str> = requested
        .iter()
        .copied()
        .filter(|_| rng.gen_bool(0.5))
        .collect();
    if subset.is_empty() {
        subset.push(requested[0]);
    }
    Some(subset)
}

/// Up to two concrete providers per resource provider, registered by its owner or by a
/// tenant it was made available to.
fn draw_providers(rps: &[ResourceProviderPlan], rng: &mut StdRng) -> Vec<ProviderPlan> {
    let mut providers = Vec::new();
    for (index, rp) in rps.iter().enumerate() {
        let kind = rp.name.split(' ').next().unwrap_or("Provider");
        for _ in 0..rng.gen_range(0..=2) {
            let tenant = match rp.available_to.choose(rng) {
                Some(reach) if rng.gen_bool(0.5) => reach.tenant,
                _ => rp.owner,
            };
            let flavour = names::PROVIDERS.choose(rng).expect("non-empty");
            providers.push(ProviderPlan {
                tenant,
                resource_provider: index,
                name: format!("{kind} Provider {flavour} {}", providers.len() + 1),
            });
        }
    }
    providers
}

/// A few percent of everything goes away again: leaf tenants that hold nothing, providers,
/// locations no resource provider serves, grants (never a root admin's: they act for their
/// trees), availability no resource provider relies on, authorizations.
fn draw_removals(blueprint: &Blueprint, children: &[Vec<usize>], rng: &mut StdRng) -> Removals {
    let mut involved = BTreeSet::new();
    involved.extend(blueprint.grants.iter().map(|g| g.tenant));
    for l in &blueprint.locations {
        involved.insert(l.owner);
        involved.extend(l.available_to.iter().map(|r| r.tenant));
    }
    for r in &blueprint.resource_providers {
        involved.insert(r.owner);
        involved.extend(r.available_to.iter().map(|r| r.tenant));
        involved.extend(r.authorizations.iter().map(|a| a.reach.tenant));
    }
    involved.extend(blueprint.providers.iter().map(|p| p.tenant));
    // Shallow leaves only: the deep chains keep their depth.
    let mut leaves: Vec<usize> = (0..blueprint.tenants.len())
        .filter(|t| {
            let plan = &blueprint.tenants[*t];
            children[*t].is_empty() && plan.parent.is_some() && plan.depth <= 4
        })
        .filter(|t| !involved.contains(t))
        .collect();
    leaves.shuffle(rng);
    leaves.truncate((blueprint.tenants.len() / 50).max(2));
    let finalized = leaves.split_off(leaves.len() / 2);

    let served: HashSet<usize> = blueprint
        .resource_providers
        .iter()
        .flat_map(|r| r.locations.iter().copied())
        .collect();
    let mut locations: Vec<usize> = (0..blueprint.locations.len())
        .filter(|l| !served.contains(l))
        .collect();
    locations.shuffle(rng);
    locations.truncate((blueprint.locations.len() / 20).max(1));
    locations.sort_unstable();

    let sample = |n: usize, share: usize, rng: &mut StdRng| -> Vec<usize> {
        let mut picked = rand::seq::index::sample(rng, n, (n / share).min(n)).into_vec();
        picked.sort_unstable();
        picked
    };
    let providers = sample(blueprint.providers.len(), 10, rng);
    let roots = blueprint.roots();
    let grants = sample(blueprint.grants.len() - roots, 20, rng)
        .into_iter()
        .map(|g| g + roots)
        .collect();
    let removed_locations: HashSet<usize> = locations.iter().copied().collect();
    let mut location_availability: Vec<(usize, usize)> = blueprint
        .locations
        .iter()
        .enumerate()
        .filter(|(l, _)| !served.contains(l) && !removed_locations.contains(l))
        .flat_map(|(l, plan)| (0..plan.available_to.len()).map(move |a| (l, a)))
        .collect();
    location_availability.shuffle(rng);
    location_availability.truncate(location_availability.len() / 10);
    location_availability.sort_unstable();
    let mut authorizations: Vec<(usize, usize)> = blueprint
        .resource_providers
        .iter()
        .enumerate()
        .flat_map(|(r, plan)| (0..plan.authorizations.len()).map(move |a| (r, a)))
        .collect();
    authorizations.shuffle(rng);
    authorizations.truncate(authorizations.len() / 20);
    authorizations.sort_unstable();
    Removals {
        tenants: leaves,
        finalized_tenants: finalized,
        locations,
        providers,
        grants,
        location_availability,
        authorizations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(tenants: usize, seed: u64) -> Shape {
        Shape {
            tenants,
            events: 10 * tenants as u64,
            seed,
            root_suffix: String::new(),
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_platform_and_another_seed_another() {
        assert_eq!(draw(&shape(300, 9)), draw(&shape(300, 9)));
        assert_ne!(draw(&shape(300, 9)), draw(&shape(300, 10)));
    }

    #[test]
    fn trees_are_deep_and_wide_with_several_roots() {
        for seed in 0..20 {
            let b = draw(&shape(200, seed));
            assert_eq!(b.tenants.len(), 200);
            assert!(b.roots() >= 3, "seed {seed}");
            assert!(b.max_depth() >= 6, "seed {seed}: depth {}", b.max_depth());
            // Chains start at a root or its child: at most 10 deep (9 levels below depth 1).
            assert!(b.max_depth() <= 10, "seed {seed}: depth {}", b.max_depth());
            assert!(b.widest_fan_out() >= 10, "seed {seed}");
        }
    }

    #[test]
    fn every_planned_reference_is_valid_by_the_domain_rules() {
        for seed in 0..20 {
            let b = draw(&shape(500, seed));
            let is_strict_descendant = |t: usize, owner: usize| {
                let mut at = b.tenants[t].parent;
                while let Some(a) = at {
                    if a == owner {
                        return true;
                    }
                    at = b.tenants[a].parent;
                }
                false
            };
            for (i, t) in b.tenants.iter().enumerate() {
                assert!(t.parent.is_none_or(|p| p < i), "parents come first");
            }
            let mut siblings = HashSet::new();
            for t in &b.tenants {
                assert!(
                    siblings.insert((t.parent, t.name.to_lowercase())),
                    "{}",
                    t.name
                );
            }
            for l in &b.locations {
                for r in &l.available_to {
                    assert!(is_strict_descendant(r.tenant, l.owner));
                }
            }
            for r in &b.resource_providers {
                for a in &r.available_to {
                    assert!(is_strict_descendant(a.tenant, r.owner));
                }
                for a in &r.authorizations {
                    let available = a.reach.tenant == r.owner
                        || r.available_to.iter().any(|x| x.tenant == a.reach.tenant);
                    assert!(available, "authorized where it is available");
                    if let Some(scopes) = &a.scopes {
                        assert!(!scopes.is_empty());
                        assert!(scopes.iter().all(|s| r.scopes.contains(s)));
                    }
                }
            }
            // Only root admins act; none of their grants goes away.
            assert!(b.removals.grants.iter().all(|g| *g >= b.roots()));
            assert!(!b.removals.tenants.is_empty() && !b.removals.finalized_tenants.is_empty());
        }
    }
}
