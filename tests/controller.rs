//! The controller against the real control plane: `roster run` as a child process, watching the
//! test's namespace, turns desired objects into effective status.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Client;
use kube::api::{Api, DeleteParams};
use roster::api::{Invite, InvitePhase, Membership, MembershipPhase, OrgRole, Organization};
use support::{Operator, eventually};

const WAIT: Duration = Duration::from_secs(30);

fn condition<'a>(
    conditions: &'a [roster::api::Condition],
    type_: &str,
) -> Option<&'a roster::api::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

async fn setup(test: &str) -> (Client, String, Operator) {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, test).await;
    let operator = Operator::start(&[&ns], &[]);
    (client, ns, operator)
}

/// [`setup`] with an Organization of the default policy and its owner applied.
async fn setup_org(test: &str) -> (Client, String, Operator) {
    let (client, ns, operator) = setup(test).await;
    support::apply(&client, &ns, &org_yaml("")).await;
    support::apply(
        &client,
        &ns,
        &support::membership_yaml("owner", "owner@example.com", "owner"),
    )
    .await;
    (client, ns, operator)
}

fn org_yaml(extra_policy: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  displayName: Test Org\n  billingAdmin: owner@example.com\n  policy:\n    minOwners: 1\n{extra_policy}"
    )
}

async fn membership(client: &Client, ns: &str, name: &str) -> Option<Membership> {
    Api::<Membership>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

async fn wait_phase(client: &Client, ns: &str, name: &str, phase: MembershipPhase) -> Membership {
    eventually(
        &format!("Membership {name} to be {phase:?}"),
        WAIT,
        || async {
            membership(client, ns, name)
                .await
                .filter(|m| m.status.as_ref().and_then(|s| s.phase) == Some(phase))
        },
    )
    .await
}

#[tokio::test]
async fn an_org_with_every_role_becomes_ready_with_true_counts() {
    let (client, ns, _operator) = setup("ready").await;
    support::apply(&client, &ns, &org_yaml("    maxMembers: 10\n")).await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("owner", "owner@example.com", "owner"),
            ("admin", "admin@example.com", "admin"),
            ("member", "member@example.com", "member"),
            ("viewer", "viewer@example.com", "viewer"),
        ],
    )
    .await;
    let orgs: Api<Organization> = Api::namespaced(client.clone(), &ns);
    let org = eventually("the Organization to be Ready", WAIT, || async {
        let o = orgs.get("org").await.unwrap();
        let s = o.status.clone()?;
        (condition(&s.conditions, "Ready")?.status == "True" && s.members == 4).then_some(o)
    })
    .await;
    let status = org.status.unwrap();
    assert_eq!(status.owners, vec!["owner@example.com"]);
    assert_eq!(status.admins, vec!["admin@example.com"]);
    assert_eq!(status.leadership.len(), 2);
    assert_eq!((status.seats.used, status.seats.limit), (4, Some(10)));
    assert_eq!(status.observed_generation, org.metadata.generation);
    assert_eq!(
        condition(&status.conditions, "BillingAdmin")
            .unwrap()
            .status,
        "True"
    );

    for (name, role) in [("owner", OrgRole::Owner), ("viewer", OrgRole::Viewer)] {
        let m = wait_phase(&client, &ns, name, MembershipPhase::Active).await;
        assert_eq!(m.status.unwrap().effective_role, Some(role));
    }
    // Effective owners carry the protection finalizer.
    let owner = membership(&client, &ns, "owner").await.unwrap();
    assert!(
        owner
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&roster::controller::OWNER_PROTECTION.to_string())
    );
    let viewer = membership(&client, &ns, "viewer").await.unwrap();
    assert!(viewer.metadata.finalizers.unwrap_or_default().is_empty());
    // Nothing people apply is owned (Argo CD never prunes what is); status names the org instead.
    assert!(viewer.metadata.owner_references.is_none());
    assert_eq!(viewer.status.unwrap().organization_uid, org.metadata.uid);

    let (ok, out, err) = support::kubectl(&["get", "orgs,memberships", "-n", &ns]);
    assert!(ok, "{err}");
    for expected in [
        "OWNERS",
        "SEATS",
        "READY",
        "EFFECTIVE",
        "PHASE",
        "owner@example.com",
        "True",
        "Active",
        "viewer",
    ] {
        assert!(
            out.contains(expected),
            "`kubectl get orgs,memberships` lacks {expected}:\n{out}"
        );
    }
}

#[tokio::test]
async fn memberships_before_their_organization_wait_and_then_take_effect() {
    let (client, ns, _operator) = setup("any-order").await;
    support::apply(
        &client,
        &ns,
        &support::membership_yaml("owner", "owner@example.com", "owner"),
    )
    .await;
    let m = wait_phase(&client, &ns, "owner", MembershipPhase::Pending).await;
    let ready = condition(&m.status.as_ref().unwrap().conditions, "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready.reason, "OrganizationMissing", "{ready:?}");
    support::apply(&client, &ns, &org_yaml("")).await;
    wait_phase(&client, &ns, "owner", MembershipPhase::Active).await;
}

#[tokio::test]
async fn invite_expires_within_a_second_of_its_expiry() {
    let (client, ns, _operator) = setup_org("invite-expiry").await;
    support::apply(
        &client,
        &ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: short\nspec:\n  email: new@example.com\n  role: member\n  ttl: 3s\n",
    )
    .await;
    let invites: Api<Invite> = Api::namespaced(client.clone(), &ns);
    let expires_at = eventually("the invite to be Pending with expiresAt", WAIT, || async {
        let s = invites.get("short").await.unwrap().status?;
        (s.phase == Some(InvitePhase::Pending)).then_some(s.expires_at?.0)
    })
    .await;
    let seen = eventually("the invite to expire", WAIT, || async {
        let s = invites.get("short").await.unwrap().status?;
        (s.phase == Some(InvitePhase::Expired)).then(k8s_openapi::jiff::Timestamp::now)
    })
    .await;
    let late = seen.duration_since(expires_at);
    assert!(
        late.as_secs_f64() < 1.0,
        "Expired {late:?} after expiresAt {expires_at}"
    );
    assert!(
        late.as_secs_f64() > -0.01,
        "Expired before expiresAt ({late:?})"
    );
    let events = support::kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "-o",
        "jsonpath={.items[*].reason}",
    ])
    .1;
    assert!(
        events.contains("InviteExpired"),
        "an Event tells people: {events}"
    );
}

fn redemption_yaml(name: &str, ns: &str, user: &str, invite: &str, code: &str) -> String {
    support::redemption_yaml(name, ns, user, "member", invite, code)
}

#[tokio::test]
async fn a_two_use_invite_is_accepted_after_two_redemptions_and_denies_a_third() {
    let (client, ns, _operator) = setup_org("two-use").await;
    support::apply(
        &client,
        &ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: link\nspec:\n  role: member\n  maxUses: 2\n",
    )
    .await;
    let code = support::invite_code(&client, &ns, "link").await;
    assert_eq!(code.len(), 19, "ABCD-EFGH-JKLM-NPQR: {code}");
    let status_json = serde_json::to_string(
        &Api::<Invite>::namespaced(client.clone(), &ns)
            .get("link")
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        !status_json.contains(&code),
        "the code never appears in the Invite"
    );

    for (i, user) in ["a@example.com", "b@example.com"].iter().enumerate() {
        support::apply(
            &client,
            &ns,
            &redemption_yaml(&format!("r{i}"), &ns, user, "link", &code),
        )
        .await;
        let m = wait_phase(&client, &ns, &format!("r{i}"), MembershipPhase::Active).await;
        assert_eq!(m.status.unwrap().invite.as_deref(), Some("link"));
    }
    let invites: Api<Invite> = Api::namespaced(client.clone(), &ns);
    let status = eventually("the invite to be Accepted", WAIT, || async {
        invites
            .get("link")
            .await
            .unwrap()
            .status
            .filter(|s| s.phase == Some(InvitePhase::Accepted))
    })
    .await;
    assert_eq!(status.uses, 2);
    assert_eq!(
        status
            .accepted_by
            .iter()
            .map(|a| a.user.as_str())
            .collect::<Vec<_>>(),
        ["a@example.com", "b@example.com"]
    );

    support::apply(
        &client,
        &ns,
        &redemption_yaml("r2", &ns, "c@example.com", "link", &code),
    )
    .await;
    let third = wait_phase(&client, &ns, "r2", MembershipPhase::Denied).await;
    assert_eq!(
        condition(&third.status.unwrap().conditions, "Ready")
            .unwrap()
            .reason,
        "InviteExhausted"
    );

    support::apply(
        &client,
        &ns,
        &redemption_yaml("wrong", &ns, "d@example.com", "link", "AAAA-AAAA-AAAA-AAAA"),
    )
    .await;
    let wrong = wait_phase(&client, &ns, "wrong", MembershipPhase::Denied).await;
    assert_eq!(
        condition(&wrong.status.unwrap().conditions, "Ready")
            .unwrap()
            .reason,
        "InviteCodeMismatch"
    );
}

#[tokio::test]
async fn the_fourth_member_waits_for_a_seat_and_gets_it_when_one_frees_up() {
    let (client, ns, _operator) = setup("seats").await;
    support::apply(&client, &ns, &org_yaml("    maxMembers: 3\n")).await;
    for (i, role) in ["owner", "member", "member", "member"].iter().enumerate() {
        support::apply(
            &client,
            &ns,
            &support::membership_yaml(&format!("m{i}"), &format!("u{i}@example.com"), role),
        )
        .await;
        // Creation times order the seats; give each its own second.
        if i == 2 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    let fourth = wait_phase(&client, &ns, "m3", MembershipPhase::Pending).await;
    let ready = condition(&fourth.status.unwrap().conditions, "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready.reason, "SeatLimitReached");
    assert!(ready.message.contains("maxMembers"), "{}", ready.message);
    let org = Api::<Organization>::namespaced(client.clone(), &ns)
        .get("org")
        .await
        .unwrap();
    let seats = condition(&org.status.unwrap().conditions, "SeatsAvailable")
        .unwrap()
        .clone();
    assert_eq!(
        (seats.status.as_str(), seats.reason.as_str()),
        ("False", "SeatLimitReached")
    );

    Api::<Membership>::namespaced(client.clone(), &ns)
        .delete("m1", &DeleteParams::default())
        .await
        .unwrap();
    wait_phase(&client, &ns, "m3", MembershipPhase::Active).await;
}

#[tokio::test]
async fn the_last_owner_stays_terminating_and_effective_until_another_owner_exists() {
    let (client, ns, _operator) = setup("last-owner").await;
    support::apply(&client, &ns, &org_yaml("")).await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("alice", "alice@example.com", "owner"),
            ("bob", "bob@example.com", "member"),
        ],
    )
    .await;
    let memberships: Api<Membership> = Api::namespaced(client.clone(), &ns);
    eventually("alice to carry owner protection", WAIT, || async {
        let m = memberships.get("alice").await.unwrap();
        m.metadata.finalizers.filter(|f| !f.is_empty())
    })
    .await;
    wait_phase(&client, &ns, "bob", MembershipPhase::Active).await;

    memberships
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    let held = eventually("alice's removal to be held", WAIT, || async {
        let m = memberships.get_opt("alice").await.unwrap()?;
        let s = m.status.as_ref()?;
        condition(&s.conditions, "RoleChangeHeld").map(|_| m.clone())
    })
    .await;
    assert!(held.metadata.deletion_timestamp.is_some(), "Terminating");
    assert_eq!(
        held.status.as_ref().unwrap().effective_role,
        Some(OrgRole::Owner)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        memberships.get_opt("alice").await.unwrap().is_some(),
        "still there while she is the last owner"
    );

    support::apply(
        &client,
        &ns,
        &support::membership_yaml("bob", "bob@example.com", "owner"),
    )
    .await;
    eventually("alice to be gone", WAIT, || async {
        memberships
            .get_opt("alice")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let org = Api::<Organization>::namespaced(client.clone(), &ns)
        .get("org")
        .await
        .unwrap();
    assert_eq!(org.status.unwrap().owners, vec!["bob@example.com"]);
}

#[tokio::test]
async fn deleting_the_org_namespace_with_the_webhook_running_gets_nothing_stuck() {
    delete_org_namespace("ns-delete", false).await;
}

#[tokio::test]
async fn deletion_protection_never_blocks_deleting_the_namespace() {
    delete_org_namespace("ns-delete-protected", true).await;
}

async fn delete_org_namespace(test: &str, protected: bool) {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, test).await;
    let _operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&client, &ns).await;
    support::apply(&client, &ns, &org_yaml("")).await;
    if protected {
        support::apply(
            &client,
            &ns,
            "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  deletionProtection: true\n",
        )
        .await;
        let (ok, _, err) = support::kubectl(&[
            "delete",
            "organization",
            "org",
            "-n",
            &ns,
            "--dry-run=server",
        ]);
        assert!(
            !ok && err.contains("[rule DeletionProtection]"),
            "protected: {err}"
        );
    }
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("alice", "alice@example.com", "owner"),
            ("bob", "bob@example.com", "member"),
        ],
    )
    .await;
    wait_phase(&client, &ns, "alice", MembershipPhase::Active).await;
    eventually("alice to carry owner protection", WAIT, || async {
        membership(&client, &ns, "alice")
            .await?
            .metadata
            .finalizers
            .filter(|f| !f.is_empty())
    })
    .await;

    // The namespace controller and the garbage collector delete as Kubernetes' own controllers; the
    // webhook lets them, and owner protection yields because the Organization is going too.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the org namespace to be gone",
        Duration::from_secs(90),
        || async {
            namespaces
                .get_opt(&ns)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
}

/// An org (owner, an admin `boss`, a member `leaver`) with the workload namespace `work`, where
/// `leaver` has a binding; returns `work`.
async fn org_with_boss_and_leaver(client: &Client, ns: &str, test: &str) -> String {
    let work = support::namespace(client, test).await;
    support::apply(
        client,
        ns,
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  access:\n    namespaces: [{work}]\n"
        ),
    )
    .await;
    support::apply_memberships(
        client,
        ns,
        &[
            ("owner", "owner@example.com", "owner"),
            ("boss", "boss@example.com", "admin"),
            ("leaver", "leaver@example.com", "member"),
        ],
    )
    .await;
    wait_phase(client, ns, "leaver", MembershipPhase::Active).await;
    eventually("leaver's workload binding", WAIT, || async {
        workload_binding(client, &work, ns, "leaver").await
    })
    .await;
    work
}

async fn workload_binding(
    client: &Client,
    work: &str,
    org_ns: &str,
    name: &str,
) -> Option<RoleBinding> {
    Api::<RoleBinding>::namespaced(client.clone(), work)
        .get_opt(&format!("roster-{org_ns}-member-{name}"))
        .await
        .unwrap()
}

/// While something else in the org is failing: a new member becomes Active, a demoted admin loses
/// admin, and a removed member's workload binding goes.
async fn the_org_still_converges(client: &Client, ns: &str, work: &str) {
    support::apply_memberships(
        client,
        ns,
        &[
            ("newbie", "newbie@example.com", "member"),
            ("boss", "boss@example.com", "member"),
        ],
    )
    .await;
    Api::<Membership>::namespaced(client.clone(), ns)
        .delete("leaver", &DeleteParams::default())
        .await
        .unwrap();
    wait_phase(client, ns, "newbie", MembershipPhase::Active).await;
    eventually("boss demoted", WAIT, || async {
        let s = membership(client, ns, "boss").await?.status?;
        (s.effective_role == Some(OrgRole::Member)).then_some(())
    })
    .await;
    eventually("boss's org binding to say member", WAIT, || async {
        let b = Api::<RoleBinding>::namespaced(client.clone(), ns)
            .get_opt("roster-member-boss")
            .await
            .unwrap()?;
        (b.role_ref.name == "roster-org-member").then_some(())
    })
    .await;
    eventually("leaver's workload binding to go", WAIT, || async {
        workload_binding(client, work, ns, "leaver")
            .await
            .is_none()
            .then_some(())
    })
    .await;
}

/// Invite names may have 253 characters, label values 63: such an Invite gets its code, and never
/// holds up the rest of its org.
#[tokio::test]
async fn an_invite_with_a_253_character_name_gets_its_code_and_holds_up_nothing() {
    let (client, ns, _operator) = setup("long-invite").await;
    let work = org_with_boss_and_leaver(&client, &ns, "long-invite-work").await;
    let name = format!("i{}", "n".repeat(252));
    support::apply(
        &client,
        &ns,
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: {name}\nspec:\n  role: member\n"
        ),
    )
    .await;
    the_org_still_converges(&client, &ns, &work).await;
    let code = support::invite_code(&client, &ns, &name).await;
    assert_eq!(code.len(), 19, "{code}");
}

/// A code Secret that cannot be created (an admission policy refuses every Secret in the org
/// namespace) fails that Invite only, visibly, and the rest of the org converges; once Secrets may be
/// created again, the Invite gets its code.
#[tokio::test]
async fn a_code_secret_that_cannot_be_created_fails_only_its_invite() {
    let (client, ns, _operator) = setup("code-secret-fails").await;
    let work = org_with_boss_and_leaver(&client, &ns, "code-secret-fails-work").await;
    let refusal = RefuseSecrets::install(&client, &ns).await;
    support::apply(
        &client,
        &ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: blocked\nspec:\n  role: member\n",
    )
    .await;
    let invites: Api<Invite> = Api::namespaced(client.clone(), &ns);
    let ready = eventually("the Invite to say CodeSecretFailed", WAIT, || async {
        let status = invites.get("blocked").await.ok()?.status?;
        condition(&status.conditions, "Ready")
            .filter(|c| c.reason == "CodeSecretFailed")
            .cloned()
    })
    .await;
    assert_eq!(ready.status, "False", "{ready:?}");
    the_org_still_converges(&client, &ns, &work).await;
    let (_, events, _) = support::kubectl(&["get", "events", "-n", &ns, "-o", "json"]);
    assert!(events.contains("CodeSecretFailed"), "an Event says so");

    refusal.remove().await;
    support::invite_code(&client, &ns, "blocked").await;
}

/// A ValidatingAdmissionPolicy (and its binding) that refuses every Secret created in one namespace.
struct RefuseSecrets {
    client: Client,
    name: String,
}

impl RefuseSecrets {
    async fn install(client: &Client, ns: &str) -> RefuseSecrets {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let name = format!("roster-test-no-secrets-{ns}");
        let policy: ValidatingAdmissionPolicy = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": { "resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["secrets"]
                }] },
                "validations": [{ "expression": "false", "message": "no Secrets here (test)" }]
            }
        }))
        .unwrap();
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": { "namespaceSelector": {
                    "matchLabels": { "kubernetes.io/metadata.name": ns }
                } }
            }
        }))
        .unwrap();
        let pp = Default::default();
        Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .create(&pp, &policy)
            .await
            .unwrap();
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .create(&pp, &binding)
            .await
            .unwrap();
        // The policy takes effect once the API server has loaded it: probe with dry runs.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let probe: Secret =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": "probe" } })).unwrap();
        let dry_run = kube::api::PostParams {
            dry_run: true,
            ..Default::default()
        };
        eventually("the policy to refuse Secrets", WAIT, || async {
            secrets
                .create(&dry_run, &probe)
                .await
                .is_err()
                .then_some(())
        })
        .await;
        RefuseSecrets {
            client: client.clone(),
            name,
        }
    }

    async fn remove(self) {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let dp = DeleteParams::default();
        Api::<ValidatingAdmissionPolicyBinding>::all(self.client.clone())
            .delete(&self.name, &dp)
            .await
            .unwrap();
        Api::<ValidatingAdmissionPolicy>::all(self.client.clone())
            .delete(&self.name, &dp)
            .await
            .unwrap();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Anyone who may create Secrets can label them `roster.dev/invite-code`: roster keeps their
/// metadata only and never reads one no live Invite owns, so 20 such Secrets of 1 MB each leave
/// its memory flat, and codes are still read (and redeemed) for the Invites' own Secrets.
#[tokio::test]
async fn labelled_secrets_no_invite_owns_are_never_read() {
    let (client, ns, operator) = setup_org("foreign-code-secrets").await;
    wait_phase(&client, &ns, "owner", MembershipPhase::Active).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(operator.child.id());

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let payload = "x".repeat(1_000_000);
    for i in 0..20 {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": format!("bait-{i}-invite-code"),
                "labels": { roster::controller::INVITE_CODE_LABEL: "true" },
                "annotations": { "padding": "y".repeat(200_000) }
            },
            "stringData": { "code": payload }
        }))
        .unwrap();
        secrets.create(&Default::default(), &secret).await.unwrap();
    }
    // Invites named like the bait: their own Secrets are the ones read.
    support::apply(
        &client,
        &ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: bait-0\nspec:\n  role: member\n",
    )
    .await;
    support::apply(
        &client,
        &ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: real\nspec:\n  role: member\n",
    )
    .await;
    let code = support::invite_code(&client, &ns, "real").await;
    support::apply(
        &client,
        &ns,
        &redemption_yaml("joiner", &ns, "joiner@example.com", "real", &code),
    )
    .await;
    wait_phase(&client, &ns, "joiner", MembershipPhase::Active).await;
    let invites: Api<Invite> = Api::namespaced(client.clone(), &ns);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bait = invites.get("bait-0").await.unwrap().status.unwrap();
    assert_eq!(
        bait.code_secret_name, None,
        "a Secret the Invite does not own is no code"
    );

    // The controller remembers the codes of the Secrets it creates: no Secret was read at all.
    assert!(
        operator
            .metrics()
            .contains("roster_invite_code_reads_total 0")
    );
    let grown = rss_kib(operator.child.id()).saturating_sub(before);
    assert!(grown < 10 * 1024, "RSS grew by {grown} KiB");
}
