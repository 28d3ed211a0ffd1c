//! The Helm chart's real pods, on a cluster with a real node (`hack/node.sh`): the operator image built
//! without Docker (`hack/build-image.sh`), `helm install --wait` with two replicas, the API server
//! calling the webhook through the chart's Service, a leader pod deleted, a `helm upgrade` to a new
//! image while people keep writing, `helm test`, and `helm uninstall` as docs/operations.md says.
//!
//! One test with named steps: there is one node per machine, and each step starts from the last.
//! The figures (install to Ready, failover, rollout, failed admissions, memory) are printed.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use roster::api::{Membership, MembershipPhase, Organization};
use support::eventually;
use support::node::{NodeCluster, build_image};

const RELEASE: &str = "roster";
const NAMESPACE: &str = "roster-system";
const ORG: &str = "e2e";
const OWNER: &str = "alice@e2e.example";
const LEASE: Duration = Duration::from_secs(15);
const WAIT: Duration = Duration::from_secs(120);
const PODS: &str = "app.kubernetes.io/name=roster,app.kubernetes.io/instance=roster";

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_chart_runs_on_a_real_node() {
    let cluster = NodeCluster::start("e2e-helm");
    let first = build_image("e2e-first");
    let second = build_image("e2e-second");
    cluster.import(&first);
    cluster.import(&second);
    let admin = cluster.admin().await;

    install_two_replicas(&cluster, &admin).await;
    helm_test_passes(&cluster);
    users_are_allowed_and_refused_through_the_pods(&cluster, &admin).await;
    the_disruption_budget_keeps_one_pod(&cluster, &admin).await;
    memory_with_the_examples_loaded(&cluster, &admin).await;
    the_standby_takes_over_from_a_deleted_leader(&cluster, &admin).await;
    helm_upgrade_fails_no_admission(&cluster, &admin).await;
    uninstall_leaves_nothing_stuck(&cluster, &admin).await;
    cluster.stop();
}

async fn install_two_replicas(cluster: &NodeCluster, admin: &Client) {
    let started = Instant::now();
    ok(
        cluster.helm(&[
            "install",
            RELEASE,
            "charts/roster",
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "replicas=2",
            "--set",
            "image.tag=e2e-first",
            "--set",
            "image.pullPolicy=Never",
            "--wait",
            "--timeout",
            "180s",
        ]),
        "helm install --wait",
    );
    let took = started.elapsed();
    let pods = ready_pods(admin).await;
    assert_eq!(pods.len(), 2, "two replicas: {:?}", names(&pods));
    let leaders = leader_metrics(admin, &pods).await;
    println!("install: helm install --wait took {took:?}; leader metric per pod {leaders:?}");
    assert_eq!(
        leaders.values().sum::<f64>(),
        1.0,
        "exactly one replica leads: {leaders:?}"
    );
}

fn helm_test_passes(cluster: &NodeCluster) {
    let started = Instant::now();
    let out = ok(
        cluster.helm(&[
            "test",
            RELEASE,
            "--namespace",
            NAMESPACE,
            "--timeout",
            "120s",
        ]),
        "helm test",
    );
    assert!(
        out.contains("TEST SUITE:     roster-self-test")
            && out.contains("Phase:          Succeeded"),
        "roster self-test ran and passed in a pod:\n{out}"
    );
    println!(
        "helm test: roster self-test passed in a pod, {:?}",
        started.elapsed()
    );
}

/// An Organization owned by alice: she may add an admin, dave; RBAC lets dave write Memberships, and
/// the webhook, answered by a pod behind the chart's Service, refuses him an owner.
async fn users_are_allowed_and_refused_through_the_pods(cluster: &NodeCluster, admin: &Client) {
    ok(
        cluster.kubectl(&["create", "namespace", ORG]),
        "create the org namespace",
    );
    let org: Organization = serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": ORG },
        "spec": { "displayName": "End to end", "policy": { "minOwners": 1 } }
    }))
    .unwrap();
    Api::<Organization>::namespaced(admin.clone(), ORG)
        .create(&PostParams::default(), &org)
        .await
        .expect("the platform creates the Organization");
    create_membership(admin, "alice", OWNER, "owner")
        .await
        .expect("the platform adds the owner");
    wait_active(admin, "alice").await;

    let alice = cluster.as_user(OWNER).await;
    create_membership(&alice, "dave", "dave@e2e.example", "admin")
        .await
        .expect("the owner adds an admin");
    wait_active(admin, "dave").await;
    let dave = cluster.as_user("dave@e2e.example").await;
    let refused = create_membership(&dave, "mallory", "mallory@e2e.example", "owner")
        .await
        .expect_err("an admin cannot make an owner");
    let message = refused.to_string();
    assert!(
        message.contains("admission webhook") && message.contains("denied the request"),
        "refused by roster's webhook: {message}"
    );
    println!("access: the owner's write was admitted; the admin's owner refused: {message}");
}

/// With two replicas and `maxUnavailable: 1`, one pod may be evicted and then no second one.
async fn the_disruption_budget_keeps_one_pod(cluster: &NodeCluster, admin: &Client) {
    let pods = ready_pods(admin).await;
    // The disruption controller must have counted the healthy pods first.
    eventually(
        "the PodDisruptionBudget to allow one disruption",
        WAIT,
        || async {
            let out = cluster.kubectl(&[
                "get",
                "pdb",
                RELEASE,
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath={.status.disruptionsAllowed}",
            ]);
            (String::from_utf8_lossy(&out.stdout).trim() == "1").then_some(())
        },
    )
    .await;
    evict(cluster, &pods[0].name_any()).expect("the first eviction is allowed");
    match evict(cluster, &pods[1].name_any()) {
        Err(e) if e.contains("TooManyRequests") => {}
        other => panic!("the second eviction must be refused by the budget: {other:?}"),
    }
    let replaced = ready_pods(admin).await;
    println!(
        "disruption budget: evicted {}, refused {}; ready again: {:?}",
        pods[0].name_any(),
        pods[1].name_any(),
        names(&replaced)
    );
}

/// Every example applied as the platform, settled Ready; then each operator pod's resident memory.
async fn memory_with_the_examples_loaded(cluster: &NodeCluster, admin: &Client) {
    for example in ["acme", "enterprise", "lab"] {
        ok(
            cluster.kubectl(&[
                "apply",
                "--server-side",
                "-R",
                "-f",
                &format!("examples/{example}"),
            ]),
            "apply an example",
        );
    }
    ok(
        cluster.kubectl(&[
            "wait",
            "--for",
            "condition=Ready",
            "organizations,memberships,invites,teams",
            "--all",
            "-A",
            "--timeout",
            "120s",
        ]),
        "every example Ready",
    );
    let pods = ready_pods(admin).await;
    let mib: BTreeMap<_, _> = pods
        .iter()
        .map(|p| (p.name_any(), resident_mib(p)))
        .collect();
    println!("memory: resident MiB per operator pod with the examples loaded: {mib:.1?}");
    assert!(
        mib.values().all(|m| *m > 1.0 && *m < 256.0),
        "within the chart's limit: {mib:?}"
    );
}

/// The resident memory of the roster process in `pod`, read on the node (this machine): the process
/// whose cgroup is the pod's.
fn resident_mib(pod: &Pod) -> f64 {
    let uid = pod.uid().unwrap();
    let in_pod = |pid: &str| {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        (cgroup.contains(&uid) || cgroup.contains(&uid.replace('-', "_")))
            && cmdline.starts_with("/usr/local/bin/roster\0run")
    };
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|pid| pid.parse::<u32>().is_ok() && in_pod(pid))
        .unwrap_or_else(|| panic!("no roster process in pod {}", pod.name_any()));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// The leader pod is deleted; the standby takes the Lease within the lease duration, and roster's
/// writes (each new Membership made Active) never stop for longer than that.
async fn the_standby_takes_over_from_a_deleted_leader(cluster: &NodeCluster, admin: &Client) {
    let leases = Api::<Lease>::namespaced(admin.clone(), NAMESPACE);
    let leader = holder(&leases).await.expect("a leader holds the Lease");
    let traffic = Traffic::start(cluster, admin, "failover").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deleted = Instant::now();
    Api::<Pod>::namespaced(admin.clone(), NAMESPACE)
        .delete(&leader, &DeleteParams::default())
        .await
        .expect("delete the leader pod");
    let new = eventually("another pod to hold the Lease", WAIT, || async {
        holder(&leases).await.filter(|h| *h != leader)
    })
    .await;
    let took_over = deleted.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let report = traffic.stop().await;
    println!("failover: {leader} deleted, {new} held the Lease after {took_over:?}; {report}");
    assert!(
        took_over < LEASE,
        "takeover within the lease: {took_over:?}"
    );
    assert!(report.slowest_to_active < LEASE, "{report}");
    assert!(report.refused.is_empty(), "{report}");
}

/// `helm upgrade` to another image tag while an owner keeps adding people: the rollout replaces both
/// pods, and no admission fails on the way.
async fn helm_upgrade_fails_no_admission(cluster: &NodeCluster, admin: &Client) {
    let before = names(&ready_pods(admin).await);
    let traffic = Traffic::start(cluster, admin, "upgrade").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    ok(
        cluster.helm(&[
            "upgrade",
            RELEASE,
            "charts/roster",
            "--namespace",
            NAMESPACE,
            "--reuse-values",
            "--set",
            "image.tag=e2e-second",
            "--wait",
            "--timeout",
            "180s",
        ]),
        "helm upgrade --wait",
    );
    let rollout = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = traffic.stop().await;
    let after = ready_pods(admin).await;
    println!("upgrade: rollout took {rollout:?}; {report}");
    assert!(
        after.iter().all(|p| image(p).ends_with(":e2e-second")),
        "every pod runs the new image"
    );
    assert!(
        names(&after).iter().all(|p| !before.contains(p)),
        "both pods replaced"
    );
    assert!(
        report.refused.is_empty(),
        "failed admissions during the rollout: {report}"
    );
}

/// docs/operations.md: organizations deleted while roster runs, then `helm uninstall`, then the CRDs.
/// Nothing stays Terminating and roster leaves no RoleBinding behind.
async fn uninstall_leaves_nothing_stuck(cluster: &NodeCluster, admin: &Client) {
    ok(
        cluster.shell(&operations_block("uninstall: delete-organizations")),
        "delete every Organization while roster runs (docs/operations.md)",
    );
    ok(
        cluster.helm(&[
            "uninstall",
            RELEASE,
            "--namespace",
            NAMESPACE,
            "--wait",
            "--timeout",
            "120s",
        ]),
        "helm uninstall",
    );
    ok(
        cluster.kubectl(&[
            "delete",
            "crd",
            "organizations.roster.dev",
            "memberships.roster.dev",
            "invites.roster.dev",
            "teams.roster.dev",
            "--ignore-not-found",
            "--wait",
            "--timeout",
            "120s",
        ]),
        "delete the CRDs",
    );
    for ns in [ORG, "acme", "enterprise", "lovelace-lab", NAMESPACE] {
        ok(
            cluster.kubectl(&[
                "delete",
                "namespace",
                ns,
                "--ignore-not-found",
                "--wait",
                "--timeout",
                "120s",
            ]),
            "delete a namespace",
        );
    }
    let left = ok(
        cluster.kubectl(&[
            "get",
            "rolebindings,validatingwebhookconfigurations",
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=roster",
            "-o",
            "name",
        ]),
        "list what roster made",
    );
    assert!(left.trim().is_empty(), "roster left: {left}");
    let pods = Api::<Pod>::namespaced(admin.clone(), NAMESPACE)
        .list(&ListParams::default().labels(PODS))
        .await
        .unwrap();
    assert!(pods.items.is_empty(), "no operator pod left");
}

/// The shell block of docs/operations.md between `<!-- BEGIN NAME -->` and `<!-- END NAME -->`.
fn operations_block(name: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let begin = format!("<!-- BEGIN {name} -->");
    let block = doc
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&format!("<!-- END {name} -->")))
        .unwrap_or_else(|| panic!("docs/operations.md has no block {name}"))
        .0;
    block
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asks the eviction API to evict `pod`, as `kubectl drain` does. (kube's `Api::evict` sends an
/// Eviction without apiVersion and kind, which this API server admits without consulting the budget.)
fn evict(cluster: &NodeCluster, pod: &str) -> Result<(), String> {
    let eviction = serde_json::json!({
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": { "name": pod, "namespace": NAMESPACE }
    });
    let file = std::env::temp_dir().join(format!("eviction-{pod}.json"));
    std::fs::write(&file, eviction.to_string()).unwrap();
    let out = cluster.kubectl(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction"),
        "-f",
        file.to_str().unwrap(),
    ]);
    println!("evict {pod}: {}", text(&out));
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out))
    }
}

async fn create_membership(
    client: &Client,
    name: &str,
    user: &str,
    role: &str,
) -> Result<Membership, kube::Error> {
    let m: Membership = serde_json::from_value(support::membership_json(name, user, role)).unwrap();
    Api::<Membership>::namespaced(client.clone(), ORG)
        .create(&PostParams::default(), &m)
        .await
}

fn active(m: &Membership) -> bool {
    m.status.as_ref().and_then(|s| s.phase) == Some(MembershipPhase::Active)
}

async fn wait_active(admin: &Client, name: &str) {
    let api = Api::<Membership>::namespaced(admin.clone(), ORG);
    eventually(&format!("Membership {name} to be Active"), WAIT, || async {
        api.get_opt(name)
            .await
            .ok()
            .flatten()
            .filter(active)
            .map(drop)
    })
    .await;
}

/// The operator's pods once they are all Ready and none is terminating (two, unless evicted).
async fn ready_pods(admin: &Client) -> Vec<Pod> {
    let api = Api::<Pod>::namespaced(admin.clone(), NAMESPACE);
    eventually("two Ready operator pods", WAIT, || async {
        let pods = api
            .list(&ListParams::default().labels(PODS))
            .await
            .ok()?
            .items;
        let ready = |p: &Pod| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        (pods.len() == 2 && pods.iter().all(ready)).then_some(pods)
    })
    .await
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().map(|p| p.name_any()).collect()
}

fn image(pod: &Pod) -> String {
    pod.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(RELEASE)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// A pod's /metrics, through the API server's proxy to the pod (the path the API server takes to pods).
async fn scrape(admin: &Client, pod: &str) -> String {
    let path = format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}:8080/proxy/metrics");
    let request = axum::http::Request::get(path).body(Vec::new()).unwrap();
    admin
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("scrape {pod}: {e}"))
}

async fn metric_per_pod(admin: &Client, pods: &[Pod], metric: &str) -> BTreeMap<String, f64> {
    let mut values = BTreeMap::new();
    for pod in pods {
        let body = scrape(admin, &pod.name_any()).await;
        let value = body
            .lines()
            .filter(|l| l.starts_with(metric) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        values.insert(pod.name_any(), value);
    }
    values
}

async fn leader_metrics(admin: &Client, pods: &[Pod]) -> BTreeMap<String, f64> {
    eventually("one replica to report that it leads", WAIT, || async {
        let values = metric_per_pod(admin, pods, "roster_leader").await;
        (values.values().sum::<f64>() >= 1.0).then_some(values)
    })
    .await
}

/// One create: the Membership's name, when it was sent, and what came back.
type Attempt = (String, Instant, Result<(), String>);

/// An owner adding a Membership every 100 ms through the webhook, and a poll of when each becomes
/// Active: what people, and roster's own writes, see during a disruption.
struct Traffic {
    running: Arc<AtomicBool>,
    writer: tokio::task::JoinHandle<Vec<Attempt>>,
    /// When each Membership was first seen Active.
    active: Arc<Mutex<HashMap<String, Instant>>>,
}

struct Report {
    admitted: usize,
    refused: Vec<String>,
    slowest_to_active: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} admitted, {} failed admissions {:?}, slowest Membership to become Active {:?}",
            self.admitted,
            self.refused.len(),
            self.refused,
            self.slowest_to_active
        )
    }
}

impl Traffic {
    async fn start(cluster: &NodeCluster, admin: &Client, prefix: &str) -> Traffic {
        let owner = cluster.as_user(OWNER).await;
        let running = Arc::new(AtomicBool::new(true));
        let active = Arc::new(Mutex::new(HashMap::new()));
        let writer = tokio::spawn(write_until(running.clone(), owner, prefix.to_string()));
        tokio::spawn(observe(
            Arc::downgrade(&active),
            admin.clone(),
            prefix.to_string(),
        ));
        Traffic {
            running,
            writer,
            active,
        }
    }

    /// Stops writing, waits until every admitted Membership is Active, and reports.
    async fn stop(self) -> Report {
        self.running.store(false, Ordering::Relaxed);
        let sent = self.writer.await.unwrap();
        let admitted: Vec<_> = sent.iter().filter(|(_, _, r)| r.is_ok()).collect();
        let active = eventually(
            "every admitted Membership to become Active",
            WAIT,
            || async {
                let active = self.active.lock().unwrap();
                admitted
                    .iter()
                    .all(|(name, _, _)| active.contains_key(name))
                    .then(|| active.clone())
            },
        )
        .await;
        let slowest = admitted
            .iter()
            .map(|(name, at, _)| match active.get(name) {
                Some(seen) => seen.saturating_duration_since(*at),
                None => panic!("Membership {name} was admitted and never became Active"),
            })
            .max()
            .unwrap_or_default();
        Report {
            admitted: admitted.len(),
            refused: sent
                .iter()
                .filter_map(|(n, _, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
                .collect(),
            slowest_to_active: slowest,
        }
    }
}

/// Creates `PREFIX-NNNN` Memberships as `owner` every 100 ms while `running`; returns each attempt.
async fn write_until(running: Arc<AtomicBool>, owner: Client, prefix: String) -> Vec<Attempt> {
    let mut sent = Vec::new();
    while running.load(Ordering::Relaxed) {
        let name = format!("{prefix}-{:04}", sent.len());
        let at = Instant::now();
        let result = create_membership(&owner, &name, &format!("{name}@e2e.example"), "viewer")
            .await
            .map(drop)
            .map_err(|e| e.to_string());
        sent.push((name, at, result));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sent
}

/// Records when each `PREFIX-` Membership is first seen Active, polling every 100 ms for as long as
/// the record is kept.
async fn observe(record: Weak<Mutex<HashMap<String, Instant>>>, admin: Client, prefix: String) {
    let api = Api::<Membership>::namespaced(admin, ORG);
    loop {
        let list = api.list(&ListParams::default()).await;
        let Some(record) = record.upgrade() else {
            return;
        };
        if let Ok(list) = list {
            let mut record = record.lock().unwrap();
            for m in list
                .items
                .iter()
                .filter(|m| m.name_any().starts_with(&prefix) && active(m))
            {
                record.entry(m.name_any()).or_insert_with(Instant::now);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
