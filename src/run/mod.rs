//! `roster run`: the operator process. Flags, logging, the metrics server, leader election
//! (`leader`), the webhook server (`webhook`) and graceful shutdown around
//! [`crate::controller::run`].

mod leader;
mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::Reporter;
use kube::{Client, Config};
use tokio::sync::watch;

use crate::caches::{Caches, Scope};
use crate::metrics::{self, Metrics};
use crate::{controller, rules};

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

    /// Address of the admission webhook (HTTPS); an empty value disables the webhook.
    #[arg(long, env = "ROSTER_WEBHOOK_ADDR", default_value = "0.0.0.0:8443")]
    pub webhook_addr: String,

    /// Directory with `tls.crt` and `tls.key` for the webhook (cert-manager, a mounted Secret),
    /// reloaded when they change. Without it, roster generates a CA and certificate at start.
    #[arg(long, env = "ROSTER_WEBHOOK_CERT_DIR")]
    pub webhook_cert_dir: Option<PathBuf>,

    /// How long a self-managed serving certificate is valid (`2160h`: 90 days, cert-manager's
    /// default). Without `--webhook-cert-dir`, roster makes and renews it.
    #[arg(long, env = "ROSTER_WEBHOOK_CERT_VALIDITY", default_value = "2160h", value_parser = duration)]
    pub webhook_cert_validity: Duration,

    /// Renew a self-managed serving certificate when this much of its validity is left (`720h`: a
    /// third, as cert-manager renews). Every replica checks the shared Secret a tenth of this often
    /// (at most every 30 s, at least every second).
    #[arg(long, env = "ROSTER_WEBHOOK_CERT_RENEW_BEFORE", default_value = "720h", value_parser = duration)]
    pub webhook_cert_renew_before: Duration,

    /// How long a self-managed CA is valid (`26280h`: three years). It is replaced, without a failed
    /// request, with a third of it left: the new CA is trusted first, then signs.
    #[arg(long, env = "ROSTER_WEBHOOK_CA_VALIDITY", default_value = "26280h", value_parser = duration)]
    pub webhook_ca_validity: Duration,

    /// PEM file with the CA that signs the API server's client certificate for webhooks
    /// (`--admission-control-config-file`). With it, the webhook refuses, in the TLS handshake, every
    /// caller without a certificate that CA signed; without it, anyone who reaches the port may call.
    /// Read at start: restart roster when it changes.
    #[arg(long, env = "ROSTER_WEBHOOK_CLIENT_CA")]
    pub webhook_client_ca: Option<PathBuf>,

    /// Seconds the webhook and /metrics keep serving after SIGTERM, with /readyz failing, so that
    /// the API server stops calling this replica before it closes its port (a rolling update fails
    /// no admission; the chart sets 5). The controller stops and releases its Lease at once.
    #[arg(long, env = "ROSTER_SHUTDOWN_DRAIN", default_value_t = 0)]
    pub shutdown_drain: u64,

    /// Name of the ValidatingWebhookConfiguration roster writes (with the CA it generated) at start.
    /// Without it roster writes none (for example when the Helm chart or cert-manager owns it).
    #[arg(long, env = "ROSTER_WEBHOOK_CONFIG_NAME")]
    pub webhook_config_name: Option<String>,

    /// URL the API server calls, for a webhook outside the cluster (`https://127.0.0.1:8443/validate`).
    #[arg(long, env = "ROSTER_WEBHOOK_URL", conflicts_with = "webhook_service")]
    pub webhook_url: Option<String>,

    /// Service the API server calls, as `NAMESPACE/NAME:PORT`.
    #[arg(long, env = "ROSTER_WEBHOOK_SERVICE")]
    pub webhook_service: Option<String>,

    /// Seconds the API server waits for the webhook (1 to 30) before it fails the request, in the
    /// ValidatingWebhookConfiguration roster writes (`--webhook-config-name`).
    #[arg(
        long,
        env = "ROSTER_WEBHOOK_TIMEOUT_SECONDS",
        default_value_t = crate::webhook::config::DEFAULT_TIMEOUT_SECONDS,
        value_parser = clap::value_parser!(i32).range(crate::webhook::config::TIMEOUT_SECONDS)
    )]
    pub webhook_timeout_seconds: i32,

    /// Groups whose members are platform principals (skip role checks, never the invariants).
    #[arg(
        long,
        env = "ROSTER_PLATFORM_GROUPS",
        value_delimiter = ',',
        default_value = "system:masters"
    )]
    pub platform_groups: Vec<String>,

    /// Users who are platform principals, such as GitOps controllers'
    /// `system:serviceaccount:argocd:argocd-application-controller`. roster's own identity and
    /// Kubernetes' namespace and garbage collector controllers are added.
    #[arg(long, env = "ROSTER_PLATFORM_USERS", value_delimiter = ',')]
    pub platform_users: Vec<String>,

    /// ClusterRoles that `spec.access.clusterRoles` may name.
    #[arg(
        long,
        env = "ROSTER_ALLOWED_CLUSTER_ROLES",
        value_delimiter = ',',
        default_value = "admin,edit,view"
    )]
    pub allowed_cluster_roles: Vec<String>,

    /// Namespaces that are never org namespaces and that no `spec.access.namespaces` may claim
    /// (roster's own is added).
    #[arg(
        long,
        env = "ROSTER_EXCLUDED_NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system,kube-public,kube-node-lease"
    )]
    pub excluded_namespaces: Vec<String>,

    /// An identity provider Invites and selfJoin policies may be bound to, as
    /// `name=NAME,usernamePrefix=PREFIX[,tenantKey=EXTRA_KEY]`: the prefix the authenticator puts
    /// on this provider's usernames (structured authentication's `claimMappings.username.prefix`,
    /// such as `google:`) and the `userInfo.extra` key that carries a user's tenant (a
    /// `claimMappings.extra` key, such as `entra.example/tid`). Repeat it for each provider; in
    /// the environment variable, separate providers with `;`. Prefixes must be non-empty and none
    /// may start another. Example: `--identity-provider name=google,usernamePrefix=google:`.
    #[arg(
        long = "identity-provider",
        env = "ROSTER_IDENTITY_PROVIDERS",
        value_delimiter = ';',
        value_name = "name=NAME,usernamePrefix=PREFIX[,tenantKey=KEY]"
    )]
    pub identity_providers: Vec<rules::IdentityProvider>,

    /// The SMTP relay for invitation e-mails: `smtps://HOST[:465]` (TLS), `smtp://HOST[:587]`
    /// (STARTTLS, required) or `smtp://HOST:PORT?tls=none` (a relay on the same node). Without it
    /// roster sends no e-mail, and Invites of organizations that ask for it say so.
    #[arg(long, env = "ROSTER_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// The relay login; the password comes from $ROSTER_SMTP_PASSWORD or --smtp-password-file,
    /// never from a flag (flags show in the process list).
    #[arg(long, env = "ROSTER_SMTP_USERNAME", requires = "smtp_url")]
    pub smtp_username: Option<String>,

    /// A file holding the relay password (a mounted Secret).
    #[arg(long, env = "ROSTER_SMTP_PASSWORD_FILE", requires = "smtp_username")]
    pub smtp_password_file: Option<PathBuf>,

    /// PEM file of CA certificates to trust for the relay besides the system's.
    #[arg(long, env = "ROSTER_SMTP_CA_FILE", requires = "smtp_url")]
    pub smtp_ca_file: Option<PathBuf>,

    /// The longest one e-mail attempt may take, from connecting to the relay's answer.
    #[arg(long, env = "ROSTER_SMTP_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub smtp_timeout: Duration,

    /// The wait before a failed e-mail is tried again, doubled for each further attempt (at most
    /// an hour). Failures that could have delivered the message are never retried.
    #[arg(long, env = "ROSTER_SMTP_RETRY_AFTER", default_value = "30s", value_parser = duration)]
    pub smtp_retry_after: Duration,

    /// The sender of roster's e-mails, such as `Acme Platform <no-reply@platform.example>`.
    #[arg(long, env = "ROSTER_MAIL_FROM", requires = "smtp_url")]
    pub mail_from: Option<String>,

    /// A portal link for invitations instead of the kubectl command, with `{namespace}`,
    /// `{invite}`, `{role}` and `{code}` replaced, such as
    /// `https://portal.example/join?org={namespace}&invite={invite}`.
    #[arg(long, env = "ROSTER_JOIN_URL_TEMPLATE", requires = "smtp_url")]
    pub join_url_template: Option<String>,
}

/// A Go duration (`2160h`, `1h30m`, `20s`), as cert-manager's `duration` is written.
fn duration(text: &str) -> Result<Duration, String> {
    rules::ttl::parse(text)
        .and_then(|d| Duration::try_from(d).ok())
        .ok_or_else(|| format!("{text:?} is not a duration such as 2160h, 90m or 20s"))
}

impl RunArgs {
    /// The identity providers, checked together (each one was checked as its flag was read).
    pub fn identity_providers(&self) -> anyhow::Result<rules::IdentityProviders> {
        rules::IdentityProviders::new(self.identity_providers.iter().cloned())
            .map_err(|e| anyhow::anyhow!("--identity-provider: {e}"))
    }

    /// The self-managed certificates' validities, when they work together.
    pub fn webhook_certificate_policy(
        &self,
    ) -> Result<crate::webhook::rotation::Policy, crate::webhook::rotation::PolicyError> {
        crate::webhook::rotation::Policy::new(
            self.webhook_cert_validity,
            self.webhook_cert_renew_before,
            self.webhook_ca_validity,
        )
    }
}

/// Runs the operator: every replica keeps the caches and serves the webhook; only the leader (every
/// replica, without `--leader-elect`) runs the controller.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Refused before anything starts: an operator that cannot check the providers Invites name
    // would refuse every one of them.
    args.identity_providers()?;
    init_logging(&args);
    let client = client(args.kubeconfig.as_deref()).await?;
    let identity = identity(&args);
    let metrics = Arc::new(Metrics::default());
    let stop = Stop::on_termination();
    let drain = std::time::Duration::from_secs(args.shutdown_drain);
    unready_on(&stop, &metrics);
    let server = tokio::spawn(metrics::serve(
        args.metrics_addr,
        metrics.clone(),
        stop.drained(drain),
    ));

    let scope = Scope {
        namespaces: args.namespaces.clone(),
    };
    let relay = relay(&args)?;
    let (config, me) = rules_config(&args, &client).await?;
    if !config.identity_providers.is_empty() {
        tracing::info!(
            identity_providers = %config.identity_providers.describe(),
            "Invites and selfJoin policies may be bound to these identity providers"
        );
    }
    let caches = start_caches(&client, &scope, &metrics);
    let mail = crate::mail::Mailer::new(relay, caches.waker(), metrics.clone());
    let webhook_server = webhook::start(
        &args,
        &client,
        &caches,
        (config.clone(), me),
        metrics.clone(),
        stop.drained(drain),
    )
    .await?;
    let controller = Controller {
        client: client.clone(),
        caches,
        scope,
        metrics,
        config,
        mail,
        reporter: Reporter {
            controller: "roster".into(),
            instance: Some(identity.clone()),
        },
    };
    if args.leader_elect {
        leader::run(&args, &client, &identity, &stop, controller).await?;
    } else {
        controller.run(stop.wait()).await?;
    }
    if let Some(w) = webhook_server {
        w.await??;
    }
    server.await??;
    Ok(())
}

/// The relay from the `--smtp-*` flags, checked before anything starts.
fn relay(args: &RunArgs) -> anyhow::Result<Option<crate::mail::Relay>> {
    let Some(url) = args.smtp_url.as_deref() else {
        return Ok(None);
    };
    let password = match &args.smtp_password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--smtp-password-file {}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        None => std::env::var("ROSTER_SMTP_PASSWORD").ok(),
    };
    let relay = crate::mail::Relay::new(crate::mail::relay::Settings {
        url,
        username: args.smtp_username.as_deref(),
        password,
        ca_file: args.smtp_ca_file.as_deref(),
        from: args.mail_from.as_deref(),
        join_url: args.join_url_template.as_deref(),
        timeout: args.smtp_timeout,
        first_retry: args.smtp_retry_after,
    })?;
    tracing::info!(host = %relay.host, port = relay.port, security = ?relay.security, "e-mail through SMTP relay");
    Ok(Some(relay))
}

/// Identity in the Lease and in Events: `--identity`, else $POD_NAME, else the hostname and pid.
fn identity(args: &RunArgs) -> String {
    args.identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        })
}

/// Starts the caches; readiness (`/readyz`) follows once they have synced.
fn start_caches(client: &Client, scope: &Scope, metrics: &Arc<Metrics>) -> Caches {
    let mut caches = Caches::start(client, scope);
    caches.stores.code_reads = metrics.invite_code_reads.clone();
    let (synced, metrics) = (caches.clone(), metrics.clone());
    tokio::spawn(async move {
        synced.ready().await;
        metrics.set_ready(true);
        tracing::info!("caches synced");
    });
    caches
}

/// SIGTERM (or Ctrl-C), seen by every part that stops on it.
#[derive(Clone)]
struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Watches for SIGTERM and Ctrl-C.
    fn on_termination() -> Stop {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            termination().await;
            let _ = stop_tx.send(true);
        });
        Stop(stop_rx)
    }

    /// A fresh future each time it is needed, all resolving on the same SIGTERM.
    fn wait(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Resolves `drain` after SIGTERM.
    fn drained(
        &self,
        drain: std::time::Duration,
    ) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let stopped = self.wait();
        async move {
            stopped.await;
            tokio::time::sleep(drain).await;
        }
    }
}

/// Fails /readyz from SIGTERM on, so that endpoints drop this replica while it still serves.
fn unready_on(stop: &Stop, metrics: &Arc<Metrics>) {
    let (stopped, metrics) = (stop.wait(), metrics.clone());
    tokio::spawn(async move {
        stopped.await;
        metrics.set_ready(false);
    });
}

/// What the controller runs with.
type Controller = controller::Parts;

/// Who roster itself is, so that its own writes (owner references, finalizers) count as a
/// platform principal's. Asked a few times: without it, the webhook would refuse roster's own
/// writes (the chart also names its ServiceAccount in `--platform-users`).
async fn own_username(client: &Client) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: kube::Api<SelfSubjectReview> = kube::Api::all(client.clone());
    let review: SelfSubjectReview = serde_json::from_value(serde_json::json!({}))?;
    let mut last = None;
    for attempt in 0..5u32 {
        match api.create(&Default::default(), &review).await {
            Ok(r) => {
                return r
                    .status
                    .and_then(|s| s.user_info?.username)
                    .context("the SelfSubjectReview names no user");
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "could not ask who roster is yet");
                last = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(500 << attempt)).await;
            }
        }
    }
    Err(last.expect("an error after failed attempts"))
        .context("asking the API server who roster is (SelfSubjectReview)")
}

/// What the installer decides, plus roster's own identity as a platform principal; and that
/// identity, which alone writes status.
async fn rules_config(
    args: &RunArgs,
    client: &Client,
) -> anyhow::Result<(rules::Config, Option<String>)> {
    let mut config = rules::Config {
        platform_users: args.platform_users.iter().cloned().collect(),
        // `--platform-groups ""` (the chart's empty list) names no group.
        platform_groups: args
            .platform_groups
            .iter()
            .filter(|g| !g.is_empty())
            .cloned()
            .collect(),
        allowed_cluster_roles: args.allowed_cluster_roles.iter().cloned().collect(),
        excluded_namespaces: args.excluded_namespaces.iter().cloned().collect(),
        identity_providers: args.identity_providers()?,
    };
    config.platform_users.extend(
        rules::actor::KUBERNETES_CONTROLLERS
            .iter()
            .map(|u| u.to_string()),
    );
    let me = match own_username(client).await {
        Ok(me) => Some(me),
        // Its webhook admits status writes from roster's own identity only: a replica that does
        // not know it would refuse every status write, its leader's included. Better restarted.
        Err(e) if !args.webhook_addr.is_empty() => {
            return Err(e.context("roster's webhook admits status writes from roster alone"));
        }
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "roster does not know its own username: unless --platform-users names it, a webhook refuses roster's own owner references, finalizers and status"
            );
            None
        }
    };
    config.platform_users.extend(me.clone());
    if let Ok(ns) = std::env::var("POD_NAMESPACE") {
        config.excluded_namespaces.insert(ns);
    }
    Ok((config, me))
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

/// A client from `kubeconfig`, else the in-cluster service account (or $KUBECONFIG,
/// ~/.kube/config).
pub(crate) async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
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
