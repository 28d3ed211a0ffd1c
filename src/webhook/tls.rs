//! The webhook's serving certificate: from files (cert-manager, a mounted Secret), reloaded when
//! they change, or self-managed: a CA and a serving certificate generated at start.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A serving configuration, and the CA bundle clients need when roster made the certificate.
pub struct Tls {
    pub config: RustlsConfig,
    pub ca_bundle: Option<Vec<u8>>,
}

fn install_crypto_provider() {
    // Several crates link rustls; pick ring explicitly (no OpenSSL, no aws-lc).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Certificate and key from PEM files, reloaded whenever either file's modification time changes.
pub async fn from_files(cert: PathBuf, key: PathBuf) -> anyhow::Result<Tls> {
    install_crypto_provider();
    let config = RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| {
            format!(
                "load the webhook certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })?;
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
                match reloading.reload_from_pem_file(&cert, &key).await {
                    Ok(()) => {
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
    Ok(Tls {
        config,
        ca_bundle: None,
    })
}

/// A fresh CA and a serving certificate for `dns_names` and `ips` (rcgen's default validity); the CA's PEM
/// goes into the ValidatingWebhookConfiguration's `caBundle`.
pub async fn self_signed(dns_names: &[String], ips: &[std::net::IpAddr]) -> anyhow::Result<Tls> {
    install_crypto_provider();
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

    let config =
        RustlsConfig::from_pem(cert.pem().into_bytes(), key.serialize_pem().into_bytes()).await?;
    Ok(Tls {
        config,
        ca_bundle: Some(ca_cert.pem().into_bytes()),
    })
}
