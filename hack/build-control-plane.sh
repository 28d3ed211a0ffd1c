#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl, etcd and helm, and the node's kubelet and
# kube-scheduler (hack/node.sh), from their published Go modules into a cache outside the checkout,
# keyed by version. Builds only what is missing, so a warm run is
# instant; a cold one takes many minutes on 2 cores.
#
# The Kubernetes version is hack/versions.sh's newest, or ROSTER_K8S_VERSION. Only the newest gets the
# node's binaries: the oldest runs the version suite, which needs no node.
#
#   hack/build-control-plane.sh          build what is missing, print the bin directories
#   hack/build-control-plane.sh --paths  only print the bin directories (no build)
#   hack/build-control-plane.sh --all    build every version of hack/versions.sh (print nothing)
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.sh
source "$hack/versions.sh"

case "${1:-}" in
  --paths) echo "$K8S_BIN"; echo "$HELM_BIN"; exit 0 ;;
  --all)
    for v in "${K8S_VERSIONS[@]}"; do ROSTER_K8S_VERSION=$v "$0" >/dev/null; done
    exit 0 ;;
esac

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

# helm's own release builds (its Makefile) set the Kubernetes version that `helm template` and
# `helm lint` assume without --kube-version to their client-go's (v0.37 is Kubernetes 1.37). Without
# these flags helm assumes 1.20 and refuses every chart whose kubeVersion asks for more, ours included.
helm_ldflags() {
  local minor
  minor=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9][0-9]*\)\..*#\1#p' "$hack/helm/go.mod")
  [[ -n $minor ]] || { echo "roster: no k8s.io/client-go in hack/helm/go.mod" >&2; exit 1; }
  local flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  echo "$flags"
}

build() { # name dir pkg ldflags [stamp: rebuild a cached binary built with another]
  local name=$1 dir=$2 pkg=$3 ldflags=$4 stamp=${5:-} out
  local from=$hack/$dir
  case "$name" in helm) out="$HELM_BIN/$name" ;; *) out="$K8S_BIN/$name" from=$K8S_MODULES ;; esac
  if [[ -x "$out" && ( -z $stamp || "$(cat "$out.stamp" 2>/dev/null)" == "$stamp" ) ]]; then
    echo "roster: $name cached at $out" >&2
    return
  fi
  echo "roster: building $name from $pkg (cold builds take several minutes) ..." >&2
  local start=$SECONDS
  (cd "$from" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  if [[ -n $stamp ]]; then echo "$stamp" >"$out.stamp"; fi
  echo "roster: built $name in $((SECONDS - start))s" >&2
}

build etcd k8s go.etcd.io/etcd/server/v3 "-s -w"
build kube-apiserver k8s k8s.io/kubernetes/cmd/kube-apiserver "$(k8s_ldflags)"
build kube-controller-manager k8s k8s.io/kubernetes/cmd/kube-controller-manager "$(k8s_ldflags)"
build kubectl k8s k8s.io/kubernetes/cmd/kubectl "$(k8s_ldflags)"
if [[ $K8S_VERSION == "$K8S_NEWEST" ]]; then
  build kube-scheduler k8s k8s.io/kubernetes/cmd/kube-scheduler "$(k8s_ldflags)"
  build kubelet k8s k8s.io/kubernetes/cmd/kubelet "$(k8s_ldflags)"
fi
helm_flags=$(helm_ldflags)
build helm helm helm.sh/helm/v3/cmd/helm "$helm_flags" "$helm_flags"

echo "$K8S_BIN"; echo "$HELM_BIN"
