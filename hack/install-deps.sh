#!/usr/bin/env bash
# Installs the Debian packages the hack/ scripts need, when missing. Go and Rust come with the machine.
set -euo pipefail
need=()
for cmd in openssl:openssl curl:curl python3:python3 make:make setsid:util-linux; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd#*:}")
done
for cmd in go cargo; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "install-deps: $cmd is required (Go 1.26+, Rust 1.89+)" >&2; exit 1; }
done
((${#need[@]} == 0)) && exit 0
echo "install-deps: installing ${need[*]}" >&2
sudo=""
[[ $(id -u) == 0 ]] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
