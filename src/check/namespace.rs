//! The checks of one org namespace, over the objects that passed the per-object checks: the
//! webhook's verdict on each create ([`rules::authorize`] as a platform principal) and the
//! effective state of the whole namespace ([`rules::compute`]).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use super::report::{Findings, Severity};
use super::{Checked, Namespace};
use crate::api::{Invite, Membership, MembershipPhase, Organization, Team};
use crate::rules::ConditionReason;
use crate::rules::access_conditions::{Synced, team_access as team_access_condition};
use crate::rules::conditions::Standing;
use crate::rules::effective::condition;
use crate::rules::{
    self, Actor, Config, Decision, Effective, Operation, OrgIndex, OrgObjects, Redemption,
    invite_code,
};

/// Checks one org namespace: the webhook's verdict on each create and the effective state of all
/// of it, in the order the findings are reported.
pub(super) fn check_namespace(
    ns: &str,
    group: &mut Namespace,
    all_orgs: &[Organization],
    config: &Config,
    now: Timestamp,
    findings: &mut Findings,
) {
    // Objects applied together: creation time `now` for all, so the rules break ties by name.
    as_created(&mut group.organizations, now);
    as_created(&mut group.memberships, now);
    as_created(&mut group.invites, now);
    as_created(&mut group.teams, now);
    let scene = Scene {
        ns,
        config,
        now,
        platform: Actor {
            username: "roster-check".into(),
            groups: vec!["system:masters".into()],
            platform: true,
            extra: Default::default(),
        },
        ctx: rules::Context {
            now,
            removals_last_hour: 0,
            namespace_deleting: false,
        },
        // One Organization per namespace; the first (by name) is the organization.
        org: group.organizations.first().map(|c| c.object.clone()),
    };

    report_excluded(ns, group, config, findings);
    scene.organizations(group, all_orgs, findings);
    let org_missing_reported = scene.organization_missing(group, findings);
    let assumed = Assumed::new(group, findings);
    let memberships: Vec<&Membership> = assumed.memberships.iter().collect();
    let teams: Vec<Team> = group.teams.iter().map(|c| c.object.clone()).collect();
    let effective = rules::compute(
        OrgObjects {
            organization: scene.org.as_ref(),
            memberships: &memberships,
            invites: &assumed.invites,
            teams: &teams,
            invite_codes: &assumed.codes,
            identity_providers: &config.identity_providers,
        },
        now,
    );
    let quorum_short = organization_conditions(group, &effective, findings);
    let held_back = |reason: &str| {
        (reason == ConditionReason::OwnerQuorumNotMet && quorum_short)
            || (reason == ConditionReason::OrganizationMissing && org_missing_reported)
    };
    memberships_not_active(group, &effective, held_back, findings);
    invite_and_team_conditions(group, &effective, findings);
    if let Some(org) = &scene.org {
        team_access(group, org, all_orgs, config, findings);
    }
    scene.creates(group, &assumed, &effective, findings);
}

/// Sorts objects by name and gives each what the API server would on create.
fn as_created<K: Resource<DynamicType = ()> + Clone>(objects: &mut [Checked<K>], now: Timestamp) {
    objects.sort_by_key(|c| c.object.name_any());
    for c in objects {
        c.object = created(&c.object, now);
    }
}

/// What every check of one org namespace shares.
struct Scene<'a> {
    ns: &'a str,
    config: &'a Config,
    now: Timestamp,
    /// Who applies the files: a platform principal, as a GitOps controller is.
    platform: Actor,
    ctx: rules::Context,
    /// The namespace's organization, if any.
    org: Option<Organization>,
}

impl Scene<'_> {
    fn authorize<K: Resource<DynamicType = ()>>(
        &self,
        findings: &mut Findings,
        c: &Checked<K>,
        index: &OrgIndex,
        op: &Operation,
    ) {
        let decision = rules::authorize(index, self.config, &self.platform, op, &self.ctx);
        push_decision(findings, c, decision);
    }

    /// Each Organization's create (a second one is refused), and the namespaces the first claims.
    fn organizations(&self, group: &Namespace, all_orgs: &[Organization], findings: &mut Findings) {
        for (i, c) in group.organizations.iter().enumerate() {
            let index = match i {
                0 => OrgIndex::default(),
                _ => OrgIndex::new(self.org.as_ref(), [], []),
            };
            let op = Operation::CreateOrganization(&c.object.spec);
            self.authorize(findings, c, &index, &op);
        }
        if let Some(c) = group.organizations.first() {
            let orgs: Vec<&Organization> = all_orgs.iter().collect();
            let config = self.config;
            let claims = rules::rbac::claims(&c.object, &orgs, &config.excluded_namespaces);
            for (namespace, why) in claims.refused {
                if !config.excluded_namespaces.contains(&namespace) {
                    findings.on(
                        Severity::Error,
                        c,
                        "NamespaceClaim",
                        format!(
                            "spec.access.namespaces lists {namespace}, which would get no access: {why}"
                        ),
                    );
                }
            }
        }
    }

    /// Roster objects without an Organization: reported once, on the first object in file order,
    /// rather than on every Membership. Whether it was reported.
    fn organization_missing(&self, group: &Namespace, findings: &mut Findings) -> bool {
        let ns = self.ns;
        let roster_objects = group.memberships.len() + group.invites.len() + group.teams.len();
        let first = group
            .memberships
            .iter()
            .map(|c| (&c.source, "Membership", c.object.name_any()))
            .chain(
                group
                    .invites
                    .iter()
                    .map(|c| (&c.source, "Invite", c.object.name_any())),
            )
            .chain(
                group
                    .teams
                    .iter()
                    .map(|c| (&c.source, "Team", c.object.name_any())),
            )
            .min_by(|a, b| (&a.0.file, a.0.line).cmp(&(&b.0.file, b.0.line)));
        let (None, Some((source, kind, name))) = (&self.org, first) else {
            return false;
        };
        let why = if group.refused_organization {
            "its Organization is refused (see above)"
        } else {
            "there is no Organization for it in the checked files"
        };
        findings.push(
            Severity::Error,
            source,
            Some(kind),
            Some(ns),
            Some(&name),
            ConditionReason::OrganizationMissing.as_str(),
            format!(
                "namespace {ns} holds {roster_objects} roster object(s) but {why}: its Memberships would stay Pending"
            ),
        );
        true
    }

    /// The webhook's invariants for each create, in name order, against the effective state of
    /// what came before it.
    fn creates(
        &self,
        group: &Namespace,
        assumed: &Assumed,
        effective: &Effective,
        findings: &mut Findings,
    ) {
        let with_status: Vec<Membership> = assumed
            .memberships
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.status = effective
                    .memberships
                    .get(&m.name_any())
                    .map(|e| e.status.clone());
                m
            })
            .collect();
        let invites_with_status: Vec<Invite> = assumed
            .invites
            .iter()
            .map(|i| {
                let mut i = i.clone();
                i.status = effective.invites.get(&i.name_any()).cloned();
                i
            })
            .collect();
        for (i, c) in group.memberships.iter().enumerate() {
            let index = OrgIndex::new(self.org.as_ref(), &with_status[..i], &invites_with_status);
            let invite_before = self.invite_before(assumed, i, c);
            let op = Operation::CreateMembership {
                spec: &assumed.memberships[i].spec,
                redemption: c.object.spec.invite.as_ref().map(|_| Redemption {
                    invite: invite_before.as_ref(),
                    code: Some(UNVERIFIED_CODE),
                }),
            };
            self.authorize(findings, c, &index, &op);
        }
        for (i, c) in group.invites.iter().enumerate() {
            let index = OrgIndex::new(self.org.as_ref(), &with_status, &invites_with_status[..i]);
            self.authorize(
                findings,
                c,
                &index,
                &Operation::CreateInvite(&c.object.spec),
            );
        }
        let index = OrgIndex::new(self.org.as_ref(), &with_status, &invites_with_status);
        for c in &group.teams {
            self.authorize(findings, c, &index, &Operation::CreateTeam(&c.object.spec));
        }
    }

    /// For the `i`th Membership, a redemption: the invite as it was before this Membership used it.
    fn invite_before(
        &self,
        assumed: &Assumed,
        i: usize,
        c: &Checked<Membership>,
    ) -> Option<Invite> {
        let r = c.object.spec.invite.as_ref()?;
        let memberships: Vec<&Membership> = assumed.memberships.iter().collect();
        let earlier = rules::compute(
            OrgObjects {
                organization: self.org.as_ref(),
                memberships: &memberships[..i],
                invites: &assumed.invites,
                teams: &[],
                invite_codes: &assumed.codes,
                identity_providers: &self.config.identity_providers,
            },
            self.now,
        );
        let mut invite = assumed
            .invites
            .iter()
            .find(|inv| inv.name_any() == r.name)?
            .clone();
        invite.status = earlier.invites.get(&r.name).cloned();
        Some(invite)
    }
}

/// Invite codes exist only once the operator generates them: each redemption is assumed to carry
/// the right proof (of a stand-in code), and a warning says that this could not be checked.
struct Assumed {
    invites: Vec<Invite>,
    codes: BTreeMap<String, String>,
    /// The Memberships, each redemption with the right proof.
    memberships: Vec<Membership>,
}

impl Assumed {
    fn new(group: &Namespace, findings: &mut Findings) -> Assumed {
        let invites: Vec<Invite> = group.invites.iter().map(|c| c.object.clone()).collect();
        let codes = invites
            .iter()
            .map(|i| (i.name_any(), UNVERIFIED_CODE.to_string()))
            .collect();
        let memberships = group
            .memberships
            .iter()
            .map(|c| with_right_proof(&c.object, &invites))
            .collect();
        for c in &group.memberships {
            if let Some(r) = &c.object.spec.invite {
                findings.on(
                    Severity::Warning,
                    c,
                    "InviteCodeUnverified",
                    format!(
                        "redeems Invite {} with a proof of a code that exists only once the operator generates it, so it cannot be checked offline (people redeem invites with `kubectl roster join`)",
                        r.name
                    ),
                );
            }
        }
        Assumed {
            invites,
            codes,
            memberships,
        }
    }
}

/// The Organization's conditions that need a person; whether its owner quorum is short.
fn organization_conditions(
    group: &Namespace,
    effective: &Effective,
    findings: &mut Findings,
) -> bool {
    let (Some(c), Some(status)) = (group.organizations.first(), &effective.organization) else {
        return false;
    };
    let mut short = false;
    for cond in status.conditions.iter().filter(|c| c.status == "False") {
        match cond.type_.as_str() {
            condition::OWNER_QUORUM => {
                short = true;
                let waiting = effective
                    .memberships
                    .values()
                    .filter(|e| {
                        rules::conditions::find(&e.status.conditions, condition::READY)
                            .is_some_and(|r| r.reason == ConditionReason::OwnerQuorumNotMet)
                    })
                    .count();
                let min = c.object.spec.policy.min_owners;
                let mut message = format!(
                    "spec.policy.minOwners is {min}: {} [{}]",
                    cond.message, cond.reason
                );
                if waiting > 0 {
                    message.push_str(&format!(
                        "; all {waiting} Membership(s) would stay Pending (OwnerQuorumNotMet)"
                    ));
                }
                findings.on(Severity::Error, c, "OwnerQuorum", message);
            }
            condition::OWNERS_WITHIN_TARGET => {
                findings.on(Severity::Warning, c, &cond.reason, cond.message.clone())
            }
            condition::BILLING_ADMIN => {
                findings.on(Severity::Warning, c, "BillingAdmin", cond.message.clone())
            }
            _ => {}
        }
    }
    short
}

/// Memberships that would not become Active, with the reason of their `Ready` condition; reasons
/// `held_back` accepts are reported elsewhere already.
fn memberships_not_active(
    group: &Namespace,
    effective: &Effective,
    held_back: impl Fn(&str) -> bool,
    findings: &mut Findings,
) {
    for c in &group.memberships {
        let Some(e) = effective.memberships.get(&c.object.name_any()) else {
            continue;
        };
        if e.status.phase == Some(MembershipPhase::Active) {
            continue;
        }
        let ready = rules::conditions::find(&e.status.conditions, condition::READY);
        let (reason, message) = ready.map_or(("NotActive", String::new()), |r| {
            (r.reason.as_str(), r.message.clone())
        });
        if held_back(reason) {
            continue;
        }
        let phase = e.status.phase.map_or("Pending", MembershipPhase::as_str);
        findings.on(
            Severity::Error,
            c,
            reason,
            format!("would stay {phase}: {message}"),
        );
    }
}

/// Invites refused or capped, and Teams naming people outside the organization.
fn invite_and_team_conditions(group: &Namespace, effective: &Effective, findings: &mut Findings) {
    for c in &group.invites {
        let Some(status) = effective.invites.get(&c.object.name_any()) else {
            continue;
        };
        if let Some(ready) = rules::conditions::find(&status.conditions, condition::READY) {
            match ConditionReason::parse(&ready.reason) {
                Some(ConditionReason::OpenInvitesDisabled) => {
                    findings.on(Severity::Error, c, &ready.reason, ready.message.clone())
                }
                Some(ConditionReason::TTLCapped) => {
                    findings.on(Severity::Warning, c, &ready.reason, ready.message.clone())
                }
                _ => {}
            }
        }
    }
    for c in &group.teams {
        let Some(status) = effective.teams.get(&c.object.name_any()) else {
            continue;
        };
        for cond in status.conditions.iter().filter(|c| c.status == "False") {
            if cond.reason == ConditionReason::MembersNotInOrganization
                || cond.reason == ConditionReason::OwnerNotInOrganization
            {
                findings.on(Severity::Warning, c, &cond.reason, cond.message.clone());
            }
        }
    }
}

/// Teams whose access the controller would refuse (`AccessSynced` Stalled: a namespace the
/// Organization does not claim, a ClusterRole its mapping does not use), asked of the same rule.
fn team_access(
    group: &Namespace,
    org: &Organization,
    all_orgs: &[Organization],
    config: &Config,
    findings: &mut Findings,
) {
    let orgs: Vec<&Organization> = all_orgs.iter().collect();
    let synced = Synced {
        claims: rules::rbac::claims(org, &orgs, &config.excluded_namespaces),
        failures: Vec::new(),
    };
    for c in &group.teams {
        if let Some((access, Standing::Stalled)) =
            team_access_condition(&c.object, Some(org), &synced)
        {
            findings.on(Severity::Error, c, &access.reason, access.message);
        }
    }
}

/// Gives an object what the API server would on create, so the rules see a fresh object.
pub(super) fn created<K: Resource<DynamicType = ()> + Clone>(object: &K, now: Timestamp) -> K {
    let mut o = object.clone();
    let kind = K::kind(&());
    let meta = o.meta_mut();
    meta.creation_timestamp = Some(Time(now));
    meta.generation = Some(1);
    meta.uid = Some(format!(
        "roster-check:{kind}:{}:{}",
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default()
    ));
    o
}

/// The webhook's verdict on one create, as a platform principal (a GitOps controller).
fn push_decision<K: Resource<DynamicType = ()>>(
    findings: &mut Findings,
    c: &Checked<K>,
    decision: Decision,
) {
    if let Some(denial) = decision.denial {
        findings.on(
            Severity::Error,
            c,
            denial.reason.as_str(),
            format!("the admission webhook would refuse it: {}", denial.message),
        );
    }
}

/// The code `roster check` assumes every redemption proves: the real one exists only in the cluster.
const UNVERIFIED_CODE: &str = "UNVERIFIED";

/// `m` with a proof of [`UNVERIFIED_CODE`] for its own username, so that the rules judge everything
/// about the redemption but the code.
fn with_right_proof(m: &Membership, invites: &[Invite]) -> Membership {
    let mut m = m.clone();
    if let (Some(r), Some(user)) = (m.spec.invite.as_mut(), m.spec.user.as_deref()) {
        let namespace = invites
            .iter()
            .find(|i| i.name_any() == r.name)
            .and_then(|i| i.namespace())
            .unwrap_or_default();
        r.proof = Some(invite_code::proof(
            UNVERIFIED_CODE,
            &namespace,
            &r.name,
            user,
        ));
    }
    m
}

/// Every roster object in an excluded namespace: the webhook refuses each create, and an
/// Organization that got there anyway grants nothing.
fn report_excluded(ns: &str, group: &Namespace, config: &Config, findings: &mut Findings) {
    fn each<K: Resource<DynamicType = ()>>(
        objects: &[Checked<K>],
        ns: &str,
        config: &Config,
        findings: &mut Findings,
    ) {
        for c in objects {
            if let Err(denial) = rules::org_namespace(config, ns, &K::kind(&())) {
                findings.on(
                    Severity::Error,
                    c,
                    denial.reason.as_str(),
                    format!("the admission webhook would refuse it: {}", denial.message),
                );
            }
        }
    }
    each(&group.organizations, ns, config, findings);
    each(&group.memberships, ns, config, findings);
    each(&group.invites, ns, config, findings);
    each(&group.teams, ns, config, findings);
}
