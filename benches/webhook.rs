//! The admission webhook under load: AdmissionReviews over TLS against an org of 10,000 members at a
//! fixed rate, beside a null endpoint on the same server and TLS stack, in the same run.
//!
//! `cargo bench --bench webhook` prints p50/p99 of the round trip for both endpoints, their ratio,
//! and the handler's own decision time. Then it does it all again with the caches also holding
//! 1,000 more orgs of 100 (110,000 Memberships in all), and prints the ratios of the two runs'
//! figures. Under `cargo test` (no `--bench`) it only smoke-tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Client, Config};
use roster::api::{Membership, MembershipPhase, MembershipStatus, OrgRole, Organization};
use roster::caches::Caches;
use roster::metrics::Metrics;
use roster::webhook::{self, Decider};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "acme";

fn org_of(ns: &str, members: usize) -> (Organization, Vec<Membership>) {
    let org: Organization = serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "acme", "namespace": ns, "uid": format!("{ns}-uid") },
        "spec": { "policy": { "maxOwners": 3 } }
    }))
    .unwrap();
    let ms = (0..members)
        .map(|i| {
            let role = match i {
                0 | 1 => OrgRole::Owner,
                _ if i % 50 == 0 => OrgRole::Admin,
                _ => OrgRole::Member,
            };
            let mut m: Membership = serde_json::from_value(serde_json::json!({
                "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
                "metadata": { "name": format!("m{i}"), "namespace": ns,
                              "creationTimestamp": Time(Timestamp::from_second(1_800_000_000 + i as i64).unwrap()) },
                "spec": { "user": format!("user{i}@{ns}.example"), "role": role }
            }))
            .unwrap();
            m.status = Some(MembershipStatus {
                phase: Some(MembershipPhase::Active),
                effective_role: Some(role),
                ..Default::default()
            });
            m
        })
        .collect();
    (org, ms)
}

/// An admin adding a member: the common case, decided from the index.
fn review_body(i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("req-{i}"),
            "kind": { "group": "roster.dev", "version": "v1alpha1", "kind": "Membership" },
            "resource": { "group": "roster.dev", "version": "v1alpha1", "resource": "memberships" },
            "name": format!("new{i}"), "namespace": NS, "operation": "CREATE",
            "userInfo": { "username": "user50@acme.example", "groups": ["system:authenticated"] },
            "object": {
                "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
                "metadata": { "name": format!("new{i}"), "namespace": NS },
                "spec": { "user": format!("newcomer{i}@acme.example"), "role": "member" }
            },
            "dryRun": false
        }
    }))
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// One keep-alive HTTPS connection speaking just enough HTTP/1.1 to POST and read the answer.
struct Connection {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

impl Connection {
    async fn open(port: u16, ca: &[u8]) -> Connection {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile_certs(ca) {
            roots.add(cert).unwrap();
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
                tcp,
            )
            .await
            .unwrap();
        Connection { stream }
    }

    async fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await.unwrap();
        self.stream.write_all(body).await.unwrap();
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let status = head[9..12].parse().unwrap();
                return (status, buf[end + 4..end + 4 + len].to_vec());
            }
        }
    }
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

/// Sends `total` requests at `rate` per second on one connection, returns sorted latencies.
async fn load(
    conn: &mut Connection,
    path: &str,
    rate: u32,
    total: usize,
    check: bool,
) -> Vec<Duration> {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut next = tokio::time::Instant::now();
    let mut latencies = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until(next).await;
        next += interval;
        let body = review_body(i);
        let start = Instant::now();
        let (status, answer) = conn.post(path, &body).await;
        latencies.push(start.elapsed());
        assert_eq!(status, 200);
        if check {
            let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(v["response"]["allowed"], true, "{v}");
            assert_eq!(v["response"]["uid"], format!("req-{i}"));
        }
    }
    latencies.sort();
    latencies
}

/// What one run measured.
struct Figures {
    handler: (Duration, Duration),
    validate: (Duration, Duration),
    null: (Duration, Duration),
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let members = if full { 10_000 } else { 100 };
    let (org, ms) = org_of(NS, members);
    let alone = run(full, vec![org.clone()], ms.clone()).await;
    print_figures(&format!("org of {members} members held alone"), &alone);
    if !full {
        return;
    }
    let (mut orgs, mut all) = (vec![org], ms);
    for n in 0..1_000 {
        let (o, m) = org_of(&format!("org-{n:04}"), 100);
        orgs.push(o);
        all.extend(m);
    }
    let held = all.len();
    let many = run(full, orgs, all).await;
    print_figures(&format!("the same org, {held} Memberships held"), &many);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "  {held} held / {members} held: handler p99 {:.2}, validate/null p99 {:.2} against {:.2}",
        ratio(many.handler.1, alone.handler.1),
        ratio(many.validate.1, many.null.1),
        ratio(alone.validate.1, alone.null.1),
    );
}

fn print_figures(what: &str, f: &Figures) {
    println!("webhook benchmark: {what}, over TLS");
    let row = |name: &str, (p50, p99): (Duration, Duration)| {
        println!("  {name:<26}p50 {p50:>10.1?}  p99 {p99:>10.1?}")
    };
    row("handler (decision only)", f.handler);
    row("/validate round trip", f.validate);
    row("/null round trip", f.null);
    println!(
        "  ratio validate/null       p50 {:.2}  p99 {:.2}",
        f.validate.0.as_secs_f64() / f.null.0.as_secs_f64(),
        f.validate.1.as_secs_f64() / f.null.1.as_secs_f64()
    );
}

/// The handler alone, then both endpoints over TLS, with caches holding these objects.
async fn run(full: bool, orgs: Vec<Organization>, ms: Vec<Membership>) -> Figures {
    let caches = Caches::from_objects(orgs, ms, vec![], vec![]);
    // No API server: this decision never needs a fresh read, and the client never connects.
    let client = Client::try_from(Config::new("https://127.0.0.1:1".parse().unwrap())).unwrap();
    let decider = Decider::new(caches, roster::rules::Config::default(), client);

    // The handler alone.
    let body = review_body(0);
    let mut handler = Vec::new();
    for _ in 0..if full { 20_000 } else { 200 } {
        let start = Instant::now();
        let (review, _) = decider.review(&body).await.unwrap();
        handler.push(start.elapsed());
        assert!(review.response.unwrap().allowed);
    }
    handler.sort();
    let metrics = Arc::new(Metrics::default());
    metrics.set_ready(true);
    let null = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": { "uid": "", "allowed": true }
    }))
    .unwrap();
    let app = webhook::router(decider, metrics).route(
        "/null",
        post(move |_: axum::body::Bytes| {
            std::future::ready(([("content-type", "application/json")], null.clone()))
        }),
    );
    let tls = webhook::tls::self_signed(
        &["localhost".into()],
        &["127.0.0.1".parse().unwrap()],
        webhook::tls::ClientAuth::anyone(),
    )
    .await
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listener = webhook::bind(format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
    tokio::spawn(webhook::serve(
        listener,
        tls.config.clone(),
        app,
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let ca = tls.ca_bundle.unwrap();
    let mut conn = Connection::open(port, &ca).await;
    let (rate, total) = if full { (500, 5_000) } else { (200, 50) };
    // Warm up both paths, then alternate rounds so that noise hits both alike.
    load(&mut conn, "/validate", rate, total / 10, true).await;
    load(&mut conn, "/null", rate, total / 10, false).await;
    let (mut validate, mut null_lat) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        validate.extend(load(&mut conn, "/validate", rate, total / 4, true).await);
        null_lat.extend(load(&mut conn, "/null", rate, total / 4, false).await);
    }
    validate.sort();
    null_lat.sort();

    let p = |sorted: &[Duration]| (percentile(sorted, 0.50), percentile(sorted, 0.99));
    println!("  ({total} requests per endpoint at {rate}/s)");
    Figures {
        handler: p(&handler),
        validate: p(&validate),
        null: p(&null_lat),
    }
}
