//! The README's walk-through ("Try it: the chart on a local control plane"), run the way a new user
//! runs it: `make tour` executes the shell block between the README's tour markers, which starts its
//! own control plane, installs the chart with helm, runs the chart's operator as its ServiceAccount,
//! creates an org from examples/, invites and joins with the plugin and shows the statuses. `make dev`
//! (the quick start's other command) is run the same way. Then `make down` must stop everything.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `make TARGET` at the repository root, as a user in a fresh shell whose temporary directory (and
/// so whose control plane directory) is `tmp`.
fn make(target: &str, tmp: &Path) -> Output {
    let path = format!(
        "{}:{}",
        tmp.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    Command::new("make")
        .arg(target)
        .current_dir(repo())
        .env("PATH", path)
        .env("TMPDIR", tmp)
        .env("HELM_CACHE_HOME", tmp.join("helm/cache"))
        .env("HELM_CONFIG_HOME", tmp.join("helm/config"))
        .env("HELM_DATA_HOME", tmp.join("helm/data"))
        .env_remove("KUBECONFIG")
        .env_remove("ROSTER_CONTROL_PLANE_DIR")
        .env_remove("MAKEFLAGS")
        .output()
        .expect("run make")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `--kubeconfig` argument of the running process `pid`.
fn kubeconfig_of(pid: u32) -> PathBuf {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the operator runs");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let i = args
        .iter()
        .position(|a| a == "--kubeconfig")
        .unwrap_or_else(|| panic!("no --kubeconfig in {args:?}"));
    PathBuf::from(&args[i + 1])
}

/// A temporary directory for one fresh shell, and the control plane directory the scripts will use
/// in it (stopped when the test binary ends, whatever happens).
fn fresh_shell(name: &str) -> (PathBuf, PathBuf) {
    // The scripts run `cargo build`, which inside `cargo test` would wait forever for the build
    // lock this run holds. `cargo test` has built the same binaries where the scripts look for them,
    // so a stand-in answers `cargo build` (and nothing else).
    for bin in [
        env!("CARGO_BIN_EXE_roster"),
        env!("CARGO_BIN_EXE_kubectl-roster"),
    ] {
        assert_eq!(
            Path::new(bin).parent().unwrap(),
            repo().join("target/debug"),
            "the scripts use target/debug: run the tests with the default target directory"
        );
    }
    let tmp = std::env::temp_dir().join(format!("roster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("bin")).unwrap();
    let cargo = tmp.join("bin/cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n[ \"$1\" = build ] || { echo \"tests/tour.rs: only cargo build is stood in for\" >&2; exit 1; }\n",
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dir = tmp.join("roster-control-plane");
    support::stop_control_plane_when_done(&dir);
    (tmp, dir)
}

/// `make down` stops the operator (`pid`) and the control plane and removes their directory.
fn make_down_stops_everything(tmp: &Path, dir: &Path, pid: u32) {
    let down = make("down", tmp);
    assert!(down.status.success(), "make down: {:?}", text(&down));
    assert!(!dir.exists(), "make down leaves {}", dir.display());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the operator (pid {pid}) still runs after make down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(tmp);
}

/// kubectl against the control plane in `dir` (admin unless the arguments say otherwise); its
/// standard output, or "no" when it exits non-zero (as `auth can-i` does for no).
fn kubectl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"eval "$(hack/control-plane.sh env "$1")" && shift && kubectl "$@""#)
        .arg("kubectl")
        .arg(dir)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    match out.status.success() {
        true => stdout.trim().to_string(),
        false if stdout.trim() == "no" => "no".into(),
        false => panic!("kubectl {args:?}: {stderr}"),
    }
}

fn operator_pid(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("roster.pid"))
        .expect("the operator's pid")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn readme_walk_through_installs_the_chart_invites_and_joins() {
    let (tmp, dir) = fresh_shell("tour");
    let tour = make("tour", &tmp);
    let (out, err) = text(&tour);
    assert!(
        tour.status.success(),
        "make tour failed:\n{out}\n--- stderr ---\n{err}"
    );
    let has = |what: &str| {
        assert!(
            out.contains(what),
            "the tour's output lacks {what:?}:\n{out}\n--- stderr ---\n{err}"
        )
    };
    let row = |words: &[&str]| {
        assert!(
            out.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                words.iter().all(|w| cols.contains(w))
            }),
            "no line with {words:?} in the tour's output:\n{out}"
        )
    };
    // 1. The chart installed, its CRDs served, the webhook configured by roster.
    has("STATUS: deployed");
    row(&["memberships", "roster.dev/v1alpha1", "Membership"]);
    row(&["roster", "1"]); // validatingwebhookconfiguration roster with one webhook
    // 2. The org and its team are Ready.
    has("organization.roster.dev/lovelace-lab condition met");
    has("team.roster.dev/difference-engine condition met");
    // 3. The admin's invite printed its code and the command that redeems it.
    has("invite/new-student created in lovelace-lab: role member");
    has("kubectl roster join lovelace-lab --invite new-student --code ");
    // 4. and 5. The student joined and is an Active member with a seat; the invite is used up; RBAC
    // follows the effective role.
    has("e.noether@university.example joined lovelace-lab as member");
    row(&[
        "e-noether-university-example",
        "e.noether@university.example",
        "member",
        "Active",
    ]);
    has("You:              e.noether@university.example (member)");
    has("Seats:            6 of 15 used");
    row(&["new-student", "member", "1", "Accepted"]);
    row(&["yes"]);
    // 6. The webhook refused the admin's promotion.
    assert!(
        err.contains("[rule AdminLimit]"),
        "the webhook's refusal:\n{err}"
    );

    // The operator ran with the chart's ServiceAccount token, not the admin's credentials.
    let pid = operator_pid(&dir);
    let kubeconfig = kubeconfig_of(pid);
    let whoami = kubectl(
        &dir,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(whoami, "system:serviceaccount:roster-system:roster");

    make_down_stops_everything(&tmp, &dir, pid);
}

#[test]
fn make_dev_runs_roster_with_every_example() {
    let (tmp, dir) = fresh_shell("dev");
    let dev = make("dev", &tmp);
    let (out, err) = text(&dev);
    assert!(
        dev.status.success(),
        "make dev failed:\n{out}\n--- stderr ---\n{err}"
    );
    // Every example organization is there and Ready (the printer columns end in READY, AGE).
    for (ns, org) in [
        ("acme", "acme"),
        ("globex", "globex"),
        ("lovelace-lab", "lovelace-lab"),
    ] {
        assert!(
            out.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&ns)
                    && cols.get(1) == Some(&format!("organization.roster.dev/{org}").as_str())
                    && cols.iter().rev().nth(1) == Some(&"True")
            }),
            "organization {ns}/{org} is not Ready in:\n{out}"
        );
    }
    assert!(out.contains("Stop it with: make down"), "{out}");
    // The roster-org-* ClusterRoles are there, so org roles grant what they say.
    let can = |user: &str, verb: &str, resource: &str| {
        kubectl(
            &dir,
            &["auth", "can-i", verb, resource, "-n", "acme", "--as", user],
        )
    };
    assert_eq!(can("linus@acme.example", "create", "invites"), "yes");
    assert_eq!(can("auditor@example.org", "list", "memberships"), "yes");
    assert_eq!(can("auditor@example.org", "create", "invites"), "no");
    assert_eq!(can("stranger@example.com", "create", "memberships"), "yes");
    assert_eq!(can("stranger@example.com", "list", "memberships"), "no");
    // The tour starts from nothing: it refuses to run beside make dev's control plane.
    let tour = make("tour", &tmp);
    assert!(!tour.status.success(), "make tour beside make dev");
    assert!(
        text(&tour).1.contains("make down first"),
        "{:?}",
        text(&tour)
    );
    make_down_stops_everything(&tmp, &dir, operator_pid(&dir));
}
