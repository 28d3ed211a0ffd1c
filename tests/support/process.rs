//! A process a test harness starts (Flux's controllers, Mailpit): its output goes to a log file, it is
//! killed when dropped, and a watchdog outside the test binary kills it if the binary ends without
//! dropping it (a panic that aborts, a SIGKILL, a timeout).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A process this harness started, killed on drop.
pub struct Process {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdout and stderr written to `log` (truncated first).
    pub fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Process {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("log file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        kill_when_done(child.id(), name);
        Process { name, child, log }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a watchdog outside this process that kills `pid` (if it still runs `name`) once the test
/// binary is gone, however it ended.
fn kill_when_done(pid: u32, name: &str) {
    #[allow(clippy::zombie_processes)] // never waited for: it must outlive this process
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; grep -q "$3" "/proc/$2/cmdline" 2>/dev/null && kill -9 "$2""#)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a watchdog");
}

/// The last `n` lines of a log file.
pub fn tail(log: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
