//! What the plugin's tests share (tests/plugin.rs, tests/plugin_teams.rs, tests/plugin_invites.rs):
//! the built `kubectl-roster` run as an impersonated user, and an org with the operator and its
//! webhook. Each test binary uses part of it.
#![allow(dead_code)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use roster::api::{Membership, MembershipPhase, OrgRole};

use crate::support::{self, eventually};

pub const WAIT: Duration = Duration::from_secs(30);

pub const ALICE: &str = "alice@example.com";
pub const BOB: &str = "bob@example.com";
pub const CAROL: &str = "carol@example.com";
pub const DAVE: &str = "dave@example.com";
pub const ERIN: &str = "erin@example.com";

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the plugin as `user` against the test control plane.
pub fn plugin(user: &str, args: &[&str]) -> Out {
    plugin_with_stdin(user, args, None)
}

/// Runs the plugin as `user`, writing `stdin` to its standard input.
pub fn plugin_with_stdin(user: &str, args: &[&str], stdin: Option<&str>) -> Out {
    let cp = support::control_plane();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["--as", user])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl-roster");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("wait for kubectl-roster");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn ok(user: &str, args: &[&str]) -> String {
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

pub fn fails(user: &str, args: &[&str]) -> String {
    let out = plugin(user, args);
    assert!(
        !out.ok,
        "kubectl roster {} as {user} should fail:\n{}",
        args.join(" "),
        out.stdout
    );
    out.stderr
}

/// `args` with `--dry-run=server` in front.
pub fn dry<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--dry-run=server"];
    all.extend_from_slice(args);
    all
}

/// The same request refused with and without `--dry-run=server`, with the same reason; returns
/// the real request's error.
pub fn refused_twice(user: &str, args: &[&str], reason: &str) -> String {
    let dry_err = fails(user, &dry(args));
    assert!(dry_err.contains(reason), "dry run: {dry_err}");
    let err = fails(user, args);
    assert!(err.contains(reason), "{err}");
    assert_eq!(
        strip_dry(&dry_err),
        strip_dry(&err),
        "a dry run says what the real request says"
    );
    err
}

/// The error without what differs between a dry run and the real request (generated names).
fn strip_dry(s: &str) -> String {
    s.replace(" (server dry run)", "")
}

pub async fn membership(client: &Client, ns: &str, name: &str) -> Option<Membership> {
    Api::<Membership>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

pub async fn effective(client: &Client, ns: &str, name: &str) -> Option<OrgRole> {
    membership(client, ns, name)
        .await?
        .status
        .filter(|s| s.phase == Some(MembershipPhase::Active))?
        .effective_role
}

/// Who may do what through RBAC in the test's org namespace.
pub enum Rbac {
    /// What the chart installs: roster-org-* bound by roster from effective roles, and
    /// roster-self-service bound to every authenticated user (`selfService.bindAuthenticated`).
    Shipped,
    /// Everyone may touch roster objects, so that the webhook (not RBAC) is what refuses.
    Everyone,
}

/// An org (`policy` is YAML under spec, indented by four), the operator and webhook running, and
/// `people` (Membership name, user, role) Active and, with the shipped RBAC, bound.
pub async fn setup(
    test: &str,
    rbac: Rbac,
    spec: &str,
    people: &[(&str, &str, &str)],
) -> (Client, String, support::Operator) {
    setup_with(test, rbac, spec, people, &[]).await
}

/// [`setup`] with more arguments to `roster run`.
pub async fn setup_with(
    test: &str,
    rbac: Rbac,
    spec: &str,
    people: &[(&str, &str, &str)],
    roster_run: &[&str],
) -> (Client, String, support::Operator) {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, test).await;
    match rbac {
        Rbac::Shipped => support::install_roster_rbac(&client, &ns).await,
        Rbac::Everyone => support::allow_roster_rbac(&client, &ns).await,
    }
    let operator = support::operator_with_webhook_and(&[&ns], roster_run);
    support::wait_for_webhook(&client, &ns).await;
    support::apply(
        &client,
        &ns,
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  displayName: Plugin Org\n{spec}"
        ),
    )
    .await;
    support::apply_memberships(&client, &ns, people).await;
    for (name, user, _) in people {
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

/// The default policy: one owner at most, ten seats.
pub const POLICY: &str = "  policy:\n    minOwners: 1\n    maxOwners: 1\n    maxMembers: 10\n";
