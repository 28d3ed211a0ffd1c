//! Who may change what (docs/design.md §2) and which changes can never become valid (§3),
//! decided from the org index. Platform principals skip the role checks, never the invariants.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use super::actor::{Actor, Config};
use super::index::OrgIndex;
use super::redemption::{self, Refusal};
use super::{identity, open_invites, ttl};
use crate::api::{
    Access, Invite, InvitePhase, InviteSpec, MembershipSpec, OrgRole, OrganizationSpec, SelfJoin,
    Subject, TeamAccess, TeamRole, TeamSpec,
};

/// A change someone asks the API server to make.
#[derive(Clone, Copy, Debug)]
pub enum Operation<'a> {
    CreateMembership {
        spec: &'a MembershipSpec,
        /// For a redemption: the Invite named in `spec.invite` and the code from its Secret.
        redemption: Option<Redemption<'a>>,
    },
    UpdateMembership {
        old: &'a MembershipSpec,
        new: &'a MembershipSpec,
    },
    DeleteMembership(&'a MembershipSpec),
    CreateInvite(&'a InviteSpec),
    UpdateInvite {
        old: &'a InviteSpec,
        new: &'a InviteSpec,
    },
    DeleteInvite(&'a InviteSpec),
    CreateTeam(&'a TeamSpec),
    UpdateTeam {
        old: &'a TeamSpec,
        new: &'a TeamSpec,
    },
    DeleteTeam(&'a TeamSpec),
    CreateOrganization(&'a OrganizationSpec),
    UpdateOrganization {
        old: &'a OrganizationSpec,
        new: &'a OrganizationSpec,
    },
    DeleteOrganization(&'a OrganizationSpec),
}

/// What the webhook found for an invite being redeemed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Redemption<'a> {
    /// The Invite named in `spec.invite.name`, if it exists.
    pub invite: Option<&'a Invite>,
    /// The code in the Invite's Secret, if generated.
    pub code: Option<&'a str>,
}

/// Facts about the request that are neither in the index nor in the object.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub now: Timestamp,
    /// Memberships deleted in this organization during the last hour (for `maxRemovalsPerHour`).
    pub removals_last_hour: u32,
    /// The org namespace itself is being deleted. roster never blocks that, so every deletion in
    /// it is allowed, deletion protection included.
    pub namespace_deleting: bool,
}

/// The rule a denial comes from; also the label of the decision metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    NotAMember,
    RoleTooLow,
    AdminLimit,
    PlatformOnly,
    SystemSubject,
    TeamRoleTooLow,
    InvalidInvite,
    SelfJoinNotAllowed,
    Duplicate,
    LastOwner,
    OwnerQuorum,
    OrganizationExists,
    ExcludedNamespace,
    ClusterRoleNotAllowed,
    NamespaceNotInOrganization,
    PendingAdminInvite,
    OpenInvitesDisabled,
    OpenAdminInvite,
    DeletionProtection,
    RemovalBudget,
    BindNotAllowed,
    IdentityProviderNotConfigured,
    ProviderPrefixInEmail,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotAMember => "NotAMember",
            Reason::RoleTooLow => "RoleTooLow",
            Reason::AdminLimit => "AdminLimit",
            Reason::PlatformOnly => "PlatformOnly",
            Reason::SystemSubject => "SystemSubject",
            Reason::TeamRoleTooLow => "TeamRoleTooLow",
            Reason::InvalidInvite => "InvalidInvite",
            Reason::SelfJoinNotAllowed => "SelfJoinNotAllowed",
            Reason::Duplicate => "Duplicate",
            Reason::LastOwner => "LastOwner",
            Reason::OwnerQuorum => "OwnerQuorum",
            Reason::OrganizationExists => "OrganizationExists",
            Reason::ExcludedNamespace => "ExcludedNamespace",
            Reason::ClusterRoleNotAllowed => "ClusterRoleNotAllowed",
            Reason::NamespaceNotInOrganization => "NamespaceNotInOrganization",
            Reason::PendingAdminInvite => "PendingAdminInvite",
            Reason::OpenInvitesDisabled => "OpenInvitesDisabled",
            Reason::OpenAdminInvite => "OpenAdminInvite",
            Reason::DeletionProtection => "DeletionProtection",
            Reason::RemovalBudget => "RemovalBudget",
            Reason::BindNotAllowed => "BindNotAllowed",
            Reason::IdentityProviderNotConfigured => "IdentityProviderNotConfigured",
            Reason::ProviderPrefixInEmail => "ProviderPrefixInEmail",
        }
    }
}

/// Why a change is refused: the rule and a message that says what to do instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub reason: Reason,
    pub message: String,
}

/// The answer to a request: allowed (possibly with warnings) or denied.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Decision {
    pub denial: Option<Denial>,
    pub warnings: Vec<String>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }
}

fn deny<T>(reason: Reason, message: impl Into<String>) -> Result<T, Denial> {
    Err(Denial {
        reason,
        message: message.into(),
    })
}

/// The metadata roster and Kubernetes' controllers keep on roster objects: owner references (which
/// decide what the garbage collector deletes) and finalizers (which decide what may go). Anyone
/// else changing them could have an Organization collected through an owner they delete, or hold
/// an org namespace's deletion forever, whatever their org role; so only platform principals may.
/// `old` is `None` for a create.
pub fn reserved_metadata(
    actor: &Actor,
    old: Option<&ObjectMeta>,
    new: &ObjectMeta,
) -> Result<(), Denial> {
    if actor.platform {
        return Ok(());
    }
    // Compared in place: this runs for every create and update the webhook sees.
    fn owners(m: Option<&ObjectMeta>) -> &[OwnerReference] {
        m.and_then(|m| m.owner_references.as_deref())
            .unwrap_or_default()
    }
    fn finalizers(m: Option<&ObjectMeta>) -> &[String] {
        m.and_then(|m| m.finalizers.as_deref()).unwrap_or_default()
    }
    if owners(old) != owners(Some(new)) {
        return deny(
            Reason::PlatformOnly,
            "metadata.ownerReferences of roster objects are kept by roster; only platform principals may change them",
        );
    }
    if finalizers(old) != finalizers(Some(new)) {
        return deny(
            Reason::PlatformOnly,
            "metadata.finalizers of roster objects are kept by roster; only platform principals may change them",
        );
    }
    Ok(())
}

/// Decides one request.
pub fn authorize(
    index: &OrgIndex,
    config: &Config,
    actor: &Actor,
    op: &Operation<'_>,
    ctx: &Context,
) -> Decision {
    let mut warnings = Vec::new();
    // Deleting anything inside an organization that is being deleted, or that is already gone
    // (the garbage collector removing what it owned), is always allowed: an org deletion never
    // gets stuck, and without an Organization nothing there is in force. Deleting the namespace
    // deletes everything in it, the Organization too, deletion protection or not.
    let org_going =
        index.organization_deleting() || index.organization.is_none() || ctx.namespace_deleting;
    let deleting_inside_deleted_org = org_going
        && matches!(
            op,
            Operation::DeleteMembership(_) | Operation::DeleteInvite(_) | Operation::DeleteTeam(_)
        )
        || ctx.namespace_deleting && matches!(op, Operation::DeleteOrganization(_));
    let result = if deleting_inside_deleted_org {
        Ok(())
    } else {
        let roles = if actor.platform {
            Ok(())
        } else {
            permission(index, config, actor, op)
        };
        roles.and_then(|()| invariants(index, config, actor, op, ctx, &mut warnings))
    };
    Decision {
        denial: result.err(),
        warnings,
    }
}

/// What a platform principal may store although it is not valid *yet*, because roster holds it in
/// the effective state until it is: a second Membership for a subject (Denied `Duplicate` until
/// the first is gone: a rename), an owner's demotion that would leave too few owners (held,
/// `LastOwnerDemotionHeld`: a transfer), `minOwners` above the owners in place (Memberships wait,
/// `OwnerQuorumNotMet`), a Team naming namespaces the Organization does not list yet (bound once
/// it does, `NamespaceNotGranted`), a second pending admin invite (unusable while the first is
/// pending, `AnotherAdminInvitePending`). GitOps engines are platform principals, and Flux
/// dry-runs every object of a commit against the cluster as it is *before* the commit, applying
/// nothing when one is refused: without this, a commit that transfers ownership or renames a
/// Membership would never sync. Deletions stay refused (a prune is retried once the rest has
/// landed), and so does everything that can never become valid.
const HELD_UNTIL_VALID: [Reason; 5] = [
    Reason::Duplicate,
    Reason::LastOwner,
    Reason::OwnerQuorum,
    Reason::NamespaceNotInOrganization,
    Reason::PendingAdminInvite,
];

/// The webhook's answer: [`authorize`], except that what roster holds until it is valid is
/// admitted for platform principals, with the refusal as a warning (see [`HELD_UNTIL_VALID`]).
pub fn admit(
    index: &OrgIndex,
    config: &Config,
    actor: &Actor,
    op: &Operation<'_>,
    ctx: &Context,
) -> Decision {
    let mut decision = authorize(index, config, actor, op, ctx);
    let deleting = matches!(
        op,
        Operation::DeleteMembership(_)
            | Operation::DeleteInvite(_)
            | Operation::DeleteTeam(_)
            | Operation::DeleteOrganization(_)
    );
    if let Some(denial) = &decision.denial
        && actor.platform
        && !deleting
        && HELD_UNTIL_VALID.contains(&denial.reason)
    {
        decision.warnings.push(format!(
            "admitted for a platform principal although not valid yet; roster holds it until it is: {} [rule {}]",
            denial.message,
            denial.reason.as_str()
        ));
        decision.denial = None;
    }
    decision
}

/// The actor's org role, or the denial every role check starts from.
fn role(index: &OrgIndex, actor: &Actor, what: &str) -> Result<OrgRole, Denial> {
    index.role_of(&actor.username, &actor.groups).ok_or_else(|| Denial {
        reason: Reason::NotAMember,
        message: format!(
            "{what} is refused: {} holds no effective Membership in this organization; ask an owner or admin",
            actor.username
        ),
    })
}

fn at_least(have: OrgRole, need: OrgRole, what: &str) -> Result<(), Denial> {
    if have >= need {
        Ok(())
    } else {
        deny(
            Reason::RoleTooLow,
            format!("{what} needs org role {need} or higher; you are {have}"),
        )
    }
}

fn is_staff(role: OrgRole) -> bool {
    role <= OrgRole::Member
}

/// The role a target Membership holds for authorization: the higher of desired and effective, so
/// that a held owner cannot be handled as the member their spec says.
fn target_rank(index: &OrgIndex, spec: &MembershipSpec) -> OrgRole {
    let effective = spec.subject().and_then(|s| index.effective_role(&s));
    effective.map_or(spec.role, |e| e.max(spec.role))
}

/// Section 2: the role checks.
fn permission(
    index: &OrgIndex,
    config: &Config,
    actor: &Actor,
    op: &Operation<'_>,
) -> Result<(), Denial> {
    match *op {
        Operation::CreateMembership { spec, .. } => {
            may_create_membership(index, config, actor, spec)
        }
        Operation::UpdateMembership { old, new } => may_update_membership(index, actor, old, new),
        Operation::DeleteMembership(spec) => may_delete_membership(index, actor, spec),
        Operation::CreateInvite(spec) => {
            let have = role(index, actor, "creating an Invite")?;
            invite_role_allowed(have, spec.role, "inviting")
        }
        Operation::UpdateInvite { old, new } => {
            let have = role(index, actor, "changing an Invite")?;
            invite_role_allowed(have, old.role, "changing an invite")?;
            invite_role_allowed(have, new.role, "changing an invite")
        }
        Operation::DeleteInvite(spec) => {
            let have = role(index, actor, "deleting an Invite")?;
            invite_role_allowed(have, spec.role, "deleting an invite")
        }
        Operation::CreateTeam(spec) => {
            check_team_system_subjects(None, spec)?;
            let have = role(index, actor, "creating a Team")?;
            at_least(have, OrgRole::Admin, "creating a Team")?;
            team_grants_within(index, config, have, None, spec)
        }
        Operation::DeleteTeam(_) => {
            // Deleting names no group, so a Team a platform principal gave a system: group can go.
            let have = role(index, actor, "creating or deleting a Team")?;
            at_least(have, OrgRole::Admin, "creating or deleting a Team")
        }
        Operation::UpdateTeam { old, new } => {
            check_team_system_subjects(Some(old), new)?;
            // Team roles count for effective org members only, like everything a team grants.
            let have = role(index, actor, "changing a Team")?;
            if have < OrgRole::Admin {
                team_permission(actor, old, new)?;
            }
            team_grants_within(index, config, have, Some(old), new)
        }
        Operation::CreateOrganization(_) => deny(
            Reason::PlatformOnly,
            "creating an Organization is for platform principals (it claims a namespace and grants access); ask your platform team",
        ),
        Operation::UpdateOrganization { old, new } => {
            may_update_organization(index, actor, old, new)
        }
        Operation::DeleteOrganization(_) => {
            let have = role(index, actor, "deleting the Organization")?;
            at_least(have, OrgRole::Owner, "deleting the Organization")
        }
    }
}

/// Section 2, creating a Membership: one's own (an invite, a self-join domain), or someone else's by role.
fn may_create_membership(
    index: &OrgIndex,
    config: &Config,
    actor: &Actor,
    spec: &MembershipSpec,
) -> Result<(), Denial> {
    if let Some(subject) = spec.subject().filter(|s| identity::is_system(s.name())) {
        return deny(
            Reason::SystemSubject,
            format!(
                "spec names {subject}, a Kubernetes system identity; only platform principals may give system: users and groups a role"
            ),
        );
    }
    let own = spec.user.as_deref() == Some(actor.username.as_str());
    if own {
        if spec.invite.is_some() {
            // Checked with the invariants (4), which bind platform principals too.
            return Ok(());
        }
        let join = match self_join_match(index, config, actor) {
            SelfJoinMatch::Match(join) => Some(join),
            SelfJoinMatch::NoMatch => None,
            SelfJoinMatch::Refused(message) => {
                return deny(Reason::SelfJoinNotAllowed, message);
            }
        };
        if let Some(join) = join {
            let role = OrgRole::from(join.role);
            return if spec.role == role {
                Ok(())
            } else {
                deny(
                    Reason::SelfJoinNotAllowed,
                    format!(
                        "joining by e-mail domain gives role {role} (spec.policy.selfJoin.role); set spec.role to {role}"
                    ),
                )
            };
        }
        // Also for those who hold a role through a group: a Membership of one's own would
        // outlast the group's, so another admin or owner creates it.
        return deny(
            Reason::SelfJoinNotAllowed,
            format!(
                "creating your own Membership needs an invite code (spec.invite) or a username in one of spec.policy.selfJoin.emailDomains; {} has neither: ask an owner or admin to add you",
                actor.username
            ),
        );
    } else if spec.invite.is_some() {
        return deny(
            Reason::InvalidInvite,
            "spec.invite is for redeeming your own invite: spec.user must be your own username",
        );
    }
    let have = role(index, actor, "creating a Membership")?;
    match have {
        OrgRole::Owner => Ok(()),
        OrgRole::Admin if is_staff(spec.role) => Ok(()),
        OrgRole::Admin => deny(
            Reason::AdminLimit,
            format!(
                "admins add members and viewers only; creating a Membership with role {} needs an owner",
                spec.role
            ),
        ),
        _ => deny(
            Reason::RoleTooLow,
            format!("adding members needs org role admin or owner; you are {have}"),
        ),
    }
}

/// Section 2, changing a Membership: one's own profile, or a role by one's own role.
fn may_update_membership(
    index: &OrgIndex,
    actor: &Actor,
    old: &MembershipSpec,
    new: &MembershipSpec,
) -> Result<(), Denial> {
    let own = old.user.as_deref() == Some(actor.username.as_str());
    if own && old.role == new.role {
        return Ok(()); // your own profile fields
    }
    // A platform principal gave a system: identity its role; only one may change it.
    if let Some(subject) = old.subject().filter(|s| identity::is_system(s.name()))
        && old.role != new.role
    {
        return deny(
            Reason::SystemSubject,
            format!(
                "this Membership names {subject}, a Kubernetes system identity; only platform principals may change its role"
            ),
        );
    }
    let have = role(index, actor, "changing a Membership")?;
    let from = target_rank(index, old);
    match have {
        OrgRole::Owner => Ok(()),
        OrgRole::Admin if is_staff(from) && is_staff(new.role) => Ok(()),
        OrgRole::Admin => deny(
            Reason::AdminLimit,
            format!(
                "admins change roles among member and viewer only; changing {from} to {} needs an owner",
                new.role
            ),
        ),
        _ => deny(
            Reason::RoleTooLow,
            format!("changing roles needs org role admin or owner; you are {have}"),
        ),
    }
}

/// Section 2, removing a Membership: leaving, or removing someone by role.
fn may_delete_membership(
    index: &OrgIndex,
    actor: &Actor,
    spec: &MembershipSpec,
) -> Result<(), Denial> {
    if spec.user.as_deref() == Some(actor.username.as_str()) {
        return Ok(()); // leaving
    }
    let have = role(index, actor, "removing a Membership")?;
    let target = target_rank(index, spec);
    match have {
        OrgRole::Owner => Ok(()),
        OrgRole::Admin if is_staff(target) => Ok(()),
        OrgRole::Admin => deny(
            Reason::AdminLimit,
            format!("admins remove members and viewers only; removing an {target} needs an owner"),
        ),
        _ => deny(
            Reason::RoleTooLow,
            format!("removing members needs org role admin or owner; you are {have}"),
        ),
    }
}

/// Section 2, changing the Organization: `access` is for platform principals, the rest by role.
fn may_update_organization(
    index: &OrgIndex,
    actor: &Actor,
    old: &OrganizationSpec,
    new: &OrganizationSpec,
) -> Result<(), Denial> {
    if old.access != new.access {
        return deny(
            Reason::PlatformOnly,
            "spec.access grants rights outside the org namespace; only platform principals may change it",
        );
    }
    let have = role(index, actor, "changing the Organization")?;
    match have {
        OrgRole::Owner => Ok(()),
        OrgRole::Admin if only_profile_changed(old, new) => Ok(()),
        OrgRole::Admin => deny(
            Reason::AdminLimit,
            "admins may change spec.displayName and spec.profile only; policy, billing and protection need an owner",
        ),
        _ => deny(
            Reason::RoleTooLow,
            format!("changing the Organization needs org role admin or owner; you are {have}"),
        ),
    }
}

/// What a Team hands out in workload namespaces: a ClusterRole for a subject in a namespace, for
/// every entry of an active team with access.
fn team_grants(team: &TeamSpec) -> BTreeSet<(Subject, &str, &str)> {
    let Some(access) = team.access.as_ref().filter(|_| team.active) else {
        return BTreeSet::new();
    };
    team.members
        .iter()
        .filter_map(|m| Some((m.subject()?, access.cluster_roles.for_role(m.role))))
        .flat_map(|(subject, cluster_role)| {
            access
                .namespaces
                .iter()
                .map(move |ns| (subject.clone(), ns.as_str(), cluster_role))
        })
        .collect()
}

/// A Team change never gives anyone, the changer included, a ClusterRole beyond what the
/// Organization's platform-set mapping gives the changer's own org role or a lower one: an admin
/// whose role maps to `edit` can neither name `admin` for a team role nor move someone (himself
/// included) into a team role that already maps to `admin`. Grants the Team already made stay (an
/// owner may have made them).
fn team_grants_within(
    index: &OrgIndex,
    config: &Config,
    have: OrgRole,
    old: Option<&TeamSpec>,
    new: &TeamSpec,
) -> Result<(), Denial> {
    let org_map = index
        .organization
        .as_ref()
        .map(|o| o.spec.access.cluster_roles.clone())
        .unwrap_or_default();
    let mut yours: Vec<&str> = OrgRole::ALL
        .iter()
        .filter(|r| **r <= have)
        .map(|r| org_map.for_role(*r))
        .collect();
    yours.dedup();
    let before = old.map(team_grants).unwrap_or_default();
    // Beyond the installer's allow-list is refused by the invariants, with that reason.
    let beyond = team_grants(new).into_iter().find(|grant| {
        let cluster_role = grant.2;
        config.allowed_cluster_roles.contains(cluster_role)
            && !yours.contains(&cluster_role)
            && !before.contains(grant)
    });
    match beyond {
        Some((subject, ns, cluster_role)) => deny(
            Reason::AdminLimit,
            format!(
                "this change would give {subject} ClusterRole {cluster_role} in {ns}, which the Organization's spec.access.clusterRoles does not give your role ({have}) or a lower one; team roles you hand out may map only to {} (or ask an owner)",
                yours.join(", ")
            ),
        ),
        None => Ok(()),
    }
}

fn invite_role_allowed(have: OrgRole, invited: OrgRole, what: &str) -> Result<(), Denial> {
    match have {
        OrgRole::Owner => Ok(()),
        OrgRole::Admin if is_staff(invited) => Ok(()),
        OrgRole::Admin => deny(
            Reason::AdminLimit,
            format!(
                "{what} with role {invited} needs an owner; admins handle member and viewer invites"
            ),
        ),
        _ => deny(
            Reason::RoleTooLow,
            format!("{what} needs org role admin or owner; you are {have}"),
        ),
    }
}

fn only_profile_changed(old: &OrganizationSpec, new: &OrganizationSpec) -> bool {
    let mut rest = new.clone();
    rest.display_name = old.display_name.clone();
    rest.profile = old.profile.clone();
    &rest == old
}

fn check_team_system_subjects(old: Option<&TeamSpec>, new: &TeamSpec) -> Result<(), Denial> {
    let had = |s: &Subject| {
        old.is_some_and(|o| o.members.iter().any(|m| m.subject().as_ref() == Some(s)))
    };
    match new
        .members
        .iter()
        .filter_map(|m| m.subject())
        .find(|s| identity::is_system(s.name()) && !had(s))
    {
        Some(s) => deny(
            Reason::SystemSubject,
            format!(
                "spec.members names {s}, a Kubernetes system identity; only platform principals may"
            ),
        ),
        None => Ok(()),
    }
}

/// The actor's role in a team: the highest entry naming them or one of their groups.
fn team_role(team: &TeamSpec, actor: &Actor) -> Option<TeamRole> {
    team.members
        .iter()
        .filter(|m| {
            m.user.as_deref() == Some(actor.username.as_str())
                || m.group.as_ref().is_some_and(|g| actor.groups.contains(g))
        })
        .map(|m| m.role)
        .max()
}

/// A team's owner changes anything but `access`; a team admin changes the team's description and
/// members below admin.
fn team_permission(actor: &Actor, old: &TeamSpec, new: &TeamSpec) -> Result<(), Denial> {
    let Some(mine) = team_role(old, actor).filter(|r| *r >= TeamRole::Admin) else {
        return deny(
            Reason::TeamRoleTooLow,
            "changing a Team needs org role admin or owner, or team role admin or owner in this team",
        );
    };
    if old.access != new.access {
        return deny(
            Reason::TeamRoleTooLow,
            "spec.access of a Team grants Kubernetes access; only org admins and owners may change it",
        );
    }
    if mine == TeamRole::Owner {
        return Ok(());
    }
    if old.active != new.active {
        return deny(
            Reason::TeamRoleTooLow,
            "only the team owner or an org admin may activate or deactivate a Team",
        );
    }
    let role_in = |team: &TeamSpec, s: &Subject| {
        team.members
            .iter()
            .find(|m| m.subject().as_ref() == Some(s))
            .map(|m| m.role)
    };
    let subjects = old
        .members
        .iter()
        .chain(&new.members)
        .filter_map(|m| m.subject());
    for s in subjects {
        let (before, after) = (role_in(old, &s), role_in(new, &s));
        if before != after
            && (before.is_some_and(|r| r >= mine) || after.is_some_and(|r| r >= mine))
        {
            return deny(
                Reason::TeamRoleTooLow,
                format!(
                    "a team {mine} assigns and changes team roles below {mine} only; {s} needs the team owner or an org admin"
                ),
            );
        }
    }
    Ok(())
}

/// How a user's own Membership without an invite stands with the org's `selfJoin` policy.
enum SelfJoinMatch<'a> {
    /// The user may join with the policy's role.
    Match(&'a SelfJoin),
    /// Not a username in the policy's domains (or no policy): an invite is needed.
    NoMatch,
    /// A username in the domains, but not signed in as the policy requires; the message says how.
    Refused(String),
}

/// A username in one of the domains may join; when the policy is bound to an identity provider,
/// only as that provider names its users (its prefix, then the address in the domain) and, with a
/// tenant, only when the authenticator put the user in it. Without the binding any authenticator
/// that can produce a username ending in the domain (another OIDC issuer, a client certificate, a
/// token file) could claim it.
fn self_join_match<'a>(index: &'a OrgIndex, config: &Config, actor: &Actor) -> SelfJoinMatch<'a> {
    let Some(join) = index
        .organization
        .as_ref()
        .and_then(|o| o.spec.policy.self_join.as_ref())
    else {
        return SelfJoinMatch::NoMatch;
    };
    let username = actor.username.as_str();
    let domains = &join.email_domains;
    let Some(bound) = &join.identity_provider else {
        return if identity::in_domains(username, domains) {
            SelfJoinMatch::Match(join)
        } else {
            SelfJoinMatch::NoMatch
        };
    };
    let providers = &config.identity_providers;
    // Whether the username is in the domains at all, as it is or after whichever prefix it carries:
    // only then is it worth saying how to sign in instead of asking for an invite.
    let address = providers
        .signed_in_with(username)
        .map_or(username, |(_, rest)| rest);
    if !identity::in_domains(username, domains) && !identity::in_domains(address, domains) {
        return SelfJoinMatch::NoMatch;
    }
    let field = "spec.policy.selfJoin.identityProvider";
    let provider = match providers.resolve(bound) {
        Ok(p) => p,
        Err(unchecked) => {
            return SelfJoinMatch::Refused(format!(
                "spec.policy.selfJoin is bound to identity provider {}, which this installation cannot check ({}); ask an owner or admin for an invite",
                bound.name,
                unchecked.message(field, providers)
            ));
        }
    };
    let tenant = bound.tenant.as_deref();
    let bound_to = match tenant {
        Some(t) => format!("identity provider {}, tenant {t}", provider.name),
        None => format!("identity provider {}", provider.name),
    };
    if !provider
        .signed_in(username)
        .is_some_and(|rest| identity::in_domains(rest, domains))
    {
        return SelfJoinMatch::Refused(format!(
            "spec.policy.selfJoin binds its e-mail domains to {bound_to}; user {username} did not sign in with it ({}'s usernames start with {}): sign in with {} and join again, or ask an owner or admin for an invite",
            provider.name, provider.username_prefix, provider.name
        ));
    }
    if let Some(t) = tenant
        && !provider.in_tenant(t, &actor.extra)
    {
        let seen = provider.tenants(&actor.extra);
        return SelfJoinMatch::Refused(format!(
            "spec.policy.selfJoin binds its e-mail domains to {bound_to}; user {username} did not sign in to that tenant (userInfo.extra[{}] holds {}): sign in with an account of tenant {t}, or ask an owner or admin for an invite",
            provider.tenant_key.as_deref().unwrap_or_default(),
            if seen.is_empty() {
                "nothing".to_string()
            } else {
                seen.join(", ")
            }
        ));
    }
    SelfJoinMatch::Match(join)
}

/// An identity provider an Invite or a `selfJoin` policy is bound to must be one this installation
/// configured (and have a tenant key when a tenant is named): otherwise nobody could ever redeem
/// or join through it. Checked when the reference is set or changed, so an object bound to a
/// provider the platform removed later can still be revoked, deleted or otherwise changed.
fn check_provider_ref(
    config: &Config,
    old: Option<&crate::api::IdentityProviderRef>,
    new: Option<&crate::api::IdentityProviderRef>,
    field: &str,
) -> Result<(), Denial> {
    let Some(reference) = new.filter(|n| old != Some(*n)) else {
        return Ok(());
    };
    let providers = &config.identity_providers;
    match providers.resolve(reference) {
        Ok(_) => Ok(()),
        Err(unchecked) => deny(
            Reason::IdentityProviderNotConfigured,
            unchecked.message(field, providers),
        ),
    }
}

/// Invariant 4 at admission: the code is right, and the invite is usable now.
fn check_redemption(
    index: &OrgIndex,
    config: &Config,
    actor: &Actor,
    spec: &MembershipSpec,
    r: Redemption<'_>,
    ctx: &Context,
) -> Result<(), Denial> {
    let wanted = spec.invite.as_ref().expect("called for redemptions");
    let invalid = |why: String| {
        deny(
            Reason::InvalidInvite,
            format!("joining with invite {} is refused: {why}", wanted.name),
        )
    };
    let Some(invite) = r.invite else {
        return invalid("no such Invite in this namespace; check spec.invite.name".into());
    };
    let policy = index
        .organization
        .as_ref()
        .map(|o| o.spec.policy.clone())
        .unwrap_or_default();
    let created = invite
        .meta()
        .creation_timestamp
        .as_ref()
        .map_or(ctx.now, |t| t.0);
    let status = invite.status.clone().unwrap_or_default();
    let claim = redemption::Claim {
        invite,
        code: r.code,
        // Expired is final, even if a longer ttl would give it time again.
        expired: ctx.now >= ttl::expires_at(created, &invite.spec, &policy.invites)
            || status.phase == Some(InvitePhase::Expired),
        exhausted: status.uses >= invite.spec.max_uses
            || status.phase == Some(InvitePhase::Accepted),
        providers: &config.identity_providers,
        // The webhook sees how the requester signed in: when that is the joining user, their
        // tenant is checked too. A platform principal redeeming for someone else declares it.
        signed_in: (spec.user.as_deref() == Some(actor.username.as_str())).then_some(&actor.extra),
    };
    let user = spec.user.as_deref().unwrap_or_default();
    let Some(refusal) = redemption::refusal(spec, &claim, &policy.invites) else {
        return Ok(());
    };
    invalid(match refusal {
        Refusal::CodeUnavailable => "its code is not generated yet; try again in a moment".into(),
        Refusal::ProofMismatch => "spec.invite.proof does not prove the code for your username; check the code you were given and let `kubectl roster join` compute the proof".into(),
        Refusal::Revoked => "the invite was revoked; ask for a new one".into(),
        Refusal::Expired => "the invite expired; ask for a new one".into(),
        Refusal::Exhausted => "all its uses are taken; ask for a new one".into(),
        Refusal::EmailMismatch(_) => format!(
            "it is for {}, and you are {user}; ask for an invite of your own",
            redemption::invitee(invite, &config.identity_providers)
        ),
        Refusal::Open(open) => format!(
            "it names nobody, and {}; ask for an invite to your own e-mail",
            open.message()
        ),
        Refusal::RoleMismatch(role) => format!("it grants role {role}; set spec.role to {role}"),
        Refusal::ProviderUnchecked(_)
        | Refusal::WrongProvider(_)
        | Refusal::TenantNotDeclared { .. }
        | Refusal::NotInTenant { .. } => {
            redemption::provider_message(&refusal, invite, user, &config.identity_providers)
                .unwrap_or_default()
        }
    })
}

/// Section 3: what can never become valid, for everyone including platform principals.
fn invariants(
    index: &OrgIndex,
    config: &Config,
    actor: &Actor,
    op: &Operation<'_>,
    ctx: &Context,
    warnings: &mut Vec<String>,
) -> Result<(), Denial> {
    let policy = index
        .organization
        .as_ref()
        .map(|o| o.spec.policy.clone())
        .unwrap_or_default();
    let org = OrgView {
        index,
        policy: &policy,
        min_owners: policy.min_owners.max(1) as usize,
    };
    match *op {
        Operation::CreateMembership { spec, redemption } => {
            if spec.invite.is_some() {
                let r = redemption.unwrap_or_default();
                check_redemption(index, config, actor, spec, r, ctx)?;
            }
            org.membership_created(spec, warnings)
        }
        Operation::UpdateMembership { old, new } => org.membership_changed(old, new, warnings),
        Operation::DeleteMembership(spec) => org.membership_removed(spec, ctx),
        Operation::CreateInvite(spec) => check_invite(index, config, &policy, None, spec, warnings),
        Operation::UpdateInvite { old, new } => {
            check_invite(index, config, &policy, Some(old), new, warnings)
        }
        Operation::CreateTeam(spec) | Operation::UpdateTeam { new: spec, .. } => match &spec.access
        {
            Some(access) => check_team_access(index, config, access),
            None => Ok(()),
        },
        Operation::CreateOrganization(spec) => {
            if let Some(existing) = &index.organization {
                return deny(
                    Reason::OrganizationExists,
                    format!(
                        "this namespace already holds Organization {}; an org namespace holds one Organization: change that one instead, or choose another namespace",
                        existing.name_any()
                    ),
                );
            }
            check_access(config, &spec.access)?;
            check_provider_ref(config, None, self_join_provider(spec), SELF_JOIN_PROVIDER)
        }
        Operation::UpdateOrganization { old, new } => {
            if old.access != new.access {
                check_access(config, &new.access)?;
            }
            check_provider_ref(
                config,
                self_join_provider(old),
                self_join_provider(new),
                SELF_JOIN_PROVIDER,
            )?;
            org.policy_changed(old, new, warnings)
        }
        Operation::DeleteOrganization(spec) => {
            if spec.deletion_protection {
                return deny(
                    Reason::DeletionProtection,
                    "spec.deletionProtection is true: set it to false first if you really mean to delete the organization",
                );
            }
            Ok(())
        }
        Operation::DeleteInvite(_) | Operation::DeleteTeam(_) => Ok(()),
    }
}

const SELF_JOIN_PROVIDER: &str = "spec.policy.selfJoin.identityProvider";

fn self_join_provider(spec: &OrganizationSpec) -> Option<&crate::api::IdentityProviderRef> {
    spec.policy.self_join.as_ref()?.identity_provider.as_ref()
}

/// The organization as the invariants about people see it.
struct OrgView<'a> {
    index: &'a OrgIndex,
    policy: &'a crate::api::OrgPolicy,
    min_owners: usize,
}

impl OrgView<'_> {
    fn owner_target_warning(&self, warnings: &mut Vec<String>) {
        if let Some(max) = self.policy.max_owners
            && self.index.owners() >= max as usize
        {
            warnings.push(format!(
                "the organization will have more owners than spec.policy.maxOwners ({max}); demote an owner to finish the transfer"
            ));
        }
    }

    /// Invariant 2 (one Membership per subject), and what a new Membership waits for.
    fn membership_created(
        &self,
        spec: &MembershipSpec,
        warnings: &mut Vec<String>,
    ) -> Result<(), Denial> {
        let subject = spec.subject().ok_or_else(|| Denial {
            reason: Reason::Duplicate,
            message: "spec: set exactly one of spec.user or spec.group".into(),
        })?;
        if let Some(existing) = self.index.claimed_by(&subject) {
            return deny(
                Reason::Duplicate,
                format!(
                    "{subject} already has Membership {existing} in this organization; change its role there instead"
                ),
            );
        }
        if self.index.organization.is_none() {
            warnings.push("there is no Organization in this namespace yet: the Membership stays Pending until one exists".into());
        }
        if let Some(limit) = self.policy.max_members
            && self.index.effective_members() >= limit as usize
        {
            // Seats go to owners first (so that a transfer works in a full org).
            warnings.push(if spec.role == OrgRole::Owner {
                format!(
                    "all {limit} seats (spec.policy.maxMembers) are taken: this owner takes the seat of the newest non-owner member, who waits until a seat frees up"
                )
            } else {
                format!(
                    "all {limit} seats (spec.policy.maxMembers) are taken: the Membership stays Pending until a seat frees up"
                )
            });
        }
        if spec.role == OrgRole::Owner {
            self.owner_target_warning(warnings);
        }
        Ok(())
    }

    /// Invariant 1 on a role change: never fewer than minOwners owners.
    fn membership_changed(
        &self,
        old: &MembershipSpec,
        new: &MembershipSpec,
        warnings: &mut Vec<String>,
    ) -> Result<(), Denial> {
        let min_owners = self.min_owners;
        let effective = old.subject().and_then(|s| self.index.effective_role(&s));
        if effective == Some(OrgRole::Owner)
            && new.role < OrgRole::Owner
            && self.index.owners() <= min_owners
        {
            return deny(
                Reason::LastOwner,
                format!(
                    "demoting this owner would leave fewer than {min_owners} owner(s) (spec.policy.minOwners); make another member owner first"
                ),
            );
        }
        if new.role == OrgRole::Owner && effective != Some(OrgRole::Owner) {
            self.owner_target_warning(warnings);
        }
        Ok(())
    }

    /// Invariant 1 on a removal, and the removal budget.
    fn membership_removed(&self, spec: &MembershipSpec, ctx: &Context) -> Result<(), Denial> {
        let min_owners = self.min_owners;
        let effective = spec.subject().and_then(|s| self.index.effective_role(&s));
        if effective == Some(OrgRole::Owner)
            && self.index.owners() <= min_owners
            && self.index.effective_members() > 1
        {
            return deny(
                Reason::LastOwner,
                format!(
                    "removing this owner would leave the organization with members and fewer than {min_owners} owner(s) (spec.policy.minOwners); make another member owner first"
                ),
            );
        }
        if let Some(budget) = self.policy.max_removals_per_hour
            && ctx.removals_last_hour >= budget.max(0) as u32
        {
            return deny(
                Reason::RemovalBudget,
                format!(
                    "{} Membership(s) were removed in the last hour, the limit of spec.policy.maxRemovalsPerHour ({budget}); wait, or have an owner raise the limit",
                    ctx.removals_last_hour
                ),
            );
        }
        Ok(())
    }

    /// Invariant 1 on a policy change: minOwners never above the owners in place.
    fn policy_changed(
        &self,
        old: &OrganizationSpec,
        new: &OrganizationSpec,
        warnings: &mut Vec<String>,
    ) -> Result<(), Denial> {
        let index = self.index;
        // Memberships take effect only while minOwners owners are in place, so raising it above
        // the owners there are would suspend the whole organization.
        if new.policy.min_owners > old.policy.min_owners
            && new.policy.min_owners.max(1) as usize > index.owners()
        {
            return deny(
                Reason::OwnerQuorum,
                format!(
                    "spec.policy.minOwners {} is more than the {} effective owner(s): make more members owner first, then raise it",
                    new.policy.min_owners,
                    index.owners()
                ),
            );
        }
        if let Some(limit) = new.policy.max_members
            && (limit as usize) < index.effective_members()
        {
            warnings.push(format!(
                "spec.policy.maxMembers ({limit}) is below the {} effective members: the newest become Pending",
                index.effective_members()
            ));
        }
        Ok(())
    }
}

/// An invite as created or changed: at most one pending admin invite (also when a member invite
/// is turned into an admin one, or a revoked admin invite revived), no open invite where it may
/// not be redeemed, and a warning when the ttl is capped.
fn check_invite(
    index: &OrgIndex,
    config: &Config,
    policy: &crate::api::OrgPolicy,
    old: Option<&InviteSpec>,
    new: &InviteSpec,
    warnings: &mut Vec<String>,
) -> Result<(), Denial> {
    // A revoked invite is never redeemed, so whatever it is bound to does not matter.
    if !new.revoked {
        check_invite_provider(config, old, new)?;
    }
    let pending_admin = |i: &InviteSpec| i.role == OrgRole::Admin && !i.revoked;
    if pending_admin(new) && !old.is_some_and(pending_admin) && index.pending_admin_invites() >= 1 {
        return deny(
            Reason::PendingAdminInvite,
            "there is already a pending admin invite; revoke it or wait until it is used",
        );
    }
    // A revoked invite cannot be redeemed, so it may be open (and an owner may revoke one).
    let redeemable_open =
        |i: &InviteSpec| open_invites::refusal(i, &policy.invites).filter(|_| !i.revoked);
    if let Some(refusal) = redeemable_open(new)
        && old.is_none_or(|o| redeemable_open(o).is_none())
    {
        let reason = match refusal {
            open_invites::Refusal::Disabled => Reason::OpenInvitesDisabled,
            open_invites::Refusal::Admin => Reason::OpenAdminInvite,
        };
        return deny(reason, refusal.message());
    }
    if ttl::lifetime(new, &policy.invites).1 {
        warnings.push(format!(
            "spec.ttl exceeds spec.policy.invites.maxTTL ({}); the invite expires after {}",
            policy.invites.max_ttl, policy.invites.max_ttl
        ));
    }
    Ok(())
}

/// An Invite bound to a provider: one this installation can check, and an `email` that is the
/// address without the provider's prefix (roster adds it: see [`redemption`]), since a username
/// with the prefix twice is never one the provider makes.
fn check_invite_provider(
    config: &Config,
    old: Option<&InviteSpec>,
    new: &InviteSpec,
) -> Result<(), Denial> {
    let field = "spec.identityProvider";
    let unchanged = |o: &InviteSpec| {
        o.identity_provider == new.identity_provider && o.email == new.email && !o.revoked
    };
    if old.is_some_and(unchanged) {
        return Ok(());
    }
    // Compared as if new, so that reviving or re-addressing an invite is checked in full.
    check_provider_ref(config, None, new.identity_provider.as_ref(), field)?;
    let provider = new
        .identity_provider
        .as_ref()
        .and_then(|r| config.identity_providers.get(&r.name));
    if let (Some(p), Some(email)) = (provider, &new.email)
        && let Some(address) = email.strip_prefix(p.username_prefix.as_str())
    {
        return deny(
            Reason::ProviderPrefixInEmail,
            format!(
                "spec.email is the address identity provider {} signs the invitee in with, without its username prefix {:?}: set it to {address} (roster adds the prefix; as it is, only the username {}{email} could redeem it)",
                p.name, p.username_prefix, p.username_prefix
            ),
        );
    }
    Ok(())
}

fn check_cluster_roles<'a>(
    config: &Config,
    roles: impl IntoIterator<Item = &'a String>,
    field: &str,
) -> Result<(), Denial> {
    match roles
        .into_iter()
        .find(|r| !config.allowed_cluster_roles.contains(*r))
    {
        Some(r) => deny(
            Reason::ClusterRoleNotAllowed,
            format!(
                "{field} names ClusterRole {r}, which is not on the operator's allow-list ({}); ask your platform team",
                config
                    .allowed_cluster_roles
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        None => Ok(()),
    }
}

/// The rule that keeps organizations out of the namespaces the installer excluded.
pub const EXCLUDED_ORG_NAMESPACE: &str = "excluded namespaces are never org namespaces";

/// Excluded namespaces hold Kubernetes' and roster's own components (the webhook's CA key, Helm's
/// release Secrets): an org there would hand its owners that namespace. Creating any roster kind
/// there is refused; deleting stays allowed so that what slipped in can be cleaned up.
pub fn org_namespace(config: &Config, namespace: &str, kind: &str) -> Result<(), Denial> {
    if !config.excluded_namespaces.contains(namespace) {
        return Ok(());
    }
    deny(
        Reason::ExcludedNamespace,
        format!(
            "namespace {namespace} is excluded by the installer (--excluded-namespaces) and {EXCLUDED_ORG_NAMESPACE}: choose an org namespace of its own for the {kind}"
        ),
    )
}

/// The (workload namespace, ClusterRole) pairs roster would start binding because `new` replaces
/// `old` (`None` for a create). With the mapping unchanged only added namespaces bind anything new;
/// a changed mapping rebinds every namespace.
pub fn binds_to_confirm(old: Option<&Access>, new: &Access) -> BTreeSet<(String, String)> {
    let m = &new.cluster_roles;
    let roles: BTreeSet<&String> = [&m.owner, &m.admin, &m.member, &m.viewer].into();
    let same_roles = old.is_some_and(|o| o.cluster_roles == new.cluster_roles);
    new.namespaces
        .iter()
        .filter(|ns| !same_roles || !old.is_some_and(|o| o.namespaces.contains(ns)))
        .flat_map(|ns| roles.iter().map(move |r| (ns.clone(), r.to_string())))
        .collect()
}

/// roster binds with its own rights on behalf of whoever sets `spec.access`, so that requester must
/// hold what Kubernetes asks of anyone creating such a RoleBinding: `bind` on the ClusterRole in
/// that namespace. `may_bind` holds the pairs the API server confirmed (SubjectAccessReviews).
pub fn bind_rights(
    old: Option<&Access>,
    new: &Access,
    may_bind: &BTreeSet<(String, String)>,
) -> Result<(), Denial> {
    match binds_to_confirm(old, new)
        .into_iter()
        .find(|pair| !may_bind.contains(pair))
    {
        Some((ns, role)) => deny(
            Reason::BindNotAllowed,
            format!(
                "spec.access would have roster bind ClusterRole {role} in namespace {ns}, which you may not bind yourself (verb bind on clusterroles/{role} in {ns}); ask a cluster admin to grant you that, or leave {ns} out"
            ),
        ),
        None => Ok(()),
    }
}

fn check_access(config: &Config, access: &Access) -> Result<(), Denial> {
    if let Some(ns) = access
        .namespaces
        .iter()
        .find(|n| config.excluded_namespaces.contains(*n))
    {
        return deny(
            Reason::ExcludedNamespace,
            format!(
                "spec.access.namespaces names {ns}, which the installer excluded; choose a workload namespace"
            ),
        );
    }
    let m = &access.cluster_roles;
    check_cluster_roles(
        config,
        [&m.owner, &m.admin, &m.member, &m.viewer],
        "spec.access.clusterRoles",
    )
}

fn check_team_access(index: &OrgIndex, config: &Config, access: &TeamAccess) -> Result<(), Denial> {
    let org_namespaces = index
        .organization
        .as_ref()
        .map(|o| o.spec.access.namespaces.as_slice())
        .unwrap_or_default();
    if let Some(ns) = access
        .namespaces
        .iter()
        .find(|n| !org_namespaces.contains(n))
    {
        return deny(
            Reason::NamespaceNotInOrganization,
            format!(
                "spec.access.namespaces names {ns}, which is not in the Organization's spec.access.namespaces; choose one of those, or ask a platform principal to add it there first"
            ),
        );
    }
    let m = &access.cluster_roles;
    check_cluster_roles(
        config,
        [&m.owner, &m.admin, &m.moderator, &m.member, &m.viewer],
        "spec.access.clusterRoles",
    )
}
