#!/usr/bin/env bash
# `make dev`: a local control plane with roster's CRDs and examples/ applied, then what is there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/install-deps.sh
hack/build-control-plane.sh >/dev/null
dir=${CONTROL_PLANE_DIR:-${TMPDIR:-/tmp}/roster-control-plane}
hack/control-plane.sh up "$dir" >/dev/null
eval "$(hack/control-plane.sh env "$dir")"

cargo build --quiet
target/debug/roster crds | kubectl apply --server-side --field-manager roster-dev -f -
kubectl wait --for condition=Established --timeout 60s \
  crd/organizations.roster.dev crd/memberships.roster.dev crd/invites.roster.dev crd/teams.roster.dev

# The operator with its webhook, outside the cluster: the API server calls it on loopback.
if ! hack/control-plane.sh status "$dir" >/dev/null 2>&1 || ! kill -0 "$(cat "$dir/roster.pid" 2>/dev/null)" 2>/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  nohup target/debug/roster run --kubeconfig "$KUBECONFIG" --metrics-addr "127.0.0.1:$metrics" \
    --webhook-addr "127.0.0.1:$port" --webhook-url "https://127.0.0.1:$port/validate" \
    --webhook-config-name roster-dev >"$dir/logs/roster.log" 2>&1 &
  echo $! >"$dir/roster.pid"
  echo "$metrics" >"$dir/roster.metrics-port"
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$metrics/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  sleep 1 # the ValidatingWebhookConfiguration is written right after the caches sync
fi
# examples/gitops holds Argo CD and Flux reference manifests, not organizations.
for example in examples/*/; do
  [ "$example" = examples/gitops/ ] || kubectl apply --server-side --field-manager roster-dev -R -f "$example"
done
sleep 3
kubectl get roster -A
cat <<MSG

The control plane and the operator keep running (operator log: $dir/logs/roster.log,
metrics: http://127.0.0.1:$(cat "$dir/roster.metrics-port")/metrics). Use them with:
  eval "\$(hack/control-plane.sh env $dir)"
Stop it with: make down
MSG
