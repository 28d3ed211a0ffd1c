//! One reconcile of one org namespace: read the caches, ask the rules for the effective state, and
//! write what differs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::{Context, access, apply};
use crate::api::{
    Invite, InvitePhase, InviteStatus, Membership, MembershipPhase, MembershipStatus, OrgRole,
    Organization, OrganizationStatus, Team,
};
use crate::invite_secrets::code_secret_name;
use crate::rules::ConditionReason;
use crate::rules::conditions::{self, Want};
use crate::rules::{self, MembershipEffect, OrgObjects};

pub use crate::names::OWNER_PROTECTION;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writes that failed, one per object; everything else in the org was written.
    #[error("{} write(s) failed: {}", .0.len(), first_few(.0))]
    Failed(Vec<String>),
}

/// The first failures, enough for a log line (an org of 10,000 members may fail 10,000 times).
fn first_few(failed: &[String]) -> String {
    let mut s = failed
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if failed.len() > 3 {
        s.push_str("; ...");
    }
    s
}

/// Writes one reconcile has in flight at a time. One write after the other, an org of 10,000
/// members takes 30,000 round trips to converge; a bounded number in parallel keeps the API server
/// busy without letting one org open hundreds of connections (the controller runs up to 8
/// reconciles at once).
pub(super) const WRITE_CONCURRENCY: usize = 16;

/// Writes in flight, at most [`WRITE_CONCURRENCY`]; each `push` waits for a free slot and returns
/// the results of the writes that finished meanwhile.
pub(super) struct Writes<F: std::future::Future> {
    in_flight: FuturesUnordered<F>,
}

impl<F: std::future::Future> Writes<F> {
    pub(super) fn new() -> Self {
        Writes {
            in_flight: FuturesUnordered::new(),
        }
    }

    pub(super) async fn push(&mut self, write: F) -> Vec<F::Output> {
        let mut done = Vec::new();
        while self.in_flight.len() >= WRITE_CONCURRENCY {
            done.extend(self.in_flight.next().await);
        }
        self.in_flight.push(write);
        done
    }

    pub(super) async fn finish(mut self) -> Vec<F::Output> {
        let mut done = Vec::new();
        while let Some(r) = self.in_flight.next().await {
            done.push(r);
        }
        done
    }
}

/// The errors among finished writes.
fn errors(done: Vec<Result<(), String>>) -> impl Iterator<Item = String> {
    done.into_iter().filter_map(Result::err)
}

/// A failed write of `obj`, named after it.
fn labelled<K: Resource<DynamicType = ()>>(
    obj: &K,
    result: Result<(), kube::Error>,
) -> Option<String> {
    let e = result.err()?;
    Some(format!("{} {}: {e}", K::kind(&()), obj.name_any()))
}

/// The cached objects of one namespace, oldest first: shared with the cache, never copied (an org
/// may hold 10,000 Memberships).
fn objects_in<K: Resource<DynamicType = ()> + Clone>(
    store: &kube::runtime::reflector::Store<K>,
    ns: &str,
) -> Vec<Arc<K>> {
    let mut v = store.state_filter(|o| o.meta().namespace.as_deref() == Some(ns));
    v.sort_by_key(|o| {
        (
            o.meta().creation_timestamp.as_ref().map(|t| t.0),
            o.name_any(),
        )
    });
    v
}

/// Metadata changes are written only when something roster owns differs: the owner-protection
/// finalizer, and ownerReferences to an Organization that roster wrote before (the kinds people
/// apply carry none now, see `rules::leftovers`), removed once.
async fn ensure_metadata<K>(ctx: &Context, obj: &K, protect: bool) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let deleting = obj.meta().deletion_timestamp.is_some();
    let has_finalizer = obj.finalizers().iter().any(|f| f == OWNER_PROTECTION);
    // Nothing new may be added to an object being deleted; it may only let go.
    let finalizer = protect && (!deleting || has_finalizer);
    if obj
        .owner_references()
        .iter()
        .any(rules::leftovers::is_organization_owner)
    {
        apply::remove_organization_owners(ctx, obj).await?;
    }
    if finalizer != has_finalizer {
        let finalizers: &[&str] = if finalizer { &[OWNER_PROTECTION] } else { &[] };
        apply::metadata(ctx, obj, finalizers).await?;
    }
    Ok(())
}

async fn write_membership(
    ctx: &Context,
    m: &Membership,
    effect: &MembershipEffect,
) -> Result<(), String> {
    write_object(ctx, m, effect.status.clone(), effect.protect).await
}

/// The metadata roster owns on `obj`, then its status when that differs.
async fn write_object<K>(
    ctx: &Context,
    obj: &K,
    status: K::Status,
    protect: bool,
) -> Result<(), String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + kube::core::object::HasStatus
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::Status: PartialEq + serde::Serialize,
{
    let written = async {
        ensure_metadata(ctx, obj, protect).await?;
        if obj.status() != Some(&status) {
            apply::status(ctx, obj, &status).await?;
        }
        Ok::<(), kube::Error>(())
    };
    match labelled(obj, written.await) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = ns.name_any();
    // Another operator's namespace (or nobody's): never write there.
    if !ctx.scope.contains(&namespace) {
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.reconcile_timer();
    let now = Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid time");
    let mut objects = Snapshot::read(&ctx.stores, &namespace);
    // What a deleted Organization left behind takes no part: its access goes with the rest of
    // the org's stale bindings below, and the objects themselves are deleted.
    let left_over = objects.split_left_over();
    let memberships: Vec<&Membership> = objects.memberships.iter().map(AsRef::as_ref).collect();
    // An Organization in an excluded namespace is no organization, even if the webhook was
    // bypassed: nothing is bound and no code Secret is written there.
    let excluded = rules::org_namespace(&ctx.config, &namespace, "Organization").err();
    let org = objects
        .organizations
        .first()
        .map(AsRef::as_ref)
        .filter(|_| excluded.is_none());
    // One object's failure is reported on that object and never stops the rest of the org: every
    // step runs, and the reconcile fails at the end (so that it is retried with backoff).
    let mut failed = Vec::new();
    let codes = match excluded {
        None => ensure_codes(&ctx, &objects.invites).await,
        Some(_) => Codes::default(),
    };
    failed.extend(codes.failed.iter().map(|(i, e)| format!("Invite {i}: {e}")));
    let effective = rules::compute(
        OrgObjects {
            organization: org,
            memberships: &memberships,
            invites: &objects.invites,
            teams: &objects.teams,
            invite_codes: &codes.codes,
        },
        now,
    );
    // Access (revocation above all) runs whatever else failed, from the state just computed.
    let synced = sync_access(
        &ctx,
        &namespace,
        org,
        &memberships,
        &effective,
        &objects.teams,
    )
    .await;
    failed.extend(synced.failures.iter().cloned());
    failed.extend(match &excluded {
        None => write_organizations(&ctx, &objects.organizations, &effective, &synced, now).await,
        Some(denial) => write_excluded(&ctx, &objects.organizations, denial, now).await,
    });
    failed.extend(remove_left_over(&ctx, &left_over).await);
    failed.extend(write_memberships(&ctx, org, &memberships, &effective).await);
    failed.extend(write_invites(&ctx, &objects.invites, &effective, &codes, now).await);
    failed.extend(write_teams(&ctx, org, &objects.teams, &effective, &synced, now).await);
    if ctx.stopping() {
        return Ok(Action::await_change());
    }

    publish_notices(
        &ctx,
        &effective.notices,
        org,
        &memberships,
        &objects.invites,
    )
    .await;
    let without_owner = effective
        .organization
        .as_ref()
        .is_some_and(|s| s.owners.is_empty() && !memberships.is_empty());
    ctx.metrics.tally(
        &namespace,
        effective.invites.values().filter_map(|s| s.phase),
        without_owner,
    );
    if !failed.is_empty() {
        return Err(Error::Failed(failed));
    }
    ctx.failures
        .lock()
        .expect("failures lock")
        .remove(&namespace);
    Ok(next_action(effective.next_change))
}

/// Wake up exactly when the next invite expires, not by polling.
fn next_action(next_change: Option<Timestamp>) -> Action {
    match next_change {
        Some(at) => {
            let wait = Timestamp::now()
                .duration_until(at)
                .max(SignedDuration::ZERO);
            Action::requeue(
                Duration::try_from(wait).unwrap_or_default() + Duration::from_millis(50),
            )
        }
        None => Action::await_change(),
    }
}

/// The cached objects of one org namespace, oldest first.
struct Snapshot {
    organizations: Vec<Arc<Organization>>,
    memberships: Vec<Arc<Membership>>,
    invites: Vec<Invite>,
    teams: Vec<Team>,
}

/// The objects of a deleted Organization still in its namespace.
#[derive(Default)]
struct LeftOver {
    memberships: Vec<Arc<Membership>>,
    invites: Vec<Invite>,
    teams: Vec<Team>,
}

impl Snapshot {
    /// Takes out the objects left over from a deleted Organization (see `rules::leftovers`).
    fn split_left_over(&mut self) -> LeftOver {
        let present: Vec<String> = self
            .organizations
            .iter()
            .filter_map(|o| o.meta().uid.clone())
            .collect();
        let present: Vec<&str> = present.iter().map(String::as_str).collect();
        let left_over = |meta: &kube::api::ObjectMeta, recorded: Option<&str>| {
            rules::leftovers::is_left_over(
                rules::leftovers::organization_uid(meta, recorded),
                &present,
            )
        };
        let (memberships, kept) = std::mem::take(&mut self.memberships)
            .into_iter()
            .partition(|m| left_over(m.meta(), recorded(&m.status, |s| &s.organization_uid)));
        self.memberships = kept;
        let (invites, kept) = std::mem::take(&mut self.invites)
            .into_iter()
            .partition(|i| left_over(i.meta(), recorded(&i.status, |s| &s.organization_uid)));
        self.invites = kept;
        let (teams, kept) = std::mem::take(&mut self.teams)
            .into_iter()
            .partition(|t| left_over(t.meta(), recorded(&t.status, |s| &s.organization_uid)));
        self.teams = kept;
        LeftOver {
            memberships,
            invites,
            teams,
        }
    }

    fn read(stores: &crate::caches::Stores, namespace: &str) -> Snapshot {
        Snapshot {
            organizations: objects_in(&stores.organizations, namespace),
            memberships: objects_in(&stores.memberships, namespace),
            invites: objects_in(&stores.invites, namespace)
                .iter()
                .map(|i| Invite::clone(i))
                .collect(),
            teams: objects_in(&stores.teams, namespace)
                .iter()
                .map(|t| Team::clone(t))
                .collect(),
        }
    }
}

/// The Organization uid a status records.
fn recorded<S>(status: &Option<S>, uid: impl Fn(&S) -> &Option<String>) -> Option<&str> {
    status.as_ref().and_then(|s| uid(s).as_deref())
}

/// Deletes what a deleted Organization left behind, as the garbage collector did when these
/// objects were owned by it; owner protection yields (the Organization is gone).
async fn remove_left_over(ctx: &Context, left_over: &LeftOver) -> Vec<String> {
    let mut failed = remove_all(ctx, left_over.memberships.iter().map(AsRef::as_ref)).await;
    failed.extend(remove_all(ctx, left_over.invites.iter()).await);
    failed.extend(remove_all(ctx, left_over.teams.iter()).await);
    if !left_over.memberships.is_empty() {
        tracing::info!(
            memberships = left_over.memberships.len(),
            invites = left_over.invites.len(),
            teams = left_over.teams.len(),
            "deleting what a deleted Organization left behind"
        );
    }
    failed
}

async fn remove_all<'a, K>(ctx: &Context, objects: impl Iterator<Item = &'a K>) -> Vec<String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + 'a,
{
    let mut writes = Writes::new();
    let mut failed = Vec::new();
    for obj in objects {
        failed.extend(errors(writes.push(remove(ctx, obj)).await));
    }
    failed.extend(errors(writes.finish().await));
    failed
}

/// Releases roster's finalizer on `obj` and deletes it.
async fn remove<K>(ctx: &Context, obj: &K) -> Result<(), String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let removed = async {
        ensure_metadata(ctx, obj, false).await?;
        if obj.meta().deletion_timestamp.is_none() {
            apply::delete(ctx, obj).await?;
        }
        Ok::<(), kube::Error>(())
    };
    match labelled(obj, removed.await) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Invite codes by Invite name, the Secrets that hold them, and the Invites whose Secret failed.
#[derive(Default)]
struct Codes {
    codes: BTreeMap<String, String>,
    secret_names: HashMap<String, String>,
    failed: BTreeMap<String, String>,
}

/// Every live invite gets its code Secret before anything is decided, so redemptions can be
/// checked.
async fn ensure_codes(ctx: &Context, invites: &[Invite]) -> Codes {
    let mut out = Codes::default();
    for invite in invites
        .iter()
        .filter(|i| i.meta().deletion_timestamp.is_none())
    {
        let name = invite.name_any();
        match invite_code_or_create(ctx, invite).await {
            Ok(Some(code)) => {
                out.codes.insert(name.clone(), code);
                out.secret_names.insert(name, code_secret_name(invite));
            }
            // A Secret of that name not owned by this Invite: leave it, report no code.
            Ok(None) => {}
            Err(e) => {
                out.failed.insert(name, e.to_string());
            }
        }
    }
    out
}

/// The invite's code, from its Secret, creating that Secret first when there is none.
async fn invite_code_or_create(
    ctx: &Context,
    invite: &Invite,
) -> Result<Option<String>, kube::Error> {
    let namespace = invite.namespace().unwrap_or_default();
    let exists = ctx
        .stores
        .secrets
        .get(&ObjectRef::new(&code_secret_name(invite)).within(&namespace))
        .is_some();
    if exists {
        return ctx.stores.invite_code(&ctx.client, invite).await;
    }
    let secret = apply::create_code_secret(ctx, invite).await?;
    Ok(ctx.stores.remember_code(&secret, invite))
}

/// The access step, with an Event on the Organization when bindings could not be written.
async fn sync_access(
    ctx: &Context,
    namespace: &str,
    org: Option<&Organization>,
    memberships: &[&Membership],
    effective: &rules::Effective,
    teams: &[Team],
) -> access::Synced {
    // Access follows the effective state just computed, not the statuses in the cache.
    let effective_memberships: Vec<(&Membership, &MembershipStatus)> = memberships
        .iter()
        .map(|&m| (m, &effective.memberships[&m.name_any()].status))
        .collect();
    let synced = access::sync(ctx, namespace, org, &effective_memberships, teams).await;
    if !synced.failures.is_empty()
        && let Some(org) = org
    {
        let event = Event {
            type_: EventType::Warning,
            reason: "AccessNotSynced".into(),
            note: Some(synced.failures.join("; ").chars().take(1000).collect()),
            action: "SyncAccess".into(),
            secondary: None,
        };
        let _ = ctx.recorder.publish(&event, &org.object_ref(&())).await;
    }
    synced
}

/// The Organization's status, and a `DuplicateOrganization` status on any other Organization in
/// the namespace (the oldest is the organization).
async fn write_organizations(
    ctx: &Context,
    organizations: &[Arc<Organization>],
    effective: &rules::Effective,
    synced: &access::Synced,
    now: Timestamp,
) -> Vec<String> {
    let mut failed = Vec::new();
    let Some(org) = organizations.first() else {
        return failed;
    };
    if let Some(status) = &effective.organization {
        let mut status = status.clone();
        let previous = org
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let (access, standing) = access::org_access(synced);
        let generation = org.meta().generation;
        conditions::fold(
            &mut status.conditions,
            access,
            standing,
            previous,
            generation,
            now,
        );
        if org.status.as_ref() != Some(&status) {
            failed.extend(labelled(
                org.as_ref(),
                apply::status(ctx, org.as_ref(), &status).await,
            ));
        }
    }
    let why = format!(
        "this namespace already holds Organization {}; delete this one (an org namespace holds one Organization)",
        org.name_any()
    );
    failed.extend(
        write_not_ready(
            ctx,
            &organizations[1..],
            ConditionReason::DuplicateOrganization,
            &why,
            now,
        )
        .await,
    );
    failed
}

/// Every Organization of an excluded namespace is told why it is none.
async fn write_excluded(
    ctx: &Context,
    organizations: &[Arc<Organization>],
    denial: &rules::Denial,
    now: Timestamp,
) -> Vec<String> {
    let why = format!("{}; this one grants nothing", denial.message);
    write_not_ready(
        ctx,
        organizations,
        ConditionReason::NamespaceExcluded,
        &why,
        now,
    )
    .await
}

/// `Stalled` with `reason` on Organizations that are not the namespace's organization.
async fn write_not_ready(
    ctx: &Context,
    organizations: &[Arc<Organization>],
    reason: ConditionReason,
    why: &str,
    now: Timestamp,
) -> Vec<String> {
    let mut failed = Vec::new();
    for extra in organizations {
        let status = not_the_org_status(extra, reason, why, now);
        if extra.status.as_ref() != Some(&status) {
            failed.extend(labelled(
                extra.as_ref(),
                apply::status(ctx, extra.as_ref(), &status).await,
            ));
        }
    }
    failed
}

/// Each Membership's metadata, then its status; objects side by side (see WRITE_CONCURRENCY).
/// Clients (the webhook's caches among them) see every state between two status writes: write in
/// ranks (see `write_rank`), each rank finished before the next, so that those states keep the
/// invariants too. A failed rank therefore holds back the ranks after it (they could take a seat
/// not yet freed, or drop the last owner), never Invites, Teams or access.
async fn write_memberships(
    ctx: &Context,
    org: Option<&Organization>,
    memberships: &[&Membership],
    effective: &rules::Effective,
) -> Vec<String> {
    // Owners who stay owners, at least minOwners of them, keep the org owned in every state
    // between writes, so owners who leave then may free their seats first, like anyone else.
    let min_owners = org.map_or(1, |o| o.spec.policy.min_owners.max(1)) as usize;
    let owners_kept = memberships
        .iter()
        .filter(|m| {
            is_active_owner(m.status.as_ref())
                && is_active_owner(Some(&effective.memberships[&m.name_any()].status))
        })
        .count()
        >= min_owners;
    let mut ranked: Vec<(u8, &Membership)> = memberships
        .iter()
        .map(|&m| {
            let after = &effective.memberships[&m.name_any()].status;
            (write_rank(m.status.as_ref(), after, owners_kept), m)
        })
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    let mut failed = Vec::new();
    let mut writes = Writes::new();
    let mut rank_in_flight = None;
    for (rank, m) in ranked {
        if ctx.stopping() {
            break;
        }
        if rank_in_flight.is_some_and(|r| r != rank) {
            failed.extend(errors(
                std::mem::replace(&mut writes, Writes::new()).finish().await,
            ));
            if !failed.is_empty() {
                break;
            }
        }
        rank_in_flight = Some(rank);
        let effect = &effective.memberships[&m.name_any()];
        failed.extend(errors(writes.push(write_membership(ctx, m, effect)).await));
    }
    failed.extend(errors(writes.finish().await));
    failed
}

/// Each Invite's status; an Invite whose code Secret could not be made says so.
async fn write_invites(
    ctx: &Context,
    invites: &[Invite],
    effective: &rules::Effective,
    codes: &Codes,
    now: Timestamp,
) -> Vec<String> {
    let mut failed = Vec::new();
    let mut writes = Writes::new();
    for invite in invites {
        if ctx.stopping() {
            break;
        }
        let name = invite.name_any();
        let mut status = effective.invites[&name].clone();
        status.code_secret_name = codes.secret_names.get(&name).cloned();
        if let Some(error) = codes.failed.get(&name) {
            code_secret_failed(ctx, invite, &mut status, error, now).await;
        }
        failed.extend(errors(
            writes.push(write_object(ctx, invite, status, false)).await,
        ));
    }
    failed.extend(errors(writes.finish().await));
    failed
}

/// Reports a code Secret that could not be created: `Reconciling` (`CodeSecretFailed`, retried) on
/// a usable Invite, and a Warning Event.
async fn code_secret_failed(
    ctx: &Context,
    invite: &Invite,
    status: &mut InviteStatus,
    error: &str,
    now: Timestamp,
) {
    let message = format!("the Secret for the invite code could not be created: {error}");
    if status.phase == Some(InvitePhase::Pending) {
        let previous = invite
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let usable = Want::new(
            rules::effective::condition::USABLE,
            false,
            ConditionReason::CodeSecretFailed,
            message.clone(),
        );
        let generation = invite.meta().generation;
        let standing = conditions::Standing::Reconciling;
        conditions::fold(
            &mut status.conditions,
            usable,
            standing,
            previous,
            generation,
            now,
        );
    }
    let event = Event {
        type_: EventType::Warning,
        reason: "CodeSecretFailed".into(),
        note: Some(message.chars().take(1000).collect()),
        action: "CreateCodeSecret".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &invite.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish event");
    }
}

/// Each Team's status, with its `AccessSynced` condition.
async fn write_teams(
    ctx: &Context,
    org: Option<&Organization>,
    teams: &[Team],
    effective: &rules::Effective,
    synced: &access::Synced,
    now: Timestamp,
) -> Vec<String> {
    let mut failed = Vec::new();
    let mut writes = Writes::new();
    for team in teams {
        if ctx.stopping() {
            break;
        }
        let mut status = effective.teams[&team.name_any()].clone();
        let previous = team
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        if let Some((access, standing)) = access::team_access(team, org, synced) {
            let generation = team.meta().generation;
            conditions::fold(
                &mut status.conditions,
                access,
                standing,
                previous,
                generation,
                now,
            );
        }
        failed.extend(errors(
            writes.push(write_object(ctx, team, status, false)).await,
        ));
    }
    failed.extend(errors(writes.finish().await));
    failed
}

/// The rank in which a Membership's status is written within one reconcile (lower first): seats
/// are freed before they are taken, and ownership is gained before it is lost, so no state in
/// between has Active members without an Active owner, or more Active members than seats.
fn write_rank(
    before: Option<&MembershipStatus>,
    after: &MembershipStatus,
    owners_kept: bool,
) -> u8 {
    let active =
        |s: Option<&MembershipStatus>| s.is_some_and(|s| s.phase == Some(MembershipPhase::Active));
    let (was_owner, is_owner) = (is_active_owner(before), is_active_owner(Some(after)));
    if active(before) && !active(Some(after)) && (!was_owner || owners_kept) {
        0 // leaves a seat, and the org stays owned without it
    } else if is_owner && !was_owner {
        1
    } else if was_owner && !is_owner {
        3
    } else {
        2
    }
}

fn is_active_owner(s: Option<&MembershipStatus>) -> bool {
    s.is_some_and(|s| {
        s.phase == Some(MembershipPhase::Active) && s.effective_role == Some(OrgRole::Owner)
    })
}

fn not_the_org_status(
    extra: &Organization,
    reason: ConditionReason,
    why: &str,
    now: Timestamp,
) -> OrganizationStatus {
    let previous = extra.status.clone().unwrap_or_default();
    // Only a person can fix it: by deleting this Organization, or the namespace's exclusion.
    let stalled = conditions::Summary::stalled(reason, why).wants();
    OrganizationStatus {
        observed_generation: extra.meta().generation,
        conditions: conditions::merge(&previous.conditions, stalled, extra.meta().generation, now),
        ..Default::default()
    }
}

async fn publish_notices(
    ctx: &Context,
    notices: &[rules::Notice],
    org: Option<&Organization>,
    memberships: &[&Membership],
    invites: &[Invite],
) {
    for n in notices {
        let reference = match n.kind {
            "Organization" => org.map(|o| o.object_ref(&())),
            "Membership" => memberships
                .iter()
                .find(|m| m.name_any() == n.name)
                .map(|m| m.object_ref(&())),
            "Invite" => invites
                .iter()
                .find(|i| i.name_any() == n.name)
                .map(|i| i.object_ref(&())),
            _ => None,
        };
        let Some(reference) = reference else { continue };
        let event = Event {
            type_: EventType::Warning,
            reason: n.reason.to_string(),
            note: Some(n.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason = n.reason, "could not publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: MembershipPhase, role: OrgRole) -> MembershipStatus {
        MembershipStatus {
            phase: Some(phase),
            effective_role: Some(role),
            ..Default::default()
        }
    }

    /// Seats are freed before they are taken, and ownership is gained before it is lost: with
    /// `maxMembers: 3`, owners Alice and Bob, member Carol and Dave waiting, Bob leaving lets Dave in
    /// only after Bob's seat is free, since Alice keeps the org owned meanwhile.
    #[test]
    fn a_leaving_owner_frees_the_seat_first_when_other_owners_stay() {
        use MembershipPhase::{Active, Pending};
        let owner = status(Active, OrgRole::Owner);
        let gone = status(Pending, OrgRole::Owner);
        let member = status(Active, OrgRole::Member);
        let waiting = status(Pending, OrgRole::Member);
        let bob = write_rank(Some(&owner), &gone, true);
        let dave = write_rank(Some(&waiting), &member, true);
        assert!(bob < dave, "bob {bob} before dave {dave}");
        // Without another owner staying, the last owner's departure waits for the new owner.
        let carol_promoted = write_rank(Some(&member), &owner, false);
        let bob_alone = write_rank(Some(&owner), &gone, false);
        assert!(carol_promoted < bob_alone);
    }
}
