//! The effective state of one organization: from the desired objects (spec), what they were last
//! (status) and the time, compute every status so that the invariants of docs/design.md §3 hold,
//! whatever the desired state is.
//!
//! Deterministic (ties broken by creation time, then name) and idempotent: feeding the computed
//! statuses back in yields the same statuses.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use super::age::{age_key, oldest_first};
use super::conditions::{self, Summary, Want};
use super::identity_providers::IdentityProviders;
use super::reason::ConditionReason;
use super::{leftovers, open_invites, redemption, ttl};
use crate::api::{
    AcceptedBy, Invite, InvitePhase, InviteStatus, Leader, Membership, MembershipPhase,
    MembershipStatus, OrgPolicy, OrgRole, Organization, OrganizationStatus, Seats, Subject, Team,
    TeamPhase, TeamStatus,
};

/// Condition types, shared with the controller and documentation.
pub mod condition {
    pub use crate::rules::conditions::{READY, RECONCILING, STALLED};
    /// An Invite's: whether its code can be redeemed now.
    pub const USABLE: &str = "Usable";
    /// An Invite's, when its organization sends e-mail: whether the last message went out.
    pub const DELIVERED: &str = "Delivered";
    /// A Team's: whether it is active (`spec.active`).
    pub const ACTIVE: &str = "Active";
    pub const OWNER_QUORUM: &str = "OwnerQuorum";
    pub const OWNERS_WITHIN_TARGET: &str = "OwnersWithinTarget";
    pub const SEATS_AVAILABLE: &str = "SeatsAvailable";
    pub const BILLING_ADMIN: &str = "BillingAdmin";
    pub const ROLE_CHANGE_HELD: &str = "RoleChangeHeld";
    pub const MEMBERS_RESOLVED: &str = "MembersResolved";
}
use condition::*;

/// Everything in one org namespace, as the caches hold it.
#[derive(Clone, Copy)]
pub struct OrgObjects<'a> {
    /// The Organization of the namespace, if one exists.
    pub organization: Option<&'a Organization>,
    /// References, because an org may hold 10,000 of them and the controller's caches already do:
    /// computing the effective state never copies a Membership.
    pub memberships: &'a [&'a Membership],
    pub invites: &'a [Invite],
    pub teams: &'a [Team],
    /// Invite codes by Invite name, read from the Secrets the operator generated.
    pub invite_codes: &'a BTreeMap<String, String>,
    /// The installation's identity providers, which Invites may be bound to.
    pub identity_providers: &'a IdentityProviders,
}

/// The effective state: a status for every object, plus what the controller must do besides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effective {
    pub organization: Option<OrganizationStatus>,
    pub memberships: BTreeMap<String, MembershipEffect>,
    pub invites: BTreeMap<String, InviteStatus>,
    pub teams: BTreeMap<String, TeamStatus>,
    /// The next moment the effective state changes by itself (an invite expiring).
    pub next_change: Option<Timestamp>,
    /// Transitions a person should notice, for Kubernetes Events.
    pub notices: Vec<Notice>,
}

/// The effective state of one Membership.
#[derive(Clone, Debug, PartialEq)]
pub struct MembershipEffect {
    pub status: MembershipStatus,
    /// Whether the owner-protection finalizer must stay on the object.
    pub protect: bool,
}

/// Something that just happened and deserves a Kubernetes Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub kind: &'static str,
    pub name: String,
    pub reason: &'static str,
    pub message: String,
}

/// Why a Membership is not (or not fully) in force: one of the membership reasons of
/// [`ConditionReason`], named `NotInForce` where it is a verdict.
type NotInForce = ConditionReason;

/// Pending may still resolve by itself; Denied needs the object changed or replaced.
fn phase_of(why: NotInForce) -> MembershipPhase {
    match why {
        NotInForce::OrganizationMissing
        | NotInForce::Deleting
        | NotInForce::InviteCodeUnavailable
        | NotInForce::AnotherAdminInvitePending
        | NotInForce::SeatLimitReached
        | NotInForce::OwnerQuorumNotMet
        | NotInForce::WaitingForPreviousMembership => MembershipPhase::Pending,
        _ => MembershipPhase::Denied,
    }
}

/// The verdict for one Membership while computing.
#[derive(Clone, Debug)]
enum Verdict {
    /// Valid and seated (or waiting for a seat decision).
    Candidate,
    /// Being deleted; effective only if held as the last owner.
    Leaving,
    Out(NotInForce, String),
}

/// How an invite is doing while Memberships redeem it.
struct InviteUse<'a> {
    invite: &'a Invite,
    expires_at: Timestamp,
    accepted: Vec<AcceptedBy>,
    /// An older admin invite is pending: at most one may be (docs/design.md §2), whatever races
    /// slipped past the webhook. This one waits until that one is used, expires or is revoked.
    waits_for: Option<String>,
}

impl InviteUse<'_> {
    /// A usable admin invite, as far as the uses already recorded go.
    fn pending_admin(&self, now: Timestamp) -> bool {
        let spec = &self.invite.spec;
        spec.role == OrgRole::Admin
            && !spec.revoked
            && (self.accepted.len() as i32) < spec.max_uses
            && now < self.expires_at
    }
}

/// Marks every pending admin invite but the oldest as waiting for it.
fn one_pending_admin_invite(invites: &mut BTreeMap<String, InviteUse<'_>>, now: Timestamp) {
    let first = invites
        .iter()
        .filter(|(_, u)| u.pending_admin(now))
        .min_by_key(|(_, u)| age_key(u.invite))
        .map(|(name, _)| name.clone());
    for (name, u) in invites.iter_mut() {
        if u.pending_admin(now) && Some(name) != first.as_ref() {
            u.waits_for = first.clone();
        }
    }
}

/// The Organization a status is computed under: the namespace's, or else the one it belonged to
/// (an object outlives its Organization only until roster deletes it, see `leftovers`).
fn organization_uid<K: kube::Resource>(
    org: Option<&Organization>,
    object: &K,
    recorded: Option<&str>,
) -> Option<String> {
    org.and_then(|o| o.meta().uid.clone())
        .or_else(|| leftovers::organization_uid(object.meta(), recorded).map(str::to_owned))
}

/// The name shown for a subject in status lists: users as is, groups as `group:NAME`.
pub fn display(subject: &Subject) -> String {
    match subject {
        Subject::User(u) => u.clone(),
        Subject::Group(g) => format!("group:{g}"),
    }
}

/// Computes the effective state of one organization at `now`, in the numbered steps of
/// [`Computation`].
pub fn compute(objs: OrgObjects<'_>, now: Timestamp) -> Effective {
    let mut c = Computation::new(objs, now);
    c.judge_memberships();
    c.hold_last_owners();
    c.seat();
    let mut out = Effective::default();
    let tally = c.membership_statuses(&mut out);
    let pending_invites = c.invite_statuses(&mut out);
    c.team_statuses(&tally, &mut out);
    c.organization_status(&tally, pending_invites, &mut out);
    out
}

/// What one computation knows so far, shared by its steps. Memberships are referred to by their
/// index in `memberships` (oldest first).
struct Computation<'a> {
    objs: OrgObjects<'a>,
    org: Option<&'a Organization>,
    org_deleting: bool,
    policy: OrgPolicy,
    min_owners: usize,
    now: Timestamp,
    memberships: Vec<&'a Membership>,
    invites: BTreeMap<String, InviteUse<'a>>,
    verdicts: Vec<Verdict>,
    /// The first Membership of each user or group.
    claimed: HashMap<Subject, usize>,
    /// The invite each redeeming Membership redeemed.
    redeemed: HashMap<usize, String>,
    /// Effective owners held as owners (a demotion or removal that would break the quorum).
    held: HashSet<usize>,
    seated: HashSet<usize>,
    seated_owners: usize,
}

/// The org-wide tallies of the Membership statuses.
#[derive(Default)]
struct Tally {
    owners: Vec<String>,
    admins: Vec<String>,
    effective_subjects: HashSet<Subject>,
    seat_waiting: usize,
}

impl<'a> Computation<'a> {
    fn new(objs: OrgObjects<'a>, now: Timestamp) -> Computation<'a> {
        let org = objs.organization;
        let policy = org.map(|o| o.spec.policy.clone()).unwrap_or_default();
        let mut memberships: Vec<&Membership> = objs.memberships.to_vec();
        oldest_first(&mut memberships);
        let invites = invite_uses(objs.invites, &memberships, org.is_some(), &policy, now);
        Computation {
            objs,
            org,
            org_deleting: org.is_some_and(|o| o.meta().deletion_timestamp.is_some()),
            min_owners: policy.min_owners.max(1) as usize,
            policy,
            now,
            verdicts: Vec::with_capacity(memberships.len()),
            memberships,
            invites,
            claimed: HashMap::new(),
            redeemed: HashMap::new(),
            held: HashSet::new(),
            seated: HashSet::new(),
            seated_owners: 0,
        }
    }

    /// 1. Validity of each Membership on its own and against the others, oldest first, and the
    ///    redemption of invites.
    fn judge_memberships(&mut self) {
        // Redemptions already recorded in status were valid when made; they are never undone, so
        // they take their uses before new ones.
        let mut redemptions: Vec<usize> = Vec::new();
        for i in 0..self.memberships.len() {
            let m = self.memberships[i];
            let v = self.verdict(i, m);
            // Every live Membership is redeemed afresh (see `invite_uses`): a candidate to take a
            // use, and one whose use was recorded to keep it, whatever else is wrong with it now.
            let live = m.meta().deletion_timestamp.is_none();
            if m.spec.invite.is_some()
                && live
                && (matches!(v, Verdict::Candidate) || is_recorded(m))
            {
                redemptions.push(i);
            }
            self.verdicts.push(v);
        }
        let (recorded, fresh): (Vec<usize>, Vec<usize>) = redemptions
            .into_iter()
            .partition(|&i| is_recorded(self.memberships[i]));
        self.redeem_each(recorded);
        // Which admin invite is the pending one is decided once the uses already made are counted.
        one_pending_admin_invite(&mut self.invites, self.now);
        self.redeem_each(fresh);
    }

    /// The verdict on Membership `i` on its own and against the older ones.
    fn verdict(&mut self, i: usize, m: &Membership) -> Verdict {
        if self.org.is_none() {
            return Verdict::Out(
                NotInForce::OrganizationMissing,
                "no Organization in this namespace yet; this Membership takes effect when one is created".into(),
            );
        }
        if m.meta().deletion_timestamp.is_some() {
            return Verdict::Leaving;
        }
        let Some(subject) = m.spec.subject() else {
            return Verdict::Out(
                NotInForce::InvalidSpec,
                "set exactly one of spec.user or spec.group".into(),
            );
        };
        if let Some(&first) = self.claimed.get(&subject) {
            let first = self.memberships[first].name_any();
            return Verdict::Out(
                NotInForce::Duplicate,
                format!(
                    "{subject} already has Membership {first}; delete this one or change that one"
                ),
            );
        }
        self.claimed.insert(subject, i);
        Verdict::Candidate
    }

    fn redeem_each(&mut self, indexes: Vec<usize>) {
        for i in indexes {
            let m = self.memberships[i];
            let providers = self.objs.identity_providers;
            match redeem(
                m,
                &mut self.invites,
                self.objs.invite_codes,
                providers,
                &self.policy,
            ) {
                Ok(invite) => {
                    self.redeemed.insert(i, invite);
                }
                Err((why, msg)) => self.verdicts[i] = Verdict::Out(why, msg),
            }
        }
    }

    /// 2. Owner quorum: hold back demotions and removals of effective owners that would leave fewer
    ///    than minOwners while the organization has members.
    fn hold_last_owners(&mut self) {
        let desired_owners = self
            .memberships
            .iter()
            .zip(&self.verdicts)
            .filter(|(m, v)| matches!(v, Verdict::Candidate) && m.spec.role == OrgRole::Owner)
            .count();
        let has_members = self
            .verdicts
            .iter()
            .any(|v| matches!(v, Verdict::Candidate));
        if self.org_deleting || !has_members || desired_owners >= self.min_owners {
            return;
        }
        let mut need = self.min_owners - desired_owners;
        let mut held_subjects: HashSet<Subject> = HashSet::new();
        for i in 0..self.memberships.len() {
            if need == 0 {
                break;
            }
            let m = self.memberships[i];
            let was_owner = m.status.as_ref().is_some_and(|s| {
                s.phase == Some(MembershipPhase::Active) && s.effective_role == Some(OrgRole::Owner)
            });
            // One held Membership per user or group, however many old ones are leaving.
            if was_owner
                && self.holdable(i)
                && m.spec.subject().is_some_and(|s| held_subjects.insert(s))
            {
                self.held.insert(i);
                need -= 1;
                self.newer_waits_for_held(i);
            }
        }
    }

    /// Whether Membership `i`, an effective owner, can be held as one.
    fn holdable(&self, i: usize) -> bool {
        let m = self.memberships[i];
        match &self.verdicts[i] {
            Verdict::Candidate => m.spec.role < OrgRole::Owner,
            // Unless a newer Membership for the same subject is an owner and takes over.
            Verdict::Leaving => m
                .spec
                .subject()
                .and_then(|s| self.claimed.get(&s))
                .is_none_or(|&j| {
                    !matches!(self.verdicts[j], Verdict::Candidate)
                        || self.memberships[j].spec.role < OrgRole::Owner
                }),
            Verdict::Out(..) => false,
        }
    }

    /// A held leaving owner keeps its user or group: a newer Membership for the same subject (a
    /// renamed object, say) waits until the old one is gone.
    fn newer_waits_for_held(&mut self, i: usize) {
        let m = self.memberships[i];
        if let (Verdict::Leaving, Some(subject)) = (&self.verdicts[i], m.spec.subject())
            && let Some(&j) = self.claimed.get(&subject)
            && matches!(self.verdicts[j], Verdict::Candidate)
        {
            self.verdicts[j] = Verdict::Out(
                NotInForce::WaitingForPreviousMembership,
                format!(
                    "{subject} is still held by Membership {} as the last owner; this one takes over once it is gone",
                    m.name_any()
                ),
            );
        }
    }

    /// 3. Seats: owners (including held ones) first, then everyone else, oldest first. Then
    ///    invariant 1 whatever the desired state: without minOwners owners in place (a new
    ///    organization, or one whose owners were removed behind the webhook's back), no Membership
    ///    takes effect.
    fn seat(&mut self) {
        let owner_like = |c: &Self, i: usize| {
            c.memberships[i].spec.role == OrgRole::Owner || c.held.contains(&i)
        };
        let mut order: Vec<usize> = (0..self.memberships.len())
            .filter(|&i| matches!(self.verdicts[i], Verdict::Candidate) || self.held.contains(&i))
            .collect();
        order.sort_by_key(|&i| (!owner_like(self, i), i));
        let limit = self
            .policy
            .max_members
            .map_or(usize::MAX, |l| l.max(0) as usize);
        for (n, i) in order.into_iter().enumerate() {
            if n < limit {
                self.seated.insert(i);
            } else {
                self.verdicts[i] = Verdict::Out(
                    NotInForce::SeatLimitReached,
                    format!(
                        "all {limit} seats (spec.policy.maxMembers) are taken; it becomes Active when a seat frees up or the limit is raised"
                    ),
                );
            }
        }
        self.seated_owners = self.seated.iter().filter(|&&i| owner_like(self, i)).count();
        if self.seated_owners < self.min_owners {
            let (seated_owners, min_owners) = (self.seated_owners, self.min_owners);
            for i in self.seated.drain() {
                self.verdicts[i] = Verdict::Out(
                    NotInForce::OwnerQuorumNotMet,
                    format!(
                        "the organization has {seated_owners} of the {min_owners} owner(s) spec.policy.minOwners requires; Memberships take effect once enough owners are in place"
                    ),
                );
            }
            self.held.clear();
        }
    }

    /// 4. Statuses of Memberships, and the org-wide tallies.
    fn membership_statuses(&self, out: &mut Effective) -> Tally {
        let mut tally = Tally::default();
        for (i, m) in self.memberships.iter().enumerate() {
            let name = m.name_any();
            let previous = m.status.clone().unwrap_or_default();
            let generation = m.meta().generation;
            let mut status = MembershipStatus {
                organization_uid: organization_uid(
                    self.org,
                    *m,
                    previous.organization_uid.as_deref(),
                ),
                observed_generation: generation,
                ..Default::default()
            };
            let mut wanted = Vec::new();
            let active = self.seated.contains(&i);
            let summary = if active {
                self.in_force(i, &previous, &mut status, &mut wanted, &mut tally, out)
            } else {
                self.not_in_force(i, &previous, &mut status, &mut tally, out)
            };
            // A recorded redemption stays recorded, also while the Membership is leaving.
            status.invite = self
                .redeemed
                .get(&i)
                .cloned()
                .or_else(|| previous.invite.clone().filter(|_| is_recorded(m)));
            wanted.extend(summary.wants());
            status.conditions =
                conditions::merge(&previous.conditions, wanted, generation, self.now);
            let protect =
                active && status.effective_role == Some(OrgRole::Owner) && !self.org_deleting;
            out.memberships
                .insert(name, MembershipEffect { status, protect });
        }
        tally.owners.sort();
        tally.admins.sort();
        tally
    }

    /// The status of seated Membership `i`: Active with its role, or the role held.
    fn in_force(
        &self,
        i: usize,
        previous: &MembershipStatus,
        status: &mut MembershipStatus,
        wanted: &mut Vec<Want>,
        tally: &mut Tally,
        out: &mut Effective,
    ) -> Summary {
        let m = self.memberships[i];
        let held = self.held.contains(&i);
        let role = if held { OrgRole::Owner } else { m.spec.role };
        let subject = m.spec.subject().expect("seated memberships name a subject");
        match role {
            OrgRole::Owner => tally.owners.push(display(&subject)),
            OrgRole::Admin => tally.admins.push(display(&subject)),
            _ => {}
        }
        tally.effective_subjects.insert(subject);
        status.phase = Some(MembershipPhase::Active);
        status.effective_role = Some(role);
        status.joined_at = previous.joined_at.clone().or(Some(Time(self.now)));
        if !held {
            return Summary::current(ConditionReason::Active, format!("effective as {role}"));
        }
        let min_owners = self.min_owners;
        let (reason, message) = if m.meta().deletion_timestamp.is_some() {
            (
                ConditionReason::LastOwnerRemovalHeld,
                format!(
                    "this is one of the last {min_owners} effective owner(s) (spec.policy.minOwners) and the organization still has members; it is removed as soon as another owner is effective"
                ),
            )
        } else {
            (
                ConditionReason::LastOwnerDemotionHeld,
                format!(
                    "spec.role is {} but this is one of the last {min_owners} effective owner(s) (spec.policy.minOwners); make another member owner first and the change applies by itself",
                    m.spec.role
                ),
            )
        };
        wanted.push(Want::new(ROLE_CHANGE_HELD, true, reason, message.clone()));
        if !conditions::is_true(&previous.conditions, ROLE_CHANGE_HELD) {
            out.notices.push(Notice {
                kind: "Membership",
                name: m.name_any(),
                reason: reason.as_str(),
                message: message.clone(),
            });
        }
        // Held changes apply by themselves once another owner is effective.
        Summary::reconciling(
            reason,
            format!("effective as {role}, not yet as spec.role says: {message}"),
        )
    }

    /// The status of Membership `i` that is not in force: Pending or Denied, and why.
    fn not_in_force(
        &self,
        i: usize,
        previous: &MembershipStatus,
        status: &mut MembershipStatus,
        tally: &mut Tally,
        out: &mut Effective,
    ) -> Summary {
        let (why, message) = match &self.verdicts[i] {
            Verdict::Out(why, msg) => (*why, msg.clone()),
            Verdict::Leaving | Verdict::Candidate => {
                (NotInForce::Deleting, "being deleted".to_string())
            }
        };
        if why == NotInForce::SeatLimitReached {
            tally.seat_waiting += 1;
        }
        status.phase = Some(phase_of(why));
        let previously = conditions::find(&previous.conditions, READY).map(|c| c.reason.as_str());
        if matches!(why, NotInForce::SeatLimitReached | NotInForce::Duplicate)
            && previously != Some(why.as_str())
        {
            out.notices.push(Notice {
                kind: "Membership",
                name: self.memberships[i].name_any(),
                reason: why.as_str(),
                message: message.clone(),
            });
        }
        match phase_of(why) {
            MembershipPhase::Denied => Summary::stalled(why, message),
            _ => Summary::reconciling(why, message),
        }
    }

    /// 5. Invites; returns how many are usable.
    fn invite_statuses(&self, out: &mut Effective) -> i32 {
        let mut pending_invites = 0;
        for (name, u) in &self.invites {
            let status = self.invite_status(u, out);
            if status.phase == Some(InvitePhase::Pending) {
                if conditions::is_true(&status.conditions, USABLE) {
                    pending_invites += 1;
                }
                out.next_change = Some(
                    out.next_change
                        .map_or(u.expires_at, |t: Timestamp| t.min(u.expires_at)),
                );
            }
            out.invites.insert(name.clone(), status);
        }
        pending_invites
    }

    fn invite_status(&self, u: &InviteUse<'_>, out: &mut Effective) -> InviteStatus {
        let inv = u.invite;
        let previous = inv.status.clone().unwrap_or_default();
        let uses = u.accepted.len() as i32;
        let phase = if inv.spec.revoked {
            InvitePhase::Revoked
        } else if uses >= inv.spec.max_uses {
            InvitePhase::Accepted
        } else if self.now >= u.expires_at {
            InvitePhase::Expired
        } else {
            InvitePhase::Pending
        };
        let summary = self.invite_summary(u, phase, uses);
        let usable = Want::new(
            USABLE,
            phase == InvitePhase::Pending && summary.standing == conditions::Standing::Current,
            summary.reason.clone(),
            summary.message.clone(),
        );
        if phase == InvitePhase::Expired
            && previous.phase.is_some()
            && previous.phase != Some(InvitePhase::Expired)
        {
            out.notices.push(Notice {
                kind: "Invite",
                name: inv.name_any(),
                reason: ConditionReason::InviteExpired.as_str(),
                message: format!(
                    "invite for {} expired unused",
                    inv.spec.email.as_deref().unwrap_or("anyone")
                ),
            });
        }
        InviteStatus {
            phase: Some(phase),
            expires_at: Some(Time(u.expires_at)),
            uses,
            accepted_by: u.accepted.clone(),
            code_secret_name: previous.code_secret_name.clone(),
            delivery: previous.delivery.clone(),
            organization_uid: organization_uid(self.org, inv, previous.organization_uid.as_deref()),
            observed_generation: inv.meta().generation,
            conditions: conditions::merge(
                &previous.conditions,
                std::iter::once(usable).chain(summary.wants()).collect(),
                inv.meta().generation,
                self.now,
            ),
        }
    }

    fn invite_summary(&self, u: &InviteUse<'_>, phase: InvitePhase, uses: i32) -> Summary {
        let spec = &u.invite.spec;
        let (_, capped) = ttl::lifetime(spec, &self.policy.invites);
        let providers = self.objs.identity_providers;
        let unchecked = spec
            .identity_provider
            .as_ref()
            .and_then(|r| providers.resolve(r).err());
        match (phase, open_invites::refusal(spec, &self.policy.invites)) {
            // Stored while the webhook was bypassed, or the platform removed the provider since.
            (InvitePhase::Pending, _) if unchecked.is_some() => Summary::stalled(
                ConditionReason::IdentityProviderNotConfigured,
                format!(
                    "{}; this invite cannot be redeemed until it is",
                    unchecked
                        .expect("checked above")
                        .message("spec.identityProvider", providers)
                ),
            ),
            (InvitePhase::Pending, _) if u.waits_for.is_some() => Summary::reconciling(
                ConditionReason::AnotherAdminInvitePending,
                format!(
                    "admin Invite {} is older and still pending; only one admin invite may be pending, so this one cannot be redeemed until that one is used, expires or is revoked",
                    u.waits_for.as_deref().unwrap_or_default()
                ),
            ),
            (InvitePhase::Pending, Some(refusal)) => Summary::stalled(
                refusal.reason(),
                format!("{}; this invite cannot be redeemed", refusal.message()),
            ),
            (InvitePhase::Pending, None) if capped => Summary::current(
                ConditionReason::TTLCapped,
                format!(
                    "usable; spec.ttl exceeds spec.policy.invites.maxTTL ({}), so it expires earlier",
                    self.policy.invites.max_ttl
                ),
            ),
            (InvitePhase::Pending, None) => Summary::current(
                ConditionReason::Usable,
                format!("{} of {} uses left", spec.max_uses - uses, spec.max_uses),
            ),
            // Settled end states: nothing is left for roster to do (kstatus reads them as Current).
            (InvitePhase::Accepted, _) => Summary::current(
                ConditionReason::Accepted,
                "settled: all uses are taken; the code no longer works",
            ),
            (InvitePhase::Expired, _) => Summary::current(
                ConditionReason::Expired,
                "settled: the invite expired unused; create a new Invite to invite again",
            ),
            (InvitePhase::Revoked, _) => Summary::current(
                ConditionReason::Revoked,
                "settled: the invite was revoked; the code no longer works",
            ),
        }
    }

    /// 6. Teams.
    fn team_statuses(&self, tally: &Tally, out: &mut Effective) {
        for team in self.objs.teams {
            out.teams
                .insert(team.name_any(), self.team_status(team, tally));
        }
    }

    fn team_status(&self, team: &Team, tally: &Tally) -> TeamStatus {
        let previous = team.status.clone().unwrap_or_default();
        let mut unresolved = Vec::new();
        let mut owner = None;
        let mut resolved = 0;
        for member in &team.spec.members {
            let Some(subject) = member.subject() else {
                continue;
            };
            if member.role == crate::api::TeamRole::Owner {
                owner = Some(display(&subject));
            }
            if tally.effective_subjects.contains(&subject) {
                resolved += 1;
            } else {
                unresolved.push(display(&subject));
            }
        }
        let owner_resolved = owner.as_ref().is_some_and(|o| !unresolved.contains(o));
        let mut wanted = vec![if unresolved.is_empty() {
            Want::new(
                MEMBERS_RESOLVED,
                true,
                ConditionReason::AllMembersInOrganization,
                "every team member holds an effective Membership",
            )
        } else {
            Want::new(
                MEMBERS_RESOLVED,
                false,
                ConditionReason::MembersNotInOrganization,
                format!(
                    "no effective Membership for {}; they get no team access until they join",
                    unresolved.join(", ")
                ),
            )
        }];
        let deactivated =
            "spec.active is false: the team grants no access and is kept for the record";
        wanted.push(if team.spec.active {
            Want::new(ACTIVE, true, ConditionReason::Active, "spec.active is true")
        } else {
            Want::new(ACTIVE, false, ConditionReason::Deactivated, deactivated)
        });
        // A deactivated team is a settled state, not one in progress. Naming people who have not
        // joined yet (self-join, a pending invite) is a normal state too: they get the team's access
        // when they join, and MembersResolved says who they are.
        let summary = if !team.spec.active {
            Summary::current(ConditionReason::Deactivated, deactivated)
        } else if owner_resolved {
            Summary::current(
                ConditionReason::Active,
                format!("{resolved} member(s) in force"),
            )
        } else {
            Summary::current(
                ConditionReason::OwnerNotInOrganization,
                format!(
                    "{resolved} member(s) in force; the team owner holds no effective Membership yet (org admins manage the team meanwhile)"
                ),
            )
        };
        wanted.extend(summary.wants());
        let generation = team.meta().generation;
        TeamStatus {
            phase: Some(if team.spec.active {
                TeamPhase::Active
            } else {
                TeamPhase::Deactivated
            }),
            owner,
            members: resolved,
            color: Some(
                team.spec
                    .color
                    .clone()
                    .unwrap_or_else(|| stable_color(&team.name_any())),
            ),
            unresolved_members: unresolved,
            organization_uid: organization_uid(
                self.org,
                team,
                previous.organization_uid.as_deref(),
            ),
            observed_generation: generation,
            conditions: conditions::merge(&previous.conditions, wanted, generation, self.now),
        }
    }

    /// 7. The Organization.
    fn organization_status(&self, tally: &Tally, pending_invites: i32, out: &mut Effective) {
        let Some(org) = self.org else {
            return;
        };
        let previous = org.status.clone().unwrap_or_default();
        let members = self.seated.len() as i32;
        let mut wanted = self.org_conditions(members, tally);
        if tally.seat_waiting > 0
            && !previous.conditions.iter().any(|c| {
                c.type_ == SEATS_AVAILABLE && c.reason == ConditionReason::SeatLimitReached
            })
        {
            out.notices.push(Notice {
                kind: "Organization",
                name: org.name_any(),
                reason: ConditionReason::SeatLimitReached.as_str(),
                message: format!("{} Membership(s) wait for a seat", tally.seat_waiting),
            });
        }
        // Owners arrive in the same sync as their Organization: a short quorum resolves by itself.
        let n_owners = self.seated_owners;
        let summary = if self.org_deleting {
            Summary::reconciling(
                ConditionReason::Deleting,
                "the organization is being deleted",
            )
        } else if n_owners >= self.min_owners {
            Summary::current(
                ConditionReason::Ready,
                format!("{members} member(s), {n_owners} owner(s)"),
            )
        } else {
            Summary::reconciling(
                ConditionReason::OwnerQuorumNotMet,
                "see the OwnerQuorum condition",
            )
        };
        wanted.extend(summary.wants());
        let generation = org.meta().generation;
        let leadership = tally
            .owners
            .iter()
            .map(|u| Leader {
                user: u.clone(),
                role: "owner".into(),
            })
            .chain(tally.admins.iter().map(|u| Leader {
                user: u.clone(),
                role: "admin".into(),
            }))
            .collect();
        out.organization = Some(OrganizationStatus {
            observed_generation: generation,
            conditions: conditions::merge(&previous.conditions, wanted, generation, self.now),
            owners: tally.owners.clone(),
            admins: tally.admins.clone(),
            leadership,
            members,
            seats: Seats {
                used: members,
                limit: self.policy.max_members,
            },
            pending_invites,
            billing_admin_notice: previous.billing_admin_notice.clone(),
        });
    }

    /// The Organization's conditions but the summary: quorum, owner target, seats, billing admin.
    fn org_conditions(&self, members: i32, tally: &Tally) -> Vec<Want> {
        // Owners in place count even while the quorum is short and nobody is effective yet.
        let (n_owners, min_owners) = (self.seated_owners, self.min_owners);
        let mut wanted = Vec::new();
        wanted.push(if n_owners >= min_owners {
            Want::new(OWNER_QUORUM, true, ConditionReason::Satisfied, format!("{n_owners} effective owner(s), at least {min_owners} required"))
        } else if n_owners == 0 {
            Want::new(OWNER_QUORUM, false, ConditionReason::NoOwners, "the organization has no effective owner: create a Membership with role owner")
        } else {
            Want::new(
                OWNER_QUORUM,
                false,
                ConditionReason::TooFewOwners,
                format!("{n_owners} owner(s) but spec.policy.minOwners is {min_owners}: no Membership takes effect until more owners are added"),
            )
        });
        match self.policy.max_owners {
            Some(max) if n_owners > max as usize => wanted.push(Want::new(
                OWNERS_WITHIN_TARGET,
                false,
                ConditionReason::AboveMaxOwners,
                format!("{n_owners} owners exceed spec.policy.maxOwners ({max}); finish the ownership transfer by demoting an owner"),
            )),
            _ => wanted.push(Want::new(OWNERS_WITHIN_TARGET, true, ConditionReason::WithinTarget, "owner count is within spec.policy.maxOwners")),
        }
        let seat_waiting = tally.seat_waiting;
        wanted.push(match self.policy.max_members {
            Some(l) if seat_waiting > 0 => Want::new(
                SEATS_AVAILABLE,
                false,
                ConditionReason::SeatLimitReached,
                format!("all {l} seats are used and {seat_waiting} Membership(s) wait for a seat: raise spec.policy.maxMembers or remove members"),
            ),
            Some(l) if members >= l => Want::new(SEATS_AVAILABLE, false, ConditionReason::SeatLimitReached, format!("all {l} seats are used")),
            Some(l) => Want::new(SEATS_AVAILABLE, true, ConditionReason::SeatsFree, format!("{} of {l} seats free", l - members)),
            None => Want::new(SEATS_AVAILABLE, true, ConditionReason::NoLimit, "spec.policy.maxMembers is not set"),
        });
        let org = self.org.expect("only an Organization has conditions");
        wanted.push(match &org.spec.billing_admin {
            None => Want::new(BILLING_ADMIN, true, ConditionReason::NotSet, "spec.billingAdmin is not set"),
            Some(u) if tally.effective_subjects.contains(&Subject::User(u.clone())) => {
                Want::new(BILLING_ADMIN, true, ConditionReason::Member, format!("{u} holds an effective Membership"))
            }
            Some(u) => Want::new(
                BILLING_ADMIN,
                false,
                ConditionReason::NotAMember,
                format!("spec.billingAdmin {u} holds no effective Membership: add one or name another billing admin"),
            ),
        });
        wanted
    }
}

/// How each invite stands before Memberships redeem it. Redemptions of Memberships that are gone
/// or going still count (a use is never given back); the live ones that are not being deleted are
/// redeemed afresh, by name and creation time (a recorded use names both, so a Membership
/// re-created under the same name is another redemption).
fn invite_uses<'a>(
    invites: &'a [Invite],
    memberships: &[&Membership],
    has_org: bool,
    policy: &OrgPolicy,
    now: Timestamp,
) -> BTreeMap<String, InviteUse<'a>> {
    let redeemed_afresh: HashMap<&str, Option<Timestamp>> = memberships
        .iter()
        .filter(|m| m.meta().deletion_timestamp.is_none())
        .map(|m| {
            (
                m.meta().name.as_deref().unwrap_or(""),
                m.meta().creation_timestamp.as_ref().map(|t| t.0),
            )
        })
        .collect();
    let carried = |inv: &Invite| -> Vec<AcceptedBy> {
        let Some(s) = inv.status.as_ref() else {
            return Vec::new();
        };
        s.accepted_by
            .iter()
            .filter(|a| {
                redeemed_afresh
                    .get(a.membership.as_str())
                    .is_none_or(|created| a.at.as_ref().is_some_and(|at| Some(at.0) != *created))
            })
            .cloned()
            .collect()
    };
    invites
        .iter()
        .map(|inv| {
            let created = inv.meta().creation_timestamp.as_ref().map_or(now, |t| t.0);
            let mut expires_at = ttl::expires_at(created, &inv.spec, &policy.invites);
            // Expired is final: a longer spec.ttl or defaultTTL never revives a code. (Without an
            // Organization the default policy stands in, so an expiry seen then is not final.)
            if let Some(s) = inv.status.as_ref()
                && s.phase == Some(InvitePhase::Expired)
                && has_org
            {
                expires_at = expires_at.min(s.expires_at.as_ref().map_or(now, |t| t.0));
            }
            let u = InviteUse {
                invite: inv,
                expires_at,
                accepted: carried(inv),
                waits_for: None,
            };
            (inv.name_any(), u)
        })
        .collect()
}

fn is_recorded(m: &Membership) -> bool {
    let invite = m.spec.invite.as_ref().map(|i| i.name.as_str());
    invite.is_some() && m.status.as_ref().and_then(|s| s.invite.as_deref()) == invite
}

/// Checks one invite redemption and takes a use; returns the invite's name.
fn redeem(
    m: &Membership,
    invites: &mut BTreeMap<String, InviteUse<'_>>,
    codes: &BTreeMap<String, String>,
    providers: &IdentityProviders,
    policy: &OrgPolicy,
) -> Result<String, (NotInForce, String)> {
    let r = m
        .spec
        .invite
        .as_ref()
        .expect("only redemptions are checked");
    let Some(u) = invites.get_mut(&r.name) else {
        if is_recorded(m) {
            // Redeemed before the Invite was deleted: the membership stands.
            return Ok(r.name.clone());
        }
        return Err((
            NotInForce::InviteNotFound,
            format!("Invite {} does not exist in this namespace", r.name),
        ));
    };
    if !is_recorded(m) {
        let inv = u.invite;
        let user = m.spec.user.as_deref().unwrap_or_default();
        let created = m.meta().creation_timestamp.as_ref().map(|t| t.0);
        let claim = redemption::Claim {
            invite: inv,
            code: codes.get(&r.name).map(String::as_str),
            expired: created.is_some_and(|c| c >= u.expires_at),
            exhausted: u.accepted.len() as i32 >= inv.spec.max_uses,
            providers,
            // The controller never sees how anyone signed in: it holds the username's prefix and
            // the declared tenant to the invite (see `redemption`).
            signed_in: None,
        };
        if let Some(refusal) = redemption::refusal(&m.spec, &claim, &policy.invites) {
            return Err(not_in_force(refusal, inv, user, providers));
        }
        if let Some(first) = &u.waits_for {
            return Err((
                NotInForce::AnotherAdminInvitePending,
                format!(
                    "admin Invite {first} is older and still pending (one admin invite at a time); this one becomes usable once that one is used, expires or is revoked"
                ),
            ));
        }
    }
    u.accepted.push(AcceptedBy {
        user: m.spec.user.clone().unwrap_or_default(),
        membership: m.name_any(),
        at: m.meta().creation_timestamp.clone(),
    });
    Ok(r.name.clone())
}

/// Why a redemption takes no effect, in the controller's words.
fn not_in_force(
    refusal: redemption::Refusal<'_>,
    inv: &Invite,
    user: &str,
    providers: &IdentityProviders,
) -> (NotInForce, String) {
    use redemption::Refusal;
    let name = inv.name_any();
    let invite = name.as_str();
    let about_provider =
        || redemption::provider_message(&refusal, inv, user, providers).unwrap_or_default();
    match refusal {
        Refusal::CodeUnavailable => (
            NotInForce::InviteCodeUnavailable,
            format!("the code of Invite {invite} is not generated yet"),
        ),
        Refusal::ProofMismatch => (
            NotInForce::InviteCodeMismatch,
            format!("spec.invite.proof does not prove the code of Invite {invite} for {user}"),
        ),
        Refusal::Revoked => (
            NotInForce::InviteRevoked,
            format!("Invite {invite} was revoked"),
        ),
        Refusal::Expired => (
            NotInForce::InviteExpired,
            format!("Invite {invite} had expired when this Membership was created"),
        ),
        Refusal::Exhausted => (
            NotInForce::InviteExhausted,
            format!("Invite {invite} has no uses left"),
        ),
        Refusal::EmailMismatch(_) => (
            NotInForce::InviteEmailMismatch,
            format!(
                "Invite {invite} is for {}, not {user}",
                redemption::invitee(inv, providers)
            ),
        ),
        Refusal::ProviderUnchecked(_) => {
            (NotInForce::IdentityProviderNotConfigured, about_provider())
        }
        Refusal::WrongProvider(_) => (NotInForce::InviteIdentityProviderMismatch, about_provider()),
        // Only the webhook sees tenants; the controller holds the declaration to the invite.
        Refusal::TenantNotDeclared { .. } | Refusal::NotInTenant { .. } => {
            (NotInForce::InviteTenantMismatch, about_provider())
        }
        Refusal::Open(open) => {
            let reason = match open {
                open_invites::Refusal::Disabled => NotInForce::OpenInvitesDisabled,
                open_invites::Refusal::Admin => NotInForce::OpenAdminInvite,
            };
            (reason, format!("Invite {invite}: {}", open.message()))
        }
        // The webhook refuses this too; the controller holds it even when admission was bypassed.
        Refusal::RoleMismatch(role) => (
            NotInForce::InviteRoleMismatch,
            format!("Invite {invite} grants role {role}; set spec.role to {role}"),
        ),
    }
}

/// A colour derived from the team name, the same on every run (FNV-1a into a palette with contrast).
pub fn stable_color(name: &str) -> String {
    const PALETTE: [&str; 12] = [
        "#1f6feb", "#8250df", "#bf3989", "#cf222e", "#bc4c00", "#9a6700", "#1a7f37", "#0969da",
        "#6639ba", "#953800", "#116329", "#0550ae",
    ];
    let hash = crate::names::stable_hash(name);
    PALETTE[(hash % PALETTE.len() as u64) as usize].to_string()
}
