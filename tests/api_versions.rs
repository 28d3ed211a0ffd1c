//! What a future API version starts from (docs/api-versions.md), on each Kubernetes version roster
//! is tested on: hack/test.sh runs this binary on the newest and again on the oldest. The control
//! plane is the version asked for; each CRD serves and stores one version; what roster stored
//! survives reapplying the CRDs untouched, and the unchanged update a storage-version migration
//! makes is accepted and changes nothing; a second served version reaches the webhook converted to
//! the one it reads, so it is no way around it.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Client, CustomResourceExt, ResourceExt};
use roster::api::{MembershipPhase, Organization};
use support::{Operator, eventually};

/// The tests here that change or depend on the CRDs' versions take turns (they share the cluster's
/// CRDs; test binaries run one after another, so only this binary's tests overlap).
static CRDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_control_plane_runs_the_version_under_test() {
    let client = support::admin_client().await;
    let info = client.apiserver_version().await.expect("GET /version");
    assert_eq!(info.git_version, support::k8s_version_under_test());
    let (ok, out, err) = support::kubectl(&["version", "--client", "-o", "json"]);
    assert!(ok, "{err}");
    let client: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        client["clientVersion"]["gitVersion"],
        support::k8s_version_under_test(),
        "the tests' kubectl is the same version as the API server"
    );
}

#[tokio::test]
async fn each_crd_serves_and_stores_v1alpha1_only() {
    let _turn = CRDS.lock().await;
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let api = Api::<CustomResourceDefinition>::all(client);
    for (_, crd) in roster::crds::all() {
        let stored = api.get(&crd.name_any()).await.unwrap();
        let versions: Vec<(&str, bool, bool)> = stored
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(versions, [("v1alpha1", true, true)], "{}", crd.name_any());
        let status = stored.status.expect("status");
        assert_eq!(
            status.stored_versions,
            Some(vec!["v1alpha1".to_string()]),
            "{}",
            crd.name_any()
        );
    }
}

/// The lab example, converged by roster (so every kind carries a real status), then held still.
async fn a_converged_org(client: &Client) -> String {
    support::install_crds(client).await;
    let ns = support::namespace(client, "api-versions").await;
    let mut operator = Operator::start(&[&ns], &[]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lab");
    for file in ["organization", "memberships", "invites", "teams"] {
        let yaml = std::fs::read_to_string(format!("{dir}/{file}.yaml")).unwrap();
        support::apply(
            client,
            &ns,
            &yaml.replace("  namespace: lovelace-lab\n", ""),
        )
        .await;
    }
    let orgs = Api::<Organization>::namespaced(client.clone(), &ns);
    eventually("the lab to be Ready", Duration::from_secs(60), || async {
        let org = orgs.get("lovelace-lab").await.ok()?;
        let s = org.status?;
        (s.observed_generation == org.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"))
        .then_some(())
    })
    .await;
    assert!(operator.terminate(Duration::from_secs(20)), "roster stops");
    ns
}

/// Every roster object in `ns`, by kind and name, exactly as the API server returns it.
async fn stored(client: &Client, ns: &str) -> BTreeMap<(String, String), DynamicObject> {
    let mut all = BTreeMap::new();
    for kind in kinds() {
        for o in api(client, ns, &kind)
            .list(&ListParams::default())
            .await
            .unwrap()
        {
            all.insert((kind.clone(), o.name_any()), o);
        }
    }
    all
}

fn kinds() -> Vec<String> {
    roster::crds::all()
        .into_iter()
        .map(|(_, crd)| crd.spec.names.kind)
        .collect()
}

fn api(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    api_in(client, ns, kind, roster::api::VERSION)
}

fn api_in(client: &Client, ns: &str, kind: &str, version: &str) -> Api<DynamicObject> {
    let (_, crd) = roster::crds::all()
        .into_iter()
        .find(|(_, crd)| crd.spec.names.kind == kind)
        .expect("a roster kind");
    let gvk = GroupVersionKind::gvk(&crd.spec.group, version, kind);
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural),
    )
}

#[tokio::test]
async fn stored_objects_survive_reapplying_the_crds_and_a_migration_rewrite() {
    let _turn = CRDS.lock().await;
    let client = support::admin_client().await;
    let ns = a_converged_org(&client).await;
    let before = stored(&client, &ns).await;
    let stored_kinds: Vec<&String> = before.keys().map(|(k, _)| k).collect();
    for kind in kinds() {
        assert!(
            stored_kinds.contains(&&kind),
            "no {kind} stored: {stored_kinds:?}"
        );
    }

    // An upgrade reapplies the CRDs the way a user does, with the kubectl of this version.
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let (ok, _, err) =
        support::kubectl(&["apply", "--server-side", "--force-conflicts", "-f", crds]);
    assert!(ok, "{err}");
    support::install_crds(&client).await;
    assert_eq!(
        stored(&client, &ns).await,
        before,
        "reapplying the CRDs changed stored objects"
    );

    // A storage-version migration reads each object and writes it back unchanged: the CEL rules
    // (transition rules included) accept it, and nothing changes, not even the resourceVersion.
    for ((kind, name), o) in &before {
        let written = api(&client, &ns, kind)
            .replace(name, &PostParams::default(), o)
            .await
            .unwrap_or_else(|e| panic!("rewrite {kind} {name}: {e}"));
        assert_eq!(&written, o, "{kind} {name} changed by an unchanged update");
    }
    assert_eq!(stored(&client, &ns).await, before);
}

/// A Membership as JSON, in `version`.
fn membership(version: &str, name: &str, user: &str, role: &str) -> DynamicObject {
    serde_json::from_value(serde_json::json!({
        "apiVersion": format!("roster.dev/{version}"), "kind": "Membership",
        "metadata": { "name": name },
        "spec": { "user": user, "role": role }
    }))
    .unwrap()
}

/// Creates `object` through `version` as `user`: the refusal's message, or `None` when created.
async fn create_as(ns: &str, version: &str, user: &str, object: &DynamicObject) -> Option<String> {
    let client = support::client_as(user, &["system:authenticated"]).await;
    let api = api_in(&client, ns, "Membership", version);
    // A version just added takes a moment to be served.
    eventually(
        "the create to reach roster",
        Duration::from_secs(30),
        || async {
            match api.create(&PostParams::default(), object).await {
                Ok(_) => Some(None),
                Err(kube::Error::Api(s)) if s.code == 404 => None,
                Err(kube::Error::Api(s)) => Some(Some(s.message)),
                Err(e) => panic!("create through {version}: {e}"),
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_second_served_version_reaches_the_webhook_as_the_one_it_reads() {
    let _turn = CRDS.lock().await;
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "second-version").await;
    support::allow_roster_rbac(&client, &ns).await;
    let _operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&client, &ns).await;
    support::apply(
        &client,
        &ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  policy:\n    minOwners: 1\n",
    )
    .await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("alice", "alice@example.com", "owner"),
            ("eve", "eve@example.com", "member"),
        ],
    )
    .await;
    support::membership_in_phase(&client, &ns, "eve", MembershipPhase::Active, WAIT).await;

    // What a later roster would do: serve v1beta1 beside v1alpha1, which stays the stored version.
    let mut two = roster::api::Membership::crd();
    let mut beta = two.spec.versions[0].clone();
    (beta.name, beta.storage) = ("v1beta1".into(), false);
    two.spec.versions.push(beta);
    support::install_crd(&client, &two).await;

    // Eve, a member, makes herself an owner: refused the same way through either version.
    let grab = |version| membership(version, "eve-owner", "eve@example.com", "owner");
    let through_alpha = create_as(&ns, "v1alpha1", "eve@example.com", &grab("v1alpha1")).await;
    let through_beta = create_as(&ns, "v1beta1", "eve@example.com", &grab("v1beta1")).await;
    let refusal = through_alpha.expect("refused through v1alpha1");
    assert!(refusal.contains("roster:"), "{refusal}");
    assert_eq!(through_beta.as_ref(), Some(&refusal), "through v1beta1");

    // Alice, the owner, adds Bob through v1beta1: allowed, stored, and roster makes him Active.
    let bob = membership("v1beta1", "bob", "bob@example.com", "member");
    assert_eq!(
        create_as(&ns, "v1beta1", "alice@example.com", &bob).await,
        None
    );
    let stored =
        support::membership_in_phase(&client, &ns, "bob", MembershipPhase::Active, WAIT).await;
    assert_eq!(stored.spec.role, roster::api::OrgRole::Member);

    // Back to one version: allowed, since nothing was stored as v1beta1.
    support::install_crd(&client, &roster::api::Membership::crd()).await;
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(&two.name_any())
        .await
        .unwrap();
    assert_eq!(crd.spec.versions.len(), 1);
    assert_eq!(
        crd.status.and_then(|s| s.stored_versions),
        Some(vec!["v1alpha1".to_string()])
    );
}
