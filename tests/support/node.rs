//! A cluster with a real node (`hack/node.sh`): a control plane, a kubelet and containerd, so that
//! the chart's pods run the operator image. A node is one per machine (its bridge, port 10250, the
//! Service address' DNAT), so each test binary that needs one starts its own, one after another, and
//! stops it when it ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::cluster::run;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo().join("hack").join(name)
}

/// The cluster of this test binary: its directory, kubeconfig, kubectl and helm.
pub struct NodeCluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    kubectl: PathBuf,
    helm: PathBuf,
}

impl NodeCluster {
    /// Builds what is missing, then starts a control plane with a node in a directory of this test
    /// binary; a watchdog outside the process stops it when the binary ends.
    pub fn start(name: &str) -> NodeCluster {
        let bins = run(
            &mut Command::new(script("build-control-plane.sh")),
            "building the cluster binaries (hack/build-control-plane.sh)",
        );
        let mut bins = bins.lines().map(PathBuf::from);
        let (k8s, helm) = (bins.next().unwrap(), bins.next().unwrap());
        let dir = std::env::temp_dir().join(format!("roster-{name}-{}", std::process::id()));
        super::cluster::stop_when_done("hack/node.sh", &dir);
        let kubeconfig = run(
            Command::new(script("node.sh")).arg("up").arg(&dir),
            "starting a cluster with a node (hack/node.sh up)",
        );
        NodeCluster {
            dir,
            kubeconfig: PathBuf::from(kubeconfig.trim()),
            kubectl: k8s.join("kubectl"),
            helm: helm.join("helm"),
        }
    }

    /// Stops the node and the control plane now, restoring what the node changed on the machine.
    pub fn stop(&self) {
        run(
            Command::new(script("node.sh")).arg("down").arg(&self.dir),
            "stopping the cluster (hack/node.sh down)",
        );
    }

    /// Imports an image archive (hack/build-image.sh) into the node's containerd.
    pub fn import(&self, archive: &Path) {
        run(
            Command::new(script("node.sh"))
                .arg("import")
                .arg(archive)
                .arg(&self.dir),
            "importing the image into the node (hack/node.sh import)",
        );
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.tool(&self.kubectl, args)
    }

    pub fn helm(&self, args: &[&str]) -> Output {
        self.tool(&self.helm, args)
    }

    /// Runs a shell script with this cluster's KUBECONFIG, and kubectl and helm on PATH.
    pub fn shell(&self, script: &str) -> Output {
        let path = format!(
            "{}:{}:{}",
            self.kubectl.parent().unwrap().display(),
            self.helm.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", path)
            .current_dir(repo())
            .output()
            .expect("run bash")
    }

    fn tool(&self, bin: &Path, args: &[&str]) -> Output {
        Command::new(bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(repo())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
    }

    async fn config(&self) -> Config {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("read the cluster's kubeconfig");
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("load the cluster's kubeconfig")
    }

    /// The cluster admin (`system:masters`).
    pub async fn admin(&self) -> Client {
        Client::try_from(self.config().await).expect("admin client")
    }

    /// A client that impersonates `user`, in no group but `system:authenticated`.
    pub async fn as_user(&self, user: &str) -> Client {
        let mut config = self.config().await;
        config.auth_info.impersonate = Some(user.to_string());
        Client::try_from(config).expect("impersonating client")
    }
}

/// Builds the operator image tagged `tag` (hack/build-image.sh) and returns its archive.
pub fn build_image(tag: &str) -> PathBuf {
    let path = run(
        Command::new(script("build-image.sh")).arg(tag),
        "building the operator image (hack/build-image.sh)",
    );
    PathBuf::from(path.trim())
}
