//! Webhook replicas and their certificates, with the real API server calling them over TLS: files
//! (as cert-manager or a mounted Secret provide them, reloaded when they change), self-managed
//! certificates shared by replicas through a Secret, the removal budget per replica, and callers
//! authenticated by client certificate (only the API server's get through the handshake).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use roster::api::{Membership, MembershipPhase};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

/// Validities of seconds: the replicas of these tests check the shared Secret every second (every
/// 30 s in production).
fn short_policy() -> roster::webhook::rotation::Policy {
    roster::webhook::rotation::Policy::new(
        Duration::from_secs(20),
        Duration::from_secs(10),
        Duration::from_secs(40),
    )
    .unwrap()
}

/// The names a webhook on loopback serves.
fn local_names() -> roster::webhook::certs::Names {
    roster::webhook::certs::Names {
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
    }
}

/// A CA and a serving certificate for 127.0.0.1, written as cert-manager writes a Secret's keys.
fn write_certificate(dir: &Path) -> String {
    let (ca, cert, key) = support::localhost_certificate();
    std::fs::create_dir_all(dir).unwrap();
    // Write to temporary names and rename, as the kubelet swaps a Secret volume atomically.
    for (name, pem) in [("ca.crt", ca.clone()), ("tls.crt", cert), ("tls.key", key)] {
        let tmp = dir.join(format!(".{name}"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    ca
}

/// A client certificate and key (PEM) a caller presents, if any.
type Identity = Option<(String, String)>;

/// What the API server presents to webhooks (hack/control-plane.sh configures it).
fn api_server() -> Identity {
    Some(support::api_server_webhook_identity())
}

/// A client certificate of a CA the webhook was never told about.
fn stranger() -> Identity {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf
        .signed_by(&key, &rcgen::Issuer::from_params(&ca, &ca_key))
        .unwrap();
    Some((cert.pem(), key.serialize_pem()))
}

/// Whether a TLS handshake with 127.0.0.1:`port` succeeds when trusting only `ca` (presenting the
/// API server's client certificate, which webhooks that authenticate callers ask for).
async fn trusted_by(port: u16, ca: &str) -> bool {
    connect(port, ca, &api_server()).await.is_ok()
}

/// A TLS connection to 127.0.0.1:`port` that trusts only `ca` and presents `identity`.
async fn connect(
    port: u16,
    ca: &str,
    identity: &Identity,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
            tcp,
        )
        .await
}

/// POSTs `review` to /validate at 127.0.0.1:`port` as `identity`; the raw HTTP response, or the
/// error that ended the exchange. With TLS 1.3 the server checks the client's certificate after the
/// client's side of the handshake is done, so a refusal may only surface when reading.
async fn exchange(
    port: u16,
    ca: &str,
    identity: &Identity,
    review: &Value,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = connect(port, ca, identity)
        .await
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(review).unwrap();
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A refused write still leaves the server's alert to read, which says why.
    let written = match tls.write_all(head.as_bytes()).await {
        Ok(()) => tls.write_all(&body).await,
        e => e,
    };
    let mut raw = Vec::new();
    let read = tls.read_to_end(&mut raw).await;
    // The server may close without a TLS close_notify after a full response.
    match (read, raw.is_empty()) {
        (Err(e), true) => Err(e.to_string()),
        (Ok(_), true) if written.is_err() => Err(written.unwrap_err().to_string()),
        (Ok(_), true) => Err("closed without a response".into()),
        _ => Ok(String::from_utf8(raw).unwrap()),
    }
}

/// POSTs an AdmissionReview to a webhook at 127.0.0.1:`port`, as the API server would (with its
/// client certificate), and returns its response.
async fn post_review(port: u16, ca: &str, review: &Value) -> Value {
    let raw = exchange(port, ca, &api_server(), review)
        .await
        .expect("an HTTP response");
    let (status, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(status.starts_with("HTTP/1.1 200"), "{raw}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"))
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
            "--webhook-client-ca",
            &support::webhook_client_ca(),
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
    let replica = || {
        roster::webhook::self_managed::SelfManaged::shared(
            &client,
            &ns,
            "roster-webhook-tls",
            local_names(),
            short_policy(),
        )
        .start()
    };
    let a = replica().await.unwrap();
    let b = replica().await.unwrap();
    assert_eq!(
        a.ca_bundle, b.ca_bundle,
        "the second replica serves the first one's certificate"
    );
    let names = local_names();
    let fresh = roster::webhook::tls::self_signed(&names.dns, &names.ips, Default::default())
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
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let keys: Vec<&str> = secret
        .data
        .as_ref()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
}

/// `maxRemovalsPerHour` counts what a replica's own webhook admitted as removals by someone else
/// and its watch then saw go: another replica's admissions it cannot tell from people leaving, so it
/// does not count them (the budget binds per replica). A review POSTed straight to a replica, which
/// the API server never sent and which deleted nothing, leaves no lasting trace in the count.
#[tokio::test]
async fn each_replica_counts_the_removals_it_admitted_and_forged_reviews_leave_no_trace() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "tls-budget").await;
    support::allow_roster_rbac(&client, &ns).await;
    // Replica A: its webhook is the one the API server calls.
    let _a = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&client, &ns).await;
    // Replica B: serves /validate too (certificates from files, so this test can trust it), but is
    // registered nowhere: it learns of A's decisions only from the cluster.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("certs");
    let ca = write_certificate(&dir);
    let b_port = support::free_port();
    let b = support::Operator::start(
        &[&ns],
        &[
            "--webhook-addr",
            &format!("127.0.0.1:{b_port}"),
            "--webhook-cert-dir",
            dir.to_str().unwrap(),
            "--webhook-client-ca",
            &support::webhook_client_ca(),
        ],
    );
    support::eventually("replica B to be ready", Duration::from_secs(30), || async {
        b.ready().then_some(())
    })
    .await;

    support::apply(
        &client,
        &ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  policy:\n    minOwners: 1\n    maxRemovalsPerHour: 2\n",
    )
    .await;
    support::apply_memberships(
        &client,
        &ns,
        &[
            ("owner", "owner@example.com", "owner"),
            ("m1", "m1@example.com", "member"),
            ("m2", "m2@example.com", "member"),
            ("m3", "m3@example.com", "member"),
        ],
    )
    .await;
    let memberships: kube::Api<Membership> = kube::Api::namespaced(client.clone(), &ns);
    let m3 = support::eventually("m3 to be Active", Duration::from_secs(30), || async {
        let m = memberships.get("m3").await.ok()?;
        (m.status.as_ref()?.phase == Some(MembershipPhase::Active)).then_some(m)
    })
    .await;
    // What B answers when the owner asks to remove a Membership (a dry run: asking spends nothing).
    let review_b = |m: &Membership, dry_run: bool| {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "b-budget", "operation": "DELETE", "dryRun": dry_run,
                "kind": { "group": "roster.dev", "version": "v1alpha1", "kind": "Membership" },
                "resource": { "group": "roster.dev", "version": "v1alpha1", "resource": "memberships" },
                "requestKind": { "group": "roster.dev", "version": "v1alpha1", "kind": "Membership" },
                "requestResource": { "group": "roster.dev", "version": "v1alpha1", "resource": "memberships" },
                "name": m.metadata.name, "namespace": ns,
                "userInfo": { "username": "owner@example.com", "groups": ["system:authenticated"] },
                "oldObject": serde_json::to_value(m).unwrap(),
            }
        });
        let ca = ca.clone();
        async move { post_review(b_port, &ca, &review).await["response"].clone() }
    };
    let ask_b = |m: &Membership| review_b(m, true);
    // B knows the organization (it refuses removing its only owner), and m3 is within the budget.
    let owner_membership = memberships.get("owner").await.unwrap();
    support::eventually(
        "replica B to know the organization",
        Duration::from_secs(10),
        || async {
            let answer = ask_b(&owner_membership).await;
            let message = answer["status"]["message"].as_str().unwrap_or_default();
            message.contains("[rule LastOwner]").then_some(())
        },
    )
    .await;
    let before = ask_b(&m3).await;
    assert_eq!(before["allowed"], true, "within the budget: {before}");

    // A admits two removals through the API server, and counts them: the third is refused.
    let owner = support::client_as("owner@example.com", &[]).await;
    let as_owner: kube::Api<Membership> = kube::Api::namespaced(owner, &ns);
    for name in ["m1", "m2"] {
        as_owner
            .delete(name, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("removing {name}: {e}"));
    }
    let e = as_owner
        .delete("m3", &Default::default())
        .await
        .expect_err("the third removal through A is over the budget");
    assert!(e.to_string().contains("[rule RemovalBudget]"), "{e}");
    // B saw them go, but not who removed them.
    support::eventually(
        "replica B to see m1 and m2 go",
        Duration::from_secs(10),
        || async { (memberships.get_opt("m2").await.unwrap().is_none()).then_some(()) },
    )
    .await;
    let answer = ask_b(&m3).await;
    assert_eq!(answer["allowed"], true, "B counts only its own: {answer}");

    // Two forged removals straight to B's port take B's budget only until the watch fails to
    // confirm them.
    for uid in ["forged-1", "forged-2"] {
        let mut m = m3.clone();
        m.metadata.uid = Some(uid.into());
        let answer = review_b(&m, false).await;
        assert_eq!(answer["allowed"], true, "{answer}");
    }
    let answer = ask_b(&m3).await;
    assert_eq!(answer["allowed"], false, "reserved for a moment: {answer}");
    let message = answer["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("[rule RemovalBudget]"), "{answer}");
    support::eventually(
        "the unconfirmed reservations to expire",
        Duration::from_secs(30),
        || async { (ask_b(&m3).await["allowed"] == true).then_some(()) },
    )
    .await;
    assert!(memberships.get_opt("m3").await.unwrap().is_some());
}

/// A replica serves the certificate in the shared Secret even when another replica replaced it
/// after it started (the Secret was emptied, say, and refilled with a new CA that the other replica
/// then wrote into the webhook configuration).
#[tokio::test]
async fn replicas_follow_the_shared_certificate_when_it_is_replaced() {
    let client = support::admin_client().await;
    let ns = support::namespace(&client, "tls-follow").await;
    // Callers authenticated: a reload must keep asking for the client certificate.
    let clients =
        roster::webhook::tls::ClientAuth::signed_by(support::webhook_client_ca().as_ref()).unwrap();
    let tls = roster::webhook::self_managed::SelfManaged::shared(
        &client,
        &ns,
        "shared",
        local_names(),
        short_policy(),
    )
    .clients(clients)
    .start()
    .await
    .unwrap();
    let first_ca = String::from_utf8(tls.ca_bundle.clone().unwrap()).unwrap();
    let listener = roster::webhook::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(roster::webhook::serve(
        listener,
        tls.config.clone(),
        axum::Router::new(),
        std::future::pending(),
    ));
    assert!(trusted_by(port, &first_ca).await);

    // Another replica refills the Secret with a certificate of its own.
    let scratch = tempfile::tempdir().unwrap();
    let second_ca = write_certificate(scratch.path());
    let pem = |name: &str| std::fs::read(scratch.path().join(name)).unwrap();
    let secrets = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, &ns);
    let mut secret = secrets.get("shared").await.unwrap();
    secret.data = Some(
        ["ca.crt", "tls.crt", "tls.key"]
            .into_iter()
            .map(|k| (k.to_string(), k8s_openapi::ByteString(pem(k))))
            .collect(),
    );
    secrets
        .replace("shared", &Default::default(), &secret)
        .await
        .unwrap();
    support::eventually(
        "the replica to serve the replacing certificate",
        Duration::from_secs(20),
        || async { trusted_by(port, &second_ca).await.then_some(()) },
    )
    .await;
    assert!(!trusted_by(port, &first_ca).await);
    let anonymous = exchange(port, &second_ca, &None, &json!({})).await;
    assert!(anonymous.is_err(), "{anonymous:?}");
}

/// Only the API server may call the webhook: a forged AdmissionReview POSTed straight to its port is
/// refused in the TLS handshake without a client certificate, or with one another CA signed, while
/// the API server's calls (and the same review with its client certificate) are answered.
#[tokio::test]
async fn only_callers_with_the_api_servers_client_certificate_reach_the_webhook() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "tls-callers").await;
    let _operator = support::operator_with_webhook(&[&ns]);
    support::wait_for_webhook(&client, &ns).await;
    let config = kube::Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&format!("roster-{ns}"))
        .await
        .unwrap();
    let hook = &config.webhooks.unwrap()[0].client_config;
    let ca = String::from_utf8(hook.ca_bundle.clone().unwrap().0).unwrap();
    let url = hook.url.clone().unwrap();
    let port: u16 = url
        .trim_start_matches("https://127.0.0.1:")
        .trim_end_matches("/validate")
        .parse()
        .unwrap();

    let forged = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "forged", "operation": "CREATE",
            "kind": { "group": "roster.dev", "version": "v1alpha1", "kind": "Organization" },
            "resource": { "group": "roster.dev", "version": "v1alpha1", "resource": "organizations" },
            "name": "org", "namespace": ns,
            "userInfo": { "username": "mallory@example.com" },
            "object": { "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
                        "metadata": { "name": "org", "namespace": ns }, "spec": {} },
        }
    });
    for (who, identity) in [
        ("no client certificate", None),
        ("another CA's", stranger()),
    ] {
        let refused = exchange(port, &ca, &identity, &forged).await;
        let error = refused.expect_err(&format!("{who}: refused"));
        assert!(
            error.contains("alert"),
            "{who}: refused in the handshake: {error}"
        );
    }
    let answer = exchange(port, &ca, &api_server(), &forged).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"uid\":\"forged\""), "{answer}");
}

/// A TCP proxy on loopback that hands each connection to the next of `ports` in turn, as a Service
/// spreads connections over replicas. [`Proxy::cut`] closes every open connection, so that the API
/// server opens new ones (a new TLS handshake each) instead of reusing one for the whole test; the
/// test cuts only between its requests, once the API server has answered them, so that no cut
/// races a webhook call.
struct Proxy {
    connections: Arc<std::sync::atomic::AtomicUsize>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    /// Listens on `port`.
    async fn start(port: u16, ports: Vec<u16>) -> Proxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let counted = connections.clone();
        tokio::spawn(async move {
            for next in 0usize.. {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let cuts = cuts.clone();
                tokio::spawn(relay(inbound, ports[next % ports.len()], cuts));
            }
        });
        Proxy { connections, cut }
    }

    /// Closes every connection open now.
    fn cut(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Copies bytes both ways until either side closes, or the proxy cuts it.
async fn relay(
    mut inbound: tokio::net::TcpStream,
    port: u16,
    mut cuts: tokio::sync::watch::Receiver<u64>,
) {
    cuts.mark_unchanged();
    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {},
        _ = cuts.changed() => {},
    }
}

/// A replica of `roster run` with its own webhook port behind the proxy at `proxy`, sharing the
/// self-managed certificates of the Secret in `system` with validities of seconds: serving
/// certificates live 20 s and are renewed with 10 s left, CAs live 40 s (replaced with 20 s left).
struct Replica {
    operator: support::Operator,
    webhook_port: u16,
}

fn replica(name: &str, (org_ns, system): (&str, &str), proxy: u16) -> Replica {
    let (metrics_port, webhook_port) = (support::free_port(), support::free_port());
    let args: Vec<String> = [
        "run",
        "--kubeconfig",
        support::control_plane().kubeconfig.to_str().unwrap(),
        "--namespaces",
        org_ns,
        "--metrics-addr",
        &format!("127.0.0.1:{metrics_port}"),
        "--webhook-addr",
        &format!("127.0.0.1:{webhook_port}"),
        "--webhook-url",
        &format!("https://127.0.0.1:{proxy}/validate"),
        "--webhook-config-name",
        &format!("roster-{org_ns}"),
        "--webhook-client-ca",
        &support::webhook_client_ca(),
        "--webhook-cert-validity",
        "20s",
        "--webhook-cert-renew-before",
        "10s",
        "--webhook-ca-validity",
        "40s",
        "--leader-elect",
        "--lease-name",
        &format!("roster-{org_ns}"),
        "--log-level",
        "roster=debug,info",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let env = [("POD_NAME", name), ("POD_NAMESPACE", system)];
    Replica {
        operator: support::Operator::spawn(&args, &env, metrics_port),
        webhook_port,
    }
}

/// The configuration's `caBundle`, as PEM.
async fn published_bundle(client: &kube::Client, name: &str) -> String {
    let config = kube::Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(name)
        .await
        .unwrap();
    let bundle = roster::webhook::config::ca_bundle(&config).unwrap_or_default();
    String::from_utf8(bundle.to_vec()).unwrap()
}

/// The certificate the webhook at `port` serves (DER), when the bundle `ca` validates it.
async fn served_certificate(port: u16, ca: &str) -> Result<Vec<u8>, String> {
    let tls = connect(port, ca, &api_server())
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    Ok(session.peer_certificates().unwrap()[0].to_vec())
}

/// What the API server answered to one admission request that only roster's webhook decides.
#[derive(Debug)]
enum Admission {
    Allowed,
    DeniedByRoster,
    Failed(String),
}

/// A server-side dry run of `org` (an Organization) in `ns`: the API server calls the webhook.
async fn admit(api: &kube::Api<kube::api::DynamicObject>, org: &Value) -> Admission {
    let object: kube::api::DynamicObject = serde_json::from_value(org.clone()).unwrap();
    let dry_run = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    match api.create(&dry_run, &object).await {
        Ok(_) => Admission::Allowed,
        Err(kube::Error::Api(s)) if s.message.contains("roster:") => Admission::DeniedByRoster,
        Err(e) => Admission::Failed(e.to_string()),
    }
}

/// Two replicas behind a round-robin proxy, with validities of seconds, keep answering the API
/// server through serving certificate renewals, CA replacements and a wiped Secret: every admission
/// request is answered, every served certificate is validated by the `caBundle` of that moment, and
/// both replicas serve the renewed certificates (whichever of them wrote them).
#[tokio::test]
async fn self_managed_certificates_rotate_without_a_failed_admission() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let org_ns = support::namespace(&client, "tls-rotate").await;
    let system = support::namespace(&client, "tls-rotate-system").await;
    let proxy = support::free_port();
    let replicas: Vec<Replica> = ["replica-a", "replica-b"]
        .into_iter()
        .map(|name| replica(name, (&org_ns, &system), proxy))
        .collect();
    let proxy = Proxy::start(proxy, replicas.iter().map(|r| r.webhook_port).collect()).await;
    support::wait_for_webhook(&client, &org_ns).await;

    let user = support::client_as("rotation@example.com", &["system:masters"]).await;
    let resource = kube::api::ApiResource::erase::<roster::api::Organization>(&());
    let orgs = kube::Api::<kube::api::DynamicObject>::namespaced_with(user, &org_ns, &resource);
    let allowed = json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "org" }, "spec": {}
    });
    let denied = json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "claims-kube-system" },
        "spec": { "access": { "namespaces": ["kube-system"] } }
    });
    let config_name = format!("roster-{org_ns}");
    let mut seen = Seen::default();
    let start = tokio::time::Instant::now();
    let mut wiped = false;
    while start.elapsed() < Duration::from_secs(75) {
        // Half-way, someone empties the Secret (to replace a CA whose key leaked, say): a new CA at
        // once, and still no failed request.
        if !wiped && start.elapsed() > Duration::from_secs(37) {
            wipe(&client, &system, &org_ns).await;
            wiped = true;
        }
        for org in [&allowed, &denied] {
            seen.admission(admit(&orgs, org).await);
        }
        let bundle = published_bundle(&client, &config_name).await;
        seen.bundles.insert(bundle.clone());
        for r in &replicas {
            match served_certificate(r.webhook_port, &bundle).await {
                Ok(cert) => {
                    seen.served.insert((r.webhook_port, cert));
                }
                Err(e) => seen.untrusted.push(e),
            }
        }
        // Every webhook call of this round was answered: new connections for the next round.
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let connections = proxy.connections();
    let report = format!(
        "{}, {connections} connections from the API server",
        seen.report()
    );
    eprintln!("{report}");
    for r in &replicas {
        let left = serving_certificate_expiry(&r.operator) - unix_now();
        assert!((0.0..=20.0).contains(&left), "the metric says {left}s left");
    }
    assert!(seen.failed.is_empty(), "{report}: {:?}", seen.failed);
    assert!(seen.untrusted.is_empty(), "{report}: {:?}", seen.untrusted);
    assert!(seen.allowed > 0 && seen.denied > 0, "{report}");
    for r in &replicas {
        let certificates = seen
            .served
            .iter()
            .filter(|(p, _)| *p == r.webhook_port)
            .count();
        assert!(
            certificates >= 3,
            "each replica's certificate changed twice: {report}"
        );
    }
    assert!(seen.bundles.len() >= 3, "the CA was replaced: {report}");
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// When the replica's served certificate expires, by its metric.
fn serving_certificate_expiry(operator: &support::Operator) -> f64 {
    const SERIES: &str =
        "roster_webhook_certificate_expiry_timestamp_seconds{certificate=\"serving\"} ";
    let metrics = operator.metrics();
    let line = metrics.lines().find(|l| l.starts_with(SERIES));
    line.and_then(|l| l[SERIES.len()..].parse().ok())
        .unwrap_or_else(|| panic!("no {SERIES}in {metrics}"))
}

/// Empties the data of the shared Secret of the replicas of `org_ns`, as docs/operations.md says to.
async fn wipe(client: &kube::Client, system: &str, org_ns: &str) {
    let name = roster::webhook::tls::shared_secret_name(&format!("roster-{org_ns}"));
    let patch = json!([{ "op": "remove", "path": "/data" }]);
    kube::Api::<Secret>::namespaced(client.clone(), system)
        .patch(
            &name,
            &Default::default(),
            &kube::api::Patch::<()>::Json(serde_json::from_value(patch).unwrap()),
        )
        .await
        .unwrap();
}

/// What the rotation test saw.
#[derive(Default)]
struct Seen {
    allowed: usize,
    denied: usize,
    failed: Vec<String>,
    /// (replica's port, certificate) pairs.
    served: std::collections::BTreeSet<(u16, Vec<u8>)>,
    untrusted: Vec<String>,
    bundles: std::collections::BTreeSet<String>,
}

impl Seen {
    fn admission(&mut self, a: Admission) {
        match a {
            Admission::Allowed => self.allowed += 1,
            Admission::DeniedByRoster => self.denied += 1,
            Admission::Failed(e) => self.failed.push(e),
        }
    }

    fn report(&self) -> String {
        let certificates: std::collections::BTreeSet<&Vec<u8>> =
            self.served.iter().map(|(_, c)| c).collect();
        format!(
            "rotation: {} admission requests ({} allowed, {} denied by roster, {} failed), {} serving certificates, {} caBundles, {} handshakes the caBundle did not validate",
            self.allowed + self.denied + self.failed.len(),
            self.allowed,
            self.denied,
            self.failed.len(),
            certificates.len(),
            self.bundles.len(),
            self.untrusted.len(),
        )
    }
}

/// The Secret's contents as roster makes them, but made `ago` in the past.
fn certificates_made(ago: Duration, policy: &roster::webhook::rotation::Policy) -> Secret {
    use roster::webhook::certs::{self, Material};
    let made = std::time::SystemTime::now() - ago;
    let seen = certs::observe(&Material::default(), None, &local_names());
    let start = roster::webhook::rotation::Step::StartOver { keep: vec![] };
    let m = certs::carry_out(
        &start,
        &seen,
        &Material::default(),
        (policy, &local_names()),
        made,
    )
    .unwrap();
    let data = [
        ("ca.crt", Some(m.bundle)),
        ("ca.key", m.ca_key),
        ("tls.crt", m.cert),
        ("tls.key", m.key),
    ];
    Secret {
        data: Some(
            data.into_iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        k8s_openapi::ByteString(v.unwrap().into_bytes()),
                    )
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// Writes `contents` as the Secret `name` in `ns`.
async fn put_secret(client: &kube::Client, ns: &str, name: &str, mut contents: Secret) -> Secret {
    contents.metadata.name = Some(name.into());
    kube::Api::<Secret>::namespaced(client.clone(), ns)
        .create(&Default::default(), &contents)
        .await
        .unwrap()
}

fn pem(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// roster was down for longer than its certificates live: at start it replaces them at once (CA
/// and all), publishes the new CA, and the API server reaches the webhook.
#[tokio::test]
async fn a_start_with_expired_certificates_replaces_them_at_once() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let org_ns = support::namespace(&client, "tls-expired").await;
    let system = support::namespace(&client, "tls-expired-system").await;
    let secret = roster::webhook::tls::shared_secret_name(&format!("roster-{org_ns}"));
    let expired = put_secret(
        &client,
        &system,
        &secret,
        certificates_made(Duration::from_secs(3600), &short_policy()),
    )
    .await;
    let now = std::time::SystemTime::now();
    let not_after = |s: &Secret| roster::webhook::certs::not_after(&pem(s, "tls.crt")).unwrap();
    assert!(not_after(&expired) < now);

    let proxy = support::free_port();
    let replica = replica("replica", (&org_ns, &system), proxy);
    let _proxy = Proxy::start(proxy, vec![replica.webhook_port]).await;
    support::wait_for_webhook(&client, &org_ns).await;
    let replaced = kube::Api::<Secret>::namespaced(client.clone(), &system)
        .get(&secret)
        .await
        .unwrap();
    assert!(
        not_after(&replaced) > now,
        "a valid certificate replaced it"
    );
    assert_ne!(
        pem(&replaced, "ca.crt"),
        pem(&expired, "ca.crt"),
        "and a new CA"
    );
    let bundle = published_bundle(&client, &format!("roster-{org_ns}")).await;
    assert_eq!(
        bundle,
        pem(&replaced, "ca.crt"),
        "the expired CA is not trusted"
    );
    assert!(
        served_certificate(replica.webhook_port, &bundle)
            .await
            .is_ok()
    );
}

/// A serving certificate that expired while its CA is still good is re-signed by that CA at once:
/// the `caBundle` does not change.
#[tokio::test]
async fn an_expired_serving_certificate_is_re_signed_by_its_ca() {
    let client = support::admin_client().await;
    let ns = support::namespace(&client, "tls-expired-leaf").await;
    let policy = roster::webhook::rotation::Policy::default();
    // 100 days ago: the serving certificate (90 days) has expired, the CA (three years) has not.
    let made = certificates_made(Duration::from_secs(100 * 86_400), &policy);
    let expired = put_secret(&client, &ns, "shared", made).await;
    let tls = roster::webhook::self_managed::SelfManaged::shared(
        &client,
        &ns,
        "shared",
        local_names(),
        policy,
    )
    .start()
    .await
    .unwrap();
    let renewed = kube::Api::<Secret>::namespaced(client.clone(), &ns)
        .get("shared")
        .await
        .unwrap();
    assert_eq!(
        pem(&renewed, "ca.crt"),
        pem(&expired, "ca.crt"),
        "the same CA"
    );
    assert_eq!(tls.ca_bundle.unwrap(), pem(&expired, "ca.crt").into_bytes());
    let not_after = roster::webhook::certs::not_after(&pem(&renewed, "tls.crt")).unwrap();
    let left = not_after
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(89 * 86_400), "{left:?}");
}
