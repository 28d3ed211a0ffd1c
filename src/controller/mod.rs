//! The controller: watches the four kinds and the invite code Secrets, reconciles one org namespace
//! at a time through [`crate::rules::compute`], and writes back only what changed.
//!
//! The reconcile key is the org *namespace*, not the Organization: Memberships, Invites and Teams may
//! arrive before their Organization (GitOps applies in any order) and must still get a status saying
//! so, and an Organization that is gone leaves objects to release. All writes for one namespace are
//! serialized by the kube-runtime Controller.

pub mod apply;
mod bindings;
mod codes;
mod delivery;
pub mod error;
mod recent;
mod reconcile;
mod snapshot;
mod writes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::caches::Caches;
pub use crate::caches::{INVITE_CODE_LABEL, Scope, Stores};
use crate::metrics::Metrics;

pub use apply::FIELD_MANAGER;
pub use error::Error;
pub use reconcile::{OWNER_PROTECTION, RESYNC};

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// What the installer allows: ClusterRoles to bind, namespaces never to touch.
    pub config: crate::rules::Config,
    /// Sends e-mail through the platform's relay, when one is configured.
    pub mail: crate::mail::Mailer,
    /// Consecutive failures per namespace, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Statuses written that the caches may not show yet.
    recent: recent::RecentWrites,
    /// The namespaces this replica is responsible for. Scoped to more than one, it watches (and is
    /// asked to reconcile) every namespace of the cluster, so it must skip those outside the scope.
    pub scope: Scope,
    /// Set when the controller shuts down (SIGTERM, or leadership lost): reconciles in flight stop
    /// writing at once instead of finishing (the next leader or start recomputes what is left).
    stopping: Arc<AtomicBool>,
}

impl Context {
    /// Whether the controller is shutting down; reconciles then write nothing more.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// What the controller runs with.
pub struct Parts {
    pub client: Client,
    pub caches: Caches,
    pub scope: Scope,
    pub metrics: Arc<Metrics>,
    pub config: crate::rules::Config,
    pub mail: crate::mail::Mailer,
    pub reporter: Reporter,
}

impl Parts {
    /// Runs the controller until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) -> anyhow::Result<()> {
        run(self, shutdown).await
    }
}

/// Runs the controller on `parts.caches` until `shutdown` resolves.
pub async fn run(
    parts: Parts,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let Parts {
        client,
        caches,
        scope,
        metrics,
        config,
        mail,
        reporter,
    } = parts;
    let watch = watcher::Config::default().any_semantic();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace_config = match scope.namespaces.as_slice() {
        [one] => watch.fields(&format!("metadata.name={one}")),
        _ => watch,
    };
    // Every change the caches see, as "reconcile this org namespace".
    let triggers = caches.triggers();
    let stopping = Arc::new(AtomicBool::new(false));
    let controller = Controller::new(namespaces, namespace_config)
        .with_config(
            ControllerConfig::default()
                .concurrency(8)
                .debounce(Duration::from_millis(100)),
        )
        .reconcile_on(triggers)
        .graceful_shutdown_on({
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                stopping.store(true, Ordering::Relaxed);
            }
        });

    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        stores: caches.stores.clone(),
        metrics,
        config,
        mail,
        failures: Mutex::new(HashMap::new()),
        recent: recent::RecentWrites::default(),
        scope: scope.clone(),
        stopping,
    });
    caches.ready().await;
    tracing::info!("caches synced; reconciling");
    let metrics = ctx.metrics.clone();
    metrics.set_leader(true);
    controller
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile did not complete");
            }
        })
        .await;
    metrics.set_leader(false);
    Ok(())
}

/// Exponential backoff per namespace: 0.5 s, 1 s, 2 s, ... up to 5 minutes.
fn error_policy(ns: Arc<Namespace>, error: &Error, ctx: Arc<Context>) -> Action {
    let category = error.category();
    ctx.metrics.reconcile_error(category);
    let mut failures = ctx.failures.lock().expect("failures lock");
    let n = failures.entry(ns.name_any()).or_insert(0);
    *n = (*n + 1).min(20);
    let delay = Duration::from_millis(500u64.saturating_mul(1 << (*n - 1).min(10)))
        .min(Duration::from_secs(300));
    tracing::warn!(namespace = %ns.name_any(), %error, category, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
