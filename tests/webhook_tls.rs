//! Both certificate modes of the webhook, with the real API server calling it over TLS: files (as
//! cert-manager or a mounted Secret provide them, reloaded when they change) and self-managed
//! certificates shared by replicas through a Secret.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A CA and a serving certificate for 127.0.0.1, written as cert-manager writes a Secret's keys.
fn write_certificate(dir: &Path) -> String {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = leaf
        .signed_by(&key, &rcgen::Issuer::from_params(&ca, &ca_key))
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    // Write to temporary names and rename, as the kubelet swaps a Secret volume atomically.
    for (name, pem) in [
        ("ca.crt", ca_cert.pem()),
        ("tls.crt", cert.pem()),
        ("tls.key", key.serialize_pem()),
    ] {
        let tmp = dir.join(format!(".{name}"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    ca_cert.pem()
}

/// Whether a TLS handshake with 127.0.0.1:`port` succeeds when trusting only `ca`.
async fn trusted_by(port: u16, ca: &str) -> bool {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
            tcp,
        )
        .await
        .is_ok()
}

#[tokio::test]
async fn certificates_from_files_are_served_and_reloaded_when_they_change() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "tls-files").await;
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("certs");
    let first_ca = write_certificate(&dir);
    let port = support::free_port();
    let _operator = support::Operator::start(
        &[&ns],
        &[
            "--webhook-addr",
            &format!("127.0.0.1:{port}"),
            "--webhook-url",
            &format!("https://127.0.0.1:{port}/validate"),
            "--webhook-config-name",
            &format!("roster-{ns}"),
            "--webhook-cert-dir",
            dir.to_str().unwrap(),
        ],
    );
    // The API server reaches the webhook with the caBundle taken from ca.crt.
    support::wait_for_webhook(&client, &ns).await;
    assert!(trusted_by(port, &first_ca).await);

    // A renewed certificate (a new CA, even) is picked up without a restart.
    let second_ca = write_certificate(&dir);
    support::eventually(
        "the renewed certificate to be served",
        Duration::from_secs(20),
        || async { trusted_by(port, &second_ca).await.then_some(()) },
    )
    .await;
    assert!(
        !trusted_by(port, &first_ca).await,
        "the old certificate is no longer served"
    );
}

#[tokio::test]
async fn replicas_share_one_self_managed_certificate() {
    let client = support::admin_client().await;
    let ns = support::namespace(&client, "tls-shared").await;
    let names = ["localhost".to_string()];
    let ips = ["127.0.0.1".parse().unwrap()];
    let a =
        roster::webhook::tls::shared_self_signed(&client, &ns, "roster-webhook-tls", &names, &ips)
            .await
            .unwrap();
    let b =
        roster::webhook::tls::shared_self_signed(&client, &ns, "roster-webhook-tls", &names, &ips)
            .await
            .unwrap();
    assert_eq!(
        a.ca_bundle, b.ca_bundle,
        "the second replica serves the first one's certificate"
    );
    let fresh = roster::webhook::tls::self_signed(&names, &ips)
        .await
        .unwrap();
    assert_ne!(
        a.ca_bundle, fresh.ca_bundle,
        "a self-managed certificate is otherwise new each time"
    );
    let secret = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, &ns)
        .get("roster-webhook-tls")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
}
