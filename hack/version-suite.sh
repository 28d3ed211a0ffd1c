#!/usr/bin/env bash
# The version suite: the tests that prove roster works on a cluster of the oldest Kubernetes it
# claims (hack/versions.sh), run against a control plane of that version that this script starts and
# stops. hack/test.sh runs it after every test has run on the newest; `make versions` runs it alone.
# Arguments go to cargo test (for example --no-fail-fast).
#
# Chosen for what differs between versions: the CRDs' schema and CEL rules (and the API server's
# messages), the webhook's decisions (dry runs included) and the attacks on them, the controller,
# access through RBAC (`kubectl auth can-i`), identity-provider extras, the chart's install, `roster
# check` and the plugin against that API server, and stored objects across a CRD reapply.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/versions.sh
source hack/versions.sh

suite=(api_versions cel_rules webhook attacks controller organization_deletion self_service
  identity_providers access chart check plugin)

export ROSTER_K8S_VERSION=$K8S_OLDEST
hack/build-control-plane.sh >/dev/null
dir=${TMPDIR:-/tmp}/roster-test-$K8S_OLDEST-$$
trap 'hack/control-plane.sh down "$dir" >/dev/null 2>&1 || true' EXIT INT TERM
ROSTER_TEST_KUBECONFIG=$(hack/control-plane.sh up "$dir")
export ROSTER_TEST_KUBECONFIG
export PROPTEST_CASES=${PROPTEST_CASES:-1000}
echo "roster: the version suite on Kubernetes $K8S_OLDEST: ${suite[*]}" >&2
cargo test --locked "${suite[@]/#/--test=}" "$@"
