//! The access step of a reconcile: write the RoleBindings the organization should have, remove the
//! ones it should not, label the org and workload namespaces with the data region, and say how that
//! went as `AccessSynced` conditions.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::Context;
use super::apply::FIELD_MANAGER;
use super::error::Failure;
use super::writes::Writes;
use crate::api::{Membership, MembershipStatus, Organization, Team};
use crate::caches::{BindingKey, Fingerprint};
use crate::rules::rbac::{self, Claims, DATA_REGION_LABEL};

pub use crate::rules::access_conditions::Synced;

/// Namespace and name of a binding.
fn key(b: &RoleBinding) -> BindingKey {
    let meta = b.meta();
    (
        meta.namespace.as_deref().unwrap_or_default().into(),
        meta.name.as_deref().unwrap_or_default().into(),
    )
}

/// Applies one binding; a changed roleRef (immutable) means deleting the old binding first.
async fn apply_binding(
    ctx: &Context,
    b: &RoleBinding,
    wanted: Fingerprint,
    old: Option<Fingerprint>,
) -> Result<(), Failure> {
    let (ns, name) = (b.namespace().unwrap_or_default(), b.name_any());
    let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &ns);
    let mut body = serde_json::to_value(b).expect("serializable");
    body["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
    body["kind"] = "RoleBinding".into();
    if old.is_some_and(|old| old.role_ref != wanted.role_ref) {
        ctx.metrics.write("RoleBinding", "delete");
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
    ctx.metrics.write("RoleBinding", "apply");
    let written = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| Failure::ApplyBinding {
            namespace: ns,
            name,
            source,
        })?;
    // Into the cache at once, as the API server answered: the next reconcile in a burst may start
    // before the watch delivers it, and would write the binding again.
    (ctx.stores.role_bindings).apply(&kube::runtime::watcher::Event::Apply(written));
    Ok(())
}

async fn remove_binding(ctx: &Context, (ns, name): &BindingKey) -> Result<(), Failure> {
    ctx.metrics.write("RoleBinding", "delete");
    match Api::<RoleBinding>::namespaced(ctx.client.clone(), ns)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Failure::RemoveBinding {
            namespace: ns.to_string(),
            name: name.to_string(),
            source,
        }),
    }
}

/// Brings the organization's RoleBindings to what its effective state implies. Without an
/// Organization (or while it is deleted) that is none. Returns what was done, and the failures
/// (sorted: writes finish in any order, and the condition that reports them must read the same
/// each time).
pub async fn sync(
    ctx: &Context,
    namespace: &str,
    org: Option<&Organization>,
    memberships: &[(&Membership, &MembershipStatus)],
    teams: &[Team],
) -> (Synced, Vec<Failure>) {
    let existing = ctx.stores.role_bindings.of_organization(namespace);
    // An org of 10,000 members has 10,000 bindings: look them up, never scan for each, and keep
    // only the wanted ones that differ, never all of them.
    let by_key: HashMap<&BindingKey, Fingerprint> = existing.iter().map(|(k, f)| (k, *f)).collect();
    let mut wanted: HashSet<BindingKey> = HashSet::new();
    let mut changed = Vec::new();
    let claims = match org.filter(|o| o.meta().deletion_timestamp.is_none()) {
        Some(org) => {
            let all = ctx.stores.organizations.state();
            let all: Vec<&Organization> = all.iter().map(|o| o.as_ref()).collect();
            let claims = rbac::claims(org, &all, &ctx.config.excluded_namespaces);
            let allowed = &ctx.config.allowed_cluster_roles;
            rbac::each_binding(org, &claims, memberships, teams, allowed, |b| {
                let (key, fingerprint) = (key(&b), Fingerprint::of(&b));
                let old = by_key.get(&key).copied();
                if !old.is_some_and(|e| e.holds(&fingerprint)) {
                    changed.push((b, fingerprint, old));
                }
                wanted.insert(key);
            });
            claims
        }
        None => Claims::default(),
    };

    let mut failures = Vec::new();
    let mut writes = Writes::new();
    for (b, fingerprint, old) in &changed {
        if ctx.stopping() {
            break;
        }
        let done = writes.push(apply_binding(ctx, b, *fingerprint, *old)).await;
        failures.extend(done.into_iter().filter_map(Result::err));
    }
    failures.extend(writes.finish().await.into_iter().filter_map(Result::err));
    let mut writes = Writes::new();
    for (e, _) in &existing {
        if ctx.stopping() {
            break;
        }
        if wanted.contains(e) {
            continue;
        }
        let done = writes.push(remove_binding(ctx, e)).await;
        failures.extend(done.into_iter().filter_map(Result::err));
    }
    failures.extend(writes.finish().await.into_iter().filter_map(Result::err));
    // Writes finish in any order; the condition that reports failures must read the same each time.
    failures.sort_by_cached_key(ToString::to_string);
    if let Some(org) = org.filter(|o| o.meta().deletion_timestamp.is_none()) {
        label_data_region(ctx, org, namespace, &claims, &mut failures).await;
    }
    let messages = failures.iter().map(ToString::to_string).collect();
    let synced = Synced {
        claims,
        failures: messages,
    };
    (synced, failures)
}

/// Propagates `spec.dataRegion` as a label on the org namespace and its workload namespaces that
/// exist, written whenever the namespace's label (as the namespace watch last saw it) differs: a
/// changed region or a label someone removed comes back. A namespace the org no longer claims
/// keeps its label (see README, "Access").
async fn label_data_region(
    ctx: &Context,
    org: &Organization,
    namespace: &str,
    claims: &Claims,
    failures: &mut Vec<Failure>,
) {
    let region = org.spec.data_region.as_str();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in std::iter::once(namespace).chain(claims.granted.iter().map(String::as_str)) {
        let Some(current) = ctx.stores.namespaces.get(&ObjectRef::new(ns)) else {
            continue;
        };
        if current.labels().get(DATA_REGION_LABEL).map(String::as_str) == Some(region) {
            continue;
        }
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": ns, "labels": { DATA_REGION_LABEL: region } }
        });
        ctx.metrics.write("Namespace", "label");
        if let Err(source) = api
            .patch(
                ns,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            failures.push(Failure::LabelNamespace {
                namespace: ns.to_string(),
                source,
            });
        }
    }
}
