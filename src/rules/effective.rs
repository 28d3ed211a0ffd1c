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

use super::conditions::{self, Summary, Want};
use super::{invite_code, leftovers, open_invites, ttl};
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
}

/// The effective state: a status for every object, plus what the controller must do besides.
#[derive(Clone, Debug, PartialEq)]
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

/// Why a Membership is not (or not fully) in force. The names are the `Ready` condition reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NotInForce {
    OrganizationMissing,
    Deleting,
    InvalidSpec,
    Duplicate,
    InviteNotFound,
    InviteCodeUnavailable,
    InviteCodeMismatch,
    InviteRevoked,
    InviteExpired,
    InviteEmailMismatch,
    InviteRoleMismatch,
    OpenInvitesDisabled,
    OpenAdminInvite,
    InviteExhausted,
    AnotherAdminInvitePending,
    SeatLimitReached,
    OwnerQuorumNotMet,
    WaitingForPreviousMembership,
}

impl NotInForce {
    fn reason(self) -> &'static str {
        match self {
            NotInForce::OrganizationMissing => "OrganizationMissing",
            NotInForce::Deleting => "Deleting",
            NotInForce::InvalidSpec => "InvalidSpec",
            NotInForce::Duplicate => "Duplicate",
            NotInForce::InviteNotFound => "InviteNotFound",
            NotInForce::InviteCodeUnavailable => "InviteCodeUnavailable",
            NotInForce::InviteCodeMismatch => "InviteCodeMismatch",
            NotInForce::InviteRevoked => "InviteRevoked",
            NotInForce::InviteExpired => "InviteExpired",
            NotInForce::InviteEmailMismatch => "InviteEmailMismatch",
            NotInForce::InviteRoleMismatch => "InviteRoleMismatch",
            NotInForce::OpenInvitesDisabled => "OpenInvitesDisabled",
            NotInForce::OpenAdminInvite => "OpenAdminInvite",
            NotInForce::InviteExhausted => "InviteExhausted",
            NotInForce::AnotherAdminInvitePending => "AnotherAdminInvitePending",
            NotInForce::SeatLimitReached => "SeatLimitReached",
            NotInForce::OwnerQuorumNotMet => "OwnerQuorumNotMet",
            NotInForce::WaitingForPreviousMembership => "WaitingForPreviousMembership",
        }
    }

    /// Pending may still resolve by itself; Denied needs the object changed or replaced.
    fn phase(self) -> MembershipPhase {
        match self {
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

/// The sort key that breaks every tie: creation time, then name.
fn age_key<K: kube::Resource>(o: &K) -> (Option<Timestamp>, String) {
    (
        o.meta().creation_timestamp.as_ref().map(|t| t.0),
        o.meta().name.clone().unwrap_or_default(),
    )
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

/// Computes the effective state of one organization at `now`.
pub fn compute(objs: OrgObjects<'_>, now: Timestamp) -> Effective {
    let org = objs.organization;
    let org_deleting = org.is_some_and(|o| o.meta().deletion_timestamp.is_some());
    let default_policy = OrgPolicy::default();
    let policy = org.map_or(&default_policy, |o| &o.spec.policy);

    let mut memberships: Vec<&Membership> = objs.memberships.to_vec();
    memberships.sort_by_key(|m| age_key(*m));

    // Memberships that are redeemed afresh below: the live ones that are not being deleted, by name
    // and creation time (a recorded use names both, so a Membership re-created under the same
    // name is another redemption).
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
    let mut invites: BTreeMap<String, InviteUse> = objs
        .invites
        .iter()
        .map(|inv| {
            let created = inv.meta().creation_timestamp.as_ref().map_or(now, |t| t.0);
            // Redemptions of Memberships that are gone or going still count: a use is never given
            // back.
            let carried = inv
                .status
                .as_ref()
                .map(|s| {
                    s.accepted_by
                        .iter()
                        .filter(|a| {
                            redeemed_afresh
                                .get(a.membership.as_str())
                                .is_none_or(|created| {
                                    a.at.as_ref().is_some_and(|at| Some(at.0) != *created)
                                })
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let mut expires_at = ttl::expires_at(created, &inv.spec, &policy.invites);
            // Expired is final: a longer spec.ttl or defaultTTL never revives a code. (Without an
            // Organization the default policy stands in, so an expiry seen then is not final.)
            if let Some(s) = inv.status.as_ref()
                && s.phase == Some(InvitePhase::Expired)
                && org.is_some()
            {
                expires_at = expires_at.min(s.expires_at.as_ref().map_or(now, |t| t.0));
            }
            (
                inv.name_any(),
                InviteUse {
                    invite: inv,
                    expires_at,
                    accepted: carried,
                    waits_for: None,
                },
            )
        })
        .collect();

    // 1. Validity of each Membership on its own and against the others, oldest first.
    let mut verdicts: Vec<Verdict> = Vec::with_capacity(memberships.len());
    let mut claimed: HashMap<Subject, usize> = HashMap::new();
    // Redemptions already recorded in status were valid when made; they are never undone, so they
    // take their uses before new ones.
    let mut redemptions: Vec<usize> = Vec::new();
    for (i, m) in memberships.iter().enumerate() {
        let v = if org.is_none() {
            Verdict::Out(
                NotInForce::OrganizationMissing,
                "no Organization in this namespace yet; this Membership takes effect when one is created".into(),
            )
        } else if m.meta().deletion_timestamp.is_some() {
            Verdict::Leaving
        } else if let Some(subject) = m.spec.subject() {
            if let Some(&first) = claimed.get(&subject) {
                let first = memberships[first].name_any();
                Verdict::Out(
                    NotInForce::Duplicate,
                    format!(
                        "{subject} already has Membership {first}; delete this one or change that one"
                    ),
                )
            } else {
                claimed.insert(subject, i);
                Verdict::Candidate
            }
        } else {
            Verdict::Out(
                NotInForce::InvalidSpec,
                "set exactly one of spec.user or spec.group".into(),
            )
        };
        // Every live Membership is redeemed afresh (see `redeemed_afresh`): a candidate to take a
        // use, and one whose use was recorded to keep it, whatever else is wrong with it now.
        let live = m.meta().deletion_timestamp.is_none();
        if m.spec.invite.is_some() && live && (matches!(v, Verdict::Candidate) || is_recorded(m)) {
            redemptions.push(i);
        }
        verdicts.push(v);
    }
    let (recorded, fresh): (Vec<usize>, Vec<usize>) = redemptions
        .into_iter()
        .partition(|&i| is_recorded(memberships[i]));
    let mut redeemed: HashMap<usize, String> = HashMap::new();
    let mut redeem_each = |indexes: Vec<usize>, invites: &mut BTreeMap<String, InviteUse<'_>>| {
        for i in indexes {
            match redeem(memberships[i], invites, objs.invite_codes, policy) {
                Ok(invite) => {
                    redeemed.insert(i, invite);
                }
                Err((why, msg)) => verdicts[i] = Verdict::Out(why, msg),
            }
        }
    };
    redeem_each(recorded, &mut invites);
    // Which admin invite is the pending one is decided once the uses already made are counted.
    one_pending_admin_invite(&mut invites, now);
    redeem_each(fresh, &mut invites);

    // 2. Owner quorum: hold back demotions and removals of effective owners that would leave fewer
    //    than minOwners while the organization has members.
    let desired_owners = memberships
        .iter()
        .zip(&verdicts)
        .filter(|(m, v)| matches!(v, Verdict::Candidate) && m.spec.role == OrgRole::Owner)
        .count();
    let has_members = verdicts.iter().any(|v| matches!(v, Verdict::Candidate));
    let min_owners = policy.min_owners.max(1) as usize;
    let mut held: HashSet<usize> = HashSet::new();
    let mut held_subjects: HashSet<Subject> = HashSet::new();
    if !org_deleting && has_members && desired_owners < min_owners {
        let mut need = min_owners - desired_owners;
        for (i, m) in memberships.iter().enumerate() {
            if need == 0 {
                break;
            }
            let was_owner = m.status.as_ref().is_some_and(|s| {
                s.phase == Some(MembershipPhase::Active) && s.effective_role == Some(OrgRole::Owner)
            });
            let holdable = match &verdicts[i] {
                Verdict::Candidate => m.spec.role < OrgRole::Owner,
                // Unless a newer Membership for the same subject is an owner and takes over.
                Verdict::Leaving => {
                    m.spec
                        .subject()
                        .and_then(|s| claimed.get(&s))
                        .is_none_or(|&j| {
                            !matches!(verdicts[j], Verdict::Candidate)
                                || memberships[j].spec.role < OrgRole::Owner
                        })
                }
                Verdict::Out(..) => false,
            };
            // One held Membership per user or group, however many old ones are leaving.
            if was_owner && holdable && m.spec.subject().is_some_and(|s| held_subjects.insert(s)) {
                held.insert(i);
                need -= 1;
                // A held leaving owner keeps its user or group: a newer Membership for the same
                // subject (a renamed object, say) waits until the old one is gone.
                if let (Verdict::Leaving, Some(subject)) = (&verdicts[i], m.spec.subject())
                    && let Some(&j) = claimed.get(&subject)
                    && matches!(verdicts[j], Verdict::Candidate)
                {
                    verdicts[j] = Verdict::Out(
                        NotInForce::WaitingForPreviousMembership,
                        format!(
                            "{subject} is still held by Membership {} as the last owner; this one takes over once it is gone",
                            m.name_any()
                        ),
                    );
                }
            }
        }
    }

    // 3. Seats: owners (including held ones) first, then everyone else, oldest first.
    let mut seated: HashSet<usize> = HashSet::new();
    {
        let mut order: Vec<usize> = (0..memberships.len())
            .filter(|&i| matches!(verdicts[i], Verdict::Candidate) || held.contains(&i))
            .collect();
        order.sort_by_key(|&i| {
            (
                !(memberships[i].spec.role == OrgRole::Owner || held.contains(&i)),
                i,
            )
        });
        let limit = policy.max_members.map_or(usize::MAX, |l| l.max(0) as usize);
        for (n, i) in order.into_iter().enumerate() {
            if n < limit {
                seated.insert(i);
            } else {
                verdicts[i] = Verdict::Out(
                    NotInForce::SeatLimitReached,
                    format!(
                        "all {limit} seats (spec.policy.maxMembers) are taken; it becomes Active when a seat frees up or the limit is raised"
                    ),
                );
            }
        }
    }

    // Invariant 1 whatever the desired state: without minOwners owners in place (a new organization,
    // or one whose owners were removed behind the webhook's back), no Membership takes effect.
    let seated_owners = seated
        .iter()
        .filter(|&&i| memberships[i].spec.role == OrgRole::Owner || held.contains(&i))
        .count();
    if seated_owners < min_owners {
        for i in seated.drain() {
            verdicts[i] = Verdict::Out(
                NotInForce::OwnerQuorumNotMet,
                format!(
                    "the organization has {seated_owners} of the {min_owners} owner(s) spec.policy.minOwners requires; Memberships take effect once enough owners are in place"
                ),
            );
        }
        held.clear();
    }

    // 4. Statuses of Memberships, and the org-wide tallies.
    let mut out = Effective {
        organization: None,
        memberships: BTreeMap::new(),
        invites: BTreeMap::new(),
        teams: BTreeMap::new(),
        next_change: None,
        notices: Vec::new(),
    };
    let mut owners: Vec<String> = Vec::new();
    let mut admins: Vec<String> = Vec::new();
    let mut effective_subjects: HashSet<Subject> = HashSet::new();
    let mut seat_waiting = 0usize;

    for (i, m) in memberships.iter().enumerate() {
        let name = m.name_any();
        let previous = m.status.clone().unwrap_or_default();
        let generation = m.meta().generation;
        let mut status = MembershipStatus {
            organization_uid: organization_uid(org, *m, previous.organization_uid.as_deref()),
            observed_generation: generation,
            ..Default::default()
        };
        let mut wanted = Vec::new();
        let mut summary;
        let active = seated.contains(&i);
        if active {
            let role = if held.contains(&i) {
                OrgRole::Owner
            } else {
                m.spec.role
            };
            let subject = m.spec.subject().expect("seated memberships name a subject");
            match role {
                OrgRole::Owner => owners.push(display(&subject)),
                OrgRole::Admin => admins.push(display(&subject)),
                _ => {}
            }
            effective_subjects.insert(subject);
            status.phase = Some(MembershipPhase::Active);
            status.effective_role = Some(role);
            status.joined_at = previous.joined_at.clone().or(Some(Time(now)));
            summary = Summary::current("Active", format!("effective as {role}"));
            if held.contains(&i) {
                let (reason, message) = if m.meta().deletion_timestamp.is_some() {
                    (
                        "LastOwnerRemovalHeld",
                        format!(
                            "this is one of the last {min_owners} effective owner(s) (spec.policy.minOwners) and the organization still has members; it is removed as soon as another owner is effective"
                        ),
                    )
                } else {
                    (
                        "LastOwnerDemotionHeld",
                        format!(
                            "spec.role is {} but this is one of the last {min_owners} effective owner(s) (spec.policy.minOwners); make another member owner first and the change applies by itself",
                            m.spec.role
                        ),
                    )
                };
                wanted.push(Want::new(ROLE_CHANGE_HELD, true, reason, message.clone()));
                // Held changes apply by themselves once another owner is effective.
                summary = Summary::reconciling(
                    reason,
                    format!("effective as {role}, not yet as spec.role says: {message}"),
                );
                if !conditions::is_true(&previous.conditions, ROLE_CHANGE_HELD) {
                    out.notices.push(Notice {
                        kind: "Membership",
                        name: name.clone(),
                        reason,
                        message,
                    });
                }
            }
        } else {
            let (why, message) = match &verdicts[i] {
                Verdict::Out(why, msg) => (*why, msg.clone()),
                Verdict::Leaving | Verdict::Candidate => {
                    (NotInForce::Deleting, "being deleted".to_string())
                }
            };
            if why == NotInForce::SeatLimitReached {
                seat_waiting += 1;
            }

            status.phase = Some(why.phase());
            summary = match why.phase() {
                MembershipPhase::Denied => Summary::stalled(why.reason(), message.clone()),
                _ => Summary::reconciling(why.reason(), message.clone()),
            };
            let previously =
                conditions::find(&previous.conditions, READY).map(|c| c.reason.as_str());
            if matches!(why, NotInForce::SeatLimitReached | NotInForce::Duplicate)
                && previously != Some(why.reason())
            {
                out.notices.push(Notice {
                    kind: "Membership",
                    name: name.clone(),
                    reason: why.reason(),
                    message,
                });
            }
        }
        // A recorded redemption stays recorded, also while the Membership is leaving.
        status.invite = redeemed
            .get(&i)
            .cloned()
            .or_else(|| previous.invite.clone().filter(|_| is_recorded(m)));
        wanted.extend(summary.wants());
        status.conditions = conditions::merge(&previous.conditions, wanted, generation, now);
        let protect = active && status.effective_role == Some(OrgRole::Owner) && !org_deleting;
        out.memberships
            .insert(name, MembershipEffect { status, protect });
    }
    owners.sort();
    admins.sort();

    // 5. Invites.
    let mut pending_invites = 0;
    for (name, u) in &invites {
        let inv = u.invite;
        let previous = inv.status.clone().unwrap_or_default();
        let uses = u.accepted.len() as i32;
        let phase = if inv.spec.revoked {
            InvitePhase::Revoked
        } else if uses >= inv.spec.max_uses {
            InvitePhase::Accepted
        } else if now >= u.expires_at {
            InvitePhase::Expired
        } else {
            InvitePhase::Pending
        };
        let (_, capped) = ttl::lifetime(&inv.spec, &policy.invites);
        let summary = match (phase, open_invites::refusal(&inv.spec, &policy.invites)) {
            (InvitePhase::Pending, _) if u.waits_for.is_some() => Summary::reconciling(
                "AnotherAdminInvitePending",
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
                "TTLCapped",
                format!(
                    "usable; spec.ttl exceeds spec.policy.invites.maxTTL ({}), so it expires earlier",
                    policy.invites.max_ttl
                ),
            ),
            (InvitePhase::Pending, None) => Summary::current(
                "Usable",
                format!(
                    "{} of {} uses left",
                    inv.spec.max_uses - uses,
                    inv.spec.max_uses
                ),
            ),
            // Settled end states: nothing is left for roster to do (kstatus reads them as Current).
            (InvitePhase::Accepted, _) => Summary::current(
                "Accepted",
                "settled: all uses are taken; the code no longer works",
            ),
            (InvitePhase::Expired, _) => Summary::current(
                "Expired",
                "settled: the invite expired unused; create a new Invite to invite again",
            ),
            (InvitePhase::Revoked, _) => Summary::current(
                "Revoked",
                "settled: the invite was revoked; the code no longer works",
            ),
        };
        let usable = Want::new(
            USABLE,
            phase == InvitePhase::Pending && summary.standing == conditions::Standing::Current,
            summary.reason.clone(),
            summary.message.clone(),
        );
        if phase == InvitePhase::Pending {
            if usable.status {
                pending_invites += 1;
            }
            out.next_change = Some(
                out.next_change
                    .map_or(u.expires_at, |t: Timestamp| t.min(u.expires_at)),
            );
        }
        if phase == InvitePhase::Expired
            && previous.phase.is_some()
            && previous.phase != Some(InvitePhase::Expired)
        {
            out.notices.push(Notice {
                kind: "Invite",
                name: name.clone(),
                reason: "InviteExpired",
                message: format!(
                    "invite for {} expired unused",
                    inv.spec.email.as_deref().unwrap_or("anyone")
                ),
            });
        }
        let status = InviteStatus {
            phase: Some(phase),
            expires_at: Some(Time(u.expires_at)),
            uses,
            accepted_by: u.accepted.clone(),
            code_secret_name: previous.code_secret_name.clone(),
            organization_uid: organization_uid(org, inv, previous.organization_uid.as_deref()),
            observed_generation: inv.meta().generation,
            conditions: conditions::merge(
                &previous.conditions,
                std::iter::once(usable).chain(summary.wants()).collect(),
                inv.meta().generation,
                now,
            ),
        };
        out.invites.insert(name.clone(), status);
    }

    // 6. Teams.
    for team in objs.teams {
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
            if effective_subjects.contains(&subject) {
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
                "AllMembersInOrganization",
                "every team member holds an effective Membership",
            )
        } else {
            Want::new(
                MEMBERS_RESOLVED,
                false,
                "MembersNotInOrganization",
                format!(
                    "no effective Membership for {}; they get no team access until they join",
                    unresolved.join(", ")
                ),
            )
        }];
        let deactivated =
            "spec.active is false: the team grants no access and is kept for the record";
        wanted.push(if team.spec.active {
            Want::new(ACTIVE, true, "Active", "spec.active is true")
        } else {
            Want::new(ACTIVE, false, "Deactivated", deactivated)
        });
        // A deactivated team is a settled state, not one in progress. Naming people who have not
        // joined yet (self-join, a pending invite) is a normal state too: they get the team's access
        // when they join, and MembersResolved says who they are.
        let summary = if !team.spec.active {
            Summary::current("Deactivated", deactivated)
        } else if owner_resolved {
            Summary::current("Active", format!("{resolved} member(s) in force"))
        } else {
            Summary::current(
                "OwnerNotInOrganization",
                format!(
                    "{resolved} member(s) in force; the team owner holds no effective Membership yet (org admins manage the team meanwhile)"
                ),
            )
        };
        wanted.extend(summary.wants());
        let generation = team.meta().generation;
        out.teams.insert(
            team.name_any(),
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
                organization_uid: organization_uid(org, team, previous.organization_uid.as_deref()),
                observed_generation: generation,
                conditions: conditions::merge(&previous.conditions, wanted, generation, now),
            },
        );
    }

    // 7. The Organization.
    if let Some(org) = org {
        let previous = org.status.clone().unwrap_or_default();
        let members = seated.len() as i32;
        // Owners in place count even while the quorum is short and nobody is effective yet.
        let n_owners = seated_owners;
        let mut wanted = Vec::new();
        let quorum = n_owners >= min_owners;
        wanted.push(if quorum {
            Want::new(OWNER_QUORUM, true, "Satisfied", format!("{n_owners} effective owner(s), at least {min_owners} required"))
        } else if n_owners == 0 {
            Want::new(OWNER_QUORUM, false, "NoOwners", "the organization has no effective owner: create a Membership with role owner")
        } else {
            Want::new(
                OWNER_QUORUM,
                false,
                "TooFewOwners",
                format!("{n_owners} owner(s) but spec.policy.minOwners is {min_owners}: no Membership takes effect until more owners are added"),
            )
        });
        match policy.max_owners {
            Some(max) if n_owners > max as usize => wanted.push(Want::new(
                OWNERS_WITHIN_TARGET,
                false,
                "AboveMaxOwners",
                format!("{n_owners} owners exceed spec.policy.maxOwners ({max}); finish the ownership transfer by demoting an owner"),
            )),
            _ => wanted.push(Want::new(OWNERS_WITHIN_TARGET, true, "WithinTarget", "owner count is within spec.policy.maxOwners")),
        }
        let limit = policy.max_members;
        wanted.push(match limit {
            Some(l) if seat_waiting > 0 => Want::new(
                SEATS_AVAILABLE,
                false,
                "SeatLimitReached",
                format!("all {l} seats are used and {seat_waiting} Membership(s) wait for a seat: raise spec.policy.maxMembers or remove members"),
            ),
            Some(l) if members >= l => Want::new(SEATS_AVAILABLE, false, "SeatLimitReached", format!("all {l} seats are used")),
            Some(l) => Want::new(SEATS_AVAILABLE, true, "SeatsFree", format!("{} of {l} seats free", l - members)),
            None => Want::new(SEATS_AVAILABLE, true, "NoLimit", "spec.policy.maxMembers is not set"),
        });
        if seat_waiting > 0
            && !previous
                .conditions
                .iter()
                .any(|c| c.type_ == SEATS_AVAILABLE && c.reason == "SeatLimitReached")
        {
            out.notices.push(Notice {
                kind: "Organization",
                name: org.name_any(),
                reason: "SeatLimitReached",
                message: format!("{seat_waiting} Membership(s) wait for a seat"),
            });
        }
        wanted.push(match &org.spec.billing_admin {
            None => Want::new(BILLING_ADMIN, true, "NotSet", "spec.billingAdmin is not set"),
            Some(u) if effective_subjects.contains(&Subject::User(u.clone())) => {
                Want::new(BILLING_ADMIN, true, "Member", format!("{u} holds an effective Membership"))
            }
            Some(u) => Want::new(
                BILLING_ADMIN,
                false,
                "NotAMember",
                format!("spec.billingAdmin {u} holds no effective Membership: add one or name another billing admin"),
            ),
        });
        // Owners arrive in the same sync as their Organization: a short quorum resolves by itself.
        let summary = if org_deleting {
            Summary::reconciling("Deleting", "the organization is being deleted")
        } else if quorum {
            Summary::current("Ready", format!("{members} member(s), {n_owners} owner(s)"))
        } else {
            Summary::reconciling("OwnerQuorumNotMet", "see the OwnerQuorum condition")
        };
        wanted.extend(summary.wants());
        let generation = org.meta().generation;
        let leadership = owners
            .iter()
            .map(|u| Leader {
                user: u.clone(),
                role: "owner".into(),
            })
            .chain(admins.iter().map(|u| Leader {
                user: u.clone(),
                role: "admin".into(),
            }))
            .collect();
        out.organization = Some(OrganizationStatus {
            observed_generation: generation,
            conditions: conditions::merge(&previous.conditions, wanted, generation, now),
            owners,
            admins,
            leadership,
            members,
            seats: Seats {
                used: members,
                limit,
            },
            pending_invites,
        });
    }
    out
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
        let Some(code) = codes.get(&r.name) else {
            return Err((
                NotInForce::InviteCodeUnavailable,
                format!("the code of Invite {} is not generated yet", r.name),
            ));
        };
        let namespace = inv.meta().namespace.as_deref().unwrap_or_default();
        if !invite_code::proof_matches(
            code,
            namespace,
            &r.name,
            user,
            r.proof.as_deref().unwrap_or_default(),
        ) {
            return Err((
                NotInForce::InviteCodeMismatch,
                format!(
                    "spec.invite.proof does not prove the code of Invite {} for {user}",
                    r.name
                ),
            ));
        }
        if inv.spec.revoked {
            return Err((
                NotInForce::InviteRevoked,
                format!("Invite {} was revoked", r.name),
            ));
        }
        let created = m.meta().creation_timestamp.as_ref().map(|t| t.0);
        if created.is_some_and(|c| c >= u.expires_at) {
            return Err((
                NotInForce::InviteExpired,
                format!(
                    "Invite {} had expired when this Membership was created",
                    r.name
                ),
            ));
        }
        match &inv.spec.email {
            Some(email) if email != user => {
                return Err((
                    NotInForce::InviteEmailMismatch,
                    format!("Invite {} is for {email}, not {user}", r.name),
                ));
            }
            Some(_) => {}
            None => {
                if let Some(refusal) = open_invites::refusal(&inv.spec, &policy.invites) {
                    let reason = match refusal {
                        open_invites::Refusal::Disabled => NotInForce::OpenInvitesDisabled,
                        open_invites::Refusal::Admin => NotInForce::OpenAdminInvite,
                    };
                    return Err((reason, format!("Invite {}: {}", r.name, refusal.message())));
                }
            }
        }
        // The webhook refuses this too; the controller holds it even when admission was bypassed.
        if m.spec.role != inv.spec.role {
            return Err((
                NotInForce::InviteRoleMismatch,
                format!(
                    "Invite {} grants role {}; set spec.role to {}",
                    r.name, inv.spec.role, inv.spec.role
                ),
            ));
        }
        if u.accepted.len() as i32 >= inv.spec.max_uses {
            return Err((
                NotInForce::InviteExhausted,
                format!("Invite {} has no uses left", r.name),
            ));
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

/// A colour derived from the team name, the same on every run (FNV-1a into a palette with contrast).
pub fn stable_color(name: &str) -> String {
    const PALETTE: [&str; 12] = [
        "#1f6feb", "#8250df", "#bf3989", "#cf222e", "#bc4c00", "#9a6700", "#1a7f37", "#0969da",
        "#6639ba", "#953800", "#116329", "#0550ae",
    ];
    let hash = crate::names::stable_hash(name);
    PALETTE[(hash % PALETTE.len() as u64) as usize].to_string()
}
