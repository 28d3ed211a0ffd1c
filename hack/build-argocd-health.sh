#!/usr/bin/env bash
# Builds hack/argocd-health (an Argo CD health check runner on gopher-lua, the Lua engine Argo CD
# uses) into the cache outside the checkout, keyed by a hash of its sources, and prints its bin
# directory. Builds only when missing: a warm run is instant, a cold one takes seconds.
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.sh
source "$hack/versions.sh"

src=$hack/argocd-health
key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
bin=$ROSTER_CACHE/argocd-health-$key/bin
if [[ ! -x $bin/argocd-health ]]; then
  echo "roster: building argocd-health from hack/argocd-health ..." >&2
  mkdir -p "$bin"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}" go build -trimpath -o "$bin/argocd-health.tmp" .)
  mv "$bin/argocd-health.tmp" "$bin/argocd-health"
fi
echo "$bin"
