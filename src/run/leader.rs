//! Leader election in `roster run` (`--leader-elect`): replicas share a Lease, and only its holder
//! runs the controller. A leader stops writing as soon as it loses the Lease, and releases it on
//! SIGTERM so that a standby takes over at once.

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Controller, RunArgs, Stop};

/// The task that keeps (or waits for) the Lease; it returns the manager, to release the Lease.
type LeaseTask = JoinHandle<Result<LeaseManager, LeaseManagerError>>;

/// Runs `controller` once this replica leads, until SIGTERM or lost leadership; then releases the
/// Lease.
pub(super) async fn run(
    args: &RunArgs,
    client: &Client,
    identity: &str,
    stop: &Stop,
    controller: Controller,
) -> anyhow::Result<()> {
    let election = Election {
        client,
        args,
        identity,
        namespace: args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into()),
    };
    let (leading, lease_task) = match election.campaign(stop).await? {
        (true, leading, lease_task) => (leading, lease_task),
        (false, leading, lease_task) => {
            drop(leading);
            return release(lease_task).await;
        }
    };
    tracing::info!(%identity, "became leader");
    controller.run(until_lost(&leading, stop)).await?;
    drop(leading);
    release(lease_task).await
}

/// The Lease this replica competes for.
struct Election<'a> {
    client: &'a Client,
    args: &'a RunArgs,
    identity: &'a str,
    namespace: String,
}

impl Election<'_> {
    async fn manager(&self) -> Result<LeaseManager, LeaseManagerError> {
        LeaseManagerBuilder::new(self.client.clone(), &self.args.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(self.identity)
            .with_duration(self.args.lease_duration)
            .with_grace((self.args.lease_duration / 3).max(1))
            .build()
            .await
    }

    /// A new manager competing for the Lease: whether this replica leads, and its task.
    async fn compete(&self) -> anyhow::Result<(watch::Receiver<bool>, LeaseTask)> {
        Ok(self.manager().await?.watch().await)
    }

    /// Waits until this replica leads (true) or SIGTERM (false); returns the leadership watch and
    /// the Lease's task either way.
    async fn campaign(
        &self,
        stop: &Stop,
    ) -> anyhow::Result<(bool, watch::Receiver<bool>, LeaseTask)> {
        let (mut leading, mut lease_task) = self.compete().await?;
        let (lease, namespace, identity) = (&self.args.lease_name, &self.namespace, self.identity);
        tracing::info!(%lease, %namespace, %identity, "waiting to become leader");
        // kube-lease-manager sleeps until the holder's lease would expire, even when the holder
        // released it early (a graceful shutdown). A standby that sees the lease free starts its
        // manager over, which takes the lease at once.
        let leases: kube::Api<Lease> = kube::Api::namespaced(self.client.clone(), namespace);
        let became_leader = loop {
            match next_turn(&mut leading, &leases, lease, stop).await? {
                Turn::Leader => break true,
                Turn::Stopped => break false,
                Turn::Released => {}
            }
            tracing::debug!("the lease was released; trying to take it");
            lease_task.abort();
            (leading, lease_task) = self.compete().await?;
        };
        Ok((became_leader, leading, lease_task))
    }
}

/// What ended one wait for the Lease.
enum Turn {
    /// This replica holds the Lease.
    Leader,
    /// The holder released the Lease: worth trying again at once.
    Released,
    /// SIGTERM.
    Stopped,
}

async fn next_turn(
    leading: &mut watch::Receiver<bool>,
    leases: &kube::Api<Lease>,
    lease: &str,
    stop: &Stop,
) -> anyhow::Result<Turn> {
    tokio::select! {
        r = leading.wait_for(|l| *l) => {
            r.context("leader election stopped")?;
            Ok(Turn::Leader)
        }
        _ = released(leases, lease) => Ok(Turn::Released),
        _ = stop.wait() => Ok(Turn::Stopped),
    }
}

/// Resolves on SIGTERM, or as soon as leadership is lost: a replica that is not sure it leads must
/// not write.
fn until_lost(
    leading: &watch::Receiver<bool>,
    stop: &Stop,
) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
    let (end_tx, mut end_rx) = watch::channel(false);
    let mut lost = leading.clone();
    let until_stopped = stop.wait();
    tokio::spawn(async move {
        tokio::select! {
            _ = lost.wait_for(|l| !*l) => tracing::warn!("lost leadership"),
            _ = until_stopped => {},
        }
        let _ = end_tx.send(true);
    });
    async move {
        let _ = end_rx.wait_for(|e| *e).await;
    }
}

/// Resolves once the Lease is seen without a holder (released by a leader that shut down), polling
/// it every second: a `get` of the one Lease is all the RBAC a replica has on Leases.
async fn released(leases: &kube::Api<Lease>, name: &str) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if let Ok(Some(lease)) = leases.get_opt(name).await
            && lease
                .spec
                .and_then(|s| s.holder_identity)
                .is_none_or(|h| h.is_empty())
        {
            return;
        }
    }
}

/// Releases the Lease, so that a standby takes over at once.
async fn release(lease_task: LeaseTask) -> anyhow::Result<()> {
    if let Ok(Ok(manager)) = lease_task.await
        && let Err(e) = manager.release().await
    {
        tracing::warn!(error = %e, "could not release the lease");
    }
    Ok(())
}
