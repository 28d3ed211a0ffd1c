#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from their published Go modules (through the
# wrapper module hack/flux) into a cache outside the checkout, keyed by version, and copies the CRDs
# they need beside them (tests install them from there). Builds only what is missing: a warm run is
# instant; a cold one took about 10 minutes on 2 cores (8 for source-controller, under 2 for
# kustomize-controller, which shares most of its dependencies), plus downloading the modules.
#
#   hack/build-flux.sh          build what is missing, print the bin and CRD directories
#   hack/build-flux.sh --paths  only print the bin and CRD directories (no build)
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.sh
source "$hack/versions.sh"

if [[ "${1:-}" == "--paths" ]]; then
  echo "$FLUX_BIN"; echo "$FLUX_CRDS"; exit 0
fi

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"
mkdir -p "$FLUX_BIN" "$FLUX_CRDS"

build() { # name module
  local name=$1 module=$2 out=$FLUX_BIN/$1
  if [[ -x "$out" ]]; then
    echo "roster: $name cached at $out" >&2
    return
  fi
  echo "roster: building $name from $module@$FLUX_VERSION (cold builds take several minutes) ..." >&2
  local start=$SECONDS
  (cd "$hack/flux" && go build -trimpath -ldflags "-s -w" -o "$out.tmp" "$module")
  mv "$out.tmp" "$out"
  echo "roster: built $name in $((SECONDS - start))s" >&2
}

# The CRDs ship in config/crd/bases of each controller's module (source-controller does not start
# without all of its six). Copied out of the module cache, which keeps them read-only.
crds() { # module
  local dir f
  (cd "$hack/flux" && go mod download "$1")
  dir=$(cd "$hack/flux" && go list -m -f '{{.Dir}}' "$1")
  for f in "$dir"/config/crd/bases/*.yaml; do
    install -m 0644 "$f" "$FLUX_CRDS/$(basename "$f")"
  done
}

build source-controller github.com/fluxcd/source-controller
build kustomize-controller github.com/fluxcd/kustomize-controller
if [[ ! -f "$FLUX_CRDS/.complete" ]]; then
  crds github.com/fluxcd/source-controller
  crds github.com/fluxcd/kustomize-controller
  touch "$FLUX_CRDS/.complete"
fi

echo "$FLUX_BIN"; echo "$FLUX_CRDS"
