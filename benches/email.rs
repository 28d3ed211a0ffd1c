//! E-mail delivery on a real control plane and a real SMTP server (Mailpit), end to end:
//!
//! 1. baseline: the same relay, sent to directly by lettre, one connection per message (what any
//!    mailer pays at least), and the API server's round trip for one Invite create;
//! 2. latency: Invites created at a steady pace while `roster run` has the relay, each from the
//!    create's return until the relay accepted its invitation (Mailpit's receive time): p50, p90,
//!    max, and p50 as a ratio to the baseline's;
//! 3. memory: the operator's peak RSS holding the same Invites without a relay (`NoRelay`) and with
//!    one, after sending them all: the e-mail path's extra memory.
//!
//! `cargo bench --bench email` (about a minute). `ROSTER_BENCH_INVITES=50` for a smaller run,
//! `ROSTER_BENCH_PACE_MS=200` for Invites further apart (default one every 20 ms).
//! Under `cargo test --all-targets` (no `--bench` argument) it prints a note and exits.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use lettre::Message;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use roster::api::{Invite, InviteSpec, OrgRole};
use support::Operator;
use support::mailpit::{Mailpit, Options};

const ORG: &str = "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: bench\nspec:\n  policy:\n    notifications:\n      email: true\n";

fn invites() -> usize {
    std::env::var("ROSTER_BENCH_INVITES").map_or(200, |v| v.parse().expect("a number"))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "email: end-to-end benchmark with Mailpit; skipped without --bench (run `cargo bench --bench email`)"
        );
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(invites()));
}

async fn run(n: usize) {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let relay = Mailpit::start(Options::default()).await;

    // 1. Baselines.
    let direct = direct_sends(&relay, n).await;
    let ns = namespace_with_org(&client, "bench-mail-base").await;
    let mut creates = Vec::new();
    for i in 0..n {
        let t0 = Instant::now();
        create_invite(&client, &ns, i, "base").await;
        creates.push(t0.elapsed());
    }
    println!(
        "baseline: direct SMTP send      {}",
        summary(&mut direct.clone())
    );
    println!("baseline: API create of Invite  {}", summary(&mut creates));

    // 3a. Memory without a relay: the same Invites, each reporting NoRelay.
    let quiet_ns = namespace_with_org(&client, "bench-mail-quiet").await;
    let quiet = operator(&[&quiet_ns], &[]);
    for i in 0..n {
        create_invite(&client, &quiet_ns, i, "quiet").await;
    }
    wait_for_delivered(&client, &quiet_ns, n, "NoRelay").await;
    let without = peak_rss_mib(&quiet);
    drop(quiet);

    // 2. Latency with the relay, and 3b. memory after sending.
    relay.delete_all().await;
    let ns = namespace_with_org(&client, "bench-mail").await;
    let url = format!("smtp://127.0.0.1:{}?tls=none", relay.smtp_port);
    let sending = operator(
        &[&ns],
        &[
            "--smtp-url",
            &url,
            "--mail-from",
            "Bench <bench@platform.example>",
        ],
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut created = Vec::new();
    let pace = Duration::from_millis(
        std::env::var("ROSTER_BENCH_PACE_MS").map_or(20, |v| v.parse().expect("a number")),
    );
    for i in 0..n {
        create_invite(&client, &ns, i, "sent").await;
        created.push(Timestamp::now());
        tokio::time::sleep(pace).await;
    }
    let mail = relay.wait_for_messages(n, Duration::from_secs(120)).await;
    let mut latency: Vec<Duration> = mail
        .iter()
        .map(|m| {
            let i: usize = m.to[0]
                .trim_start_matches("guest")
                .split('@')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let received: Timestamp = m.created.parse().expect("Mailpit's RFC 3339 time");
            Duration::try_from(received.duration_since(created[i])).unwrap_or_default()
        })
        .collect();
    wait_for_delivered(&client, &ns, n, "Sent").await;
    let with = peak_rss_mib(&sending);
    let p50 = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (roster_p50, direct_p50) = (p50(&mut latency), p50(&mut direct.clone()));
    println!(
        "roster: Invite created -> relay accepted  {}",
        summary(&mut latency)
    );
    println!(
        "roster: p50 latency / direct send p50 = {:.1}x ({} invites, one every {pace:?})",
        roster_p50.as_secs_f64() / direct_p50.as_secs_f64(),
        n
    );
    println!(
        "memory: peak RSS {without:.1} MiB without a relay, {with:.1} MiB after sending {n} invitations: +{:.1} MiB ({:.2}x)",
        with - without,
        with / without
    );
}

/// `n` messages straight to the relay, one connection each: each from connecting to the relay's
/// acceptance.
async fn direct_sends(relay: &Mailpit, n: usize) -> Vec<Duration> {
    let hello = ClientId::Domain("platform.example".into());
    let mut out = Vec::new();
    for i in 0..n {
        let message = Message::builder()
            .from("Bench <bench@platform.example>".parse().unwrap())
            .to(format!("direct{i}@acme.example").parse().unwrap())
            .subject("You are invited")
            .body("a body about as long as an invitation ".repeat(12))
            .unwrap();
        let t0 = Instant::now();
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            relay.smtp_addr(),
            Some(Duration::from_secs(10)),
            &hello,
            None,
            None,
        )
        .await
        .expect("connect to Mailpit");
        conn.send(message.envelope(), &message.formatted())
            .await
            .expect("send");
        out.push(t0.elapsed());
        let _ = conn.quit().await;
    }
    out
}

async fn namespace_with_org(client: &Client, name: &str) -> String {
    let ns = support::namespace(client, name).await;
    support::apply(client, &ns, ORG).await;
    ns
}

async fn create_invite(client: &Client, ns: &str, i: usize, phase: &str) {
    let spec = InviteSpec {
        email: Some(format!("guest{i}@acme.example")),
        role: OrgRole::Member,
        ..InviteSpec::default()
    };
    let invite = Invite::new(&format!("{phase}-{i}"), spec);
    Api::<Invite>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &invite)
        .await
        .expect("create the Invite");
}

fn operator(namespaces: &[&str], extra: &[&str]) -> Operator {
    let op = Operator::start(namespaces, extra);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !op.ready() {
        assert!(
            Instant::now() < deadline,
            "the operator never became ready:\n{}",
            op.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    op
}

async fn wait_for_delivered(client: &Client, ns: &str, n: usize, reason: &str) {
    let api: Api<Invite> = Api::namespaced(client.clone(), ns);
    support::eventually(
        &format!("{n} Invites {reason}"),
        Duration::from_secs(120),
        || async {
            let list = api.list(&Default::default()).await.ok()?.items;
            let done = list
                .iter()
                .filter(|i| {
                    let conditions = i
                        .status
                        .as_ref()
                        .map(|s| s.conditions.as_slice())
                        .unwrap_or_default();
                    roster::rules::conditions::find(conditions, "Delivered")
                        .is_some_and(|c| c.reason == reason)
                })
                .count();
            (done == n).then_some(())
        },
    )
    .await;
}

/// The operator's peak resident set (VmHWM), in MiB.
fn peak_rss_mib(op: &Operator) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", op.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn summary(v: &mut [Duration]) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms (n = {})",
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        v.len()
    )
}
