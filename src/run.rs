//! `roster run`: the operator process. Flags, logging, the metrics server, leader election and
//! graceful shutdown around [`crate::controller::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::Reporter;
use kube::{Client, Config};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::controller::{self, Scope};
use crate::metrics::{self, Metrics};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Runs the operator.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Kubeconfig to use; without it, the in-cluster service account (or $KUBECONFIG, ~/.kube/config).
    #[arg(long, env = "ROSTER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Namespaces to watch, comma-separated; empty watches all namespaces.
    #[arg(long, env = "ROSTER_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "ROSTER_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Elect a leader among replicas with a Lease, so that only one of them writes.
    #[arg(long, env = "ROSTER_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// Name of the leader election Lease.
    #[arg(long, env = "ROSTER_LEASE_NAME", default_value = "roster-controller")]
    pub lease_name: String,

    /// Namespace of the leader election Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "ROSTER_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Seconds a leader's Lease is valid without renewal; a new leader takes over after that.
    #[arg(long, env = "ROSTER_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,

    /// Identity in the Lease and in Events (default: $POD_NAME, else the hostname and pid).
    #[arg(long, env = "ROSTER_IDENTITY")]
    pub identity: Option<String>,

    /// Log format.
    #[arg(long, env = "ROSTER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log level or filter, for example `info` or `roster=debug,kube=info`.
    #[arg(long, env = "ROSTER_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

fn init_logging(args: &RunArgs) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn client(args: &RunArgs) -> anyhow::Result<Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn termination() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(&args);
    let client = client(&args).await?;
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    // A fresh future each time it is needed, all resolving on the same SIGTERM.
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        termination().await;
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(metrics::serve(
        args.metrics_addr,
        metrics.clone(),
        stopped(),
    ));

    let reporter = Reporter {
        controller: "roster".into(),
        instance: Some(identity.clone()),
    };
    let scope = Scope {
        namespaces: args.namespaces.clone(),
    };

    if args.leader_elect {
        let lease_ns = args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&lease_ns)
            .with_identity(&identity)
            .with_duration(args.lease_duration)
            .with_grace((args.lease_duration / 3).max(1))
            .build()
            .await?;
        let (mut leading, lease_task) = manager.watch().await;
        tracing::info!(lease = %args.lease_name, namespace = %lease_ns, %identity, "waiting to become leader");
        let became_leader = tokio::select! {
            r = leading.wait_for(|l| *l) => { r.context("leader election stopped")?; true }
            _ = stopped() => false,
        };
        if !became_leader {
            drop(leading);
            return finish(server, lease_task).await;
        }
        tracing::info!(%identity, "became leader");
        // Stop on SIGTERM, or as soon as leadership is lost: a replica that is not sure it leads
        // must not write.
        let (end_tx, mut end_rx) = watch::channel(false);
        let mut lost = leading.clone();
        let until_stopped = stopped();
        tokio::spawn(async move {
            tokio::select! {
                _ = lost.wait_for(|l| !*l) => tracing::warn!("lost leadership"),
                _ = until_stopped => {},
            }
            let _ = end_tx.send(true);
        });
        let shutdown = async move {
            let _ = end_rx.wait_for(|e| *e).await;
        };
        controller::run(client, scope, metrics, reporter, shutdown).await?;
        drop(leading);
        finish(server, lease_task).await
    } else {
        controller::run(client, scope, metrics, reporter, stopped()).await?;
        server.await??;
        Ok(())
    }
}

/// Releases the Lease (so a standby takes over at once) and stops the metrics server.
async fn finish(
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    lease_task: tokio::task::JoinHandle<
        Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
    >,
) -> anyhow::Result<()> {
    if let Ok(Ok(manager)) = lease_task.await
        && let Err(e) = manager.release().await
    {
        tracing::warn!(error = %e, "could not release the lease");
    }
    server.abort();
    Ok(())
}
