#!/usr/bin/env bash
# `make dev`: a local control plane with roster's CRDs and examples/ applied, then what is there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/install-deps.sh
hack/build-control-plane.sh >/dev/null
dir=${ROSTER_CONTROL_PLANE_DIR:-${TMPDIR:-/tmp}/roster-control-plane}
hack/control-plane.sh up "$dir" >/dev/null
eval "$(hack/control-plane.sh env "$dir")"

cargo build --quiet
"${CARGO_TARGET_DIR:-target}/debug/roster" crds | kubectl apply --server-side --field-manager roster-dev -f -
kubectl wait --for condition=Established --timeout 60s \
  crd/organizations.roster.dev crd/memberships.roster.dev crd/invites.roster.dev crd/teams.roster.dev
# The ClusterRoles roster binds (as the chart installs them), so that org roles grant what they say.
helm template roster charts/roster --show-only templates/org-clusterroles.yaml \
  --set selfService.bindAuthenticated=true |
  kubectl apply --server-side --field-manager roster-dev -f -

# The operator with its webhook, outside the cluster: the API server calls it on loopback.
ROSTER_CONTROL_PLANE_DIR=$dir hack/operator.sh dev
# examples/gitops holds Argo CD and Flux reference manifests, not organizations.
for example in examples/*/; do
  [ "$example" = examples/gitops/ ] || kubectl apply --server-side --field-manager roster-dev -R -f "$example"
done
# Every object of every example settles Ready (kstatus Current): what `kubectl wait`, Flux and Argo CD
# wait for.
kubectl wait --for condition=Ready organizations,memberships,invites,teams --all -A --timeout 60s >/dev/null
kubectl get roster -A
cat <<MSG

The control plane and the operator keep running (operator log: $dir/logs/roster.log,
metrics: http://127.0.0.1:$(cat "$dir/roster.metrics-port")/metrics). Use them with:
  eval "\$(hack/control-plane.sh env $dir)"
Stop it with: make down
MSG
