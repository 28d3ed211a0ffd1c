#!/usr/bin/env bash
# Installs the Debian packages roster's build and the hack/ scripts need, when missing: a C compiler
# and libc headers (Rust links with cc; ring compiles C), make, openssl, curl, python3 and setsid.
# Go and Rust come with the machine. Runs before anything else in `make dev`, `make test`, CI.
set -euo pipefail
need=()
for cmd in cc:gcc make:make openssl:openssl curl:curl python3:python3 setsid:util-linux; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd#*:}")
done
# gcc alone does not bring the C library's headers and start files that linking needs.
[[ -e /usr/include/stdio.h ]] || need+=(libc6-dev)
for cmd in go cargo rustup; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "install-deps: $cmd is required (Go 1.26+; Rust 1.89+ through rustup, which make msrv uses)" >&2; exit 1; }
done
((${#need[@]} == 0)) && exit 0
echo "install-deps: installing ${need[*]}" >&2
sudo=""
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: run as root, or install sudo, to apt-get install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
