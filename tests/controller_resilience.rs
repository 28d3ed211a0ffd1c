//! The operator under failure, against the real control plane: SIGKILL half-way through a large
//! reconcile, leader election and handover, racing removals of the last owners, graceful shutdown,
//! and uninstalling the operator before the objects (with the remedy in docs/operations.md).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use roster::api::{Condition, Membership, MembershipPhase, OrgRole, Organization};
use roster::controller::OWNER_PROTECTION;
use support::{Operator, eventually};

/// Operators here run without the admission webhook: these tests are about the controller being the
/// authority (writes go straight through), and operators must not compete for the webhook's port.
const NO_WEBHOOK: [&str; 2] = ["--webhook-addr", ""];
const WRITES: &str = "roster_api_writes_total";
const WAIT: Duration = Duration::from_secs(60);

async fn admin() -> Client {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    client
}

fn organization(labels: serde_json::Value) -> Organization {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1",
        "kind": "Organization",
        "metadata": { "name": "org", "labels": labels },
        "spec": { "displayName": "Resilience", "policy": { "minOwners": 1 } }
    }))
    .unwrap()
}

fn membership(name: &str, user: &str, role: &str) -> Membership {
    serde_json::from_value(support::membership_json(name, user, role)).unwrap()
}

async fn create_org(client: &Client, ns: &str, labels: serde_json::Value) {
    Api::<Organization>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &organization(labels))
        .await
        .unwrap_or_else(|e| panic!("create the Organization in {ns}: {e}"));
}

async fn create_membership(client: &Client, ns: &str, name: &str, user: &str, role: &str) {
    Api::<Membership>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &membership(name, user, role))
        .await
        .unwrap_or_else(|e| panic!("create Membership {ns}/{name}: {e}"));
}

async fn memberships(client: &Client, ns: &str) -> Vec<Membership> {
    Api::<Membership>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

fn phase(m: &Membership) -> Option<MembershipPhase> {
    m.status.as_ref()?.phase
}

fn effective_role(m: &Membership) -> Option<OrgRole> {
    m.status.as_ref()?.effective_role
}

/// Active with the role it asks for.
fn settled(m: &Membership) -> bool {
    phase(m) == Some(MembershipPhase::Active) && effective_role(m) == Some(m.spec.role)
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn protected(m: &Membership) -> bool {
    m.finalizers().iter().any(|f| f == OWNER_PROTECTION)
}

async fn wait_settled(client: &Client, ns: &str, name: &str) -> Membership {
    let api = Api::<Membership>::namespaced(client.clone(), ns);
    eventually(
        &format!("Membership {ns}/{name} to be Active with its role"),
        WAIT,
        || async { api.get_opt(name).await.unwrap().filter(settled) },
    )
    .await
}

// 1. SIGKILL in the middle of reconciling 1,000 Memberships.

#[tokio::test]
async fn sigkill_mid_reconcile_of_1000_memberships_loses_nothing() {
    const N: usize = 1000;
    let client = admin().await;
    let ns = support::namespace(&client, "sigkill-1000").await;
    create_org(&client, &ns, serde_json::json!({})).await;
    let api = Api::<Membership>::namespaced(client.clone(), &ns);
    let created = Instant::now();
    futures::stream::iter(0..N)
        .map(|i| {
            let api = api.clone();
            let role = match i {
                0 => "owner",
                i if i.is_multiple_of(2) => "member",
                _ => "viewer",
            };
            async move {
                let m = membership(
                    &format!("m{i:04}"),
                    &format!("user{i:04}@example.com"),
                    role,
                );
                api.create(&PostParams::default(), &m).await.map(drop)
            }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await
        .expect("create 1,000 Memberships");
    println!("created {N} Memberships in {:?}", created.elapsed());

    let mut first = Operator::start(&[&ns], &NO_WEBHOOK);
    let started = Instant::now();
    let seen = eventually("some Memberships to be Active", WAIT, || async {
        let n = memberships(&client, &ns)
            .await
            .iter()
            .filter(|m| settled(m))
            .count();
        (n > 0).then_some(n)
    })
    .await;
    first.kill();
    let killed_after = started.elapsed();
    // What was finished at the kill, with its version: the restart must not write it again.
    let finished: std::collections::BTreeMap<String, Option<String>> = memberships(&client, &ns)
        .await
        .iter()
        .filter(|m| settled(m))
        .map(|m| (m.name_any(), m.resource_version()))
        .collect();
    let done_at_kill = finished.len();
    let bound_at_kill = Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=roster"))
        .await
        .unwrap()
        .items
        .len();
    println!(
        "SIGKILL {killed_after:?} after start: {seen} Active when seen, {done_at_kill} of {N} once it was dead, {bound_at_kill} RoleBindings"
    );
    assert!(
        done_at_kill < N,
        "the operator finished all {N} before it was killed; the test did not kill it mid-way"
    );

    let second = Operator::start(&[&ns], &NO_WEBHOOK);
    let restarted = Instant::now();
    let orgs = Api::<Organization>::namespaced(client.clone(), &ns);
    eventually(
        "all 1,000 Memberships Active with their role, and the org counting 1,000",
        Duration::from_secs(150),
        || async {
            let ms = memberships(&client, &ns).await;
            let members = orgs.get("org").await.unwrap().status.map(|s| s.members);
            (ms.len() == N && ms.iter().all(settled) && members == Some(N as i32)).then_some(())
        },
    )
    .await;
    let converged = restarted.elapsed();
    let writes = second.metric_sum(WRITES);
    println!(
        "restarted operator converged {converged:?} after start ({} remaining, {writes} writes)",
        N - done_at_kill
    );

    // Nothing lost, nothing denied, protection and ownership in place.
    let ms = memberships(&client, &ns).await;
    assert_eq!(ms.len(), N, "every Membership still exists");
    let not_active: Vec<_> = ms
        .iter()
        .filter(|m| {
            matches!(
                phase(m),
                Some(MembershipPhase::Denied | MembershipPhase::Pending) | None
            )
        })
        .map(|m| m.name_any())
        .collect();
    assert!(not_active.is_empty(), "Denied/Pending: {not_active:?}");
    let owner = ms.iter().find(|m| m.name_any() == "m0000").unwrap();
    assert!(protected(owner), "the owner carries {OWNER_PROTECTION}");
    assert_eq!(
        ms.iter().filter(|m| protected(m)).count(),
        1,
        "only the owner is protected"
    );
    assert!(
        ms.iter().all(|m| m.owner_references().is_empty()),
        "no Membership is owned by anything"
    );
    let status = orgs.get("org").await.unwrap().status.unwrap();
    assert_eq!(status.owners, vec!["user0000@example.com"]);
    assert_eq!(status.members, N as i32);
    // The restarted operator redid nothing the first one had finished: not one finished Membership
    // was written again.
    let rewritten: Vec<_> = ms
        .iter()
        .filter(|m| {
            finished
                .get(&m.name_any())
                .is_some_and(|v| *v != m.resource_version())
        })
        .map(|m| m.name_any())
        .collect();
    assert!(
        rewritten.is_empty(),
        "finished before the kill, written again: {rewritten:?}"
    );
    // And it wrote about what was left: a status per Membership not done yet, a RoleBinding per
    // Membership not bound yet, the org and its owner. A status can be written twice while a burst
    // of watch events settles (seats counted before every Membership is seen): at most twice here.
    let budget = 2 * (N - done_at_kill) + N.saturating_sub(bound_at_kill) + 10;
    assert!(
        writes <= budget as f64,
        "{writes} writes after the restart, expected at most {budget}"
    );
}

// 2. Leader election.

fn leader_args<'a>(ns: &'a str, identity: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "--leader-elect",
        "--lease-namespace",
        ns,
        "--lease-name",
        "roster-test",
        "--lease-duration",
        "3",
        "--identity",
        identity,
    ];
    args.extend(NO_WEBHOOK);
    args
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("roster-test")
        .await
        .unwrap()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn only_the_leader_writes_and_a_standby_takes_over() {
    const LEASE: Duration = Duration::from_secs(3);
    let client = admin().await;
    let ns = support::namespace(&client, "leader").await;
    let leases = Api::<Lease>::namespaced(client.clone(), &ns);
    let a = Operator::start(&[&ns], &leader_args(&ns, "a"));
    let b = Operator::start(&[&ns], &leader_args(&ns, "b"));
    let first = eventually("a leader", WAIT, || holder(&leases)).await;
    let (mut leader, standby, standby_id) = match first.as_str() {
        "a" => (a, b, "b"),
        "b" => (b, a, "a"),
        other => panic!("unexpected holder {other}"),
    };

    create_org(&client, &ns, serde_json::json!({})).await;
    create_membership(&client, &ns, "owner", "owner@example.com", "owner").await;
    for i in 0..3 {
        let (name, user) = (format!("m{i}"), format!("m{i}@example.com"));
        create_membership(&client, &ns, &name, &user, "member").await;
    }
    for name in ["owner", "m0", "m1", "m2"] {
        wait_settled(&client, &ns, name).await;
    }
    assert!(leader.metric_sum(WRITES) > 0.0, "the leader wrote");
    assert!(
        !standby.metrics().is_empty(),
        "the standby serves its metrics"
    );
    assert_eq!(standby.metric_sum(WRITES), 0.0, "the standby wrote nothing");
    assert_eq!(
        leader.metric_sum("roster_leader"),
        1.0,
        "the leader says so"
    );
    assert_eq!(
        standby.metric_sum("roster_leader"),
        0.0,
        "the standby says so"
    );

    // The leader dies: the standby takes over once the lease expires.
    leader.kill();
    let killed = Instant::now();
    create_membership(&client, &ns, "late", "late@example.com", "member").await;
    eventually("the standby to hold the lease", WAIT, || async {
        holder(&leases).await.filter(|h| h == standby_id)
    })
    .await;
    let took_lease = killed.elapsed();
    wait_settled(&client, &ns, "late").await;
    let handover = killed.elapsed();
    println!(
        "handover after SIGKILL: lease taken after {took_lease:?}, new Membership Active after {handover:?} (lease {LEASE:?})"
    );
    assert!(
        handover < LEASE + Duration::from_secs(5),
        "handover took {handover:?}"
    );
    assert!(standby.metric_sum(WRITES) > 0.0, "the new leader writes");
    assert_eq!(
        standby.metric_sum("roster_leader"),
        1.0,
        "the new leader says so"
    );
}

/// A leader that shuts down releases its Lease, and a standby takes it at once rather than when the
/// Lease would have expired. With a 10 s lease, a standby that waited for the expiry would take over
/// no sooner than the leader's renewal grace (a third of it) and up to 10 s after the SIGTERM.
#[tokio::test]
async fn a_leader_shutting_down_hands_over_at_once() {
    const LEASE: Duration = Duration::from_secs(10);
    let client = admin().await;
    let ns = support::namespace(&client, "handover").await;
    let leases = Api::<Lease>::namespaced(client.clone(), &ns);
    let args = |id| {
        let mut args = leader_args(&ns, id);
        args[6] = "10";
        args
    };
    let mut leader = Operator::start(&[&ns], &args("a"));
    eventually("a to lead", WAIT, || async {
        holder(&leases).await.filter(|h| h == "a")
    })
    .await;
    create_org(&client, &ns, serde_json::json!({})).await;
    create_membership(&client, &ns, "owner", "owner@example.com", "owner").await;
    wait_settled(&client, &ns, "owner").await;
    let standby = Operator::start(&[&ns], &args("b"));
    eventually("b to wait for the lease", WAIT, || async {
        standby
            .logs()
            .contains("waiting to become leader")
            .then_some(())
    })
    .await;
    let terminated = Instant::now();
    assert!(
        leader.terminate(Duration::from_secs(5)),
        "the leader exits on SIGTERM"
    );
    let exited = terminated.elapsed();
    eventually("b to hold the lease", WAIT, || async {
        holder(&leases).await.filter(|h| h == "b")
    })
    .await;
    let took_lease = terminated.elapsed();
    create_membership(&client, &ns, "after", "after@example.com", "member").await;
    wait_settled(&client, &ns, "after").await;
    println!(
        "handover after SIGTERM: leader exited after {exited:?}, lease taken after {took_lease:?}, new Membership Active after {:?} (lease {LEASE:?})",
        terminated.elapsed()
    );
    assert!(
        took_lease < Duration::from_secs(3),
        "a released lease is taken at once, not when it would have expired; took {took_lease:?}"
    );
}

// 3. Racing deletions and demotions of the last two owners.

#[derive(Clone, Copy, Debug)]
enum Change {
    Delete,
    Demote,
}

const RACES: [(Change, Change); 4] = [
    (Change::Delete, Change::Delete),
    (Change::Demote, Change::Demote),
    (Change::Delete, Change::Demote),
    (Change::Demote, Change::Delete),
];

async fn change(api: &Api<Membership>, name: &str, change: Change) {
    match change {
        Change::Delete => api.delete(name, &DeleteParams::default()).await.map(drop),
        Change::Demote => api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": { "role": "member" } })),
            )
            .await
            .map(drop),
    }
    .unwrap_or_else(|e| panic!("{change:?} {name}: {e}"));
}

/// One trial: owners a and b, member c; both owners removed or demoted at once. Returns who was held.
async fn owner_race(client: &Client, ns: &str, trial: usize, label: &str) -> String {
    let (change_a, change_b) = RACES[trial % RACES.len()];
    let api = Api::<Membership>::namespaced(client.clone(), ns);
    let orgs = Api::<Organization>::namespaced(client.clone(), ns);
    create_org(client, ns, serde_json::json!({ "roster.dev/race": label })).await;
    tokio::join!(
        create_membership(client, ns, "a", "a@example.com", "owner"),
        create_membership(client, ns, "b", "b@example.com", "owner"),
        create_membership(client, ns, "c", "c@example.com", "member"),
    );
    eventually(
        &format!("trial {trial}: a, b owners and c member"),
        WAIT,
        || async {
            let ms = memberships(client, ns).await;
            let owners = orgs.get("org").await.unwrap().status?.owners;
            (ms.len() == 3
                && ms.iter().all(settled)
                && ms.iter().filter(|m| protected(m)).count() == 2
                && owners.len() == 2)
                .then_some(())
        },
    )
    .await;

    tokio::join!(change(&api, "a", change_a), change(&api, "b", change_b));

    let held = eventually(
        &format!("trial {trial} ({change_a:?} a + {change_b:?} b) to settle"),
        WAIT,
        || async {
            let status = orgs.get("org").await.unwrap().status?;
            assert!(
                status.members == 0 || !status.owners.is_empty(),
                "trial {trial}: org without owners but with members: {status:?}"
            );
            let ms = memberships(client, ns).await;
            let by_name = |n: &str| ms.iter().find(|m| m.name_any() == n);
            let held: Vec<&Membership> = ms
                .iter()
                .filter(|m| {
                    let s = m.status.as_ref();
                    phase(m) == Some(MembershipPhase::Active)
                        && effective_role(m) == Some(OrgRole::Owner)
                        && s.is_some_and(|s| is_true(&s.conditions, "RoleChangeHeld"))
                })
                .collect();
            let [held] = held.as_slice() else {
                return None;
            };
            let (other, other_change) = if held.name_any() == "a" {
                ("b", change_b)
            } else {
                ("a", change_a)
            };
            let (other_done, members) = match (other_change, by_name(other)) {
                (Change::Delete, None) => (true, 2),
                (Change::Demote, Some(m)) => (settled(m) && !protected(m), 3),
                _ => (false, 0),
            };
            let c_active = by_name("c").is_some_and(settled);
            (other_done
                && c_active
                && protected(held)
                && status.owners == [held.spec.user.clone().unwrap()]
                && status.members == members)
                .then(|| held.name_any())
        },
    )
    .await;
    format!("{change_a:?}+{change_b:?}: {held} held")
}

#[tokio::test]
async fn racing_removals_of_the_last_two_owners_always_leave_one() {
    const TRIALS: usize = 100;
    let client = admin().await;
    let label = format!("race-{}", std::process::id());
    let namespaces: Vec<String> = futures::stream::iter(0..TRIALS)
        .map(|i| {
            let client = client.clone();
            async move { support::namespace(&client, &format!("race-{i}")).await }
        })
        .buffered(16)
        .collect()
        .await;

    // Every version of every trial's Organization, as the API server hands it out.
    let violations = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(0usize));
    let watch = {
        let (violations, seen) = (violations.clone(), seen.clone());
        let config = watcher::Config::default().labels(&format!("roster.dev/race={label}"));
        tokio::spawn(
            watcher(Api::<Organization>::all(client.clone()), config)
                .default_backoff()
                .applied_objects()
                .for_each(move |o| {
                    if let Ok(o) = o
                        && let Some(s) = &o.status
                    {
                        *seen.lock().unwrap() += 1;
                        if s.members > 0 && s.owners.is_empty() {
                            violations
                                .lock()
                                .unwrap()
                                .push(format!("{}: {s:?}", o.namespace().unwrap()));
                        }
                    }
                    std::future::ready(())
                }),
        )
    };

    let scope: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let _operator = Operator::start(&scope, &NO_WEBHOOK);
    let started = Instant::now();
    let outcomes: Vec<String> = futures::stream::iter(namespaces.iter().enumerate())
        .map(|(trial, ns)| owner_race(&client, ns, trial, &label))
        .buffer_unordered(25)
        .collect()
        .await;
    println!(
        "{TRIALS} owner races settled in {:?}; {} org status versions watched",
        started.elapsed(),
        seen.lock().unwrap()
    );
    let mut tally = std::collections::BTreeMap::new();
    for o in &outcomes {
        *tally.entry(o.as_str()).or_insert(0) += 1;
    }
    println!("outcomes: {tally:?}");
    watch.abort();
    let violations = violations.lock().unwrap();
    assert!(
        violations.is_empty(),
        "org statuses with members but no owner: {violations:#?}"
    );
    assert_eq!(outcomes.len(), TRIALS);
}

// 4. Graceful shutdown.

#[tokio::test]
async fn sigterm_exits_within_five_seconds_with_success_even_mid_reconcile() {
    const N: usize = 1000;
    let client = admin().await;
    let ns = support::namespace(&client, "sigterm").await;
    create_org(&client, &ns, serde_json::json!({})).await;
    // One reconcile with a few thousand writes to make (a RoleBinding, the ownership and the status
    // of each Membership) is in flight when SIGTERM arrives.
    let api = Api::<Membership>::namespaced(client.clone(), &ns);
    futures::stream::iter(0..N)
        .map(|i| {
            let api = api.clone();
            let role = if i == 0 { "owner" } else { "member" };
            async move {
                let m = membership(&format!("m{i:04}"), &format!("u{i:04}@example.com"), role);
                api.create(&PostParams::default(), &m).await.map(drop)
            }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await
        .unwrap();
    // With the webhook serving too (on a free port), so that every server has to stop.
    let addr = format!("127.0.0.1:{}", support::free_port());
    let mut operator = Operator::start(&[&ns], &["--webhook-addr", &addr]);
    let writes = eventually("the operator to be busy", WAIT, || async {
        Some(operator.metric_sum(WRITES)).filter(|w| *w > 20.0)
    })
    .await;
    let t = Instant::now();
    assert!(
        operator.terminate(Duration::from_secs(5)),
        "the operator did not exit within 5 s of SIGTERM:\n{}",
        operator.logs()
    );
    let status = operator.child.try_wait().unwrap().expect("exited");
    println!(
        "SIGTERM after {writes} writes: exited after {:?} with {status}",
        t.elapsed()
    );
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        operator.logs()
    );
}

// 5. Uninstalling the operator before the objects.

/// The remedy command from docs/operations.md, between its marker comments, as one line.
fn documented_remedy() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .expect("docs/operations.md");
    let begin = "<!-- BEGIN remedy: remove-owner-protection -->";
    let end = "<!-- END remedy: remove-owner-protection -->";
    let start = doc.find(begin).expect("begin marker") + begin.len();
    let stop = start + doc[start..].find(end).expect("end marker");
    doc[start..stop]
        .lines()
        .filter(|l| !l.trim_start().starts_with("```"))
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" ")
        .replace("\\ ", "")
        .trim()
        .to_string()
}

/// Splits a shell command into words, the way sh does for quotes; `|` is a word of its own.
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '|' => {
                words.extend(word.take());
                words.push("|".into());
            }
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// Runs `kubectl A.. | xargs -L1 kubectl B..` through support::kubectl, for `namespace` only
/// (the documented replacement of `--all-namespaces` by `-n NAMESPACE`).
fn run_remedy(command: &str, namespace: &str) {
    let words = shell_words(command);
    let pipe = words.iter().position(|w| w == "|").expect("a pipeline");
    let (list, each) = (&words[..pipe], &words[pipe + 1..]);
    assert_eq!(list[0], "kubectl", "{command}");
    assert_eq!(each[..3], ["xargs", "-L1", "kubectl"], "{command}");
    let mut list: Vec<&str> = list[1..].iter().map(String::as_str).collect();
    let all = list
        .iter()
        .position(|w| *w == "--all-namespaces")
        .expect("the remedy covers all namespaces");
    list.splice(all..=all, ["-n", namespace]);
    let (ok, out, err) = support::kubectl(&list);
    assert!(ok, "{command}: {err}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the remedy found nothing to release");
    for line in lines {
        let mut args: Vec<&str> = each[3..].iter().map(String::as_str).collect();
        args.extend(line.split_whitespace());
        let (ok, out, err) = support::kubectl(&args);
        assert!(ok, "kubectl {args:?}: {err}");
        println!("remedy: {}", out.trim());
    }
}

async fn org_with_owner(client: &Client, ns: &str) {
    create_org(client, ns, serde_json::json!({})).await;
    create_membership(client, ns, "alice", "alice@example.com", "owner").await;
    create_membership(client, ns, "bob", "bob@example.com", "member").await;
    support::apply(
        client,
        ns,
        "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: inv\nspec:\n  role: member\n",
    )
    .await;
}

async fn wait_protected(client: &Client, ns: &str) {
    let api = Api::<Membership>::namespaced(client.clone(), ns);
    eventually(
        &format!("{ns}: alice protected, bob Active"),
        WAIT,
        || async {
            let alice = api.get("alice").await.unwrap();
            let bob = api.get("bob").await.unwrap();
            (settled(&alice) && protected(&alice) && settled(&bob)).then_some(())
        },
    )
    .await;
}

async fn wait_gone(namespaces: &Api<Namespace>, ns: &str, timeout: Duration) {
    eventually(&format!("namespace {ns} to be gone"), timeout, || async {
        namespaces
            .get_opt(ns)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn namespaces_of_orgs_go_with_the_operator_and_without_it_after_the_documented_remedy() {
    let client = admin().await;
    let namespaces = Api::<Namespace>::all(client.clone());
    let live = support::namespace(&client, "uninstall-live").await;
    let stuck = support::namespace(&client, "uninstall-stuck").await;
    org_with_owner(&client, &live).await;
    org_with_owner(&client, &stuck).await;
    let mut operator = Operator::start(&[&live, &stuck], &NO_WEBHOOK);
    wait_protected(&client, &live).await;
    wait_protected(&client, &stuck).await;

    // With the operator running, deleting the namespace removes everything in it.
    namespaces
        .delete(&live, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&namespaces, &live, Duration::from_secs(90)).await;

    // The operator is uninstalled first. An operator for other namespaces keeps running: scoped by a
    // list, it watches every namespace, and must still leave this one alone.
    assert!(operator.terminate(Duration::from_secs(5)));
    let decoys = [
        support::namespace(&client, "uninstall-other").await,
        support::namespace(&client, "uninstall-other").await,
    ];
    let other = Operator::start(&[&decoys[0], &decoys[1]], &NO_WEBHOOK);
    eventually("the other operator to reconcile", WAIT, || async {
        other
            .logs()
            .contains("caches synced; reconciling")
            .then_some(())
    })
    .await;
    namespaces
        .delete(&stuck, &DeleteParams::default())
        .await
        .unwrap();
    let why = eventually(
        "the namespace to be held by roster's finalizer",
        Duration::from_secs(90),
        || async {
            let status = namespaces.get(&stuck).await.unwrap().status?;
            status
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "NamespaceFinalizersRemaining" && c.status == "True")
                .and_then(|c| c.message)
                .filter(|m| m.contains(OWNER_PROTECTION))
        },
    )
    .await;
    println!("stuck as expected: {why}");
    // And it stays so: nothing but the remedy releases it (watched for a while, since the other
    // operator is asked to reconcile every change of the namespace's deletion).
    let alice = Api::<Membership>::namespaced(client.clone(), &stuck);
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        let m = alice.get_opt("alice").await.unwrap();
        assert!(
            m.is_some_and(|m| m.metadata.deletion_timestamp.is_some() && protected(&m)),
            "alice was released without the remedy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    run_remedy(&documented_remedy(), &stuck);
    wait_gone(&namespaces, &stuck, Duration::from_secs(90)).await;
}
