//! A real Flux beside the test control plane: source-controller and kustomize-controller (built by
//! hack/build-flux.sh from their Go modules), limited to the `flux-system` namespace, with a Git
//! repository served over smart HTTP on loopback by `git http-backend`.
//!
//! Both controllers run as the ServiceAccount `flux-system/kustomize-controller` (bound to
//! cluster-admin, as Flux's own install does), with a token from the TokenRequest API: the identity
//! that README and examples/gitops make a roster platform principal (`roster run --platform-users
//! system:serviceaccount:flux-system:kustomize-controller`). Everything started here is killed when
//! the [`Flux`] is dropped, or by a watchdog when the test binary ends some other way.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};

use super::process::{Process, tail};

/// The namespace both controllers watch, and where the GitRepository and Kustomization live.
pub const NAMESPACE: &str = "flux-system";
/// The ServiceAccount both controllers run as.
pub const SERVICE_ACCOUNT: &str = "kustomize-controller";
/// Its username: what `roster run --platform-users` names.
pub const PRINCIPAL: &str = "system:serviceaccount:flux-system:kustomize-controller";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs git with no user or system configuration; panics when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Roster Tests",
            "-c",
            "user.email=tests@roster.dev",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A smart-HTTP Git server on loopback: `git http-backend` as a CGI program behind a minimal
/// HTTP/1.1 server (one request per connection), serving the bare repositories under `root`.
struct GitServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl GitServer {
    fn start(root: PathBuf) -> GitServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the git server");
        let port = listener.local_addr().unwrap().port();
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git --exec-path");
        let backend = PathBuf::from(String::from_utf8_lossy(&exec_path.stdout).trim())
            .join("git-http-backend");
        assert!(
            backend.exists(),
            "{} is missing: the git package ships it",
            backend.display()
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (root, backend) = (root.clone(), backend.clone());
                std::thread::spawn(move || {
                    if let Err(e) = serve(conn, &root, &backend) {
                        eprintln!("git server: {e}");
                    }
                });
            }
        });
        GitServer { port, stop }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves one request with `git http-backend` (RFC 3875 CGI).
fn serve(conn: TcpStream, root: &Path, backend: &Path) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let (method, target) = (method.to_string(), target.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| std::io::Error::other(format!("chunk size: {e}")))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new(backend);
    cgi.env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    for (var, name) in [
        ("CONTENT_TYPE", "content-type"),
        ("HTTP_CONTENT_ENCODING", "content-encoding"),
        ("GIT_PROTOCOL", "git-protocol"),
    ] {
        if let Some(v) = header(name) {
            cgi.env(var, v);
        }
    }
    let mut child = cgi
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out)?;
    child.wait()?;
    let _ = writer.join();
    // CGI output: header lines, an empty line, the body.
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .unwrap_or((out.len(), out.len()));
    let head = String::from_utf8_lossy(&out[..split.0]).into_owned();
    let mut status = "200 OK".to_string();
    let mut response = Vec::new();
    for h in head.lines().filter(|l| !l.trim().is_empty()) {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            _ => response.push(h.trim_end().to_string()),
        }
    }
    let body = &out[split.1..];
    let mut conn = conn;
    write!(conn, "HTTP/1.1 {status}\r\n")?;
    for h in response {
        write!(conn, "{h}\r\n")?;
    }
    write!(
        conn,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}

/// A Git repository Flux syncs from: a bare repository the server serves, and a work clone the test
/// commits to and pushes from.
pub struct GitRepo {
    pub url: String,
    pub work: PathBuf,
}

impl GitRepo {
    /// Replaces the whole work tree with `files` (path relative to the repository root, content),
    /// commits them as one commit and pushes it; returns the commit's SHA.
    pub fn commit(&self, files: &[(String, String)], message: &str) -> String {
        for entry in std::fs::read_dir(&self.work).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() == ".git" {
                continue;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
        for (path, content) in files {
            let path = self.work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        }
        git(&self.work, &["add", "--all"]);
        git(
            &self.work,
            &["commit", "--allow-empty", "--quiet", "-m", message],
        );
        git(&self.work, &["push", "--quiet", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_string()
    }
}

/// Flux's two controllers, the Git server and the directory they work in; everything stops on drop.
pub struct Flux {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    processes: Vec<Process>,
    git_server: GitServer,
}

/// `hack/build-flux.sh`: builds the binaries when missing; returns (bin directory, CRD directory).
fn build() -> (PathBuf, PathBuf) {
    let out = Command::new(repo().join("hack/build-flux.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run hack/build-flux.sh");
    assert!(out.status.success(), "hack/build-flux.sh failed");
    let out = String::from_utf8(out.stdout).unwrap();
    let mut lines = out.lines();
    let bin = PathBuf::from(lines.next().expect("bin directory printed"));
    let crds = PathBuf::from(lines.next().expect("CRD directory printed"));
    (bin, crds)
}

async fn apply_cluster<K>(client: &Client, obj: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + serde::Serialize,
    K::DynamicType: Default,
{
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    Api::<K>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply("roster-tests").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

impl Flux {
    /// Installs Flux's CRDs, its namespace and ServiceAccount, and starts the Git server and both
    /// controllers, each ready (healthz answers) when this returns.
    pub async fn start(client: &Client) -> Flux {
        let (bin, crds) = build();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&crds)
            .unwrap_or_else(|e| panic!("{}: {e}", crds.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for f in files {
            let crd: CustomResourceDefinition =
                serde_yaml::from_str(&std::fs::read_to_string(&f).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            super::install_crd(client, &crd).await;
        }

        apply_cluster::<Namespace>(
            client,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NAMESPACE }
            }),
        )
        .await;
        Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
            .patch(
                SERVICE_ACCOUNT,
                &PatchParams::apply("roster-tests").force(),
                &Patch::Apply(serde_json::json!({
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": { "name": SERVICE_ACCOUNT, "namespace": NAMESPACE }
                })),
            )
            .await
            .expect("apply the kustomize-controller ServiceAccount");
        apply_cluster::<ClusterRoleBinding>(
            client,
            serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": { "name": "flux-system-kustomize-controller" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
                "subjects": [{ "kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE }]
            }),
        )
        .await;

        let dir = std::env::temp_dir().join(format!("roster-flux-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("git")).unwrap();
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let (ok, token, err) = super::kubectl(&[
            "create",
            "token",
            SERVICE_ACCOUNT,
            "-n",
            NAMESPACE,
            "--duration",
            "2h",
        ]);
        assert!(ok, "kubectl create token: {err}");
        let kubeconfig = dir.join("kubeconfig");
        super::token_kubeconfig(token.trim(), &kubeconfig);

        let git_server = GitServer::start(dir.join("git"));
        let storage_port = super::free_port();
        let mut processes = Vec::new();
        let mut health = Vec::new();
        for name in ["source-controller", "kustomize-controller"] {
            let health_port = super::free_port();
            let mut cmd = Command::new(bin.join(name));
            cmd.env("KUBECONFIG", &kubeconfig)
                .env("RUNTIME_NAMESPACE", NAMESPACE)
                .arg("--watch-all-namespaces=false")
                .arg("--enable-leader-election=false")
                .arg(format!("--metrics-addr=127.0.0.1:{}", super::free_port()))
                .arg(format!("--health-addr=127.0.0.1:{health_port}"))
                .arg("--log-level=debug");
            if name == "source-controller" {
                cmd.arg(format!("--storage-path={}", dir.join("storage").display()))
                    .arg(format!("--storage-addr=127.0.0.1:{storage_port}"))
                    .arg(format!("--storage-adv-addr=127.0.0.1:{storage_port}"));
            } else {
                cmd.arg("--no-remote-bases=true");
            }
            processes.push(Process::spawn(
                name,
                &mut cmd,
                dir.join(format!("{name}.log")),
            ));
            health.push(health_port);
        }
        let mut flux = Flux {
            dir,
            kubeconfig,
            processes,
            git_server,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for (p, port) in flux.processes.iter_mut().zip(health) {
            while !http_ok(port, "/readyz") {
                if let Ok(Some(status)) = p.child.try_wait() {
                    panic!(
                        "{} exited ({status}) before it was ready:\n{}",
                        p.name,
                        tail(&p.log, 20)
                    );
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} did not answer /readyz within 60s:\n{}",
                    p.name,
                    tail(&p.log, 20)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        flux
    }

    /// A new bare repository `NAME.git` served by the Git server, and a work clone of it.
    pub fn repository(&self, name: &str) -> GitRepo {
        let bare = self.dir.join("git").join(format!("{name}.git"));
        git(
            &self.dir,
            &[
                "init",
                "--quiet",
                "--bare",
                "-b",
                "main",
                bare.to_str().unwrap(),
            ],
        );
        let work = self.dir.join(format!("{name}-work"));
        git(
            &self.dir,
            &[
                "clone",
                "--quiet",
                bare.to_str().unwrap(),
                work.to_str().unwrap(),
            ],
        );
        GitRepo {
            url: format!("http://127.0.0.1:{}/{name}.git", self.git_server.port),
            work,
        }
    }

    /// The controllers' logs, to read why something failed.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in &self.processes {
            out.push_str(&format!(
                "===== {} ({})\n{}\n",
                p.name,
                p.log.display(),
                std::fs::read_to_string(&p.log).unwrap_or_default()
            ));
        }
        out
    }
}

impl Drop for Flux {
    /// Stops the controllers (and the Git server); the directory with their logs stays only when
    /// the test failed.
    fn drop(&mut self) {
        self.processes.clear();
        if std::thread::panicking() {
            eprintln!("flux logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
}

/// The API of one Flux kind in [`NAMESPACE`].
pub fn api(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

pub fn git_repositories(client: &Client) -> Api<DynamicObject> {
    api(
        client,
        "source.toolkit.fluxcd.io",
        "v1",
        "GitRepository",
        "gitrepositories",
    )
}

pub fn kustomizations(client: &Client) -> Api<DynamicObject> {
    api(
        client,
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        "kustomizations",
    )
}

/// Asks Flux to reconcile `name` now (what `flux reconcile` does): sets the
/// `reconcile.fluxcd.io/requestedAt` annotation to `token`.
pub async fn request_reconcile(api: &Api<DynamicObject>, name: &str, token: &str) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({
            "metadata": { "annotations": { "reconcile.fluxcd.io/requestedAt": token } }
        })),
    )
    .await
    .unwrap_or_else(|e| panic!("annotate {name}: {e}"));
}

/// The status of a Flux object's condition `type_`: (status, reason, message).
pub fn condition(obj: &DynamicObject, type_: &str) -> Option<(String, String, String)> {
    let conditions = obj.data.pointer("/status/conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c["type"] == type_)?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}
