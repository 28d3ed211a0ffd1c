use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

// jemalloc, not glibc's malloc: a burst (an org of 10,000 members reconciled, a cold start)
// allocates tens of megabytes of short-lived objects among the long-lived caches, and glibc kept
// the holes they left, so the resident set grew by 5 KiB per Membership of a big org against 2 KiB
// with jemalloc (`benches/converge.rs`, docs/scale.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Two arenas (the controller runs few reconciles at once; jemalloc would make four per CPU the
/// node has, not per CPU the pod may use), a background thread that returns freed pages, and
/// freed pages returned after a second instead of ten.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] =
    b"background_thread:true,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// roster: organizations, memberships, invites and teams as Kubernetes custom resources.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions of all roster kinds as YAML
    /// (`roster crds | kubectl apply --server-side -f -`).
    Crds {
        /// Write one file per kind into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the ValidatingWebhookConfiguration for a webhook at a URL or behind a Service.
    WebhookConfig {
        /// The URL the API server calls, such as `https://127.0.0.1:8443/validate`.
        #[arg(long, conflicts_with = "service", required_unless_present = "service")]
        url: Option<String>,
        /// The Service the API server calls, as `NAMESPACE/NAME[:PORT]`.
        #[arg(long)]
        service: Option<String>,
        /// Name of the configuration.
        #[arg(long, default_value = "roster")]
        name: String,
        /// PEM file with the CA that signed the webhook's certificate.
        #[arg(long)]
        ca_bundle_file: Option<PathBuf>,
        /// Restrict the webhook to these namespaces (comma-separated); default all.
        #[arg(long, value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Seconds the API server waits for the webhook (1 to 30) before it fails the request.
        #[arg(
            long,
            default_value_t = roster::webhook::config::DEFAULT_TIMEOUT_SECONDS,
            value_parser = clap::value_parser!(i32).range(roster::webhook::config::TIMEOUT_SECONDS)
        )]
        timeout_seconds: i32,
    },
    /// Run the operator: reconcile organizations and keep their status true.
    Run(Box<roster::run::RunArgs>),
    /// Check that roster works in a cluster: the API server serves the four roster kinds, and
    /// roster's admission webhook answers (a server-side dry run of an Organization, which the
    /// webhook refuses to anyone who is no platform principal, must be refused by it). Prints a
    /// line per check; exits 1 when one fails. The chart's `helm test` runs it.
    SelfTest(roster::self_test::SelfTestArgs),
    /// Validate org manifests offline, as a GitOps repository's CI would: schema and CEL rules of
    /// each object, then the invariants of each org namespace (owners, duplicates, seats, invites).
    /// Exits 1 when there are errors.
    Check(CheckArgs),
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Files or folders (searched recursively for *.yaml and *.yml; multi-document files welcome).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: CheckOutput,
    /// Namespace for objects that set none (like `kubectl apply -n`).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
    /// ClusterRoles `spec.access.clusterRoles` may name (as configured on `roster run`).
    #[arg(long, value_delimiter = ',', default_value = "admin,edit,view")]
    allowed_cluster_roles: Vec<String>,
    /// Namespaces an organization may never claim (as configured on `roster run`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kube-system,kube-public,kube-node-lease"
    )]
    excluded_namespaces: Vec<String>,
    /// An identity provider Invites and selfJoin policies may be bound to, as configured on
    /// `roster run` (`name=NAME,usernamePrefix=PREFIX[,tenantKey=KEY]`; repeat it for each).
    #[arg(
        long = "identity-provider",
        value_name = "name=NAME,usernamePrefix=PREFIX[,tenantKey=KEY]"
    )]
    identity_providers: Vec<roster::rules::IdentityProvider>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CheckOutput {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => roster::run::run(*args).await?,
        Command::SelfTest(args) => {
            if !roster::self_test::run(args).await? {
                std::process::exit(1);
            }
        }
        Command::Check(args) => {
            let report = roster::check::check(&roster::check::Options {
                paths: args.paths,
                namespace: args.namespace,
                config: roster::check::config(
                    &args.allowed_cluster_roles,
                    &args.excluded_namespaces,
                    roster::rules::IdentityProviders::new(args.identity_providers)
                        .map_err(|e| anyhow::anyhow!("--identity-provider: {e}"))?,
                ),
            });
            match args.output {
                CheckOutput::Text => print!("{}", report.text()),
                CheckOutput::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            if report.errors > 0 || (args.strict && report.warnings > 0) {
                std::process::exit(1);
            }
        }
        Command::WebhookConfig {
            url,
            service,
            name,
            ca_bundle_file,
            namespaces,
            timeout_seconds,
        } => {
            let endpoint =
                roster::webhook::config::Endpoint::parse(url.as_deref(), service.as_deref())
                    .map_err(anyhow::Error::msg)?
                    .context("give --url or --service")?;
            let ca = match ca_bundle_file {
                Some(f) => {
                    Some(std::fs::read(&f).with_context(|| format!("read {}", f.display()))?)
                }
                None => None,
            };
            let config = roster::webhook::config::configuration(
                &name,
                &endpoint,
                ca.as_deref(),
                &namespaces,
                timeout_seconds,
            );
            let mut value = serde_json::to_value(&config)?;
            value["apiVersion"] = "admissionregistration.k8s.io/v1".into();
            value["kind"] = "ValidatingWebhookConfiguration".into();
            print!("{}", serde_yaml::to_string(&value)?);
        }
        Command::Crds { dir: None } => print!("{}", roster::crds::all_yaml()),
        Command::Crds { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            for (file, crd) in roster::crds::all() {
                let path = dir.join(file);
                std::fs::write(&path, roster::crds::to_yaml(&crd))
                    .with_context(|| format!("write {}", path.display()))?;
            }
        }
    }
    Ok(())
}
