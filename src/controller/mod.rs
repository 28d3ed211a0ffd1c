//! The controller: watches the four kinds and the invite code Secrets, reconciles one org namespace
//! at a time through [`crate::rules::compute`], and writes back only what changed.
//!
//! The reconcile key is the org *namespace*, not the Organization: Memberships, Invites and Teams may
//! arrive before their Organization (GitOps applies in any order) and must still get a status saying
//! so, and an Organization that is gone leaves objects to release. All writes for one namespace are
//! serialized by the kube-runtime Controller.

mod apply;
mod reconcile;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::{Invite, Membership, Organization, Team};
use crate::metrics::Metrics;

pub use apply::FIELD_MANAGER;
pub use reconcile::OWNER_PROTECTION;

/// Label on the Secrets that hold invite codes; the controller watches only these Secrets.
pub const INVITE_CODE_LABEL: &str = "roster.dev/invite-code";

/// What the controller reads: one cache per kind, filled by watches.
#[derive(Clone)]
pub struct Stores {
    pub organizations: Store<Organization>,
    pub memberships: Store<Membership>,
    pub invites: Store<Invite>,
    pub teams: Store<Team>,
    pub secrets: Store<Secret>,
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per namespace, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
}

/// Which namespaces to watch: all, or a list.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub namespaces: Vec<String>,
}

impl Scope {
    fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match self.namespaces.as_slice() {
            [one] => Api::namespaced(client.clone(), one),
            _ => Api::all(client.clone()),
        }
    }

    fn contains(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }
}

/// A watched kind: its cache, and a stream of changes mapped to the org namespace it belongs to.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    scope: &Scope,
) -> (
    Store<K>,
    impl futures::Stream<Item = ObjectRef<Namespace>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let scope = scope.clone();
    let stream = watcher(api, config)
        .default_backoff()
        // Caches hold thousands of objects; managedFields would be most of their size.
        .modify(|o: &mut K| o.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
        .filter_map(move |r| {
            let found = match r {
                Ok(o) => o
                    .namespace()
                    .filter(|ns| scope.contains(ns))
                    .map(|ns| ObjectRef::new(&ns)),
                Err(e) => {
                    // The watcher retries with backoff by itself; say why it is behind.
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed, retrying");
                    None
                }
            };
            std::future::ready(found)
        });
    (reader, stream)
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    scope: Scope,
    metrics: Arc<Metrics>,
    reporter: Reporter,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let config = watcher::Config::default().any_semantic();
    let (organizations, org_changes) =
        watch(scope.api::<Organization>(&client), config.clone(), &scope);
    let (memberships, membership_changes) =
        watch(scope.api::<Membership>(&client), config.clone(), &scope);
    let (invites, invite_changes) = watch(scope.api::<Invite>(&client), config.clone(), &scope);
    let (teams, team_changes) = watch(scope.api::<Team>(&client), config.clone(), &scope);
    let (secrets, secret_changes) = watch(
        scope.api::<Secret>(&client),
        config.clone().labels(INVITE_CODE_LABEL),
        &scope,
    );
    let stores = Stores {
        organizations,
        memberships,
        invites,
        teams,
        secrets,
    };

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace_config = match scope.namespaces.as_slice() {
        [one] => config.clone().fields(&format!("metadata.name={one}")),
        _ => config.clone(),
    };
    let controller = Controller::new(namespaces, namespace_config)
        .with_config(
            ControllerConfig::default()
                .concurrency(8)
                .debounce(Duration::from_millis(100)),
        )
        .reconcile_on(org_changes)
        .reconcile_on(membership_changes)
        .reconcile_on(invite_changes)
        .reconcile_on(team_changes)
        .reconcile_on(secret_changes)
        .graceful_shutdown_on(shutdown);

    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        stores: stores.clone(),
        metrics: metrics.clone(),
        failures: Mutex::new(HashMap::new()),
    });

    // Ready once every cache has listed what exists.
    let ready = {
        let s = stores.clone();
        let m = metrics.clone();
        tokio::spawn(async move {
            let _ = s.organizations.wait_until_ready().await;
            let _ = s.memberships.wait_until_ready().await;
            let _ = s.invites.wait_until_ready().await;
            let _ = s.teams.wait_until_ready().await;
            let _ = s.secrets.wait_until_ready().await;
            m.set_ready(true);
            tracing::info!("caches synced");
        })
    };

    controller
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile did not complete");
            }
        })
        .await;
    ready.abort();
    metrics.set_ready(false);
    Ok(())
}

/// Exponential backoff per namespace: 0.5 s, 1 s, 2 s, ... up to 5 minutes.
fn error_policy(ns: Arc<Namespace>, error: &reconcile::Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    let mut failures = ctx.failures.lock().expect("failures lock");
    let n = failures.entry(ns.name_any()).or_insert(0);
    *n = (*n + 1).min(20);
    let delay = Duration::from_millis(500u64.saturating_mul(1 << (*n - 1).min(10)))
        .min(Duration::from_secs(300));
    tracing::warn!(namespace = %ns.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
