//! The plugin's krew release (hack/krew-release.sh, krew/roster.yaml): the archive is built from
//! this checkout, the manifest written beside it carries that archive's sha256 (computed here
//! independently) and is the committed template with only its placeholders filled in, the archive
//! holds exactly the files the manifest names, a second build gives the same bytes, and krew
//! itself (built by hack/build-krew.sh) installs it, runs it through kubectl's plugin discovery,
//! and refuses an archive whose sha256 differs. Needs no control plane.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_yaml::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const RELEASE_URL: &str = "https://releases.example.com/roster/v0.1.0";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd` and returns its standard output; panics with its standard error when it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Builds the release into `out`; returns the archive's and the manifest's paths.
fn release(out: &Path) -> (PathBuf, PathBuf) {
    let printed = run(Command::new(repo().join("hack/krew-release.sh"))
        .arg("--out")
        .arg(out)
        .args(["--release-url", RELEASE_URL]));
    let mut lines = printed.lines().map(PathBuf::from);
    (
        lines.next().expect("archive"),
        lines.next().expect("manifest"),
    )
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn krew_installs_the_release_the_manifest_names() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, manifest) = release(&dir.path().join("first"));
    let archive_name = format!("kubectl-roster-v{VERSION}-linux-amd64.tar.gz");
    assert_eq!(
        archive.file_name().unwrap().to_str(),
        Some(archive_name.as_str())
    );
    let sha = sha256_hex(&archive);

    // The written manifest is the committed template, filled in with this build's values.
    let written = std::fs::read_to_string(&manifest).unwrap();
    let template = std::fs::read_to_string(repo().join("krew/roster.yaml")).unwrap();
    assert_eq!(
        written,
        template
            .replace("${VERSION}", VERSION)
            .replace("${RELEASE_URL}", RELEASE_URL)
            .replace("${SHA256_LINUX_AMD64}", &sha)
    );
    let m: Value = serde_yaml::from_str(&written).unwrap();
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(m["metadata"]["name"], "roster");
    assert_eq!(
        m["spec"]["version"].as_str(),
        Some(format!("v{VERSION}").as_str())
    );
    let platforms = m["spec"]["platforms"].as_sequence().unwrap();
    assert_eq!(platforms.len(), 1, "linux/amd64 only");
    let p = &platforms[0];
    assert_eq!(p["sha256"].as_str(), Some(sha.as_str()));
    assert_eq!(
        p["uri"].as_str(),
        Some(format!("{RELEASE_URL}/{archive_name}").as_str())
    );
    assert_eq!(p["selector"]["matchLabels"]["os"], "linux");
    assert_eq!(p["selector"]["matchLabels"]["arch"], "amd64");
    assert_eq!(
        std::fs::read_to_string(manifest.with_file_name("SHA256SUMS")).unwrap(),
        format!("{sha}  {archive_name}\n")
    );

    // The archive holds exactly what the manifest names, owned by 0, sorted, with fixed modes.
    let listing = run(Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&archive));
    let entries: Vec<(String, String, String)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[5].to_string(), f[0].to_string(), f[1].to_string())
        })
        .collect();
    let expected = [
        ("LICENSE", "-rw-r--r--"),
        ("kubectl-roster", "-rwxr-xr-x"),
        ("kubectl_complete-roster", "-rwxr-xr-x"),
    ];
    assert_eq!(
        entries,
        expected.map(|(n, mode)| (n.to_string(), mode.to_string(), "0/0".to_string())),
        "{listing}"
    );
    let named: Vec<&str> = p["files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| f["from"].as_str().unwrap())
        .collect();
    assert_eq!(
        named,
        ["kubectl-roster", "kubectl_complete-roster", "LICENSE"]
    );
    assert_eq!(p["bin"], "kubectl-roster");
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    assert_eq!(
        std::fs::read(unpacked.join("LICENSE")).unwrap(),
        std::fs::read(repo().join("LICENSE")).unwrap()
    );
    let version = run(Command::new(unpacked.join("kubectl-roster")).arg("--version"));
    assert_eq!(version, format!("kubectl roster {VERSION}\n"));

    // Built again (the binary from cargo's cache), the archive is the same, byte for byte.
    let (again, _) = release(&dir.path().join("second"));
    assert_eq!(sha256_hex(&again), sha, "the release build is reproducible");

    krew_install(dir.path(), &manifest, &archive);
}

/// krew installs the manifest with the archive, kubectl finds the installed plugin, and an
/// archive that is not the one the manifest names is refused.
fn krew_install(dir: &Path, manifest: &Path, archive: &Path) {
    let krew = run(&mut Command::new(repo().join("hack/build-krew.sh")));
    let krew = krew.trim();
    let krew_root = dir.join("krew-root");
    let install = |archive: &Path| {
        Command::new(krew)
            .env("KREW_ROOT", &krew_root)
            .arg("install")
            .arg(format!("--manifest={}", manifest.display()))
            .arg(format!("--archive={}", archive.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    let tampered = dir.join("tampered.tar.gz");
    let mut bytes = std::fs::read(archive).unwrap();
    bytes.push(0);
    std::fs::write(&tampered, bytes).unwrap();
    let refused = install(&tampered);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("checksum does not match"),
        "{refused:?}"
    );
    assert!(!krew_root.join("bin/kubectl-roster").exists());

    let out = install(archive);
    assert!(out.status.success(), "{out:?}");
    let installed = krew_root.join("bin/kubectl-roster");
    let version = run(Command::new(&installed).arg("--version"));
    assert_eq!(version, format!("kubectl roster {VERSION}\n"));

    // kubectl's own plugin discovery finds it on the PATH krew asks for.
    let bins = run(&mut Command::new(
        repo().join("hack/build-control-plane.sh"),
    ));
    let kubectl = Path::new(bins.lines().next().expect("bin directory")).join("kubectl");
    let path = format!("{}:/usr/bin:/bin", krew_root.join("bin").display());
    let version = run(Command::new(&kubectl)
        .args(["roster", "--version"])
        .env("PATH", &path));
    assert_eq!(version, format!("kubectl roster {VERSION}\n"));
}
