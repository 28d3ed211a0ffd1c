#!/usr/bin/env bash
# The test command (`make test`): builds the control plane and Flux binaries if missing, starts one
# control plane that every test binary shares, runs all tests, and stops it again however the run ends.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

hack/install-deps.sh
hack/build-control-plane.sh >/dev/null
hack/build-argocd-health.sh >/dev/null
hack/build-flux.sh >/dev/null
dir=${TMPDIR:-/tmp}/roster-test-shared-$$
trap 'hack/control-plane.sh down "$dir" >/dev/null 2>&1 || true' EXIT INT TERM
ROSTER_TEST_KUBECONFIG=$(hack/control-plane.sh up "$dir")
export ROSTER_TEST_KUBECONFIG
export PROPTEST_CASES=${PROPTEST_CASES:-1000}
cargo test --all-targets --locked "$@"
