//! The shared control plane and what a test needs of it: clients (admin, impersonating), kubectl,
//! a namespace per test, roster's CRDs and RBAC installed, the control plane's PKI, and `eventually`.

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

/// Runs `cmd`, its standard error shown, and returns its standard output; panics naming `what`
/// when it fails.
pub fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(out.status.success(), "{what} failed ({})", out.status);
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The Kubernetes versions roster is tested on, newest first (`K8S_VERSIONS` in hack/versions.sh).
pub fn k8s_versions() -> Vec<String> {
    let versions =
        std::fs::read_to_string(repo().join("hack/versions.sh")).expect("read hack/versions.sh");
    let list = versions
        .lines()
        .find_map(|l| l.strip_prefix("K8S_VERSIONS=("))
        .and_then(|l| l.split_once(')'))
        .expect("K8S_VERSIONS=(...) in hack/versions.sh")
        .0;
    list.split_whitespace().map(str::to_string).collect()
}

/// The Kubernetes version this run is on (what hack/build-control-plane.sh and
/// hack/control-plane.sh use): `ROSTER_K8S_VERSION`, else the newest.
pub fn k8s_version_under_test() -> String {
    std::env::var("ROSTER_K8S_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| k8s_versions().remove(0))
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
        stop_when_done("hack/control-plane.sh", &dir);
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

/// Starts a watchdog outside this process that runs `SCRIPT down DIR` when the test binary ends,
/// however it ends (normal exit, panic, abort or kill): `hack/control-plane.sh` stops a control plane
/// (and the operator beside it) by the pids it recorded, `hack/node.sh` a cluster with a node.
pub fn stop_when_done(script: &str, dir: &Path) {
    #[allow(clippy::zombie_processes)] // never waited for: it must outlive this process
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; "$2" down "$3""#)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(repo().join(script))
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the watchdog");
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

/// A client that impersonates `user` with `userInfo.extra` (like `kubectl --as USER
/// --as-user-extra KEY=VALUE`): what an authenticator's claim mappings give a signed-in user, such
/// as the tenant an identity provider signed them in to.
pub async fn client_signed_in(user: &str, extra: &[(&str, &[&str])]) -> Client {
    let mut config = config(Some((user, &[]))).await;
    config.auth_info.impersonate_user_extra = Some(
        extra
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect(),
    );
    Client::try_from(config).expect("impersonating client")
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

/// `kubectl auth can-i VERB RESOURCE -n NS --as USER`: the API server's own answer to what RBAC
/// lets `user` do.
pub fn can(user: &str, verb: &str, resource: &str, ns: &str) -> bool {
    let (_, out, err) = kubectl(&["auth", "can-i", verb, resource, "-n", ns, "--as", user]);
    match out.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl auth can-i {verb} {resource} -n {ns} --as {user}: {other} {err}"),
    }
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

/// A CA and a serving certificate it signed for `localhost` and `127.0.0.1`, as PEM: (CA, certificate,
/// key), for servers a test runs over TLS.
pub fn localhost_certificate() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
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
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
