#!/usr/bin/env bash
# Builds the operator image without a container engine: the release binary, the C libraries it links
# (what the Dockerfile's distroless/cc base provides), a CA bundle and the non-root user, packed into
# an OCI image archive by hack/oci-image.py with the Dockerfile's runtime settings. The Dockerfile
# stays the path for registries that build with Docker; tests/image.rs keeps the two in agreement.
#
#   hack/build-image.sh [TAG]    build docker.io/library/roster:TAG (default: the chart's appVersion)
#                                and print the archive's path; import it with hack/node.sh import
#
# The release build lives outside the checkout ($ROSTER_CACHE/image-target), so warm builds are quick.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/versions.sh
source "$root/hack/versions.sh"

app_version=$(sed -n 's/^appVersion: "\(.*\)"/\1/p' "$root/charts/roster/Chart.yaml")
tag=${1:-$app_version}
name=docker.io/library/roster:$tag
target=${ROSTER_IMAGE_TARGET_DIR:-$ROSTER_CACHE/image-target}
out_dir=$ROSTER_CACHE/images
# The uid and gid of distroless' `nonroot`, which the Dockerfile's USER and the chart's pod use.
nonroot=65532

log() { echo "build-image: $*" >&2; }

release_binary() {
  log "cargo build --release (the first build takes minutes)"
  (cd "$root" && CARGO_TARGET_DIR=$target cargo build --release --locked --bin roster --quiet)
  echo "$target/release/roster"
}

# rootfs DIR BINARY: the files the image holds, at the paths the Dockerfile's runtime stage has them.
rootfs() {
  local dir=$1 binary=$2 lib
  install -D -m 0755 "$binary" "$dir/usr/local/bin/roster"
  # Every library the dynamic loader resolves for the binary, the loader itself included.
  for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    install -D -m 0755 "$(readlink -f "$lib")" "$dir$lib"
  done
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  mkdir -p "$dir/etc" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
    "$nonroot" "$nonroot" >"$dir/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%s:\n' "$nonroot" >"$dir/etc/group"
}

main() {
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] || { log "error: no CA bundle; run hack/install-deps.sh"; exit 1; }
  local binary
  binary=$(release_binary)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  rootfs "$work/rootfs" "$binary"
  mkdir -p "$out_dir"
  python3 "$root/hack/oci-image.py" --rootfs "$work/rootfs" --dockerfile "$root/Dockerfile" \
    --name "$name" --out "$out_dir/roster-$tag.tar" >/dev/null
  log "built $name"
  echo "$out_dir/roster-$tag.tar"
}

main
