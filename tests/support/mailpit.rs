//! Mailpit, a real SMTP server with a REST API to read what it received (built by
//! hack/build-mailpit.sh from its Go module), as the mail relay of a test: on loopback, on free ports,
//! with its data in a directory of its own, killed when dropped (or by a watchdog when the test
//! binary ends some other way).
//!
//! Plain SMTP by default; [`Tls`] adds STARTTLS (offered or required) or implicit TLS with a
//! certificate from a CA made for the test ([`Mailpit::ca_pem`]), and [`Options::auth`] requires SMTP
//! AUTH with one username and password. [`Mailpit::stop`] and [`Mailpit::restart`] take the relay down
//! and up again on the same ports with the messages it already had; [`Mailpit::fail_at`] makes it
//! refuse transactions with an SMTP code (Mailpit's "chaos" triggers).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::operator::free_port;
use super::process::{Process, tail};

/// How Mailpit's SMTP port does TLS, with a certificate for `localhost` and `127.0.0.1` signed by
/// the test's CA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tls {
    /// Plain SMTP: no TLS offered.
    #[default]
    None,
    /// STARTTLS offered; clients may also send in plain text.
    Offered,
    /// STARTTLS required before MAIL FROM (`--smtp-require-starttls`).
    Required,
    /// TLS from the first byte, as on port 465 (`--smtp-require-tls`).
    Implicit,
}

/// What a [`Mailpit`] is started with.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub tls: Tls,
    /// SMTP AUTH required with this (username, password). Over plain SMTP Mailpit then allows PLAIN
    /// and LOGIN without TLS (`--smtp-auth-allow-insecure`).
    pub auth: Option<(String, String)>,
}

/// Where [`Mailpit::fail_at`] makes a transaction fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The reply to MAIL FROM.
    Sender,
    /// The reply to RCPT TO.
    Recipient,
    /// The reply to AUTH (only with [`Options::auth`]).
    Authentication,
}

/// One message as Mailpit lists it.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Mailpit's ID, for [`Mailpit::message`], [`Mailpit::headers`] and [`Mailpit::raw`].
    pub id: String,
    /// The Message-ID header, without angle brackets.
    pub message_id: String,
    /// The From address.
    pub from: String,
    /// The To addresses.
    pub to: Vec<String>,
    pub subject: String,
    /// When Mailpit received it (RFC 3339).
    pub created: String,
    /// The SMTP AUTH username it was sent with ("" without AUTH).
    pub username: String,
}

/// One message, parsed by Mailpit.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    pub message_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    /// The text/plain body, decoded.
    pub text: String,
    /// The text/html body, decoded ("" if there is none).
    pub html: String,
}

/// A Mailpit process with its ports and data directory.
pub struct Mailpit {
    pub smtp_port: u16,
    pub http_port: u16,
    dir: PathBuf,
    options: Options,
    ca_pem: Option<String>,
    process: Option<Process>,
}

impl Mailpit {
    /// Builds Mailpit when missing and starts it; it accepts SMTP and answers its API when this
    /// returns.
    pub async fn start(options: Options) -> Mailpit {
        let (smtp_port, http_port) = (free_port(), free_port());
        let dir =
            std::env::temp_dir().join(format!("roster-mailpit-{}-{smtp_port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_pem = (options.tls != Tls::None).then(|| write_certificate(&dir));
        if let Some((user, password)) = &options.auth {
            // htpasswd format; Mailpit accepts plain-text passwords in it.
            std::fs::write(dir.join("smtp-auth"), format!("{user}:{password}\n")).unwrap();
        }
        let mut mailpit = Mailpit {
            smtp_port,
            http_port,
            dir,
            options,
            ca_pem,
            process: None,
        };
        mailpit.restart().await;
        mailpit
    }

    /// The SMTP address: `127.0.0.1:smtp_port`.
    pub fn smtp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.smtp_port))
    }

    /// The PEM of the CA that signed the SMTP certificate (with [`Tls`] other than `None`).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The file that holds [`Mailpit::ca_pem`], for a process that reads its CA from a file.
    pub fn ca_pem_path(&self) -> Option<PathBuf> {
        self.ca_pem.as_ref().map(|_| self.dir.join("ca.pem"))
    }

    /// Kills Mailpit (SIGKILL, a relay that crashes): its ports refuse connections until
    /// [`Mailpit::restart`]. Messages it accepted stay in its database.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts Mailpit again (stopping it first if it runs) on the same ports with the same data: the
    /// messages it had are still listed. Chaos settings ([`Mailpit::fail_at`]) are not kept.
    pub async fn restart(&mut self) {
        self.stop();
        let log = self.dir.join("mailpit.log");
        // Each run starts a new log; the earlier runs' go on in another file.
        if let Ok(earlier) = std::fs::read(&log) {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("mailpit.previous.log"))
                .and_then(|mut f| f.write_all(&earlier))
                .unwrap();
        }
        let mut cmd = self.command();
        let mut process = Process::spawn("mailpit", &mut cmd, log);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "mailpit exited ({status}) before it was ready:\n{}",
                    tail(&process.log, 20)
                );
            }
            let smtp = TcpStream::connect(self.smtp_addr()).is_ok();
            if smtp && matches!(self.http("GET", "/readyz", "").await, Ok((200, _))) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "mailpit was not ready within 30s:\n{}",
                tail(&process.log, 20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.process = Some(process);
    }

    /// The command line of [`Mailpit::restart`].
    fn command(&self) -> Command {
        let file = |name: &str| self.dir.join(name).display().to_string();
        let mut cmd = Command::new(build().join("mailpit"));
        // Mailpit also reads its settings from MP_* variables: none may leak in from the test's
        // environment.
        cmd.env_clear()
            .arg(format!("--database={}", file("mailpit.db")))
            .arg(format!("--smtp=127.0.0.1:{}", self.smtp_port))
            .arg(format!("--listen=127.0.0.1:{}", self.http_port))
            // No network: no update check, no reverse DNS of clients.
            .arg("--disable-version-check")
            .arg("--smtp-disable-rdns")
            // Keeps every message (it prunes beyond 500 by default).
            .arg("--max=0")
            .arg("--enable-chaos")
            // Logs the SMTP dialogue, to read when a test fails.
            .arg("--verbose");
        if self.options.tls != Tls::None {
            cmd.arg(format!("--smtp-tls-cert={}", file("cert.pem")))
                .arg(format!("--smtp-tls-key={}", file("key.pem")));
        }
        match self.options.tls {
            Tls::Required => {
                cmd.arg("--smtp-require-starttls");
            }
            Tls::Implicit => {
                cmd.arg("--smtp-require-tls");
            }
            Tls::None | Tls::Offered => {}
        }
        if self.options.auth.is_some() {
            cmd.arg(format!("--smtp-auth-file={}", file("smtp-auth")));
            if self.options.tls == Tls::None {
                cmd.arg("--smtp-auth-allow-insecure");
            }
        }
        cmd
    }

    /// Every message Mailpit holds, oldest first.
    pub async fn messages(&self) -> Vec<Summary> {
        #[derive(Deserialize)]
        struct List {
            messages: Vec<Value>,
        }
        // limit=0: all of them (the default is a page of 50).
        let list: List = self.get_json("/api/v1/messages?limit=0").await;
        let mut out: Vec<Summary> = list.messages.iter().map(summary).collect();
        out.reverse();
        out
    }

    /// One message, parsed.
    pub async fn message(&self, id: &str) -> Message {
        let m: Value = self.get_json(&format!("/api/v1/message/{id}")).await;
        let s = summary(&m);
        Message {
            id: s.id,
            message_id: s.message_id,
            from: s.from,
            to: s.to,
            cc: addresses(&m["Cc"]),
            subject: s.subject,
            text: m["Text"].as_str().unwrap_or_default().to_string(),
            html: m["HTML"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// One message's headers, by name (as sent; Mailpit sorts them), each with all its values.
    pub async fn headers(&self, id: &str) -> BTreeMap<String, Vec<String>> {
        self.get_json(&format!("/api/v1/message/{id}/headers"))
            .await
    }

    /// One message as received: its headers and body as sent over SMTP, after the Return-Path and
    /// Received headers Mailpit adds.
    pub async fn raw(&self, id: &str) -> String {
        self.call("GET", &format!("/api/v1/message/{id}/raw"), "")
            .await
    }

    /// Deletes every message.
    pub async fn delete_all(&self) {
        self.call("DELETE", "/api/v1/messages", "").await;
    }

    /// Waits until Mailpit holds at least `n` messages and returns them all, oldest first; panics
    /// with what it has (and its log) after `timeout`.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Summary> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.messages().await;
            if messages.len() >= n {
                return messages;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "mailpit held {} messages, not {n}, after {timeout:?}: {messages:#?}\n{}",
                messages.len(),
                tail(&self.dir.join("mailpit.log"), 20)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// From now on, every transaction fails at `stage` with SMTP `code` (4xx: try again later, 5xx:
    /// never), or, with `None`, no longer fails there.
    pub async fn fail_at(&self, stage: Stage, code: Option<u16>) {
        let mut triggers: Value = self.get_json("/api/v1/chaos").await;
        let name = match stage {
            Stage::Sender => "Sender",
            Stage::Recipient => "Recipient",
            Stage::Authentication => "Authentication",
        };
        let trigger = &mut triggers[name];
        if let Some(code) = code {
            trigger["ErrorCode"] = code.into();
        }
        trigger["Probability"] = if code.is_some() { 100 } else { 0 }.into();
        self.call("PUT", "/api/v1/chaos", &triggers.to_string())
            .await;
    }

    /// Mailpit's log (with the SMTP dialogue), of this run and the ones before a restart.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        read("mailpit.previous.log") + &read("mailpit.log")
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let body = self.call("GET", path, "").await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("mailpit GET {path}: {e}: {body}"))
    }

    /// An API call that must answer 200; returns the body.
    async fn call(&self, method: &str, path: &str, body: &str) -> String {
        match self.http(method, path, body).await {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("mailpit {method} {path}: {status} {body}"),
            Err(e) => panic!("mailpit {method} {path}: {e}"),
        }
    }

    /// One HTTP/1.0 request (the connection closes after the response, so the body is all that
    /// follows the headers): (status, body).
    async fn http(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let port = self.http_port;
        let exchange = async {
            let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let request = format!(
                "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(request.as_bytes()).await?;
            let mut response = Vec::new();
            conn.read_to_end(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| std::io::Error::other("no response within 10s"))??;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response}")))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status: {head}")))?;
        Ok((status, body.to_string()))
    }
}

impl Drop for Mailpit {
    /// Stops Mailpit; its directory (database, log, certificates) stays only when the test failed.
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("mailpit's data and log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `hack/build-mailpit.sh`, once per test binary (its tests start Mailpits in parallel): builds
/// Mailpit when missing (a failed build fails the test) and returns its bin directory.
fn build() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(repo.join("hack/build-mailpit.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run hack/build-mailpit.sh");
        assert!(out.status.success(), "hack/build-mailpit.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// A CA and a serving certificate for `localhost` and `127.0.0.1` in `dir` (`ca.pem`, `cert.pem`,
/// `key.pem`); returns the CA's PEM.
fn write_certificate(dir: &Path) -> String {
    let (ca, cert, key) = super::localhost_certificate();
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    ca
}

/// The fields a message summary and a full message share (Mailpit's JSON uses Go's field names).
fn summary(m: &Value) -> Summary {
    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    Summary {
        id: s("ID"),
        message_id: s("MessageID"),
        from: m["From"]["Address"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        to: addresses(&m["To"]),
        subject: s("Subject"),
        created: s("Created"),
        username: s("Username"),
    }
}

/// The addresses of a list of `{"Name", "Address"}` (null when empty).
fn addresses(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["Address"].as_str().map(str::to_string))
        .collect()
}
