//! The admission webhook against the real control plane: `roster run` serves `/validate` over TLS, the
//! API server calls it for the test's namespace only, and users are impersonated (`--as`,
//! `--as-group`). RBAC lets every authenticated user write roster objects there
//! (`support::allow_roster_rbac`), so what is refused is refused by roster, and each refusal must name
//! its rule (`[rule <Reason>]`).

mod support;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use roster::api::{Invite, InvitePhase, Membership, MembershipPhase, OrgRole, Organization};
use serde_json::{Value, json};
use support::{Operator, eventually, membership_json, object_json, redemption_json};

const WAIT: Duration = Duration::from_secs(30);

const OWNER: &str = "owner@example.com";
const ADMIN: &str = "admin@example.com";
const ADMIN2: &str = "admin2@example.com";
const MEMBER: &str = "member@example.com"; // also the owner of team `platform`
const MEMBER2: &str = "member2@example.com"; // also an admin of team `platform`
const VIEWER: &str = "viewer@example.com"; // also a member of team `platform`
const LEAVER: &str = "leaver@example.com"; // a member who leaves
const RISER: &str = "riser@example.com"; // a member the owner makes admin
const GARY: &str = "gary@example.com"; // admin only through group `example:ops`
const OPS: &str = "example:ops";
const NOBODY: &str = "nobody@example.com"; // no Membership at all
const BEA: &str = "bea@example.com"; // invited by e-mail (invite `for-bea`)
const LATE: &str = "late@example.com"; // invited by e-mail, but the invite expired (`short`)
const CARL: &str = "carl@example.com"; // an outsider who tries other people's codes
const DAN: &str = "dan@example.com"; // joins with the open invite
const SAM: &str = "sam@selfjoin.example"; // joins by e-mail domain

// ---------------------------------------------------------------------------------------------
// Objects and API access.

fn resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "Organization" => "organizations",
        "Membership" => "memberships",
        "Invite" => "invites",
        "Team" => "teams",
        other => panic!("not a roster kind: {other}"),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("roster.dev", "v1alpha1", kind),
        plural,
    )
}

fn api(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource(kind))
}

fn group_membership(name: &str, group: &str, role: &str) -> Value {
    object_json("Membership", name, json!({ "group": group, "role": role }))
}

fn invite(name: &str, email: Option<&str>, role: &str) -> Value {
    let mut spec = json!({ "role": role });
    if let Some(email) = email {
        spec["email"] = json!(email);
    }
    object_json("Invite", name, spec)
}

fn team(name: &str, members: Value) -> Value {
    object_json("Team", name, json!({ "members": members }))
}

fn yaml(value: &Value) -> String {
    serde_yaml::to_string(value).expect("YAML")
}

/// Applies several objects as the platform admin (server-side apply).
async fn apply_all(client: &Client, ns: &str, objects: &[Value]) {
    for o in objects {
        support::apply(client, ns, &yaml(o)).await;
    }
}

fn org(policy: Value, extra: Value) -> Value {
    let mut spec = json!({ "displayName": "Test Org", "policy": policy });
    if let Value::Object(extra) = extra {
        spec.as_object_mut().unwrap().extend(extra);
    }
    object_json("Organization", "org", spec)
}

/// A namespace with RBAC open to everyone, `roster run` with its webhook answering for it, and the
/// organization `org` with `memberships`, all Active.
async fn setup(test: &str, org: Value, memberships: &[Value]) -> (Client, String, Operator) {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, test).await;
    support::allow_roster_rbac(&client, &ns).await;
    let operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&client, &ns).await;
    apply_all(&client, &ns, &[org]).await;
    apply_all(&client, &ns, memberships).await;
    for m in memberships {
        wait_active(&client, &ns, m["metadata"]["name"].as_str().unwrap()).await;
    }
    (client, ns, operator)
}

async fn wait_active(client: &Client, ns: &str, name: &str) -> Membership {
    let api: Api<Membership> = Api::namespaced(client.clone(), ns);
    eventually(&format!("Membership {name} to be Active"), WAIT, || async {
        api.get_opt(name)
            .await
            .unwrap()
            .filter(|m| m.status.as_ref().and_then(|s| s.phase) == Some(MembershipPhase::Active))
    })
    .await
}

async fn wait_effective(client: &Client, ns: &str, name: &str, role: OrgRole) {
    let api: Api<Membership> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("Membership {name} to be effective as {role}"),
        WAIT,
        || async {
            let s = api.get(name).await.unwrap().status?;
            (s.phase == Some(MembershipPhase::Active) && s.effective_role == Some(role))
                .then_some(())
        },
    )
    .await
}

async fn wait_owners(client: &Client, ns: &str, owners: &[&str]) -> Organization {
    let api: Api<Organization> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("the Organization's status.owners to be {owners:?}"),
        WAIT,
        || async {
            let o = api.get("org").await.unwrap();
            (o.status.as_ref()?.owners == owners).then_some(o)
        },
    )
    .await
}

/// The webhook's message in an API error, if the webhook refused.
fn webhook_denial(e: &kube::Error) -> Option<&str> {
    match e {
        kube::Error::Api(s)
            if s.message
                .contains("admission webhook \"validate.roster.dev\"") =>
        {
            Some(&s.message)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The attack matrix.

/// Who makes a request.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// An impersonated user (in no group but `system:authenticated`).
    User(&'static str),
    /// An impersonated user in a group.
    InGroup(&'static str, &'static str),
    /// The test's admin credential (`system:masters`, a platform principal).
    Platform,
}

impl Who {
    fn key(self) -> String {
        format!("{self:?}")
    }

    async fn client(self) -> Client {
        match self {
            Who::User(u) => support::client_as(u, &[]).await,
            Who::InGroup(u, g) => support::client_as(u, &[g]).await,
            Who::Platform => support::admin_client().await,
        }
    }
}

/// A request.
#[derive(Clone, Debug)]
enum Op {
    Create(Value),
    /// A JSON merge patch.
    Patch(&'static str, String, Value),
    Delete(&'static str, String),
}

fn patch(kind: &'static str, name: &str, spec: Value) -> Op {
    Op::Patch(kind, name.to_string(), json!({ "spec": spec }))
}

fn delete(kind: &'static str, name: &str) -> Op {
    Op::Delete(kind, name.to_string())
}

impl Op {
    async fn send(&self, client: &Client, ns: &str, dry_run: bool) -> Result<(), kube::Error> {
        match self {
            Op::Create(o) => {
                let obj: DynamicObject = serde_json::from_value(o.clone()).unwrap();
                let kind = o["kind"].as_str().unwrap();
                let pp = PostParams {
                    dry_run,
                    ..Default::default()
                };
                api(client, ns, kind).create(&pp, &obj).await.map(|_| ())
            }
            Op::Patch(kind, name, p) => {
                let pp = PatchParams {
                    dry_run,
                    ..Default::default()
                };
                api(client, ns, kind)
                    .patch(name, &pp, &Patch::Merge(p))
                    .await
                    .map(|_| ())
            }
            Op::Delete(kind, name) => {
                let dp = DeleteParams {
                    dry_run,
                    ..Default::default()
                };
                api(client, ns, kind).delete(name, &dp).await.map(|_| ())
            }
        }
    }

    fn target(&self) -> (&str, String) {
        match self {
            Op::Create(o) => (
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            ),
            Op::Patch(kind, name, _) | Op::Delete(kind, name) => (kind, name.clone()),
        }
    }

    /// After an admitted real write: waits until the controller has reconciled it, which means the
    /// operator's caches (the webhook's too) hold the change, so later rows see it.
    async fn settle(&self, admin: &Client, ns: &str) {
        let (kind, name) = self.target();
        let api = api(admin, ns, kind);
        match self {
            Op::Delete(..) => {
                eventually(&format!("{kind} {name} to be gone"), WAIT, || async {
                    api.get_opt(&name).await.unwrap().is_none().then_some(())
                })
                .await
            }
            _ => {
                eventually(&format!("{kind} {name} to be reconciled"), WAIT, || async {
                    let o = api.get(&name).await.unwrap();
                    let observed = o.data["status"]["observedGeneration"].as_i64();
                    (observed.is_some() && observed == o.metadata.generation).then_some(())
                })
                .await
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Expect {
    Allowed,
    /// The rule, and optionally more text the message must contain.
    Denied(&'static str, Option<&'static str>),
}

struct Row {
    label: &'static str,
    who: Who,
    op: Op,
    dry_run: bool,
    expect: Expect,
}

fn denied(label: &'static str, who: Who, op: Op, rule: &'static str) -> Row {
    Row {
        label,
        who,
        op,
        dry_run: false,
        expect: Expect::Denied(rule, None),
    }
}

/// Admitted and really written: later rows see the change.
fn allowed(label: &'static str, who: Who, op: Op) -> Row {
    Row {
        label,
        who,
        op,
        dry_run: false,
        expect: Expect::Allowed,
    }
}

/// Admitted, as a server-side dry run: only the decision is the point.
fn allowed_dry(label: &'static str, who: Who, op: Op) -> Row {
    Row {
        dry_run: true,
        ..allowed(label, who, op)
    }
}

impl Row {
    /// The denial message must also contain `text`.
    fn saying(mut self, text: &'static str) -> Row {
        if let Expect::Denied(rule, _) = self.expect {
            self.expect = Expect::Denied(rule, Some(text));
        }
        self
    }
}

use Who::{InGroup, Platform, User};

/// Codes of the setup's invites, and their org namespace (redemptions prove a code for it).
struct Codes {
    ns: String,
    bea: String,
    late: String,
    open: String,
}

#[rustfmt::skip]
fn matrix(codes: &Codes) -> Vec<Row> {
    let platform_team = |owner: &str, admin: &str, member: &str| {
        json!([
            { "user": owner, "role": "owner" },
            { "user": admin, "role": "admin" },
            { "user": member, "role": "member" },
        ])
    };
    // The right code of `for-bea` with its last symbol changed.
    let wrong_code = {
        let mut c = codes.bea.clone();
        let last = c.pop().unwrap();
        c.push(if last == 'A' { 'B' } else { 'A' });
        c
    };
    vec![
        // Invites.
        denied("viewer creates an invite", User(VIEWER), Op::Create(invite("i1", None, "member")), "RoleTooLow")
            .saying("you are viewer"),
        denied("member creates an invite", User(MEMBER), Op::Create(invite("i2", Some("x@example.com"), "viewer")), "RoleTooLow")
            .saying("you are member"),
        denied("non-member creates an invite", User(NOBODY), Op::Create(invite("i3", None, "viewer")), "NotAMember"),
        denied("admin invites an admin", User(ADMIN), Op::Create(invite("i4", Some("x@example.com"), "admin")), "AdminLimit"),
        denied("group admin invites an admin", InGroup(GARY, OPS), Op::Create(invite("i5", Some("y@example.com"), "admin")), "AdminLimit"),
        allowed("admin invites a member", User(ADMIN), Op::Create(invite("member-invite", Some("m@example.com"), "member"))),
        allowed("owner invites an admin", User(OWNER), Op::Create(invite("admin-invite", Some("a@example.com"), "admin"))),
        denied("owner invites a second admin while one is pending", User(OWNER), Op::Create(invite("i6", Some("b@example.com"), "admin")), "PendingAdminInvite"),
        denied("member revokes an invite", User(MEMBER), patch("Invite", "member-invite", json!({ "revoked": true })), "RoleTooLow"),
        denied("admin revokes an admin invite", User(ADMIN), patch("Invite", "admin-invite", json!({ "revoked": true })), "AdminLimit"),
        denied("admin deletes an admin invite", User(ADMIN), delete("Invite", "admin-invite"), "AdminLimit"),
        allowed_dry("admin deletes a member invite", User(ADMIN), delete("Invite", "member-invite")),
        allowed_dry("owner revokes the admin invite", User(OWNER), patch("Invite", "admin-invite", json!({ "revoked": true }))),
        // Role changes.
        denied("member promotes themselves to admin", User(MEMBER), patch("Membership", "member", json!({ "role": "admin" })), "RoleTooLow"),
        denied("viewer promotes themselves to member", User(VIEWER), patch("Membership", "viewer", json!({ "role": "member" })), "RoleTooLow"),
        denied("member changes another member's role", User(MEMBER), patch("Membership", "viewer", json!({ "role": "member" })), "RoleTooLow"),
        denied("non-member changes a role", User(NOBODY), patch("Membership", "viewer", json!({ "role": "member" })), "NotAMember"),
        denied("admin promotes a member to admin", User(ADMIN), patch("Membership", "member2", json!({ "role": "admin" })), "AdminLimit"),
        denied("admin promotes themselves to owner", User(ADMIN), patch("Membership", "admin", json!({ "role": "owner" })), "AdminLimit"),
        denied("admin demotes another admin", User(ADMIN), patch("Membership", "admin2", json!({ "role": "member" })), "AdminLimit"),
        denied("admin demotes the owner", User(ADMIN), patch("Membership", "owner", json!({ "role": "member" })), "AdminLimit"),
        denied("group admin promotes a member to owner", InGroup(GARY, OPS), patch("Membership", "member", json!({ "role": "owner" })), "AdminLimit"),
        allowed_dry("admin turns a member into a viewer", User(ADMIN), patch("Membership", "member2", json!({ "role": "viewer" }))),
        allowed_dry("group admin turns a viewer into a member", InGroup(GARY, OPS), patch("Membership", "viewer", json!({ "role": "member" }))),
        allowed("owner promotes a member to admin", User(OWNER), patch("Membership", "riser", json!({ "role": "admin" }))),
        allowed_dry("the new admin adds a member", User(RISER), Op::Create(membership_json("by-riser", "r@example.com", "member"))),
        denied("the new admin adds an admin", User(RISER), Op::Create(membership_json("by-riser", "r@example.com", "admin")), "AdminLimit"),
        denied("the only owner demotes themselves", User(OWNER), patch("Membership", "owner", json!({ "role": "admin" })), "LastOwner"),
        allowed("member edits their own display name", User(MEMBER), patch("Membership", "member", json!({ "displayName": "Mem Ber" }))),
        denied("viewer edits someone else's display name", User(VIEWER), patch("Membership", "member", json!({ "displayName": "Hacked" })), "RoleTooLow"),
        // Adding members.
        allowed("admin adds a member", User(ADMIN), Op::Create(membership_json("new1", "new1@example.com", "member"))),
        allowed_dry("admin adds a viewer group", User(ADMIN), Op::Create(group_membership("readers", "example:readers", "viewer"))),
        denied("admin adds an admin", User(ADMIN), Op::Create(membership_json("new2", "new2@example.com", "admin")), "AdminLimit"),
        denied("admin adds an owner", User(ADMIN), Op::Create(membership_json("new3", "new3@example.com", "owner")), "AdminLimit"),
        denied("member adds a viewer", User(MEMBER), Op::Create(membership_json("new4", "new4@example.com", "viewer")), "RoleTooLow"),
        denied("non-member adds someone", User(NOBODY), Op::Create(membership_json("new5", "new5@example.com", "viewer")), "NotAMember"),
        denied("admin grants a role to system:masters", User(ADMIN), Op::Create(group_membership("masters", "system:masters", "viewer")), "SystemSubject"),
        denied("admin adds a second Membership for a member", User(ADMIN), Op::Create(membership_json("member-again", MEMBER, "viewer")), "Duplicate"),
        allowed_dry("owner adds an owner", User(OWNER), Op::Create(membership_json("new6", "new6@example.com", "owner"))),
        allowed_dry("platform admin adds an owner", Platform, Op::Create(membership_json("new7", "new7@example.com", "owner"))),
        // Removing members.
        denied("viewer removes a member", User(VIEWER), delete("Membership", "member"), "RoleTooLow"),
        denied("non-member removes a member", User(NOBODY), delete("Membership", "member"), "NotAMember"),
        denied("admin removes an admin", User(ADMIN), delete("Membership", "admin2"), "AdminLimit"),
        denied("admin removes the owner", User(ADMIN), delete("Membership", "owner"), "AdminLimit"),
        allowed_dry("admin removes a viewer", User(ADMIN), delete("Membership", "viewer")),
        allowed_dry("owner removes an admin", User(OWNER), delete("Membership", "admin2")),
        denied("owner removes the last owner (themselves)", User(OWNER), delete("Membership", "owner"), "LastOwner"),
        denied("platform admin removes the last owner", Platform, delete("Membership", "owner"), "LastOwner"),
        allowed("a member leaves", User(LEAVER), delete("Membership", "leaver")),
        // Joining.
        denied("joining without a code", User(BEA), Op::Create(membership_json("bea", BEA, "member")), "SelfJoinNotAllowed"),
        denied("joining with a wrong code", User(BEA), Op::Create(redemption_json("bea", &codes.ns, BEA, "member", "for-bea", &wrong_code)), "InvalidInvite")
            .saying("spec.invite.proof does not prove the code"),
        denied("joining with an expired code", User(LATE), Op::Create(redemption_json("late", &codes.ns, LATE, "member", "short", &codes.late)), "InvalidInvite")
            .saying("expired"),
        denied("joining with someone else's e-mail invite", User(CARL), Op::Create(redemption_json("carl", &codes.ns, CARL, "member", "for-bea", &codes.bea)), "InvalidInvite")
            .saying("it is for bea@example.com"),
        denied("joining with an invite that does not exist", User(CARL), Op::Create(redemption_json("carl", &codes.ns, CARL, "member", "no-such", &codes.bea)), "InvalidInvite")
            .saying("no such Invite"),
        denied("joining with a valid code for a higher role", User(BEA), Op::Create(redemption_json("bea", &codes.ns, BEA, "admin", "for-bea", &codes.bea)), "InvalidInvite")
            .saying("grants role member"),
        denied("redeeming a code for someone else", User(ADMIN), Op::Create(redemption_json("bea", &codes.ns, BEA, "member", "for-bea", &codes.bea)), "InvalidInvite"),
        denied("joining by e-mail domain with a higher role", User(SAM), Op::Create(membership_json("sam", SAM, "member")), "SelfJoinNotAllowed"),
        denied("joining by another e-mail domain", User(CARL), Op::Create(membership_json("carl", CARL, "viewer")), "SelfJoinNotAllowed"),
        allowed_dry("joining by e-mail domain", User(SAM), Op::Create(membership_json("sam", SAM, "viewer"))),
        allowed("joining with a valid code", User(BEA), Op::Create(redemption_json("bea", &codes.ns, BEA, "member", "for-bea", &codes.bea))),
        denied("the new member creates an invite", User(BEA), Op::Create(invite("i7", None, "viewer")), "RoleTooLow")
            .saying("you are member"),
        allowed("joining with the open invite", User(DAN), Op::Create(redemption_json("dan", &codes.ns, DAN, "viewer", "open", &codes.open))),
        // The Organization.
        denied("admin edits the org policy", User(ADMIN), patch("Organization", "org", json!({ "policy": { "maxMembers": 100 } })), "AdminLimit"),
        denied("admin turns on deletion protection", User(ADMIN), patch("Organization", "org", json!({ "deletionProtection": true })), "AdminLimit"),
        allowed("admin edits the display name", User(ADMIN), patch("Organization", "org", json!({ "displayName": "Renamed by an admin" }))),
        denied("member edits the display name", User(MEMBER), patch("Organization", "org", json!({ "displayName": "Mine" })), "RoleTooLow"),
        denied("non-member edits the org", User(NOBODY), patch("Organization", "org", json!({ "displayName": "Mine" })), "NotAMember"),
        allowed_dry("owner edits the org policy", User(OWNER), patch("Organization", "org", json!({ "policy": { "maxMembers": 100 } }))),
        denied("owner grants access to a namespace", User(OWNER), patch("Organization", "org", json!({ "access": { "namespaces": ["workloads"] } })), "PlatformOnly"),
        denied("owner raises minOwners above the owners there are", User(OWNER), patch("Organization", "org", json!({ "policy": { "minOwners": 2 } })), "OwnerQuorum"),
        denied("platform admin grants an excluded namespace", Platform, patch("Organization", "org", json!({ "access": { "namespaces": ["kube-system"] } })), "ExcludedNamespace"),
        denied("platform admin grants cluster-admin", Platform, patch("Organization", "org", json!({ "access": { "clusterRoles": { "member": "cluster-admin" } } })), "ClusterRoleNotAllowed"),
        denied("owner creates a second Organization", User(OWNER), Op::Create(object_json("Organization", "org2", json!({}))), "PlatformOnly"),
        denied("platform admin creates a second Organization", Platform, Op::Create(object_json("Organization", "org2", json!({}))), "OrganizationExists"),
        denied("admin deletes the Organization", User(ADMIN), delete("Organization", "org"), "RoleTooLow"),
        // Teams.
        denied("non-member edits a team", User(NOBODY), patch("Team", "platform", json!({ "description": "mine now" })), "NotAMember"),
        denied("team member edits the team", User(VIEWER), patch("Team", "platform", json!({ "description": "mine now" })), "TeamRoleTooLow"),
        denied("team admin makes someone team owner", User(MEMBER2), patch("Team", "platform", json!({ "members": platform_team(VIEWER, MEMBER2, MEMBER) })), "TeamRoleTooLow"),
        denied("team admin makes someone team admin", User(MEMBER2), patch("Team", "platform", json!({ "members": [
            { "user": MEMBER, "role": "owner" }, { "user": MEMBER2, "role": "admin" }, { "user": VIEWER, "role": "admin" },
        ] })), "TeamRoleTooLow"),
        denied("team admin deactivates the team", User(MEMBER2), patch("Team", "platform", json!({ "active": false })), "TeamRoleTooLow"),
        denied("team owner grants the team access", User(MEMBER), patch("Team", "platform", json!({ "access": { "namespaces": ["workloads"] } })), "TeamRoleTooLow"),
        allowed_dry("team admin edits the description", User(MEMBER2), patch("Team", "platform", json!({ "description": "the platform team" }))),
        allowed_dry("team admin adds a team member", User(MEMBER2), patch("Team", "platform", json!({ "members": [
            { "user": MEMBER, "role": "owner" }, { "user": MEMBER2, "role": "admin" }, { "user": VIEWER, "role": "member" },
            { "user": "new1@example.com", "role": "moderator" },
        ] }))),
        allowed_dry("org admin outside the team edits it", User(ADMIN), patch("Team", "platform", json!({ "active": false }))),
        denied("admin adds system:masters to a team", User(ADMIN), patch("Team", "platform", json!({ "members": [
            { "user": MEMBER, "role": "owner" }, { "group": "system:masters", "role": "member" },
        ] })), "SystemSubject"),
        denied("admin gives a team a namespace outside the org", User(ADMIN), patch("Team", "platform", json!({ "access": { "namespaces": ["elsewhere"] } })), "NamespaceNotInOrganization"),
        denied("admin gives a team cluster-admin", User(ADMIN), patch("Team", "platform", json!({ "access": { "clusterRoles": { "owner": "cluster-admin" } } })), "ClusterRoleNotAllowed"),
        denied("member creates a team", User(MEMBER), Op::Create(team("t1", json!([{ "user": MEMBER, "role": "owner" }]))), "RoleTooLow"),
        denied("viewer deletes a team", User(VIEWER), delete("Team", "platform"), "RoleTooLow"),
        allowed_dry("admin creates a team", User(ADMIN), Op::Create(team("t2", json!([{ "user": ADMIN, "role": "owner" }])))),
        allowed_dry("admin deletes a team", User(ADMIN), delete("Team", "platform")),
        allowed("team owner transfers ownership", User(MEMBER), patch("Team", "platform", json!({ "members": platform_team(MEMBER2, MEMBER, VIEWER) }))),
        denied("the former team owner takes ownership back", User(MEMBER), patch("Team", "platform", json!({ "members": platform_team(MEMBER, MEMBER2, VIEWER) })), "TeamRoleTooLow"),
        allowed_dry("the new team owner hands it back", User(MEMBER2), patch("Team", "platform", json!({ "members": platform_team(MEMBER, MEMBER2, VIEWER) }))),
    ]
}

#[tokio::test]
async fn attack_matrix_every_forbidden_request_is_denied_with_its_rule() {
    let memberships = [
        membership_json("owner", OWNER, "owner"),
        membership_json("admin", ADMIN, "admin"),
        membership_json("admin2", ADMIN2, "admin"),
        membership_json("member", MEMBER, "member"),
        membership_json("member2", MEMBER2, "member"),
        membership_json("viewer", VIEWER, "viewer"),
        membership_json("leaver", LEAVER, "member"),
        membership_json("riser", RISER, "member"),
        group_membership("ops", OPS, "admin"),
    ];
    let (admin, ns, operator) = setup(
        "webhook-matrix",
        org(
            json!({ "minOwners": 1, "selfJoin": { "emailDomains": ["selfjoin.example"], "role": "viewer" } }),
            json!({}),
        ),
        &memberships,
    )
    .await;
    let mut short = invite("short", Some(LATE), "member");
    short["spec"]["ttl"] = json!("2s");
    let mut open = invite("open", None, "viewer");
    open["spec"]["maxUses"] = json!(5);
    apply_all(
        &admin,
        &ns,
        &[
            invite("for-bea", Some(BEA), "member"),
            short,
            open,
            team(
                "platform",
                json!([
                    { "user": MEMBER, "role": "owner" },
                    { "user": MEMBER2, "role": "admin" },
                    { "user": VIEWER, "role": "member" },
                ]),
            ),
        ],
    )
    .await;
    let codes = Codes {
        ns: ns.clone(),
        bea: support::invite_code(&admin, &ns, "for-bea").await,
        late: support::invite_code(&admin, &ns, "short").await,
        open: support::invite_code(&admin, &ns, "open").await,
    };
    let invites: Api<Invite> = Api::namespaced(admin.clone(), &ns);
    eventually("invite short to expire", WAIT, || async {
        let s = invites.get("short").await.unwrap().status?;
        (s.phase == Some(InvitePhase::Expired)).then_some(())
    })
    .await;

    let rows = matrix(&codes);
    let mut clients: HashMap<String, Client> = HashMap::new();
    for who in rows.iter().map(|r| r.who).chain([User(ADMIN2)]) {
        if let Entry::Vacant(e) = clients.entry(who.key()) {
            e.insert(who.client().await);
        }
    }
    // The webhook decides from the operator's caches: wait until they hold every role and the codes.
    let probe = |who: Who, op: Op, expect: Option<&'static str>| {
        let client = clients[&who.key()].clone();
        let ns = ns.clone();
        async move {
            eventually(&format!("the webhook to see {who:?}"), WAIT, || {
                let (client, ns, op) = (client.clone(), ns.clone(), op.clone());
                async move {
                    match (op.send(&client, &ns, true).await, expect) {
                        (Ok(()), None) => Some(()),
                        (Err(e), Some(text)) => webhook_denial(&e)
                            .is_some_and(|m| m.contains(text))
                            .then_some(()),
                        _ => None,
                    }
                }
            })
            .await
        }
    };
    let admin_invite = || Op::Create(invite("probe", Some("probe@example.com"), "admin"));
    probe(User(OWNER), admin_invite(), None).await;
    for who in [User(ADMIN), User(ADMIN2), InGroup(GARY, OPS)] {
        probe(who, admin_invite(), Some("[rule AdminLimit]")).await;
    }
    for who in [MEMBER, MEMBER2, LEAVER, RISER] {
        probe(User(who), admin_invite(), Some("you are member")).await;
    }
    probe(User(VIEWER), admin_invite(), Some("you are viewer")).await;
    probe(
        User(BEA),
        Op::Create(redemption_json(
            "bea", &codes.ns, BEA, "member", "for-bea", &codes.bea,
        )),
        None,
    )
    .await;

    let mut failures = Vec::new();
    let (mut allowed_rows, mut denied_rows) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let client = &clients[&row.who.key()];
        let result = row.op.send(client, &ns, row.dry_run).await;
        let what = format!(
            "row {i} `{}` ({:?}{})",
            row.label,
            row.who,
            if row.dry_run { ", dry run" } else { "" }
        );
        match (&row.expect, result) {
            (Expect::Allowed, Ok(())) => {
                allowed_rows += 1;
                if !row.dry_run {
                    row.op.settle(&admin, &ns).await;
                }
            }
            (Expect::Allowed, Err(e)) => {
                failures.push(format!("{what}: expected admitted, got {e}"))
            }
            (Expect::Denied(rule, _), Ok(())) => failures.push(format!(
                "{what}: expected [rule {rule}], but it was admitted"
            )),
            (Expect::Denied(rule, text), Err(e)) => {
                denied_rows += 1;
                let rule_tag = format!("[rule {rule}]");
                match webhook_denial(&e) {
                    Some(m) if m.contains(&rule_tag) && text.is_none_or(|t| m.contains(t)) => {
                        assert!(m.contains("roster: "), "{what}: {m}");
                    }
                    _ => failures.push(format!(
                        "{what}: expected {rule_tag}{} from the webhook, got {e}",
                        text.map(|t| format!(" saying {t:?}")).unwrap_or_default()
                    )),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}\n--- operator log (tail) ---\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n"),
        tail(&operator.logs(), 40)
    );
    assert!(rows.len() >= 40 && allowed_rows >= 20 && denied_rows >= 40);

    // What the admitted rows did is what the organization now says.
    let ms: Api<Membership> = Api::namespaced(admin.clone(), &ns);
    assert!(ms.get_opt("leaver").await.unwrap().is_none());
    wait_effective(&admin, &ns, "riser", OrgRole::Admin).await;
    wait_effective(&admin, &ns, "bea", OrgRole::Member).await;
    wait_effective(&admin, &ns, "dan", OrgRole::Viewer).await;
    let owner = ms.get("owner").await.unwrap();
    assert_eq!(
        owner.spec.role,
        OrgRole::Owner,
        "the denials changed nothing"
    );
    for never in [
        "late",
        "carl",
        "sam",
        "new2",
        "new3",
        "masters",
        "member-again",
        "readers",
    ] {
        assert!(
            ms.get_opt(never).await.unwrap().is_none(),
            "{never} must not exist"
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Dry runs.

/// A file for kubectl's `-f`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_temp(name: &str, content: &str) -> TempFile {
    let path = std::env::temp_dir().join(format!("roster-webhook-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    TempFile(path)
}

#[tokio::test]
async fn a_server_dry_run_gives_the_same_answer_as_a_real_write_and_changes_nothing() {
    let (admin, ns, _operator) = setup(
        "webhook-dry-run",
        org(json!({ "minOwners": 1 }), json!({})),
        &[
            membership_json("owner", OWNER, "owner"),
            membership_json("admin", ADMIN, "admin"),
            membership_json("member", MEMBER, "member"),
        ],
    )
    .await;
    let ms: Api<Membership> = Api::namespaced(admin.clone(), &ns);
    let snapshot = || async {
        ms.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|m| (m.name_any(), m.resource_version(), m.spec))
            .collect::<Vec<_>>()
    };
    let before = snapshot().await;

    // An admin promotes a member to admin with `kubectl apply`.
    let promote = write_temp(
        &format!("{ns}-promote.yaml"),
        &yaml(&membership_json("member", MEMBER, "admin")),
    );
    let file = promote.0.to_str().unwrap();
    let as_admin = ["--as", ADMIN, "--as-group", "example:staff", "-n", &ns];
    let apply = |dry: bool| {
        let mut args: Vec<&str> = as_admin.to_vec();
        args.extend(["apply", "-f", file]);
        if dry {
            args.push("--dry-run=server");
        }
        support::kubectl(&args)
    };
    let (ok_dry, _, err_dry) = apply(true);
    assert!(!ok_dry, "the dry run is refused");
    assert!(err_dry.contains("[rule AdminLimit]"), "{err_dry}");
    assert_eq!(
        snapshot().await,
        before,
        "a refused dry run changes nothing"
    );
    let (ok_real, _, err_real) = apply(false);
    assert!(!ok_real, "the real apply is refused");
    assert_eq!(
        err_dry, err_real,
        "dry run and real apply give the same answer"
    );
    assert_eq!(snapshot().await, before, "a refused apply changes nothing");

    // The last owner deletes themselves with `kubectl delete`.
    let delete = |dry: bool| {
        let mut args = vec!["--as", OWNER, "-n", &ns, "delete", "membership", "owner"];
        if dry {
            args.push("--dry-run=server");
        }
        support::kubectl(&args)
    };
    let (ok_dry, _, err_dry) = delete(true);
    assert!(!ok_dry && err_dry.contains("[rule LastOwner]"), "{err_dry}");
    let (ok_real, _, err_real) = delete(false);
    assert!(!ok_real);
    assert_eq!(
        err_dry, err_real,
        "dry run and real delete give the same answer"
    );
    assert_eq!(snapshot().await, before);

    // A legal change as a dry run: admitted, and still nothing changes.
    let demote = write_temp(
        &format!("{ns}-demote.yaml"),
        &yaml(&membership_json("member", MEMBER, "viewer")),
    );
    let (ok, out, err) = support::kubectl(&[
        "--as",
        ADMIN,
        "-n",
        &ns,
        "apply",
        "-f",
        demote.0.to_str().unwrap(),
        "--dry-run=server",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("server dry run"), "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        snapshot().await,
        before,
        "an admitted dry run changes nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Ownership transfer in a single-owner organization.

fn kubectl_patch_role(who: &str, ns: &str, name: &str, role: &str) -> (bool, String, String) {
    let p = format!(r#"{{"spec":{{"role":"{role}"}}}}"#);
    support::kubectl(&[
        "--as",
        who,
        "-n",
        ns,
        "patch",
        "membership",
        name,
        "--type=merge",
        "-p",
        &p,
    ])
}

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

async fn single_owner_org(test: &str) -> (Client, String, Operator) {
    setup(
        test,
        org(json!({ "minOwners": 1, "maxOwners": 1 }), json!({})),
        &[
            membership_json("alice", ALICE, "owner"),
            membership_json("bob", BOB, "member"),
        ],
    )
    .await
}

#[tokio::test]
async fn ownership_transfer_promote_first_is_admitted_with_a_warning() {
    let (admin, ns, _operator) = single_owner_org("webhook-transfer-promote").await;
    wait_owners(&admin, &ns, &[ALICE]).await;

    let (ok, _, err) = kubectl_patch_role(ALICE, &ns, "bob", "owner");
    assert!(ok, "promoting first is admitted: {err}");
    assert!(
        err.contains("Warning:") && err.contains("maxOwners"),
        "kubectl shows the maxOwners warning: {err}"
    );
    wait_effective(&admin, &ns, "bob", OrgRole::Owner).await;

    let (ok, _, err) = kubectl_patch_role(ALICE, &ns, "alice", "admin");
    assert!(ok, "with two owners the old one may step down: {err}");
    wait_effective(&admin, &ns, "alice", OrgRole::Admin).await;
    let org = wait_owners(&admin, &ns, &[BOB]).await;
    assert_eq!(org.status.unwrap().admins, vec![ALICE]);
}

#[tokio::test]
async fn ownership_transfer_demote_first_is_refused_then_works_after_the_promotion() {
    let (admin, ns, _operator) = single_owner_org("webhook-transfer-demote").await;
    wait_owners(&admin, &ns, &[ALICE]).await;

    let (ok, _, err) = kubectl_patch_role(ALICE, &ns, "alice", "admin");
    assert!(!ok, "demoting the only owner first is refused");
    assert!(err.contains("[rule LastOwner]"), "{err}");
    let alice: Membership = Api::namespaced(admin.clone(), &ns)
        .get("alice")
        .await
        .unwrap();
    assert_eq!(alice.spec.role, OrgRole::Owner);

    let (ok, _, err) = kubectl_patch_role(ALICE, &ns, "bob", "owner");
    assert!(ok, "{err}");
    assert!(err.contains("maxOwners"), "{err}");
    wait_effective(&admin, &ns, "bob", OrgRole::Owner).await;

    let (ok, _, err) = kubectl_patch_role(ALICE, &ns, "alice", "admin");
    assert!(ok, "the retried demotion is admitted: {err}");
    wait_effective(&admin, &ns, "alice", OrgRole::Admin).await;
    wait_owners(&admin, &ns, &[BOB]).await;
}

// ---------------------------------------------------------------------------------------------
// The webhook down.

#[tokio::test]
async fn with_the_operator_down_roster_writes_fail_closed_and_nothing_else_is_blocked() {
    let (admin, ns, mut operator) = setup(
        "webhook-down",
        org(json!({ "minOwners": 1 }), json!({})),
        &[
            membership_json("owner", OWNER, "owner"),
            membership_json("member", MEMBER, "member"),
        ],
    )
    .await;
    operator.kill();

    let config = Api::<ValidatingWebhookConfiguration>::all(admin.clone())
        .get(&format!("roster-{ns}"))
        .await
        .expect("the ValidatingWebhookConfiguration stays");
    let hook = &config.webhooks.as_ref().unwrap()[0];
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));

    let owner = support::client_as(OWNER, &[]).await;
    let attempts: Vec<(&str, &Client, Op)> = vec![
        (
            "platform admin adds a member",
            &admin,
            Op::Create(membership_json("new", "new@example.com", "member")),
        ),
        (
            "owner adds a member",
            &owner,
            Op::Create(membership_json("new", "new@example.com", "member")),
        ),
        (
            "owner changes a role",
            &owner,
            patch("Membership", "member", json!({ "role": "viewer" })),
        ),
        (
            "owner removes a member",
            &owner,
            delete("Membership", "member"),
        ),
        (
            "platform admin creates an invite",
            &admin,
            Op::Create(invite("inv", None, "member")),
        ),
        (
            "platform admin edits the org",
            &admin,
            patch("Organization", "org", json!({ "displayName": "x" })),
        ),
    ];
    for (label, client, op) in attempts {
        let e = op
            .send(client, &ns, false)
            .await
            .expect_err(&format!("{label}: refused while the webhook is down"));
        let message = e.to_string();
        assert!(
            message.contains("failed calling webhook") && message.contains("validate.roster.dev"),
            "{label}: {message}"
        );
    }
    let ms: Api<Membership> = Api::namespaced(admin.clone(), &ns);
    let names: Vec<String> = ms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|m| m.name_any())
        .collect();
    assert_eq!(names, ["member", "owner"]);
    assert_eq!(ms.get("member").await.unwrap().spec.role, OrgRole::Member);

    // Everything else still works: a ConfigMap in the org namespace, the namespace itself, a new one.
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "still-works" } })).unwrap();
    Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .expect("a ConfigMap in the org namespace");
    let namespaces = Api::<Namespace>::all(admin.clone());
    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "roster.dev/touched": "yes" } } })),
        )
        .await
        .expect("labelling the org namespace");
    let fresh = format!("{ns}-new");
    let n: Namespace = serde_json::from_value(json!({ "metadata": { "name": fresh } })).unwrap();
    namespaces
        .create(&PostParams::default(), &n)
        .await
        .expect("creating a namespace");
    namespaces
        .delete(&fresh, &DeleteParams::default())
        .await
        .expect("deleting that namespace");
}

/// The conditions of namespace `ns` as (type, status, message).
async fn namespace_conditions(admin: &Client, ns: &str) -> Vec<(String, String, String)> {
    let status = Api::<Namespace>::all(admin.clone())
        .get(ns)
        .await
        .unwrap()
        .status;
    status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status, c.message.unwrap_or_default()))
        .collect()
}

/// With roster down, the namespace controller still deletes an org namespace's content: the API
/// server does not ask the webhook about Kubernetes' own controllers' deletions (matchConditions),
/// while people's writes still fail closed. Only the owner-protection finalizer waits for roster, which
/// releases it once it is back (docs/operations.md has the remedy for a roster that is gone for good).
#[tokio::test]
async fn with_the_operator_down_an_org_namespace_is_still_emptied_and_people_still_fail_closed() {
    let admin = support::admin_client().await;
    support::install_crds(&admin).await;
    let doomed = support::namespace(&admin, "webhook-down-doomed").await;
    let other = support::namespace(&admin, "webhook-down-other").await;
    let mut operator = support::operator_with_webhook(&[&doomed, &other]);
    for ns in [&doomed, &other] {
        support::allow_roster_rbac(&admin, ns).await;
        support::wait_for_webhook(&admin, ns).await;
        apply_all(
            &admin,
            ns,
            &[
                org(json!({ "minOwners": 1 }), json!({})),
                membership_json("owner", OWNER, "owner"),
                membership_json("member", MEMBER, "member"),
                invite("inv", None, "member"),
            ],
        )
        .await;
        wait_active(&admin, ns, "member").await;
        let memberships: Api<Membership> = Api::namespaced(admin.clone(), ns);
        eventually("the owner-protection finalizer", WAIT, || async {
            let owner = memberships.get("owner").await.ok()?;
            owner
                .finalizers()
                .contains(&roster::controller::OWNER_PROTECTION.to_string())
                .then_some(())
        })
        .await;
    }
    operator.kill();

    let namespaces = Api::<Namespace>::all(admin.clone());
    namespaces
        .delete(&doomed, &DeleteParams::default())
        .await
        .unwrap();
    let gone = |kind: &'static str, name: &'static str| {
        let api = api(&admin, &doomed, kind);
        async move { api.get_opt(name).await.unwrap().is_none() }
    };
    let held = eventually(
        "the namespace emptied but for the protected owner",
        Duration::from_secs(60),
        || async {
            let conditions = namespace_conditions(&admin, &doomed).await;
            let failed = conditions
                .iter()
                .any(|(t, s, _)| t == "NamespaceDeletionContentFailure" && s == "True");
            let held = conditions.into_iter().find(|(t, s, m)| {
                t == "NamespaceFinalizersRemaining"
                    && s == "True"
                    && m.contains(roster::controller::OWNER_PROTECTION)
            });
            let emptied = gone("Organization", "org").await
                && gone("Membership", "member").await
                && gone("Invite", "inv").await;
            (emptied && !failed).then_some(held?.2)
        },
    )
    .await;
    println!("held by roster's finalizer only: {held}");

    // A person's writes still need roster: in the other org, the owner's leave (the last owner, which
    // roster refuses) and a removal both fail closed.
    let owner = support::client_as(OWNER, &[]).await;
    for name in ["owner", "member"] {
        let e = delete("Membership", name)
            .send(&owner, &other, false)
            .await
            .expect_err("refused while the webhook is down");
        assert!(
            e.to_string().contains("failed calling webhook"),
            "{name}: {e}"
        );
    }

    // roster back: the owner protection yields to the namespace's deletion.
    let _back = support::operator_with_webhook(&[&doomed, &other]);
    eventually(
        "the namespace to be gone once roster is back",
        Duration::from_secs(90),
        || async {
            namespaces
                .get_opt(&doomed)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    let memberships: Api<Membership> = Api::namespaced(admin.clone(), &other);
    assert_eq!(
        memberships
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Guards against mass deletion.

#[tokio::test]
async fn the_third_removal_in_an_hour_is_denied_by_the_removal_budget() {
    let (admin, ns, _operator) = setup(
        "webhook-removal-budget",
        org(
            json!({ "minOwners": 1, "maxRemovalsPerHour": 2 }),
            json!({}),
        ),
        &[
            membership_json("owner", OWNER, "owner"),
            membership_json("m1", "m1@example.com", "member"),
            membership_json("m2", "m2@example.com", "member"),
            membership_json("m3", "m3@example.com", "member"),
        ],
    )
    .await;
    let owner = support::client_as(OWNER, &[]).await;
    // Dry runs never spend the budget.
    for _ in 0..3 {
        delete("Membership", "m1")
            .send(&owner, &ns, true)
            .await
            .expect("a dry-run removal");
    }
    for name in ["m1", "m2"] {
        delete("Membership", name)
            .send(&owner, &ns, false)
            .await
            .unwrap_or_else(|e| panic!("removing {name} is within the budget: {e}"));
    }
    for dry_run in [true, false] {
        let e = delete("Membership", "m3")
            .send(&owner, &ns, dry_run)
            .await
            .expect_err("the third removal is over the budget");
        let m = webhook_denial(&e).unwrap_or_else(|| panic!("denied by roster: {e}"));
        assert!(m.contains("[rule RemovalBudget]"), "{m}");
        assert!(m.contains("maxRemovalsPerHour"), "{m}");
    }
    // Platform principals are bound by it too.
    let e = delete("Membership", "m3")
        .send(&admin, &ns, false)
        .await
        .expect_err("the budget binds platform principals");
    assert!(
        webhook_denial(&e).is_some_and(|m| m.contains("[rule RemovalBudget]")),
        "{e}"
    );
    let ms: Api<Membership> = Api::namespaced(admin.clone(), &ns);
    assert!(ms.get_opt("m3").await.unwrap().is_some());
}

/// Owner references decide what the garbage collector deletes, and finalizers what may go: an org
/// admin who could point the Organization at an Invite they then delete would have the whole org
/// collected. Only platform principals change them.
#[tokio::test]
async fn only_platform_principals_change_owner_references_and_finalizers() {
    let (admin, ns, _operator) = setup(
        "webhook-reserved-metadata",
        org(json!({ "minOwners": 1 }), json!({})),
        &[
            membership_json("owner", OWNER, "owner"),
            membership_json("admin", ADMIN, "admin"),
        ],
    )
    .await;
    apply_all(
        &admin,
        &ns,
        &[invite("bait", Some("b@example.com"), "member")],
    )
    .await;
    let bait_uid = Api::<Invite>::namespaced(admin.clone(), &ns)
        .get("bait")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let owned_by_bait = json!({ "metadata": { "ownerReferences": [{
        "apiVersion": "roster.dev/v1alpha1", "kind": "Invite", "name": "bait", "uid": bait_uid
    }] } });
    let foreign_finalizer = json!({ "metadata": { "finalizers": ["example.com/hold"] } });
    let as_admin = support::client_as(ADMIN, &[]).await;
    let orgs: Api<Organization> = Api::namespaced(as_admin.clone(), &ns);
    let memberships: Api<Membership> = Api::namespaced(as_admin, &ns);
    for (what, result) in [
        (
            "an Organization owned by an Invite",
            orgs.patch(
                "org",
                &PatchParams::default(),
                &Patch::Merge(&owned_by_bait),
            )
            .await
            .map(drop),
        ),
        (
            "a finalizer on a Membership",
            memberships
                .patch(
                    "admin",
                    &PatchParams::default(),
                    &Patch::Merge(&foreign_finalizer),
                )
                .await
                .map(drop),
        ),
    ] {
        let e = result.expect_err(what);
        let m = webhook_denial(&e).unwrap_or_else(|| panic!("{what}: denied by roster: {e}"));
        assert!(
            m.contains("[rule PlatformOnly]") && m.contains("only platform principals"),
            "{m}"
        );
    }
    let org_now = Api::<Organization>::namespaced(admin.clone(), &ns)
        .get("org")
        .await
        .unwrap();
    assert!(
        !org_now.owner_references().iter().any(|r| r.uid == bait_uid),
        "nothing changed"
    );
    // Labels and annotations stay free, and a platform principal may change the reserved fields.
    let labelled = json!({ "metadata": { "labels": { "team": "red" } } });
    Api::<Membership>::namespaced(support::client_as(ADMIN, &[]).await, &ns)
        .patch("admin", &PatchParams::default(), &Patch::Merge(&labelled))
        .await
        .expect("labels are anyone's who may patch");
    Api::<Membership>::namespaced(admin.clone(), &ns)
        .patch(
            "admin",
            &PatchParams::default(),
            &Patch::Merge(&foreign_finalizer),
        )
        .await
        .expect("a platform principal may");
    Api::<Membership>::namespaced(admin, &ns)
        .patch(
            "admin",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .expect("and take it away again");
}

#[tokio::test]
async fn deletion_protection_refuses_to_delete_the_organization_even_for_platform_admins() {
    let (admin, ns, _operator) = setup(
        "webhook-deletion-protection",
        org(
            json!({ "minOwners": 1 }),
            json!({ "deletionProtection": true }),
        ),
        &[
            membership_json("owner", OWNER, "owner"),
            membership_json("member", MEMBER, "member"),
        ],
    )
    .await;
    let owner = support::client_as(OWNER, &[]).await;
    for (who, client) in [("platform admin", &admin), ("owner", &owner)] {
        let e = delete("Organization", "org")
            .send(client, &ns, false)
            .await
            .expect_err(&format!("{who}: deletion is refused"));
        assert!(
            webhook_denial(&e).is_some_and(|m| m.contains("[rule DeletionProtection]")),
            "{who}: {e}"
        );
    }
    let orgs: Api<Organization> = Api::namespaced(admin.clone(), &ns);
    let org = orgs.get("org").await.unwrap();
    assert!(org.metadata.deletion_timestamp.is_none());

    // The owner turns protection off, and then may delete it.
    patch(
        "Organization",
        "org",
        json!({ "deletionProtection": false }),
    )
    .send(&owner, &ns, false)
    .await
    .expect("the owner turns deletion protection off");
    delete("Organization", "org")
        .send(&owner, &ns, true)
        .await
        .expect("the owner may delete an unprotected Organization");
}

// ---------------------------------------------------------------------------------------------
// Status: what is in force, which the webhook decides from.

/// Times roster cannot read. The API server's `date-time` format refuses the first and the last but
/// accepts the two in between (an offset beyond a day, more than nine fractional digits).
const BAD_TIMES: &[&str] = &[
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00+99:00",
    "2026-01-01T00:00:00.0000000001Z",
    "not-a-time",
];

fn forged_condition(time: &str) -> Value {
    json!({ "type": "Ready", "status": "True", "reason": "Forged", "message": "", "lastTransitionTime": time })
}

async fn patch_status(
    client: &Client,
    ns: &str,
    name: &str,
    status: Value,
) -> Result<(), kube::Error> {
    api(client, ns, "Membership")
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map(|_| ())
}

/// Grants `user` writes of Memberships' status in `ns`, as a broad platform role or a misbehaving
/// tool might hold them (roster's own ClusterRoles grant no status writes).
async fn grant_status_writes(client: &Client, ns: &str, user: &str) {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "status-writer" },
        "rules": [{ "apiGroups": ["roster.dev"], "resources": ["memberships/status"],
                    "verbs": ["get", "update", "patch"] }]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "status-writer" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "status-writer" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&pp, &role)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&pp, &binding)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_member_who_may_write_status_cannot_forge_an_effective_role() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "webhook-status").await;
    support::install_cluster_roles(&client).await;
    let _operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&client, &ns).await;
    apply_all(&client, &ns, &[org(json!({ "minOwners": 1 }), json!({}))]).await;
    apply_all(
        &client,
        &ns,
        &[
            membership_json("owner", OWNER, "owner"),
            membership_json("mallory", MEMBER, "member"),
        ],
    )
    .await;
    wait_effective(&client, &ns, "mallory", OrgRole::Member).await;
    grant_status_writes(&client, &ns, MEMBER).await;
    let mallory = support::client_as(MEMBER, &[]).await;

    let forged = json!({ "phase": "Active", "effectiveRole": "owner" });
    let e = eventually("RBAC to let mallory write status", WAIT, || async {
        match patch_status(&mallory, &ns, "mallory", forged.clone()).await {
            Err(kube::Error::Api(s)) if s.code == 403 && !s.message.contains("roster") => None,
            other => Some(other),
        }
    })
    .await
    .expect_err("a forged effective role is refused");
    let m = webhook_denial(&e).unwrap_or_else(|| panic!("denied by roster: {e}"));
    assert!(m.contains("[rule StatusOwnedByRoster]"), "{m}");
    for time in BAD_TIMES {
        let status = json!({ "conditions": [forged_condition(time)] });
        let e = patch_status(&mallory, &ns, "mallory", status)
            .await
            .expect_err("an unreadable status is refused");
        assert!(
            webhook_denial(&e).is_some_and(|m| m.contains("[rule StatusOwnedByRoster]"))
                || matches!(&e, kube::Error::Api(s) if s.code == 422),
            "{time}: {e}"
        );
    }
    // Platform principals change spec, not status (the operator here is the admin; any other one
    // is refused).
    let platform = support::client_as("platform@example.com", &["system:masters"]).await;
    let e = patch_status(&platform, &ns, "mallory", forged.clone())
        .await
        .expect_err("a platform principal does not write status");
    assert!(
        webhook_denial(&e).is_some_and(|m| m.contains("[rule StatusOwnedByRoster]")),
        "{e}"
    );

    wait_effective(&client, &ns, "mallory", OrgRole::Member).await;
    patch("Membership", "mallory", json!({ "role": "owner" }))
        .send(&mallory, &ns, false)
        .await
        .expect_err("mallory cannot promote herself");
}

/// A status roster cannot read (written while no webhook reviewed it) freezes neither the caches nor
/// any organization: roster reads it as absent and writes its own.
#[tokio::test]
async fn an_unreadable_status_freezes_no_organization() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let bad = support::namespace(&client, "status-bad").await;
    let good = support::namespace(&client, "status-good").await;
    for ns in [&bad, &good] {
        apply_all(&client, ns, &[org(json!({ "minOwners": 1 }), json!({}))]).await;
        apply_all(&client, ns, &[membership_json("owner", OWNER, "owner")]).await;
    }
    // No webhook reviews these namespaces yet: find a time the API server's schema accepts.
    let mut accepted = None;
    for time in BAD_TIMES {
        assert!(
            serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>(json!(
                time
            ))
            .is_err()
        );
        let status = json!({ "phase": "Active", "effectiveRole": "owner", "joinedAt": time,
                             "conditions": [forged_condition(time)] });
        if patch_status(&client, &bad, "owner", status).await.is_ok() {
            accepted = Some(*time);
            break;
        }
    }
    let time = accepted.expect("the API server accepts one of the unreadable times");

    let _operator = support::operator_with_webhook(&[&bad, &good]);
    wait_effective(&client, &good, "owner", OrgRole::Owner).await;
    wait_owners(&client, &good, &[OWNER]).await;
    wait_owners(&client, &bad, &[OWNER]).await;
    eventually(
        "roster's own status to replace the unreadable one",
        WAIT,
        || async {
            let m = api(&client, &bad, "Membership").get("owner").await.unwrap();
            let status = &m.data["status"];
            let ready = status["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")?
                .clone();
            (ready["reason"] != "Forged" && ready["lastTransitionTime"] != time).then_some(())
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Where organizations may live and what they may hand out.

#[tokio::test]
async fn an_excluded_namespace_is_never_an_org_namespace() {
    let admin = support::admin_client().await;
    support::install_crds(&admin).await;
    let ns = support::namespace(&admin, "webhook-excluded-org-ns").await;
    let work = support::namespace(&admin, "webhook-excluded-org-work").await;
    // Stored while no webhook runs, as if it had been bypassed.
    apply_all(
        &admin,
        &ns,
        &[
            org(json!({}), json!({ "access": { "namespaces": [work] } })),
            membership_json("owner", OWNER, "owner"),
        ],
    )
    .await;
    let _operator = support::operator_with_webhook_and(&[&ns], &["--excluded-namespaces", &ns]);
    support::wait_for_webhook(&admin, &ns).await;

    let orgs: Api<Organization> = Api::namespaced(admin.clone(), &ns);
    let ready = eventually("the Organization to say why it is none", WAIT, || async {
        let o = orgs.get("org").await.unwrap();
        let c = o
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.status == "False").then_some(c)
    })
    .await;
    assert_eq!(ready.reason, "NamespaceExcluded", "{ready:?}");
    assert!(ready.message.contains(&ns), "{ready:?}");
    let m: Api<Membership> = Api::namespaced(admin.clone(), &ns);
    eventually("the owner's Membership to stay Pending", WAIT, || async {
        let s = m.get("owner").await.unwrap().status?;
        (s.phase == Some(MembershipPhase::Pending)).then_some(())
    })
    .await;
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::all(admin.clone());
    let bound = bindings
        .list(&kube::api::ListParams::default().labels(&format!("roster.dev/organization={ns}")))
        .await
        .unwrap();
    assert!(bound.items.is_empty(), "{:?}", bound.items);

    // Creates of every roster kind are refused there, for platform admins too; deletes are not.
    for o in [
        object_json("Organization", "again", json!({})),
        membership_json("member", MEMBER, "member"),
        invite("join", None, "member"),
        team("platform", json!([{ "user": OWNER, "role": "owner" }])),
    ] {
        let e = Op::Create(o.clone())
            .send(&admin, &ns, false)
            .await
            .expect_err("created in an excluded namespace");
        let m = webhook_denial(&e).unwrap_or_else(|| panic!("{e}"));
        assert!(m.contains("[rule ExcludedNamespace]"), "{m}");
        assert!(m.contains(&ns), "{m}");
    }
    delete("Membership", "owner")
        .send(&admin, &ns, false)
        .await
        .expect("deleting what slipped in");
}

/// A GitOps controller made a platform principal, with RBAC on its org namespace only.
const DEPLOYER: &str = "deployer@example.com";

#[tokio::test]
async fn a_platform_principal_hands_out_only_what_it_may_bind_itself() {
    let admin = support::admin_client().await;
    support::install_crds(&admin).await;
    let ns = support::namespace(&admin, "webhook-bind-org").await;
    let victim = support::namespace(&admin, "webhook-bind-victim").await;
    support::allow_roster_rbac(&admin, &ns).await;
    let _operator = support::operator_with_webhook_and(&[&ns], &["--platform-users", DEPLOYER]);
    support::wait_for_webhook(&admin, &ns).await;
    let deployer = support::client_as(DEPLOYER, &[]).await;
    let claiming = org(json!({}), json!({ "access": { "namespaces": [victim] } }));

    let e = Op::Create(claiming.clone())
        .send(&deployer, &ns, false)
        .await
        .expect_err("an Organization handing out a namespace the deployer has no rights in");
    let m = webhook_denial(&e).unwrap_or_else(|| panic!("{e}"));
    assert!(m.contains("[rule BindNotAllowed]"), "{m}");
    assert!(m.contains(&victim) && m.contains("admin"), "{m}");
    // The same through an update of spec.access.
    Op::Create(org(json!({}), json!({})))
        .send(&deployer, &ns, false)
        .await
        .expect("an Organization without workload namespaces");
    let e = patch(
        "Organization",
        "org",
        json!({ "access": { "namespaces": [victim] } }),
    )
    .send(&deployer, &ns, false)
    .await
    .expect_err("adding the namespace later");
    assert!(
        webhook_denial(&e).is_some_and(|m| m.contains("[rule BindNotAllowed]")),
        "{e}"
    );

    grant_bind(&admin, &victim, DEPLOYER, &["admin", "edit", "view"]).await;
    eventually("the update to be admitted", WAIT, || async {
        patch(
            "Organization",
            "org",
            json!({ "access": { "namespaces": [victim] } }),
        )
        .send(&deployer, &ns, false)
        .await
        .ok()
    })
    .await;
}

/// `bind` on `roles` in `ns` for `user`: a ClusterRole with resourceNames bound in `ns` only.
async fn grant_bind(admin: &Client, ns: &str, user: &str, roles: &[&str]) {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let name = format!("bind-{ns}");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": { "name": name },
        "rules": [{ "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                    "verbs": ["bind"], "resourceNames": roles }]
    }))
    .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .patch(
            &name,
            &PatchParams::apply("roster-tests").force(),
            &Patch::Apply(&role),
        )
        .await
        .expect("apply the bind ClusterRole");
    support::apply(
        admin,
        ns,
        &yaml(&json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
        })),
    )
    .await;
}
