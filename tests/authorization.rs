//! Table tests for docs/design.md §2 (who may do what) and for the invariants of §3 that
//! the webhook checks, against `roster::rules::authorize`. Pure: no cluster, no clock.
//!
//! Every row of the section 2 table is run for the same seven actors: an owner, an admin, a member,
//! a viewer, a non-member, a platform principal (group `system:masters`), and a user who is admin
//! only through a group Membership. A failure names its case as `row | actor`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use roster::api::{
    Access, DataRegion, IdentityProviderRef, Invite, InvitePhase, InviteRef, InviteSpec,
    InviteStatus, Membership, MembershipPhase, MembershipSpec, MembershipStatus, OrgPolicy,
    OrgRole, Organization, OrganizationSpec, Profile, SelfJoin, SelfJoinRole, TeamAccess,
    TeamMember, TeamRole, TeamSpec,
};
use roster::rules::{
    Actor, Config, Context, Decision, IdentityProviders, Operation, OrgIndex, Reason, Redemption,
    authorize,
};

/// Fixtures: the people of the `acme` organization and builders for the objects.
mod fixture {
    use super::*;

    pub const NS: &str = "acme";
    pub const CODE: &str = "ABCD-EFGH-JKLM-NPQR";

    pub const ALICE: &str = "alice@acme.example"; // owner
    pub const OLGA: &str = "olga@acme.example"; // second owner
    pub const ADAM: &str = "adam@acme.example"; // admin
    pub const MIA: &str = "mia@acme.example"; // member
    pub const VIC: &str = "vic@acme.example"; // viewer
    pub const ENG: &str = "acme:eng"; // group Membership with role admin
    pub const GARY: &str = "gary@acme.example"; // admin only through group acme:eng
    pub const NORA: &str = "nora@elsewhere.example"; // no Membership at all
    pub const PLATFORM: &str = "kubernetes-admin"; // in group system:masters
    pub const BEA: &str = "bea@acme.example"; // newcomer: invited, or added by others
    pub const CARL: &str = "carl@elsewhere.example"; // another outsider
    pub const SAM: &str = "sam@acme.example"; // joins by e-mail domain
    // Org members who hold roles in team `platform`.
    pub const TESS: &str = "tess@acme.example"; // team owner
    pub const TAD: &str = "tad@acme.example"; // team admin
    pub const TIM: &str = "tim@acme.example"; // team moderator
    pub const TOM: &str = "tom@acme.example"; // team member

    /// A fixed "now": 2026-01-01T00:00:00Z.
    pub fn now() -> Timestamp {
        Timestamp::from_second(1_767_225_600).unwrap()
    }

    pub fn hours(h: i64) -> SignedDuration {
        SignedDuration::from_hours(h)
    }

    pub fn ago(d: SignedDuration) -> Time {
        Time(now() - d)
    }

    pub fn user(name: &str, role: OrgRole) -> MembershipSpec {
        MembershipSpec {
            user: Some(name.into()),
            group: None,
            role,
            display_name: None,
            email: None,
            invite: None,
        }
    }

    pub fn group(name: &str, role: OrgRole) -> MembershipSpec {
        MembershipSpec {
            group: Some(name.into()),
            user: None,
            ..user("", role)
        }
    }

    /// A Membership the controller made Active with its desired role.
    pub fn active(spec: MembershipSpec, age: SignedDuration) -> Membership {
        let subject = spec.user.clone().or(spec.group.clone()).unwrap();
        let name = subject.split('@').next().unwrap().replace(':', "-");
        let role = spec.role;
        let mut m = Membership::new(&name, spec);
        m.metadata.namespace = Some(NS.into());
        m.metadata.creation_timestamp = Some(ago(age));
        m.status = Some(MembershipStatus {
            phase: Some(MembershipPhase::Active),
            effective_role: Some(role),
            ..Default::default()
        });
        m
    }

    pub fn org_spec() -> OrganizationSpec {
        OrganizationSpec {
            display_name: Some("Acme Research".into()),
            access: Access {
                namespaces: vec!["acme-prod".into(), "acme-dev".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    pub fn organization() -> Organization {
        let mut org = Organization::new("acme", org_spec());
        org.metadata.namespace = Some(NS.into());
        org.metadata.creation_timestamp = Some(ago(hours(24 * 365)));
        org
    }

    pub fn invite_spec(email: Option<&str>, role: OrgRole) -> InviteSpec {
        InviteSpec {
            email: email.map(Into::into),
            role,
            max_uses: 1,
            ttl: None,
            ..InviteSpec::default()
        }
    }

    /// A pending Invite created an hour ago, whose code is [`CODE`].
    pub fn invite(name: &str, spec: InviteSpec) -> Invite {
        let mut i = Invite::new(name, spec);
        i.metadata.namespace = Some(NS.into());
        i.metadata.creation_timestamp = Some(ago(hours(1)));
        i.status = Some(InviteStatus {
            phase: Some(InvitePhase::Pending),
            code_secret_name: Some(format!("{name}-code")),
            ..Default::default()
        });
        i
    }

    pub fn with_status(mut i: Invite, phase: InvitePhase, uses: i32) -> Invite {
        let status = i.status.as_mut().unwrap();
        status.phase = Some(phase);
        status.uses = uses;
        i
    }

    pub fn tm_user(name: &str, role: TeamRole) -> TeamMember {
        TeamMember {
            user: Some(name.into()),
            group: None,
            role,
        }
    }

    pub fn tm_group(name: &str, role: TeamRole) -> TeamMember {
        TeamMember {
            user: None,
            group: Some(name.into()),
            role,
        }
    }

    /// Team `platform`: tess owns it, tad is its admin, tim a moderator and tom a member; it works in
    /// the org's namespace acme-prod.
    pub fn team() -> TeamSpec {
        TeamSpec {
            display_name: Some("Platform".into()),
            description: Some("Runs the clusters".into()),
            color: None,
            active: true,
            members: vec![
                tm_user(TESS, TeamRole::Owner),
                tm_user(TAD, TeamRole::Admin),
                tm_user(TIM, TeamRole::Moderator),
                tm_user(TOM, TeamRole::Member),
            ],
            access: Some(TeamAccess {
                namespaces: vec!["acme-prod".into()],
                ..Default::default()
            }),
        }
    }
}

use fixture::*;

/// The state of one org namespace as the webhook's caches hold it, and the request's context.
#[derive(Clone)]
struct World {
    org: Option<Organization>,
    memberships: Vec<Membership>,
    invites: Vec<Invite>,
    ctx: Context,
}

impl World {
    /// Org `acme` with two owners, an admin, a member, a viewer, group acme:eng as admin, and the
    /// four members of team `platform`: ten effective Memberships.
    fn acme() -> World {
        let people = [
            user(ALICE, OrgRole::Owner),
            user(OLGA, OrgRole::Owner),
            user(ADAM, OrgRole::Admin),
            user(MIA, OrgRole::Member),
            user(VIC, OrgRole::Viewer),
            group(ENG, OrgRole::Admin),
            user(TESS, OrgRole::Member),
            user(TAD, OrgRole::Member),
            user(TIM, OrgRole::Member),
            user(TOM, OrgRole::Member),
        ];
        World {
            org: Some(organization()),
            memberships: people
                .into_iter()
                .enumerate()
                .map(|(i, spec)| active(spec, hours(1000 - i as i64)))
                .collect(),
            invites: Vec::new(),
            ctx: Context {
                now: now(),
                removals_last_hour: 0,
                namespace_deleting: false,
            },
        }
    }

    /// A namespace with no roster objects yet.
    fn empty() -> World {
        World {
            org: None,
            memberships: Vec::new(),
            ..World::acme()
        }
    }

    fn policy(mut self, f: impl FnOnce(&mut OrgPolicy)) -> World {
        f(&mut self.org.as_mut().unwrap().spec.policy);
        self
    }

    /// Alice is the only owner.
    fn single_owner(self) -> World {
        self.without(OLGA)
    }

    fn org_deleting(mut self) -> World {
        self.org.as_mut().unwrap().metadata.deletion_timestamp = Some(ago(hours(0)));
        self
    }

    fn without(mut self, subject: &str) -> World {
        self.memberships.retain(|m| !names(&m.spec, subject));
        self
    }

    fn with(mut self, m: Membership) -> World {
        self.memberships.push(m);
        self
    }

    fn invite(mut self, i: Invite) -> World {
        self.invites.push(i);
        self
    }

    fn at(mut self, t: Timestamp) -> World {
        self.ctx.now = t;
        self
    }

    fn removals(mut self, n: u32) -> World {
        self.ctx.removals_last_hour = n;
        self
    }

    /// The spec of the Membership naming a user or group.
    fn spec(&self, subject: &str) -> MembershipSpec {
        self.memberships
            .iter()
            .find(|m| names(&m.spec, subject))
            .unwrap_or_else(|| panic!("no Membership for {subject}"))
            .spec
            .clone()
    }

    fn index(&self) -> OrgIndex {
        OrgIndex::new(self.org.as_ref(), &self.memberships, &self.invites)
    }
}

fn names(spec: &MembershipSpec, subject: &str) -> bool {
    spec.user.as_deref() == Some(subject) || spec.group.as_deref() == Some(subject)
}

/// Who asks.
#[derive(Clone, Copy, Debug)]
enum Who {
    Owner,
    Admin,
    Member,
    Viewer,
    NonMember,
    Platform,
    /// Admin only through the group Membership of acme:eng.
    GroupAdmin,
    /// Anyone else, by username.
    User(&'static str),
    /// Anyone else, by username and groups.
    InGroups(&'static str, &'static [&'static str]),
    /// Anyone else, by username and the `userInfo.extra` the authenticator gave them.
    SignedIn(
        &'static str,
        &'static [(&'static str, &'static [&'static str])],
    ),
}

impl Who {
    fn actor(self, config: &Config) -> Actor {
        let (name, mut groups) = match self {
            Who::Owner => (ALICE, vec![]),
            Who::Admin => (ADAM, vec![]),
            Who::Member => (MIA, vec![]),
            Who::Viewer => (VIC, vec![]),
            Who::NonMember => (NORA, vec!["elsewhere:staff".to_string()]),
            Who::Platform => (PLATFORM, vec!["system:masters".to_string()]),
            Who::GroupAdmin => (GARY, vec![ENG.to_string()]),
            Who::User(name) => (name, vec![]),
            Who::InGroups(name, groups) => (name, groups.iter().map(|g| g.to_string()).collect()),
            Who::SignedIn(name, _) => (name, vec![]),
        };
        // Every authenticated user is in this group; it must confer nothing.
        groups.push("system:authenticated".into());
        let extra = match self {
            Who::SignedIn(_, extra) => extra
                .iter()
                .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                .collect(),
            _ => Default::default(),
        };
        Actor::new(name, groups, config).with_extra(extra)
    }

    fn label(self) -> String {
        match self {
            Who::Owner => format!("owner {ALICE}"),
            Who::Admin => format!("admin {ADAM}"),
            Who::Member => format!("member {MIA}"),
            Who::Viewer => format!("viewer {VIC}"),
            Who::NonMember => format!("non-member {NORA}"),
            Who::Platform => format!("platform {PLATFORM}"),
            Who::GroupAdmin => format!("group admin {GARY}"),
            Who::User(name) => name.to_string(),
            Who::InGroups(name, groups) => format!("{name} in {}", groups.join(", ")),
            Who::SignedIn(name, extra) => format!("{name} with extra {extra:?}"),
        }
    }
}

/// What the webhook should answer.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Allowed, without warnings.
    Allow,
    /// Allowed with a warning that contains the text.
    Warn(&'static str),
    /// Denied for the reason, with a message that contains the text.
    Deny(Reason, &'static str),
}

const ALLOW: Expect = Expect::Allow;
const NOT_A_MEMBER: Expect = Expect::Deny(Reason::NotAMember, "ask an owner or admin");
const TOO_LOW: Expect = Expect::Deny(Reason::RoleTooLow, "needs org role");
const NEEDS_OWNER: Expect = Expect::Deny(Reason::AdminLimit, "owner");
const PLATFORM_ONLY: Expect = Expect::Deny(Reason::PlatformOnly, "platform");
const SYSTEM_GROUP: Expect = Expect::Deny(Reason::SystemSubject, "platform principals");
/// A team change that would give someone a ClusterRole beyond the changer's own org mapping.
const BEYOND_YOUR_MAPPING: Expect = Expect::Deny(Reason::AdminLimit, "does not give your role");
const TEAM_TOO_LOW: Expect = Expect::Deny(Reason::TeamRoleTooLow, "owner");

/// One expectation per actor for a row of section 2; the group admin is held to `admin`.
#[derive(Clone, Copy)]
struct Roles {
    owner: Expect,
    admin: Expect,
    member: Expect,
    viewer: Expect,
    non_member: Expect,
    platform: Expect,
}

impl Roles {
    fn each(&self) -> [(Who, Expect); 7] {
        [
            (Who::Owner, self.owner),
            (Who::Admin, self.admin),
            (Who::GroupAdmin, self.admin),
            (Who::Member, self.member),
            (Who::Viewer, self.viewer),
            (Who::NonMember, self.non_member),
            (Who::Platform, self.platform),
        ]
    }
}

/// An [`Operation`] that owns its objects, so that cases can be built in a table.
enum Op {
    CreateMembership(MembershipSpec, Option<Found>),
    UpdateMembership(MembershipSpec, MembershipSpec),
    DeleteMembership(MembershipSpec),
    CreateInvite(InviteSpec),
    UpdateInvite(InviteSpec, InviteSpec),
    DeleteInvite(InviteSpec),
    CreateTeam(TeamSpec),
    UpdateTeam(TeamSpec, TeamSpec),
    DeleteTeam(TeamSpec),
    CreateOrganization(OrganizationSpec),
    UpdateOrganization(OrganizationSpec, OrganizationSpec),
    DeleteOrganization(OrganizationSpec),
}

/// What the webhook found for a redemption: the Invite and the code in its Secret.
struct Found {
    invite: Option<Invite>,
    code: Option<&'static str>,
}

impl Op {
    fn borrow(&self) -> Operation<'_> {
        match self {
            Op::CreateMembership(spec, found) => Operation::CreateMembership {
                spec,
                redemption: found.as_ref().map(|f| Redemption {
                    invite: f.invite.as_ref(),
                    code: f.code,
                }),
            },
            Op::UpdateMembership(old, new) => Operation::UpdateMembership { old, new },
            Op::DeleteMembership(spec) => Operation::DeleteMembership(spec),
            Op::CreateInvite(spec) => Operation::CreateInvite(spec),
            Op::UpdateInvite(old, new) => Operation::UpdateInvite { old, new },
            Op::DeleteInvite(spec) => Operation::DeleteInvite(spec),
            Op::CreateTeam(spec) => Operation::CreateTeam(spec),
            Op::UpdateTeam(old, new) => Operation::UpdateTeam { old, new },
            Op::DeleteTeam(spec) => Operation::DeleteTeam(spec),
            Op::CreateOrganization(spec) => Operation::CreateOrganization(spec),
            Op::UpdateOrganization(old, new) => Operation::UpdateOrganization { old, new },
            Op::DeleteOrganization(spec) => Operation::DeleteOrganization(spec),
        }
    }
}

/// A Membership spec that redeems an invite with `code`: the proof for its own user, as
/// `kubectl roster join` makes it.
fn redeeming(name: &str, role: OrgRole, invite: &str, code: &str) -> MembershipSpec {
    MembershipSpec {
        invite: Some(InviteRef {
            name: invite.into(),
            proof: Some(roster::rules::invite_code::proof(code, NS, invite, name)),
            tenant: None,
        }),
        ..user(name, role)
    }
}

/// `spec` with its role changed.
fn role(mut spec: MembershipSpec, role: OrgRole) -> MembershipSpec {
    spec.role = role;
    spec
}

/// `spec` changed by `f`.
fn changed<T: Clone>(spec: &T, f: impl FnOnce(&mut T)) -> T {
    let mut new = spec.clone();
    f(&mut new);
    new
}

struct Case {
    label: String,
    world: World,
    who: Who,
    op: Op,
    expect: Expect,
}

/// Collects cases; `run` decides them all and reports every failure by label.
#[derive(Default)]
struct Table {
    cases: Vec<Case>,
    /// The installation's config, when not the default one.
    config: Option<Config>,
}

impl Table {
    /// One request by one actor.
    fn case(&mut self, label: &str, world: &World, who: Who, op: Op, expect: Expect) {
        self.cases.push(Case {
            label: format!("{label} | {}", who.label()),
            world: world.clone(),
            who,
            op,
            expect,
        });
    }

    /// The same request by each actor of `roles`.
    fn row(&mut self, label: &str, world: &World, op: impl Fn() -> Op, roles: Roles) {
        for (who, expect) in roles.each() {
            self.case(label, world, who, op(), expect);
        }
    }

    /// Cases decided under another installation config.
    fn with_config(config: Config) -> Table {
        Table {
            cases: Vec::new(),
            config: Some(config),
        }
    }

    fn run(self) {
        let config = self.config.clone().unwrap_or_default();
        let total = self.cases.len();
        let mut failures = Vec::new();
        for case in &self.cases {
            let actor = case.who.actor(&config);
            let decision = authorize(
                &case.world.index(),
                &config,
                &actor,
                &case.op.borrow(),
                &case.world.ctx,
            );
            if let Err(why) = check(case.expect, &decision) {
                failures.push(format!(
                    "{}\n    expected {:?}: {why}\n    got {decision:?}",
                    case.label, case.expect
                ));
            }
        }
        eprintln!("{total} cases");
        assert!(
            failures.is_empty(),
            "{} of {total} cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// Words of a message that tell the user what to do next or whom to ask.
const GUIDANCE: &[&str] = &[
    "ask",
    "set ",
    "first",
    "need",
    "only",
    "wait",
    "choose",
    "instead",
    "revoke",
    "make ",
    "must",
    "required",
    "check",
    "try again",
];

fn check(expect: Expect, d: &Decision) -> Result<(), String> {
    match (expect, &d.denial) {
        (Expect::Allow, None) if d.warnings.is_empty() => Ok(()),
        (Expect::Allow, None) => Err("unexpected warnings".into()),
        (Expect::Warn(text), None) => {
            if d.warnings.iter().any(|w| w.contains(text)) {
                Ok(())
            } else {
                Err(format!("no warning mentions {text:?}"))
            }
        }
        (Expect::Deny(reason, text), Some(denial)) => {
            let m = &denial.message;
            if denial.reason != reason {
                Err(format!("denied for {:?} instead", denial.reason))
            } else if m.trim().len() < 20 {
                Err("the message is empty or too short to help".into())
            } else if !GUIDANCE.iter().any(|g| m.contains(g)) {
                Err("the message does not say what to do".into())
            } else if !m.contains(text) {
                Err(format!("the message does not mention {text:?}"))
            } else {
                Ok(())
            }
        }
        (_, Some(_)) => Err("denied".into()),
        (Expect::Deny(..), None) => Err("allowed".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Section 2, row by row.
// ---------------------------------------------------------------------------------------------

#[test]
fn create_a_membership_for_someone_else() {
    let w = World::acme();
    let mut t = Table::default();
    for r in OrgRole::ALL {
        let staff = r <= OrgRole::Member;
        t.row(
            &format!("create Membership for {BEA} as {r}"),
            &w,
            || Op::CreateMembership(user(BEA, r), None),
            Roles {
                owner: ALLOW,
                admin: if staff { ALLOW } else { NEEDS_OWNER },
                member: TOO_LOW,
                viewer: TOO_LOW,
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
        t.row(
            &format!("create Membership for group acme:ops as {r}"),
            &w,
            || Op::CreateMembership(group("acme:ops", r), None),
            Roles {
                owner: ALLOW,
                admin: if staff { ALLOW } else { NEEDS_OWNER },
                member: TOO_LOW,
                viewer: TOO_LOW,
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
    }
    // spec.invite is for redeeming one's own invite, even for those who may add members.
    let w = w.invite(invite(
        "welcome-bea",
        invite_spec(Some(BEA), OrgRole::Member),
    ));
    let found = || {
        Some(Found {
            invite: Some(w.invites[0].clone()),
            code: Some(CODE),
        })
    };
    t.case(
        "create Membership for someone else with spec.invite",
        &w,
        Who::Owner,
        Op::CreateMembership(
            redeeming(BEA, OrgRole::Member, "welcome-bea", CODE),
            found(),
        ),
        Expect::Deny(Reason::InvalidInvite, "your own username"),
    );
    t.run();
}

#[test]
fn create_a_membership_for_yourself_with_an_invite() {
    let for_bea = invite("welcome-bea", invite_spec(Some(BEA), OrgRole::Member));
    let w = World::acme().invite(for_bea.clone());
    let mut t = Table::default();
    let found = |invite: &Invite| {
        Some(Found {
            invite: Some(invite.clone()),
            code: Some(CODE),
        })
    };
    let bea = Who::User(BEA);
    let redeem = |i: &Invite, r: OrgRole, code: &str| {
        Op::CreateMembership(redeeming(BEA, r, "welcome-bea", code), found(i))
    };
    let invalid = |hint| Expect::Deny(Reason::InvalidInvite, hint);

    t.case(
        "redeem: valid code",
        &w,
        bea,
        redeem(&for_bea, OrgRole::Member, CODE),
        ALLOW,
    );
    t.case(
        "redeem: code typed in lower case with spaces",
        &w,
        bea,
        redeem(&for_bea, OrgRole::Member, "abcd efgh jklm npqr"),
        ALLOW,
    );
    t.case(
        "redeem: wrong code",
        &w,
        bea,
        redeem(&for_bea, OrgRole::Member, "ABCD-EFGH-JKLM-NPQS"),
        invalid("spec.invite.proof"),
    );
    // An open admin invite (from before admin invites had to name someone) is never redeemed.
    let open_admin = invite("welcome-bea", invite_spec(None, OrgRole::Admin));
    t.case(
        "redeem: open admin invite",
        &World::acme().invite(open_admin.clone()),
        bea,
        redeem(&open_admin, OrgRole::Admin, CODE),
        invalid("admin invite"),
    );
    t.case(
        "redeem: code not generated yet",
        &w,
        bea,
        Op::CreateMembership(
            redeeming(BEA, OrgRole::Member, "welcome-bea", CODE),
            Some(Found {
                invite: Some(for_bea.clone()),
                code: None,
            }),
        ),
        invalid("try again"),
    );
    t.case(
        "redeem: no such Invite",
        &w,
        bea,
        Op::CreateMembership(
            redeeming(BEA, OrgRole::Member, "welcome-bee", CODE),
            Some(Found {
                invite: None,
                code: None,
            }),
        ),
        invalid("spec.invite.name"),
    );
    // Created an hour ago with the default TTL of 168h: it expires 167h from now.
    t.case(
        "redeem: one second before it expires",
        &w.clone()
            .at(now() + hours(167) - SignedDuration::from_secs(1)),
        bea,
        redeem(&for_bea, OrgRole::Member, CODE),
        ALLOW,
    );
    t.case(
        "redeem: expired (now = creation + defaultTTL)",
        &w.clone().at(now() + hours(167)),
        bea,
        redeem(&for_bea, OrgRole::Member, CODE),
        invalid("ask for a new one"),
    );
    let short = invite(
        "welcome-bea",
        InviteSpec {
            ttl: Some("30m".into()),
            ..invite_spec(Some(BEA), OrgRole::Member)
        },
    );
    t.case(
        "redeem: expired (spec.ttl 30m, created 1h ago)",
        &World::acme().invite(short.clone()),
        bea,
        redeem(&short, OrgRole::Member, CODE),
        invalid("ask for a new one"),
    );
    let capped = invite(
        "welcome-bea",
        InviteSpec {
            ttl: Some("10000h".into()),
            ..invite_spec(Some(BEA), OrgRole::Member)
        },
    );
    t.case(
        "redeem: expired (spec.ttl capped by maxTTL 720h)",
        &World::acme().invite(capped.clone()).at(now() + hours(720)),
        bea,
        redeem(&capped, OrgRole::Member, CODE),
        invalid("ask for a new one"),
    );
    let revoked = with_status(
        invite(
            "welcome-bea",
            InviteSpec {
                revoked: true,
                ..invite_spec(Some(BEA), OrgRole::Member)
            },
        ),
        InvitePhase::Revoked,
        0,
    );
    t.case(
        "redeem: revoked",
        &World::acme().invite(revoked.clone()),
        bea,
        redeem(&revoked, OrgRole::Member, CODE),
        invalid("ask for a new one"),
    );
    let used = with_status(for_bea.clone(), InvitePhase::Accepted, 1);
    t.case(
        "redeem: exhausted (1 of 1 uses)",
        &World::acme().invite(used.clone()),
        bea,
        redeem(&used, OrgRole::Member, CODE),
        invalid("uses are taken"),
    );
    let multi = |uses| {
        with_status(
            invite(
                "welcome-bea",
                InviteSpec {
                    max_uses: 5,
                    ..invite_spec(None, OrgRole::Member)
                },
            ),
            InvitePhase::Pending,
            uses,
        )
    };
    t.case(
        "redeem: multi-use open invite, 2 of 5 uses",
        &World::acme().invite(multi(2)),
        bea,
        redeem(&multi(2), OrgRole::Member, CODE),
        ALLOW,
    );
    t.case(
        "redeem: multi-use open invite, 5 of 5 uses (phase not updated yet)",
        &World::acme().invite(multi(5)),
        bea,
        redeem(&multi(5), OrgRole::Member, CODE),
        invalid("uses are taken"),
    );
    t.case(
        "redeem: invite for another e-mail",
        &w,
        Who::User(CARL),
        Op::CreateMembership(
            redeeming(CARL, OrgRole::Member, "welcome-bea", CODE),
            found(&for_bea),
        ),
        invalid(BEA),
    );
    let mixed_case = invite(
        "welcome-bea",
        invite_spec(Some("Bea@Acme.Example"), OrgRole::Member),
    );
    // Kubernetes usernames are case-sensitive: Bea@Acme.Example is another user.
    t.case(
        "redeem: invite e-mail differs only in case",
        &World::acme().invite(mixed_case.clone()),
        bea,
        redeem(&mixed_case, OrgRole::Member, CODE),
        invalid("it is for Bea@Acme.Example"),
    );
    for r in [OrgRole::Owner, OrgRole::Admin, OrgRole::Viewer] {
        t.case(
            &format!("redeem: member invite with spec.role {r}"),
            &w,
            bea,
            redeem(&for_bea, r, CODE),
            invalid("set spec.role to member"),
        );
    }
    let open = invite("welcome-all", invite_spec(None, OrgRole::Viewer));
    let redeem_open = |who: &str| {
        Op::CreateMembership(
            redeeming(who, OrgRole::Viewer, "welcome-all", CODE),
            found(&open),
        )
    };
    t.case(
        "redeem: open invite",
        &World::acme().invite(open.clone()),
        Who::User(CARL),
        redeem_open(CARL),
        ALLOW,
    );
    t.case(
        "redeem: open invite while allowOpenInvites is false",
        &World::acme()
            .invite(open.clone())
            .policy(|p| p.invites.allow_open_invites = false),
        Who::User(CARL),
        redeem_open(CARL),
        invalid("allowOpenInvites"),
    );
    t.case(
        "redeem: someone else's membership with a valid code",
        &w,
        Who::User(CARL),
        redeem(&for_bea, OrgRole::Member, CODE),
        invalid("your own username"),
    );
    t.case(
        "redeem: an open invite by someone who already has a Membership",
        &World::acme().invite(open.clone()),
        Who::Viewer,
        redeem_open(VIC),
        Expect::Deny(Reason::Duplicate, "change its role there"),
    );
    // Invariant 4 holds for platform principals too: they skip role checks, not invites.
    t.case(
        "redeem for bea: valid code",
        &w,
        Who::Platform,
        redeem(&for_bea, OrgRole::Member, CODE),
        ALLOW,
    );
    t.case(
        "redeem for bea: wrong code",
        &w,
        Who::Platform,
        redeem(&for_bea, OrgRole::Member, "ABCD-EFGH-JKLM-NPQS"),
        invalid("spec.invite.proof"),
    );
    t.case(
        "redeem for bea: exhausted",
        &World::acme().invite(used.clone()),
        Who::Platform,
        redeem(&used, OrgRole::Member, CODE),
        invalid("uses are taken"),
    );
    // Without an invite or a domain match, nobody creates their own Membership...
    t.case(
        "create own Membership without invite or selfJoin",
        &w,
        bea,
        Op::CreateMembership(user(BEA, OrgRole::Viewer), None),
        Expect::Deny(Reason::SelfJoinNotAllowed, "invite code"),
    );
    // ...not even an admin through a group, who would otherwise keep a personal Membership after
    // leaving the group (stricter reading: "for yourself" allows an invite or selfJoin only).
    for r in [OrgRole::Member, OrgRole::Viewer] {
        t.case(
            &format!("create own user Membership as {r}"),
            &w,
            Who::GroupAdmin,
            Op::CreateMembership(user(GARY, r), None),
            Expect::Deny(Reason::SelfJoinNotAllowed, "invite code"),
        );
    }
    t.run();
}

#[test]
fn create_a_membership_for_yourself_by_email_domain() {
    let join = |r: SelfJoinRole| {
        World::acme().policy(|p| {
            p.self_join = Some(SelfJoin {
                email_domains: vec!["acme.example".into(), "acme-labs.example".into()],
                role: r,
                identity_provider: None,
            })
        })
    };
    let w = join(SelfJoinRole::Member);
    let mut t = Table::default();
    let own = |name: &'static str, r: OrgRole| Op::CreateMembership(user(name, r), None);
    let not_allowed = |hint| Expect::Deny(Reason::SelfJoinNotAllowed, hint);

    t.case(
        "self-join: matching domain, policy role",
        &w,
        Who::User(SAM),
        own(SAM, OrgRole::Member),
        ALLOW,
    );
    t.case(
        "self-join: second listed domain",
        &w,
        Who::User("sam@acme-labs.example"),
        own("sam@acme-labs.example", OrgRole::Member),
        ALLOW,
    );
    for r in [OrgRole::Owner, OrgRole::Admin, OrgRole::Viewer] {
        t.case(
            &format!("self-join: matching domain, spec.role {r}"),
            &w,
            Who::User(SAM),
            own(SAM, r),
            not_allowed("set spec.role to member"),
        );
    }
    t.case(
        "self-join: policy role viewer",
        &join(SelfJoinRole::Viewer),
        Who::User(SAM),
        own(SAM, OrgRole::Viewer),
        ALLOW,
    );
    t.case(
        "self-join: policy role viewer, spec.role member",
        &join(SelfJoinRole::Viewer),
        Who::User(SAM),
        own(SAM, OrgRole::Member),
        not_allowed("set spec.role to viewer"),
    );
    // Only a well-formed address has a domain: nothing before or after the one `@` is smuggled in.
    for name in [
        "sam@elsewhere.example",
        "sam@eng.acme.example",
        "sam@acme.example.evil.example",
        "sam@notacme.example",
        "sam",
        "x@evil.example@acme.example",
        "@acme.example",
        "sam @acme.example",
        "sam@acme..example",
    ] {
        t.case(
            "self-join: domain not listed",
            &w,
            Who::User(name),
            own(name, OrgRole::Member),
            not_allowed("invite code"),
        );
    }
    t.case(
        "self-join: selfJoin not configured",
        &World::acme(),
        Who::User(SAM),
        own(SAM, OrgRole::Member),
        not_allowed("invite code"),
    );
    t.case(
        "self-join: a matching user adding someone else",
        &w,
        Who::User(SAM),
        own(BEA, OrgRole::Member),
        NOT_A_MEMBER,
    );
    t.case(
        "self-join: a member joining again",
        &w,
        Who::Member,
        own(MIA, OrgRole::Member),
        Expect::Deny(Reason::Duplicate, "change its role there"),
    );
    t.case(
        "self-join: all seats taken",
        &w.clone().policy(|p| p.max_members = Some(10)),
        Who::User(SAM),
        own(SAM, OrgRole::Member),
        Expect::Warn("maxMembers"),
    );
    t.run();
}

#[test]
fn change_a_role() {
    let w = World::acme();
    let mut t = Table::default();
    let change = |subject: &str, to: OrgRole| {
        let old = w.spec(subject);
        move || Op::UpdateMembership(old.clone(), role(old.clone(), to))
    };
    // member <-> viewer: owners and admins.
    for (subject, to) in [(MIA, OrgRole::Viewer), (VIC, OrgRole::Member)] {
        t.row(
            &format!("change {subject} to {to}"),
            &w,
            change(subject, to),
            Roles {
                owner: ALLOW,
                admin: ALLOW,
                member: TOO_LOW,
                viewer: TOO_LOW,
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
    }
    // Anything touching admin or owner: owners only. Includes the member promoting themselves
    // (mia -> admin) and the admin changing their own role (adam -> member, adam -> owner).
    for (subject, to) in [
        (MIA, OrgRole::Admin),
        (MIA, OrgRole::Owner),
        (VIC, OrgRole::Owner),
        (ADAM, OrgRole::Member),
        (ADAM, OrgRole::Owner),
        (ENG, OrgRole::Viewer),
        (OLGA, OrgRole::Admin),
        (OLGA, OrgRole::Viewer),
    ] {
        t.row(
            &format!("change {subject} to {to}"),
            &w,
            change(subject, to),
            Roles {
                owner: ALLOW,
                admin: NEEDS_OWNER,
                member: TOO_LOW,
                viewer: TOO_LOW,
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
    }
    // Your own profile fields are yours to change, whatever your role.
    for (who, subject) in [
        (Who::Member, MIA),
        (Who::Viewer, VIC),
        (Who::Admin, ADAM),
        (Who::Owner, ALICE),
    ] {
        let old = w.spec(subject);
        let new = changed(&old, |s| s.display_name = Some("New Name".into()));
        t.case(
            "change own spec.displayName",
            &w,
            who,
            Op::UpdateMembership(old, new),
            ALLOW,
        );
    }
    let old = w.spec(MIA);
    t.case(
        "change mia's spec.displayName",
        &w,
        Who::Viewer,
        Op::UpdateMembership(
            old.clone(),
            changed(&old, |s| s.display_name = Some("x".into())),
        ),
        TOO_LOW,
    );
    // An owner whose demotion to member is held by the controller is still an owner.
    let hal = "hal@acme.example";
    let mut held = active(user(hal, OrgRole::Member), hours(500));
    held.status.as_mut().unwrap().effective_role = Some(OrgRole::Owner);
    let w = World::acme().with(held);
    let old = w.spec(hal);
    t.case(
        "change held owner hal (spec member) to viewer",
        &w,
        Who::Admin,
        Op::UpdateMembership(old.clone(), role(old.clone(), OrgRole::Viewer)),
        NEEDS_OWNER,
    );
    t.case(
        "change held owner hal (spec member) to viewer",
        &w,
        Who::Owner,
        Op::UpdateMembership(old.clone(), role(old, OrgRole::Viewer)),
        ALLOW,
    );
    t.run();
}

#[test]
fn delete_a_membership() {
    let w = World::acme();
    let mut t = Table::default();
    let delete = |subject: &str| {
        let spec = w.spec(subject);
        move || Op::DeleteMembership(spec.clone())
    };
    for subject in [MIA, VIC] {
        t.row(
            &format!("delete {subject}"),
            &w,
            delete(subject),
            Roles {
                owner: ALLOW,
                admin: ALLOW,
                // A member or viewer may remove only themselves (below).
                member: if subject == MIA { ALLOW } else { TOO_LOW },
                viewer: if subject == VIC { ALLOW } else { TOO_LOW },
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
    }
    for subject in [OLGA, ENG] {
        t.row(
            &format!("delete {subject}"),
            &w,
            delete(subject),
            Roles {
                owner: ALLOW,
                admin: NEEDS_OWNER,
                member: TOO_LOW,
                viewer: TOO_LOW,
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
    }
    // adam leaving is allowed; gary (admin through a group) removing adam is not.
    t.case(
        &format!("delete {ADAM} (leaving)"),
        &w,
        Who::Admin,
        delete(ADAM)(),
        ALLOW,
    );
    for (who, expect) in [
        (Who::Owner, ALLOW),
        (Who::GroupAdmin, NEEDS_OWNER),
        (Who::Member, TOO_LOW),
        (Who::Viewer, TOO_LOW),
        (Who::NonMember, NOT_A_MEMBER),
        (Who::Platform, ALLOW),
    ] {
        t.case(&format!("delete {ADAM}"), &w, who, delete(ADAM)(), expect);
    }
    t.case(
        &format!("delete {ALICE} (owner leaving, another owner remains)"),
        &w,
        Who::Owner,
        delete(ALICE)(),
        ALLOW,
    );
    t.run();
}

#[test]
fn create_an_invite() {
    let w = World::acme();
    let mut t = Table::default();
    for r in [OrgRole::Admin, OrgRole::Member, OrgRole::Viewer] {
        t.row(
            &format!("create Invite as {r}"),
            &w,
            || Op::CreateInvite(invite_spec(Some(BEA), r)),
            Roles {
                owner: ALLOW,
                admin: if r == OrgRole::Admin {
                    NEEDS_OWNER
                } else {
                    ALLOW
                },
                member: TOO_LOW,
                viewer: TOO_LOW,
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
    }
    // At most one pending admin invite, for platform principals too.
    let admin_invite = invite("admin-bea", invite_spec(Some(BEA), OrgRole::Admin));
    let pending = World::acme().invite(admin_invite.clone());
    for who in [Who::Owner, Who::Platform] {
        t.case(
            "create admin Invite while one is pending",
            &pending,
            who,
            Op::CreateInvite(invite_spec(Some(CARL), OrgRole::Admin)),
            Expect::Deny(Reason::PendingAdminInvite, "revoke it"),
        );
        t.case(
            "create member Invite while an admin invite is pending",
            &pending,
            who,
            Op::CreateInvite(invite_spec(Some(CARL), OrgRole::Member)),
            ALLOW,
        );
        // Turning a member invite into an admin invite makes a second pending one, too.
        t.case(
            "change member Invite to admin while an admin invite is pending",
            &pending,
            who,
            Op::UpdateInvite(
                invite_spec(Some(CARL), OrgRole::Member),
                invite_spec(Some(CARL), OrgRole::Admin),
            ),
            Expect::Deny(Reason::PendingAdminInvite, "revoke it"),
        );
        t.case(
            "change the pending admin Invite's e-mail",
            &pending,
            who,
            Op::UpdateInvite(
                invite_spec(Some(BEA), OrgRole::Admin),
                invite_spec(Some(CARL), OrgRole::Admin),
            ),
            ALLOW,
        );
    }
    t.case(
        "change member Invite to admin while none is pending",
        &World::acme(),
        Who::Owner,
        Op::UpdateInvite(
            invite_spec(Some(CARL), OrgRole::Member),
            invite_spec(Some(CARL), OrgRole::Admin),
        ),
        ALLOW,
    );
    t.case(
        "change an Invite to an open admin invite",
        &World::acme(),
        Who::Owner,
        Op::UpdateInvite(
            invite_spec(None, OrgRole::Member),
            invite_spec(None, OrgRole::Admin),
        ),
        Expect::Deny(Reason::OpenAdminInvite, "spec.email is required"),
    );
    let revoked = invite(
        "admin-bea",
        InviteSpec {
            revoked: true,
            ..invite_spec(Some(BEA), OrgRole::Admin)
        },
    );
    for (state, old) in [
        ("revoked", with_status(revoked, InvitePhase::Revoked, 0)),
        (
            "accepted",
            with_status(admin_invite.clone(), InvitePhase::Accepted, 1),
        ),
        (
            "expired",
            with_status(admin_invite.clone(), InvitePhase::Expired, 0),
        ),
    ] {
        t.case(
            &format!("create admin Invite while another is {state}"),
            &World::acme().invite(old),
            Who::Owner,
            Op::CreateInvite(invite_spec(Some(CARL), OrgRole::Admin)),
            ALLOW,
        );
    }
    t.run();
}

#[test]
fn revoke_or_delete_an_invite() {
    let mut t = Table::default();
    for r in [OrgRole::Member, OrgRole::Viewer, OrgRole::Admin] {
        let spec = invite_spec(Some(BEA), r);
        let w = World::acme().invite(invite("for-bea", spec.clone()));
        let admin = if r == OrgRole::Admin {
            NEEDS_OWNER
        } else {
            ALLOW
        };
        let roles = || Roles {
            owner: ALLOW,
            admin,
            member: TOO_LOW,
            viewer: TOO_LOW,
            non_member: NOT_A_MEMBER,
            platform: ALLOW,
        };
        let revoked = changed(&spec, |s| s.revoked = true);
        t.row(
            &format!("revoke {r} Invite"),
            &w,
            || Op::UpdateInvite(spec.clone(), revoked.clone()),
            roles(),
        );
        t.row(
            &format!("delete {r} Invite"),
            &w,
            || Op::DeleteInvite(spec.clone()),
            roles(),
        );
    }
    t.run();
}

#[test]
fn create_or_delete_a_team() {
    let w = World::acme();
    let mut t = Table::default();
    let roles = || Roles {
        owner: ALLOW,
        admin: ALLOW,
        member: TOO_LOW,
        viewer: TOO_LOW,
        non_member: NOT_A_MEMBER,
        platform: ALLOW,
    };
    t.row("create Team", &w, || Op::CreateTeam(team()), roles());
    t.row("delete Team", &w, || Op::DeleteTeam(team()), roles());
    // A team a platform principal gave a system: group can still be deleted by an org admin:
    // deleting names nothing.
    let with_system_group = changed(&team(), |s| {
        s.members
            .push(tm_group("system:serviceaccounts:acme", TeamRole::Viewer))
    });
    t.row(
        "delete Team naming a system: group",
        &w,
        || Op::DeleteTeam(with_system_group.clone()),
        roles(),
    );
    t.run();
}

#[test]
fn change_a_team() {
    let w = World::acme();
    let mut t = Table::default();
    type Edit = fn(&mut TeamSpec);
    let old = team();
    let update = |f: Edit| {
        let new = changed(&old, f);
        let old = old.clone();
        move || Op::UpdateTeam(old.clone(), new.clone())
    };
    let team_owner = Who::User(TESS);
    let team_admin = Who::User(TAD);
    let moderator = Who::User(TIM);
    let team_member = Who::User(TOM);

    // Org admins and owners change anything within the org's namespaces.
    let org_staff = Roles {
        owner: ALLOW,
        admin: ALLOW,
        member: TEAM_TOO_LOW,
        viewer: TEAM_TOO_LOW,
        non_member: NOT_A_MEMBER,
        platform: ALLOW,
    };
    let edits: [(&str, Edit, Expect, Expect); 11] = [
        // (change, edit, for the team owner, for the team admin)
        (
            "description",
            |s| s.description = Some("Runs the fleet".into()),
            ALLOW,
            ALLOW,
        ),
        (
            "add mia as moderator",
            |s| s.members.push(tm_user(MIA, TeamRole::Moderator)),
            ALLOW,
            ALLOW,
        ),
        // Team admins map to `admin`, more than tess's org role (member) maps to.
        (
            "add mia as admin",
            |s| s.members.push(tm_user(MIA, TeamRole::Admin)),
            BEYOND_YOUR_MAPPING,
            TEAM_TOO_LOW,
        ),
        (
            "promote tom to moderator",
            |s| s.members[3].role = TeamRole::Moderator,
            ALLOW,
            ALLOW,
        ),
        (
            "promote tom to admin",
            |s| s.members[3].role = TeamRole::Admin,
            BEYOND_YOUR_MAPPING,
            TEAM_TOO_LOW,
        ),
        (
            "remove tim (moderator)",
            |s| _ = s.members.remove(2),
            ALLOW,
            ALLOW,
        ),
        (
            "demote tad (admin) to member",
            |s| s.members[1].role = TeamRole::Member,
            ALLOW,
            TEAM_TOO_LOW,
        ),
        (
            "transfer ownership from tess to tad",
            |s| {
                s.members[0].role = TeamRole::Admin;
                s.members[1].role = TeamRole::Owner;
            },
            ALLOW,
            TEAM_TOO_LOW,
        ),
        ("deactivate", |s| s.active = false, ALLOW, TEAM_TOO_LOW),
        (
            "access: add namespace acme-dev",
            |s| {
                s.access
                    .as_mut()
                    .unwrap()
                    .namespaces
                    .push("acme-dev".into())
            },
            TEAM_TOO_LOW,
            TEAM_TOO_LOW,
        ),
        (
            "access: moderators get admin",
            |s| s.access.as_mut().unwrap().cluster_roles.moderator = "admin".into(),
            TEAM_TOO_LOW,
            TEAM_TOO_LOW,
        ),
    ];
    for (what, edit, owner_expect, admin_expect) in edits {
        let label = format!("change Team: {what}");
        t.row(&label, &w, update(edit), org_staff);
        t.case(&label, &w, team_owner, update(edit)(), owner_expect);
        t.case(&label, &w, team_admin, update(edit)(), admin_expect);
        t.case(&label, &w, moderator, update(edit)(), TEAM_TOO_LOW);
        t.case(&label, &w, team_member, update(edit)(), TEAM_TOO_LOW);
    }
    // A team role held through a group counts, within the same bounds: sue (org member) is in
    // group acme:sre, team admin of this team; tom is not.
    const SUE: &str = "sue@acme.example";
    let sue = Who::InGroups(SUE, &["acme:sre"]);
    let sre_team = changed(&old, |s| {
        s.members.push(tm_group("acme:sre", TeamRole::Admin))
    });
    let w_sue = World::acme().with(active(user(SUE, OrgRole::Member), hours(5)));
    let sre_edit = |f: Edit| Op::UpdateTeam(sre_team.clone(), changed(&sre_team, f));
    t.case(
        "change Team: description, as team admin through group acme:sre",
        &w_sue,
        sue,
        sre_edit(|s| s.description = None),
        ALLOW,
    );
    t.case(
        "change Team: promote tom to admin, as team admin through group acme:sre",
        &w_sue,
        sue,
        sre_edit(|s| s.members[3].role = TeamRole::Admin),
        TEAM_TOO_LOW,
    );
    t.case(
        "change Team: description, as team member outside group acme:sre",
        &w_sue,
        team_member,
        sre_edit(|s| s.description = None),
        TEAM_TOO_LOW,
    );
    // A team owner whose org Membership is gone has no say over the team (stricter reading: team
    // roles count for effective org members only, as they grant nothing to others).
    t.case(
        "change Team: description, team owner without org Membership",
        &World::acme().without(TESS),
        team_owner,
        update(|s| s.description = None)(),
        NOT_A_MEMBER,
    );
    t.run();
}

#[test]
fn create_an_organization_or_change_its_access() {
    let mut t = Table::default();
    let everyone_but_platform = Roles {
        owner: PLATFORM_ONLY,
        admin: PLATFORM_ONLY,
        member: PLATFORM_ONLY,
        viewer: PLATFORM_ONLY,
        non_member: PLATFORM_ONLY,
        platform: ALLOW,
    };
    t.row(
        "create Organization in an empty namespace",
        &World::empty(),
        || Op::CreateOrganization(org_spec()),
        everyone_but_platform,
    );
    let w = World::acme();
    let old = org_spec();
    type Edit = fn(&mut OrganizationSpec);
    let access_edits: [(&str, Edit); 3] = [
        ("add namespace acme-staging", |s| {
            s.access.namespaces.push("acme-staging".into())
        }),
        ("remove namespace acme-dev", |s| {
            _ = s.access.namespaces.pop()
        }),
        ("members get admin", |s| {
            s.access.cluster_roles.member = "admin".into()
        }),
    ];
    for (what, edit) in access_edits {
        let new = changed(&old, edit);
        t.row(
            &format!("change Organization access: {what}"),
            &w,
            || Op::UpdateOrganization(old.clone(), new.clone()),
            everyone_but_platform,
        );
    }
    t.run();
}

#[test]
fn change_the_organization() {
    let w = World::acme();
    let mut t = Table::default();
    let old = org_spec();
    type Edit = fn(&mut OrganizationSpec);
    let profile_edits: [(&str, Edit); 2] = [
        ("displayName", |s| s.display_name = Some("Acme Labs".into())),
        ("profile", |s| {
            s.profile = Some(Profile {
                website: Some("https://acme.example".into()),
                ..Default::default()
            })
        }),
    ];
    for (what, edit) in profile_edits {
        let new = changed(&old, edit);
        t.row(
            &format!("change Organization {what}"),
            &w,
            || Op::UpdateOrganization(old.clone(), new.clone()),
            Roles {
                owner: ALLOW,
                admin: ALLOW,
                member: TOO_LOW,
                viewer: TOO_LOW,
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
    }
    let owner_edits: [(&str, Edit); 6] = [
        ("policy.maxMembers", |s| s.policy.max_members = Some(100)),
        ("policy.selfJoin", |s| {
            s.policy.self_join = Some(SelfJoin {
                email_domains: vec!["acme.example".into()],
                role: SelfJoinRole::Member,
                identity_provider: None,
            })
        }),
        ("billingAdmin", |s| s.billing_admin = Some(ALICE.into())),
        ("dataRegion", |s| s.data_region = DataRegion::EU),
        ("deletionProtection", |s| s.deletion_protection = true),
        ("displayName and policy together", |s| {
            s.display_name = Some("Acme Labs".into());
            s.policy.max_removals_per_hour = Some(5);
        }),
    ];
    for (what, edit) in owner_edits {
        let new = changed(&old, edit);
        t.row(
            &format!("change Organization {what}"),
            &w,
            || Op::UpdateOrganization(old.clone(), new.clone()),
            Roles {
                owner: ALLOW,
                admin: NEEDS_OWNER,
                member: TOO_LOW,
                viewer: TOO_LOW,
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
    }
    t.run();
}

#[test]
fn delete_the_organization() {
    let w = World::acme();
    let mut t = Table::default();
    t.row(
        "delete Organization",
        &w,
        || Op::DeleteOrganization(org_spec()),
        Roles {
            owner: ALLOW,
            admin: TOO_LOW,
            member: TOO_LOW,
            viewer: TOO_LOW,
            non_member: NOT_A_MEMBER,
            platform: ALLOW,
        },
    );
    let protected = changed(&org_spec(), |s| s.deletion_protection = true);
    let denied = Expect::Deny(Reason::DeletionProtection, "set it to false first");
    t.row(
        "delete Organization with deletionProtection",
        &w,
        || Op::DeleteOrganization(protected.clone()),
        Roles {
            owner: denied,
            admin: TOO_LOW,
            member: TOO_LOW,
            viewer: TOO_LOW,
            non_member: NOT_A_MEMBER,
            platform: denied,
        },
    );
    t.run();
}

#[test]
fn name_a_system_group() {
    let w = World::acme();
    let mut t = Table::default();
    let everyone_but_platform = || Roles {
        owner: SYSTEM_GROUP,
        admin: SYSTEM_GROUP,
        member: SYSTEM_GROUP,
        viewer: SYSTEM_GROUP,
        non_member: SYSTEM_GROUP,
        platform: ALLOW,
    };
    for (g, r) in [
        ("system:authenticated", OrgRole::Viewer),
        ("system:serviceaccounts:acme", OrgRole::Member),
        ("system:masters", OrgRole::Owner),
    ] {
        t.row(
            &format!("create Membership for group {g} as {r}"),
            &w,
            || Op::CreateMembership(group(g, r), None),
            everyone_but_platform(),
        );
    }
    for (u, r) in [
        ("system:anonymous", OrgRole::Viewer),
        ("system:serviceaccount:kube-system:default", OrgRole::Member),
        ("system:kube-controller-manager", OrgRole::Owner),
    ] {
        t.row(
            &format!("create Membership for user {u} as {r}"),
            &w,
            || Op::CreateMembership(user(u, r), None),
            everyone_but_platform(),
        );
    }
    // A role a platform principal gave a system: identity is theirs to change, too.
    let sa_viewer = user("system:serviceaccount:acme:ci", OrgRole::Viewer);
    t.row(
        "promote a system: user's Membership to owner",
        &w,
        || {
            Op::UpdateMembership(
                sa_viewer.clone(),
                MembershipSpec {
                    role: OrgRole::Owner,
                    ..sa_viewer.clone()
                },
            )
        },
        everyone_but_platform(),
    );
    // A system: user creating its own Membership (a service account with an invite code).
    let sa = "system:serviceaccount:acme:joiner";
    t.case(
        "create own Membership as a service account",
        &w,
        Who::User(sa),
        Op::CreateMembership(user(sa, OrgRole::Viewer), None),
        SYSTEM_GROUP,
    );
    let with_system_user = changed(&team(), |s| {
        s.members.push(tm_user(
            "system:serviceaccount:kube-system:default",
            TeamRole::Viewer,
        ))
    });
    t.row(
        "create Team naming user system:serviceaccount:kube-system:default",
        &w,
        || Op::CreateTeam(with_system_user.clone()),
        everyone_but_platform(),
    );
    let with_system = changed(&team(), |s| {
        s.members
            .push(tm_group("system:authenticated", TeamRole::Viewer))
    });
    t.row(
        "create Team naming group system:authenticated",
        &w,
        || Op::CreateTeam(with_system.clone()),
        everyone_but_platform(),
    );
    // Org staff and the team owner may change a Team, but not add a system: group to it...
    for who in [Who::Owner, Who::Admin, Who::User(TESS)] {
        t.case(
            "change Team: add group system:authenticated",
            &w,
            who,
            Op::UpdateTeam(team(), with_system.clone()),
            SYSTEM_GROUP,
        );
    }
    t.case(
        "change Team: add group system:authenticated",
        &w,
        Who::Platform,
        Op::UpdateTeam(team(), with_system.clone()),
        ALLOW,
    );
    // ...and may still edit a Team a platform principal gave one.
    for who in [Who::Admin, Who::User(TESS)] {
        t.case(
            "change Team that already names a system: group: description",
            &w,
            who,
            Op::UpdateTeam(
                with_system.clone(),
                changed(&with_system, |s| s.description = None),
            ),
            ALLOW,
        );
    }
    // Only the `system:` prefix is reserved.
    t.case(
        "create Membership for group systems-team",
        &w,
        Who::Owner,
        Op::CreateMembership(group("systems-team", OrgRole::Member), None),
        ALLOW,
    );
    t.run();
}

// ---------------------------------------------------------------------------------------------
// Section 3: the invariants the webhook checks, for platform principals too.
// ---------------------------------------------------------------------------------------------

const PRIVILEGED: [Who; 2] = [Who::Owner, Who::Platform];
const LAST_OWNER: Expect = Expect::Deny(Reason::LastOwner, "make another member owner first");

#[test]
fn the_last_owner_stays() {
    let mut t = Table::default();
    let single = World::acme().single_owner();
    let alice = single.spec(ALICE);
    for who in PRIVILEGED {
        t.case(
            "demote the last owner",
            &single,
            who,
            Op::UpdateMembership(alice.clone(), role(alice.clone(), OrgRole::Admin)),
            LAST_OWNER,
        );
        t.case(
            "remove the last owner",
            &single,
            who,
            Op::DeleteMembership(alice.clone()),
            LAST_OWNER,
        );
        t.case(
            "demote the last owner while the Organization is being deleted",
            &single.clone().org_deleting(),
            who,
            Op::UpdateMembership(alice.clone(), role(alice.clone(), OrgRole::Member)),
            LAST_OWNER,
        );
        // With a second owner, either may go.
        let two = World::acme();
        t.case(
            "demote one of two owners",
            &two,
            who,
            Op::UpdateMembership(two.spec(OLGA), role(two.spec(OLGA), OrgRole::Member)),
            ALLOW,
        );
        t.case(
            "remove one of two owners",
            &two,
            who,
            Op::DeleteMembership(two.spec(OLGA)),
            ALLOW,
        );
        // minOwners 2 with two owners: neither may go.
        let quorum = World::acme().policy(|p| p.min_owners = 2);
        t.case(
            "demote an owner at minOwners 2",
            &quorum,
            who,
            Op::UpdateMembership(quorum.spec(OLGA), role(quorum.spec(OLGA), OrgRole::Admin)),
            LAST_OWNER,
        );
        t.case(
            "remove an owner at minOwners 2",
            &quorum,
            who,
            Op::DeleteMembership(quorum.spec(OLGA)),
            LAST_OWNER,
        );
        // A group owner counts.
        let group_owner = single
            .clone()
            .with(active(group("acme:leads", OrgRole::Owner), hours(10)));
        t.case(
            "demote the last user owner while group acme:leads owns",
            &group_owner,
            who,
            Op::UpdateMembership(alice.clone(), role(alice.clone(), OrgRole::Admin)),
            ALLOW,
        );
        // The org's deletion removes everything, owners included.
        t.case(
            "remove the last owner while the Organization is being deleted",
            &single.clone().org_deleting(),
            who,
            Op::DeleteMembership(alice.clone()),
            ALLOW,
        );
    }
    // The namespace and garbage collectors delete contents too; they are no members.
    t.case(
        "remove the last owner while the Organization is being deleted",
        &single.clone().org_deleting(),
        Who::NonMember,
        Op::DeleteMembership(alice.clone()),
        ALLOW,
    );
    // Invariant 1 holds "while the org has effective members": the sole member may leave.
    let alone = World {
        memberships: vec![active(user(ALICE, OrgRole::Owner), hours(10))],
        ..World::acme()
    };
    t.case(
        "remove the last owner who is the only member",
        &alone,
        Who::Owner,
        Op::DeleteMembership(alice),
        ALLOW,
    );
    t.run();
}

#[test]
fn one_membership_per_subject() {
    let w = World::acme();
    let mut t = Table::default();
    let duplicate = Expect::Deny(Reason::Duplicate, "change its role there instead");
    for who in PRIVILEGED {
        t.case(
            "create a second Membership for mia",
            &w,
            who,
            Op::CreateMembership(user(MIA, OrgRole::Viewer), None),
            duplicate,
        );
        t.case(
            "create a second Membership for group acme:eng",
            &w,
            who,
            Op::CreateMembership(group(ENG, OrgRole::Member), None),
            duplicate,
        );
    }
    // A duplicate that is not (yet) effective still claims the subject.
    let mut pending = active(user(BEA, OrgRole::Member), hours(1));
    pending.status.as_mut().unwrap().phase = Some(MembershipPhase::Pending);
    t.case(
        "create a second Membership for bea (first one Pending)",
        &w.clone().with(pending),
        Who::Owner,
        Op::CreateMembership(user(BEA, OrgRole::Viewer), None),
        duplicate,
    );
    // A Membership on its way out does not.
    let mut leaving = active(user(BEA, OrgRole::Member), hours(1));
    leaving.metadata.deletion_timestamp = Some(ago(hours(0)));
    t.case(
        "create a Membership for bea while the old one is being deleted",
        &w.clone().with(leaving),
        Who::Owner,
        Op::CreateMembership(user(BEA, OrgRole::Viewer), None),
        ALLOW,
    );
    t.run();
}

#[test]
fn max_owners_is_a_target_not_a_wall() {
    let mut t = Table::default();
    let full = World::acme().policy(|p| p.max_owners = Some(2));
    let warn = Expect::Warn("maxOwners");
    for who in PRIVILEGED {
        t.case(
            "create a third owner at maxOwners 2",
            &full,
            who,
            Op::CreateMembership(user(BEA, OrgRole::Owner), None),
            warn,
        );
        t.case(
            "promote mia to third owner at maxOwners 2",
            &full,
            who,
            Op::UpdateMembership(full.spec(MIA), role(full.spec(MIA), OrgRole::Owner)),
            warn,
        );
        t.case(
            "create a third owner at maxOwners 3",
            &World::acme().policy(|p| p.max_owners = Some(3)),
            who,
            Op::CreateMembership(user(BEA, OrgRole::Owner), None),
            ALLOW,
        );
        t.case(
            "create an admin at maxOwners 2",
            &full,
            who,
            Op::CreateMembership(user(BEA, OrgRole::Admin), None),
            ALLOW,
        );
    }
    t.run();
}

#[test]
fn seats_full_is_admitted_with_a_warning() {
    let mut t = Table::default();
    // acme has ten effective Memberships.
    let full = World::acme().policy(|p| p.max_members = Some(10));
    for who in [Who::Owner, Who::Admin, Who::Platform] {
        t.case(
            "create a Membership with all 10 seats taken",
            &full,
            who,
            Op::CreateMembership(user(BEA, OrgRole::Member), None),
            Expect::Warn("seats"),
        );
        t.case(
            "create a Membership with 10 of 11 seats taken",
            &World::acme().policy(|p| p.max_members = Some(11)),
            who,
            Op::CreateMembership(user(BEA, OrgRole::Member), None),
            ALLOW,
        );
    }
    t.run();
}

#[test]
fn removals_per_hour_are_budgeted() {
    let mut t = Table::default();
    let budget = World::acme().policy(|p| p.max_removals_per_hour = Some(3));
    let over = Expect::Deny(Reason::RemovalBudget, "wait");
    for who in PRIVILEGED {
        let w = budget.clone().removals(3);
        t.case(
            "remove mia after 3 removals at maxRemovalsPerHour 3",
            &w,
            who,
            Op::DeleteMembership(w.spec(MIA)),
            over,
        );
        let w = budget.clone().removals(2);
        t.case(
            "remove mia after 2 removals at maxRemovalsPerHour 3",
            &w,
            who,
            Op::DeleteMembership(w.spec(MIA)),
            ALLOW,
        );
        let w = World::acme().policy(|p| p.max_removals_per_hour = Some(0));
        t.case(
            "remove mia at maxRemovalsPerHour 0",
            &w,
            who,
            Op::DeleteMembership(w.spec(MIA)),
            over,
        );
        let w = budget.clone().removals(50).org_deleting();
        t.case(
            "remove mia after 50 removals while the Organization is being deleted",
            &w,
            who,
            Op::DeleteMembership(w.spec(MIA)),
            ALLOW,
        );
    }
    let w = budget.removals(3);
    t.case(
        "mia leaves after 3 removals at maxRemovalsPerHour 3",
        &w,
        Who::Member,
        Op::DeleteMembership(w.spec(MIA)),
        over,
    );
    t.run();
}

#[test]
fn organization_access_stays_within_the_install_time_limits() {
    let mut t = Table::default();
    let with_access = |f: fn(&mut Access)| changed(&org_spec(), |s| f(&mut s.access));
    let excluded = Expect::Deny(Reason::ExcludedNamespace, "choose a workload namespace");
    let not_allowed = Expect::Deny(Reason::ClusterRoleNotAllowed, "ask your platform team");
    t.case(
        "create a second Organization in the namespace",
        &World::acme(),
        Who::Platform,
        Op::CreateOrganization(org_spec()),
        Expect::Deny(Reason::OrganizationExists, "acme"),
    );
    type Edit = fn(&mut Access);
    let escalations: [(&str, Edit, Expect); 5] = [
        (
            "access.namespaces names kube-system",
            |a| a.namespaces.push("kube-system".into()),
            excluded,
        ),
        (
            "access.namespaces names kube-node-lease",
            |a| a.namespaces = vec!["kube-node-lease".into()],
            excluded,
        ),
        (
            "access.clusterRoles.owner is cluster-admin",
            |a| a.cluster_roles.owner = "cluster-admin".into(),
            not_allowed,
        ),
        (
            "access.clusterRoles.viewer is system:aggregate-to-admin",
            |a| a.cluster_roles.viewer = "system:aggregate-to-admin".into(),
            not_allowed,
        ),
        (
            "access.clusterRoles.member is a custom role",
            |a| a.cluster_roles.member = "acme-deployer".into(),
            not_allowed,
        ),
    ];
    for (what, edit, expect) in escalations {
        t.case(
            &format!("create Organization: {what}"),
            &World::empty(),
            Who::Platform,
            Op::CreateOrganization(with_access(edit)),
            expect,
        );
        t.case(
            &format!("change Organization: {what}"),
            &World::acme(),
            Who::Platform,
            Op::UpdateOrganization(org_spec(), with_access(edit)),
            expect,
        );
    }
    t.case(
        "create Organization with allowed access",
        &World::empty(),
        Who::Platform,
        Op::CreateOrganization(with_access(|a| {
            a.cluster_roles.member = "view".into();
        })),
        ALLOW,
    );
    t.run();
}

#[test]
fn team_access_stays_within_the_organization() {
    let w = World::acme();
    let mut t = Table::default();
    let outside = Expect::Deny(Reason::NamespaceNotInOrganization, "acme-staging");
    let with_access = |f: fn(&mut TeamAccess)| changed(&team(), |s| f(s.access.as_mut().unwrap()));
    for who in PRIVILEGED {
        t.case(
            "create Team: access.namespaces names acme-staging",
            &w,
            who,
            Op::CreateTeam(with_access(|a| a.namespaces.push("acme-staging".into()))),
            outside,
        );
        t.case(
            "create Team: access.namespaces names kube-system",
            &w,
            who,
            Op::CreateTeam(with_access(|a| a.namespaces = vec!["kube-system".into()])),
            Expect::Deny(Reason::NamespaceNotInOrganization, "kube-system"),
        );
        t.case(
            "create Team: access.namespaces names the org namespaces",
            &w,
            who,
            Op::CreateTeam(with_access(|a| {
                a.namespaces = vec!["acme-prod".into(), "acme-dev".into()]
            })),
            ALLOW,
        );
        t.case(
            "create Team: access.clusterRoles.owner is cluster-admin",
            &w,
            who,
            Op::CreateTeam(with_access(|a| {
                a.cluster_roles.owner = "cluster-admin".into()
            })),
            Expect::Deny(Reason::ClusterRoleNotAllowed, "cluster-admin"),
        );
    }
    t.case(
        "change Team: access.namespaces adds acme-staging",
        &w,
        Who::Admin,
        Op::UpdateTeam(
            team(),
            with_access(|a| a.namespaces.push("acme-staging".into())),
        ),
        outside,
    );
    // Where the platform maps org admins to `edit`, an admin's team cannot hand out `admin`; an
    // owner's (mapped to `admin`) can, and an admin may then change the team's other fields.
    let mut edit_admins = w.clone();
    edit_admins
        .org
        .as_mut()
        .unwrap()
        .spec
        .access
        .cluster_roles
        .admin = "edit".into();
    let owner_grant = || with_access(|a| a.cluster_roles.owner = "admin".into());
    let edit_only = || {
        with_access(|a| {
            a.cluster_roles.owner = "edit".into();
            a.cluster_roles.admin = "edit".into();
        })
    };
    t.case(
        "create Team granting admin, as an admin mapped to edit",
        &edit_admins,
        Who::Admin,
        Op::CreateTeam(owner_grant()),
        Expect::Deny(Reason::AdminLimit, "does not give your role (admin)"),
    );
    t.case(
        "create Team granting edit, as an admin mapped to edit",
        &edit_admins,
        Who::Admin,
        Op::CreateTeam(edit_only()),
        ALLOW,
    );
    t.case(
        "create Team granting admin, as an owner mapped to admin",
        &edit_admins,
        Who::Owner,
        Op::CreateTeam(owner_grant()),
        ALLOW,
    );
    t.case(
        "change Team to grant admin, as an admin mapped to edit",
        &edit_admins,
        Who::Admin,
        Op::UpdateTeam(edit_only(), owner_grant()),
        Expect::Deny(Reason::AdminLimit, "does not give your role (admin)"),
    );
    t.case(
        "rename a Team an owner gave admin, as an admin mapped to edit",
        &edit_admins,
        Who::Admin,
        Op::UpdateTeam(owner_grant(), {
            let mut t = owner_grant();
            t.display_name = Some("Renamed".into());
            t
        }),
        ALLOW,
    );
    // Grants, not only names: moving someone (yourself included) into a team role that already
    // maps to admin gives admin just the same.
    t.case(
        "make yourself owner of a Team that grants its owner admin, as an admin mapped to edit",
        &edit_admins,
        Who::Admin,
        Op::UpdateTeam(owner_grant(), {
            let mut t = owner_grant();
            t.members[0].user = Some(ADAM.into());
            t
        }),
        Expect::Deny(
            Reason::AdminLimit,
            "give user adam@acme.example ClusterRole admin",
        ),
    );
    t.case(
        "move admin into the member slot, as an admin mapped to edit",
        &edit_admins,
        Who::Admin,
        Op::UpdateTeam(owner_grant(), {
            let mut t = owner_grant();
            t.access.as_mut().unwrap().cluster_roles.member = "admin".into();
            t
        }),
        Expect::Deny(Reason::AdminLimit, "ClusterRole admin"),
    );
    t.case(
        "reactivate a Team that grants admin, as an admin mapped to edit",
        &edit_admins,
        Who::Admin,
        Op::UpdateTeam(
            {
                let mut t = owner_grant();
                t.active = false;
                t
            },
            owner_grant(),
        ),
        Expect::Deny(Reason::AdminLimit, "ClusterRole admin"),
    );
    t.case(
        "deactivate a Team that grants admin, as an admin mapped to edit",
        &edit_admins,
        Who::Admin,
        Op::UpdateTeam(owner_grant(), {
            let mut t = owner_grant();
            t.active = false;
            t
        }),
        ALLOW,
    );
    t.run();
}

#[test]
fn invites_follow_the_invite_policy() {
    let mut t = Table::default();
    let closed = World::acme().policy(|p| p.invites.allow_open_invites = false);
    let long = |ttl: &str| InviteSpec {
        ttl: Some(ttl.into()),
        ..invite_spec(Some(BEA), OrgRole::Member)
    };
    for who in [Who::Owner, Who::Admin, Who::Platform] {
        t.case(
            "create open Invite while allowOpenInvites is false",
            &closed,
            who,
            Op::CreateInvite(invite_spec(None, OrgRole::Member)),
            Expect::Deny(Reason::OpenInvitesDisabled, "spec.email"),
        );
        if !matches!(who, Who::Admin) {
            t.case(
                "create open admin Invite",
                &World::acme(),
                who,
                Op::CreateInvite(invite_spec(None, OrgRole::Admin)),
                Expect::Deny(Reason::OpenAdminInvite, "only owners add admins"),
            );
            t.case(
                "create revoked open admin Invite",
                &World::acme(),
                who,
                Op::CreateInvite(InviteSpec {
                    revoked: true,
                    ..invite_spec(None, OrgRole::Admin)
                }),
                ALLOW,
            );
        }
        t.case(
            "create Invite with e-mail while allowOpenInvites is false",
            &closed,
            who,
            Op::CreateInvite(invite_spec(Some(BEA), OrgRole::Member)),
            ALLOW,
        );
        t.case(
            "create open Invite while allowOpenInvites is true",
            &World::acme(),
            who,
            Op::CreateInvite(invite_spec(None, OrgRole::Member)),
            ALLOW,
        );
        t.case(
            "create Invite with ttl 1000h above maxTTL 720h",
            &World::acme(),
            who,
            Op::CreateInvite(long("1000h")),
            Expect::Warn("maxTTL"),
        );
        t.case(
            "create Invite with ttl 720h = maxTTL",
            &World::acme(),
            who,
            Op::CreateInvite(long("720h")),
            ALLOW,
        );
        t.case(
            "create Invite with ttl 48h above maxTTL 24h",
            &World::acme().policy(|p| {
                p.invites.default_ttl = "24h".into();
                p.invites.max_ttl = "24h".into();
            }),
            who,
            Op::CreateInvite(long("48h")),
            Expect::Warn("maxTTL"),
        );
    }
    t.run();
}

#[test]
fn excluded_namespaces_are_never_org_namespaces() {
    use roster::rules::org_namespace;
    let config = Config::default();
    for kind in ["Organization", "Membership", "Invite", "Team"] {
        for ns in ["kube-system", "kube-public", "kube-node-lease"] {
            let denial = org_namespace(&config, ns, kind).expect_err(&format!("{kind} in {ns}"));
            assert_eq!(denial.reason, Reason::ExcludedNamespace, "{kind} in {ns}");
            assert!(
                denial.message.contains(ns) && denial.message.contains("never org namespaces"),
                "{kind} in {ns}: {}",
                denial.message
            );
            assert!(GUIDANCE.iter().any(|g| denial.message.contains(g)));
        }
        assert_eq!(org_namespace(&config, NS, kind), Ok(()), "{kind} in {NS}");
    }
}

#[test]
fn whoever_sets_access_must_be_allowed_to_bind_what_it_hands_out() {
    use roster::rules::bind_rights;
    use std::collections::BTreeSet;
    let pairs = |items: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect()
    };
    let all = pairs(&[
        ("acme-prod", "admin"),
        ("acme-prod", "edit"),
        ("acme-prod", "view"),
        ("acme-dev", "admin"),
        ("acme-dev", "edit"),
        ("acme-dev", "view"),
    ]);
    let access = org_spec().access;
    let added = changed(&access, |a| a.namespaces.push("victim".into()));
    let remapped = changed(&access, |a| a.cluster_roles.member = "admin".into());
    let refused = |r: Result<(), roster::rules::Denial>, text: &str| {
        let d = r.expect_err(text);
        assert_eq!(d.reason, Reason::BindNotAllowed, "{text}");
        assert!(
            d.message.contains(text) && d.message.contains("ask"),
            "{d:?}"
        );
    };
    // create: every namespace and every mapped ClusterRole
    assert_eq!(bind_rights(None, &access, &all), Ok(()));
    refused(bind_rights(None, &access, &BTreeSet::new()), "acme-");
    let mut no_view_in_dev = all.clone();
    no_view_in_dev.remove(&("acme-dev".to_string(), "view".to_string()));
    refused(
        bind_rights(None, &access, &no_view_in_dev),
        "view in namespace acme-dev",
    );
    // a namespace added: that namespace only
    refused(bind_rights(Some(&access), &added, &all), "victim");
    let victim = pairs(&[("victim", "admin"), ("victim", "edit"), ("victim", "view")]);
    assert_eq!(bind_rights(Some(&access), &added, &victim), Ok(()));
    // a namespace removed: nothing new is bound
    assert_eq!(bind_rights(Some(&added), &access, &BTreeSet::new()), Ok(()));
    // a changed mapping rebinds every namespace
    refused(
        bind_rights(Some(&access), &remapped, &BTreeSet::new()),
        "acme-",
    );
    assert_eq!(bind_rights(Some(&access), &remapped, &all), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Identity providers: invites and selfJoin bound to how a user signed in.
// ---------------------------------------------------------------------------------------------

/// The key the Entra authenticator puts the tenant under (`claimMappings.extra`).
const TID: &str = "entra.example/tid";
const TENANT: &str = "11111111-aaaa-4bbb-8ccc-000000000001";
const OTHER_TENANT: &str = "22222222-aaaa-4bbb-8ccc-000000000002";
/// Entra users of the invite's tenant, of another one, in both, and without any tenant claim.
const IN_TENANT: &[(&str, &[&str])] = &[(TID, &[TENANT])];
const IN_OTHER_TENANT: &[(&str, &[&str])] = &[(TID, &[OTHER_TENANT])];
const IN_BOTH: &[(&str, &[&str])] = &[(TID, &[OTHER_TENANT, TENANT])];
const UNDER_ANOTHER_KEY: &[(&str, &[&str])] = &[("okta.example/tid", &[TENANT])];
const NO_EXTRA: &[(&str, &[&str])] = &[];

/// An installation with Google (no tenants) and Microsoft Entra ID (tenant in `TID`).
fn with_providers() -> Config {
    Config {
        identity_providers: IdentityProviders::new([
            "name=google,usernamePrefix=google:".parse().unwrap(),
            format!("name=entra,usernamePrefix=entra:,tenantKey={TID}")
                .parse()
                .unwrap(),
        ])
        .unwrap(),
        ..Config::default()
    }
}

fn bound(name: &str, tenant: Option<&str>) -> Option<IdentityProviderRef> {
    Some(IdentityProviderRef {
        name: name.into(),
        tenant: tenant.map(Into::into),
    })
}

/// An invite for `email` (or open) bound to a provider.
fn bound_invite(
    email: Option<&str>,
    provider: Option<IdentityProviderRef>,
    role: OrgRole,
) -> InviteSpec {
    InviteSpec {
        identity_provider: provider,
        ..invite_spec(email, role)
    }
}

/// [`redeeming`] with `spec.invite.tenant` declared.
fn redeeming_in(name: &str, role: OrgRole, invite: &str, tenant: Option<&str>) -> MembershipSpec {
    let mut spec = redeeming(name, role, invite, CODE);
    spec.invite.as_mut().unwrap().tenant = tenant.map(Into::into);
    spec
}

#[test]
fn invites_bound_to_an_identity_provider() {
    let ada = "ada@acme.example";
    let invites = [
        invite(
            "ada-google",
            bound_invite(Some(ada), bound("google", None), OrgRole::Member),
        ),
        invite(
            "ada-entra",
            bound_invite(Some(ada), bound("entra", Some(TENANT)), OrgRole::Member),
        ),
        invite("ada-any", invite_spec(Some(ada), OrgRole::Member)),
        invite(
            "google-link",
            InviteSpec {
                max_uses: 5,
                ..bound_invite(None, bound("google", None), OrgRole::Viewer)
            },
        ),
        // Stored while the webhook was bypassed, or the platform removed the provider since.
        invite(
            "ada-okta",
            bound_invite(Some(ada), bound("okta", None), OrgRole::Member),
        ),
        invite(
            "ada-google-tenant",
            bound_invite(Some(ada), bound("google", Some(TENANT)), OrgRole::Member),
        ),
    ];
    let mut w = World::acme();
    for i in &invites {
        w = w.invite(i.clone());
    }
    let found = |name: &str| {
        Some(Found {
            invite: invites
                .iter()
                .find(|i| i.metadata.name.as_deref() == Some(name))
                .cloned(),
            code: Some(CODE),
        })
    };
    let redeem = |user: &str, invite: &str, tenant: Option<&str>, role: OrgRole| {
        Op::CreateMembership(redeeming_in(user, role, invite, tenant), found(invite))
    };
    let member = OrgRole::Member;
    let invalid = |hint| Expect::Deny(Reason::InvalidInvite, hint);
    let mut t = Table::with_config(with_providers());

    // Bound to google: the username google gives ada, and nobody else's.
    t.case(
        "google invite: google:ada",
        &w,
        Who::User("google:ada@acme.example"),
        redeem("google:ada@acme.example", "ada-google", None, member),
        ALLOW,
    );
    t.case(
        "google invite: entra:ada (valid code, other provider)",
        &w,
        Who::SignedIn("entra:ada@acme.example", IN_TENANT),
        redeem("entra:ada@acme.example", "ada-google", None, member),
        invalid(
            "invite acme/ada-google is bound to identity provider google; user entra:ada@acme.example did not sign in with it",
        ),
    );
    for (name, crafted) in [
        ("no prefix at all", "ada@acme.example"),
        ("prefix in another case", "Google:ada@acme.example"),
        (
            "google: inside an entra username",
            "entra:google:ada@acme.example",
        ),
        ("prefix without a colon", "googleada@acme.example"),
        (
            "another authenticator's prefix",
            "okta:google:ada@acme.example",
        ),
    ] {
        t.case(
            &format!("google invite: {name}"),
            &w,
            Who::User(crafted),
            redeem(crafted, "ada-google", None, member),
            invalid("is bound to identity provider google; user"),
        );
    }
    for (name, other) in [
        ("another address", "google:bob@acme.example"),
        ("the address in another case", "google:ADA@acme.example"),
        (
            "entra: inside a google username",
            "google:entra:ada@acme.example",
        ),
        ("a longer domain", "google:ada@acme.example.evil.example"),
    ] {
        t.case(
            &format!("google invite: {name}"),
            &w,
            Who::User(other),
            redeem(other, "ada-google", None, member),
            invalid("it is for ada@acme.example signed in with google (username google:ada@acme.example)"),
        );
    }
    t.case(
        "google invite: a tenant declared",
        &w,
        Who::User("google:ada@acme.example"),
        redeem(
            "google:ada@acme.example",
            "ada-google",
            Some(TENANT),
            member,
        ),
        invalid("names no tenant; spec.invite.tenant must not be set"),
    );

    // Bound to an entra tenant: the prefix, the declared tenant, and the sign-in's tenant.
    for (name, extra) in [("in the tenant", IN_TENANT), ("in two tenants", IN_BOTH)] {
        t.case(
            &format!("entra tenant invite: {name}"),
            &w,
            Who::SignedIn("entra:ada@acme.example", extra),
            redeem("entra:ada@acme.example", "ada-entra", Some(TENANT), member),
            ALLOW,
        );
    }
    for (name, extra, says) in [
        (
            "another tenant",
            IN_OTHER_TENANT,
            "holds 22222222-aaaa-4bbb-8ccc-000000000002",
        ),
        ("no tenant claim", NO_EXTRA, "holds nothing"),
        (
            "the tenant under another key",
            UNDER_ANOTHER_KEY,
            "holds nothing",
        ),
    ] {
        t.case(
            &format!("entra tenant invite: {name}"),
            &w,
            Who::SignedIn("entra:ada@acme.example", extra),
            redeem("entra:ada@acme.example", "ada-entra", Some(TENANT), member),
            invalid(says),
        );
    }
    t.case(
        "entra tenant invite: another tenant, declaring the invite's",
        &w,
        Who::SignedIn("entra:ada@acme.example", IN_OTHER_TENANT),
        redeem("entra:ada@acme.example", "ada-entra", Some(TENANT), member),
        invalid(
            "invite acme/ada-entra is bound to identity provider entra, tenant 11111111-aaaa-4bbb-8ccc-000000000001; user entra:ada@acme.example did not sign in to that tenant (userInfo.extra[entra.example/tid] holds 22222222",
        ),
    );
    t.case(
        "entra tenant invite: no tenant declared",
        &w,
        Who::SignedIn("entra:ada@acme.example", IN_TENANT),
        redeem("entra:ada@acme.example", "ada-entra", None, member),
        invalid("set it to 11111111-aaaa-4bbb-8ccc-000000000001 (kubectl roster join --tenant"),
    );
    t.case(
        "entra tenant invite: its own tenant declared instead",
        &w,
        Who::SignedIn("entra:ada@acme.example", IN_OTHER_TENANT),
        redeem(
            "entra:ada@acme.example",
            "ada-entra",
            Some(OTHER_TENANT),
            member,
        ),
        invalid("it is 22222222-aaaa-4bbb-8ccc-000000000002"),
    );
    t.case(
        "entra tenant invite: google:ada in the right tenant",
        &w,
        Who::SignedIn("google:ada@acme.example", IN_TENANT),
        redeem("google:ada@acme.example", "ada-entra", Some(TENANT), member),
        invalid("is bound to identity provider entra, tenant 11111111-aaaa-4bbb-8ccc-000000000001; user google:ada@acme.example did not sign in with it"),
    );
    // A platform principal redeeming for someone else is taken at its word for the tenant (it may
    // create that Membership without an invite), never for the provider or the declaration.
    t.case(
        "entra tenant invite: platform for entra:ada, tenant declared",
        &w,
        Who::Platform,
        redeem("entra:ada@acme.example", "ada-entra", Some(TENANT), member),
        ALLOW,
    );
    t.case(
        "entra tenant invite: platform for entra:ada, another tenant declared",
        &w,
        Who::Platform,
        redeem(
            "entra:ada@acme.example",
            "ada-entra",
            Some(OTHER_TENANT),
            member,
        ),
        invalid("set it to 11111111"),
    );
    t.case(
        "entra tenant invite: platform for google:ada",
        &w,
        Who::Platform,
        redeem("google:ada@acme.example", "ada-entra", Some(TENANT), member),
        invalid("did not sign in with it"),
    );

    // "Any": the address itself, or under any configured provider's prefix.
    for user in [ada, "google:ada@acme.example", "entra:ada@acme.example"] {
        t.case(
            "any-provider invite",
            &w,
            Who::User(user),
            redeem(user, "ada-any", None, member),
            ALLOW,
        );
    }
    for user in [
        "okta:ada@acme.example",
        "entra:google:ada@acme.example",
        "google:Ada@acme.example",
    ] {
        t.case(
            "any-provider invite: not the address under a configured prefix",
            &w,
            Who::User(user),
            redeem(user, "ada-any", None, member),
            invalid("it is for ada@acme.example, and you are"),
        );
    }

    // An open link bound to google: any google user, nobody else.
    t.case(
        "google link: google:carl",
        &w,
        Who::User("google:carl@elsewhere.example"),
        redeem(
            "google:carl@elsewhere.example",
            "google-link",
            None,
            OrgRole::Viewer,
        ),
        ALLOW,
    );
    for user in [
        "entra:carl@elsewhere.example",
        "carl@elsewhere.example",
        "google:",
    ] {
        t.case(
            "google link: not signed in with google",
            &w,
            Who::User(user),
            redeem(user, "google-link", None, OrgRole::Viewer),
            invalid("is bound to identity provider google; user"),
        );
    }

    // Bound to what this installation cannot check: refused, naming the field.
    t.case(
        "invite bound to an unconfigured provider",
        &w,
        Who::User("okta:ada@acme.example"),
        redeem("okta:ada@acme.example", "ada-okta", None, member),
        invalid("spec.identityProvider.name: identity provider okta is not configured"),
    );
    t.case(
        "invite bound to a tenant of a provider without tenantKey",
        &w,
        Who::User("google:ada@acme.example"),
        redeem(
            "google:ada@acme.example",
            "ada-google-tenant",
            Some(TENANT),
            member,
        ),
        invalid("spec.identityProvider.tenant: identity provider google has no tenantKey"),
    );
    t.run();

    // Without providers configured, a bound invite can be redeemed by nobody.
    let mut t = Table::default();
    t.case(
        "google invite, no providers configured",
        &w,
        Who::User("google:ada@acme.example"),
        redeem("google:ada@acme.example", "ada-google", None, member),
        invalid("none are configured"),
    );
    t.case(
        "any-provider invite, no providers configured: the address alone",
        &w,
        Who::User("google:ada@acme.example"),
        redeem("google:ada@acme.example", "ada-any", None, member),
        invalid("it is for ada@acme.example"),
    );
    t.run();
}

#[test]
fn create_an_invite_bound_to_an_identity_provider() {
    let w = World::acme();
    let ada = Some("ada@acme.example");
    let mut t = Table::with_config(with_providers());
    for r in [OrgRole::Member, OrgRole::Viewer] {
        t.row(
            &format!("create {r} Invite bound to google"),
            &w,
            || Op::CreateInvite(bound_invite(ada, bound("google", None), r)),
            Roles {
                owner: ALLOW,
                admin: ALLOW,
                member: TOO_LOW,
                viewer: TOO_LOW,
                non_member: NOT_A_MEMBER,
                platform: ALLOW,
            },
        );
    }
    let not_configured = |hint| Expect::Deny(Reason::IdentityProviderNotConfigured, hint);
    for who in [Who::Owner, Who::Admin, Who::Platform] {
        t.case(
            "create Invite bound to an entra tenant",
            &w,
            who,
            Op::CreateInvite(bound_invite(
                ada,
                bound("entra", Some(TENANT)),
                OrgRole::Member,
            )),
            ALLOW,
        );
        t.case(
            "create open link bound to google",
            &w,
            who,
            Op::CreateInvite(bound_invite(None, bound("google", None), OrgRole::Member)),
            ALLOW,
        );
        t.case(
            "create Invite bound to an unconfigured provider",
            &w,
            who,
            Op::CreateInvite(bound_invite(ada, bound("okta", None), OrgRole::Member)),
            not_configured(
                "spec.identityProvider.name: identity provider okta is not configured in this installation (configured: entra (entra:, tenant from entra.example/tid), google (google:))",
            ),
        );
        t.case(
            "create Invite bound to a tenant of a provider without tenants",
            &w,
            who,
            Op::CreateInvite(bound_invite(
                ada,
                bound("google", Some(TENANT)),
                OrgRole::Member,
            )),
            not_configured(
                "spec.identityProvider.tenant: identity provider google has no tenantKey",
            ),
        );
        t.case(
            "create Invite bound to google with the prefix in spec.email",
            &w,
            who,
            Op::CreateInvite(bound_invite(
                Some("google:ada@acme.example"),
                bound("google", None),
                OrgRole::Member,
            )),
            Expect::Deny(Reason::ProviderPrefixInEmail, "set it to ada@acme.example"),
        );
        // Unbound, a full username is what it always was: that username only.
        t.case(
            "create unbound Invite for a prefixed username",
            &w,
            who,
            Op::CreateInvite(invite_spec(
                Some("google:ada@acme.example"),
                OrgRole::Member,
            )),
            ALLOW,
        );
    }
    let okta = bound_invite(ada, bound("okta", None), OrgRole::Member);
    t.case(
        "bind an Invite to an unconfigured provider",
        &w,
        Who::Owner,
        Op::UpdateInvite(invite_spec(ada, OrgRole::Member), okta.clone()),
        not_configured("spec.identityProvider.name"),
    );
    // One bound to a provider the platform removed can still be revoked, changed or deleted.
    t.case(
        "revoke an Invite bound to an unconfigured provider",
        &w,
        Who::Owner,
        Op::UpdateInvite(okta.clone(), changed(&okta, |s| s.revoked = true)),
        ALLOW,
    );
    t.case(
        "raise maxUses of an Invite bound to an unconfigured provider",
        &w,
        Who::Owner,
        Op::UpdateInvite(okta.clone(), changed(&okta, |s| s.max_uses = 2)),
        ALLOW,
    );
    t.case(
        "delete an Invite bound to an unconfigured provider",
        &w,
        Who::Owner,
        Op::DeleteInvite(okta.clone()),
        ALLOW,
    );
    t.case(
        "create a revoked Invite bound to an unconfigured provider",
        &w,
        Who::Owner,
        Op::CreateInvite(changed(&okta, |s| s.revoked = true)),
        ALLOW,
    );
    t.run();

    let mut t = Table::default();
    t.case(
        "create Invite bound to google, no providers configured",
        &w,
        Who::Owner,
        Op::CreateInvite(bound_invite(ada, bound("google", None), OrgRole::Member)),
        not_configured("none are configured"),
    );
    t.run();
}

#[test]
fn self_join_bound_to_an_identity_provider() {
    let join = |provider: Option<IdentityProviderRef>| {
        World::acme().policy(|p| {
            p.self_join = Some(SelfJoin {
                email_domains: vec!["acme.example".into()],
                role: SelfJoinRole::Member,
                identity_provider: provider,
            })
        })
    };
    let google = join(bound("google", None));
    let entra = join(bound("entra", Some(TENANT)));
    let own = |name: &'static str| Op::CreateMembership(user(name, OrgRole::Member), None);
    let not_allowed = |hint| Expect::Deny(Reason::SelfJoinNotAllowed, hint);
    let mut t = Table::with_config(with_providers());

    for user in ["google:sam@acme.example", "google:sam@ACME.example"] {
        t.case(
            "self-join bound to google",
            &google,
            Who::User(user),
            own(user),
            ALLOW,
        );
    }
    for user in [
        "sam@acme.example",
        "entra:sam@acme.example",
        "okta:sam@acme.example",
        "Google:sam@acme.example",
        "entra:google:sam@acme.example",
        "googlesam@acme.example",
    ] {
        t.case(
            "self-join bound to google: another way in",
            &google,
            Who::SignedIn(user, IN_TENANT),
            own(user),
            not_allowed("binds its e-mail domains to identity provider google; user"),
        );
    }
    t.case(
        "self-join bound to google: entra:sam",
        &google,
        Who::User("entra:sam@acme.example"),
        own("entra:sam@acme.example"),
        not_allowed(
            "spec.policy.selfJoin binds its e-mail domains to identity provider google; user entra:sam@acme.example did not sign in with it",
        ),
    );
    for user in [
        "google:sam@elsewhere.example",
        "google:x@evil.example@acme.example",
        "google:sam@acme.example.evil.example",
    ] {
        t.case(
            "self-join bound to google: address not in the domains",
            &google,
            Who::User(user),
            own(user),
            not_allowed("invite code"),
        );
    }
    for (name, extra) in [("in the tenant", IN_TENANT), ("in two tenants", IN_BOTH)] {
        t.case(
            &format!("self-join bound to an entra tenant: {name}"),
            &entra,
            Who::SignedIn("entra:sam@acme.example", extra),
            own("entra:sam@acme.example"),
            ALLOW,
        );
    }
    for (name, extra) in [
        ("another tenant", IN_OTHER_TENANT),
        ("no tenant claim", NO_EXTRA),
        ("the tenant under another key", UNDER_ANOTHER_KEY),
    ] {
        t.case(
            &format!("self-join bound to an entra tenant: {name}"),
            &entra,
            Who::SignedIn("entra:sam@acme.example", extra),
            own("entra:sam@acme.example"),
            not_allowed(
                "binds its e-mail domains to identity provider entra, tenant 11111111-aaaa-4bbb-8ccc-000000000001; user entra:sam@acme.example did not sign in to that tenant",
            ),
        );
    }
    t.case(
        "self-join bound to an entra tenant: google:sam in the tenant",
        &entra,
        Who::SignedIn("google:sam@acme.example", IN_TENANT),
        own("google:sam@acme.example"),
        not_allowed("did not sign in with it"),
    );
    t.case(
        "self-join bound to an unconfigured provider",
        &join(bound("okta", None)),
        Who::User("okta:sam@acme.example"),
        own("okta:sam@acme.example"),
        not_allowed("identity provider okta, which this installation cannot check"),
    );
    // Unbound: any username whose address is in the domains, as before providers existed.
    for user in [
        "sam@acme.example",
        "google:sam@acme.example",
        "okta:sam@acme.example",
    ] {
        t.case(
            "self-join bound to no provider",
            &join(None),
            Who::User(user),
            own(user),
            ALLOW,
        );
    }

    // Binding a policy to a provider: only to one the installation configured.
    let not_configured = |hint| Expect::Deny(Reason::IdentityProviderNotConfigured, hint);
    let bind = |provider| {
        changed(&org_spec(), |s| {
            s.policy.self_join = Some(SelfJoin {
                email_domains: vec!["acme.example".into()],
                role: SelfJoinRole::Member,
                identity_provider: provider,
            })
        })
    };
    t.case(
        "create Organization with selfJoin bound to google",
        &World::empty(),
        Who::Platform,
        Op::CreateOrganization(bind(bound("google", None))),
        ALLOW,
    );
    t.case(
        "create Organization with selfJoin bound to an unconfigured provider",
        &World::empty(),
        Who::Platform,
        Op::CreateOrganization(bind(bound("okta", None))),
        not_configured("spec.policy.selfJoin.identityProvider.name: identity provider okta"),
    );
    t.case(
        "bind selfJoin to an entra tenant",
        &World::acme(),
        Who::Owner,
        Op::UpdateOrganization(org_spec(), bind(bound("entra", Some(TENANT)))),
        ALLOW,
    );
    for who in [Who::Owner, Who::Platform] {
        t.case(
            "bind selfJoin to a tenant of a provider without tenants",
            &World::acme(),
            who,
            Op::UpdateOrganization(org_spec(), bind(bound("google", Some(TENANT)))),
            not_configured("spec.policy.selfJoin.identityProvider.tenant"),
        );
    }
    // An Organization bound to a provider the platform removed can still be changed otherwise.
    let okta = bind(bound("okta", None));
    t.case(
        "change an Organization whose selfJoin is bound to an unconfigured provider",
        &World::acme(),
        Who::Owner,
        Op::UpdateOrganization(
            okta.clone(),
            changed(&okta, |s| s.policy.max_members = Some(50)),
        ),
        ALLOW,
    );
    t.run();
}
