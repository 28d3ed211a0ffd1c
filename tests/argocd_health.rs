//! Argo CD support, tested against the real rules without running Argo CD (too heavy here): the
//! health check of docs/argocd/health.lua runs in gopher-lua, the Lua engine Argo CD uses, the way
//! Argo CD runs it (hack/argocd-health), on live objects that the operator and its webhook drove
//! into every state; and no applied kind carries an ownerReference, since Argo CD never prunes a
//! live object that has one.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde::Deserialize;
use support::Operator;

const WAIT: Duration = Duration::from_secs(40);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// hack/argocd-health, built into the cache on first use.
fn runner() -> &'static PathBuf {
    static RUNNER: OnceLock<PathBuf> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let out = Command::new(repo().join("hack/build-argocd-health.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run hack/build-argocd-health.sh");
        assert!(out.status.success(), "hack/build-argocd-health.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("argocd-health")
    })
}

/// Argo CD's health of `object` by docs/argocd/health.lua: (status, message).
fn argocd_health(object: &serde_json::Value) -> (String, String) {
    use std::io::Write;
    let mut child = Command::new(runner())
        .arg(repo().join("docs/argocd/health.lua"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run argocd-health");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let health: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("argocd-health printed no health ({e}): {out:?}"));
    assert!(out.status.success(), "the health check failed: {health}");
    let field = |f: &str| health[f].as_str().unwrap_or_default().to_string();
    (field("status"), field("message"))
}

fn api(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("roster.dev", "v1alpha1", kind);
    let resource = kube::api::ApiResource::from_gvk(&gvk);
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// The live object as JSON, as Argo CD's cache holds it.
async fn live(client: &Client, ns: &str, kind: &str, name: &str) -> Option<serde_json::Value> {
    let obj = api(client, ns, kind).get_opt(name).await.unwrap()?;
    Some(serde_json::to_value(obj).unwrap())
}

/// Waits until Argo CD would report `status` for the live object, with a message that contains
/// `message`; panics naming the last health and the object's conditions.
async fn expect_health(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    status: &str,
    message: &str,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let object = live(client, ns, kind, name).await;
        let health = object.as_ref().map(argocd_health);
        if let Some((s, m)) = &health
            && s == status
            && m.contains(message)
        {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let conditions = object
                .as_ref()
                .map(|o| o["status"]["conditions"].to_string())
                .unwrap_or_default();
            panic!(
                "{kind} {name}: Argo CD health {health:?}, expected {status} with {message:?}; conditions: {conditions}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn org_yaml(name: &str, policy: &str, access: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: {name}\nspec:\n  policy:\n    minOwners: 1\n{policy}{access}"
    )
}

fn invite_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// Creates `yaml` with the webhook not yet there: how the states the webhook refuses to create
/// (a second Organization, a second Membership of a person) arise, from concurrent creates or
/// objects that predate the webhook.
async fn create(client: &Client, ns: &str, yaml: &str) {
    let object: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    support::create_raw(client, ns, object).await.unwrap();
}

async fn setup(test: &str, extra_namespaces: usize) -> (Client, String, Vec<String>) {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    support::install_cluster_roles(&client).await;
    let ns = support::namespace(&client, test).await;
    let mut others = Vec::new();
    for i in 0..extra_namespaces {
        others.push(support::namespace(&client, &format!("{test}-{i}")).await);
    }
    (client, ns, others)
}

fn start(client_ns: &str, others: &[String]) -> Operator {
    let mut namespaces = vec![client_ns];
    namespaces.extend(others.iter().map(String::as_str));
    support::operator_with_webhook(&namespaces)
}

#[tokio::test]
async fn memberships_active_pending_and_denied() {
    let (client, ns, others) = setup("argocd-members", 1).await;
    let lonely = &others[0];
    // Before the webhook: a second Membership of one person, which it would refuse.
    create(&client, &ns, &org_yaml("org", "    maxMembers: 2\n", "")).await;
    for (name, user, role) in [
        ("owner", "owner@example.com", "owner"),
        ("member", "member@example.com", "member"),
    ] {
        create(&client, &ns, &support::membership_yaml(name, user, role)).await;
    }
    // Creation times order claims and seats; give the later ones their own second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(
        &client,
        &ns,
        &support::membership_yaml("member-again", "member@example.com", "viewer"),
    )
    .await;
    let _operator = start(&ns, &others);
    support::wait_for_webhook(&client, &ns).await;
    support::apply(
        &client,
        &ns,
        &support::membership_yaml("third", "third@example.com", "member"),
    )
    .await;
    support::apply(
        &client,
        lonely,
        &support::membership_yaml("early", "early@example.com", "owner"),
    )
    .await;

    expect_health(&client, &ns, "Membership", "owner", "Healthy", "").await;
    expect_health(&client, &ns, "Membership", "member", "Healthy", "").await;
    expect_health(
        &client,
        &ns,
        "Membership",
        "member-again",
        "Degraded",
        "Duplicate",
    )
    .await;
    expect_health(
        &client,
        &ns,
        "Membership",
        "third",
        "Progressing",
        "SeatLimitReached",
    )
    .await;
    expect_health(
        &client,
        lonely,
        "Membership",
        "early",
        "Progressing",
        "OrganizationMissing",
    )
    .await;

    // A change roster has not seen yet: the API server's answer to the write carries the new
    // generation and the old status.
    let changed = api(&client, &ns, "Membership")
        .patch(
            "member",
            &PatchParams::apply("roster-tests").force(),
            &Patch::Apply(
                serde_yaml::from_str::<serde_json::Value>(&support::membership_yaml(
                    "member",
                    "member@example.com",
                    "viewer",
                ))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    let (status, message) = argocd_health(&serde_json::to_value(changed).unwrap());
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("Progressing", "Waiting for roster to observe generation 2")
    );
    expect_health(&client, &ns, "Membership", "member", "Healthy", "").await;
}

#[tokio::test]
async fn invites_usable_settled_refused_and_waiting() {
    let (client, ns, _) = setup("argocd-invites", 0).await;
    create(&client, &ns, &org_yaml("org", "", "")).await;
    create(
        &client,
        &ns,
        &support::membership_yaml("owner", "owner@example.com", "owner"),
    )
    .await;
    // Before the webhook: two pending admin invites, which it would refuse.
    create(
        &client,
        &ns,
        &invite_yaml("admin-1", "  email: a1@example.com\n  role: admin\n"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(
        &client,
        &ns,
        &invite_yaml("admin-2", "  email: a2@example.com\n  role: admin\n"),
    )
    .await;
    let _operator = start(&ns, &[]);
    support::wait_for_webhook(&client, &ns).await;

    // A fresh object roster has not seen: the API server's answer to the create has no status.
    let fresh = support::create_raw(
        &client,
        &ns,
        serde_yaml::from_str(&invite_yaml(
            "usable",
            "  email: new@example.com\n  role: member\n",
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        argocd_health(&serde_json::to_value(fresh).unwrap()),
        (
            "Progressing".to_string(),
            "Waiting for roster to observe this object".to_string()
        )
    );
    for (name, spec) in [
        ("once", "  role: member\n  maxUses: 1\n"),
        (
            "short",
            "  email: late@example.com\n  role: member\n  ttl: 2s\n",
        ),
        ("revoked", "  email: gone@example.com\n  role: member\n"),
        ("open", "  role: viewer\n"),
    ] {
        support::apply(&client, &ns, &invite_yaml(name, spec)).await;
    }
    expect_health(&client, &ns, "Invite", "usable", "Healthy", "Usable").await;
    expect_health(&client, &ns, "Invite", "admin-1", "Healthy", "Usable").await;
    expect_health(
        &client,
        &ns,
        "Invite",
        "admin-2",
        "Progressing",
        "AnotherAdminInvitePending",
    )
    .await;

    let code = support::invite_code(&client, &ns, "once").await;
    support::apply(
        &client,
        &ns,
        &support::redemption_yaml("joiner", &ns, "joiner@example.com", "member", "once", &code),
    )
    .await;
    expect_health(&client, &ns, "Membership", "joiner", "Healthy", "").await;
    expect_health(&client, &ns, "Invite", "once", "Healthy", "Accepted").await;
    expect_health(&client, &ns, "Invite", "short", "Healthy", "Expired").await;

    support::apply(
        &client,
        &ns,
        &invite_yaml(
            "revoked",
            "  email: gone@example.com\n  role: member\n  revoked: true\n",
        ),
    )
    .await;
    expect_health(&client, &ns, "Invite", "revoked", "Healthy", "Revoked").await;

    // The platform closes open invites: the open one stays, refused by policy until a person acts.
    support::apply(
        &client,
        &ns,
        &org_yaml("org", "    invites:\n      allowOpenInvites: false\n", ""),
    )
    .await;
    expect_health(
        &client,
        &ns,
        "Invite",
        "open",
        "Degraded",
        "OpenInvitesDisabled",
    )
    .await;
}

#[tokio::test]
async fn teams_active_deactivated_and_refused_access() {
    let (client, ns, others) = setup("argocd-teams", 1).await;
    let work = &others[0];
    let _operator = start(&ns, &[]);
    support::wait_for_webhook(&client, &ns).await;
    // The org binds admin and view only: a team role mapped to edit grants nothing.
    support::apply(
        &client,
        &ns,
        &org_yaml(
            "org",
            "",
            &format!(
                "  access:\n    namespaces: [{work}]\n    clusterRoles:\n      owner: admin\n      admin: admin\n      member: view\n      viewer: view\n"
            ),
        ),
    )
    .await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("owner", "owner@example.com", "owner"),
            ("bob", "bob@example.com", "member"),
        ],
    )
    .await;
    let team = |name: &str, active: bool, access: &str| {
        format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: {name}\nspec:\n  active: {active}\n  members:\n  - user: owner@example.com\n    role: owner\n  - user: bob@example.com\n    role: member\n{access}"
        )
    };
    let mapped = format!(
        "  access:\n    namespaces: [{work}]\n    clusterRoles:\n      owner: admin\n      admin: admin\n      moderator: view\n      member: view\n      viewer: view\n"
    );
    let unmapped = format!("  access:\n    namespaces: [{work}]\n");
    support::apply(&client, &ns, &team("plain", true, "")).await;
    support::apply(&client, &ns, &team("ops", true, &mapped)).await;
    support::apply(&client, &ns, &team("off", false, &mapped)).await;
    support::apply(&client, &ns, &team("unmapped", true, &unmapped)).await;

    expect_health(&client, &ns, "Organization", "org", "Healthy", "").await;
    expect_health(&client, &ns, "Team", "plain", "Healthy", "").await;
    expect_health(&client, &ns, "Team", "ops", "Healthy", "").await;
    expect_health(&client, &ns, "Team", "off", "Healthy", "Deactivated").await;
    expect_health(
        &client,
        &ns,
        "Team",
        "unmapped",
        "Degraded",
        "ClusterRoleNotMapped",
    )
    .await;
}

#[tokio::test]
async fn organizations_ready_duplicate_and_short_of_owners() {
    let (client, ns, others) = setup("argocd-orgs", 1).await;
    let few = &others[0];
    // Before the webhook: a second Organization in the namespace, which it would refuse.
    create(&client, &ns, &org_yaml("first", "", "")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(&client, &ns, &org_yaml("second", "", "")).await;
    let _operator = start(&ns, &others);
    support::wait_for_webhook(&client, &ns).await;
    support::apply(
        &client,
        &ns,
        &support::membership_yaml("owner", "owner@example.com", "owner"),
    )
    .await;
    // Two owners required, one there: the org waits for a second.
    support::apply(
        &client,
        few,
        &org_yaml("org", "", "").replace("minOwners: 1", "minOwners: 2"),
    )
    .await;
    support::apply_memberships(
        &client,
        few,
        &[
            ("alice", "alice@example.com", "owner"),
            ("bob", "bob@example.com", "member"),
        ],
    )
    .await;

    expect_health(&client, &ns, "Organization", "first", "Healthy", "").await;
    expect_health(
        &client,
        &ns,
        "Organization",
        "second",
        "Degraded",
        "DuplicateOrganization",
    )
    .await;
    expect_health(
        &client,
        few,
        "Organization",
        "org",
        "Progressing",
        "OwnerQuorumNotMet",
    )
    .await;
    support::apply(
        &client,
        few,
        &support::membership_yaml("bob", "bob@example.com", "owner"),
    )
    .await;
    expect_health(&client, few, "Organization", "org", "Healthy", "").await;
}

/// Argo CD prunes only live objects without ownerReferences (gitops-engine leaves any object with
/// one to its owner), so an Organization, Membership, Invite or Team that left Git would stay if
/// roster gave it an owner. None has one once the operator has reconciled an org with every kind.
#[tokio::test]
async fn no_applied_kind_carries_an_owner_reference() {
    let (client, ns, others) = setup("argocd-owners", 1).await;
    let work = &others[0];
    let _operator = start(&ns, &[]);
    support::wait_for_webhook(&client, &ns).await;
    support::apply(
        &client,
        &ns,
        &org_yaml("org", "", &format!("  access:\n    namespaces: [{work}]\n")),
    )
    .await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("owner", "owner@example.com", "owner"),
            ("bob", "bob@example.com", "member"),
        ],
    )
    .await;
    support::apply(
        &client,
        &ns,
        &invite_yaml("hello", "  email: new@example.com\n  role: member\n"),
    )
    .await;
    support::apply(
        &client,
        &ns,
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: ops\nspec:\n  members:\n  - user: owner@example.com\n    role: owner\n  - user: bob@example.com\n    role: member\n  access:\n    namespaces: [{work}]\n"
        ),
    )
    .await;
    // Reconciled: the invite has its code, the team its access, everything is Healthy.
    support::invite_code(&client, &ns, "hello").await;
    for (kind, name) in [
        ("Organization", "org"),
        ("Membership", "owner"),
        ("Membership", "bob"),
        ("Invite", "hello"),
        ("Team", "ops"),
    ] {
        expect_health(&client, &ns, kind, name, "Healthy", "").await;
    }
    for kind in ["Organization", "Membership", "Invite", "Team"] {
        let objects = api(&client, &ns, kind)
            .list(&Default::default())
            .await
            .unwrap();
        assert!(!objects.items.is_empty(), "{kind}s listed");
        for o in objects.items {
            assert!(
                o.metadata.owner_references.unwrap_or_default().is_empty(),
                "{kind} {} carries an ownerReference: Argo CD would never prune it",
                o.metadata.name.unwrap_or_default()
            );
        }
    }
    // What roster creates for them (code Secrets, RoleBindings) is not in Git and carries no Argo CD
    // tracking annotation: Argo CD neither applies nor prunes it, whatever its ownerReferences.
}

/// The `argocd-cm` ConfigMaps of docs/argocd.md, parsed from its YAML blocks.
fn documented_config_maps() -> Vec<serde_yaml::Value> {
    let doc = std::fs::read_to_string(repo().join("docs/argocd.md")).unwrap();
    doc.split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter(|block| block.contains("kind: ConfigMap"))
        .map(|block| {
            serde_yaml::from_str(block).expect("a ConfigMap block of docs/argocd.md parses")
        })
        .collect()
}

/// Both snippets of docs/argocd.md (the `roster.dev/*` wildcard and one key per kind) hold exactly
/// the script the tests above run, so what people paste is what was tested.
#[test]
fn the_documented_argocd_cm_holds_the_tested_health_check() {
    let script = std::fs::read_to_string(repo().join("docs/argocd/health.lua")).unwrap();
    let maps = documented_config_maps();
    assert_eq!(maps.len(), 2, "a wildcard snippet and a per-kind one");
    let data = |m: &serde_yaml::Value, key: &str| -> Option<String> {
        m["data"][key].as_str().map(str::to_string)
    };
    let wildcard = maps
        .iter()
        .find_map(|m| data(m, "resource.customizations"))
        .expect("a resource.customizations snippet");
    let wildcard: serde_yaml::Value = serde_yaml::from_str(&wildcard).unwrap();
    assert_eq!(
        wildcard["roster.dev/*"]["health.lua"].as_str(),
        Some(script.as_str()),
        "resource.customizations: roster.dev/*: health.lua"
    );
    for kind in ["Organization", "Membership", "Invite", "Team"] {
        let key = format!("resource.customizations.health.roster.dev_{kind}");
        assert_eq!(
            maps.iter().find_map(|m| data(m, &key)).as_deref(),
            Some(script.as_str()),
            "{key}"
        );
    }
}

/// Every Namespace and Organization of examples/ asks Argo CD to prune or delete it only after a
/// person confirms.
#[test]
fn example_namespaces_and_organizations_need_a_confirmed_prune() {
    let mut seen = 0;
    for folder in std::fs::read_dir(repo().join("examples")).unwrap() {
        for file in std::fs::read_dir(folder.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let object = serde_yaml::Value::deserialize(doc).unwrap();
                let kind = object["kind"].as_str().unwrap_or_default();
                if kind != "Namespace" && kind != "Organization" {
                    continue;
                }
                seen += 1;
                assert_eq!(
                    object["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].as_str(),
                    Some("Prune=confirm,Delete=confirm"),
                    "{kind} {:?} in {}",
                    object["metadata"]["name"],
                    path.display()
                );
            }
        }
    }
    assert!(
        seen >= 9,
        "the examples' Namespaces and Organizations: {seen}"
    );
}
