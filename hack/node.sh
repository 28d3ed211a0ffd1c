#!/usr/bin/env bash
# A one-node Kubernetes cluster on this machine: the control plane of hack/control-plane.sh (--node)
# and beside it a node, all from the project's own files: a containerd of its own, runc, the CNI
# bridge plugin, a kubelet built by hack/build-control-plane.sh and a sandbox ("pause") image built
# from the kubernetes module's pause.c. Needs root and hack/install-deps.sh's packages.
#
#   hack/node.sh up     [DIR]        start (or reuse a running one); print the kubeconfig path once
#                                    the node is Ready and schedulable
#   hack/node.sh down   [DIR]        stop everything and undo every change to the machine
#   hack/node.sh import IMAGE.tar [DIR]  import an OCI layout or docker archive into the node's
#                                    containerd (namespace k8s.io)
#   hack/node.sh env    [DIR]        print export lines for eval: KUBECONFIG, PATH, and
#                                    CONTAINERD_ADDRESS/CONTAINERD_NAMESPACE for ctr
#   hack/node.sh status [DIR]        exit 0 when the node is Ready
#
# DIR defaults to $ROSTER_NODE_DIR or ${TMPDIR:-/tmp}/roster-cluster; the control plane's files are in
# DIR, the node's in DIR/node, logs in DIR/logs. Nothing is ever pulled: pods use images imported
# with `import` under a fully qualified name (localhost/NAME:TAG) with imagePullPolicy Never or
# IfNotPresent; the sandbox image is localhost/roster/pause:$K8S_VERSION, which a pod can run too.
#
# Unlike control planes, a node takes parts of the machine that exist once: the bridge roster0 with
# the pod range 10.244.0.0/24 (its address 10.244.0.1 is the node IP), ports 10250 and 10248, sysctls
# (the kubelet sets vm.overcommit_memory, vm.panic_on_oom, kernel.panic, kernel.panic_on_oops and the
# kernel.keys quotas; forwarding needs ip_forward), iptables chains, the cgroup roster-node, network
# namespaces in /run/netns. So one node runs at a time: /run/roster-node names its DIR, and `up`
# refuses while another holds the machine. `up` records in DIR/node/undo what it is about to change
# before it changes it, and `down` undoes it from that record, also after a crash.
#
# No traffic leaves the machine. Pods reach the API server at the kubernetes Service's 10.0.0.1:443,
# which is DNATed to the API server on loopback; the rest of the Service range is routed nowhere (an
# unreachable route: a connection fails at once, on this machine); the bridge plugin does not
# masquerade, and the chain ROSTER-FORWARD rejects whatever pods send anywhere but the bridge; pods
# get an empty resolv.conf (no DNS server to ask); containerd's registry traffic goes to a proxy on a
# closed loopback port, so a pull fails here instead of reaching a registry. hack/node-test.sh proves
# it.
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.sh
source "$hack/versions.sh"

cmd=${1:-}
if [[ "$cmd" == import ]]; then
  image_tar=${2:-}
  dir=${3:-${ROSTER_NODE_DIR:-${TMPDIR:-/tmp}/roster-cluster}}
else
  dir=${2:-${ROSTER_NODE_DIR:-${TMPDIR:-/tmp}/roster-cluster}}
fi
dir=$(realpath -m "$dir")
n=$dir/node

node_name=roster-node # the kubelet's token in hack/control-plane.sh --node is for this name
bridge=roster0
node_ip=10.244.0.1
pod_cidr=10.244.0.0/24
service_cidr=10.0.0.0/24 # hack/control-plane.sh's --service-cluster-ip-range
kubernetes_ip=10.0.0.1
pause_image=localhost/roster/pause:$K8S_VERSION
pause_tar=$ROSTER_CACHE/pause-$K8S_VERSION/pause.tar
marker=/run/roster-node
cgroup_name=roster-node
sock=$n/containerd/containerd.sock
# What the kubelet sets (its setupKernelTunables), and forwarding, which a pod's packets need.
sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward)
# Directories outside DIR that containerd, the CNI plugins and the kubelet create where they are
# missing (their locations are compiled in); `down` removes what is left of those it created.
outside_dirs=(/run/netns /run/containerd /var/lib/cni /var/log/containers /var/lib/kubelet /etc/kubernetes
  /run/mount)
kubectl=("$K8S_BIN/kubectl" --kubeconfig "$dir/kubeconfig")

log() { echo "node: $*" >&2; }
die() { log "error: $*"; exit 1; }
# `down` goes on past a step that fails, so that one failure does not leave the rest in place.
try() { "$@" || log "warning: $* failed; going on"; }

alive() { # name: its pid file is DIR/node/NAME.pid; the pid counts only while it runs that binary
  local pid
  [[ -f "$n/$1.pid" ]] || return 1
  pid=$(cat "$n/$1.pid")
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$1 "
}

ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }

ready() { # the node is Ready and carries no taint (the not-ready taint stops scheduling)
  [[ -f "$dir/kubeconfig" ]] || return 1
  local out
  out=$("${kubectl[@]}" get node "$node_name" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.taints}' 2>/dev/null) || return 1
  [[ "$out" == "True " ]]
}

record() { echo "$*" >>"$n/undo"; } # a line of the undo record, written before the change it undoes

# ---------------------------------------------------------------------------------------------------
# up

preflight() {
  [[ $(id -u) == 0 ]] || die "a node needs root (network, mounts, cgroups, sysctls)"
  local c
  for c in containerd containerd-shim-runc-v2 runc ctr iptables iptables-save iptables-restore ip ss nsenter; do
    command -v "$c" >/dev/null 2>&1 || die "$c is missing: run hack/install-deps.sh"
  done
  for c in bridge host-local loopback; do
    [[ -x /usr/lib/cni/$c ]] || die "the CNI plugin /usr/lib/cni/$c is missing: run hack/install-deps.sh"
  done
  for c in kubelet kube-scheduler kube-apiserver kubectl; do
    [[ -x "$K8S_BIN/$c" ]] || die "$K8S_BIN/$c is missing: run hack/build-control-plane.sh"
  done
  # A unix socket's path has at most 107 bytes; containerd adds ".ttrpc" to its own.
  ((${#sock} + 6 <= 107)) || die "DIR $dir is too long for containerd's socket path; choose a shorter one"
}

# One node per machine: refuse, naming the owner when known, while anything machine-wide is taken.
machine_free() {
  if [[ -f $marker && $(cat "$marker") != "$dir" ]]; then
    die "the node in $(cat "$marker") holds this machine's node resources; stop it first: hack/node.sh down $(cat "$marker")"
  fi
  ip link show "$bridge" >/dev/null 2>&1 &&
    die "the bridge $bridge exists but no node records it ($marker is missing); remove it once nothing uses it: ip link delete $bridge"
  iptables-save 2>/dev/null | grep -q '^:ROSTER-' &&
    die "iptables chains ROSTER-* exist but no node records them; see iptables-save | grep ROSTER"
  [[ -z "$(ss -Hltn '( sport = :10250 or sport = :10248 )')" ]] ||
    die "ports 10250/10248 (a kubelet's) are taken: $(ss -Hltnp '( sport = :10250 or sport = :10248 )' | head -n 2)"
  local net
  for net in "$service_cidr" "$pod_cidr"; do
    # A route to any address of the range other than the default one, or within it, would be
    # shadowed or broken by ours: this machine's own network may use these private addresses.
    if ip -4 route show to match "${net%/*}" | grep -v '^default' | grep -q . || ip -4 route show root "$net" | grep -q .; then
      die "this machine already routes addresses of $net ($(ip -4 route show to match "${net%/*}" | grep -v '^default' | head -n 1)); a node needs them"
    fi
  done
}

save_machine_state() {
  local s
  echo "$dir" >"$marker"
  record marker
  for s in "${sysctls[@]}"; do record sysctl "$s" "$(sysctl -n "$s")"; done
  for s in "${outside_dirs[@]}"; do [[ -e $s ]] || record created "$s"; done
  # Chains the kubelet or the CNI plugins might add, and that were here before (so are not ours).
  local ipt table
  for ipt in iptables ip6tables; do
    for table in filter nat mangle raw; do
      "$ipt-save" -t "$table" 2>/dev/null | sed -n "s/^:\([^ ]*\).*/$ipt $table \1/p"
    done
  done >"$n/chains.before"
  find /run/netns -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null >"$n/netns.before" || true
}

network() {
  record bridge "$bridge"
  ip link add "$bridge" type bridge
  ip addr add "$node_ip/${pod_cidr#*/}" dev "$bridge"
  ip link set "$bridge" up
  # DNATed packets for the API server arrive on the bridge for 127.0.0.1, which the kernel drops as
  # martians unless the bridge allows loopback destinations.
  sysctl -qw "net.ipv4.conf.$bridge.route_localnet=1"
  sysctl -qw net.ipv4.ip_forward=1
  record route "unreachable $service_cidr"
  ip route add unreachable "$service_cidr"

  local port
  port=$(sed 's/.*://' "$dir/server")
  record chains ROSTER
  iptables -t nat -N ROSTER-PREROUTING
  iptables -t nat -A ROSTER-PREROUTING -s "$pod_cidr" -d "$kubernetes_ip/32" -p tcp --dport 443 \
    -j DNAT --to-destination "127.0.0.1:$port"
  iptables -t nat -I PREROUTING 1 -j ROSTER-PREROUTING
  # Forwarding only between pods: what a pod sends elsewhere (the default route, off the machine) is
  # rejected here, and so is what comes into the bridge from another interface.
  iptables -N ROSTER-FORWARD
  iptables -A ROSTER-FORWARD -i "$bridge" -o "$bridge" -j RETURN
  iptables -A ROSTER-FORWARD -j REJECT --reject-with icmp-admin-prohibited
  iptables -I FORWARD 1 -i "$bridge" -j ROSTER-FORWARD
  iptables -I FORWARD 1 -o "$bridge" -j ROSTER-FORWARD
}

cgroup_hierarchies() { awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/mounts; }

# The kubelet's cgroupRoot: pods' cgroups go under it, so that `down` finds every pod process there.
cgroups() {
  local h
  record cgroups "$cgroup_name"
  for h in $(cgroup_hierarchies); do
    mkdir -p "$h/$cgroup_name"
    # A new v1 cpuset cgroup has no CPUs or memory nodes until given its parent's.
    if [[ -f "$h/cpuset.cpus" && ! -f "$h/cgroup.subtree_control" ]]; then
      cat "$h/cpuset.cpus" >"$h/$cgroup_name/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h/$cgroup_name/cpuset.mems"
    fi
  done
}

# The sandbox image, an OCI layout written with tar and sha256sum: one layer with the static pause
# binary built from the kubernetes module's own pause.c. Cached: it changes with the module only.
build_pause_image() {
  [[ -f "$pause_tar" ]] && return 0
  local src work arch
  src=$(cd "$K8S_MODULES" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  [[ -f "$src" ]] || die "pause.c not found at $src (go mod download in $K8S_MODULES?)"
  command -v gcc >/dev/null || die "gcc is missing: run hack/install-deps.sh"
  log "building the sandbox image $pause_image from $src"
  work=$(mktemp -d)
  mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
  gcc -Os -Wall -Werror -static -DVERSION="roster-$K8S_VERSION" -o "$work/rootfs/pause" "$src" ||
    die "compiling $src failed (gcc -static needs libc6-dev)"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/rootfs" -cf "$work/layer.tar" pause
  arch=$(dpkg --print-architecture 2>/dev/null || go env GOARCH)
  local diff_id layer config manifest
  diff_id=$(sha256sum <"$work/layer.tar" | cut -d' ' -f1)
  gzip -n <"$work/layer.tar" >"$work/layer.tar.gz"
  layer=$(blob "$work" "$work/layer.tar.gz")
  printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$diff_id" >"$work/config.json"
  config=$(blob "$work" "$work/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json",%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",%s}]}' \
    "$config" "$layer" >"$work/manifest.json"
  manifest=$(blob "$work" "$work/manifest.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$pause_image" "$pause_image" >"$work/oci/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
  mkdir -p "$(dirname "$pause_tar")"
  tar -C "$work/oci" -cf "$pause_tar.tmp" oci-layout index.json blobs
  mv "$pause_tar.tmp" "$pause_tar"
  rm -rf "$work"
}

blob() { # work file: store FILE as a blob of the layout; print its descriptor's digest and size
  local digest size
  digest=$(sha256sum <"$2" | cut -d' ' -f1)
  size=$(stat -c %s "$2")
  cp "$2" "$1/oci/blobs/sha256/$digest"
  printf '"digest":"sha256:%s","size":%s' "$digest" "$size"
}

start_containerd() {
  mkdir -p "$n/containerd" "$n/cni/net.d" "$n/cni/networks"
  cat >"$n/containerd/config.toml" <<EOF
# hack/node.sh's containerd: everything it keeps is under $n/containerd.
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$n/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  stream_server_address = "127.0.0.1"
  # Without CAP_SYS_RESOURCE (virtual machines' bounding sets may lack it) runc cannot lower a
  # container's oom_score_adj below its own, and every sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$n/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni/net.d"
    max_conf_num = 1
EOF
  # Pods on the bridge; no masquerading (nothing leaves); host-local keeps its leases under DIR.
  cat >"$n/cni/net.d/10-roster.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "roster",
  "plugins": [{
    "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {
      "type": "host-local", "dataDir": "$n/cni/networks",
      "ranges": [[{ "subnet": "$pod_cidr", "gateway": "$node_ip" }]],
      "routes": [{ "dst": "0.0.0.0/0" }]
    }
  }]
}
EOF
  # A registry pull goes to a proxy on a closed loopback port and fails on this machine.
  HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY='' \
    setsid containerd --config "$n/containerd/config.toml" >"$dir/logs/containerd.log" 2>&1 &
  echo $! >"$n/containerd.pid"
  for _ in $(seq 1 100); do
    ctr_ version >/dev/null 2>&1 && return 0
    alive containerd || die "containerd exited; see $dir/logs/containerd.log: $(tail -n 5 "$dir/logs/containerd.log")"
    sleep 0.1
  done
  die "containerd did not answer on $sock in 10s; see $dir/logs/containerd.log"
}

import_pause_image() {
  ctr_ images import "$pause_tar" >"$dir/logs/pause-import.log" 2>&1 ||
    die "importing $pause_tar failed; see $dir/logs/pause-import.log (delete the tar to rebuild it)"
  ctr_ images check "name==$pause_image" | grep -q complete ||
    die "$pause_image is not in containerd after the import; see $dir/logs/pause-import.log"
}

kubelet_pki() {
  local p=$n/pki
  mkdir -p "$p"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=system:node:$node_name/O=system:nodes" \
    -keyout "$p/kubelet.key" -out "$p/kubelet.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$node_ip" "$node_name" >"$p/kubelet.ext"
  openssl x509 -req -in "$p/kubelet.csr" -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$p/kubelet.ext" -out "$p/kubelet.crt" 2>/dev/null
}

start_kubelet() {
  kubelet_pki
  mkdir -p "$n/kubelet" "$n/pod-logs"
  # No nameserver: a pod's DNS lookup fails inside the pod instead of asking the host's resolver.
  : >"$n/resolv.conf"
  cat >"$n/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Serve on the node IP only, never on every interface.
address: $node_ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
containerRuntimeEndpoint: unix://$sock
# cgroup v1 (hybrid) without systemd: cgroupfs, pods under a root of our own.
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_name
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $n/pki/kubelet.crt
tlsPrivateKeyFile: $n/pki/kubelet.key
resolvConf: $n/resolv.conf
podLogsDir: $n/pod-logs
volumePluginDir: $n/kubelet/volume-plugins
# Imported images cannot be pulled again: never collect them. A full developer disk must not evict.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
EOF
  setsid "$K8S_BIN/kubelet" --config "$n/kubelet/config.yaml" --kubeconfig "$dir/node.kubeconfig" \
    --root-dir "$n/kubelet/root" --hostname-override "$node_name" --node-ip "$node_ip" \
    >"$dir/logs/kubelet.log" 2>&1 &
  echo $! >"$n/kubelet.pid"
}

wait_ready() {
  for _ in $(seq 1 600); do
    ready && return 0
    alive kubelet || die "the kubelet exited; see $dir/logs/kubelet.log: $(tail -n 5 "$dir/logs/kubelet.log")"
    alive containerd || die "containerd exited; see $dir/logs/containerd.log: $(tail -n 5 "$dir/logs/containerd.log")"
    sleep 0.1
  done
  die "node $node_name not Ready and untainted after 60s; see $dir/logs/kubelet.log and: kubectl describe node $node_name"
}

up() {
  preflight
  if alive kubelet && alive containerd && ready; then
    log "already running in $dir (hack/node.sh down $dir to stop it)"
    echo "$dir/kubeconfig"
    return 0
  fi
  if [[ -e "$n" || ( -f $marker && $(cat "$marker") == "$dir" ) ]]; then
    log "cleaning up a stale node in $dir"
    down
  fi
  machine_free
  build_pause_image
  log "starting a control plane for a node in $dir"
  "$hack/control-plane.sh" up "$dir" --node >/dev/null
  mkdir -p "$n"
  # From here on, a failure leaves a record that `down` (or the next `up`) undoes; the logs stay
  # until then.
  trap 'log "up failed; the logs are in $dir/logs; undo it with: hack/node.sh down $dir"' EXIT
  save_machine_state
  network
  cgroups
  log "starting containerd, importing $pause_image, starting the kubelet"
  start_containerd
  import_pause_image
  start_kubelet
  wait_ready
  trap - EXIT
  log "node $node_name Ready (node IP $node_ip, pods $pod_cidr)"
  echo "$dir/kubeconfig"
}

# ---------------------------------------------------------------------------------------------------
# down: every step tolerates that what it undoes is already gone.

# A process that has exited but is not yet reaped (a zombie: where PID 1 reaps slowly, for seconds)
# is gone for our purposes.
running() { # pid
  local state
  state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) && [[ -n $state && $state != Z ]]
}

# SIGKILL at once: everything the kubelet and containerd keep is under DIR, which goes too.
kill_pid() { # name
  alive "$1" || return 0
  local pid
  pid=$(cat "$n/$1.pid")
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do running "$pid" || return 0; sleep 0.1; done
}

# The shims of our containerd, found by the socket they were given (unique to DIR).
our_shims() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "^[^ ]*containerd-shim[^ ]* .*-address $sock " && echo "${p#/proc/}"
  done
}

# Every process in the pods' cgroups: the containers and whatever they forked.
pod_pids() {
  local h
  for h in $(cgroup_hierarchies); do
    [[ -d "$h/$cgroup_name" ]] && find "$h/$cgroup_name" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}

stop_processes() {
  local pids
  kill_pid kubelet
  kill_pid containerd
  mapfile -t pids < <(our_shims)
  ((${#pids[@]} == 0)) || kill -9 "${pids[@]}" 2>/dev/null || true
}

kill_pods() {
  local pids
  for _ in $(seq 1 50); do
    mapfile -t pids < <(pod_pids)
    ((${#pids[@]} == 0)) && return 0
    kill -9 "${pids[@]}" 2>/dev/null || true
    sleep 0.1
  done
  log "warning: processes left in the cgroup $cgroup_name: $(pod_pids | tr '\n' ' ')"
}

unmount_dir() {
  local m
  # Deepest first: containers' root file systems, their /dev/shm, the kubelet's volumes.
  awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" || log "warning: could not unmount $m"
  done
}

# The pods' network namespaces (containerd 1.6 puts them in /run/netns, named cni-*): those that were
# not there before `up` (without that record, containerd had not started: none is ours). Removing
# one removes the pod's end of its veth pair and so the bridge's end too.
remove_netns() {
  local ns
  [[ -d /run/netns && -f "$n/netns.before" ]] || return 0
  for ns in /run/netns/cni-*; do
    [[ -e "$ns" ]] || continue
    grep -qxF "${ns##*/}" "$n/netns.before" && continue
    umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
}

remove_cgroups() {
  local h
  for h in $(cgroup_hierarchies); do
    [[ -d "$h/$cgroup_name" ]] || continue
    find "$h/$cgroup_name" -depth -type d -exec rmdir {} + 2>/dev/null ||
      log "warning: could not remove every cgroup under $h/$cgroup_name"
  done
}

# Our chains (ROSTER-*) and those the kubelet and CNI plugins added (KUBE-*, CNI-*) that were not
# there before `up` (without that record, the kubelet had not started: only ROSTER-* are ours). The
# rules that jump to them go first, then the chains; one transaction a table.
remove_chains() {
  local ipt table save chains c
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    for table in filter nat mangle raw; do
      save=$("$ipt-save" -t "$table" 2>/dev/null) || continue
      chains=()
      for c in $(sed -n 's/^:\(ROSTER-[^ ]*\|KUBE-[^ ]*\|CNI-[^ ]*\) .*/\1/p' <<<"$save"); do
        if [[ $c != ROSTER-* ]] && { [[ ! -f "$n/chains.before" ]] || grep -qxF "$ipt $table $c" "$n/chains.before"; }; then
          continue
        fi
        chains+=("$c")
      done
      ((${#chains[@]} == 0)) && continue
      local alt
      alt=$(IFS='|'; echo "${chains[*]}")
      {
        echo "*$table"
        grep -E -- "^-A .* -[jg] ($alt)( |\$)" <<<"$save" | sed 's/^-A /-D /' || true
        printf -- '-F %s\n' "${chains[@]}"
        printf -- '-X %s\n' "${chains[@]}"
        echo COMMIT
      } | "$ipt-restore" --noflush || log "warning: could not remove the $ipt $table chains ${chains[*]}"
    done
  done
}

# Left-overs of containerd's shims and the kubelet outside DIR: shim sockets, log links, CNI caches.
remove_outside_files() {
  local f
  for f in "$n"/containerd/state/io.containerd.runtime.v2.task/*/*/address; do
    [[ -f "$f" ]] && rm -f "$(sed 's|^unix://||' "$f")"
  done
  find /var/log/containers -maxdepth 1 -type l -lname "$n/*" -delete 2>/dev/null || true
  # The CNI library's cache of each sandbox's networks (ours and containerd's loopback).
  for f in "$n"/containerd/root/io.containerd.grpc.v1.cri/sandboxes/*; do
    [[ -d "$f" ]] && rm -f /var/lib/cni/results/*-"${f##*/}"-*
  done
  # The directories that `up` found missing, as far as they are empty now, but for two that hold
  # only what the node put there: the kubelet's device plugin socket (its path is compiled in) and
  # libmount's table of the mounts that the kubelet made with mount(8).
  for f in $(sed -n 's/^created //p' "$n/undo" 2>/dev/null); do
    case "$f" in /var/lib/kubelet | /run/mount) rm -rf "$f" ;; esac
    [[ -d "$f" ]] && find "$f" -depth -type d -empty -delete 2>/dev/null
    [[ -e "$f" ]] && log "warning: $f was created by the node but is not empty; left in place"
  done
  return 0
}

restore_sysctls() {
  local key value
  # The first value recorded for a key is the one from before.
  while read -r _ key value; do
    sysctl -qw "$key=$value" || log "warning: could not restore $key=$value"
  done < <(awk '$1 == "sysctl" && !seen[$2]++' "$n/undo" 2>/dev/null)
}

# The machine's node parts are DIR's when the marker names DIR, or when the marker is gone (a reboot
# empties /run) and DIR holds a node's record; never while the marker names another DIR.
owns_machine() {
  if [[ -f $marker ]]; then [[ $(cat "$marker") == "$dir" ]]; else [[ -d "$n" ]]; fi
}

down() {
  [[ $(id -u) == 0 ]] || die "stopping a node needs root"
  try stop_processes
  if owns_machine; then
    try kill_pods
    try unmount_dir
    try remove_netns
    try remove_cgroups
    try remove_chains
    ip route del unreachable "$service_cidr" 2>/dev/null || true
    ip link delete "$bridge" type bridge 2>/dev/null || true
    try remove_outside_files
    try restore_sysctls
    rm -f "$marker"
    log "the machine's bridge, routes, iptables chains, sysctls, cgroups and directories are as before"
  else
    [[ -f $marker ]] && log "the machine's node parts belong to the node in $(cat "$marker"); left alone"
    try unmount_dir
  fi
  "$hack/control-plane.sh" down "$dir"
}

# ---------------------------------------------------------------------------------------------------

case "$cmd" in
  up) up ;;
  down)
    if [[ ! -e "$dir" && ! ( -f $marker && $(cat "$marker") == "$dir" ) ]]; then
      log "no node in $dir"
      exit 0
    fi
    down
    log "stopped"
    ;;
  import)
    [[ -f "$image_tar" ]] || die "usage: $0 import IMAGE.tar [DIR] (no file $image_tar)"
    alive containerd || die "no node runs in $dir; run hack/node.sh up $dir"
    ctr_ images import "$image_tar" >&2 || die "ctr could not import $image_tar (an OCI layout or docker archive)"
    ;;
  env)
    [[ -f "$dir/kubeconfig" && -d "$n" ]] || die "no node in $dir; run hack/node.sh up $dir"
    printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
    printf 'export PATH=%q:%q:"$PATH"\n' "$K8S_BIN" "$HELM_BIN"
    printf 'export CONTAINERD_ADDRESS=%q CONTAINERD_NAMESPACE=k8s.io\n' "$sock"
    ;;
  status) alive kubelet && ready ;;
  *)
    echo "usage: $0 up|down|env|status [DIR]  or  $0 import IMAGE.tar [DIR]" >&2
    exit 2
    ;;
esac
