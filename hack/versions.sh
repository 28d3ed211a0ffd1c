# Pinned versions and cache locations, sourced by the hack/ scripts. Keep in step with hack/*/go.mod.
K8S_VERSION=v1.37.2
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
