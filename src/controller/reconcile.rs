//! One reconcile of one org namespace: read the caches, ask the rules for the effective state, and
//! write what differs.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::apply::Object;
use super::codes::{Codes, code_secret_failed, ensure_codes};
use super::error::{Error, Failure};
use super::snapshot::{LeftOver, Snapshot};
use super::writes::Writes;
use super::{Context, apply, bindings, delivery};
use crate::api::{
    Invite, InviteStatus, Membership, MembershipStatus, Organization, OrganizationStatus, Team,
};
use crate::rules::ConditionReason;
use crate::rules::access_conditions;
use crate::rules::conditions;
use crate::rules::write_order::{is_active_owner, write_rank};
use crate::rules::{self, MembershipEffect, OrgObjects};

pub use crate::names::OWNER_PROTECTION;

/// How long an org waits at most between two reconciles, whatever changes: drift that no watch
/// event announces (a missed event, a write that lost a race) is repaired within this time. Every
/// write is diffed against the caches first, so a reconcile with nothing to do writes nothing.
pub const RESYNC: Duration = Duration::from_secs(5 * 60);

/// One reconcile of one org namespace, as its steps. One object's failure is reported on that
/// object and never stops the rest of the org: every step runs, and the reconcile fails at the
/// end (so that it is retried with backoff).
#[tracing::instrument(skip_all, fields(namespace = %ns.name_any()))]
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = ns.name_any();
    // Another operator's namespace (or nobody's): never write there.
    if !ctx.scope.contains(&namespace) {
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.reconcile_timer();
    let now = Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid time");
    let loaded = Loaded::load(&ctx, &namespace);
    let (org, memberships) = (loaded.org(), loaded.memberships());
    let (invites, teams) = (&loaded.objects.invites, &loaded.objects.teams);
    let (codes, mut failed) = loaded.ensure_codes(&ctx).await;
    let effective = loaded.compute(&ctx.config, &memberships, &codes, now);
    // Access (revocation above all) runs whatever else failed, from the state just computed.
    let (synced, access_failed) =
        sync_access(&ctx, &namespace, org, &memberships, &effective, teams).await;
    failed.extend(access_failed);
    let (org_failed, org_wake) = loaded
        .write_organizations(&ctx, &memberships, &effective, &synced, now)
        .await;
    failed.extend(org_failed);
    failed.extend(remove_left_over(&ctx, &loaded.left_over).await);
    let (memberships_failed, memberships_wake) =
        write_memberships(&ctx, org, &memberships, &effective, now).await;
    failed.extend(memberships_failed);
    let (invites_failed, invites_wake) =
        write_invites(&ctx, org, invites, &effective, &codes, now).await;
    failed.extend(invites_failed);
    failed.extend(write_teams(&ctx, org, teams, &effective, &synced, now).await);
    if ctx.stopping() {
        return Ok(Action::await_change());
    }
    publish_notices(&ctx, &effective.notices, org, &memberships, invites).await;
    tally(&ctx, &namespace, &effective, &memberships);
    if !failed.is_empty() {
        return Err(Error::Failed(failed));
    }
    ctx.failures
        .lock()
        .expect("failures lock")
        .remove(&namespace);
    let wakes = [
        effective.next_change,
        org_wake,
        invites_wake,
        memberships_wake,
    ];
    Ok(next_action(wakes.into_iter().flatten().min()))
}

/// What one reconcile reads: the cached objects of the namespace, what a deleted Organization left
/// behind among them, and whether the namespace may hold an organization at all.
struct Loaded {
    objects: Snapshot,
    /// What a deleted Organization left behind takes no part: its access goes with the rest of
    /// the org's stale bindings, and the objects themselves are deleted.
    left_over: LeftOver,
    /// An Organization in an excluded namespace is no organization, even if the webhook was
    /// bypassed: nothing is bound and no code Secret is written there.
    excluded: Option<rules::Denial>,
}

impl Loaded {
    fn load(ctx: &Context, namespace: &str) -> Loaded {
        let mut objects = Snapshot::read(&ctx.stores, &ctx.recent, namespace);
        let left_over = objects.split_left_over();
        let excluded = rules::org_namespace(&ctx.config, namespace, "Organization").err();
        Loaded {
            objects,
            left_over,
            excluded,
        }
    }

    /// The namespace's organization: its oldest Organization, unless the namespace is excluded.
    fn org(&self) -> Option<&Organization> {
        (self.objects.organizations.first())
            .map(AsRef::as_ref)
            .filter(|_| self.excluded.is_none())
    }

    fn memberships(&self) -> Vec<&Membership> {
        self.objects.memberships.iter().map(AsRef::as_ref).collect()
    }

    /// The code Secrets of the Invites; none in an excluded namespace.
    async fn ensure_codes(&self, ctx: &Context) -> (Codes, Vec<Failure>) {
        match self.excluded {
            None => ensure_codes(ctx, &self.objects.invites).await,
            Some(_) => (Codes::default(), Vec::new()),
        }
    }

    /// The effective state the rules give these objects.
    fn compute(
        &self,
        config: &rules::Config,
        memberships: &[&Membership],
        codes: &Codes,
        now: Timestamp,
    ) -> rules::Effective {
        let objects = OrgObjects {
            organization: self.org(),
            memberships,
            invites: &self.objects.invites,
            teams: &self.objects.teams,
            invite_codes: &codes.codes,
            identity_providers: &config.identity_providers,
        };
        rules::compute(objects, now)
    }

    /// The status of the Organization(s) of the namespace, and when to look again (a billing
    /// admin notice to retry).
    async fn write_organizations(
        &self,
        ctx: &Context,
        memberships: &[&Membership],
        effective: &rules::Effective,
        synced: &bindings::Synced,
        now: Timestamp,
    ) -> (Vec<Failure>, Option<Timestamp>) {
        let organizations = &self.objects.organizations;
        match &self.excluded {
            None => {
                let org = (organizations.as_slice(), memberships);
                write_organizations(ctx, org, effective, synced, now).await
            }
            Some(denial) => (write_excluded(ctx, organizations, denial, now).await, None),
        }
    }
}

/// The errors among finished writes.
fn errors(done: Vec<Result<(), Failure>>) -> impl Iterator<Item = Failure> {
    done.into_iter().filter_map(Result::err)
}

/// A failed write of `obj`, named after it.
fn labelled<K: Resource<DynamicType = ()>>(
    obj: &K,
    result: Result<(), kube::Error>,
) -> Option<Failure> {
    Some(Failure::write(obj, result.err()?))
}

/// Metadata changes are written only when something roster owns differs: the owner-protection
/// finalizer, and ownerReferences to an Organization that roster wrote before (the kinds people
/// apply carry none now, see `rules::leftovers`), removed once.
async fn ensure_metadata<K>(ctx: &Context, obj: &K, protect: bool) -> Result<(), kube::Error>
where
    K: Object,
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
) -> Result<(), Failure> {
    write_object(ctx, m, effect.status.clone(), effect.protect).await
}

/// The metadata roster owns on `obj`, then its status when that differs.
async fn write_object<K>(
    ctx: &Context,
    obj: &K,
    status: K::Status,
    protect: bool,
) -> Result<(), Failure>
where
    K: Object + kube::core::object::HasStatus,
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

/// The gauges of this org: invites by phase, and whether it has members but no owner.
fn tally(
    ctx: &Context,
    namespace: &str,
    effective: &rules::Effective,
    memberships: &[&Membership],
) {
    let without_owner = effective
        .organization
        .as_ref()
        .is_some_and(|s| s.owners.is_empty() && !memberships.is_empty());
    ctx.metrics.tally(
        namespace,
        effective.invites.values().filter_map(|s| s.phase),
        without_owner,
    );
}

/// Wake up exactly when the next invite expires, not by polling; and after [`RESYNC`] at the
/// latest, to repair drift.
fn next_action(next_change: Option<Timestamp>) -> Action {
    let wait = match next_change {
        Some(at) => {
            let wait = Timestamp::now()
                .duration_until(at)
                .max(SignedDuration::ZERO);
            Duration::try_from(wait).unwrap_or_default() + Duration::from_millis(50)
        }
        None => RESYNC,
    };
    Action::requeue(wait.min(RESYNC))
}

/// Deletes what a deleted Organization left behind, as the garbage collector did when these
/// objects were owned by it; owner protection yields (the Organization is gone).
async fn remove_left_over(ctx: &Context, left_over: &LeftOver) -> Vec<Failure> {
    let (last, first): (Vec<&Membership>, Vec<&Membership>) = left_over
        .memberships
        .iter()
        .map(AsRef::as_ref)
        .partition(|m| {
            rules::leftovers::removed_last(m.status.as_ref().and_then(|s| s.effective_role))
        });
    let mut failed = remove_all(ctx, first.into_iter()).await;
    // Only once the others are gone, so that no one is left without an owner meanwhile.
    if failed.is_empty() {
        failed = remove_all(ctx, last.into_iter()).await;
    }
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

async fn remove_all<'a, K>(ctx: &Context, objects: impl Iterator<Item = &'a K>) -> Vec<Failure>
where
    K: Object + 'a,
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
async fn remove<K>(ctx: &Context, obj: &K) -> Result<(), Failure>
where
    K: Object,
{
    let removed = async {
        // Owner protection yields: the Organization is gone. (Old ownerReferences go with the
        // object; no need to remove them first.)
        if obj.finalizers().iter().any(|f| f == OWNER_PROTECTION) {
            apply::metadata(ctx, obj, &[]).await?;
        }
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

/// The access step, with an Event on the Organization when bindings could not be written.
async fn sync_access(
    ctx: &Context,
    namespace: &str,
    org: Option<&Organization>,
    memberships: &[&Membership],
    effective: &rules::Effective,
    teams: &[Team],
) -> (bindings::Synced, Vec<Failure>) {
    // Access follows the effective state just computed, not the statuses in the cache.
    let effective_memberships: Vec<(&Membership, &MembershipStatus)> = memberships
        .iter()
        .map(|&m| (m, &effective.memberships[&m.name_any()].status))
        .collect();
    let (synced, failures) =
        bindings::sync(ctx, namespace, org, &effective_memberships, teams).await;
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
        if let Err(e) = ctx.recorder.publish(&event, &org.object_ref(&())).await {
            tracing::warn!(error = %e, reason = "AccessNotSynced", "could not publish event");
        }
    }
    (synced, failures)
}

/// The Organization's status, and a `DuplicateOrganization` status on any other Organization in
/// the namespace (the oldest is the organization).
async fn write_organizations(
    ctx: &Context,
    (organizations, memberships): (&[Arc<Organization>], &[&Membership]),
    effective: &rules::Effective,
    synced: &bindings::Synced,
    now: Timestamp,
) -> (Vec<Failure>, Option<Timestamp>) {
    let mut failed = Vec::new();
    let mut wake = None;
    let Some(org) = organizations.first() else {
        return (failed, wake);
    };
    if let Some(status) = &effective.organization {
        let mut status = status.clone();
        let previous = org
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let (access, standing) = access_conditions::org_access(synced);
        let generation = org.meta().generation;
        conditions::fold(
            &mut status.conditions,
            access,
            standing,
            previous,
            generation,
            now,
        );
        let planned = delivery::billing_admin(ctx, org, memberships, &mut status, now);
        wake = planned.wake;
        let written = match planned.message {
            Some(message) => {
                let record = status.billing_admin_notice.as_ref();
                delivery::write_then_send(ctx, org.as_ref(), &status, record, message).await
            }
            None if org.status.as_ref() != Some(&status) => {
                apply::status(ctx, org.as_ref(), &status).await
            }
            None => Ok(()),
        };
        failed.extend(labelled(org.as_ref(), written));
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
    (failed, wake)
}

/// Every Organization of an excluded namespace is told why it is none.
async fn write_excluded(
    ctx: &Context,
    organizations: &[Arc<Organization>],
    denial: &rules::Denial,
    now: Timestamp,
) -> Vec<Failure> {
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
) -> Vec<Failure> {
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
    now: Timestamp,
) -> (Vec<Failure>, Option<Timestamp>) {
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
    let mut wake: Option<Timestamp> = None;
    ranked.retain(|(_, m)| {
        let next = &effective.memberships[&m.name_any()].status;
        let later = rules::first_status::deferred_until(m, next, now);
        wake = [wake, later].into_iter().flatten().min();
        later.is_none()
    });
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
    (failed, wake)
}

/// Each Invite's status, with its e-mail step; an Invite whose code Secret could not be made says
/// so. Returns the failures and when a failed e-mail is due to be tried again.
async fn write_invites(
    ctx: &Context,
    org: Option<&Organization>,
    invites: &[Invite],
    effective: &rules::Effective,
    codes: &Codes,
    now: Timestamp,
) -> (Vec<Failure>, Option<Timestamp>) {
    let mut failed = Vec::new();
    let mut wake: Option<Timestamp> = None;
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
        let code = codes.codes.get(&name).map(String::as_str);
        let planned = delivery::invite(ctx, org, invite, &mut status, code, now);
        wake = [wake, planned.wake].into_iter().flatten().min();
        failed.extend(errors(
            writes
                .push(write_invite(ctx, invite, status, planned.message))
                .await,
        ));
    }
    failed.extend(errors(writes.finish().await));
    (failed, wake)
}

/// One Invite's status; with a message, written on the resourceVersion read and then sent.
async fn write_invite(
    ctx: &Context,
    invite: &Invite,
    status: InviteStatus,
    message: Option<lettre::Message>,
) -> Result<(), Failure> {
    let Some(message) = message else {
        return write_object(ctx, invite, status, false).await;
    };
    let written = async {
        ensure_metadata(ctx, invite, false).await?;
        let record = status.delivery.as_ref();
        delivery::write_then_send(ctx, invite, &status, record, message).await
    };
    match labelled(invite, written.await) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Each Team's status, with its `AccessSynced` condition.
async fn write_teams(
    ctx: &Context,
    org: Option<&Organization>,
    teams: &[Team],
    effective: &rules::Effective,
    synced: &bindings::Synced,
    now: Timestamp,
) -> Vec<Failure> {
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
        if let Some((access, standing)) = access_conditions::team_access(team, org, synced) {
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

    #[test]
    fn an_idle_org_is_reconciled_again_after_the_resync_period_and_an_expiry_sooner() {
        assert_eq!(next_action(None), Action::requeue(RESYNC));
        let next_year = Timestamp::now() + SignedDuration::from_hours(24 * 365);
        assert_eq!(next_action(Some(next_year)), Action::requeue(RESYNC));
        let past = Timestamp::now() - SignedDuration::from_secs(60);
        assert_eq!(
            next_action(Some(past)),
            Action::requeue(Duration::from_millis(50))
        );
    }
}
