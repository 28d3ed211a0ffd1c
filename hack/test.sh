#!/usr/bin/env bash
# The test command (`make test`): builds the control plane, node, Flux and Mailpit binaries and the
# operator image if missing, proves the node's network rule, starts one control plane that every test
# binary shares, runs all tests, and stops it again however the run ends.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

hack/install-deps.sh
hack/build-control-plane.sh >/dev/null
hack/build-argocd-health.sh >/dev/null
hack/build-flux.sh >/dev/null
hack/build-mailpit.sh >/dev/null
# The operator image's release build, once, before the tests that pack it and run it as pods
# (tests/image.rs, tests/e2e_helm.rs, tests/tour.rs); inside them it is then only packed.
hack/build-image.sh >/dev/null
# A node's network rule and its clean tear-down. One node runs per machine, and test binaries run
# one after another, so each test that needs a node starts its own.
hack/node-test.sh
dir=${TMPDIR:-/tmp}/roster-test-shared-$$
trap 'hack/control-plane.sh down "$dir" >/dev/null 2>&1 || true' EXIT INT TERM
ROSTER_TEST_KUBECONFIG=$(hack/control-plane.sh up "$dir")
export ROSTER_TEST_KUBECONFIG
export PROPTEST_CASES=${PROPTEST_CASES:-1000}
cargo test --all-targets --locked "$@"
