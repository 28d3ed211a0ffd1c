#!/usr/bin/env bash
# Builds krew (the kubectl plugin manager) from its published Go module into a cache outside the
# checkout, keyed by version, for tests/plugin_krew.rs: it installs the plugin's release with krew
# itself, which validates the manifest and checks the archive's sha256. Builds only when missing
# (about 30 seconds cold, the modules downloaded through the Go module proxy).
#
#   hack/build-krew.sh     build if missing, print the path of the kubectl-krew binary
#
# v0.4.3 is the newest version the module proxy serves.
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.sh
source "$hack/versions.sh"

KREW_VERSION=v0.4.3
bin=$ROSTER_CACHE/krew-$KREW_VERSION/bin
out=$bin/kubectl-krew

if [[ -x "$out" ]]; then
  echo "roster: krew cached at $out" >&2
else
  echo "roster: building krew from sigs.k8s.io/krew@$KREW_VERSION ..." >&2
  mkdir -p "$bin"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # Module mode outside any module: krew's own go.mod decides its dependencies.
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN=$work \
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION")
  mv "$work/krew" "$out"
fi
echo "$out"
