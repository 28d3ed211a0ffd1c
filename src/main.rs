use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    },
    /// Run the operator: reconcile organizations and keep their status true.
    Run(Box<roster::run::RunArgs>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => roster::run::run(*args).await?,
        Command::WebhookConfig {
            url,
            service,
            name,
            ca_bundle_file,
            namespaces,
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
