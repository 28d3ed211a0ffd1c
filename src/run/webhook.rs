//! The admission webhook's server in `roster run`: its certificate (given, shared between
//! replicas, or self-signed), who may call it, and the ValidatingWebhookConfiguration roster writes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use kube::Client;

use super::RunArgs;
use crate::caches::Caches;
use crate::metrics::Metrics;
use crate::{rules, webhook};

fn endpoint(args: &RunArgs) -> anyhow::Result<Option<webhook::config::Endpoint>> {
    webhook::config::Endpoint::parse(args.webhook_url.as_deref(), args.webhook_service.as_deref())
        .map_err(anyhow::Error::msg)
}

/// Names the self-managed certificate must carry for the endpoint.
fn certificate_names(
    endpoint: Option<&webhook::config::Endpoint>,
) -> (Vec<String>, Vec<std::net::IpAddr>) {
    use webhook::config::Endpoint;
    match endpoint {
        Some(Endpoint::Service {
            namespace, name, ..
        }) => (
            vec![
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}.svc.cluster.local"),
                format!("{name}.{namespace}"),
                name.clone(),
            ],
            vec![],
        ),
        Some(Endpoint::Url(url)) => {
            let host = url
                .split("://")
                .nth(1)
                .unwrap_or(url)
                .split(['/', ':'])
                .next()
                .unwrap_or("localhost");
            match host.parse() {
                Ok(ip) => (vec!["localhost".into()], vec![ip]),
                Err(_) => (vec![host.to_string()], vec![]),
            }
        }
        None => (
            vec!["localhost".into()],
            vec!["127.0.0.1".parse().expect("an IP")],
        ),
    }
}

/// The ValidatingWebhookConfiguration roster writes: with `--webhook-config-name` and an endpoint
/// (`--webhook-url` or `--webhook-service`) only.
fn configuration(
    args: &RunArgs,
    endpoint: Option<&webhook::config::Endpoint>,
    ca_bundle: Option<&[u8]>,
) -> Option<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> {
    Some(webhook::config::configuration(
        args.webhook_config_name.as_deref()?,
        endpoint?,
        ca_bundle,
        &args.namespaces,
        args.webhook_timeout_seconds,
    ))
}

/// Who may call the webhook, from `--webhook-client-ca`.
fn webhook_clients(args: &RunArgs) -> anyhow::Result<webhook::tls::ClientAuth> {
    match &args.webhook_client_ca {
        Some(ca) => {
            tracing::info!(ca = %ca.display(), "the webhook accepts only callers with a client certificate this CA signed");
            webhook::tls::ClientAuth::signed_by(ca)
        }
        None => {
            tracing::warn!(
                "the webhook does not authenticate its callers (no --webhook-client-ca)"
            );
            Ok(webhook::tls::ClientAuth::anyone())
        }
    }
}

/// Starts the webhook server; returns its task.
pub(super) async fn start(
    args: &RunArgs,
    client: &Client,
    caches: &Caches,
    (config, me): (rules::Config, Option<String>),
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<tokio::task::JoinHandle<anyhow::Result<()>>>> {
    if args.webhook_addr.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = args.webhook_addr.parse().context("--webhook-addr")?;
    let endpoint = endpoint(args)?;
    let clients = webhook_clients(args)?;
    let tls = match &args.webhook_cert_dir {
        Some(dir) => {
            webhook::tls::from_files(dir.join("tls.crt"), dir.join("tls.key"), clients).await?
        }
        None => {
            let (dns, ips) = certificate_names(endpoint.as_ref());
            // In a cluster, replicas share one certificate through a Secret in their namespace.
            match (std::env::var("POD_NAMESPACE"), &args.webhook_config_name) {
                (Ok(ns), Some(name)) => {
                    webhook::tls::shared_self_signed(
                        client,
                        &ns,
                        &webhook::tls::shared_secret_name(name),
                        &dns,
                        &ips,
                        webhook::tls::FOLLOW_SHARED_SECRET,
                        clients,
                    )
                    .await?
                }
                _ => webhook::tls::self_signed(&dns, &ips, clients).await?,
            }
        }
    };
    let app = webhook::router(
        webhook::Decider::new(caches.clone(), config, client.clone()).with_roster_user(me),
        metrics,
    );
    let listener = webhook::bind(addr)?;
    let server = tokio::spawn(webhook::serve(listener, tls.config.clone(), app, shutdown));
    if let Some(configuration) = configuration(args, endpoint.as_ref(), tls.ca_bundle.as_deref()) {
        let name = configuration.metadata.name.clone().unwrap_or_default();
        webhook::config::apply(client, &configuration)
            .await
            .context("write the ValidatingWebhookConfiguration")?;
        tracing::info!(%name, "wrote the ValidatingWebhookConfiguration");
    }
    Ok(Some(server))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(flags: &[&str]) -> Result<RunArgs, clap::Error> {
        Cli::try_parse_from(["roster"].iter().chain(flags)).map(|c| c.run)
    }

    fn timeout(flags: &[&str]) -> Option<i32> {
        let args = args(flags).unwrap();
        let endpoint = endpoint(&args).unwrap();
        let config = configuration(&args, endpoint.as_ref(), Some(b"CA"))?;
        config.webhooks.unwrap()[0].timeout_seconds
    }

    #[test]
    fn the_configuration_roster_writes_has_the_timeout_given() {
        let service = [
            "--webhook-config-name",
            "roster",
            "--webhook-service",
            "ns/roster:443",
        ];
        assert_eq!(
            timeout(&service),
            Some(webhook::config::DEFAULT_TIMEOUT_SECONDS)
        );
        let with = [&service[..], &["--webhook-timeout-seconds", "12"]].concat();
        assert_eq!(timeout(&with), Some(12));
        // No configuration without its name (the chart or cert-manager owns it then).
        assert_eq!(timeout(&["--webhook-timeout-seconds", "12"]), None);
    }

    #[test]
    fn timeouts_the_api_server_refuses_are_refused_at_start() {
        for bad in ["0", "31", "-1", "ten"] {
            let err = args(&[&format!("--webhook-timeout-seconds={bad}")]).err();
            let err = err.unwrap_or_else(|| panic!("{bad} accepted")).to_string();
            assert!(err.contains("--webhook-timeout-seconds"), "{bad}: {err}");
        }
        for good in ["1", "30"] {
            assert!(args(&["--webhook-timeout-seconds", good]).is_ok(), "{good}");
        }
    }
}
