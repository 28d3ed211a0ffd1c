//! The operator binary as a child process of a test: `roster run` against the test control plane,
//! with or without its admission webhook, and its /metrics and /readyz.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, PostParams};

use super::cluster::{control_plane, webhook_client_ca};

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
