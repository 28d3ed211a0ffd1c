//! The controller's writes: server-side apply under one field manager, status and metadata only
//! (never `spec`), and the creation of invite code Secrets.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Context;
use crate::api::Invite;
use crate::invite_secrets::{INVITE_CODE_LABEL, code_secret_name};
use crate::rules::invite_code;
use crate::rules::leftovers::is_organization_owner;

pub use crate::names::FIELD_MANAGER;

/// A namespaced roster kind (or Secret, RoleBinding) that roster reads and writes through kube's
/// typed `Api`.
pub trait Object:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Object for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn manager_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Treats "the object is gone" as done: it was deleted while we reconciled.
fn ignore_not_found(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

/// Applies `status` to the status subresource of `obj`, and remembers it until the caches show it
/// (see `recent`).
pub async fn status<K, S>(ctx: &Context, obj: &K, status: &S) -> Result<(), kube::Error>
where
    K: Object,
    S: Serialize,
{
    ignore_not_found(status_at(ctx, obj, status, None).await)?;
    ctx.recent.record(obj, status);
    Ok(())
}

/// Applies `status` to the status subresource of `obj`, only while the object is still at
/// `resource_version` when one is given (409 Conflict otherwise; 404 when it is gone).
pub async fn status_at<K, S>(
    ctx: &Context,
    obj: &K,
    status: &S,
    resource_version: Option<&str>,
) -> Result<(), kube::Error>
where
    K: Object,
    S: Serialize,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let mut body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    if let Some(version) = resource_version {
        body["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    ctx.metrics.write(&K::kind(&()), "status");
    api.patch_status(&obj.name_any(), &apply_params(), &Patch::Apply(&body))
        .await
        .map(drop)
}

/// Applies the metadata roster owns on `obj`: its finalizers. What is left out is released (and
/// removed when nobody else holds it).
pub async fn metadata<K>(ctx: &Context, obj: &K, finalizers: &[&str]) -> Result<(), kube::Error>
where
    K: Object,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let mut meta = serde_json::json!({ "name": obj.name_any() });
    if !finalizers.is_empty() {
        meta["finalizers"] = serde_json::json!(finalizers);
    }
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": meta,
    });
    ctx.metrics.write(&K::kind(&()), "metadata");
    ignore_not_found(
        api.patch(&obj.name_any(), &apply_params(), &Patch::Apply(&body))
            .await
            .map(drop),
    )
}

/// Removes the ownerReferences to an Organization that roster wrote before (see
/// `rules::leftovers`), keeping any other, whoever wrote them and however their managed fields are
/// shared.
pub async fn remove_organization_owners<K>(ctx: &Context, obj: &K) -> Result<(), kube::Error>
where
    K: Object,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let current = obj.owner_references();
    let kept: Vec<&OwnerReference> = current
        .iter()
        .filter(|r| !is_organization_owner(r))
        .collect();
    // A merge patch replaces the whole list; the resourceVersion makes it apply only to the list
    // read (409 Conflict otherwise, and the next reconcile reads again).
    let owners = if kept.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(kept)
    };
    let body = serde_json::json!({ "metadata": {
        "resourceVersion": obj.resource_version(),
        "ownerReferences": owners,
    }});
    ctx.metrics.write(&K::kind(&()), "metadata");
    ignore_not_found(
        api.patch(&obj.name_any(), &manager_params(), &Patch::Merge(&body))
            .await
            .map(drop),
    )
}

/// Deletes `obj` (what it owns goes with it, through the garbage collector).
pub async fn delete<K>(ctx: &Context, obj: &K) -> Result<(), kube::Error>
where
    K: Object,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    ctx.metrics.write(&K::kind(&()), "delete");
    let deleted = api.delete(&obj.name_any(), &DeleteParams::default()).await;
    ignore_not_found(deleted.map(drop))
}

/// Creates the Secret with a fresh code for `invite`, owned by it; returns the Secret as stored.
/// An existing Secret of the same name (a lost race with another reconcile) is read instead.
pub async fn create_code_secret(ctx: &Context, invite: &Invite) -> Result<Secret, kube::Error> {
    let ns = invite.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = code_secret_name(invite);
    let mut random = [0u8; invite_code::RANDOM_BYTES];
    getrandom::fill(&mut random).expect("the operating system provides randomness");
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns),
            labels: Some(BTreeMap::from([
                (INVITE_CODE_LABEL.to_string(), "true".to_string()),
                (
                    crate::names::INVITE_LABEL.to_string(),
                    crate::names::label_value(&invite.name_any()),
                ),
            ])),
            owner_references: Some(vec![
                invite
                    .controller_owner_ref(&())
                    .expect("an Invite from the API has a uid"),
            ]),
            ..Default::default()
        },
        type_: Some(crate::names::INVITE_SECRET_TYPE.into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            "code".to_string(),
            ByteString(invite_code::format(random).into_bytes()),
        )])),
        ..Default::default()
    };
    ctx.metrics.write("Secret", "create");
    match api.create(&PostParams::default(), &secret).await {
        Err(kube::Error::Api(s)) if s.code == 409 => api.get(&name).await,
        other => other,
    }
}
