//! Test harness for everything that talks to Kubernetes: one real control plane (etcd, kube-apiserver,
//! kube-controller-manager from hack/) per test binary, or the one `make test` started, and per test a
//! namespace, an admin client and clients that impersonate users.
//!
//! If the control plane cannot start, the test fails with the reason: nothing skips silently.
#![allow(dead_code)]

pub mod flux;
pub mod invariants;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

/// Set by `make test` (hack/test.sh) to share one control plane among all test binaries.
const SHARED_KUBECONFIG: &str = "ROSTER_TEST_KUBECONFIG";

pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(out.status.success(), "{what} failed ({})", out.status);
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The control plane of this test binary, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    static CP: OnceLock<ControlPlane> = OnceLock::new();
    CP.get_or_init(|| {
        let bins = run(
            &mut Command::new(repo().join("hack/build-control-plane.sh")),
            "building the control plane binaries (hack/build-control-plane.sh)",
        );
        let k8s_bin = PathBuf::from(bins.lines().next().expect("bin directory printed"));
        let kubectl = k8s_bin.join("kubectl");
        if let Ok(path) = std::env::var(SHARED_KUBECONFIG) {
            return ControlPlane {
                kubeconfig: path.into(),
                kubectl,
            };
        }
        let dir = std::env::temp_dir().join(format!("roster-test-{}", std::process::id()));
        // Started first, so that it also cleans up when `up` fails halfway.
        stop_control_plane_when_done(&dir);
        let kubeconfig = run(
            Command::new(repo().join("hack/control-plane.sh"))
                .arg("up")
                .arg(&dir),
            "starting the control plane (hack/control-plane.sh up)",
        );
        ControlPlane {
            kubeconfig: PathBuf::from(kubeconfig.trim()),
            kubectl,
        }
    })
}

/// Starts a watchdog outside this process that stops the control plane in `dir` (by the pids
/// `hack/control-plane.sh up` records, the operator beside it included) when the test binary ends,
/// however it ends: normal exit, panic, abort or kill.
pub fn stop_control_plane_when_done(dir: &Path) {
    #[allow(clippy::zombie_processes)] // never waited for: it must outlive this process
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; "$2" down "$3""#)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(repo().join("hack/control-plane.sh"))
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the control plane watchdog");
}

async fn config(user: Option<(&str, &[&str])>) -> Config {
    let cp = control_plane();
    let kc = Kubeconfig::read_from(&cp.kubeconfig).expect("read the test kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("load the test kubeconfig");
    if let Some((name, groups)) = user {
        config.auth_info.impersonate = Some(name.to_string());
        config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    config
}

/// A client with the admin credential (`system:masters`).
pub async fn admin_client() -> Client {
    Client::try_from(config(None).await).expect("admin client")
}

/// A client that impersonates `user` in `groups` (like `kubectl --as USER --as-group G`).
pub async fn client_as(user: &str, groups: &[&str]) -> Client {
    Client::try_from(config(Some((user, groups))).await).expect("impersonating client")
}

/// Runs kubectl against the test control plane; returns (success, stdout, stderr).
pub fn kubectl(args: &[&str]) -> (bool, String, String) {
    let cp = control_plane();
    let out = Command::new(&cp.kubectl)
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh namespace for one test, named after it.
pub async fn namespace(client: &Client, test: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(40);
    let name = format!("{}-{}-{n}", name.trim_matches('-'), std::process::id());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "roster.dev/test": "true" } }
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create test namespace");
    name
}

/// Installs roster's CRDs (server-side apply, idempotent) and waits until each is Established.
pub async fn install_crds(client: &Client) {
    for (_, crd) in roster::crds::all() {
        install_crd(client, &crd).await;
    }
}

/// Installs one CRD (server-side apply, idempotent) and waits until it is Established.
pub async fn install_crd(client: &Client, crd: &CustomResourceDefinition) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let name = crd.metadata.name.clone().expect("CRD has a name");
    api.patch(
        &name,
        &PatchParams::apply("roster-tests").force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(api.clone(), &name, conditions::is_crd_established()),
    )
    .await
    .unwrap_or_else(|_| panic!("CRD {name} not Established within 30s"))
    .expect("watch CRD");
}

/// Creates an object from raw JSON, so that tests can send what the Rust types could not express.
pub async fn create_raw(
    client: &Client,
    ns: &str,
    object: serde_json::Value,
) -> Result<kube::api::DynamicObject, kube::Error> {
    create_raw_with(client, ns, object, &PostParams::default()).await
}

async fn create_raw_with(
    client: &Client,
    ns: &str,
    object: serde_json::Value,
    params: &PostParams,
) -> Result<kube::api::DynamicObject, kube::Error> {
    let obj: kube::api::DynamicObject = serde_json::from_value(object).expect("object JSON");
    let gvk =
        kube::api::GroupVersionKind::try_from(obj.types.as_ref().expect("apiVersion and kind"))
            .expect("GVK");
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .expect("discover the kind");
    Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &resource)
        .create(params, &obj)
        .await
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The operator binary (`roster run`) as a child process, killed when dropped.
pub struct Operator {
    pub child: std::process::Child,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `roster run` against the test control plane, watching `namespaces` only, so that
    /// operators of concurrent tests never touch each other's objects.
    pub fn start(namespaces: &[&str], extra: &[&str]) -> Operator {
        let cp = control_plane();
        let metrics_port = free_port();
        let log = std::env::temp_dir().join(format!(
            "roster-operator-{}-{metrics_port}.log",
            std::process::id()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_roster"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig)
            .arg("--namespaces")
            .arg(namespaces.join(","))
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--log-level")
            .arg("roster=debug,info")
            // No webhook unless the test asks for one: operators of concurrent tests would all
            // bind the default port.
            .args(if extra.contains(&"--webhook-addr") {
                &[][..]
            } else {
                &["--webhook-addr", ""][..]
            })
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("operator log file"))
            .spawn()
            .expect("start roster run");
        Operator {
            child,
            metrics_port,
            log,
        }
    }

    /// Kills the operator with SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a graceful exit; returns whether it exited in time.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The operator's `/metrics` text, or an empty string while it is not serving.
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return String::new();
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// The sum of a counter or gauge over all its label sets.
    pub fn metric_sum(&self, name: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    /// Stops the operator; its log stays only when the test failed, to read why.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("operator log kept: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Polls `check` every 100 ms until it returns Some, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies a YAML or JSON object (or several, separated by `---`) with server-side apply, as the
/// platform admin, the way `kubectl apply --server-side` would.
pub async fn apply(client: &Client, ns: &str, yaml: &str) {
    for doc in yaml.split("\n---").filter(|d| !d.trim().is_empty()) {
        let obj: kube::api::DynamicObject = serde_yaml::from_str(doc).expect("object YAML");
        let gvk =
            kube::api::GroupVersionKind::try_from(obj.types.as_ref().expect("apiVersion and kind"))
                .expect("GVK");
        let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .expect("discover the kind");
        let name = obj.metadata.name.clone().expect("a name");
        Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &resource)
            .patch(
                &name,
                &PatchParams::apply("roster-tests").force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {} {name}: {e}", gvk.kind));
    }
}

/// A file of the control plane's PKI (`hack/control-plane.sh` keeps it beside the kubeconfig).
fn pki(file: &str) -> PathBuf {
    let path = control_plane()
        .kubeconfig
        .parent()
        .expect("the kubeconfig is in the control plane's directory")
        .join("pki")
        .join(file);
    assert!(
        path.exists(),
        "{} is missing: the control plane predates webhook client certificates; restart it (hack/control-plane.sh down, then up)",
        path.display()
    );
    path
}

/// The CA that signs the client certificate the API server presents to webhooks, as roster's
/// `--webhook-client-ca` takes it.
pub fn webhook_client_ca() -> String {
    pki("webhook-client-ca.crt").to_str().unwrap().to_string()
}

/// The API server's client certificate and key for webhooks (PEM), to call a webhook as it does.
pub fn api_server_webhook_identity() -> (String, String) {
    let read = |f: &str| std::fs::read_to_string(pki(f)).unwrap();
    (read("webhook-client.crt"), read("webhook-client.key"))
}

/// Starts `roster run` with its admission webhook, which the API server calls over TLS for the
/// given namespaces only (the ValidatingWebhookConfiguration `roster-<first namespace>` selects them),
/// and which accepts no caller but the API server (`--webhook-client-ca`).
pub fn operator_with_webhook(namespaces: &[&str]) -> Operator {
    operator_with_webhook_and(namespaces, &[])
}

/// [`operator_with_webhook`] with more arguments to `roster run`.
pub fn operator_with_webhook_and(namespaces: &[&str], extra: &[&str]) -> Operator {
    let port = free_port();
    let (addr, url, config, client_ca) = (
        format!("127.0.0.1:{port}"),
        format!("https://127.0.0.1:{port}/validate"),
        format!("roster-{}", namespaces[0]),
        webhook_client_ca(),
    );
    let mut args = vec![
        "--webhook-addr",
        &addr,
        "--webhook-url",
        &url,
        "--webhook-config-name",
        &config,
        "--webhook-client-ca",
        &client_ca,
    ];
    args.extend(extra);
    Operator::start(namespaces, &args)
}

/// Waits until the webhook answers for `ns`: a dry-run create of an invalid-for-roster object
/// (a second Organization) is refused by roster, not by RBAC or a missing configuration.
pub async fn wait_for_webhook(client: &Client, ns: &str) {
    let probe = serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "webhook-probe" },
        "spec": { "access": { "namespaces": ["kube-system"] } }
    });
    let obj: kube::api::DynamicObject = serde_json::from_value(probe).unwrap();
    let gvk = kube::api::GroupVersionKind::gvk("roster.dev", "v1alpha1", "Organization");
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .expect("discover Organization");
    let api = Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &resource);
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    for _ in 0..300 {
        if let Err(kube::Error::Api(s)) = api.create(&pp, &obj).await
            && s.message.contains("roster:")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the roster webhook did not answer for namespace {ns} within 30s");
}

/// Lets every authenticated user read and write roster objects in `ns` through RBAC, so that the
/// webhook (not RBAC) is what decides in tests. The access issue ships the real roles.
pub async fn allow_roster_rbac(client: &Client, ns: &str) {
    use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "roster-tests-everything" },
        "rules": [
            { "apiGroups": ["roster.dev"], "resources": ["*"], "verbs": ["*"] },
            { "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"] }
        ]
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .patch(
            "roster-tests-everything",
            &PatchParams::apply("roster-tests").force(),
            &Patch::Apply(&role),
        )
        .await
        .expect("apply test ClusterRole");
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "roster-tests-everything", "namespace": ns },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "roster-tests-everything" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated" }]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .patch(
            "roster-tests-everything",
            &PatchParams::apply("roster-tests").force(),
            &Patch::Apply(&binding),
        )
        .await
        .expect("apply test RoleBinding");
}

impl Operator {
    /// Starts the operator binary with exactly `args` (no test defaults: the caller passes
    /// `--kubeconfig`, for example one with a ServiceAccount's token) and extra environment variables.
    /// `metrics_port` is the port `args` serve /metrics and /readyz on.
    pub fn spawn(args: &[String], env: &[(&str, &str)], metrics_port: u16) -> Operator {
        let log = std::env::temp_dir().join(format!(
            "roster-operator-{}-{metrics_port}.log",
            std::process::id()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("operator log file"))
            .spawn()
            .expect("start the roster binary");
        Operator {
            child,
            metrics_port,
            log,
        }
    }

    /// Whether `/readyz` answers 200 (the caches are synced).
    pub fn ready(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return false;
        };
        let _ = s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
    }
}

/// Like [`create_raw`], as a server-side dry run: the API server validates (schema, CEL, admission)
/// and stores nothing.
pub async fn create_raw_dry_run(
    client: &Client,
    ns: &str,
    object: serde_json::Value,
) -> Result<kube::api::DynamicObject, kube::Error> {
    create_raw_with(
        client,
        ns,
        object,
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
}

/// Applies the ClusterRoles roster ships (`roster::rules::rbac::cluster_roles()`), as the chart installs them.
pub async fn install_cluster_roles(client: &Client) {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let api: Api<ClusterRole> = Api::all(client.clone());
    for role in roster::rules::rbac::cluster_roles() {
        let name = role.metadata.name.clone().expect("a name");
        let mut body = serde_json::to_value(&role).expect("serializable");
        body["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
        body["kind"] = "ClusterRole".into();
        api.patch(
            &name,
            &PatchParams::apply("roster-tests").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap_or_else(|e| panic!("apply ClusterRole {name}: {e}"));
    }
}

/// Applies user Memberships given as (name, user, role).
pub async fn apply_memberships(client: &Client, ns: &str, memberships: &[(&str, &str, &str)]) {
    for (name, user, role) in memberships {
        apply(client, ns, &membership_yaml(name, user, role)).await;
    }
}

/// A user Membership as YAML, for `apply`.
pub fn membership_yaml(name: &str, user: &str, role: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Membership\nmetadata:\n  name: {name}\nspec:\n  user: {user}\n  role: {role}\n"
    )
}

/// The code of an Invite, from the Secret roster generated for it (as an org admin reads it).
pub async fn invite_code(client: &Client, ns: &str, invite: &str) -> String {
    use k8s_openapi::api::core::v1::Secret;
    let invites: Api<roster::api::Invite> = Api::namespaced(client.clone(), ns);
    let secret_name = eventually(
        "the invite's code Secret",
        Duration::from_secs(30),
        || async { invites.get(invite).await.ok()?.status?.code_secret_name },
    )
    .await;
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(&secret_name)
        .await
        .unwrap();
    String::from_utf8(secret.data.unwrap()["code"].0.clone()).unwrap()
}

/// What a redemption carries for `user`: the proof of `code`, as `kubectl roster join` makes it.
pub fn proof(code: &str, ns: &str, invite: &str, user: &str) -> String {
    roster::rules::invite_code::proof(code, ns, invite, user)
}

/// A Membership of `user` in `ns` that redeems `invite` with `code`, as YAML for `apply`.
pub fn redemption_yaml(
    name: &str,
    ns: &str,
    user: &str,
    role: &str,
    invite: &str,
    code: &str,
) -> String {
    let proof = proof(code, ns, invite, user);
    format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Membership\nmetadata:\n  name: {name}\nspec:\n  user: {user}\n  role: {role}\n  invite:\n    name: {invite}\n    proof: {proof}\n"
    )
}

/// Roster's RBAC and nothing else: the ClusterRoles roster ships, and `roster-self-service` for
/// every authenticated user in `ns` (the chart's `selfService.bindAuthenticated`, here only there).
pub async fn install_roster_rbac(client: &Client, ns: &str) {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    install_cluster_roles(client).await;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": "self-service", "namespace": ns },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "roster-self-service" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated" }]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .patch(
            "self-service",
            &PatchParams::apply("roster-tests").force(),
            &Patch::Apply(&binding),
        )
        .await
        .expect("bind roster-self-service");
}

/// Writes a kubeconfig for the test control plane that authenticates with `token` (a ServiceAccount's,
/// from the TokenRequest API).
pub fn token_kubeconfig(token: &str, path: &Path) {
    let kc = kube::config::Kubeconfig::read_from(&control_plane().kubeconfig)
        .expect("read the test kubeconfig");
    let cluster = kc.clusters[0].cluster.clone().expect("a cluster");
    let ca = match (
        &cluster.certificate_authority,
        &cluster.certificate_authority_data,
    ) {
        (Some(file), _) => format!("certificate-authority: {file}"),
        (None, Some(data)) => format!("certificate-authority-data: {data}"),
        (None, None) => panic!("the test kubeconfig names no CA"),
    };
    let server = cluster.server.expect("a server");
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    {ca}\nusers:\n- name: roster\n  user:\n    token: {token}\ncontexts:\n- name: roster\n  context:\n    cluster: local\n    user: roster\ncurrent-context: roster\n"
        ),
    )
    .expect("write the ServiceAccount kubeconfig");
}
