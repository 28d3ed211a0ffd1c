# Pinned versions and cache locations, sourced by the hack/ scripts. Keep in step with hack/*/go.mod.
# The Kubernetes versions roster is tested on, newest first. Every test runs on the newest; the
# version suite (hack/test.sh) also runs on the oldest, which is the oldest roster claims (the chart's
# kubeVersion). Each has its own module set, hack/k8s/<minor>/go.mod.
K8S_VERSIONS=(v1.37.2 v1.30.14)
K8S_NEWEST=${K8S_VERSIONS[0]}
K8S_OLDEST=${K8S_VERSIONS[${#K8S_VERSIONS[@]} - 1]}
# The one the scripts build and run: ROSTER_K8S_VERSION picks another from the list.
K8S_VERSION=${ROSTER_K8S_VERSION:-$K8S_NEWEST}
if [[ " ${K8S_VERSIONS[*]} " != *" $K8S_VERSION "* ]]; then
  echo "roster: ROSTER_K8S_VERSION=$K8S_VERSION is not one of hack/versions.sh's: ${K8S_VERSIONS[*]}" >&2
  exit 1
fi
K8S_MINOR=${K8S_VERSION%.*}
K8S_MODULES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/k8s/$K8S_MINOR
HELM_VERSION=v3.22.0
ROSTER_CACHE=${ROSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roster}
K8S_BIN=$ROSTER_CACHE/k8s-$K8S_VERSION/bin
HELM_BIN=$ROSTER_CACHE/helm-$HELM_VERSION/bin
# Flux's source-controller and kustomize-controller, for tests/flux.rs (built by hack/build-flux.sh).
FLUX_VERSION=v1.9.6
FLUX_DIR=$ROSTER_CACHE/flux-$FLUX_VERSION
FLUX_BIN=$FLUX_DIR/bin
FLUX_CRDS=$FLUX_DIR/crds
# Mailpit, the SMTP server (with a REST API to read what it received) that roster's e-mail tests send
# to (built by hack/build-mailpit.sh).
MAILPIT_VERSION=v1.33.1
MAILPIT_BIN=$ROSTER_CACHE/mailpit-$MAILPIT_VERSION/bin
