//! The webhook's serving certificate: from files (cert-manager, a mounted Secret), reloaded when
//! they change, or self-managed: a CA and a serving certificate generated at start. Optionally it
//! also asks callers for a client certificate, so that only the API server gets through.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

/// A serving configuration, and the CA bundle clients need when roster made the certificate.
pub struct Tls {
    pub config: RustlsConfig,
    pub ca_bundle: Option<Vec<u8>>,
}

fn install_crypto_provider() {
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

/// A rustls server configuration for a PEM certificate chain and key; with a client CA, a
/// connection without a certificate it signed fails in the handshake, before any request is read.
fn server_config(cert: &[u8], key: &[u8], clients: &ClientAuth) -> anyhow::Result<RustlsConfig> {
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

/// Certificate and key from PEM files, reloaded whenever either file's modification time changes.
/// A `ca.crt` beside them (as cert-manager writes it) becomes the `caBundle` roster writes.
pub async fn from_files(cert: PathBuf, key: PathBuf, clients: ClientAuth) -> anyhow::Result<Tls> {
    install_crypto_provider();
    let config = from_pem_files(&cert, &key, &clients)?;
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

/// PEMs of a self-managed certificate: CA, serving certificate, serving key.
struct Generated {
    ca: String,
    cert: String,
    key: String,
}

fn generate(dns_names: &[String], ips: &[std::net::IpAddr]) -> anyhow::Result<Generated> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "roster webhook CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(dns_names.to_vec())?;
    leaf.subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    leaf.distinguished_name.push(
        DnType::CommonName,
        dns_names.first().map_or("roster-webhook", |d| d.as_str()),
    );
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok(Generated {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn serving(g: Generated, clients: &ClientAuth) -> anyhow::Result<Tls> {
    let config = server_config(g.cert.as_bytes(), g.key.as_bytes(), clients)?;
    Ok(Tls {
        config,
        ca_bundle: Some(g.ca.into_bytes()),
    })
}

/// A fresh CA and a serving certificate for `dns_names` and `ips` (rcgen's default validity); the
/// CA's PEM goes into the ValidatingWebhookConfiguration's `caBundle`.
pub async fn self_signed(
    dns_names: &[String],
    ips: &[std::net::IpAddr],
    clients: ClientAuth,
) -> anyhow::Result<Tls> {
    install_crypto_provider();
    serving(generate(dns_names, ips)?, &clients)
}

/// The Secret that replicas share a self-managed certificate through, for the webhook
/// configuration `config_name`. The chart renders it empty (so that `helm uninstall` removes it and
/// its CA key) under the same name.
pub fn shared_secret_name(config_name: &str) -> String {
    format!("{config_name}-webhook-self-managed")
}

/// Like [`self_signed`], but shared by every replica through a Secret: the first replica to start
/// fills it (or creates it, when no chart made it), the others (and restarts) use it, so all serve
/// what the one `caBundle` trusts.
pub async fn shared_self_signed(
    client: &kube::Client,
    namespace: &str,
    secret: &str,
    dns_names: &[String],
    ips: &[std::net::IpAddr],
    follow_every: Duration,
    clients: ClientAuth,
) -> anyhow::Result<Tls> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};
    install_crypto_provider();
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api.get_opt(secret).await?;
    let shared = match existing.as_ref().and_then(shared_pems) {
        Some(shared) => shared,
        None => {
            let g = generate(dns_names, ips)?;
            let data = [("ca.crt", &g.ca), ("tls.crt", &g.cert), ("tls.key", &g.key)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
                .collect();
            let written = match existing {
                // Rendered empty by the chart: fill it, unless another replica filled it meanwhile
                // (the resourceVersion makes the replace fail then).
                Some(mut empty) => {
                    empty.data = Some(data);
                    api.replace(secret, &PostParams::default(), &empty).await
                }
                None => {
                    let object = Secret {
                        metadata: kube::api::ObjectMeta {
                            name: Some(secret.into()),
                            labels: Some(
                                [("app.kubernetes.io/name".to_string(), "roster".to_string())]
                                    .into(),
                            ),
                            ..Default::default()
                        },
                        type_: Some("Opaque".into()),
                        data: Some(data),
                        ..Default::default()
                    };
                    api.create(&PostParams::default(), &object).await
                }
            };
            match written {
                Ok(_) => g,
                // Another replica was first: use its certificate.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    shared_pems(&api.get(secret).await?)
                        .context("the shared webhook certificate Secret is incomplete")?
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let serving_cert = shared.cert.clone();
    let tls = serving(shared, &clients)?;
    follow_shared_secret(
        api,
        secret.to_string(),
        (tls.config.clone(), clients),
        serving_cert,
        follow_every,
    );
    Ok(tls)
}

/// The CA, certificate and key in a shared Secret, when all three are there.
fn shared_pems(s: &k8s_openapi::api::core::v1::Secret) -> Option<Generated> {
    let data = s.data.as_ref()?;
    let field = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
    Some(Generated {
        ca: field("ca.crt")?,
        cert: field("tls.crt")?,
        key: field("tls.key")?,
    })
}

/// How often replicas check the shared Secret for a certificate that replaced theirs.
pub const FOLLOW_SHARED_SECRET: Duration = Duration::from_secs(30);

/// Serves whatever certificate the shared Secret holds, checked every `every`: when a replica
/// started later had to fill it again (it was emptied by a forced `helm upgrade`, say) and wrote
/// its CA into the webhook configuration, the replicas already running follow instead of serving a
/// certificate nothing trusts any more.
fn follow_shared_secret(
    api: kube::Api<k8s_openapi::api::core::v1::Secret>,
    secret: String,
    (config, clients): (RustlsConfig, ClientAuth),
    mut serving_cert: String,
    every: Duration,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Ok(Some(now)) = api.get_opt(&secret).await else {
                continue;
            };
            let Some(shared) = shared_pems(&now) else {
                continue;
            };
            if shared.cert == serving_cert {
                continue;
            }
            match server_config(shared.cert.as_bytes(), shared.key.as_bytes(), &clients) {
                Ok(fresh) => {
                    config.reload_from_config(fresh.get_inner());
                    tracing::info!(%secret, "serving the shared webhook certificate that replaced ours");
                    serving_cert = shared.cert;
                }
                Err(e) => {
                    tracing::warn!(error = %e, %secret, "could not load the shared webhook certificate")
                }
            }
        }
    });
}
