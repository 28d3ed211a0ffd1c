//! The kubectl plugin (`kubectl-roster`, the built binary) against the real API server, with the
//! operator and its admission webhook running, used by impersonated people the way they would use
//! `kubectl roster`: the owner invites, the invitee joins with the printed code, ownership changes
//! hands, a member leaves. The story runs under the RBAC the chart ships (roster binds the roles);
//! the refusals run with RBAC open to everyone, so that they show what the webhook decides.

mod support;

use std::process::Command;
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use roster::api::{Membership, MembershipPhase, OrgRole};
use serde_json::Value;
use support::eventually;

const WAIT: Duration = Duration::from_secs(30);

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the plugin as `user` against the test control plane.
fn plugin(user: &str, args: &[&str]) -> Out {
    let cp = support::control_plane();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["--as", user])
        .args(args)
        .output()
        .expect("run kubectl-roster");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(user: &str, args: &[&str]) -> String {
    let out = plugin(user, args);
    assert!(
        out.ok,
        "kubectl roster {} as {user} failed:\n{}{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn fails(user: &str, args: &[&str]) -> String {
    let out = plugin(user, args);
    assert!(
        !out.ok,
        "kubectl roster {} as {user} should fail:\n{}",
        args.join(" "),
        out.stdout
    );
    out.stderr
}

async fn membership(client: &Client, ns: &str, name: &str) -> Option<Membership> {
    Api::<Membership>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

async fn effective(client: &Client, ns: &str, name: &str) -> Option<OrgRole> {
    membership(client, ns, name)
        .await?
        .status
        .filter(|s| s.phase == Some(MembershipPhase::Active))?
        .effective_role
}

/// Who may do what through RBAC in the test's org namespace.
enum Rbac {
    /// What the chart installs: roster-org-* bound by roster from effective roles, and
    /// roster-self-service bound to every authenticated user (`selfService.bindAuthenticated`).
    Shipped,
    /// Everyone may touch roster objects, so that the webhook (not RBAC) is what refuses.
    Everyone,
}

/// An org with owner alice and member bob, the operator and webhook running.
async fn setup(test: &str, rbac: Rbac) -> (Client, String, support::Operator) {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, test).await;
    match rbac {
        Rbac::Shipped => {
            support::install_cluster_roles(&client).await;
            support::apply(
                &client,
                &ns,
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: self-service\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: roster-self-service\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: Group\n  name: system:authenticated\n",
            )
            .await;
        }
        Rbac::Everyone => support::allow_roster_rbac(&client, &ns).await,
    }
    let operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&client, &ns).await;
    support::apply(
        &client,
        &ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  displayName: Plugin Org\n  policy:\n    minOwners: 1\n    maxOwners: 1\n    maxMembers: 10\n",
    )
    .await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("alice", "alice@example.com", "owner"),
            ("bob", "bob@example.com", "member"),
        ],
    )
    .await;
    // Active, and (with the shipped RBAC) bound: both read the members list.
    for (name, user) in [("alice", ALICE), ("bob", BOB)] {
        eventually(&format!("{name} to be Active"), WAIT, || async {
            effective(&client, &ns, name).await
        })
        .await;
        eventually(&format!("{name}'s role to be bound"), WAIT, || async {
            plugin(user, &["-n", &ns, "members"]).ok.then_some(())
        })
        .await;
    }
    (client, ns, operator)
}

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

#[tokio::test]
async fn invite_join_transfer_leave_and_status() {
    let (client, ns, _operator) = setup("plugin-story", Rbac::Shipped).await;

    // The owner creates an invite: the code is printed once, with the command that redeems it.
    let created = ok(
        ALICE,
        &["-n", &ns, "invite", "create", "welcome", "--role", "member"],
    );
    let join_line = created
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("kubectl roster join "))
        .unwrap_or_else(|| panic!("no join command in:\n{created}"))
        .to_string();
    let words: Vec<&str> = join_line.split_whitespace().collect();
    let code = words[words.iter().position(|w| *w == "--code").unwrap() + 1].to_string();
    assert_eq!(code.len(), 19, "ABCD-EFGH-JKLM-NPQR: {code}");
    assert_eq!(
        join_line,
        format!("kubectl roster join {ns} --invite welcome --code {code} --role member"),
        "the command names the role, since the invitee may not read the Invite"
    );
    assert_eq!(
        created.matches(&code).count(),
        2,
        "the code and the join command:\n{created}"
    );
    // Listing invites never shows codes.
    let listed = ok(ALICE, &["-n", &ns, "invite", "list"]);
    assert!(
        listed.contains("welcome") && listed.contains("<open>"),
        "{listed}"
    );
    assert!(!listed.contains(&code), "{listed}");

    // A non-member sees nothing of the org, and is told why.
    let err = fails(CAROL, &["-n", &ns, "status"]);
    assert!(err.contains("only its members may"), "{err}");

    // Without the role the invitee would need to read the Invite, which a non-member may not.
    let err = fails(
        CAROL,
        &["join", &ns, "--invite", "welcome", "--code", &code],
    );
    assert!(err.contains("pass --role"), "{err}");

    // The invitee runs the printed command, as themselves: RBAC lets a non-member create a
    // Membership and nothing else, and the webhook admits it for the code.
    let args: Vec<&str> = join_line
        .strip_prefix("kubectl roster ")
        .unwrap()
        .split_whitespace()
        .collect();
    let joined = ok(CAROL, &args);
    assert!(
        joined.contains(&format!("{CAROL} joined {ns} as member")),
        "{joined}"
    );
    assert_eq!(
        effective(&client, &ns, "carol-example-com").await,
        Some(OrgRole::Member)
    );
    // The code stayed on carol's machine: her Membership carries the proof for her username,
    // which `invite proof` prints offline, the same.
    let carols = Api::<Membership>::namespaced(client.clone(), &ns)
        .get("carol-example-com")
        .await
        .unwrap();
    let stored = serde_json::to_string(&carols).unwrap();
    assert!(
        !stored.contains(&code) && !stored.contains(&code.replace('-', "")),
        "{stored}"
    );
    let printed = ok(
        ALICE,
        &[
            "-n", &ns, "invite", "proof", "welcome", "--code", &code, "--user", CAROL,
        ],
    );
    assert_eq!(
        Some(printed.trim().to_string()),
        carols.spec.invite.and_then(|i| i.proof)
    );

    // Members lists everyone, leaders first.
    let table = ok(CAROL, &["-n", &ns, "members"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("EFFECTIVE"),
        "{table}"
    );
    assert!(
        lines[1].contains(ALICE) && lines[1].contains("owner"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains(CAROL) && l.contains("member") && l.contains("Active")),
        "{table}"
    );
    let json: Value =
        serde_json::from_str(&ok(BOB, &["-n", &ns, "members", "-o", "json"])).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{json:#}");
    assert!(
        rows.iter().any(|r| r["user"] == CAROL
            && r["effectiveRole"] == "member"
            && r["phase"] == "Active")
    );
    let invites: Value =
        serde_json::from_str(&ok(ALICE, &["-n", &ns, "invite", "list", "-o", "json"])).unwrap();
    assert_eq!(invites[0]["uses"], 1, "{invites:#}");

    // A transfer is refused unless the confirmation matches exactly, and then nothing changes.
    for wrong in [
        CAROL.to_string(),
        format!("{ns}/{BOB}"),
        format!("{ns}/{CAROL} "),
    ] {
        let err = fails(
            ALICE,
            &[
                "-n",
                &ns,
                "transfer-ownership",
                "--to",
                CAROL,
                "--confirm",
                &wrong,
            ],
        );
        assert!(
            err.contains(&format!("--confirm must be exactly {ns}/{CAROL}")),
            "{err}"
        );
    }
    assert_eq!(
        effective(&client, &ns, "carol-example-com").await,
        Some(OrgRole::Member)
    );
    assert_eq!(effective(&client, &ns, "alice").await, Some(OrgRole::Owner));
    // Only an owner hands over ownership.
    let err = fails(
        BOB,
        &[
            "-n",
            &ns,
            "transfer-ownership",
            "--to",
            CAROL,
            "--confirm",
            &format!("{ns}/{CAROL}"),
        ],
    );
    assert!(err.contains("not an effective owner"), "{err}");

    let out = ok(
        ALICE,
        &[
            "-n",
            &ns,
            "transfer-ownership",
            "--to",
            CAROL,
            "--confirm",
            &format!("{ns}/{CAROL}"),
        ],
    );
    assert!(out.contains(&format!("{CAROL} is owner")), "{out}");
    assert_eq!(
        effective(&client, &ns, "carol-example-com").await,
        Some(OrgRole::Owner)
    );
    assert_eq!(effective(&client, &ns, "alice").await, Some(OrgRole::Admin));

    // A member leaves.
    let out = ok(BOB, &["-n", &ns, "leave"]);
    assert!(out.contains(&format!("{BOB} left {ns}")), "{out}");
    eventually("bob's Membership to be gone", WAIT, || async {
        membership(&client, &ns, "bob")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let err = fails(BOB, &["-n", &ns, "leave"]);
    assert!(err.contains("holds no Membership"), "{err}");

    // The org at a glance, as the new owner.
    let status = eventually("the org status to show the transfer", WAIT, || async {
        let out = plugin(CAROL, &["-n", &ns, "status"]);
        (out.ok && out.stdout.contains("Members:          2 effective")).then_some(out.stdout)
    })
    .await;
    for want in [
        "Organization:     org (Plugin Org)".to_string(),
        "Ready:            True".to_string(),
        format!("Owners:           {CAROL}"),
        format!("Admins:           {ALICE}"),
        "Seats:            2 of 10 used".to_string(),
        format!("You:              {CAROL} (owner)"),
        "OwnerQuorum".to_string(),
    ] {
        assert!(status.contains(&want), "status lacks {want:?}:\n{status}");
    }
    let yaml: Value =
        serde_yaml::from_str(&ok(ALICE, &["-n", &ns, "status", "-o", "yaml"])).unwrap();
    assert_eq!(yaml["owners"], serde_json::json!([CAROL]));
    assert_eq!(yaml["yourRole"], "admin");
    assert_eq!(yaml["ready"], "True");
}

#[tokio::test]
async fn the_webhook_decides_what_the_plugin_asks() {
    let (client, ns, _operator) = setup("plugin-refusals", Rbac::Everyone).await;

    // A stranger cannot invite.
    let err = fails(
        "dave@example.com",
        &["-n", &ns, "invite", "create", "--role", "member"],
    );
    assert!(
        err.contains("roster:") && err.contains("no effective Membership"),
        "{err}"
    );
    // A member cannot either.
    let err = fails(BOB, &["-n", &ns, "invite", "create", "--role", "viewer"]);
    assert!(err.contains("roster:"), "{err}");

    // A personal invite, as JSON (a generated name).
    let created: Value = serde_json::from_str(&ok(
        ALICE,
        &[
            "-n",
            &ns,
            "invite",
            "create",
            "--role",
            "viewer",
            "--email",
            "erin@example.com",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    let invite = created["invite"].as_str().unwrap().to_string();
    let code = created["code"].as_str().unwrap().to_string();
    assert!(invite.starts_with("viewer-"), "{created:#}");
    assert_eq!(
        created["joinCommand"],
        format!("kubectl roster join {ns} --invite {invite} --code {code} --role viewer")
    );

    // The wrong code, and the right code for the wrong person, are refused at admission.
    let err = fails(
        "erin@example.com",
        &[
            "join",
            &ns,
            "--invite",
            &invite,
            "--code",
            "AAAA-AAAA-AAAA-AAAA",
        ],
    );
    assert!(
        err.contains("spec.invite.proof does not prove the code"),
        "{err}"
    );
    let err = fails(
        "frank@example.com",
        &["join", &ns, "--invite", &invite, "--code", &code],
    );
    assert!(err.contains("it is for erin@example.com"), "{err}");

    // Revoked, the code no longer works.
    let out = ok(ALICE, &["-n", &ns, "invite", "revoke", &invite]);
    assert!(out.contains("revoked"), "{out}");
    eventually("the webhook to see the revocation", WAIT, || async {
        let out = plugin(
            "erin@example.com",
            &[
                "join", &ns, "--invite", &invite, "--code", &code, "--name", "erin",
            ],
        );
        (!out.ok && out.stderr.contains("revoked")).then_some(())
    })
    .await;
    assert!(membership(&client, &ns, "erin").await.is_none());

    // The last owner cannot leave an org that has members.
    let err = fails(ALICE, &["-n", &ns, "leave"]);
    assert!(err.contains("LastOwner"), "{err}");
    assert_eq!(effective(&client, &ns, "alice").await, Some(OrgRole::Owner));

    // Impersonating groups needs a user, as with kubectl.
    let cp = support::control_plane();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["--as-group", "eng", "-n", &ns, "members"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The admin (no impersonation) sees the org without being a member of it.
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["-n", &ns, "status"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("(not a member)"), "{stdout}");
}
