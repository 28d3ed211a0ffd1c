#!/usr/bin/env bash
# Installs the Debian packages roster's build and the hack/ scripts need, when missing: a C compiler
# and libc headers (Rust links with cc; ring compiles C), make, openssl, curl, python3 and setsid; and
# what hack/node.sh's node runs on: containerd, runc, the CNI plugins, iptables, ip and nsenter.
# Go and Rust come with the machine. Runs before anything else in `make dev`, `make test`, CI.
set -euo pipefail
need=()
for cmd in cc:gcc make:make openssl:openssl curl:curl python3:python3 setsid:util-linux nsenter:util-linux \
  containerd:containerd runc:runc iptables:iptables ip:iproute2; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd#*:}")
done
# gcc alone does not bring the C library's headers and start files that linking needs.
[[ -e /usr/include/stdio.h ]] || need+=(libc6-dev)
# The CNI plugins are not on PATH: Debian puts them where containerd looks by default.
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
for cmd in go cargo rustup; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "install-deps: $cmd is required (Go 1.26+; Rust 1.89+ through rustup, which make msrv uses)" >&2; exit 1; }
done
# hack/node.sh runs a containerd of its own, with its socket under its own directory. Debian's package
# enables a system containerd.service, which starts only where systemd runs (not on our machines, which
# have none); where installing it here did start it, it is stopped and disabled so that one containerd
# owns the machine's cgroups, mounts and CNI state. A containerd that was there before is left alone.
stop_distro_containerd() {
  [[ -d /run/systemd/system ]] || return 0
  if systemctl is-active --quiet containerd 2>/dev/null || systemctl is-enabled --quiet containerd 2>/dev/null; then
    echo "install-deps: stopping and disabling the distribution's containerd.service (hack/node.sh runs its own)" >&2
    $sudo systemctl disable --now containerd >/dev/null 2>&1 || true
  fi
}
((${#need[@]} == 0)) && exit 0
echo "install-deps: installing ${need[*]}" >&2
sudo=""
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: run as root, or install sudo, to apt-get install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
stop_distro_containerd
