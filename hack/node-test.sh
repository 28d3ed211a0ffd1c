#!/usr/bin/env bash
# Proves hack/node.sh on this machine (as root, with no other node running): the node becomes Ready
# and runs a pod; from inside the pod's network namespace the API server answers at the kubernetes
# Service's 10.0.0.1:443, while a ClusterIP nobody serves and an address off the machine fail here and
# at once (an unreachable route; the ROSTER-FORWARD reject, whose counter must rise), as does a
# ClusterIP from the host and a registry pull; and after `down` the machine is as it was before `up`:
# sysctls, iptables chains, links, routes, network namespaces, mounts, cgroups, directories outside
# DIR, processes.
#
#   hack/node-test.sh      (make node-test)   ends with "node-test: N passed, N failed"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/versions.sh
source hack/versions.sh

dir=${TMPDIR:-/tmp}/roster-node-test-$$
pause_image=localhost/roster/pause:$K8S_VERSION
unserved_ip=10.0.0.77   # in the Service range; no Service has it
offsite_ip=203.0.113.1  # TEST-NET-3: reachable only through the default route, off the machine
passed=0 failed=0

log() { echo "node-test: $*" >&2; }
check() { # description command...: runs the command, counts and reports the outcome
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1)); log "ok: $what"
  else
    failed=$((failed + 1)); log "FAILED: $what"
  fi
}

# What a node may change on the machine, printed so that two snapshots compare with diff.
snapshot() {
  local s ipt d h
  for s in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward net.ipv6.conf.all.forwarding \
    net.ipv4.conf.all.route_localnet; do
    echo "sysctl $s=$(sysctl -n "$s")"
  done
  # The first use of iptables (nft) on a machine instantiates a table with its built-in chains, empty
  # and accepting, which change no packet's path; `down` cannot remove them, so they do not count.
  for ipt in iptables ip6tables; do
    "$ipt-save" 2>/dev/null | grep -vE '^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT ' |
      sed -n "s/^:\([^ ]*\) \([^ ]*\).*/$ipt chain \1 \2/p" | sort
    "$ipt-save" 2>/dev/null | grep -c '^-A' | sed "s/^/$ipt rules /"
  done
  ip -o link | awk '{ print "link " $2 }'
  ip route | sed 's/^/route /'
  find /run/netns -mindepth 1 -printf "netns %f\n" 2>/dev/null | sort
  for d in /run/netns /run/containerd /var/lib/cni /var/log/containers /var/lib/kubelet /etc/kubernetes \
    /run/mount /run/roster-node "$dir"; do
    [[ -e $d ]] && echo "exists $d"
  done
  for h in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/mounts); do
    [[ -e $h/roster-node ]] && echo "cgroup $h/roster-node"
  done
  grep -F "$dir" /proc/self/mountinfo | awk '{ print "mount " $5 }'
  our_processes | sed 's/^/process /'
}

# The processes whose command line names DIR (grep reads DIR from a file so as not to find itself).
our_processes() { grep -lFf <(echo "$dir") /proc/[0-9]*/cmdline 2>/dev/null || true; }

# Connects to IP:PORT (argv) from the current network namespace; prints the errno's name, or
# "connected", or "timeout" (a packet that nothing answered: it may have left the machine).
connect_py='
import errno, socket, sys
s = socket.socket()
s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except socket.timeout:
    print("timeout")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
'

in_pod() { nsenter --net="/proc/$pod_pid/ns/net" "$@"; }

reject_count() { iptables -L ROSTER-FORWARD -nvx | awk '/REJECT/ { print $1 }'; }

fails_here() { # expected-errno ip port [in_pod]: the connection fails at once with that errno
  local want=$1 ip=$2 port=$3 got start
  start=$(date +%s%N)
  if [[ ${4:-} == in_pod ]]; then
    got=$(in_pod python3 -c "$connect_py" "$ip" "$port")
  else
    got=$(python3 -c "$connect_py" "$ip" "$port")
  fi
  local ms=$((($(date +%s%N) - start) / 1000000))
  log "  $ip:$port -> $got in ${ms}ms"
  [[ $got == "$want" ]] && ((ms < 1000))
}

# The pod's pause process: any process of the pod shares its network namespace, and the kubelet puts
# every one of them in a cgroup named after the pod's UID.
pod_pid_of() { # pod
  local uid
  uid=$(kubectl get pod "$1" -o 'jsonpath={.metadata.uid}')
  local cg
  # awk, not head: head would stop reading, and find, killed by SIGPIPE, would fail the pipe.
  cg=$(find /sys/fs/cgroup/*/roster-node /sys/fs/cgroup/roster-node -type d -name "pod$uid" 2>/dev/null | awk 'NR == 1')
  [[ -n $cg ]] || { log "no cgroup for pod $1 ($uid)"; return 1; }
  find "$cg" -name cgroup.procs -exec cat {} + | awk 'NR == 1'
}

pod() { # name image pull-policy
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: default}
spec:
  automountServiceAccountToken: false
  containers: [{name: main, image: "$2", imagePullPolicy: $3}]
EOF
}

pull_fails_on_loopback() {
  pod pull docker.io/library/busybox:1 IfNotPresent
  local msg
  for _ in $(seq 1 60); do
    msg=$(kubectl get pod pull -o 'jsonpath={.status.containerStatuses[0].state.waiting.message}')
    [[ -n $msg && $msg != *ContainerCreating* ]] && break
    sleep 0.5
  done
  log "  pull: $msg"
  [[ $msg == *127.0.0.1:9* ]]
}

apiserver_from_pod() {
  local out
  out=$(in_pod curl -s --max-time 5 --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")" \
    https://10.0.0.1:443/readyz)
  log "  https://10.0.0.1:443/readyz -> $out"
  [[ $out == ok ]]
}

offsite_rejected_by_forward_rule() {
  local before after
  before=$(reject_count)
  fails_here EHOSTUNREACH "$offsite_ip" 80 in_pod || return 1
  after=$(reject_count)
  log "  ROSTER-FORWARD rejected $((after - before)) packet(s)"
  ((after > before))
}

nothing_left() {
  [[ ! -e $dir ]] && ! grep -qF "$dir" /proc/self/mountinfo &&
    [[ -z "$(our_processes)" ]]
}

[[ $(id -u) == 0 ]] || { log "needs root"; exit 1; }
before=$(snapshot)
trap 'hack/node.sh down "$dir" >/dev/null 2>&1 || true' EXIT

start=$SECONDS
KUBECONFIG=$(hack/node.sh up "$dir")
export KUBECONFIG PATH=$K8S_BIN:$PATH
log "node up in $((SECONDS - start))s"
check "the node is Ready" hack/node.sh status "$dir"
check "an image archive imports into the node (hack/node.sh import)" \
  hack/node.sh import "$ROSTER_CACHE/pause-$K8S_VERSION/pause.tar" "$dir"
pod probe "$pause_image" Never
check "a pod of the imported image runs" kubectl wait --for=condition=Ready pod/probe --timeout=60s
check "the API server reaches the kubelet (kubectl logs)" kubectl logs probe
pod_pid=$(pod_pid_of probe) || pod_pid=0
log "the pod's process: $pod_pid"
check "from the pod, the API server answers at 10.0.0.1:443" apiserver_from_pod
check "from the pod, a ClusterIP nobody serves fails here, at once" fails_here EHOSTUNREACH "$unserved_ip" 443 in_pod
check "from the pod, an address off the machine is rejected by ROSTER-FORWARD" offsite_rejected_by_forward_rule
check "from the host, a ClusterIP nobody serves fails here, at once" fails_here EHOSTUNREACH "$unserved_ip" 443
check "a registry pull goes to the closed loopback proxy, not off the machine" pull_fails_on_loopback

start=$SECONDS
hack/node.sh down "$dir"
log "node down in $((SECONDS - start))s"
trap - EXIT
after=$(snapshot)
check "after down, nothing of the node is left (DIR, mounts, processes)" nothing_left
check "after down, the machine is as before up" diff <(echo "$before") <(echo "$after")

echo "node-test: $passed passed, $failed failed"
((failed == 0))
