#!/usr/bin/env bash
# The test command (`make test`): builds the control planes, node, Flux and Mailpit binaries and the
# operator image if missing, proves the node's network rule, starts one control plane of the newest
# Kubernetes that every test binary shares, runs all tests, and stops it again however the run ends;
# then the version suite on the oldest Kubernetes roster claims (hack/version-suite.sh). Arguments go
# to both cargo test runs (for example --no-fail-fast).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

hack/install-deps.sh
hack/build-control-plane.sh --all
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
# The version suite runs even when a test failed on the newest, so that one run shows both.
status=0
cargo test --all-targets --locked "$@" || status=$?
hack/control-plane.sh down "$dir" >/dev/null
hack/version-suite.sh "$@" || status=$?
exit "$status"
