//! Writing a blueprint through the real write path: every command goes through the same
//! `CommandBus` `plinth serve` runs (locks, `decide` with its authorization checks, hash
//! chain, stream rows), so the seeded log is one a real platform could have recorded.
//!
//! Commands go in waves: a wave holds only commands whose prerequisites committed in earlier
//! waves (parents before children, availability before authorization), and inside a wave up
//! to `IN_FLIGHT` are submitted at once, which is what lets group commit put hundreds of them
//! in one transaction. Inside a wave the order of commands on one stream is not fixed, so a
//! wave only holds commands whose outcome does not depend on it.

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use plinth_commands::{CommandBus, CommandOutcome, EventStore, Submission};
use plinth_domain::{Actor, Command, UserId};

use super::blueprint::{Blueprint, Shape};
use super::names;

/// Commands submitted and not yet answered, at most: enough for both writers' batches to fill
/// (256 each), well under the bus's queue.
const IN_FLIGHT: usize = 1024;
/// Commands per wave of the bulk. Each wave touches a stream at most once, so waves are at
/// most as large as the platform has resources.
const BULK_WAVE: usize = 4096;

/// The subject of the platform administrator the seed acts as for what only platform
/// administrators may do (roots and their first grants).
pub(crate) const SEED_ADMIN: &str = "plinth-seed";

/// What was written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Written {
    pub(crate) events: u64,
    pub(crate) commands: u64,
    /// The log position of the last event written.
    pub(crate) last_position: i64,
    /// The root admins' subjects, root by root.
    pub(crate) root_admins: Vec<(String, String)>,
}

/// Ids as the write side picked them, by blueprint index.
#[derive(Debug, Default)]
struct Ids {
    tenants: Vec<String>,
    users: Vec<String>,
    locations: Vec<String>,
    rps: Vec<String>,
    providers: Vec<String>,
}

/// A resource the bulk changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Resource {
    Tenant(usize),
    Location(usize),
    /// A resource provider.
    Rp(usize),
    Provider(usize),
}

pub(crate) struct Seeder<'a> {
    bus: CommandBus,
    store: EventStore,
    blueprint: &'a Blueprint,
    shape: &'a Shape,
    ids: Ids,
    admin: Actor,
    /// The actor of each root's tree: its admin (a grant, not a platform administrator).
    tree_admins: Vec<Actor>,
    written: Written,
    on_events: Box<dyn FnMut(u64) + Send + 'a>,
}

impl std::fmt::Debug for Seeder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seeder")
            .field("written", &self.written)
            .finish()
    }
}

impl<'a> Seeder<'a> {
    /// `on_events` is told the events written so far, after each answered command.
    pub(crate) fn new(
        bus: CommandBus,
        store: EventStore,
        blueprint: &'a Blueprint,
        shape: &'a Shape,
        on_events: impl FnMut(u64) + Send + 'a,
    ) -> Self {
        Self {
            bus,
            store,
            blueprint,
            shape,
            ids: Ids::default(),
            admin: Actor::user(
                UserId::for_identity(crate::auth::DEV_ISSUER, SEED_ADMIN),
                true,
            ),
            tree_admins: Vec::new(),
            written: Written::default(),
            on_events: Box::new(on_events),
        }
    }

    /// Writes the whole blueprint, then metadata and updates up to the asked number of
    /// events, then the removals.
    pub(crate) async fn run(mut self) -> anyhow::Result<Written> {
        self.users().await?;
        self.tenants().await?;
        self.grants().await?;
        self.locations().await?;
        self.resource_providers().await?;
        self.providers().await?;
        self.bulk().await?;
        self.removals().await?;
        Ok(self.written)
    }

    /// Users are recorded as their first authenticated request records them
    /// (`EventStore::ensure_user`), with the development issuer, so that `plinth token
    /// --subject alice-1` speaks for the seeded alice-1.
    async fn users(&mut self) -> anyhow::Result<()> {
        let issuer = crate::auth::DEV_ISSUER;
        let mut subjects: Vec<&str> = vec![SEED_ADMIN];
        subjects.extend(self.blueprint.users.iter().map(String::as_str));
        // Either id an identity's user may have (docs/adr/0014).
        let ids: Vec<String> = subjects
            .iter()
            .flat_map(|s| {
                [
                    UserId::for_identity(issuer, s).to_string(),
                    UserId::legacy_for_identity(issuer, s).to_string(),
                ]
            })
            .collect();
        // Users already there (an `--append` run) append nothing: count only the new ones.
        let existing: HashSet<String> = self
            .store
            .pool()
            .get()
            .await?
            .query(
                "select stream_id from streams where stream_id = any($1)",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let store = &self.store;
        let recorded: Vec<anyhow::Result<UserId>> = futures::stream::iter(subjects.iter())
            .map(|s| store.ensure_user(issuer, s))
            .buffered(16)
            .collect()
            .await;
        for user in recorded {
            let user = user.context("failed to record a user")?;
            if !existing.contains(user.as_str()) {
                self.written.events += 1;
            }
            self.ids.users.push(user.to_string());
        }
        // The administrator's id as recorded (a legacy one in a log seeded before ADR 0014).
        self.admin = Actor::user(UserId::parse(&self.ids.users.remove(0))?, true);
        (self.on_events)(self.written.events);
        Ok(())
    }

    /// Tenants level by level: every parent committed before its children are submitted.
    async fn tenants(&mut self) -> anyhow::Result<()> {
        let tenants = &self.blueprint.tenants;
        self.ids.tenants = vec![String::new(); tenants.len()];
        for depth in 0..=self.blueprint.max_depth() {
            let level: Vec<usize> = (0..tenants.len())
                .filter(|t| tenants[*t].depth == depth)
                .collect();
            let commands = level
                .iter()
                .map(|t| {
                    let plan = &tenants[*t];
                    let parent = plan.parent.map(|p| self.ids.tenants[p].clone());
                    let actor = match parent {
                        None => self.admin.clone(),
                        Some(_) => self.tree_admins[plan.root].clone(),
                    };
                    let data = json!({
                        "name": plan.name,
                        "description": plan.description,
                        "parent_id": parent,
                    });
                    (actor, command("CreateTenant", data))
                })
                .collect();
            let outcomes = self.wave(commands).await?;
            for (t, outcome) in level.iter().zip(outcomes) {
                self.ids.tenants[*t] = outcome.stream_id;
            }
            if depth == 0 {
                self.root_admins().await?;
            }
        }
        Ok(())
    }

    /// The platform administrator makes user r the admin of root r; from then on that user
    /// acts for the tree, through its inherited role, as a tenant admin would.
    async fn root_admins(&mut self) -> anyhow::Result<()> {
        let roots = self.blueprint.roots();
        let commands = self.blueprint.grants[..roots]
            .iter()
            .map(|g| (self.admin.clone(), self.grant(g.tenant, g.user, g.role)))
            .collect();
        self.wave(commands).await?;
        self.tree_admins = vec![self.admin.clone(); self.blueprint.tenants.len()];
        for g in &self.blueprint.grants[..roots] {
            self.tree_admins[g.tenant] = Actor::user(
                UserId::parse(&self.ids.users[g.user]).context("a user id")?,
                false,
            );
            self.written.root_admins.push((
                self.blueprint.tenants[g.tenant].name.clone(),
                self.blueprint.users[g.user].clone(),
            ));
        }
        Ok(())
    }

    fn grant(&self, tenant: usize, user: usize, role: &str) -> Command {
        command(
            "GrantTenantAccess",
            json!({"tenant_id": self.ids.tenants[tenant], "user_id": self.ids.users[user], "role": role}),
        )
    }

    /// The actor for a command in tenant `t`'s tree.
    fn actor(&self, t: usize) -> Actor {
        self.tree_admins[self.blueprint.tenants[t].root].clone()
    }

    async fn grants(&mut self) -> anyhow::Result<()> {
        let commands = self.blueprint.grants[self.blueprint.roots()..]
            .iter()
            .map(|g| (self.actor(g.tenant), self.grant(g.tenant, g.user, g.role)))
            .collect();
        self.wave(commands).await?;
        Ok(())
    }

    async fn locations(&mut self) -> anyhow::Result<()> {
        let plans = &self.blueprint.locations;
        let commands = plans
            .iter()
            .map(|l| {
                let data = json!({"tenant_id": self.ids.tenants[l.owner], "name": l.name});
                (self.actor(l.owner), command("CreateLocation", data))
            })
            .collect();
        self.ids.locations = stream_ids(self.wave(commands).await?);
        let mut commands = Vec::new();
        for (l, plan) in plans.iter().enumerate() {
            for reach in &plan.available_to {
                let data = json!({
                    "location_id": self.ids.locations[l],
                    "tenant_id": self.ids.tenants[reach.tenant],
                    "include_subtenants": reach.include_subtenants,
                });
                commands.push((
                    self.actor(plan.owner),
                    command("MakeLocationAvailable", data),
                ));
            }
        }
        self.wave(commands).await?;
        Ok(())
    }

    /// Created; then made available and given locations (one wave: neither depends on the
    /// other); then authorized where available.
    async fn resource_providers(&mut self) -> anyhow::Result<()> {
        let plans = &self.blueprint.resource_providers;
        let commands = plans
            .iter()
            .map(|r| {
                let data = json!({
                    "tenant_id": self.ids.tenants[r.owner],
                    "name": r.name,
                    "scopes": r.scopes,
                });
                (self.actor(r.owner), command("CreateResourceProvider", data))
            })
            .collect();
        self.ids.rps = stream_ids(self.wave(commands).await?);
        let mut commands = Vec::new();
        for (r, plan) in plans.iter().enumerate() {
            let rp = &self.ids.rps[r];
            for reach in &plan.available_to {
                let data = json!({
                    "resource_provider_id": rp,
                    "tenant_id": self.ids.tenants[reach.tenant],
                    "include_subtenants": reach.include_subtenants,
                });
                commands.push((
                    self.actor(plan.owner),
                    command("MakeResourceProviderAvailable", data),
                ));
            }
            for l in &plan.locations {
                let data =
                    json!({"resource_provider_id": rp, "location_id": self.ids.locations[*l]});
                commands.push((
                    self.actor(plan.owner),
                    command("AddResourceProviderLocation", data),
                ));
            }
        }
        self.wave(commands).await?;
        let mut commands = Vec::new();
        for (r, plan) in plans.iter().enumerate() {
            for a in &plan.authorizations {
                let data = json!({
                    "resource_provider_id": self.ids.rps[r],
                    "tenant_id": self.ids.tenants[a.reach.tenant],
                    "include_subtenants": a.reach.include_subtenants,
                    "scopes": a.scopes,
                });
                commands.push((
                    self.actor(a.reach.tenant),
                    command("AuthorizeResourceProvider", data),
                ));
            }
        }
        self.wave(commands).await?;
        Ok(())
    }

    async fn providers(&mut self) -> anyhow::Result<()> {
        let commands = self
            .blueprint
            .providers
            .iter()
            .map(|p| {
                let data = json!({
                    "tenant_id": self.ids.tenants[p.tenant],
                    "resource_provider_id": self.ids.rps[p.resource_provider],
                    "name": p.name,
                });
                (self.actor(p.tenant), command("RegisterProvider", data))
            })
            .collect();
        self.ids.providers = stream_ids(self.wave(commands).await?);
        Ok(())
    }

    /// What a busy platform records most: annotations, statuses, finalizers and renames, on
    /// every kind of resource, until the log holds the asked number of events less what the
    /// removals will add. Each command changes something (a value other than the current one,
    /// a status with a new generation), so each appends exactly one event.
    async fn bulk(&mut self) -> anyhow::Result<()> {
        let removals = &self.blueprint.removals;
        let doomed: HashSet<Resource> = (removals.tenants.iter())
            .chain(&removals.finalized_tenants)
            .map(|t| Resource::Tenant(*t))
            .chain(removals.locations.iter().map(|l| Resource::Location(*l)))
            .chain(removals.providers.iter().map(|p| Resource::Provider(*p)))
            .collect();
        let pool: Vec<Resource> = (0..self.ids.tenants.len())
            .map(Resource::Tenant)
            .chain((0..self.ids.locations.len()).map(Resource::Location))
            .chain((0..self.ids.rps.len()).map(Resource::Rp))
            .chain((0..self.ids.providers.len()).map(Resource::Provider))
            .filter(|r| !doomed.contains(r))
            .collect();
        let target = self.shape.events.saturating_sub(removals.events());
        // A stream of its own, so the structure's choices do not shift when the bulk changes.
        let mut rng = StdRng::seed_from_u64(self.shape.seed ^ 0x0062_756c_6b00); // "bulk"
        let mut state = BulkState::default();
        while self.written.events < target && !pool.is_empty() {
            let size = ((target - self.written.events) as usize)
                .min(BULK_WAVE)
                .min(pool.len());
            let picked = rand::seq::index::sample(&mut rng, pool.len(), size);
            let commands = picked
                .iter()
                .map(|i| {
                    let resource = pool[i];
                    let (id, tenant) = self.resource(resource);
                    let command = state.next(resource, id, &mut rng);
                    (self.actor(tenant), command)
                })
                .collect();
            self.wave(commands).await?;
        }
        Ok(())
    }

    /// A resource's id and the tenant that governs it.
    fn resource(&self, resource: Resource) -> (&str, usize) {
        let b = self.blueprint;
        match resource {
            Resource::Tenant(t) => (&self.ids.tenants[t], t),
            Resource::Location(l) => (&self.ids.locations[l], b.locations[l].owner),
            Resource::Rp(r) => (&self.ids.rps[r], b.resource_providers[r].owner),
            Resource::Provider(p) => (&self.ids.providers[p], b.providers[p].tenant),
        }
    }

    /// Revocations and deletions, last; tenants with a finalizer go through `deleting`.
    async fn removals(&mut self) -> anyhow::Result<()> {
        let b = self.blueprint;
        let r = &b.removals;
        let finalizer = names::FINALIZERS[1];
        let mut commands = Vec::new();
        for t in &r.tenants {
            let parent = b.tenants[*t].parent.expect("only sub-tenants are deleted");
            let data = json!({"tenant_id": self.ids.tenants[*t]});
            commands.push((self.actor(parent), command("DeleteTenant", data)));
        }
        for t in &r.finalized_tenants {
            let data = json!({"resource_id": self.ids.tenants[*t], "finalizer": finalizer});
            commands.push((self.actor(*t), command("AddFinalizer", data)));
        }
        for l in &r.locations {
            let data = json!({"location_id": self.ids.locations[*l]});
            commands.push((
                self.actor(b.locations[*l].owner),
                command("DeleteLocation", data),
            ));
        }
        for p in &r.providers {
            let data = json!({"provider_id": self.ids.providers[*p]});
            commands.push((
                self.actor(b.providers[*p].tenant),
                command("UnregisterProvider", data),
            ));
        }
        for g in &r.grants {
            let g = b.grants[*g];
            let data =
                json!({"tenant_id": self.ids.tenants[g.tenant], "user_id": self.ids.users[g.user]});
            commands.push((self.actor(g.tenant), command("RevokeTenantAccess", data)));
        }
        for (l, a) in &r.location_availability {
            let plan = &b.locations[*l];
            let data = json!({
                "location_id": self.ids.locations[*l],
                "tenant_id": self.ids.tenants[plan.available_to[*a].tenant],
            });
            commands.push((
                self.actor(plan.owner),
                command("RevokeLocationAvailability", data),
            ));
        }
        for (rp, a) in &r.authorizations {
            let tenant = b.resource_providers[*rp].authorizations[*a].reach.tenant;
            let data = json!({
                "resource_provider_id": self.ids.rps[*rp],
                "tenant_id": self.ids.tenants[tenant],
            });
            commands.push((
                self.actor(tenant),
                command("RevokeResourceProviderAuthorization", data),
            ));
        }
        self.wave(commands).await?;
        for step in ["DeleteTenant", "RemoveFinalizer"] {
            let commands = r
                .finalized_tenants
                .iter()
                .map(|t| {
                    let id = &self.ids.tenants[*t];
                    let parent = b.tenants[*t].parent.expect("only sub-tenants are deleted");
                    match step {
                        "DeleteTenant" => {
                            (self.actor(parent), command(step, json!({"tenant_id": id})))
                        }
                        _ => (
                            self.actor(*t),
                            command(step, json!({"resource_id": id, "finalizer": finalizer})),
                        ),
                    }
                })
                .collect();
            self.wave(commands).await?;
        }
        Ok(())
    }

    /// Submits `commands` (at most `IN_FLIGHT` at a time) and waits for all of them; returns
    /// their outcomes in the same order. Any refusal stops the seed: the blueprint plans only
    /// valid commands, so a refusal is a bug (or someone else changing the same platform).
    async fn wave(
        &mut self,
        commands: Vec<(Actor, Command)>,
    ) -> anyhow::Result<Vec<CommandOutcome>> {
        let bus = self.bus.clone();
        let mut answers = futures::stream::iter(commands.into_iter().enumerate())
            .map(move |(i, (actor, command))| {
                let bus = bus.clone();
                async move {
                    let kind = command.command_type();
                    (i, kind, bus.submit(Submission::new(actor, command)).await)
                }
            })
            .buffer_unordered(IN_FLIGHT);
        let mut outcomes: HashMap<usize, CommandOutcome> = HashMap::new();
        while let Some((i, kind, answer)) = answers.next().await {
            let (outcome, _) = answer
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("the seed's {kind} was refused"))?;
            self.written.events += outcome.events.len() as u64;
            self.written.commands += 1;
            self.written.last_position = self.written.last_position.max(outcome.position);
            (self.on_events)(self.written.events);
            outcomes.insert(i, outcome);
        }
        let mut ordered = Vec::with_capacity(outcomes.len());
        for i in 0..outcomes.len() {
            ordered.push(outcomes.remove(&i).expect("every command answered"));
        }
        Ok(ordered)
    }
}

fn command(command_type: &str, data: Value) -> Command {
    Command::parse(command_type, data)
        .unwrap_or_else(|e| panic!("the seed builds a valid {command_type}: {e}"))
}

fn stream_ids(outcomes: Vec<CommandOutcome>) -> Vec<String> {
    outcomes.into_iter().map(|o| o.stream_id).collect()
}

/// What the bulk has set so far, so each command it makes changes something.
#[derive(Debug, Default)]
struct BulkState {
    /// Current value index per (resource, annotation key index).
    annotations: HashMap<(Resource, usize), usize>,
    statuses: HashSet<(Resource, usize)>,
    finalizers: HashSet<(Resource, usize)>,
    /// Counts commands: the generation in statuses and the revision in descriptions.
    generation: u64,
}

impl BulkState {
    fn next(&mut self, resource: Resource, id: &str, rng: &mut StdRng) -> Command {
        self.generation += 1;
        let generation = self.generation;
        let roll = rng.gen_range(0..100);
        let annotated: Vec<usize> = (0..names::ANNOTATION_KEYS.len())
            .filter(|k| self.annotations.contains_key(&(resource, *k)))
            .collect();
        if (35..45).contains(&roll) {
            if let Some(k) = annotated.choose(rng) {
                self.annotations.remove(&(resource, *k));
                let key = names::ANNOTATION_KEYS[*k].0;
                return command("RemoveAnnotation", json!({"resource_id": id, "key": key}));
            }
        }
        if (45..72).contains(&roll) {
            let s = rng.gen_range(0..names::STATUS_SOURCES.len());
            let source = names::STATUS_SOURCES[s];
            if roll >= 68 && self.statuses.remove(&(resource, s)) {
                return command("RemoveStatus", json!({"resource_id": id, "source": source}));
            }
            self.statuses.insert((resource, s));
            let data = json!({
                "ready": rng.gen_bool(0.9),
                "observed_generation": generation,
                "message": if rng.gen_bool(0.9) { "ok" } else { "degraded: retrying" },
            });
            return command(
                "SetStatus",
                json!({"resource_id": id, "source": source, "data": data}),
            );
        }
        if (72..82).contains(&roll) {
            let f = rng.gen_range(0..names::FINALIZERS.len());
            let finalizer = names::FINALIZERS[f];
            let kind = if self.finalizers.insert((resource, f)) {
                "AddFinalizer"
            } else {
                self.finalizers.remove(&(resource, f));
                "RemoveFinalizer"
            };
            return command(kind, json!({"resource_id": id, "finalizer": finalizer}));
        }
        if roll >= 82 {
            let description = format!("revision {generation}");
            let update = match resource {
                Resource::Tenant(_) => Some(("UpdateTenant", "tenant_id")),
                Resource::Location(_) => Some(("UpdateLocation", "location_id")),
                Resource::Rp(_) => Some(("UpdateResourceProvider", "resource_provider_id")),
                Resource::Provider(_) => None,
            };
            if let Some((kind, field)) = update {
                return command(kind, json!({field: id, "description": description}));
            }
        }
        // An annotation set to a value other than its current one.
        let k = rng.gen_range(0..names::ANNOTATION_KEYS.len());
        let (key, values) = names::ANNOTATION_KEYS[k];
        let current = self.annotations.get(&(resource, k)).copied();
        let mut v = rng.gen_range(0..values.len());
        if Some(v) == current {
            v = (v + 1) % values.len();
        }
        self.annotations.insert((resource, k), v);
        command(
            "SetAnnotation",
            json!({"resource_id": id, "key": key, "value": values[v]}),
        )
    }
}
