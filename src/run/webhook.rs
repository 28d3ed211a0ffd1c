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
fn certificate_names(endpoint: Option<&webhook::config::Endpoint>) -> webhook::certs::Names {
    use webhook::config::Endpoint;
    let (dns, ips) = match endpoint {
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
    };
    webhook::certs::Names { dns, ips }
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
    // Listening before the configuration is written: the API server's first calls wait in the
    // backlog for the handshake instead of being refused.
    let listener = webhook::bind(addr)?;
    let tls = match &args.webhook_cert_dir {
        Some(dir) => {
            let tls = webhook::tls::from_files(
                dir.join("tls.crt"),
                dir.join("tls.key"),
                clients,
                metrics.clone(),
            )
            .await?;
            write_configuration(args, client, endpoint.as_ref(), tls.ca_bundle.as_deref()).await?;
            tls
        }
        None => self_managed(args, client, endpoint.as_ref(), clients, &metrics)?
            .start()
            .await
            .context("the self-managed webhook certificate")?,
    };
    let app = webhook::router(
        webhook::Decider::new(caches.clone(), config, client.clone()).with_roster_user(me),
        metrics,
    );
    let server = tokio::spawn(webhook::serve(listener, tls.config.clone(), app, shutdown));
    Ok(Some(server))
}

/// roster's own CA and serving certificate, renewed before they expire: in a cluster, replicas share
/// them through a Secret in their namespace; with `--webhook-config-name`, the configuration's
/// `caBundle` follows them.
fn self_managed(
    args: &RunArgs,
    client: &Client,
    endpoint: Option<&webhook::config::Endpoint>,
    clients: webhook::tls::ClientAuth,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<webhook::self_managed::SelfManaged> {
    use webhook::self_managed::{Publisher, SelfManaged};
    let names = certificate_names(endpoint);
    let policy = args
        .webhook_certificate_policy()
        .context("--webhook-cert-validity, --webhook-cert-renew-before, --webhook-ca-validity")?;
    let certificates = match (std::env::var("POD_NAMESPACE"), &args.webhook_config_name) {
        (Ok(ns), Some(name)) => {
            let secret = webhook::tls::shared_secret_name(name);
            SelfManaged::shared(client, &ns, &secret, names, policy)
        }
        _ => SelfManaged::in_memory(names, policy),
    };
    let certificates = certificates.clients(clients).metrics(metrics.clone());
    Ok(match (&args.webhook_config_name, endpoint) {
        (Some(name), Some(endpoint)) => certificates.publishing(Publisher::new(
            client,
            name,
            endpoint,
            (&args.namespaces, args.webhook_timeout_seconds),
        )),
        _ => certificates,
    })
}

/// Writes the ValidatingWebhookConfiguration with `ca_bundle`, with `--webhook-config-name`.
async fn write_configuration(
    args: &RunArgs,
    client: &Client,
    endpoint: Option<&webhook::config::Endpoint>,
    ca_bundle: Option<&[u8]>,
) -> anyhow::Result<()> {
    let Some(configuration) = configuration(args, endpoint, ca_bundle) else {
        return Ok(());
    };
    let name = configuration.metadata.name.clone().unwrap_or_default();
    webhook::config::apply(client, &configuration)
        .await
        .context("write the ValidatingWebhookConfiguration")?;
    tracing::info!(%name, "wrote the ValidatingWebhookConfiguration");
    Ok(())
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
