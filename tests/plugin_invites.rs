//! `kubectl roster invite` beyond one invite: resends that never collapse, the delivery fields,
//! join codes in bulk (`--count`, written as CSV or JSON, each code redeemed by its own person,
//! more than 50 refused before any write, a refusal and a partial failure that keep every created
//! code), and codes read from standard input or a file instead of the command line. As
//! impersonated people with only the RBAC the chart ships, with roster's operator and webhook.

mod plugin_support;
mod support;

use std::os::unix::fs::PermissionsExt as _;

use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use plugin_support::*;
use roster::api::{Invite, OrgRole, Organization};
use serde_json::{Value, json};

async fn invites(client: &kube::Client, ns: &str) -> Vec<Invite> {
    Api::<Invite>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

async fn invite(client: &kube::Client, ns: &str, name: &str) -> Invite {
    Api::<Invite>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
}

/// An owner, an admin and a member; roster configured with an identity provider with tenants,
/// which invites may be bound to.
async fn setup_invites(test: &str) -> (kube::Client, String, support::Operator) {
    let people = [
        ("alice", ALICE, "owner"),
        ("carol", CAROL, "admin"),
        ("bob", BOB, "member"),
    ];
    let policy = "  policy:\n    minOwners: 1\n    maxMembers: 20\n";
    let entra = [
        "--identity-provider",
        "name=entra,usernamePrefix=entra:,tenantKey=entra.example/tid",
    ];
    setup_with(test, Rbac::Shipped, policy, &people, &entra).await
}

#[tokio::test]
async fn delivery_fields_and_resends() {
    let (client, ns, _operator) = setup_invites("plugin-resend").await;
    let ns = ns.as_str();

    let out = ok(
        CAROL,
        &[
            "-n",
            ns,
            "invite",
            "create",
            "welcome",
            "--email",
            "newbie@example.com",
            "--notification-email",
            "inbox@example.com",
            "--identity-provider",
            "entra:tenant-1",
        ],
    );
    assert!(
        out.contains("invite/welcome created")
            && out.contains("signed in with entra (tenant tenant-1)")
            && out.contains("--role member --tenant tenant-1\n"),
        "{out}"
    );
    let spec = invite(&client, ns, "welcome").await.spec;
    assert_eq!(
        spec.notification_email.as_deref(),
        Some("inbox@example.com")
    );
    let idp = spec.identity_provider.unwrap();
    assert_eq!(
        (idp.name.as_str(), idp.tenant.as_deref()),
        ("entra", Some("tenant-1"))
    );
    // NAME --tenant TENANT is the same; the tenant given twice, or empty, is refused.
    let args = [
        "-n",
        ns,
        "invite",
        "create",
        "by-flag",
        "--identity-provider",
        "entra",
    ];
    ok(CAROL, &[&args[..], &["--tenant", "tenant-2"]].concat());
    let idp = invite(&client, ns, "by-flag")
        .await
        .spec
        .identity_provider
        .unwrap();
    assert_eq!(idp.tenant.as_deref(), Some("tenant-2"));
    let err = fails(
        CAROL,
        &[
            "-n",
            ns,
            "invite",
            "create",
            "--identity-provider",
            "entra:t1",
            "--tenant",
            "t2",
        ],
    );
    assert!(err.contains("give the tenant once"), "{err}");
    let err = fails(
        CAROL,
        &[
            "-n",
            ns,
            "invite",
            "create",
            "--identity-provider",
            "entra:",
        ],
    );
    assert!(err.contains("--identity-provider"), "{err}");

    // A resend raises spec.resends by one; a dry run answers the same and raises nothing.
    let resend = ["-n", ns, "invite", "resend", "welcome"];
    let out = ok(CAROL, &dry(&resend));
    assert!(
        out.contains("invite/welcome resend 1 requested (server dry run)"),
        "{out}"
    );
    assert_eq!(invite(&client, ns, "welcome").await.spec.resends, 0);
    let out = ok(CAROL, &resend);
    assert!(out.contains("to inbox@example.com again"), "{out}");
    assert_eq!(invite(&client, ns, "welcome").await.spec.resends, 1);

    // Four resends at once are four: each writes on the version it read, and one that lost the
    // race reads again.
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let args: Vec<String> = resend.iter().map(|a| a.to_string()).collect();
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                plugin(CAROL, &args)
            })
        })
        .collect();
    for run in runs {
        let out = run.join().unwrap();
        assert!(out.ok, "{}", out.stderr);
    }
    assert_eq!(invite(&client, ns, "welcome").await.spec.resends, 5);

    // Admins may not resend an admin invite (owners only), in a dry run as for real.
    ok(
        ALICE,
        &[
            "-n",
            ns,
            "invite",
            "create",
            "boss",
            "--role",
            "admin",
            "--email",
            "boss@example.com",
        ],
    );
    let err = refused_twice(
        CAROL,
        &["-n", ns, "invite", "resend", "boss"],
        "changing an invite with role admin needs an owner",
    );
    assert!(err.contains("[rule AdminLimit]"), "{err}");
    assert_eq!(invite(&client, ns, "boss").await.spec.resends, 0);
    ok(ALICE, &["-n", ns, "invite", "resend", "boss"]);
    assert_eq!(invite(&client, ns, "boss").await.spec.resends, 1);
    // Members may not (RBAC), and an open invite has no one to send to.
    let err = fails(BOB, &resend);
    assert!(err.contains("(Forbidden)"), "{err}");
    ok(CAROL, &["-n", ns, "invite", "create", "open"]);
    let err = fails(CAROL, &["-n", ns, "invite", "resend", "open"]);
    assert!(err.contains("names no address"), "{err}");

    // A dry-run create stores nothing and generates no code; -o name prints the name only.
    let before = invites(&client, ns).await.len();
    let out = ok(
        CAROL,
        &dry(&["-n", ns, "invite", "create", "--role", "viewer"]),
    );
    assert!(out.contains("(server dry run): role viewer"), "{out}");
    assert!(!out.contains("Code"), "{out}");
    assert_eq!(invites(&client, ns).await.len(), before);
    let out = ok(
        CAROL,
        &[
            "-n", ns, "-o", "name", "invite", "create", "--role", "viewer",
        ],
    );
    assert!(out.starts_with("invite.roster.dev/viewer-"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// The rows of a CSV file the plugin wrote: header first.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// Runs a join command from a file as `user`.
fn join_as(user: &str, command: &str) -> String {
    let args: Vec<&str> = command
        .strip_prefix("kubectl roster ")
        .expect("a kubectl roster command")
        .split_whitespace()
        .collect();
    ok(user, &args)
}

#[tokio::test]
async fn join_codes_in_bulk() {
    let (client, ns, _operator) = setup_invites("plugin-bulk").await;
    let ns = ns.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.csv");
    let file = file.to_str().unwrap();

    // Three single-use codes, written to a file only the caller may read.
    let started = std::time::Instant::now();
    let out = ok(
        CAROL,
        &["-n", ns, "invite", "create", "--count", "3", "--file", file],
    );
    eprintln!("3 invites with their codes in {:?}", started.elapsed());
    assert!(out.contains("3 of 3 invite(s) created"), "{out}");
    let meta = std::fs::metadata(file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let rows = csv_rows(&std::fs::read_to_string(file).unwrap());
    assert_eq!(rows[0], ["name", "role", "expires", "code", "join_command"]);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let mut codes: Vec<&str> = rows[1..].iter().map(|r| r[3].as_str()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 3, "distinct codes: {rows:?}");
    for (i, row) in rows[1..].iter().enumerate() {
        let spec = invite(&client, ns, &row[0]).await.spec;
        assert_eq!((spec.max_uses, spec.role), (1, OrgRole::Member));
        assert!(!row[2].is_empty(), "an expiry: {row:?}");
        // Each person joins with the exact command in the file.
        let user = format!("student{i}@example.com");
        let joined = join_as(&user, &row[4]);
        assert!(
            joined.contains(&format!("{user} joined {ns} as member")),
            "{joined}"
        );
    }

    // More than 50 is refused before anything is written.
    let before = invites(&client, ns).await.len();
    let err = fails(CAROL, &["-n", ns, "invite", "create", "--count", "51"]);
    assert!(
        err.contains("--count") && err.contains("more than 50"),
        "{err}"
    );
    // So is a file that exists: it may hold an earlier batch's codes.
    let err = fails(
        CAROL,
        &["-n", ns, "invite", "create", "--count", "2", "--file", file],
    );
    assert!(err.contains("it exists"), "{err}");
    assert_eq!(invites(&client, ns).await.len(), before);
    // A dry run asks for each create and stores none.
    let out = ok(CAROL, &dry(&["-n", ns, "invite", "create", "--count", "3"]));
    assert_eq!(out.matches("created (server dry run)").count(), 3, "{out}");
    assert_eq!(invites(&client, ns).await.len(), before);

    // JSON on standard output: one object per invite, as `invite create -o json` prints one.
    let json: Value = serde_json::from_str(&ok(
        CAROL,
        &[
            "-n", ns, "invite", "create", "--count", "2", "--role", "viewer", "-o", "json",
        ],
    ))
    .unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 2, "{json:#}");
    for i in list {
        let code = i["code"].as_str().unwrap();
        assert_eq!(
            i["joinCommand"],
            format!(
                "kubectl roster join {ns} --invite {} --code {code} --role viewer",
                i["invite"].as_str().unwrap()
            )
        );
    }
    assert_eq!(invites(&client, ns).await.len(), before + 2);
}

#[tokio::test]
async fn bulk_failures_keep_every_created_code() {
    let (client, ns, _operator) = setup_invites("plugin-bulk-fail").await;
    let ns = ns.as_str();
    let dir = tempfile::tempdir().unwrap();
    let orgs = Api::<Organization>::namespaced(client.clone(), ns);

    // The webhook refuses the first invite when the org allows no open invites: nothing is
    // created, the reason is shown (also in a dry run), and no file is left behind.
    orgs.patch(
        "org",
        &PatchParams::default(),
        &Patch::Merge(
            json!({ "spec": { "policy": { "invites": { "allowOpenInvites": false } } } }),
        ),
    )
    .await
    .unwrap();
    let refused = dir.path().join("refused.csv");
    let args = [
        "-n",
        ns,
        "invite",
        "create",
        "--count",
        "3",
        "--file",
        refused.to_str().unwrap(),
    ];
    let err = support::eventually("the webhook to see the policy", WAIT, || async {
        let out = plugin(CAROL, &args);
        (!out.ok && out.stderr.contains("OpenInvitesDisabled")).then_some(out.stderr)
    })
    .await;
    assert!(
        err.contains("0 of 3 invite(s) created") && err.contains("invite 1 of 3 failed"),
        "{err}"
    );
    assert!(!refused.exists(), "no file for no codes");
    let err = fails(CAROL, &dry(&args));
    assert!(err.contains("OpenInvitesDisabled"), "{err}");
    assert!(invites(&client, ns).await.is_empty());
    orgs.patch(
        "org",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "policy": { "invites": { "allowOpenInvites": true } } } })),
    )
    .await
    .unwrap();

    // A quota of two Invites in the namespace (what a platform sets with a ResourceQuota) makes
    // the third create fail: the two created are named and their codes are in the file.
    quota_invites(&client, ns, 2).await;
    let file = dir.path().join("partial.csv");
    let out = support::eventually("the webhook to see the policy again", WAIT, || async {
        let _ = std::fs::remove_file(&file);
        let out = plugin(
            CAROL,
            &[
                "-n",
                ns,
                "invite",
                "create",
                "--count",
                "4",
                "--file",
                file.to_str().unwrap(),
            ],
        );
        (!out.stderr.contains("OpenInvitesDisabled")).then_some(out)
    })
    .await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("2 of 4 invite(s) created")
            && out.stderr.contains("2 row(s) with codes written to")
            && out.stderr.contains("invite 3 of 4 failed")
            && out.stderr.contains("exceeded quota"),
        "{}",
        out.stderr
    );
    let rows = csv_rows(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(rows.len(), 3, "{rows:?}");
    let stored: Vec<String> = invites(&client, ns)
        .await
        .iter()
        .map(|i| i.metadata.name.clone().unwrap())
        .collect();
    for row in &rows[1..] {
        assert!(stored.contains(&row[0]), "{row:?} in {stored:?}");
        assert!(out.stderr.contains(&row[0]), "named: {}", out.stderr);
        assert_eq!(row[3].len(), 19, "a code: {row:?}");
    }
    // And each of them works.
    let joined = join_as("late@example.com", &rows[2][4]);
    assert!(joined.contains("joined"), "{joined}");
}

/// A ResourceQuota allowing `n` Invites in `ns`, with the usage the quota controller would record
/// (the test control plane runs no quota controller; the API server's quota admission, which
/// refuses the create, is the real one).
async fn quota_invites(client: &kube::Client, ns: &str, n: usize) {
    let used = invites(client, ns).await.len();
    let api = Api::<ResourceQuota>::namespaced(client.clone(), ns);
    let hard = json!({ "count/invites.roster.dev": (used + n).to_string() });
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": "invites" },
        "spec": { "hard": hard },
    }))
    .unwrap();
    api.create(&PostParams::default(), &quota).await.unwrap();
    api.patch_status(
        "invites",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "hard": hard, "used": { "count/invites.roster.dev": used.to_string() } } })),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn codes_from_standard_input_or_a_file() {
    let (client, ns, _operator) = setup_invites("plugin-code-input").await;
    let ns = ns.as_str();
    let dir = tempfile::tempdir().unwrap();
    let code_of = |name: &str| {
        let json: Value = serde_json::from_str(&ok(
            ALICE,
            &["-n", ns, "invite", "create", name, "-o", "json"],
        ))
        .unwrap();
        json["code"].as_str().unwrap().to_string()
    };

    // From standard input: the code is never an argument (so never in `ps` or shell history).
    let code = code_of("by-stdin");
    let args = [
        "join",
        ns,
        "--invite",
        "by-stdin",
        "--code",
        "-",
        "--role",
        "member",
        "--timeout",
        "45s",
    ];
    assert!(!args.iter().any(|a| a.contains(&code)));
    let out = plugin_with_stdin("stdin@example.com", &args, Some(&format!("{code}\n")));
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("joined"), "{}", out.stdout);
    assert_eq!(
        effective(&client, ns, "stdin-example-com").await,
        Some(OrgRole::Member)
    );

    // From a file.
    let code = code_of("by-file");
    let path = dir.path().join("code.txt");
    std::fs::write(&path, format!("{code}\n")).unwrap();
    let path = path.to_str().unwrap();
    let args = [
        "join",
        ns,
        "--invite",
        "by-file",
        "--code-file",
        path,
        "--role",
        "member",
    ];
    assert!(!args.iter().any(|a| a.contains(&code)));
    let out = ok("file@example.com", &args);
    assert!(out.contains("joined"), "{out}");

    // `invite proof` reads it the same way, offline.
    let out = plugin_with_stdin(
        ALICE,
        &[
            "-n",
            ns,
            "invite",
            "proof",
            "by-file",
            "--code",
            "-",
            "--user",
            "x@example.com",
        ],
        Some(&code),
    );
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        roster::rules::invite_code::proof(&code, ns, "by-file", "x@example.com")
    );

    // What goes wrong names the flag.
    let missing = [
        "join",
        ns,
        "--invite",
        "x",
        "--code-file",
        "/nonexistent/code",
        "--role",
        "member",
    ];
    let err = fails("x@example.com", &missing);
    assert!(err.contains("--code-file: read /nonexistent/code"), "{err}");
    let out = plugin_with_stdin(
        "x@example.com",
        &[
            "join", ns, "--invite", "x", "--code", "-", "--role", "member",
        ],
        Some(""),
    );
    assert!(!out.ok && out.stderr.contains("--code -"), "{}", out.stderr);
    let err = fails(
        "x@example.com",
        &["join", ns, "--invite", "x", "--role", "member"],
    );
    assert!(err.contains("--code"), "{err}");
    let err = fails(
        "x@example.com",
        &[
            "join",
            ns,
            "--invite",
            "x",
            "--code",
            "A",
            "--timeout",
            "2x",
        ],
    );
    assert!(err.contains("--timeout") && err.contains("2x"), "{err}");
}
