#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl, etcd and helm, and the node's kubelet and
# kube-scheduler (hack/node.sh), from their published Go modules into a cache outside the checkout,
# keyed by version. Builds only what is missing, so a warm run is
# instant; a cold one takes many minutes on 2 cores.
#
#   hack/build-control-plane.sh          build what is missing, print the bin directories
#   hack/build-control-plane.sh --paths  only print the bin directories (no build)
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.sh
source "$hack/versions.sh"

if [[ "${1:-}" == "--paths" ]]; then
  echo "$K8S_BIN"; echo "$HELM_BIN"; exit 0
fi

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"
mkdir -p "$K8S_BIN" "$HELM_BIN"

# Same -X variables as kubernetes' hack/lib/version.sh, so `kubectl version` reports the real release.
k8s_ldflags() {
  local major minor date
  major=${K8S_VERSION#v}; major=${major%%.*}
  minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  date=$(date -u +'%Y-%m-%dT%H:%M:%SZ')
  local flags="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X '$pkg.gitVersion=$K8S_VERSION' -X '$pkg.gitMajor=$major' -X '$pkg.gitMinor=$minor'"
    flags+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=$date'"
  done
  echo "$flags"
}

build() { # name dir pkg ldflags
  local name=$1 dir=$2 pkg=$3 ldflags=$4 out
  case "$name" in helm) out="$HELM_BIN/$name" ;; *) out="$K8S_BIN/$name" ;; esac
  if [[ -x "$out" ]]; then
    echo "roster: $name cached at $out" >&2
    return
  fi
  echo "roster: building $name from $pkg (cold builds take several minutes) ..." >&2
  local start=$SECONDS
  (cd "$hack/$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  echo "roster: built $name in $((SECONDS - start))s" >&2
}

build etcd k8s go.etcd.io/etcd/server/v3 "-s -w"
build kube-apiserver k8s k8s.io/kubernetes/cmd/kube-apiserver "$(k8s_ldflags)"
build kube-controller-manager k8s k8s.io/kubernetes/cmd/kube-controller-manager "$(k8s_ldflags)"
build kubectl k8s k8s.io/kubernetes/cmd/kubectl "$(k8s_ldflags)"
build kube-scheduler k8s k8s.io/kubernetes/cmd/kube-scheduler "$(k8s_ldflags)"
build kubelet k8s k8s.io/kubernetes/cmd/kubelet "$(k8s_ldflags)"
build helm helm helm.sh/helm/v3/cmd/helm \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"

echo "$K8S_BIN"; echo "$HELM_BIN"
