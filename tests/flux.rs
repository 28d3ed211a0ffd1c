//! A real Flux (source-controller and kustomize-controller, built from their Go modules by
//! hack/build-flux.sh) syncs roster organizations from a Git repository served on loopback, commit by
//! commit, the way examples/gitops/flux-kustomization.yaml describes: a Kustomization with
//! `prune: true` and `wait: true`, applied by Flux's kustomize-controller as a roster platform
//! principal (`roster run --platform-users system:serviceaccount:flux-system:kustomize-controller`).
//!
//! The history starts with the repository's examples/ (moved into namespaces of their own, as
//! tests/check.rs does) and goes through adds, role changes, removals, an invite that expires, a team
//! that is deactivated, an ownership transfer in one commit, a renamed Membership and a deleted
//! Organization. After every commit the Kustomization must become Ready at that commit's revision and
//! the roster objects in the cluster must be the commit's; all along, a watcher checks that no
//! invariant of the effective state breaks (tests/support/invariants.rs, shared with tests/gitops.rs).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::Value;
use support::eventually;
use support::flux::{self, Flux, GitRepo};
use support::invariants::watch_invariants;

const KINDS: [&str; 4] = ["Organization", "Membership", "Invite", "Team"];
/// The Kustomization's `timeout` (apply and health checks of one attempt).
const KUSTOMIZATION_TIMEOUT: &str = "60s";
/// How long a push may take to become a Ready Kustomization at its revision.
const READY: Duration = Duration::from_secs(180);
/// How long, after Ready, the roster objects may take to match the commit: pruned objects with
/// finalizers go away after the Kustomization is Ready, and Flux's `wait` counts a new object as
/// ready before roster has written its status.
const MATCH: Duration = Duration::from_secs(45);
const WAIT: Duration = Duration::from_secs(45);
const PRUNE_DISABLED: (&str, &str) = ("kustomize.toolkit.fluxcd.io/prune", "disabled");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The content of the Git repository: objects by file (`folder/file.yaml`), in file order.
#[derive(Clone)]
struct Tree {
    files: BTreeMap<String, Vec<Value>>,
}

impl Tree {
    /// examples/acme, examples/enterprise and examples/lab as they are in this repository, each
    /// namespace renamed to `PREFIX-NAME` (so that runs never meet each other's objects).
    fn examples(prefix: &str) -> Tree {
        let rename = |ns: &str| format!("{prefix}-{ns}");
        let mut files = BTreeMap::new();
        for folder in ["acme", "enterprise", "lab"] {
            let dir = repo().join("examples").join(folder);
            let mut paths: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).unwrap();
                let mut objects = Vec::new();
                for doc in serde_yaml::Deserializer::from_str(&text) {
                    let mut o: Value = serde::Deserialize::deserialize(doc).unwrap();
                    if o.is_null() {
                        continue;
                    }
                    if o["kind"] == "Namespace" {
                        let annotations = &o["metadata"]["annotations"];
                        assert_eq!(
                            annotations[PRUNE_DISABLED.0],
                            PRUNE_DISABLED.1,
                            "{}: an example namespace must carry {}: {} so that Flux never deletes it",
                            path.display(),
                            PRUNE_DISABLED.0,
                            PRUNE_DISABLED.1
                        );
                        let name = rename(o["metadata"]["name"].as_str().unwrap());
                        o["metadata"]["name"] = name.into();
                    } else {
                        let ns = rename(o["metadata"]["namespace"].as_str().unwrap());
                        o["metadata"]["namespace"] = ns.into();
                        if let Some(list) = o
                            .pointer_mut("/spec/access/namespaces")
                            .and_then(Value::as_array_mut)
                        {
                            for n in list {
                                *n = rename(n.as_str().unwrap()).into();
                            }
                        }
                    }
                    objects.push(o);
                }
                let name = path.file_name().unwrap().to_str().unwrap();
                files.insert(format!("{folder}/{name}"), objects);
            }
        }
        Tree { files }
    }

    fn objects(&self) -> impl Iterator<Item = &Value> {
        self.files.values().flatten()
    }

    fn find(&mut self, kind: &str, ns: &str, name: &str) -> &mut Value {
        self.files
            .values_mut()
            .flatten()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["namespace"] == ns
                    && o["metadata"]["name"] == name
            })
            .unwrap_or_else(|| panic!("no {kind} {ns}/{name} in the tree"))
    }

    /// Sets `spec.FIELD` of an object.
    fn set(&mut self, kind: &str, ns: &str, name: &str, field: &str, value: Value) {
        self.find(kind, ns, name)["spec"][field] = value;
    }

    fn add(&mut self, file: &str, yaml: &str) {
        let o: Value = serde_yaml::from_str(yaml).unwrap();
        self.files.entry(file.to_string()).or_default().push(o);
    }

    fn remove(&mut self, kind: &str, ns: &str, name: &str) {
        let before = self.objects().count();
        for objects in self.files.values_mut() {
            objects.retain(|o| {
                !(o["kind"] == kind
                    && o["metadata"]["namespace"] == ns
                    && o["metadata"]["name"] == name)
            });
        }
        assert_eq!(before, self.objects().count() + 1, "{kind} {ns}/{name}");
    }

    /// Removes every entry of `user` from a Team's `spec.members`.
    fn remove_team_member(&mut self, ns: &str, team: &str, user: &str) {
        let members = self.find("Team", ns, team)["spec"]["members"]
            .as_array_mut()
            .unwrap();
        let before = members.len();
        members.retain(|m| m["user"] != user);
        assert_eq!(before, members.len() + 1, "{user} in team {team}");
    }

    fn remove_folder(&mut self, folder: &str) {
        self.files
            .retain(|path, _| !path.starts_with(&format!("{folder}/")));
    }

    /// The files of a commit: each file's objects as YAML documents.
    fn files(&self) -> Vec<(String, String)> {
        self.files
            .iter()
            .filter(|(_, objects)| !objects.is_empty())
            .map(|(path, objects)| {
                let docs: Vec<String> = objects
                    .iter()
                    .map(|o| serde_yaml::to_string(o).unwrap())
                    .collect();
                (path.clone(), docs.join("---\n"))
            })
            .collect()
    }

    /// The roster objects of namespace `ns`: (kind, name) -> spec.
    fn roster_objects(&self, ns: &str) -> BTreeMap<(String, String), Value> {
        self.objects()
            .filter(|o| o["metadata"]["namespace"] == ns && KINDS.iter().any(|k| o["kind"] == *k))
            .map(|o| {
                (
                    (
                        o["kind"].as_str().unwrap().to_string(),
                        o["metadata"]["name"].as_str().unwrap().to_string(),
                    ),
                    o["spec"].clone(),
                )
            })
            .collect()
    }
}

/// Whether every field `want` sets has the same value in `have` (the API server adds defaults).
fn sets_the_same(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| sets_the_same(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| sets_the_same(a, b))
        }
        (w, h) => w == h,
    }
}

struct Cluster {
    client: Client,
    resources: BTreeMap<String, ApiResource>,
}

impl Cluster {
    async fn new(client: Client) -> Cluster {
        let mut resources = BTreeMap::new();
        for kind in KINDS {
            let gvk = GroupVersionKind::gvk("roster.dev", "v1alpha1", kind);
            let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
            resources.insert(kind.to_string(), ar);
        }
        Cluster { client, resources }
    }

    fn api(&self, kind: &str, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &self.resources[kind])
    }

    /// Whether the roster objects of `ns` are those of the tree: the same names per kind, the fields
    /// the tree sets the same, and every one Ready by roster's status at its generation (Flux's
    /// `wait` counts an object roster has not written a status for yet as ready). `Err` says what
    /// differs.
    async fn matches(&self, tree: &Tree, ns: &str) -> Result<(), String> {
        let want = tree.roster_objects(ns);
        let mut have = BTreeMap::new();
        for kind in KINDS {
            for o in self
                .api(kind, ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
            {
                let name = o.metadata.name.clone().unwrap();
                if o.metadata.deletion_timestamp.is_some() {
                    return Err(format!("{kind} {ns}/{name} is being deleted"));
                }
                // What kstatus (Flux's `wait`) reads: roster has seen this generation and calls it
                // Ready, neither Reconciling nor Stalled.
                let status = &o.data["status"];
                if status["observedGeneration"].as_i64() != o.metadata.generation
                    || !condition_true(status, "Ready")
                    || condition_true(status, "Reconciling")
                    || condition_true(status, "Stalled")
                {
                    return Err(format!(
                        "{kind} {ns}/{name} is not Ready at generation {:?}: {}",
                        o.metadata.generation, status["conditions"]
                    ));
                }
                have.insert((kind.to_string(), name), o.data["spec"].clone());
            }
        }
        let (w, h): (BTreeSet<_>, BTreeSet<_>) = (want.keys().collect(), have.keys().collect());
        if w != h {
            return Err(format!(
                "in {ns}: missing {:?}, not in Git {:?}",
                w.difference(&h).collect::<Vec<_>>(),
                h.difference(&w).collect::<Vec<_>>()
            ));
        }
        for (key, spec) in &want {
            if !sets_the_same(spec, &have[key]) {
                return Err(format!(
                    "{} {ns}/{}: spec {} in the cluster, {spec} in Git",
                    key.0, key.1, have[key]
                ));
            }
        }
        Ok(())
    }

    /// A roster object's status.
    async fn status(&self, kind: &str, ns: &str, name: &str) -> Value {
        self.api(kind, ns)
            .get(name)
            .await
            .map(|o| o.data["status"].clone())
            .unwrap_or(Value::Null)
    }
}

fn condition_true(status: &Value, type_: &str) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

async fn eventually_can(user: &str, verb: &str, resource: &str, ns: &str, expected: bool) {
    eventually(
        &format!("{user} can-i {verb} {resource} -n {ns} == {expected}"),
        WAIT,
        || async { (support::can(user, verb, resource, ns) == expected).then_some(()) },
    )
    .await
}

/// The Flux side of the test: the repository, the GitRepository and the Kustomization.
struct Sync<'a> {
    client: Client,
    flux: &'a Flux,
    git: GitRepo,
    name: String,
    cluster: Cluster,
    namespaces: Vec<String>,
    current: Arc<Mutex<&'static str>>,
    requests: u32,
}

impl Sync<'_> {
    async fn kustomization(&self) -> DynamicObject {
        flux::kustomizations(&self.client)
            .get(&self.name)
            .await
            .expect("get the Kustomization")
    }

    /// Why the Kustomization is not Ready at `revision` (with `handled` as the last handled
    /// reconcile request), or None when it is.
    fn not_ready(k: &DynamicObject, sha: &str, handled: Option<&str>) -> Option<String> {
        let status = &k.data["status"];
        let applied = status["lastAppliedRevision"].as_str().unwrap_or_default();
        let ready = flux::condition(k, "Ready");
        let fresh = status["observedGeneration"].as_i64() == k.metadata.generation;
        let handled_ok =
            handled.is_none_or(|h| status["lastHandledReconcileAt"].as_str() == Some(h));
        if applied.ends_with(sha)
            && fresh
            && handled_ok
            && ready.as_ref().is_some_and(|(s, _, _)| s == "True")
        {
            None
        } else {
            Some(format!(
                "lastAppliedRevision {applied:?}, lastAttemptedRevision {:?}, Ready {ready:?}",
                status["lastAttemptedRevision"].as_str().unwrap_or_default()
            ))
        }
    }

    /// Waits until the Kustomization is Ready at `sha`; returns how long that took.
    async fn wait_ready(&self, sha: &str, handled: Option<&str>, what: &str) -> Duration {
        let started = tokio::time::Instant::now();
        // Between attempts Ready is Unknown (Progressing): keep the last failure Flux reported.
        let mut failure = None;
        loop {
            let k = self.kustomization().await;
            let Some(why) = Self::not_ready(&k, sha, handled) else {
                return started.elapsed();
            };
            if let Some((status, _, message)) = flux::condition(&k, "Ready")
                && status == "False"
            {
                failure = Some(message);
            }
            if started.elapsed() > READY {
                panic!(
                    "{what}: the Kustomization is not Ready at {sha} after {READY:?}: {why}\nlast failure: {}\n{}",
                    failure.as_deref().unwrap_or("none"),
                    self.tail_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn tail_logs(&self) -> String {
        let logs = self.flux.logs();
        let lines: Vec<&str> = logs.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!("last lines of the Flux logs:\n{}", lines[from..].join("\n"))
    }

    /// Asks Flux to reconcile the Kustomization (and, with `source`, the GitRepository first) now;
    /// returns the request's token.
    async fn reconcile_now(&mut self, source: bool) -> String {
        self.requests += 1;
        let token = format!("{}-{}", std::process::id(), self.requests);
        if source {
            flux::request_reconcile(&flux::git_repositories(&self.client), &self.name, &token)
                .await;
        }
        flux::request_reconcile(&flux::kustomizations(&self.client), &self.name, &token).await;
        token
    }

    /// Commits and pushes `tree`, has Flux sync it, and requires the Kustomization Ready at the
    /// commit and the roster objects equal to it. Returns the time from the push to Ready.
    async fn commit(&mut self, message: &'static str, tree: &Tree) -> Duration {
        *self.current.lock().unwrap() = message;
        let sha = self.git.commit(&tree.files(), message);
        let pushed = tokio::time::Instant::now();
        self.reconcile_now(true).await;
        self.wait_ready(&sha, None, message).await;
        let ready = pushed.elapsed();
        for ns in &self.namespaces {
            let mut last = String::new();
            let matched = tokio::time::timeout(MATCH, async {
                loop {
                    match self.cluster.matches(tree, ns).await {
                        Ok(()) => return,
                        Err(e) => last = e,
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await;
            assert!(
                matched.is_ok(),
                "{message}: the Kustomization is Ready at {sha}, but after {MATCH:?} more the cluster still differs: {last}"
            );
        }
        eprintln!(
            "flux: {message}: push to Ready {:.1} s",
            ready.as_secs_f64()
        );
        ready
    }
}

#[tokio::test]
async fn flux_syncs_a_history_of_organizations_commit_by_commit() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    support::install_cluster_roles(&client).await;
    let flux = Flux::start(&client).await;

    let prefix = format!("fx{}", std::process::id());
    let ns = |name: &str| format!("{prefix}-{name}");
    let (acme, globex, lab) = (ns("acme"), ns("globex"), ns("lovelace-lab"));
    let mut tree = Tree::examples(&prefix);

    // roster, with Flux's kustomize-controller as a platform principal; the webhook is configured
    // for the org namespaces before they exist (Flux creates them), and answers for a scratch
    // namespace of this test.
    let scratch = support::namespace(&client, "flux").await;
    let _operator = support::operator_with_webhook_and(
        &[&scratch, &acme, &globex, &lab],
        &["--platform-users", flux::PRINCIPAL],
    );
    support::wait_for_webhook(&client, &scratch).await;

    let git = flux.repository("orgs");
    let name = format!("orgs-{}", std::process::id());
    support::apply(
        &client,
        flux::NAMESPACE,
        &format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: {name}\nspec:\n  interval: 1m\n  timeout: 20s\n  url: {}\n  ref:\n    branch: main\n",
            git.url
        ),
    )
    .await;
    support::apply(
        &client,
        flux::NAMESPACE,
        &format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  interval: 1m\n  retryInterval: 2s\n  timeout: {KUSTOMIZATION_TIMEOUT}\n  sourceRef:\n    kind: GitRepository\n    name: {name}\n  path: ./\n  prune: true\n  wait: true\n"
        ),
    )
    .await;

    // The invariants, in every org namespace, from before the first commit to the end.
    let stop = Arc::new(AtomicBool::new(false));
    let current = Arc::new(Mutex::new("start"));
    let watchers: Vec<_> = [&acme, &globex, &lab]
        .into_iter()
        .map(|n| {
            let max_members = tree.find(
                "Organization",
                n,
                n.trim_start_matches(&format!("{prefix}-")),
            )["spec"]["policy"]["maxMembers"]
                .as_i64()
                .map(|m| m as i32);
            watch_invariants(
                client.clone(),
                n.clone(),
                max_members,
                stop.clone(),
                current.clone(),
            )
        })
        .collect();

    let mut sync = Sync {
        client: client.clone(),
        flux: &flux,
        git,
        name: name.clone(),
        cluster: Cluster::new(client.clone()).await,
        namespaces: vec![acme.clone(), globex.clone(), lab.clone()],
        current: current.clone(),
        requests: 0,
    };

    // 1. The examples as they are.
    let examples = sync.commit("examples/", &tree).await;
    eprintln!(
        "flux: push to Ready for examples/: {:.1} s",
        examples.as_secs_f64()
    );
    let (web_prod, data) = (ns("globex-web-prod"), ns("globex-data"));
    let milhouse = "milhouse@globex.example";
    let margaret = "margaret@acme.example";
    eventually_can(milhouse, "list", "memberships.roster.dev", &globex, true).await;
    eventually_can(milhouse, "get", "pods", &web_prod, true).await;
    eventually_can(milhouse, "get", "pods", &data, true).await;
    eventually_can(margaret, "list", "memberships.roster.dev", &acme, true).await;

    // 2. Adds and role changes.
    tree.add(
        "lab/memberships.yaml",
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Membership\nmetadata:\n  name: byron\n  namespace: {lab}\nspec:\n  user: a.byron@university.example\n  role: member\n"
        ),
    );
    tree.set("Membership", &lab, "charles", "role", "admin".into());
    tree.add(
        "acme/memberships.yaml",
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Membership\nmetadata:\n  name: barbara\n  namespace: {acme}\nspec:\n  user: barbara@acme.example\n  role: admin\n"
        ),
    );
    tree.set("Membership", &acme, "auditor", "role", "member".into());
    tree.set("Membership", &globex, "lisa", "role", "admin".into());
    sync.commit("adds and role changes", &tree).await;
    let status = sync.cluster.status("Membership", &lab, "charles").await;
    assert_eq!(status["effectiveRole"], "admin", "{status}");

    // 3. Removals: the people lose their RBAC in the org namespace and the workload namespaces.
    tree.remove("Membership", &globex, "milhouse");
    tree.remove_team_member(&globex, "web", milhouse);
    tree.remove_team_member(&globex, "data", milhouse);
    tree.remove("Membership", &acme, "margaret");
    tree.remove_team_member(&acme, "platform", margaret);
    sync.commit("removals", &tree).await;
    eventually_can(milhouse, "list", "memberships.roster.dev", &globex, false).await;
    eventually_can(milhouse, "get", "pods", &web_prod, false).await;
    eventually_can(milhouse, "get", "pods", &data, false).await;
    eventually_can(margaret, "list", "memberships.roster.dev", &acme, false).await;

    // 4. An invite that expires, and a team that is deactivated: settled end states, Ready.
    tree.add(
        "lab/invites.yaml",
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: open-day\n  namespace: {lab}\nspec:\n  role: viewer\n  maxUses: 5\n  ttl: 15s\n"
        ),
    );
    tree.set("Team", &lab, "difference-engine", "active", false.into());
    let sha = sync
        .git
        .commit(&tree.files(), "an invite that expires, a deactivated team");
    *sync.current.lock().unwrap() = "an invite that expires, a deactivated team";
    sync.reconcile_now(true).await;
    sync.wait_ready(&sha, None, "an invite that expires").await;
    eventually("the invite open-day to expire", WAIT, || async {
        let s = sync.cluster.status("Invite", &lab, "open-day").await;
        (s["phase"] == "Expired").then_some(())
    })
    .await;
    // Flux reconciles again after the invite expired: still Ready at the same commit.
    let token = sync.reconcile_now(false).await;
    sync.wait_ready(&sha, Some(&token), "after the invite expired")
        .await;
    for (kind, name) in [("Invite", "open-day"), ("Team", "difference-engine")] {
        let s = sync.cluster.status(kind, &lab, name).await;
        assert!(condition_true(&s, "Ready"), "{kind} {name}: {s}");
    }
    for ns in &sync.namespaces {
        sync.cluster.matches(&tree, ns).await.unwrap();
    }

    // 5. An ownership transfer in one commit, in the single-owner lab: Mary is promoted and the PI
    //    demoted in the same commit.
    tree.set("Membership", &lab, "mary", "role", "owner".into());
    tree.set("Membership", &lab, "augusta", "role", "admin".into());
    sync.commit("ownership transfer in one commit", &tree).await;
    let s = sync
        .cluster
        .status("Organization", &lab, "lovelace-lab")
        .await;
    assert_eq!(
        s["owners"],
        serde_json::json!(["m.somerville@university.example"]),
        "{s}"
    );

    // 6. A rename: the same person, a new Membership name.
    let mut luigi = tree.find("Membership", &lab, "luigi").clone();
    tree.remove("Membership", &lab, "luigi");
    luigi["metadata"]["name"] = "luigi-menabrea".into();
    tree.files
        .get_mut("lab/memberships.yaml")
        .unwrap()
        .push(luigi);
    sync.commit("rename a Membership", &tree).await;
    let s = sync
        .cluster
        .status("Membership", &lab, "luigi-menabrea")
        .await;
    assert_eq!(s["phase"], "Active", "{s}");

    // 7. An Organization deleted: its whole directory leaves Git; its namespace stays.
    tree.remove_folder("acme");
    sync.commit("delete the acme organization", &tree).await;
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    let kept = namespaces
        .get(&acme)
        .await
        .expect("the acme namespace stays");
    assert!(kept.metadata.deletion_timestamp.is_none());
    // roster revoked the org's access: no RoleBinding of roster's is left in its namespace.
    let bindings =
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(client.clone(), &acme);
    eventually(
        "no roster RoleBinding left in the acme namespace",
        WAIT,
        || async {
            let left = bindings.list(&ListParams::default()).await.ok()?.items;
            left.iter()
                .all(|b| {
                    !b.metadata
                        .name
                        .as_deref()
                        .unwrap_or_default()
                        .starts_with("roster-")
                })
                .then_some(())
        },
    )
    .await;
    eventually_can(
        "ada@acme.example",
        "list",
        "memberships.roster.dev",
        &acme,
        false,
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    let mut checked = 0;
    for w in watchers {
        let (s, c) = w.await.unwrap();
        seen.extend(s);
        checked += c;
    }
    assert!(
        checked > 20,
        "the invariant watchers checked {checked} states"
    );
    assert!(
        seen.is_empty(),
        "invariants broken in the effective state ({} in {checked} states):\n{}",
        seen.len(),
        seen.join("\n")
    );

    // Clean up: Flux lets go of the objects (no prune), then the namespaces go.
    let kustomizations = flux::kustomizations(&client);
    kustomizations
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "prune": false } })),
        )
        .await
        .unwrap();
    let _ = kustomizations.delete(&name, &DeleteParams::default()).await;
    let _ = flux::git_repositories(&client)
        .delete(&name, &DeleteParams::default())
        .await;
    eventually("Flux to let go of the Kustomization", WAIT, || async {
        kustomizations
            .get_opt(&name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    for n in [
        acme,
        globex,
        lab,
        web_prod,
        data,
        ns("globex-web-staging"),
        scratch,
    ] {
        let _ = namespaces.delete(&n, &DeleteParams::default()).await;
    }
}
