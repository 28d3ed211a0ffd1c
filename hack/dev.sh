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
kubectl apply --server-side --field-manager roster-dev -R -f examples/
kubectl get roster -A
cat <<MSG

The control plane keeps running. Use it with:
  eval "\$(hack/control-plane.sh env $dir)"
Stop it with: make down
MSG
