//! Attacks on a running roster, as attackers make them: org members, admins, owners and outsiders
//! through the real API server, with only the RBAC roster grants (its `roster-org-*` roles and the
//! self-service role for every authenticated user), impersonated like `kubectl --as`. Each test is
//! one class of attack from the security review, with its neighbours (other kinds, other paths).
//! `docs/security.md` says who the attackers are and what defends each path.

mod support;

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use roster::api::{Invite, Membership, MembershipPhase, OrgRole, Organization};
use serde_json::{Value, json};
use support::{Operator, eventually, membership_json, redemption_json};

const WAIT: Duration = Duration::from_secs(30);

const OLIVE: &str = "olive@corp.example"; // owner
const ADAM: &str = "adam@corp.example"; // admin
const MIA: &str = "mia@corp.example"; // member
const VIC: &str = "vic@corp.example"; // viewer
const EVE: &str = "eve@elsewhere.example"; // outsider

/// One organization under attack: an owner, an admin, a member and a viewer, a workload namespace
/// where the org maps `admin` to `edit` (and `owner` to `admin`), and roster with its webhook.
struct Org {
    admin: Client,
    ns: String,
    work: String,
    _operator: Operator,
}

fn organization(work: &str, policy: Value) -> Value {
    json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "corp" },
        "spec": {
            "policy": policy,
            "access": { "namespaces": [work], "clusterRoles": { "owner": "admin", "admin": "edit", "member": "edit", "viewer": "view" } }
        }
    })
}

fn invite(name: &str, email: Option<&str>, role: &str, max_uses: i32) -> Value {
    let mut spec = json!({ "role": role, "maxUses": max_uses });
    if let Some(email) = email {
        spec["email"] = json!(email);
    }
    json!({ "apiVersion": "roster.dev/v1alpha1", "kind": "Invite", "metadata": { "name": name }, "spec": spec })
}

impl Org {
    /// The org with its four people Active and their RBAC in place.
    async fn new(test: &str, policy: Value) -> Org {
        let (admin, ns, work) = Org::namespaces(test).await;
        let operator = support::operator_with_webhook(&[&ns]);
        support::wait_for_webhook(&admin, &ns).await;
        let org = Org {
            admin,
            ns,
            work,
            _operator: operator,
        };
        org.platform_create(organization(&org.work, policy)).await;
        for (name, user, role) in [
            ("olive", OLIVE, "owner"),
            ("adam", ADAM, "admin"),
            ("mia", MIA, "member"),
            ("vic", VIC, "viewer"),
        ] {
            org.platform_create(membership_json(name, user, role)).await;
        }
        for name in ["olive", "adam", "mia", "vic"] {
            org.active(name).await;
        }
        // The webhook decides from its caches: wait until they know the admin.
        eventually("the webhook to know adam as admin", WAIT, || async {
            let probe = invite("probe", Some("p@corp.example"), "member", 1);
            org.dry_run_as(ADAM, probe).await.ok()
        })
        .await;
        org
    }

    /// An org namespace and a workload namespace with roster's RBAC, and nothing running.
    async fn namespaces(test: &str) -> (Client, String, String) {
        let admin = support::admin_client().await;
        support::install_crds(&admin).await;
        let ns = support::namespace(&admin, test).await;
        let work = support::namespace(&admin, &format!("{test}-work")).await;
        support::install_roster_rbac(&admin, &ns).await;
        (admin, ns, work)
    }

    async fn api(&self, client: &Client, kind: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("roster.dev", "v1alpha1", kind);
        let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
        Api::namespaced_with(client.clone(), &self.ns, &resource)
    }

    async fn create_as(&self, user: &str, object: Value) -> Result<(), String> {
        let client = support::client_as(user, &[]).await;
        support::create_raw(&client, &self.ns, object)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn dry_run_as(&self, user: &str, object: Value) -> Result<(), String> {
        let client = support::client_as(user, &[]).await;
        support::create_raw_dry_run(&client, &self.ns, object)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn platform_create(&self, object: Value) {
        let what = object["metadata"]["name"].to_string();
        support::create_raw(&self.admin, &self.ns, object)
            .await
            .unwrap_or_else(|e| panic!("the platform creates {what}: {e}"));
    }

    /// A JSON merge patch of `kind/name` as `user`.
    async fn patch_as(
        &self,
        user: &str,
        kind: &str,
        name: &str,
        patch: Value,
    ) -> Result<(), String> {
        let client = support::client_as(user, &[]).await;
        self.api(&client, kind)
            .await
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn active(&self, name: &str) -> Membership {
        let api: Api<Membership> = Api::namespaced(self.admin.clone(), &self.ns);
        eventually(&format!("Membership {name} to be Active"), WAIT, || async {
            api.get(name).await.ok().filter(|m| {
                m.status.as_ref().and_then(|s| s.phase) == Some(MembershipPhase::Active)
            })
        })
        .await
    }

    async fn phase(&self, name: &str, phase: MembershipPhase) -> Membership {
        support::membership_in_phase(&self.admin, &self.ns, name, phase, WAIT).await
    }

    /// What Kubernetes' RBAC lets `user` do, asked as the API server would.
    async fn can(
        &self,
        user: &str,
        groups: &[&str],
        verb: &str,
        group: &str,
        resource: &str,
        ns: &str,
    ) -> bool {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.into()),
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<SubjectAccessReview>::all(self.admin.clone())
            .create(&PostParams::default(), &review)
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.allowed)
    }

    async fn code(&self, invite: &str) -> String {
        support::invite_code(&self.admin, &self.ns, invite).await
    }
}

fn refused(result: Result<(), String>, rule: &str) -> String {
    match result {
        Ok(()) => panic!("admitted, but should be refused with {rule}"),
        Err(e) => {
            assert!(e.contains(rule), "refused, but not with {rule}: {e}");
            e
        }
    }
}

fn ready_reason<T: serde::Serialize>(object: &T) -> Option<String> {
    let v = serde_json::to_value(object).ok()?;
    let conditions = v["status"]["conditions"].as_array()?;
    let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
    Some(format!(
        "{}/{}",
        ready["status"].as_str()?,
        ready["reason"].as_str()?
    ))
}

/// Finding 1: a redeemed code stayed in the Membership, which every member and viewer reads, and
/// an outsider joined with it. Now a redemption carries a proof bound to the joiner's username.
#[tokio::test]
async fn what_a_viewer_reads_in_memberships_lets_nobody_else_join() {
    let org = Org::new("attack-codes", json!({ "minOwners": 1 })).await;
    org.create_as(ADAM, invite("link", None, "member", 5))
        .await
        .unwrap();
    let code = org.code("link").await;
    org.create_as(
        "bea@corp.example",
        redemption_json("bea", &org.ns, "bea@corp.example", "member", "link", &code),
    )
    .await
    .unwrap();
    org.active("bea").await;

    // The viewer reads every Membership, as roster's viewer role allows.
    let viewer = support::client_as(VIC, &[]).await;
    let seen = Api::<Membership>::namespaced(viewer, &org.ns)
        .list(&Default::default())
        .await
        .expect("viewers read Memberships");
    let text = serde_json::to_string(&seen).unwrap();
    let bare = code.replace('-', "");
    assert!(
        !text.contains(&code) && !text.contains(&bare),
        "no Membership shows the code"
    );
    let beas = seen.items.iter().find(|m| m.name_any() == "bea").unwrap();
    let proof = beas.spec.invite.as_ref().unwrap().proof.clone().unwrap();
    assert!(
        !org.can(VIC, &[], "get", "", "secrets", &org.ns).await,
        "viewers do not read code Secrets"
    );
    assert!(
        !org.can(MIA, &[], "get", "", "secrets", &org.ns).await,
        "members do not read code Secrets"
    );

    // The outsider replays what the viewer read: bea's proof, on a Membership of her own.
    let mut replay = membership_json("eve", EVE, "member");
    replay["spec"]["invite"] = json!({ "name": "link", "proof": proof });
    refused(org.create_as(EVE, replay).await, "[rule InvalidInvite]");
    // ... or the code itself where the proof goes: the schema refuses it, webhook or not.
    let mut raw = membership_json("eve", EVE, "member");
    raw["spec"]["invite"] = json!({ "name": "link", "proof": code });
    refused(
        org.create_as(EVE, raw).await,
        "spec.invite.proof must be the proof",
    );
    // ... or a Membership for bea's username carrying bea's proof: that is bea's to create.
    let mut as_bea = membership_json("bea2", "bea@corp.example", "member");
    as_bea["spec"]["invite"] = json!({ "name": "link", "proof": proof });
    refused(org.create_as(EVE, as_bea).await, "[rule InvalidInvite]");

    // The link still works for whoever holds the code, and its uses are counted.
    org.create_as(
        "carl@corp.example",
        redemption_json(
            "carl",
            &org.ns,
            "carl@corp.example",
            "member",
            "link",
            &code,
        ),
    )
    .await
    .unwrap();
    org.active("carl").await;
    let invites: Api<Invite> = Api::namespaced(org.admin.clone(), &org.ns);
    let status = eventually("two uses counted", WAIT, || async {
        invites
            .get("link")
            .await
            .ok()?
            .status
            .filter(|s| s.uses == 2)
    })
    .await;
    assert_eq!(status.accepted_by.len(), 2);
}

/// Finding 2: an admin made `system:anonymous` a member, and every unauthenticated request then
/// read the org. `system:` users and groups are platform-only wherever a subject is named.
#[tokio::test]
async fn system_identities_get_no_role_from_org_people() {
    let org = Org::new("attack-system", json!({ "minOwners": 1 })).await;
    refused(
        org.create_as(ADAM, membership_json("anon", "system:anonymous", "viewer"))
            .await,
        "system:anonymous is every unauthenticated request",
    );
    refused(
        org.create_as(
            OLIVE,
            membership_json("sa", "system:serviceaccount:kube-system:default", "member"),
        )
        .await,
        "[rule SystemSubject]",
    );
    let mut group = membership_json("unauth", "x", "viewer");
    group["spec"] = json!({ "group": "system:unauthenticated", "role": "viewer" });
    refused(
        org.create_as(OLIVE, group).await,
        "system:unauthenticated is every unauthenticated request",
    );
    let mut nodes = membership_json("nodes", "x", "viewer");
    nodes["spec"] = json!({ "group": "system:nodes", "role": "viewer" });
    refused(org.create_as(OLIVE, nodes).await, "[rule SystemSubject]");

    // In a Team, too.
    let team = json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Team", "metadata": { "name": "ops" },
        "spec": { "members": [
            { "user": ADAM, "role": "owner" },
            { "user": "system:serviceaccount:kube-system:default", "role": "member" }
        ] }
    });
    refused(org.create_as(ADAM, team).await, "[rule SystemSubject]");

    // A role the platform gave a system: identity is not the org's to raise.
    org.platform_create(membership_json(
        "ci",
        "system:serviceaccount:ci:deployer",
        "viewer",
    ))
    .await;
    refused(
        org.patch_as(
            OLIVE,
            "Membership",
            "ci",
            json!({ "spec": { "role": "owner" } }),
        )
        .await,
        "[rule SystemSubject]",
    );

    // A service account redeeming an open invite for itself.
    org.create_as(ADAM, invite("open", None, "viewer", 3))
        .await
        .unwrap();
    let code = org.code("open").await;
    let sa = format!("system:serviceaccount:{}:joiner", org.ns);
    refused(
        org.create_as(
            &sa,
            redemption_json("joiner", &org.ns, &sa, "viewer", "open", &code),
        )
        .await,
        "[rule SystemSubject]",
    );

    // And so nobody unauthenticated reads anything.
    for resource in ["memberships", "organizations", "invites"] {
        assert!(
            !org.can(
                "system:anonymous",
                &["system:unauthenticated"],
                "list",
                "roster.dev",
                resource,
                &org.ns
            )
            .await,
            "anonymous lists {resource}"
        );
    }
    assert!(
        !org.can(
            "system:anonymous",
            &["system:unauthenticated"],
            "list",
            "",
            "secrets",
            &org.work
        )
        .await
    );
}

/// Finding 3: the org maps `admin` to `edit`, an owner's Team maps its owner role to `admin`; an
/// org admin made himself the team's owner, or moved `admin` into the member slot, and so held
/// (or handed) `admin` in the workload namespace.
#[tokio::test]
async fn teams_hand_out_nothing_above_the_changers_own_mapping() {
    let org = Org::new("attack-teams", json!({ "minOwners": 1 })).await;
    let team = json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Team", "metadata": { "name": "ops" },
        "spec": {
            "members": [{ "user": OLIVE, "role": "owner" }, { "user": MIA, "role": "member" }],
            "access": { "namespaces": [org.work], "clusterRoles": { "owner": "admin", "admin": "edit", "moderator": "edit", "member": "view", "viewer": "view" } }
        }
    });
    org.create_as(OLIVE, team)
        .await
        .expect("the owner's mapping gives admin");

    let made_owner = json!({ "spec": { "members": [{ "user": ADAM, "role": "owner" }, { "user": MIA, "role": "member" }] } });
    refused(
        org.patch_as(ADAM, "Team", "ops", made_owner).await,
        "ClusterRole admin",
    );
    let with_admin_slot = json!({ "spec": { "access": { "namespaces": [org.work], "clusterRoles": { "owner": "admin", "admin": "edit", "moderator": "edit", "member": "admin", "viewer": "view" } } } });
    refused(
        org.patch_as(ADAM, "Team", "ops", with_admin_slot).await,
        "ClusterRole admin",
    );
    // An admin may still hand out what his own role maps to.
    let adam_joins = json!({ "spec": { "members": [{ "user": OLIVE, "role": "owner" }, { "user": MIA, "role": "member" }, { "user": ADAM, "role": "moderator" }] } });
    org.patch_as(ADAM, "Team", "ops", adam_joins)
        .await
        .expect("edit is within admin's mapping");

    // What RBAC says after all that: only the owner holds admin in the workload namespace.
    eventually("adam's team binding (edit)", WAIT, || async {
        (org.workload_level(ADAM).await == Level::Edit).then_some(())
    })
    .await;
    assert_eq!(org.workload_level(MIA).await, Level::Edit);
    assert_eq!(org.workload_level(OLIVE).await, Level::Admin);

    // A team owner who is an org member hands out no more than a member's mapping either.
    let dev = json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Team", "metadata": { "name": "dev" },
        "spec": {
            "members": [{ "user": MIA, "role": "owner" }, { "user": OLIVE, "role": "admin" }],
            "access": { "namespaces": [org.work], "clusterRoles": { "owner": "edit", "admin": "admin", "moderator": "edit", "member": "view", "viewer": "view" } }
        }
    });
    org.create_as(OLIVE, dev).await.unwrap();
    let vic_admin = json!({ "spec": { "members": [{ "user": MIA, "role": "owner" }, { "user": OLIVE, "role": "admin" }, { "user": VIC, "role": "admin" }] } });
    refused(
        org.patch_as(MIA, "Team", "dev", vic_admin).await,
        "[rule AdminLimit]",
    );
    let vic_member = json!({ "spec": { "members": [{ "user": MIA, "role": "owner" }, { "user": OLIVE, "role": "admin" }, { "user": VIC, "role": "member" }] } });
    org.patch_as(MIA, "Team", "dev", vic_member)
        .await
        .expect("view is within a member's mapping");
}

/// Finding 7: more than one pending admin invite. Turning a member invite into an admin one was
/// admitted, and concurrent creates all succeeded; the controller now keeps one usable whatever
/// the webhook missed.
#[tokio::test]
async fn only_one_admin_invite_is_ever_usable() {
    // Three admin invites stored before roster runs (so no webhook saw them).
    let (admin, ns, work) = Org::namespaces("attack-admin-invites").await;
    for (i, email) in ["a1@corp.example", "a2@corp.example", "a3@corp.example"]
        .iter()
        .enumerate()
    {
        support::create_raw(
            &admin,
            &ns,
            invite(&format!("admin-{i}"), Some(email), "admin", 1),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct creation times
    }
    let operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&admin, &ns).await;
    let org = Org {
        admin,
        ns,
        work,
        _operator: operator,
    };
    org.platform_create(organization(&org.work, json!({ "minOwners": 1 })))
        .await;
    org.platform_create(membership_json("olive", OLIVE, "owner"))
        .await;
    org.active("olive").await;

    let invites: Api<Invite> = Api::namespaced(org.admin.clone(), &org.ns);
    let reasons = eventually(
        "every admin invite to have a Ready condition",
        WAIT,
        || async {
            let mut out = Vec::new();
            for i in 0..3 {
                out.push(ready_reason(
                    &invites.get(&format!("admin-{i}")).await.ok()?,
                )?);
            }
            Some(out)
        },
    )
    .await;
    assert_eq!(
        reasons,
        [
            "True/Usable",
            "False/AnotherAdminInvitePending",
            "False/AnotherAdminInvitePending"
        ]
    );
    // Redeeming a waiting one does not make an admin.
    let code = org.code("admin-1").await;
    org.create_as(
        "a2@corp.example",
        redemption_json("a2", &org.ns, "a2@corp.example", "admin", "admin-1", &code),
    )
    .await
    .unwrap();
    let waiting = org.phase("a2", MembershipPhase::Pending).await;
    assert_eq!(
        ready_reason(&waiting).as_deref(),
        Some("False/AnotherAdminInvitePending")
    );
    // Once the first is revoked, the next one is the pending admin invite, and its redemption counts.
    org.patch_as(
        OLIVE,
        "Invite",
        "admin-0",
        json!({ "spec": { "revoked": true } }),
    )
    .await
    .unwrap();
    let joined = org.active("a2").await;
    assert_eq!(joined.status.unwrap().effective_role, Some(OrgRole::Admin));

    // Turning a member invite into an admin invite while one is pending is refused.
    org.create_as(OLIVE, invite("m", Some("m@corp.example"), "member", 1))
        .await
        .unwrap();
    eventually("admin-2 to be the pending admin invite", WAIT, || async {
        let i = invites.get("admin-2").await.ok()?;
        (ready_reason(&i)? == "True/Usable").then_some(())
    })
    .await;
    refused(
        org.patch_as(OLIVE, "Invite", "m", json!({ "spec": { "role": "admin" } }))
            .await,
        "[rule PendingAdminInvite]",
    );
}

/// Finding 8: six concurrent creates put six Organizations in one namespace. The oldest is the
/// organization; every other says so, gets no status of an org, and the webhook refuses more.
#[tokio::test]
async fn a_namespace_holds_one_organization() {
    let (admin, ns, work) = Org::namespaces("attack-orgs").await;
    for name in ["first", "second", "third"] {
        let mut o = organization(&work, json!({ "minOwners": 1 }));
        o["metadata"]["name"] = json!(name);
        support::create_raw(&admin, &ns, o).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&admin, &ns).await;
    let org = Org {
        admin,
        ns,
        work,
        _operator: operator,
    };
    org.platform_create(membership_json("olive", OLIVE, "owner"))
        .await;
    org.active("olive").await;
    let orgs: Api<Organization> = Api::namespaced(org.admin.clone(), &org.ns);
    for name in ["second", "third"] {
        let o = eventually(
            &format!("{name} to say it is a duplicate"),
            WAIT,
            || async {
                let o = orgs.get(name).await.ok()?;
                (ready_reason(&o)? == "False/DuplicateOrganization").then_some(o)
            },
        )
        .await;
        assert!(
            o.status.unwrap().owners.is_empty(),
            "{name} is no organization"
        );
    }
    let first = eventually("first to be the organization", WAIT, || async {
        let o = orgs.get("first").await.ok()?;
        (ready_reason(&o)? == "True/Ready").then_some(o)
    })
    .await;
    assert_eq!(first.status.unwrap().owners, [OLIVE]);
    // With roster running, another is refused at once, however fresh the first.
    let mut fourth = organization(&org.work, json!({}));
    fourth["metadata"]["name"] = json!("fourth");
    let err = support::create_raw(&org.admin, &org.ns, fourth)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("[rule OrganizationExists]"),
        "{err}"
    );
}

/// What the webhook admits early for sync engines (a rename's duplicate, a transfer's demotion)
/// gives nobody anything the effective state would not: the duplicate is Denied and grants
/// nothing, the last owner's demotion is held, and people other than platform principals are still
/// refused.
#[tokio::test]
async fn what_sync_engines_may_store_early_gives_nobody_more() {
    let org = Org::new("attack-held", json!({ "minOwners": 1 })).await;
    // An owner (not a platform principal) is refused, as before.
    refused(
        org.create_as(OLIVE, membership_json("mia-admin", MIA, "admin"))
            .await,
        "[rule Duplicate]",
    );
    refused(
        org.patch_as(
            OLIVE,
            "Membership",
            "olive",
            json!({ "spec": { "role": "member" } }),
        )
        .await,
        "[rule LastOwner]",
    );
    // The platform stores both, with a warning, and roster holds them.
    org.platform_create(membership_json("mia-admin", MIA, "admin"))
        .await;
    let api: Api<Membership> = Api::namespaced(org.admin.clone(), &org.ns);
    api.patch(
        "olive",
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": { "role": "member" } })),
    )
    .await
    .expect("the platform may store a demotion roster holds");
    org.phase("mia-admin", MembershipPhase::Denied).await;
    let olive = eventually("olive's demotion to be held", WAIT, || async {
        let m = api.get("olive").await.ok()?;
        (ready_reason(&m)? == "False/LastOwnerDemotionHeld").then_some(m)
    })
    .await;
    assert_eq!(olive.status.unwrap().effective_role, Some(OrgRole::Owner));
    // Mia is still a member only: no admin rights from the stored duplicate.
    let roster = "roster.dev";
    assert!(
        !org.can(MIA, &[], "create", roster, "invites", &org.ns)
            .await
    );
    assert!(
        !org.can(MIA, &[], "update", roster, "organizations", &org.ns)
            .await
    );
    // Olive keeps the owner's rights while her demotion is held.
    assert!(
        org.can(OLIVE, &[], "update", roster, "organizations", &org.ns)
            .await
    );
}

/// Finding 13: a personal invite for `bob@a.example` was redeemed by `BOB@A.EXAMPLE`, and selfJoin
/// admitted `x@evil.example@a.example` and `@a.example`.
#[tokio::test]
async fn identities_match_exactly() {
    let org = Org::new(
        "attack-identity",
        json!({ "minOwners": 1, "selfJoin": { "emailDomains": ["a.example"], "role": "viewer" } }),
    )
    .await;
    org.create_as(ADAM, invite("for-bob", Some("bob@a.example"), "member", 1))
        .await
        .unwrap();
    let code = org.code("for-bob").await;
    refused(
        org.create_as(
            "BOB@A.EXAMPLE",
            redemption_json("bob", &org.ns, "BOB@A.EXAMPLE", "member", "for-bob", &code),
        )
        .await,
        "[rule InvalidInvite]",
    );
    org.create_as(
        "bob@a.example",
        redemption_json("bob", &org.ns, "bob@a.example", "member", "for-bob", &code),
    )
    .await
    .expect("bob himself");

    for user in [
        "x@evil.example@a.example",
        "@a.example",
        "x@a.example.evil.example",
        "x y@a.example",
    ] {
        refused(
            org.create_as(user, membership_json("self", user, "viewer"))
                .await,
            "[rule SelfJoinNotAllowed]",
        );
    }
    org.create_as(
        "ann@A.Example",
        membership_json("ann", "ann@A.Example", "viewer"),
    )
    .await
    .expect("domains compare case-insensitively");
    org.active("ann").await;
}

// ---- Property: no sequence of admitted operations gives anyone more than their roles ----------

/// The people of the property test: an owner, an admin, a member, a viewer and two outsiders.
const PEOPLE: [&str; 6] = [OLIVE, ADAM, MIA, VIC, EVE, "bea@corp.example"];

/// Access in the workload namespace, lowest first: what `view`, `edit` and `admin` allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Nothing,
    View,
    Edit,
    Admin,
}

/// What the org's mapping (see [`organization`]) gives an effective org role there.
fn mapped(role: Option<OrgRole>) -> Level {
    match role {
        None => Level::Nothing,
        Some(OrgRole::Viewer) => Level::View,
        Some(OrgRole::Member | OrgRole::Admin) => Level::Edit,
        Some(OrgRole::Owner) => Level::Admin,
    }
}

/// One thing someone tries. People are indexes into [`PEOPLE`].
#[derive(Clone, Debug)]
enum Step {
    Add {
        actor: usize,
        target: usize,
        role: OrgRole,
    },
    ChangeRole {
        actor: usize,
        target: usize,
        role: OrgRole,
    },
    Remove {
        actor: usize,
        target: usize,
    },
    Invite {
        actor: usize,
        role: OrgRole,
        for_person: Option<usize>,
        uses: i32,
    },
    /// The newest invite's code reaches `joiner`, who redeems it.
    Redeem {
        joiner: usize,
        role: OrgRole,
    },
    Team {
        actor: usize,
        team: u8,
        members: Vec<(usize, &'static str)>,
        owner_cr: &'static str,
        member_cr: &'static str,
    },
}

fn step_strategy() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let person = || 0..PEOPLE.len();
    let role = || {
        prop_oneof![
            Just(OrgRole::Owner),
            Just(OrgRole::Admin),
            Just(OrgRole::Member),
            Just(OrgRole::Viewer)
        ]
    };
    let invited = || {
        prop_oneof![
            Just(OrgRole::Admin),
            Just(OrgRole::Member),
            Just(OrgRole::Viewer)
        ]
    };
    let cr = || prop_oneof![3 => Just("admin"), 1 => Just("edit"), 1 => Just("view")];
    // Team changes by admins and members are where escalation hides: ask them most.
    let team_actor =
        || prop_oneof![1 => Just(0usize), 3 => Just(1), 3 => Just(2), 1 => Just(3), 1 => Just(4)];
    let team_role = || {
        prop_oneof![
            Just("admin"),
            Just("moderator"),
            Just("member"),
            Just("viewer")
        ]
    };
    prop_oneof![
        3 => (person(), person(), role()).prop_map(|(actor, target, role)| Step::Add { actor, target, role }),
        3 => (person(), person(), role()).prop_map(|(actor, target, role)| Step::ChangeRole { actor, target, role }),
        2 => (person(), person()).prop_map(|(actor, target)| Step::Remove { actor, target }),
        2 => (person(), invited(), prop::option::of(person()), 1..3i32)
            .prop_map(|(actor, role, for_person, uses)| Step::Invite { actor, role, for_person, uses }),
        2 => (person(), invited()).prop_map(|(joiner, role)| Step::Redeem { joiner, role }),
        4 => (team_actor(), 0..2u8, person(), prop::collection::vec((person(), team_role()), 0..3), cr(), cr())
            .prop_map(|(actor, team, owner, mut rest, owner_cr, member_cr)| {
                rest.retain(|(p, _)| *p != owner);
                rest.sort();
                rest.dedup_by_key(|(p, _)| *p);
                let mut members = vec![(owner, "owner")];
                members.extend(rest);
                Step::Team { actor, team, members, owner_cr, member_cr }
            }),
    ]
}

/// What the model remembers between steps: the highest workload access a team change made by
/// someone could have handed to each person (the changer's own mapping), and the newest invite.
#[derive(Default)]
struct Model {
    team_ceiling: [Option<Level>; PEOPLE.len()],
    newest_invite: Option<(String, OrgRole)>,
    invites: u32,
}

impl Org {
    /// Effective org roles by person, from the statuses roster wrote.
    async fn effective_roles(&self) -> [Option<OrgRole>; PEOPLE.len()] {
        let mut roles = [None; PEOPLE.len()];
        let all = Api::<Membership>::namespaced(self.admin.clone(), &self.ns)
            .list(&Default::default())
            .await
            .unwrap();
        for m in all {
            let Some(s) = m
                .status
                .filter(|s| s.phase == Some(MembershipPhase::Active))
            else {
                continue;
            };
            if let Some(i) = PEOPLE
                .iter()
                .position(|p| m.spec.user.as_deref() == Some(*p))
            {
                roles[i] = roles[i].max(s.effective_role);
            }
        }
        roles
    }

    /// Waits until roster has caught up: every object's status is of its generation, and nothing
    /// roster writes changes for half a second.
    async fn settled(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = None;
        loop {
            let snapshot = self.snapshot().await;
            if snapshot.is_some() && snapshot == last {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "roster did not settle within {WAIT:?}"
            );
            last = snapshot;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Resource versions of everything roster reads and writes here, if every status is current.
    async fn snapshot(&self) -> Option<String> {
        let mut out = String::new();
        for kind in ["Organization", "Membership", "Invite", "Team"] {
            for o in self
                .api(&self.admin, kind)
                .await
                .list(&Default::default())
                .await
                .ok()?
            {
                let generation = o.metadata.generation;
                let observed = o.data["status"]["observedGeneration"].as_i64();
                if o.metadata.deletion_timestamp.is_none() && observed != generation {
                    return None;
                }
                out += &format!(
                    "{kind}/{}@{};",
                    o.name_any(),
                    o.resource_version().unwrap_or_default()
                );
            }
        }
        for ns in [&self.ns, &self.work] {
            for b in Api::<RoleBinding>::namespaced(self.admin.clone(), ns)
                .list(&Default::default())
                .await
                .ok()?
            {
                out += &format!(
                    "rb/{ns}/{}@{};",
                    b.name_any(),
                    b.resource_version().unwrap_or_default()
                );
            }
        }
        Some(out)
    }

    /// What `user` may do in the workload namespace, as RBAC answers.
    async fn workload_level(&self, user: &str) -> Level {
        let work = self.work.clone();
        if self
            .can(
                user,
                &[],
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                &work,
            )
            .await
        {
            Level::Admin
        } else if self.can(user, &[], "create", "", "configmaps", &work).await {
            Level::Edit
        } else if self.can(user, &[], "list", "", "configmaps", &work).await {
            Level::View
        } else {
            Level::Nothing
        }
    }

    /// Runs one step as its actor; whether roster (or RBAC) admitted it.
    async fn attempt(&self, step: &Step, model: &mut Model) -> bool {
        let name = |p: usize| format!("m{p}");
        match step {
            Step::Add {
                actor,
                target,
                role,
            } => self
                .create_as(
                    PEOPLE[*actor],
                    membership_json(&name(*target), PEOPLE[*target], role.as_str()),
                )
                .await
                .is_ok(),
            Step::ChangeRole {
                actor,
                target,
                role,
            } => self
                .patch_as(
                    PEOPLE[*actor],
                    "Membership",
                    &name(*target),
                    json!({ "spec": { "role": role.as_str() } }),
                )
                .await
                .is_ok(),
            Step::Remove { actor, target } => {
                let client = support::client_as(PEOPLE[*actor], &[]).await;
                self.api(&client, "Membership")
                    .await
                    .delete(&name(*target), &Default::default())
                    .await
                    .is_ok()
            }
            Step::Invite {
                actor,
                role,
                for_person,
                uses,
            } => {
                model.invites += 1;
                let invite_name = format!("inv{}", model.invites);
                let email = for_person.map(|p| PEOPLE[p]);
                let ok = self
                    .create_as(
                        PEOPLE[*actor],
                        invite(&invite_name, email, role.as_str(), *uses),
                    )
                    .await
                    .is_ok();
                if ok {
                    model.newest_invite = Some((invite_name, *role));
                }
                ok
            }
            Step::Redeem { joiner, role } => {
                let Some((invite_name, _)) = model.newest_invite.clone() else {
                    return false;
                };
                let code = self.code(&invite_name).await;
                let user = PEOPLE[*joiner];
                self.create_as(
                    user,
                    redemption_json(
                        &format!("j{joiner}-{invite_name}"),
                        &self.ns,
                        user,
                        role.as_str(),
                        &invite_name,
                        &code,
                    ),
                )
                .await
                .is_ok()
            }
            Step::Team {
                actor,
                team,
                members,
                owner_cr,
                member_cr,
            } => {
                let members: Vec<Value> = members
                    .iter()
                    .map(|(p, r)| json!({ "user": PEOPLE[*p], "role": r }))
                    .collect();
                let body = json!({
                    "apiVersion": "roster.dev/v1alpha1", "kind": "Team", "metadata": { "name": format!("team{team}") },
                    "spec": { "members": members, "access": { "namespaces": [self.work],
                        "clusterRoles": { "owner": owner_cr, "admin": member_cr, "moderator": member_cr, "member": member_cr, "viewer": "view" } } }
                });
                let client = support::client_as(PEOPLE[*actor], &[]).await;
                self.api(&client, "Team")
                    .await
                    .patch(
                        &format!("team{team}"),
                        &PatchParams::apply("attacker").force(),
                        &Patch::Apply(&body),
                    )
                    .await
                    .is_ok()
            }
        }
    }

    /// After a step: nobody can do more than their effective role maps to (or a team change by
    /// someone whose role maps that high handed them), outsiders and members read no code, and
    /// the invariants hold in status.
    async fn check(&self, model: &Model, history: &[String]) {
        let roles = self.effective_roles().await;
        assert!(
            roles[0..4].iter().flatten().any(|r| *r == OrgRole::Owner)
                || roles.iter().all(Option::is_none),
            "an org with members has an owner: {roles:?}\n{history:#?}"
        );
        for (i, user) in PEOPLE.iter().enumerate() {
            let role = roles[i];
            let team = role.and(model.team_ceiling[i]).unwrap_or(Level::Nothing);
            let allowed = mapped(role).max(team);
            let has = self.workload_level(user).await;
            assert!(
                has <= allowed,
                "{user} (effective {role:?}) has {has:?} in the workload namespace, more than {allowed:?}\n{history:#?}"
            );
            let staff = role >= Some(OrgRole::Admin);
            assert_eq!(
                self.can(user, &[], "get", "", "secrets", &self.ns).await,
                staff,
                "{user} ({role:?}) and invite code Secrets\n{history:#?}"
            );
            assert_eq!(
                self.can(user, &[], "create", "roster.dev", "invites", &self.ns)
                    .await,
                staff,
                "{user} ({role:?}) creating invites\n{history:#?}"
            );
            assert_eq!(
                self.can(user, &[], "list", "roster.dev", "memberships", &self.ns)
                    .await,
                role.is_some(),
                "{user} ({role:?}) listing Memberships\n{history:#?}"
            );
        }
        let memberships = serde_json::to_string(
            &Api::<Membership>::namespaced(self.admin.clone(), &self.ns)
                .list(&Default::default())
                .await
                .unwrap(),
        )
        .unwrap();
        let invites = Api::<Invite>::namespaced(self.admin.clone(), &self.ns)
            .list(&Default::default())
            .await
            .unwrap();
        for inv in &invites {
            let status = inv.status.clone().unwrap_or_default();
            assert!(
                status.uses <= inv.spec.max_uses,
                "invite {} over-used\n{history:#?}",
                inv.name_any()
            );
            if let Some(secret) = status.code_secret_name {
                let code = support::invite_code(&self.admin, &self.ns, &inv.name_any()).await;
                assert!(
                    !memberships.contains(&code),
                    "code of {} readable in Memberships ({secret})",
                    inv.name_any()
                );
            }
        }
    }
}

/// Random sequences of operations by random actors (owner, admin, member, viewer, outsiders)
/// with only roster's RBAC: after every step, what each person can do through roster's bindings
/// never exceeds what the org's mapping gives their effective role (or what a team change by
/// someone mapped that high handed them), only admins and owners read codes, and the invariants
/// hold. `ROSTER_ATTACK_SEQUENCES` sequences (default 4) of 16 steps each.
#[tokio::test]
async fn no_sequence_of_admitted_operations_gives_anyone_more_than_their_roles() {
    use proptest::strategy::{Strategy, ValueTree};
    let sequences: u32 = std::env::var("ROSTER_ATTACK_SEQUENCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let mut runner = proptest::test_runner::TestRunner::default();
    let steps = proptest::collection::vec(step_strategy(), 16);
    let (mut admitted_steps, mut refused_steps) = (0, 0);
    for n in 0..sequences {
        let sequence = steps.new_tree(&mut runner).unwrap().current();
        let org = Org::new(
            &format!("attack-prop-{n}"),
            json!({ "minOwners": 1, "maxMembers": 5 }),
        )
        .await;
        let mut model = Model::default();
        let mut history = Vec::new();
        for step in &sequence {
            let roles = org.effective_roles().await;
            let admitted = org.attempt(step, &mut model).await;
            if admitted {
                admitted_steps += 1;
            } else {
                refused_steps += 1;
            }
            history.push(format!(
                "{step:?} -> {}",
                if admitted { "admitted" } else { "refused" }
            ));
            if let (true, Step::Team { actor, members, .. }) = (admitted, step) {
                // The changer's own mapping bounds what this change may have handed anyone.
                let ceiling = mapped(roles[*actor]);
                for (p, _) in members {
                    model.team_ceiling[*p] = model.team_ceiling[*p].max(Some(ceiling));
                }
            }
            org.settled().await;
            org.check(&model, &history).await;
        }
    }
    // A sequence that roster refused whole, or admitted whole, tested nothing.
    assert!(
        admitted_steps > 0 && refused_steps > 0,
        "{admitted_steps} admitted, {refused_steps} refused"
    );
}
