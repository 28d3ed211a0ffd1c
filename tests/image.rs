//! The operator image that `hack/build-image.sh` builds without Docker holds what the Dockerfile's
//! runtime stage describes, and runs: the same user, entrypoint, command, ports and labels, the C
//! libraries the binary links, a CA bundle; and the binary starts from the image's own root as the
//! image's user.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Dockerfile's runtime stage, instruction by instruction, read independently of the builder.
fn runtime_stage() -> Vec<(String, String)> {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let joined = dockerfile.replace("\\\n", " ");
    let stage = joined.rsplit("\nFROM ").next().expect("a runtime stage");
    stage
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (word, rest) = l.split_once(' ').unwrap_or((l, ""));
            (word.to_string(), rest.trim().to_string())
        })
        .collect()
}

fn instruction(stage: &[(String, String)], word: &str) -> Vec<String> {
    stage
        .iter()
        .filter(|(w, _)| w == word)
        .map(|(_, rest)| rest.clone())
        .collect()
}

fn sh(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The image archive unpacked: its config and its root filesystem.
struct Unpacked {
    config: Value,
    rootfs: PathBuf,
    _dir: tempfile::TempDir,
}

fn unpack(archive: &Path) -> Unpacked {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    sh(
        Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&layout),
        "unpack the archive",
    );
    let read = |digest: &str| {
        let path = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::read(path).expect("a blob the index points to")
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_slice(&read(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let config: Value =
        serde_json::from_slice(&read(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer");
    let layer = dir.path().join("layer.tar.gz");
    std::fs::write(&layer, read(layers[0]["digest"].as_str().unwrap())).unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    sh(
        Command::new("tar")
            .arg("-xzf")
            .arg(&layer)
            .arg("-C")
            .arg(&rootfs),
        "unpack the layer",
    );
    Unpacked {
        config,
        rootfs,
        _dir: dir,
    }
}

#[test]
fn the_image_holds_and_runs_what_the_dockerfile_describes() {
    let archive = sh(
        Command::new(repo().join("hack/build-image.sh")).arg("image-test"),
        "hack/build-image.sh",
    );
    let image = unpack(Path::new(archive.trim()));
    let config = &image.config["config"];
    let stage = runtime_stage();

    let user = instruction(&stage, "USER");
    assert_eq!(
        config["User"].as_str(),
        user.last().map(String::as_str),
        "USER"
    );
    for (word, key) in [("ENTRYPOINT", "Entrypoint"), ("CMD", "Cmd")] {
        let expected: Value =
            serde_json::from_str(instruction(&stage, word).last().unwrap()).unwrap();
        assert_eq!(config[key], expected, "{word}");
    }
    let ports: BTreeMap<String, Value> = instruction(&stage, "EXPOSE")
        .iter()
        .flat_map(|l| {
            l.split_whitespace()
                .map(|p| (format!("{p}/tcp"), Value::Object(Default::default())))
        })
        .collect();
    assert_eq!(
        config["ExposedPorts"],
        serde_json::to_value(&ports).unwrap(),
        "EXPOSE"
    );
    let labels = instruction(&stage, "LABEL").join(" ");
    for (key, value) in config["Labels"].as_object().unwrap() {
        assert!(
            labels.contains(&format!("{key}={value}")),
            "LABEL {key}={value} in {labels}"
        );
    }
    assert!(
        labels.contains("org.opencontainers.image.title"),
        "labels read: {labels}"
    );

    let entrypoint = config["Entrypoint"][0].as_str().unwrap();
    let root = &image.rootfs;
    assert!(
        root.join(entrypoint.trim_start_matches('/')).is_file(),
        "the entrypoint is in the image"
    );
    assert!(
        root.join("etc/ssl/certs/ca-certificates.crt").is_file(),
        "a CA bundle"
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let uid = config["User"]
        .as_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_string();
    assert!(
        passwd
            .lines()
            .any(|l| l.split(':').nth(2) == Some(uid.as_str())),
        "the user {uid} exists: {passwd}"
    );

    // The binary runs from the image's root alone, as the image's user: every library it needs is in it.
    let help = sh(
        Command::new("chroot")
            .arg(format!("--userspec={}", config["User"].as_str().unwrap()))
            .arg(root)
            .arg(entrypoint)
            .arg("run")
            .arg("--help"),
        "the image's binary, run from its root",
    );
    assert!(help.contains("--webhook-addr"), "roster run --help: {help}");
}
