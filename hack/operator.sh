#!/usr/bin/env bash
# Runs roster beside the local control plane (hack/control-plane.sh), in the background, with its
# admission webhook on loopback. The control plane has no nodes, so no pod ever runs; this is how the
# operator gets there instead.
#
#   hack/operator.sh dev                       `roster run` as the cluster admin, webhook configuration
#                                              roster-dev (what `make dev` uses)
#   hack/operator.sh chart [NAMESPACE] [RELEASE]
#                                              the Deployment `helm install` created (default
#                                              roster-system/roster), run with its own arguments and as
#                                              its ServiceAccount (a token from the TokenRequest API),
#                                              so the chart's RBAC is all it has
#
# The operator's pid, log and metrics port live in the control plane's directory ($dir/roster.pid,
# $dir/logs/roster.log, $dir/roster.metrics-port); `make down` stops it with the control plane.
# Needs `cargo build` first (target/debug/roster).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${ROSTER_CONTROL_PLANE_DIR:-${TMPDIR:-/tmp}/roster-control-plane}
roster=${CARGO_TARGET_DIR:-$root/target}/debug/roster

log() { echo "operator: $*" >&2; }
die() { log "error: $*"; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

running() {
  local pid
  pid=$(cat "$dir/roster.pid" 2>/dev/null) || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '/roster run '
}

# start ENV_ASSIGNMENTS... -- ROSTER_RUN_ARGS...: starts the operator with loopback addresses added and
# waits until its caches are synced and its webhook is written into CONFIG_NAME.
start() {
  local env=() config_name=
  while [[ $1 != -- ]]; do env+=("$1"); shift; done
  shift
  local args=("$@") i
  for ((i = 0; i < ${#args[@]}; i++)); do
    [[ ${args[i]} == --webhook-config-name ]] && config_name=${args[i + 1]}
  done
  [[ -n $config_name ]] || die "no --webhook-config-name"

  local metrics webhook
  metrics=$(free_port)
  webhook=$(free_port)
  mkdir -p "$dir/logs"
  # The local API server presents a client certificate to webhooks (hack/control-plane.sh): accept
  # no other caller, as the chart's webhook.clientCA does in a cluster.
  local clients=()
  [[ -f $dir/pki/webhook-client-ca.crt ]] && clients=(--webhook-client-ca "$dir/pki/webhook-client-ca.crt")
  env "${env[@]}" nohup "$roster" run "${args[@]}" "${clients[@]}" \
    --metrics-addr "127.0.0.1:$metrics" \
    --webhook-addr "127.0.0.1:$webhook" --webhook-url "https://127.0.0.1:$webhook/validate" \
    >"$dir/logs/roster.log" 2>&1 &
  echo $! >"$dir/roster.pid"
  echo "$metrics" >"$dir/roster.metrics-port"

  for _ in $(seq 1 150); do
    kill -0 "$(cat "$dir/roster.pid")" 2>/dev/null || die "roster exited; its log ($dir/logs/roster.log) ends with:
$(tail -n 20 "$dir/logs/roster.log")"
    if curl -sf "http://127.0.0.1:$metrics/readyz" >/dev/null 2>&1 &&
      [[ $(kubectl get validatingwebhookconfiguration "$config_name" \
        -o jsonpath='{.webhooks[0].clientConfig.url}' 2>/dev/null) == "https://127.0.0.1:$webhook/validate" ]]; then
      log "roster runs (pid $(cat "$dir/roster.pid")): webhook https://127.0.0.1:$webhook/validate," \
        "metrics http://127.0.0.1:$metrics/metrics, log $dir/logs/roster.log"
      return
    fi
    sleep 0.2
  done
  die "roster did not become ready with its webhook in 30 s; see $dir/logs/roster.log"
}

# chart NAMESPACE RELEASE: the Deployment's container arguments, minus the in-cluster addresses that
# start() replaces, and a kubeconfig holding the ServiceAccount's token.
chart() {
  local ns=$1 release=$2
  local args_json sa token
  args_json=$(kubectl get deployment "$release" -n "$ns" -o jsonpath='{.spec.template.spec.containers[0].args}') ||
    die "no Deployment $ns/$release: run helm install first"
  sa=$(kubectl get deployment "$release" -n "$ns" -o jsonpath='{.spec.template.spec.serviceAccountName}')
  # A week: long enough to explore; `make down` and the tour again give a fresh one.
  token=$(kubectl create token "$sa" -n "$ns" --duration 168h)

  local kubeconfig=$dir/$release-serviceaccount.kubeconfig
  (
    umask 077
    cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $(cat "$dir/server")
    certificate-authority: $dir/pki/ca.crt
users:
- name: $sa
  user:
    token: $token
contexts:
- name: $sa
  context:
    cluster: local
    user: $sa
current-context: $sa
EOF
  )

  local args=() words=$dir/$release-args
  # The arguments after `run` as NUL-separated words; --metrics-addr, --webhook-addr and --webhook-service take
  # the in-cluster values that start() replaces with loopback ones.
  python3 -c '
import json, sys
replaced = ("--metrics-addr", "--webhook-addr", "--webhook-service")
args, out, skip = json.loads(sys.argv[1]), [], False
if args[:1] == ["run"]:
    args = args[1:]
for a in args:
    if a.split("=")[0] in ("--webhook-cert-dir",) or a == "--webhook-addr=":
        sys.exit("hack/operator.sh chart runs the default webhook mode of the chart (self-managed certificates); this release sets " + a)
    if skip:
        skip = False
    elif a in replaced:
        skip = True
    elif a.split("=")[0] not in replaced:
        out.append(a)
sys.stdout.write("".join(a + "\0" for a in out))
' "$args_json" >"$words" || die "cannot run Deployment $ns/$release here"
  mapfile -d '' args <"$words"

  log "running Deployment $ns/$release as system:serviceaccount:$ns:$sa"
  start POD_NAME="$release-local" POD_NAMESPACE="$ns" -- "${args[@]}" --kubeconfig "$kubeconfig"
}

[[ -f "$dir/kubeconfig" ]] || die "no control plane in $dir: run make up (or make dev) first"
export KUBECONFIG=$dir/kubeconfig
# shellcheck source=hack/versions.sh
source "$root/hack/versions.sh"
export PATH=$K8S_BIN:$PATH
[[ -x $roster ]] || die "$roster is missing: run cargo build first"
if running; then
  [[ ${1:-} == dev ]] && { log "roster already runs (pid $(cat "$dir/roster.pid"))"; exit 0; }
  die "roster already runs beside this control plane (pid $(cat "$dir/roster.pid"), make dev?); make down stops both"
fi

case ${1:-} in
  # The identity providers examples/agency is bound to, named as a platform would name them.
  dev) start -- --kubeconfig "$KUBECONFIG" --webhook-config-name roster-dev \
    --identity-provider name=google,usernamePrefix=google: \
    --identity-provider name=entra,usernamePrefix=entra:,tenantKey=entra.example/tid ;;
  chart) chart "${2:-roster-system}" "${3:-roster}" ;;
  *) die "usage: hack/operator.sh dev | chart [NAMESPACE] [RELEASE]" ;;
esac
