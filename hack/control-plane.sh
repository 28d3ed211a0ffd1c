#!/usr/bin/env bash
# A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager, built by
# hack/build-control-plane.sh from the published Go modules.
#
#   hack/control-plane.sh up   [DIR] [--node]  start (or reuse a running one) and print its kubeconfig path
#   hack/control-plane.sh down [DIR]   stop what `up` started (by pid) and remove DIR
#   hack/control-plane.sh env  [DIR]   print `export KUBECONFIG=...` and PATH lines for eval
#   hack/control-plane.sh status [DIR] exit 0 when it runs and answers /readyz
#
# DIR defaults to $ROSTER_CONTROL_PLANE_DIR or ${TMPDIR:-/tmp}/roster-control-plane. Ports are picked
# free at start, so several control planes (one per test binary, say) can run side by side.
#
# --node readies the control plane for the node hack/node.sh runs beside it: it adds kube-scheduler,
# the controllers pods need (deployments, replica sets, stateful and daemon sets, jobs, endpoints and
# endpoint slices, node lifecycle, pod garbage collection, disruption budgets), the Node authorizer
# and NodeRestriction for the kubelet's identity (node.kubeconfig, user system:node:roster-node), a
# client certificate the API server presents to the kubelet, and --enable-aggregator-routing so that
# the API server calls webhooks and aggregated APIs at their pods' IPs: there is no kube-proxy, and a
# Service's ClusterIP is not routed anywhere. Without --node, nothing of this runs.
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.sh
source "$hack/versions.sh"

cmd=${1:-}
dir=${ROSTER_CONTROL_PLANE_DIR:-${TMPDIR:-/tmp}/roster-control-plane}
node=false
for arg in "${@:2}"; do
  case "$arg" in
    --node) node=true ;;
    -*) echo "control-plane: unknown option $arg" >&2; exit 2 ;;
    *) dir=$arg ;;
  esac
done
components=(etcd kube-apiserver kube-controller-manager)
# The node's name; hack/node.sh's kubelet registers under it.
node_name=roster-node

log() { echo "control-plane: $*" >&2; }
die() { log "error: $*"; exit 1; }

alive() { # component
  local pid
  [[ -f "$dir/$1.pid" ]] || return 1
  pid=$(cat "$dir/$1.pid")
  # A pid from a stale directory may have been reused: it counts only if it still runs our binary.
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "/$1 "
}

readyz() {
  [[ -f "$dir/kubeconfig" ]] || return 1
  curl -sf --max-time 2 --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")" \
    "$(cat "$dir/server")/readyz" >/dev/null 2>&1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A process that has exited but is not yet reaped (a zombie: where PID 1 reaps slowly, for seconds)
# has stopped for our purposes.
running() { # pid
  local state
  state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) && [[ -n $state && $state != Z ]]
}

stop() {
  local c pid
  # `make dev` runs the operator beside the control plane; it goes first.
  for c in roster kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if alive "$c"; then
      pid=$(cat "$dir/$c.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do running "$pid" || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
}

pki() {
  local p=$dir/pki
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=roster-local-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$p/apiserver.key" \
    -out "$p/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n' >"$p/apiserver.ext"
  openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -days 3650 -extfile "$p/apiserver.ext" -out "$p/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  webhook_client_pki
}

# The API server authenticates itself to admission webhooks with a client certificate from a CA of
# its own, so that a webhook can tell the API server's calls from anyone else's (roster's
# --webhook-client-ca takes webhook-client-ca.crt).
webhook_client_pki() {
  local p=$dir/pki
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=roster-local-webhook-client-ca" \
    -keyout "$p/webhook-client-ca.key" -out "$p/webhook-client-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver-webhook-client" \
    -keyout "$p/webhook-client.key" -out "$p/webhook-client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$p/webhook-client.ext"
  openssl x509 -req -in "$p/webhook-client.csr" -CA "$p/webhook-client-ca.crt" \
    -CAkey "$p/webhook-client-ca.key" -CAcreateserial -days 3650 -extfile "$p/webhook-client.ext" \
    -out "$p/webhook-client.crt" 2>/dev/null
  # '*' matches every webhook host: tests serve webhooks on loopback at ports picked at random.
  cat >"$dir/webhook-client.kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
- name: '*'
  user:
    client-certificate: $p/webhook-client.crt
    client-key: $p/webhook-client.key
EOF
  cat >"$dir/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $dir/webhook-client.kubeconfig
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $dir/webhook-client.kubeconfig
EOF
}

write_kubeconfig() { # file server token user
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: roster-local
  cluster:
    server: $2
    certificate-authority: $dir/pki/ca.crt
users:
- name: $4
  user:
    token: $3
contexts:
- name: roster-local
  context:
    cluster: roster-local
    user: $4
current-context: roster-local
EOF
}

# Removes DIR, but only when it is a control plane's directory (or empty): `up .` must never delete
# a checkout. Nor while something is mounted under it (a node's containers and volumes): rm -rf would
# delete through the mounts.
remove_dir() {
  [[ -e "$dir" ]] || return 0
  if awk -v d="$(realpath "$dir")/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    die "something is mounted under $dir (a node's?): run hack/node.sh down $dir first"
  fi
  if [[ -f "$dir/.roster-control-plane" || -f "$dir/tokens.csv" || -z "$(ls -A "$dir")" ]]; then
    rm -rf "$dir"
  else
    die "$dir is not a control plane's directory; refusing to delete it"
  fi
}

start() {
  for c in "${components[@]}"; do
    [[ -x "$K8S_BIN/$c" ]] || die "$K8S_BIN/$c is missing: run hack/build-control-plane.sh first"
  done
  remove_dir
  mkdir -p "$dir/etcd" "$dir/logs"
  touch "$dir/.roster-control-plane"
  pki

  local etcd_port peer_port api_port kcm_port token kcm_token sched_token node_token
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port); kcm_port=$(free_port)
  token=$(openssl rand -hex 24); kcm_token=$(openssl rand -hex 24)
  echo "$token" >"$dir/admin.token"
  # The admin is in system:masters. The controller manager is what kubeadm makes it: the user
  # system:kube-controller-manager (bootstrap RBAC), each controller with its own service account.
  printf '%s,roster-admin,roster-admin,"system:masters"\n%s,system:kube-controller-manager,kcm\n' \
    "$token" "$kcm_token" >"$dir/tokens.csv"
  echo "https://127.0.0.1:$api_port" >"$dir/server"
  if $node; then
    touch "$dir/.node"
    node_pki
    # The scheduler and the kubelet are what kubeadm makes them: the user system:kube-scheduler
    # (bootstrap RBAC), and the node's own user in system:nodes, which the Node authorizer serves.
    sched_token=$(openssl rand -hex 24); node_token=$(openssl rand -hex 24)
    printf '%s,system:kube-scheduler,kube-scheduler\n%s,system:node:%s,kubelet-%s,"system:nodes"\n' \
      "$sched_token" "$node_token" "$node_name" "$node_name" >>"$dir/tokens.csv"
  fi

  "$K8S_BIN/etcd" --name roster --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "roster=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn \
    >"$dir/logs/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"

  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
    alive etcd || die "etcd exited; see $dir/logs/etcd.log: $(tail -n 3 "$dir/logs/etcd.log")"
    sleep 0.1
  done

  # Without --node: RBAC alone, nothing else.
  local apiserver_mode_flags=(--authorization-mode RBAC)
  if $node; then
    # The kubelet is called at its InternalIP only: resolving the node's name would ask a DNS server
    # off the machine.
    apiserver_mode_flags=(--authorization-mode "Node,RBAC" --enable-admission-plugins NodeRestriction
      --enable-aggregator-routing=true
      --kubelet-client-certificate "$dir/pki/kubelet-client.crt" --kubelet-client-key "$dir/pki/kubelet-client.key"
      --kubelet-certificate-authority "$dir/pki/ca.crt" --kubelet-preferred-address-types InternalIP)
  fi
  # No default route on some machines, so always advertise loopback and skip the endpoint reconciler.
  "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$api_port" \
    --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --admission-control-config-file "$dir/admission.yaml" \
    --token-auth-file "$dir/tokens.csv" \
    --service-account-issuer "https://kubernetes.default.svc" \
    --service-account-key-file "$dir/pki/sa.pub" \
    --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --profiling=false \
    "${apiserver_mode_flags[@]}" \
    >"$dir/logs/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"

  write_kubeconfig "$dir/kubeconfig" "https://127.0.0.1:$api_port" "$token" roster-admin
  write_kubeconfig "$dir/kcm.kubeconfig" "https://127.0.0.1:$api_port" "$kcm_token" kcm
  if $node; then
    write_kubeconfig "$dir/scheduler.kubeconfig" "https://127.0.0.1:$api_port" "$sched_token" kube-scheduler
    write_kubeconfig "$dir/node.kubeconfig" "https://127.0.0.1:$api_port" "$node_token" "system:node:$node_name"
  fi

  for i in $(seq 1 600); do
    readyz && break
    alive kube-apiserver || die "kube-apiserver exited; see $dir/logs/kube-apiserver.log: $(tail -n 5 "$dir/logs/kube-apiserver.log")"
    ((i == 600)) && die "kube-apiserver not ready after 60s; see $dir/logs/kube-apiserver.log"
    sleep 0.1
  done

  local controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller
  $node && controllers+=,$node_controllers
  "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$dir/kcm.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --controllers "$controllers" \
    --service-account-private-key-file "$dir/pki/sa.key" \
    --root-ca-file "$dir/pki/ca.crt" \
    --use-service-account-credentials \
    --leader-elect=false \
    >"$dir/logs/kube-controller-manager.log" 2>&1 &
  echo $! >"$dir/kube-controller-manager.pid"

  local kubectl=("$K8S_BIN/kubectl" --kubeconfig "$dir/kubeconfig")
  for i in $(seq 1 300); do
    if "${kubectl[@]}" get namespace default kube-system >/dev/null 2>&1; then break; fi
    ((i == 300)) && die "namespaces default and kube-system did not appear in 30s"
    sleep 0.1
  done
  alive kube-controller-manager || die "kube-controller-manager exited; see $dir/logs/kube-controller-manager.log"
  if $node; then start_node_parts; fi
}

# What pods need beyond the default set: their owners' controllers, Services' endpoints (the API
# server routes to them), the node's lifecycle (it lifts the not-ready taint), and clean-up.
node_controllers=deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,job-controller,ttl-after-finished-controller,endpoints-controller,endpointslice-controller,endpointslice-mirroring-controller,node-lifecycle-controller,taint-eviction-controller,pod-garbage-collector-controller,disruption-controller,ttl-controller

# The client certificate the API server presents to the kubelet (logs, exec, port-forward), signed by
# the cluster CA that the kubelet trusts; its user is bound to system:kubelet-api-admin below.
node_pki() {
  local p=$dir/pki
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver-kubelet-client" \
    -keyout "$p/kubelet-client.key" -out "$p/kubelet-client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$p/kubelet-client.ext"
  openssl x509 -req -in "$p/kubelet-client.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -days 3650 -extfile "$p/kubelet-client.ext" -out "$p/kubelet-client.crt" 2>/dev/null
}

start_node_parts() {
  local port
  port=$(free_port)
  "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$port" \
    --leader-elect=false \
    >"$dir/logs/kube-scheduler.log" 2>&1 &
  echo $! >"$dir/kube-scheduler.pid"
  "$K8S_BIN/kubectl" --kubeconfig "$dir/kubeconfig" create clusterrolebinding roster-kube-apiserver-kubelet-client \
    --clusterrole system:kubelet-api-admin --user kube-apiserver-kubelet-client >/dev/null \
    || die "could not bind the API server's kubelet client to system:kubelet-api-admin"
  sleep 0.5
  alive kube-scheduler || die "kube-scheduler exited; see $dir/logs/kube-scheduler.log: $(tail -n 5 "$dir/logs/kube-scheduler.log")"
}

case "$cmd" in
  up)
    if alive kube-apiserver && alive etcd && readyz; then
      if $node && [[ ! -f "$dir/.node" ]]; then
        die "a control plane without --node runs in $dir; stop it first (hack/control-plane.sh down $dir)"
      fi
      log "already running in $dir (hack/control-plane.sh down to stop it)"
    else
      if [[ -d "$dir" ]]; then
        log "cleaning up a stale control plane in $dir"
        stop
      fi
      if $node; then
        [[ $K8S_VERSION == "$K8S_NEWEST" ]] || die "a node runs $K8S_NEWEST only (ROSTER_K8S_VERSION=$K8S_VERSION)"
        [[ -x "$K8S_BIN/kube-scheduler" ]] || die "$K8S_BIN/kube-scheduler is missing: run hack/build-control-plane.sh first"
        log "starting etcd, kube-apiserver, kube-controller-manager and kube-scheduler $K8S_VERSION for a node in $dir"
      else
        log "starting etcd, kube-apiserver and kube-controller-manager $K8S_VERSION in $dir"
      fi
      start
      log "ready at $(cat "$dir/server")"
    fi
    echo "$dir/kubeconfig"
    ;;
  down)
    stop
    remove_dir
    log "stopped"
    ;;
  env)
    [[ -f "$dir/kubeconfig" ]] || die "no control plane in $dir; run hack/control-plane.sh up"
    printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
    printf 'export PATH=%q:%q:"$PATH"\n' "$K8S_BIN" "$HELM_BIN"
    ;;
  status)
    alive kube-apiserver && readyz
    ;;
  *)
    echo "usage: $0 up|down|env|status [DIR] [--node]" >&2
    exit 2
    ;;
esac
