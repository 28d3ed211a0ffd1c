#!/usr/bin/env bash
# Builds the krew release of the kubectl plugin: the release binary of this checkout, packed
# reproducibly with kubectl_complete-roster and LICENSE into
# kubectl-roster-vVERSION-linux-amd64.tar.gz, its sha256, and krew/roster.yaml (a template) written
# beside it with the version, the release URL and the sha256 filled in. Publish the archive where
# --release-url says and hand the written manifest to krew (or to the krew index).
#
#   hack/krew-release.sh [--portable] [--out DIR] [--release-url URL]
#       DIR  where the archive, roster.yaml and SHA256SUMS go (default: krew/dist, ignored by git)
#       URL  the directory URL the archive will be downloaded from (default: file://DIR, for a
#            local `kubectl krew install --manifest=DIR/roster.yaml --archive=DIR/...tar.gz`)
#   Prints the archive's path, then the manifest's.
#
# Reproducible: the same commit, Cargo.lock and toolchain give the same bytes wherever the checkout
# and the target directory are. rustc records the crate's own sources relative to the checkout
# and the standard library's under /rustc/HASH; what remains are dependencies' sources under
# CARGO_HOME (panic locations), the same on every machine of this project (root's ~/.cargo).
#
# The binary is built as hack/build-image.sh builds the operator (`cargo build --release --locked`,
# no extra flags) in the same target directory outside the checkout ($ROSTER_IMAGE_TARGET_DIR,
# default $ROSTER_CACHE/image-target), so that the library compiled for the image serves the plugin
# too: after the image's build (which `make test` runs first) this build only links the plugin.
# --portable builds for a builder whose CARGO_HOME differs: CARGO_HOME is mapped to /cargo (a
# --remap-path-prefix in RUSTFLAGS, so in a target directory of its own, $ROSTER_CACHE/krew-target,
# where every dependency is compiled once more) and the bytes are the same on any machine.
#
# The tar lists its files sorted, with the commit's time (or SOURCE_DATE_EPOCH), owner 0 and fixed
# modes, and gzip -n stores no name or time.
#
# linux/amd64 only: the platform this repository's machines build (no cross toolchains).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/versions.sh
source "$root/hack/versions.sh"

out=$root/krew/dist
url=
portable=false
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --release-url) url=$2; shift 2 ;;
    --portable) portable=true; shift ;;
    *) echo "usage: hack/krew-release.sh [--portable] [--out DIR] [--release-url URL]" >&2; exit 2 ;;
  esac
done

if $portable; then
  target=${ROSTER_KREW_TARGET_DIR:-$ROSTER_CACHE/krew-target}
  flags="--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
else
  target=${ROSTER_IMAGE_TARGET_DIR:-$ROSTER_CACHE/image-target}
  flags=
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
platform=linux-amd64
archive_name=kubectl-roster-v$version-$platform.tar.gz

log() { echo "krew-release: $*" >&2; }

check_platform() {
  if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
    log "error: this script builds $platform only, on a linux/amd64 machine (this is $(uname -s)/$(uname -m))"
    exit 1
  fi
}

release_binary() {
  log "cargo build --release --bin kubectl-roster in $target (a cold build takes minutes)"
  # RUSTFLAGS only with --portable: otherwise the environment's, exactly as hack/build-image.sh
  # builds, or the cache it shares would be invalidated.
  if [[ -n $flags ]]; then export RUSTFLAGS=$flags; fi
  (cd "$root" && CARGO_TARGET_DIR=$target cargo build --release --locked --bin kubectl-roster --quiet)
  echo "$target/release/kubectl-roster"
}

# pack STAGE ARCHIVE: a tar.gz whose bytes depend only on the files' contents and names.
pack() {
  local stage=$1 archive=$2 epoch
  epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
  # Named in byte order (tar keeps the order of its arguments; --sort orders what it finds in
  # directories), in the C locale so that nothing depends on the machine's.
  LC_ALL=C tar --sort=name --format=gnu --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
    -C "$stage" -cf - LICENSE kubectl-roster kubectl_complete-roster | gzip -9 -n >"$archive.tmp"
  mv "$archive.tmp" "$archive"
}

# render SHA256: krew/roster.yaml with its placeholders filled in.
render() {
  sed -e "s|\${VERSION}|$version|g" -e "s|\${RELEASE_URL}|$url|g" \
    -e "s|\${SHA256_LINUX_AMD64}|$1|g" "$root/krew/roster.yaml"
}

main() {
  check_platform
  local binary sha
  binary=$(release_binary)
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  url=${url:-file://$out}
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  install -m 0755 "$binary" "$stage/kubectl-roster"
  install -m 0755 "$root/krew/kubectl_complete-roster" "$stage/kubectl_complete-roster"
  install -m 0644 "$root/LICENSE" "$stage/LICENSE"
  pack "$stage" "$out/$archive_name"
  sha=$(sha256sum "$out/$archive_name" | cut -d ' ' -f 1)
  render "$sha" >"$out/roster.yaml"
  (cd "$out" && sha256sum "$archive_name" >SHA256SUMS)
  log "$archive_name sha256 $sha"
  echo "$out/$archive_name"
  echo "$out/roster.yaml"
}

main
