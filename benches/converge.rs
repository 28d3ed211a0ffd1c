//! The operator's performance goals (docs/design.md §7) on a real control plane, end to end:
//!
//! 1. baseline: what the API server alone takes to accept N Memberships and one status write each
//!    (server-side apply, field manager `bench`), with the same client and concurrency;
//! 2. operator: the same objects created the same way while `roster run` watches all namespaces,
//!    from the first create until every Membership is `Active`; the ratio to the baseline (goal
//!    <= 1.5: roster writes a RoleBinding besides the status), and its writes (goal: at most 2 of
//!    each Membership's own, its status and its binding);
//! 3. the operator's peak RSS (VmHWM) while holding them (goal: under the chart's memory limit);
//! 4. one changed Membership in a 10,000-member org: the API writes it causes (goal: a handful) and
//!    the time until its status shows the change.
//!
//! 5. memory per Membership: the slope of the operator's resident set between the sizes it held,
//!    once its writes settled: from none to phase 2's orgs, and from there to the big org on top;
//! 6. a cold restart holding everything: time until ready, until its writes settle, what it
//!    writes, and its peak RSS.
//!
//! `cargo bench --bench converge` (about 5 minutes on 2 cores). Smaller runs:
//! `ROSTER_BENCH_ORGS=10 ROSTER_BENCH_MEMBERS=50 ROSTER_BENCH_BIG_ORG=1000 cargo bench --bench converge`.
//! `ROSTER_BENCH_PROFILE=100k` holds 100,000 Memberships in 1,000 orgs plus one org of 10,000 (the
//! other variables still override it).
//! `ROSTER_BENCH_FLOOR=1` adds a phase that writes, by the bench itself, what the operator writes
//! for each Membership (status and RoleBinding: two server-side applies): the
//! floor the operator can approach, as opposed to the baseline's one status write.
//! Under `cargo test --all-targets` (no `--bench` argument) it prints a note and exits.
//!
//! The bench starts its own control plane (tests/support), so no other operator sees its objects.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use roster::api::{
    Condition, Membership, MembershipPhase, MembershipStatus, OrgRole, Organization,
};
use support::Operator;

/// The label that tells the bench's objects apart by phase.
const PHASE_LABEL: &str = "roster.dev/bench";
const WRITES: &str = "roster_api_writes_total";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    orgs: usize,
    members: usize,
    big_org: usize,
    concurrency: usize,
    /// Also measure the floor of the operator's write set (ROSTER_BENCH_FLOOR=1).
    floor: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let orgs = match std::env::var("ROSTER_BENCH_PROFILE").as_deref() {
            Ok("100k") => 1_000,
            Ok(other) => panic!("ROSTER_BENCH_PROFILE={other}: the one profile is 100k"),
            Err(_) => 100,
        };
        let s = Settings {
            orgs: env_usize("ROSTER_BENCH_ORGS", orgs),
            members: env_usize("ROSTER_BENCH_MEMBERS", 100),
            big_org: env_usize("ROSTER_BENCH_BIG_ORG", 10_000),
            concurrency: env_usize("ROSTER_BENCH_CONCURRENCY", 64),
            floor: env_usize("ROSTER_BENCH_FLOOR", 0) == 1,
        };
        assert!(
            s.orgs >= 1 && s.members >= 2 && s.big_org >= 2 && s.concurrency >= 1,
            "need at least 1 org, 2 members per org, 2 in the big org and concurrency 1: {s:?}"
        );
        s
    }

    fn memberships(&self) -> usize {
        self.orgs * self.members
    }
}

/// Member `i` of an org: the first is the owner, then two members for every viewer.
fn role(i: usize) -> OrgRole {
    match i {
        0 => OrgRole::Owner,
        _ if i.is_multiple_of(3) => OrgRole::Viewer,
        _ => OrgRole::Member,
    }
}

fn member_name(i: usize) -> String {
    format!("m-{i:05}")
}

fn organization(phase: &str) -> Organization {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "org", "labels": { PHASE_LABEL: phase } },
        "spec": { "displayName": "Bench Org", "policy": { "minOwners": 1 } }
    }))
    .expect("Organization JSON")
}

fn membership(ns: &str, i: usize, phase: &str) -> Membership {
    let mut m = serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
        "metadata": { "name": member_name(i), "labels": { PHASE_LABEL: phase } },
        "spec": {
            "user": format!("user{i}@{ns}.example"),
            "role": role(i),
            "displayName": format!("User {i}"),
        }
    });
    // ROSTER_BENCH_LAST_APPLIED=1: as `kubectl apply` (and Argo CD, by default) writes it, with the
    // whole object again in an annotation.
    if env_usize("ROSTER_BENCH_LAST_APPLIED", 0) == 1 {
        let copy = m.to_string();
        m["metadata"]["annotations"] =
            serde_json::json!({ "kubectl.kubernetes.io/last-applied-configuration": copy });
    }
    serde_json::from_value(m).expect("Membership JSON")
}

/// A status like the one the operator writes for an Active member.
fn active_status(i: usize, now: Timestamp) -> MembershipStatus {
    MembershipStatus {
        phase: Some(MembershipPhase::Active),
        effective_role: Some(role(i)),
        joined_at: Some(Time(now)),
        invite: None,
        // As long as an Organization's uid, which the operator records.
        organization_uid: Some("00000000-0000-4000-8000-000000000000".into()),
        observed_generation: Some(1),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Active".into(),
            message: format!("effective as {}", role(i)),
            last_transition_time: Time(now),
            observed_generation: Some(1),
        }],
    }
}

/// Runs one API call, retrying what a loaded API server may answer now and then. An AlreadyExists
/// after a retry means the first attempt went through (`None`).
async fn retrying<F, Fut, T>(what: &str, mut call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(v) => return Some(v),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt > 1 => return None,
            Err(kube::Error::Api(s)) if ![429, 500, 503, 504].contains(&s.code) => {
                panic!("{what}: {s:?}")
            }
            Err(e) if attempt >= 10 => panic!("{what}: {e} (after {attempt} attempts)"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100 * attempt)).await,
        }
    }
}

/// The uid of every object created, by namespace and member index (`None`: the Organization).
type Uids = HashMap<(String, Option<usize>), String>;

/// Creates the object, or reads it when a retried create finds it already made; returns its uid.
async fn create<K>(api: &Api<K>, obj: &K, what: &str) -> String
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let pp = PostParams::default();
    let created = match retrying(what, || api.create(&pp, obj)).await {
        Some(o) => o,
        None => {
            let name = obj.meta().name.clone().unwrap_or_default();
            retrying(what, || api.get(&name)).await.expect("read back")
        }
    };
    created.meta().uid.clone().unwrap_or_default()
}

/// Creates one Organization and `members` Memberships in each namespace, `concurrency` at a time,
/// org after org (each Organization just before its Memberships).
async fn create_orgs(
    client: &Client,
    namespaces: &[String],
    members: usize,
    concurrency: usize,
    phase: &str,
) -> Uids {
    let jobs = namespaces.iter().flat_map(|ns| {
        std::iter::once((ns.as_str(), None))
            .chain((0..members).map(move |i| (ns.as_str(), Some(i))))
    });
    stream::iter(jobs)
        .map(|(ns, member)| async move {
            let uid = match member {
                None => {
                    let api: Api<Organization> = Api::namespaced(client.clone(), ns);
                    let what = format!("create Organization in {ns}");
                    create(&api, &organization(phase), &what).await
                }
                Some(i) => {
                    let api: Api<Membership> = Api::namespaced(client.clone(), ns);
                    let what = format!("create Membership {ns}/{}", member_name(i));
                    create(&api, &membership(ns, i, phase), &what).await
                }
            };
            ((ns.to_string(), member), uid)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// What the operator writes for each Membership, written by the bench instead (field manager
/// `bench`): the status and the member's RoleBinding, both by server-side apply. The owner-protection finalizer is left out, so namespaces delete.
async fn floor_writes(
    client: &Client,
    namespaces: &[String],
    members: usize,
    concurrency: usize,
    uids: &Uids,
) {
    let now = Timestamp::from_second(Timestamp::now().as_second()).expect("a valid time");
    let params = PatchParams::apply("bench").force();
    let jobs = namespaces.iter().flat_map(|ns| {
        (0..members).flat_map(move |i| [1u8, 2].map(move |write| (ns.as_str(), i, write)))
    });
    stream::iter(jobs)
        .map(|(ns, i, write)| {
            let params = &params;
            async move {
                let name = member_name(i);
                let uid = |member| uids[&(ns.to_string(), member)].clone();
                let what = format!("write {write} for Membership {ns}/{name}");
                let memberships: Api<Membership> = Api::namespaced(client.clone(), ns);
                match write {
                    1 => {
                        let body = serde_json::json!({
                            "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
                            "status": active_status(i, now),
                        });
                        let patch = Patch::Apply(&body);
                        retrying(&what, || memberships.patch_status(&name, params, &patch)).await;
                    }
                    _ => {
                        let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
                            Api::namespaced(client.clone(), ns);
                        let binding = format!("roster-member-{name}");
                        let body = serde_json::json!({
                            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                            "metadata": {
                                "name": binding,
                                "labels": {
                                    "roster.dev/organization": ns,
                                    "roster.dev/membership": name,
                                    "app.kubernetes.io/managed-by": "roster-bench",
                                },
                                "ownerReferences": [{
                                    "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
                                    "name": name, "uid": uid(Some(i)),
                                }],
                            },
                            "roleRef": {
                                "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": format!("roster-org-{}", role(i)),
                            },
                            "subjects": [{
                                "apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                "name": format!("user{i}@{ns}.example"),
                            }],
                        });
                        let patch = Patch::Apply(&body);
                        retrying(&what, || bindings.patch(&binding, params, &patch)).await;
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<()>()
        .await;
}

/// Writes an Active status on every Membership by server-side apply (field manager `bench`).
async fn patch_statuses(
    client: &Client,
    namespaces: &[String],
    members: usize,
    concurrency: usize,
) {
    let now = Timestamp::from_second(Timestamp::now().as_second()).expect("a valid time");
    let params = PatchParams::apply("bench").force();
    let jobs = namespaces
        .iter()
        .flat_map(|ns| (0..members).map(move |i| (ns.as_str(), i)));
    stream::iter(jobs)
        .map(|(ns, i)| {
            let params = &params;
            async move {
                let api: Api<Membership> = Api::namespaced(client.clone(), ns);
                let body = serde_json::json!({
                    "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
                    "status": active_status(i, now),
                });
                let name = member_name(i);
                let patch = Patch::Apply(&body);
                retrying(&format!("status of Membership {ns}/{name}"), || {
                    api.patch_status(&name, params, &patch)
                })
                .await;
            }
        })
        .buffer_unordered(concurrency)
        .collect::<()>()
        .await;
}

/// `n` fresh namespaces named after `what`.
async fn namespaces(client: &Client, what: &str, n: usize) -> Vec<String> {
    stream::iter(0..n)
        .map(|_| support::namespace(client, what))
        .buffer_unordered(16)
        .collect()
        .await
}

/// Deletes namespaces and waits until no Membership they held is left, so that the next phase
/// starts on a quiet API server and the operator never sees them.
async fn delete_namespaces(client: &Client, names: &[String]) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    stream::iter(names)
        .map(|ns| {
            let api = api.clone();
            async move {
                let dp = DeleteParams::background();
                retrying(&format!("delete namespace {ns}"), || api.delete(ns, &dp)).await;
            }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;
    let memberships: Api<Membership> = Api::all(client.clone());
    let lp = ListParams::default().labels(PHASE_LABEL).limit(1);
    support::eventually(
        "the baseline's Memberships to be deleted",
        Duration::from_secs(1200),
        || async {
            let left = memberships.list_metadata(&lp).await.ok()?;
            left.items.is_empty().then_some(())
        },
    )
    .await;
}

fn is_active(m: &Membership) -> bool {
    m.status.as_ref().and_then(|s| s.phase) == Some(MembershipPhase::Active)
}

/// Watches the Memberships of `phase` in all namespaces and returns when `expected` of them are
/// Active, with the moment that was seen.
fn watch_until_active(
    client: &Client,
    phase: &str,
    expected: usize,
) -> tokio::task::JoinHandle<Instant> {
    let api: Api<Membership> = Api::all(client.clone());
    let config = watcher::Config::default().labels(&format!("{PHASE_LABEL}={phase}"));
    tokio::spawn(async move {
        let mut active: HashSet<(String, String)> = HashSet::new();
        let events = watcher(api, config).default_backoff();
        futures::pin_mut!(events);
        while let Some(event) = events.try_next().await.expect("watch Memberships") {
            match event {
                watcher::Event::Init => active.clear(),
                watcher::Event::Apply(m) | watcher::Event::InitApply(m) => {
                    let key = (m.namespace().unwrap_or_default(), m.name_any());
                    if is_active(&m) {
                        active.insert(key);
                    } else {
                        active.remove(&key);
                    }
                }
                watcher::Event::Delete(m) => {
                    active.remove(&(m.namespace().unwrap_or_default(), m.name_any()));
                }
                watcher::Event::InitDone => {}
            }
            if active.len() >= expected {
                return Instant::now();
            }
        }
        panic!("the Membership watch ended");
    })
}

/// The operator binary: `ROSTER_BENCH_BINARY`, else the one cargo built for this bench (under
/// `cargo bench`, the optimized bench profile in target/release).
fn operator_binary() -> (PathBuf, String) {
    if let Ok(path) = std::env::var("ROSTER_BENCH_BINARY") {
        return (path.into(), "ROSTER_BENCH_BINARY".into());
    }
    let path = PathBuf::from(env!("CARGO_BIN_EXE_roster"));
    let build = if cfg!(debug_assertions) {
        "debug build (CARGO_BIN_EXE_roster)"
    } else {
        "release/bench profile (CARGO_BIN_EXE_roster)"
    };
    (path, build.into())
}

/// `roster run` watching all namespaces (no `--namespaces`), its webhook served on a free port but
/// not registered, so that creates take the same path as in the baseline.
fn start_operator(binary: &PathBuf) -> Operator {
    let cp = support::control_plane();
    let metrics_port = support::free_port();
    let log = std::env::temp_dir().join(format!(
        "roster-bench-operator-{}-{metrics_port}.log",
        std::process::id()
    ));
    let child = Command::new(binary)
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--webhook-addr")
        .arg(format!("127.0.0.1:{}", support::free_port()))
        .arg("--log-level")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("operator log file"))
        .spawn()
        .unwrap_or_else(|e| panic!("start {} run: {e}", binary.display()));
    Operator {
        child,
        metrics_port,
        log,
    }
}

/// Whether the operator's `/readyz` answers 200 (its caches are synced).
fn ready(op: &Operator) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", op.metrics_port)) else {
        return false;
    };
    let _ = s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
}

/// Peak and current resident set of a process, in MiB (VmHWM, VmRSS).
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time (user + system) a process has used so far, in seconds; 0 when it cannot be read.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
}

/// The processes whose CPU time a phase reports: the control plane's (from the pid files of
/// hack/control-plane.sh next to the kubeconfig), this bench's, and the operator's.
struct Processes {
    named: Vec<(&'static str, u32)>,
}

impl Processes {
    fn new() -> Processes {
        let dir = support::control_plane()
            .kubeconfig
            .parent()
            .expect("the kubeconfig is in the control plane directory")
            .to_path_buf();
        let mut named = vec![("bench", std::process::id())];
        for (label, file) in [
            ("kube-apiserver", "kube-apiserver.pid"),
            ("etcd", "etcd.pid"),
            ("kube-controller-manager", "kube-controller-manager.pid"),
        ] {
            if let Some(pid) = std::fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                named.push((label, pid));
            }
        }
        Processes { named }
    }

    fn with_operator(&self, pid: u32) -> Processes {
        let mut named = self.named.clone();
        named.push(("operator", pid));
        Processes { named }
    }

    fn sample(&self) -> Vec<f64> {
        self.named
            .iter()
            .map(|(_, pid)| cpu_seconds(*pid))
            .collect()
    }

    /// CPU seconds each process used since `before`, as `name 1.2 s, ...`.
    fn since(&self, before: &[f64]) -> String {
        self.named
            .iter()
            .zip(self.sample())
            .zip(before)
            .map(|(((name, _), now), then)| format!("{name} {:.1}", now - then))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The operator's writes by kind and what was written, as `Membership/status 10000, ...`.
fn writes_by_label(op: &Operator) -> Vec<(String, f64)> {
    op.metrics()
        .lines()
        .filter_map(|l| l.strip_prefix(WRITES)?.strip_prefix('{'))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once("} ")?;
            let label = |key: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\""))
                    .map(|v| v.trim_end_matches('"').to_string())
                    .unwrap_or_default()
            };
            Some((
                format!("{}/{}", label("kind"), label("what")),
                value.trim().parse().ok()?,
            ))
        })
        .collect()
}

/// Writes that belong to one Membership (its status, its RoleBindings), and the rest: each org's
/// status, the data-region label of its namespace, the owners' protection finalizers.
fn per_membership(by_label: &[(String, f64)]) -> (f64, f64) {
    let own = |k: &str| k == "Membership/status" || k.starts_with("RoleBinding/");
    let sum = |mine: bool| {
        (by_label.iter())
            .filter(|(k, _)| own(k) == mine)
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    (sum(true), sum(false))
}

fn writes_delta(before: &[(String, f64)], after: &[(String, f64)]) -> String {
    let mut out: Vec<String> = after
        .iter()
        .filter_map(|(k, v)| {
            let then = before.iter().find(|(b, _)| b == k).map_or(0.0, |(_, b)| *b);
            (v - then > 0.0).then(|| format!("{k} {}", v - then))
        })
        .collect();
    out.sort();
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

/// Waits until the operator's write counter stays put for `quiet`, at most `limit`; returns it.
async fn settle(op: &Operator, quiet: Duration, limit: Duration) -> f64 {
    settle_on(op, WRITES, quiet, limit).await
}

/// Waits until the counter `metric` has not moved for `quiet` (or `limit` passed); returns it.
async fn settle_on(op: &Operator, metric: &str, quiet: Duration, limit: Duration) -> f64 {
    let deadline = Instant::now() + limit;
    let mut last = op.metric_sum(metric);
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = op.metric_sum(metric);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet || Instant::now() >= deadline {
            return last;
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

struct Row {
    figure: String,
    value: String,
    goal: &'static str,
}

fn row(figure: impl Into<String>, value: impl Into<String>, goal: &'static str) -> Row {
    Row {
        figure: figure.into(),
        value: value.into(),
        goal,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "converge: end-to-end benchmark on a real control plane; skipped without --bench (run `cargo bench --bench converge`)"
        );
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(Settings::from_env()));
}

async fn run(s: Settings) {
    let started = Instant::now();
    let n = s.memberships();
    let (binary, build) = operator_binary();
    println!(
        "converge: {} orgs x {} members = {n} Memberships, big org {} members, concurrency {}",
        s.orgs, s.members, s.big_org, s.concurrency
    );
    println!("converge: operator binary {} ({build})", binary.display());
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let mut rows = Vec::new();

    // 1. Baseline: the API server alone.
    // Warm up (connections, the API server's caches) outside the measure.
    let warm_ns = namespaces(&client, "bench-warmup", 1).await;
    let warm = 4 * s.concurrency;
    create_orgs(&client, &warm_ns, warm, s.concurrency, "warmup").await;
    patch_statuses(&client, &warm_ns, warm, s.concurrency).await;

    let processes = Processes::new();
    let base_ns = namespaces(&client, "bench-base", s.orgs).await;
    let cpu = processes.sample();
    let t0 = Instant::now();
    create_orgs(&client, &base_ns, s.members, s.concurrency, "baseline").await;
    let created = t0.elapsed();
    patch_statuses(&client, &base_ns, s.members, s.concurrency).await;
    let baseline = t0.elapsed();
    println!(
        "baseline: {n} creates in {}, + {n} status applies: {} in all; CPU s: {}",
        secs(created),
        secs(baseline),
        processes.since(&cpu)
    );
    // 1b. Optionally the floor of the operator's own write set: the same creates, then for each
    // Membership the three writes the operator makes (owner reference, status, RoleBinding), by
    // the bench with the same client and concurrency.
    let mut floor = None;
    let mut floor_ns = Vec::new();
    if s.floor {
        floor_ns = namespaces(&client, "bench-floor", s.orgs).await;
        let cpu = processes.sample();
        let t0 = Instant::now();
        let uids = create_orgs(&client, &floor_ns, s.members, s.concurrency, "floor").await;
        floor_writes(&client, &floor_ns, s.members, s.concurrency, &uids).await;
        floor = Some(t0.elapsed());
        println!(
            "floor: {n} creates + {} writes (status, RoleBinding): {}; CPU s: {}",
            2 * n,
            secs(t0.elapsed()),
            processes.since(&cpu)
        );
    }
    delete_namespaces(&client, &[base_ns, warm_ns, floor_ns].concat()).await;

    // 2. The same with the operator running.
    let op_ns = namespaces(&client, "bench-op", s.orgs).await;
    let mut operator = start_operator(&binary);
    support::eventually("the operator to be ready", Duration::from_secs(60), || {
        std::future::ready(ready(&operator).then_some(()))
    })
    .await;
    let pid = operator.child.id();
    let (_, rss_empty) = memory_mib(pid);
    let processes = processes.with_operator(pid);
    let all_active = watch_until_active(&client, "operator", n);
    let cpu = processes.sample();
    let t0 = Instant::now();
    create_orgs(&client, &op_ns, s.members, s.concurrency, "operator").await;
    let created = t0.elapsed();
    let converged = tokio::time::timeout(Duration::from_secs(600), all_active)
        .await
        .unwrap_or_else(|_| panic!("not all {n} Memberships Active within 600 s"))
        .expect("watch task")
        .duration_since(t0);
    let cpu_converged = processes.since(&cpu);
    let writes = settle(&operator, Duration::from_secs(2), Duration::from_secs(60)).await;
    let (peak, rss_held) = memory_mib(pid);
    println!(
        "operator: {n} creates in {}, all Active after {}; CPU s until then: {cpu_converged}",
        secs(created),
        secs(converged),
    );
    println!(
        "operator: {writes} writes in all ({:.2} per Membership: {}), {} reconciles",
        writes / n as f64,
        writes_delta(&[], &writes_by_label(&operator)),
        operator.metric_sum("roster_reconciles_total"),
    );
    let ratio = converged.as_secs_f64() / baseline.as_secs_f64();
    rows.push(row(
        format!("baseline: {n} creates + status SSA"),
        secs(baseline),
        "",
    ));
    rows.push(row(
        format!("operator: first create -> {n} Active"),
        secs(converged),
        "",
    ));
    rows.push(row(
        "ratio operator / baseline",
        format!("{ratio:.2}"),
        "<= 1.5",
    ));
    if let Some(floor) = floor {
        rows.push(row(
            format!("floor: {n} creates + 2 SSA writes each"),
            secs(floor),
            "",
        ));
        rows.push(row(
            "ratio operator / floor",
            format!("{:.2}", converged.as_secs_f64() / floor.as_secs_f64()),
            "",
        ));
    }
    let (own, org_wide) = per_membership(&writes_by_label(&operator));
    rows.push(row(
        format!("operator writes for {n} Memberships"),
        format!("{writes} ({:.2} each)", writes / n as f64),
        "",
    ));
    rows.push(row(
        "  of which each Membership's own (status, bindings)",
        format!("{:.2} each", own / n as f64),
        "<= 2 each",
    ));
    rows.push(row(
        "  of which each org's (status, namespace label, owner finalizer)",
        format!("{:.2} per org", org_wide / s.orgs as f64),
        "",
    ));
    rows.push(row(
        format!("operator peak RSS (VmHWM), {n} held"),
        format!("{peak:.1} MiB (now {rss_held:.1}; {rss_empty:.1} with none)"),
        "< chart limit",
    ));

    // 4. One change in a big org.
    let big_ns = namespaces(&client, "bench-big", 1).await;
    let big_active = watch_until_active(&client, "big", s.big_org);
    let t0 = Instant::now();
    create_orgs(&client, &big_ns, s.big_org, s.concurrency, "big").await;
    let big_converged = tokio::time::timeout(Duration::from_secs(600), big_active)
        .await
        .unwrap_or_else(|_| panic!("not all {} Memberships Active within 600 s", s.big_org))
        .expect("watch task")
        .duration_since(t0);
    let before = settle(&operator, Duration::from_secs(3), Duration::from_secs(120)).await;
    let reconciles_before = operator.metric_sum("roster_reconciles_total");
    let by_label_before = writes_by_label(&operator);
    println!(
        "big org: {} Memberships Active after {}",
        s.big_org,
        secs(big_converged)
    );

    let ns = &big_ns[0];
    let changed = member_name(1);
    assert_eq!(role(1), OrgRole::Member);
    let api: Api<Membership> = Api::namespaced(client.clone(), ns);
    let shows_viewer = {
        let config = watcher::Config::default().fields(&format!("metadata.name={changed}"));
        let events = watcher(api.clone(), config)
            .default_backoff()
            .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(events);
            while let Some(m) = events
                .try_next()
                .await
                .expect("watch the changed Membership")
            {
                if m.status.and_then(|s| s.effective_role) == Some(OrgRole::Viewer) {
                    return Instant::now();
                }
            }
            panic!("the Membership watch ended");
        })
    };
    // Let the watch list first, so its start is not part of the measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    api.patch(
        &changed,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": { "role": "viewer" } })),
    )
    .await
    .expect("change the role");
    let one_change = tokio::time::timeout(Duration::from_secs(120), shows_viewer)
        .await
        .expect("the status to show the new role within 120 s")
        .expect("watch task")
        .duration_since(t0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = operator.metric_sum(WRITES);
    let reconciles = operator.metric_sum("roster_reconciles_total") - reconciles_before;
    let (peak_end, rss_end) = memory_mib(pid);
    println!(
        "one change: status shows viewer after {:.0} ms; {} writes ({}), {reconciles} reconciles",
        one_change.as_secs_f64() * 1000.0,
        after - before,
        writes_delta(&by_label_before, &writes_by_label(&operator)),
    );
    rows.push(row(
        format!("big org: first create -> {} Active", s.big_org),
        secs(big_converged),
        "",
    ));
    rows.push(row(
        format!("writes for one change in a {}-member org", s.big_org),
        format!("{}", after - before),
        "a handful",
    ));
    rows.push(row(
        "one change -> status shows it",
        format!("{:.0} ms", one_change.as_secs_f64() * 1000.0),
        "",
    ));
    rows.push(row(
        format!("operator peak RSS at the end, {} held", n + s.big_org),
        format!("{peak_end:.1} MiB (now {rss_end:.1})"),
        "",
    ));
    // 5. What each Membership costs, from the sizes this one process held: in orgs of
    // `s.members`, from none to n; in the big org, from n to n + big.
    rows.push(row(
        format!("memory per Membership (RSS 0 -> {n} held)"),
        format!("{:.2} KiB", (rss_held - rss_empty) * 1024.0 / n as f64),
        "<= 2 KiB",
    ));
    rows.push(row(
        format!(
            "memory per Membership of the big org (RSS {n} -> {} held)",
            n + s.big_org
        ),
        format!(
            "{:.2} KiB",
            (rss_end - rss_held) * 1024.0 / s.big_org as f64
        ),
        "<= 2 KiB",
    ));
    operator.terminate(Duration::from_secs(10));

    // 6. A cold restart holding everything.
    let total = n + s.big_org;
    let operator = start_operator(&binary);
    let t0 = Instant::now();
    support::eventually(
        "the restarted operator to be ready",
        Duration::from_secs(600),
        || std::future::ready(ready(&operator).then_some(())),
    )
    .await;
    let until_ready = t0.elapsed();
    // Every org is reconciled once after a start: done when reconciles stop for a while.
    let quiet = Duration::from_secs(3);
    let reconciles = settle_on(
        &operator,
        "roster_reconciles_total",
        quiet,
        Duration::from_secs(600),
    )
    .await;
    let until_settled = t0.elapsed().saturating_sub(quiet);
    let restart_writes = operator.metric_sum(WRITES);
    let (restart_peak, restart_rss) = memory_mib(operator.child.id());
    println!(
        "cold restart: ready after {}, reconciles settled after {}: {reconciles} reconciles, {restart_writes:.0} writes",
        secs(until_ready),
        secs(until_settled),
    );
    rows.push(row(
        format!("cold restart with {total} held: ready after"),
        secs(until_ready),
        "",
    ));
    rows.push(row(
        "cold restart: every org reconciled after",
        format!(
            "{} ({:.0} writes)",
            secs(until_settled),
            restart_writes.abs()
        ),
        "",
    ));
    rows.push(row(
        "cold restart peak RSS",
        format!("{restart_peak:.1} MiB (now {restart_rss:.1})"),
        "< chart limit",
    ));
    let mut operator = operator;
    operator.terminate(Duration::from_secs(10));

    let width = rows.iter().map(|r| r.figure.len()).max().unwrap_or(0);
    let vwidth = rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
    println!();
    println!(
        "converge results ({} orgs x {} members; operator {build}; {:.0} s in all)",
        s.orgs,
        s.members,
        started.elapsed().as_secs_f64()
    );
    println!("{:width$}  {:>vwidth$}  goal", "figure", "value");
    for r in &rows {
        println!("{:width$}  {:>vwidth$}  {}", r.figure, r.value, r.goal);
    }
}
