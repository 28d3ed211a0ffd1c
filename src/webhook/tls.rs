//! The webhook's serving certificate: from files (cert-manager, a mounted Secret), reloaded when
//! they change, or self-managed ([`super::self_managed`]: a CA and serving certificate roster makes
//! and renews). Optionally it also asks callers for a client certificate, so that only the API
//! server gets through.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use crate::metrics::{CertificateKind, Metrics};

/// A serving configuration, and the CA bundle clients need when roster made the certificate.
pub struct Tls {
    pub config: RustlsConfig,
    pub ca_bundle: Option<Vec<u8>>,
}

pub(super) fn install_crypto_provider() {
    // Several crates link rustls; pick ring explicitly (no OpenSSL, no aws-lc).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Who may open a connection to the webhook. Anyone who can reach its port could otherwise POST
/// AdmissionReviews; with a client CA, only callers with a certificate it signed (the API server,
/// configured with a `WebhookAdmissionConfiguration` kubeconfig) get past the TLS handshake.
#[derive(Clone, Default)]
pub struct ClientAuth(Option<Arc<dyn ClientCertVerifier>>);

impl ClientAuth {
    /// Any caller: no client certificate is asked for.
    pub fn anyone() -> ClientAuth {
        ClientAuth(None)
    }

    /// Only callers with a certificate signed by a CA in the PEM file `ca`.
    pub fn signed_by(ca: &Path) -> anyhow::Result<ClientAuth> {
        install_crypto_provider();
        let pem = std::fs::read(ca)
            .with_context(|| format!("read the webhook client CA {}", ca.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.with_context(|| format!("parse {}", ca.display()))?)?;
        }
        anyhow::ensure!(
            !roots.is_empty(),
            "the webhook client CA {} holds no certificate",
            ca.display()
        );
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .with_context(|| format!("use {} as the webhook client CA", ca.display()))?;
        Ok(ClientAuth(Some(verifier)))
    }
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the certificate or key is not PEM: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("the certificate and key cannot be served: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls server configuration for a PEM certificate chain and key; with a client CA, a
/// connection without a certificate it signed fails in the handshake, before any request is read.
pub(super) fn server_config(
    cert: &[u8],
    key: &[u8],
    clients: &ClientAuth,
) -> Result<RustlsConfig, ServeError> {
    let chain = CertificateDer::pem_slice_iter(cert).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key)?;
    let builder = ServerConfig::builder();
    let builder = match &clients.0 {
        Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    // What axum-server sets when it builds the configuration itself.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

fn from_pem_files(cert: &Path, key: &Path, clients: &ClientAuth) -> anyhow::Result<RustlsConfig> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("read {}", p.display()));
    server_config(&read(cert)?, &read(key)?, clients).with_context(|| {
        format!(
            "load the webhook certificate {} and key {}",
            cert.display(),
            key.display()
        )
    })
}

/// Publishes when the certificate in the PEM file `cert` expires.
fn measure_expiry(cert: &Path, metrics: &Metrics) {
    let pem = std::fs::read_to_string(cert).unwrap_or_default();
    if let Some(at) = super::certs::not_after(&pem) {
        metrics.set_certificate_expiry(CertificateKind::Serving, at);
    }
    let ca = cert.with_file_name("ca.crt");
    let pem = std::fs::read_to_string(ca).unwrap_or_default();
    if let Some(at) = super::certs::not_after(&pem) {
        metrics.set_certificate_expiry(CertificateKind::Ca, at);
    }
}

/// Certificate and key from PEM files, reloaded whenever either file's modification time changes.
/// A `ca.crt` beside them (as cert-manager writes it) becomes the `caBundle` roster writes.
pub async fn from_files(
    cert: PathBuf,
    key: PathBuf,
    clients: ClientAuth,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Tls> {
    install_crypto_provider();
    let config = from_pem_files(&cert, &key, &clients)?;
    measure_expiry(&cert, &metrics);
    let ca_bundle = cert
        .parent()
        .and_then(|dir| std::fs::read(dir.join("ca.crt")).ok());
    let reloading = config.clone();
    tokio::spawn(async move {
        let stamp = |p: &PathBuf| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        let mut seen = (stamp(&cert), stamp(&key));
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = (stamp(&cert), stamp(&key));
            if now != seen {
                match from_pem_files(&cert, &key, &clients) {
                    Ok(fresh) => {
                        reloading.reload_from_config(fresh.get_inner());
                        measure_expiry(&cert, &metrics);
                        tracing::info!(cert = %cert.display(), "reloaded the webhook certificate");
                        seen = now;
                    }
                    // A half-written pair (cert updated, key not yet): try again on the next tick.
                    Err(e) => {
                        tracing::warn!(error = %e, "could not reload the webhook certificate yet")
                    }
                }
            }
        }
    });
    Ok(Tls { config, ca_bundle })
}

/// A fresh self-managed CA and serving certificate for `dns_names` and `ips`, kept in this process
/// alone and renewed in it (the default validities); nothing writes its CA anywhere.
pub async fn self_signed(
    dns_names: &[String],
    ips: &[std::net::IpAddr],
    clients: ClientAuth,
) -> Result<Tls, super::self_managed::SelfManagedError> {
    let names = super::certs::Names {
        dns: dns_names.to_vec(),
        ips: ips.to_vec(),
    };
    super::self_managed::SelfManaged::in_memory(names, Default::default())
        .clients(clients)
        .start()
        .await
}

/// The Secret that replicas share a self-managed certificate through, for the webhook
/// configuration `config_name`. The chart renders it empty (so that `helm uninstall` removes it and
/// its CA key) under the same name.
pub fn shared_secret_name(config_name: &str) -> String {
    format!("{config_name}-webhook-self-managed")
}
