//! The README's walk-through ("Try it: the chart on a local cluster"), run the way a new user runs it:
//! `make tour` executes the shell block between the README's tour markers, which starts its own
//! cluster with a real node, builds and imports the operator image, installs the chart (its pods run
//! the operator), runs `helm test`, creates an org from examples/, invites and joins with the plugin
//! and shows the statuses; then `make cluster-down` must stop everything. `make dev` (the quick
//! start's other command) is run the same way, then `make down`.

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
        .env_remove("ROSTER_NODE_DIR")
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

/// Which environment a make target starts, and so the script that knows its directory.
#[derive(Clone, Copy)]
enum Started {
    /// `make dev`: a control plane (hack/control-plane.sh) with the operator beside it.
    ControlPlane,
    /// `make tour`: a cluster with a node (hack/node.sh).
    Cluster,
}

impl Started {
    fn script(self) -> &'static str {
        match self {
            Started::ControlPlane => "hack/control-plane.sh",
            Started::Cluster => "hack/node.sh",
        }
    }
}

/// A temporary directory for one fresh shell, and the directory the scripts will start `started` in
/// (stopped when the test binary ends, whatever happens).
fn fresh_shell(name: &str, started: Started) -> (PathBuf, PathBuf) {
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
    let dir = match started {
        Started::ControlPlane => tmp.join("roster-control-plane"),
        Started::Cluster => tmp.join("roster-cluster"),
    };
    support::stop_when_done(started.script(), &dir);
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

/// kubectl against what `started` runs in `dir` (admin unless the arguments say otherwise); its
/// standard output, or "no" when it exits non-zero (as `auth can-i` does for no).
fn kubectl(started: Started, dir: &Path, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"eval "$("$1" env "$2")" && shift 2 && kubectl "$@""#)
        .arg("kubectl")
        .arg(started.script())
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
    let (tmp, dir) = fresh_shell("tour", Started::Cluster);
    // The stand-in cargo also answers the image's release build: build it here, for real.
    let image = Command::new(repo().join("hack/build-image.sh"))
        .output()
        .unwrap();
    assert!(
        image.status.success(),
        "hack/build-image.sh: {:?}",
        text(&image)
    );
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
    // 1. The image imported, the chart installed, its pod Running on the node, its test
    // passed (the CRDs served, the webhook answering), the webhook configured by roster.
    assert!(
        err.contains("unpacking docker.io/library/roster:0.1.0"),
        "the image imported:\n{err}"
    );
    has("STATUS: deployed");
    row(&["1/1", "Running"]);
    has("Phase:          Succeeded");
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

    // The operator runs in the chart's pod, as the chart's ServiceAccount.
    let account = kubectl(
        Started::Cluster,
        &dir,
        &[
            "get",
            "pods",
            "-n",
            "roster-system",
            "-l",
            "app.kubernetes.io/name=roster",
            "-o",
            "jsonpath={.items[*].spec.serviceAccountName}",
        ],
    );
    assert_eq!(account, "roster");

    let down = make("cluster-down", &tmp);
    assert!(
        down.status.success(),
        "make cluster-down: {:?}",
        text(&down)
    );
    assert!(!dir.exists(), "make cluster-down leaves {}", dir.display());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn make_dev_runs_roster_with_every_example() {
    let (tmp, dir) = fresh_shell("dev", Started::ControlPlane);
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
        // Bound to identity providers, which `make dev` configures (hack/operator.sh).
        ("fabrikam", "fabrikam"),
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
            Started::ControlPlane,
            &dir,
            &["auth", "can-i", verb, resource, "-n", "acme", "--as", user],
        )
    };
    assert_eq!(can("linus@acme.example", "create", "invites"), "yes");
    assert_eq!(can("auditor@example.org", "list", "memberships"), "yes");
    assert_eq!(can("auditor@example.org", "create", "invites"), "no");
    assert_eq!(can("stranger@example.com", "create", "memberships"), "yes");
    assert_eq!(can("stranger@example.com", "list", "memberships"), "no");
    make_down_stops_everything(&tmp, &dir, operator_pid(&dir));
}
