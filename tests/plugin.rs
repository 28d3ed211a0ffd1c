//! The kubectl plugin (`kubectl-roster`, the built binary) against the real API server, with the
//! operator and its admission webhook running, used by impersonated people the way they would use
//! `kubectl roster`: the owner invites, the invitee joins with the printed code, ownership changes
//! hands, a member leaves. The story runs under the RBAC the chart ships (roster binds the roles);
//! the refusals run with RBAC open to everyone, so that they show what the webhook decides.

mod plugin_support;
mod support;

use std::process::Command;

use kube::api::Api;
use plugin_support::*;
use roster::api::{Membership, OrgRole};
use serde_json::Value;
use support::eventually;

/// An org with owner alice and member bob.
async fn setup_org(test: &str, rbac: Rbac) -> (kube::Client, String, support::Operator) {
    let people = [("alice", ALICE, "owner"), ("bob", BOB, "member")];
    setup(test, rbac, POLICY, &people).await
}

#[tokio::test]
async fn invite_join_transfer_leave_and_status() {
    let (client, ns, _operator) = setup_org("plugin-story", Rbac::Shipped).await;

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
    let (client, ns, _operator) = setup_org("plugin-refusals", Rbac::Everyone).await;

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

    // A member may not edit the organization: the webhook says so (RBAC lets everyone here), in a
    // dry run as for real.
    let err = refused_twice(
        BOB,
        &["-n", &ns, "org", "edit", "--display-name", "Bob's Org"],
        "changing the Organization needs org role admin or owner",
    );
    assert!(err.contains("roster:"), "{err}");

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

/// The four roles, with the RBAC the chart ships.
async fn setup_people(test: &str) -> (kube::Client, String, support::Operator) {
    let people = [
        ("alice", ALICE, "owner"),
        ("bob", BOB, "member"),
        ("carol", CAROL, "admin"),
        ("dave", DAVE, "viewer"),
    ];
    let policy =
        "  profile:\n    sector: Education\n  policy:\n    minOwners: 1\n    maxMembers: 10\n";
    setup(test, Rbac::Shipped, policy, &people).await
}

async fn desired(client: &kube::Client, ns: &str, name: &str) -> Option<OrgRole> {
    Some(membership(client, ns, name).await?.spec.role)
}

#[tokio::test]
async fn member_roles_and_removals() {
    let (client, ns, _operator) = setup_people("plugin-members").await;

    // An admin demotes a member to viewer: a dry run first, which changes nothing.
    let args = ["-n", &ns, "member", "set-role", BOB, "viewer"];
    let out = ok(CAROL, &dry(&args));
    assert!(
        out.contains(&format!(
            "membership/bob ({BOB}) role changed from member to viewer (server dry run)"
        )),
        "{out}"
    );
    assert_eq!(desired(&client, &ns, "bob").await, Some(OrgRole::Member));
    let out = ok(CAROL, &args);
    assert!(out.contains("in force as viewer"), "{out}");
    assert_eq!(effective(&client, &ns, "bob").await, Some(OrgRole::Viewer));

    // An admin may not make an admin: the webhook says why, in a dry run as for real.
    let err = refused_twice(
        CAROL,
        &["-n", &ns, "member", "set-role", "membership/bob", "admin"],
        "admins change roles among member and viewer only",
    );
    assert!(err.contains("[rule AdminLimit]"), "{err}");
    assert_eq!(desired(&client, &ns, "bob").await, Some(OrgRole::Viewer));

    // The owner may; -o name prints what changed, as kubectl does.
    let out = ok(
        ALICE,
        &[
            "-n", &ns, "-o", "name", "member", "set-role", "bob", "admin",
        ],
    );
    assert_eq!(out, "membership.roster.dev/bob\n");
    assert_eq!(effective(&client, &ns, "bob").await, Some(OrgRole::Admin));
    // The last owner's demotion is refused, not half-done.
    refused_twice(
        ALICE,
        &["-n", &ns, "member", "set-role", ALICE, "admin"],
        "[rule LastOwner]",
    );

    // Removing: an admin removes a viewer (dry run first), but not an owner.
    let args = ["-n", &ns, "member", "remove", DAVE];
    let out = ok(CAROL, &dry(&args));
    assert!(
        out.contains(&format!(
            "membership/dave ({DAVE}) removed from {ns} (server dry run)"
        )),
        "{out}"
    );
    assert!(membership(&client, &ns, "dave").await.is_some());
    let err = refused_twice(
        CAROL,
        &["-n", &ns, "member", "remove", "membership/alice"],
        "admins remove members and viewers only",
    );
    assert!(err.contains("[rule AdminLimit]"), "{err}");
    let out = ok(CAROL, &args);
    assert!(out.contains("removed from"), "{out}");
    eventually("dave's Membership to go", WAIT, || async {
        membership(&client, &ns, "dave")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let err = fails(CAROL, &args);
    assert!(err.contains("holds no Membership"), "{err}");

    // A member may not change roles at all: RBAC refuses before the webhook is asked.
    let err = fails(BOB, &["-n", &ns, "member", "set-role", "carol", "viewer"]);
    assert!(err.contains("(Forbidden)"), "{err}");

    // kubectl habits: the list without headers, or as names.
    let table = ok(CAROL, &["-n", &ns, "--no-headers", "members"]);
    assert!(!table.contains("NAME"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    let names = ok(CAROL, &["-n", &ns, "member", "list", "-o", "name"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "membership.roster.dev/alice",
            "membership.roster.dev/bob",
            "membership.roster.dev/carol"
        ]
    );
}

#[tokio::test]
async fn org_profile_and_leadership() {
    let (client, ns, _operator) = setup_people("plugin-org").await;
    let orgs = Api::<roster::api::Organization>::namespaced(client.clone(), &ns);
    let edit = [
        "-n",
        &ns,
        "org",
        "edit",
        "--display-name",
        "Lovelace Lab",
        "--website",
        "https://lab.example",
        "--location",
        "Berlin",
    ];

    // A dry run changes nothing and says what would.
    let out = ok(CAROL, &dry(&edit));
    assert!(
        out.contains("organization/org edited (server dry run) (displayName, website, location)"),
        "{out}"
    );
    assert!(out.contains("Lovelace Lab"), "{out}");
    assert_eq!(
        orgs.get("org").await.unwrap().spec.display_name.as_deref(),
        Some("Plugin Org")
    );

    // An admin edits the profile: only the given fields change.
    ok(CAROL, &edit);
    let spec = orgs.get("org").await.unwrap().spec;
    let profile = spec.profile.clone().unwrap();
    assert_eq!(spec.display_name.as_deref(), Some("Lovelace Lab"));
    assert_eq!(profile.website.as_deref(), Some("https://lab.example"));
    assert_eq!(profile.location.as_deref(), Some("Berlin"));
    assert_eq!(profile.sector.as_deref(), Some("Education"), "untouched");
    // An empty value clears a field.
    ok(ALICE, &["-n", &ns, "org", "edit", "--location", ""]);
    let profile = orgs.get("org").await.unwrap().spec.profile.unwrap();
    assert_eq!(profile.location, None);
    assert_eq!(profile.website.as_deref(), Some("https://lab.example"));

    // The API server checks the website (CEL), in a dry run as for real.
    refused_twice(
        CAROL,
        &["-n", &ns, "org", "edit", "--website", "ftp://lab.example"],
        "spec.profile.website must be an http:// or https:// URL",
    );
    // Members may not edit the organization: the shipped RBAC gives them no patch.
    let err = fails(BOB, &["-n", &ns, "org", "edit", "--sector", "Physics"]);
    assert!(err.contains("(Forbidden)"), "{err}");
    let err = fails(BOB, &["-n", &ns, "org", "edit"]);
    assert!(err.contains("nothing to change"), "{err}");

    // Everyone in the org sees the profile and who leads it.
    let shown = ok(DAVE, &["-n", &ns, "org", "show"]);
    assert!(shown.contains("Display name:   Lovelace Lab"), "{shown}");
    assert!(
        shown.contains("Website:        https://lab.example"),
        "{shown}"
    );
    let leaders = eventually("the leadership to show alice and carol", WAIT, || async {
        let out = plugin(DAVE, &["-n", &ns, "leadership"]);
        (out.ok && out.stdout.contains(CAROL)).then_some(out.stdout)
    })
    .await;
    let lines: Vec<Vec<&str>> = leaders
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["USER", "ROLE"],
            vec![ALICE, "owner"],
            vec![CAROL, "admin"]
        ],
        "{leaders}"
    );
    let json: Value =
        serde_json::from_str(&ok(BOB, &["-n", &ns, "leadership", "-o", "json"])).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{ "user": ALICE, "role": "owner" }, { "user": CAROL, "role": "admin" }])
    );
    let err = fails(BOB, &["-n", &ns, "leadership", "-o", "name"]);
    assert!(err.contains("-o name"), "{err}");
    // A non-member sees nothing of it.
    let err = fails(ERIN, &["-n", &ns, "leadership"]);
    assert!(err.contains("only its members may"), "{err}");
}

/// kubectl itself completes `kubectl roster ...` through `kubectl_complete-roster` (kubectl 1.26
/// and later look for it on the PATH), and `completion SHELL` prints scripts for the binary.
#[test]
fn kubectl_completes_the_plugin() {
    let cp = support::control_plane();
    let bins = std::path::Path::new(env!("CARGO_BIN_EXE_kubectl-roster"))
        .parent()
        .unwrap();
    assert!(bins.join("kubectl_complete-roster").exists());
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = |words: &[&str]| {
        let out = Command::new(&cp.kubectl)
            .arg("__complete")
            .arg("roster")
            .args(words)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let values: Vec<String> = stdout
            .lines()
            .filter(|l| !l.starts_with(':'))
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        (values, stdout)
    };
    let (values, raw) = complete(&["inv"]);
    assert_eq!(values, ["invite"], "{raw}");
    assert!(raw.ends_with(":4\n"), "no file names: {raw}");
    let (values, raw) = complete(&["-n", "lab", "invite", ""]);
    for want in ["create", "list", "revoke", "resend", "proof"] {
        assert!(values.iter().any(|v| v == want), "{want}: {raw}");
    }
    let (values, raw) = complete(&["invite", "create", "--co"]);
    assert_eq!(values, ["--count", "--context"], "{raw}");
    let (values, raw) = complete(&["team", "set-role", "platform", "ada@x.example", ""]);
    assert_eq!(
        values,
        ["viewer", "member", "moderator", "admin", "owner"],
        "{raw}"
    );

    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
            .args(["completion", shell])
            .output()
            .unwrap();
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{shell}");
        for word in [
            "kubectl-roster",
            "invite",
            "transfer-ownership",
            "leadership",
        ] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
}
