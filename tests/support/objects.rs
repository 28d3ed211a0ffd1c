//! Roster objects as tests write them: YAML and JSON builders, server-side apply, raw creates (for
//! what the Rust types could not express), and an Invite's code and the proof that redeems it.

use std::time::Duration;

use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::cluster::eventually;

/// Applies a YAML or JSON object (or several, separated by `---`) with server-side apply, as the
/// platform admin, the way `kubectl apply --server-side` would.
pub async fn apply(client: &Client, ns: &str, yaml: &str) {
    for doc in yaml.split("\n---").filter(|d| !d.trim().is_empty()) {
        let obj: kube::api::DynamicObject = serde_yaml::from_str(doc).expect("object YAML");
        let gvk =
            kube::api::GroupVersionKind::try_from(obj.types.as_ref().expect("apiVersion and kind"))
                .expect("GVK");
        let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .expect("discover the kind");
        let name = obj.metadata.name.clone().expect("a name");
        Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &resource)
            .patch(
                &name,
                &PatchParams::apply("roster-tests").force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {} {name}: {e}", gvk.kind));
    }
}

/// Creates an object from raw JSON, so that tests can send what the Rust types could not express.
pub async fn create_raw(
    client: &Client,
    ns: &str,
    object: serde_json::Value,
) -> Result<kube::api::DynamicObject, kube::Error> {
    create_raw_with(client, ns, object, &PostParams::default()).await
}

async fn create_raw_with(
    client: &Client,
    ns: &str,
    object: serde_json::Value,
    params: &PostParams,
) -> Result<kube::api::DynamicObject, kube::Error> {
    let obj: kube::api::DynamicObject = serde_json::from_value(object).expect("object JSON");
    let gvk =
        kube::api::GroupVersionKind::try_from(obj.types.as_ref().expect("apiVersion and kind"))
            .expect("GVK");
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .expect("discover the kind");
    Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &resource)
        .create(params, &obj)
        .await
}

/// Like [`create_raw`], as a server-side dry run: the API server validates (schema, CEL, admission)
/// and stores nothing.
pub async fn create_raw_dry_run(
    client: &Client,
    ns: &str,
    object: serde_json::Value,
) -> Result<kube::api::DynamicObject, kube::Error> {
    create_raw_with(
        client,
        ns,
        object,
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
}

/// Applies user Memberships given as (name, user, role).
pub async fn apply_memberships(client: &Client, ns: &str, memberships: &[(&str, &str, &str)]) {
    for (name, user, role) in memberships {
        apply(client, ns, &membership_yaml(name, user, role)).await;
    }
}

/// A roster object (`roster.dev/v1alpha1`) of `kind` named `name` with `spec`, as JSON.
pub fn object_json(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": kind,
        "metadata": { "name": name }, "spec": spec
    })
}

/// A user Membership as JSON, for `create_raw` or a typed API: the object of [`membership_yaml`].
pub fn membership_json(name: &str, user: &str, role: &str) -> Value {
    object_json("Membership", name, json!({ "user": user, "role": role }))
}

/// A Membership of `user` in `ns` that redeems `invite` with `code`, as JSON: the object of
/// [`redemption_yaml`].
pub fn redemption_json(
    name: &str,
    ns: &str,
    user: &str,
    role: &str,
    invite: &str,
    code: &str,
) -> Value {
    let proof = proof(code, ns, invite, user);
    object_json(
        "Membership",
        name,
        json!({ "user": user, "role": role, "invite": { "name": invite, "proof": proof } }),
    )
}

/// A user Membership as YAML, for `apply`.
pub fn membership_yaml(name: &str, user: &str, role: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Membership\nmetadata:\n  name: {name}\nspec:\n  user: {user}\n  role: {role}\n"
    )
}

/// The code of an Invite, from the Secret roster generated for it (as an org admin reads it).
pub async fn invite_code(client: &Client, ns: &str, invite: &str) -> String {
    use k8s_openapi::api::core::v1::Secret;
    let invites: Api<roster::api::Invite> = Api::namespaced(client.clone(), ns);
    let secret_name = eventually(
        "the invite's code Secret",
        Duration::from_secs(30),
        || async { invites.get(invite).await.ok()?.status?.code_secret_name },
    )
    .await;
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(&secret_name)
        .await
        .unwrap();
    String::from_utf8(secret.data.unwrap()["code"].0.clone()).unwrap()
}

/// What a redemption carries for `user`: the proof of `code`, as `kubectl roster join` makes it.
pub fn proof(code: &str, ns: &str, invite: &str, user: &str) -> String {
    roster::rules::invite_code::proof(code, ns, invite, user)
}

/// A Membership of `user` in `ns` that redeems `invite` with `code`, as YAML for `apply`.
pub fn redemption_yaml(
    name: &str,
    ns: &str,
    user: &str,
    role: &str,
    invite: &str,
    code: &str,
) -> String {
    let proof = proof(code, ns, invite, user);
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Membership\nmetadata:\n  name: {name}\nspec:\n  user: {user}\n  role: {role}\n  invite:\n    name: {invite}\n    proof: {proof}\n"
    )
}

/// Membership `name` once its status says `phase` (read as `client`); panics after `wait`.
pub async fn membership_in_phase(
    client: &Client,
    ns: &str,
    name: &str,
    phase: roster::api::MembershipPhase,
    wait: Duration,
) -> roster::api::Membership {
    let api: Api<roster::api::Membership> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("Membership {name} to be {phase:?}"),
        wait,
        || async {
            api.get(name)
                .await
                .ok()
                .filter(|m| m.status.as_ref().and_then(|s| s.phase) == Some(phase))
        },
    )
    .await
}
