//! GitOps convergence (docs/design.md §4): a Git history of one organization, synced commit by
//! commit the way Argo CD and Flux do it — every object of the commit applied with server-side apply
//! in a shuffled order, objects absent from the commit deleted (prune), everything the API server
//! refuses retried until all writes are accepted — against the real API server with the operator and
//! its webhook running. After each commit the cluster must converge to it, and while it converges a
//! watcher polls the effective state and asserts that no invariant is broken along the way.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::invariants::watch_invariants;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::{Client, ResourceExt};
use roster::api::{Invite, Membership, MembershipPhase, Organization, Team};
use roster::rules::conditions;

const KINDS: [&str; 4] = ["Organization", "Membership", "Invite", "Team"];
/// How long one commit may take to be accepted, and then to converge.
const SYNC: Duration = Duration::from_secs(45);
const CONVERGE: Duration = Duration::from_secs(45);

/// A commit: a message and the full set of objects in the org namespace.
struct Commit {
    message: &'static str,
    objects: Vec<String>,
}

fn org(billing: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  displayName: GitOps Org\n  billingAdmin: {billing}\n  policy:\n    minOwners: 1\n    maxOwners: 1\n    maxMembers: 6\n"
    )
}

fn user(name: &str, user: &str, role: &str) -> String {
    support::membership_yaml(name, &format!("{user}@example.com"), role)
}

fn group(name: &str, group: &str, role: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Membership\nmetadata:\n  name: {name}\nspec:\n  group: {group}\n  role: {role}\n"
    )
}

fn invite(revoked: bool) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: welcome\nspec:\n  role: member\n  maxUses: 3\n  revoked: {revoked}\n"
    )
}

/// A team: (user or `group:NAME`, team role) entries.
fn team(name: &str, members: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: {name}\nspec:\n  members:\n"
    );
    for (who, role) in members {
        match who.strip_prefix("group:") {
            Some(g) => yaml.push_str(&format!("    - group: {g}\n      role: {role}\n")),
            None => yaml.push_str(&format!(
                "    - user: {who}@example.com\n      role: {role}\n"
            )),
        }
    }
    yaml
}

/// The history of one organization.
fn history() -> Vec<Commit> {
    vec![
        Commit {
            message: "create the org: an owner, a member, a viewer, an invite link and a team",
            objects: vec![
                org("alice@example.com"),
                user("alice", "alice", "owner"),
                user("bob", "bob", "member"),
                user("carol", "carol", "viewer"),
                invite(false),
                team("core", &[("alice", "owner"), ("bob", "member")]),
            ],
        },
        Commit {
            message: "promote bob and carol, add dave",
            objects: vec![
                org("alice@example.com"),
                user("alice", "alice", "owner"),
                user("bob", "bob", "admin"),
                user("carol", "carol", "member"),
                user("dave", "dave", "member"),
                invite(false),
                team(
                    "core",
                    &[("alice", "owner"), ("bob", "member"), ("carol", "member")],
                ),
            ],
        },
        Commit {
            // Demoting alice first is refused (last owner) until bob is an effective owner.
            message: "transfer ownership from alice to bob",
            objects: vec![
                org("bob@example.com"),
                user("alice", "alice", "admin"),
                user("bob", "bob", "owner"),
                user("carol", "carol", "member"),
                user("dave", "dave", "member"),
                invite(false),
                team(
                    "core",
                    &[("bob", "owner"), ("alice", "admin"), ("carol", "member")],
                ),
            ],
        },
        Commit {
            // Creating dave-2 first is refused (dave is still claimed) until dave is gone.
            message: "remove carol, rename dave's Membership, revoke the invite",
            objects: vec![
                org("bob@example.com"),
                user("alice", "alice", "admin"),
                user("bob", "bob", "owner"),
                user("dave-2", "dave", "viewer"),
                invite(true),
                team("core", &[("bob", "owner"), ("alice", "admin")]),
            ],
        },
        Commit {
            message: "fill every seat: a group, a new admin and a viewer; a second team",
            objects: vec![
                org("bob@example.com"),
                user("alice", "alice", "admin"),
                user("bob", "bob", "owner"),
                user("dave-2", "dave", "viewer"),
                group("eng", "example:eng", "member"),
                user("erin", "erin", "admin"),
                user("frank", "frank", "viewer"),
                invite(true),
                team("core", &[("bob", "owner"), ("alice", "admin")]),
                team(
                    "platform",
                    &[("erin", "owner"), ("group:example:eng", "member")],
                ),
            ],
        },
        Commit {
            message: "delete the organization",
            objects: vec![],
        },
    ]
}

/// A small deterministic generator (xorshift64*), so a failing order can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Apply(String, Box<DynamicObject>),
    Delete(String, String),
}

impl Op {
    fn label(&self) -> String {
        match self {
            Op::Apply(kind, o) => format!("apply {kind} {}", o.name_any()),
            Op::Delete(kind, name) => format!("delete {kind} {name}"),
        }
    }
}

struct Sync {
    client: Client,
    ns: String,
    resources: BTreeMap<String, ApiResource>,
}

impl Sync {
    async fn new(client: Client, ns: String) -> Sync {
        let mut resources = BTreeMap::new();
        for kind in KINDS {
            let gvk = GroupVersionKind::gvk("roster.dev", "v1alpha1", kind);
            let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
            resources.insert(kind.to_string(), ar);
        }
        Sync {
            client,
            ns,
            resources,
        }
    }

    fn api(&self, kind: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &self.resources[kind])
    }

    /// What a sync of `commit` must do: apply everything in it, delete what is not.
    async fn plan(&self, commit: &Commit) -> Vec<Op> {
        let mut ops = Vec::new();
        let mut wanted = BTreeSet::new();
        for yaml in &commit.objects {
            let obj: DynamicObject = serde_yaml::from_str(yaml).unwrap();
            let kind = obj.types.as_ref().unwrap().kind.clone();
            wanted.insert((kind.clone(), obj.name_any()));
            ops.push(Op::Apply(kind, Box::new(obj)));
        }
        for kind in KINDS {
            for o in self
                .api(kind)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
            {
                if o.metadata.deletion_timestamp.is_none()
                    && !wanted.contains(&(kind.to_string(), o.name_any()))
                {
                    ops.push(Op::Delete(kind.to_string(), o.name_any()));
                }
            }
        }
        ops
    }

    async fn run(&self, op: &Op) -> Result<(), String> {
        let result = match op {
            Op::Apply(kind, obj) => self
                .api(kind)
                .patch(
                    &obj.name_any(),
                    &PatchParams::apply("gitops-sync").force(),
                    &Patch::Apply(obj.as_ref()),
                )
                .await
                .map(drop),
            Op::Delete(kind, name) => {
                match self.api(kind).delete(name, &DeleteParams::default()).await {
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    other => other.map(drop),
                }
            }
        };
        result.map_err(|e| format!("{}: {e}", op.label()))
    }

    /// Applies the commit in a shuffled order, retrying refused writes (reshuffled each round) until
    /// every write is accepted. Returns how many writes were refused on the way.
    async fn sync(&self, commit: &Commit, rng: &mut Rng) -> usize {
        let mut pending = self.plan(commit).await;
        let deadline = tokio::time::Instant::now() + SYNC;
        let mut refused = 0;
        loop {
            rng.shuffle(&mut pending);
            let mut failed = Vec::new();
            let mut errors = Vec::new();
            for op in pending {
                if let Err(e) = self.run(&op).await {
                    errors.push(e);
                    failed.push(op);
                }
            }
            if failed.is_empty() {
                return refused;
            }
            refused += failed.len();
            assert!(
                tokio::time::Instant::now() < deadline,
                "commit {:?}: writes still refused after {SYNC:?}:\n{}",
                commit.message,
                errors.join("\n")
            );
            pending = failed;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

fn parse<K: serde::de::DeserializeOwned>(commit: &Commit, kind: &str) -> Vec<K> {
    commit
        .objects
        .iter()
        .filter(|y| y.contains(&format!("\nkind: {kind}\n")))
        .map(|y| serde_yaml::from_str(y).unwrap())
        .collect()
}

fn ready(conds: &[roster::api::Condition], type_: &str) -> bool {
    conditions::is_true(conds, type_)
}

/// Whether the cluster is at `commit`; `Err` says what is still different.
async fn converged(client: &Client, ns: &str, commit: &Commit) -> Result<(), String> {
    let memberships: Vec<Membership> = Api::<Membership>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items;
    let orgs: Vec<Organization> = Api::<Organization>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items;
    let invites: Vec<Invite> = Api::<Invite>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items;
    let teams: Vec<Team> = Api::<Team>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items;
    if commit.objects.is_empty() {
        let left = memberships.len() + orgs.len() + invites.len() + teams.len();
        return if left == 0 {
            Ok(())
        } else {
            Err(format!(
                "{left} object(s) left: {:?}",
                memberships.iter().map(|m| m.name_any()).collect::<Vec<_>>()
            ))
        };
    }

    let want: Vec<Membership> = parse(commit, "Membership");
    let names: BTreeSet<String> = want.iter().map(|m| m.name_any()).collect();
    let present: BTreeSet<String> = memberships.iter().map(|m| m.name_any()).collect();
    if names != present {
        return Err(format!("Memberships {present:?}, want {names:?}"));
    }
    for w in &want {
        let m = memberships
            .iter()
            .find(|m| m.name_any() == w.name_any())
            .unwrap();
        let s = m.status.clone().unwrap_or_default();
        if m.spec != w.spec
            || s.phase != Some(MembershipPhase::Active)
            || s.effective_role != Some(w.spec.role)
            || s.observed_generation != m.metadata.generation
        {
            return Err(format!(
                "Membership {}: phase {:?}, effective {:?}, want Active {}",
                m.name_any(),
                s.phase,
                s.effective_role,
                w.spec.role
            ));
        }
    }
    let [org] = orgs.as_slice() else {
        return Err(format!("{} Organizations", orgs.len()));
    };
    let want_org: Vec<Organization> = parse(commit, "Organization");
    let s = org.status.clone().unwrap_or_default();
    let mut owners: Vec<String> = want
        .iter()
        .filter(|m| m.spec.role == roster::api::OrgRole::Owner)
        .filter_map(|m| m.spec.user.clone())
        .collect();
    owners.sort();
    if org.spec != want_org[0].spec
        || s.observed_generation != org.metadata.generation
        || !ready(&s.conditions, "Ready")
        || s.members as usize != want.len()
        || s.owners != owners
    {
        return Err(format!(
            "Organization: Ready {}, {} members, owners {:?}; want {} members, owners {owners:?}",
            ready(&s.conditions, "Ready"),
            s.members,
            s.owners,
            want.len()
        ));
    }
    let want_teams: Vec<Team> = parse(commit, "Team");
    if teams.len() != want_teams.len() {
        return Err(format!("{} Teams, want {}", teams.len(), want_teams.len()));
    }
    for t in &teams {
        let s = t.status.clone().unwrap_or_default();
        if s.observed_generation != t.metadata.generation
            || !ready(&s.conditions, "MembersResolved")
        {
            return Err(format!("Team {} not resolved: {s:?}", t.name_any()));
        }
    }
    let want_invites: Vec<Invite> = parse(commit, "Invite");
    for w in &want_invites {
        let Some(i) = invites.iter().find(|i| i.name_any() == w.name_any()) else {
            return Err(format!("Invite {} missing", w.name_any()));
        };
        let s = i.status.clone().unwrap_or_default();
        let phase = if w.spec.revoked {
            roster::api::InvitePhase::Revoked
        } else {
            roster::api::InvitePhase::Pending
        };
        if s.phase != Some(phase) || s.observed_generation != i.metadata.generation {
            return Err(format!(
                "Invite {}: {:?}, want {phase:?}",
                i.name_any(),
                s.phase
            ));
        }
    }
    Ok(())
}

/// Syncs the whole history into a fresh namespace in the order `seed` gives; with or without the
/// admission webhook (the controller alone must keep the invariants in the effective state, whatever
/// slipped past the webhook).
async fn replay(test: &str, seed: u64, webhook: bool) {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, test).await;
    let _operator = if webhook {
        let operator = support::operator_with_webhook(&[&ns]);
        support::wait_for_webhook(&client, &ns).await;
        operator
    } else {
        support::Operator::start(&[&ns], &[])
    };

    let sync = Sync::new(client.clone(), ns.clone()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let current = Arc::new(Mutex::new("start"));
    let max_members = parse::<Organization>(&history()[0], "Organization")[0]
        .spec
        .policy
        .max_members;
    let watcher = watch_invariants(
        client.clone(),
        ns.clone(),
        max_members,
        stop.clone(),
        current.clone(),
    );
    let mut rng = Rng(seed);
    let mut log = Vec::new();
    for commit in history() {
        *current.lock().unwrap() = commit.message;
        let started = tokio::time::Instant::now();
        let refused = sync.sync(&commit, &mut rng).await;
        let accepted = started.elapsed();
        let mut last = String::new();
        let converged_in = tokio::time::timeout(CONVERGE, async {
            loop {
                match converged(&client, &ns, &commit).await {
                    Ok(()) => return started.elapsed(),
                    Err(e) => last = e,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "seed {seed}: commit {:?} did not converge within {CONVERGE:?}: {last}",
                commit.message
            )
        });
        log.push(format!(
            "{:?}: {refused} refused write(s), accepted after {accepted:?}, converged after {converged_in:?}",
            commit.message
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let (seen, checked) = watcher.await.unwrap();
    eprintln!("seed {seed}: {}", log.join("\n  "));
    assert!(
        checked > 20,
        "the invariant watcher checked {checked} states"
    );
    assert!(
        seen.is_empty(),
        "seed {seed}: invariants broken in the effective state ({} in {checked} states):\n{}",
        seen.len(),
        seen.join("\n")
    );
}

/// The seeds to replay: `ROSTER_GITOPS_SEED` replays one order, otherwise a few fixed ones.
fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("ROSTER_GITOPS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => defaults.to_vec(),
    }
}

#[tokio::test]
async fn a_git_history_converges_commit_by_commit_in_any_order() {
    for seed in seeds(&[0x5eed_0001, 0x5eed_0002]) {
        replay("gitops-a", seed, true).await;
    }
}

#[tokio::test]
async fn the_same_history_in_other_orders_converges_too() {
    for seed in seeds(&[0x9e37_79b9_7f4a_7c15, 0x0123_4567_89ab_cdef]) {
        replay("gitops-b", seed, true).await;
    }
}

#[tokio::test]
async fn without_the_webhook_the_controller_alone_keeps_the_invariants() {
    for seed in seeds(&[0x5eed_0003, 0xdead_beef_cafe_f00d]) {
        replay("gitops-no-webhook", seed, false).await;
    }
}
