# roster's entry points. `make dev` runs roster on a local control plane; `make test` runs every test;
# `make unit` runs the tests that need no control plane.
SHELL := /bin/bash
# The same default as hack/control-plane.sh, so that `make up` and `hack/control-plane.sh env` agree.
CONTROL_PLANE_DIR ?= $(or $(ROSTER_CONTROL_PLANE_DIR),$(or $(TMPDIR),/tmp)/roster-control-plane)
export ROSTER_CONTROL_PLANE_DIR := $(CONTROL_PLANE_DIR)
# The same default as hack/node.sh, so that `make cluster` and `hack/node.sh env` agree.
NODE_DIR ?= $(or $(ROSTER_NODE_DIR),$(or $(TMPDIR),/tmp)/roster-cluster)
export ROSTER_NODE_DIR := $(NODE_DIR)

.PHONY: dev test versions unit tour crds tools up down cluster cluster-down node-test lint msrv bench

## Build the control plane of the newest tested Kubernetes (with the node's kubelet and
## kube-scheduler), Flux and Mailpit binaries into the cache (once; minutes when cold). `make test`
## also builds the oldest (hack/build-control-plane.sh --all).
tools:
	hack/build-control-plane.sh
	hack/build-flux.sh
	hack/build-mailpit.sh

## Run every test against a real control plane that is started and stopped around the run.
test:
	hack/test.sh

## The version suite alone: the tests that matter per Kubernetes version, on the oldest roster claims
## (hack/versions.sh), against a control plane of that version started and stopped around the run.
versions:
	hack/version-suite.sh

## The tests that need no control plane (no ROSTER_TEST_KUBECONFIG, no binaries from hack/): the unit
## tests, the rules' table and property tests, the CRDs' sync check, and `roster check`'s offline tests
## (its two tests against a cluster are skipped by name).
CHECK_CLUSTER_TESTS := every_example_converges_on_a_real_cluster_as_check_predicts offline_schema_checks_agree_with_the_api_server
unit:
	cargo test --locked --lib --test authorization --test rules_properties --test crds_in_sync
	cargo test --locked --test check -- $(addprefix --skip ,$(CHECK_CLUSTER_TESTS))

## The README's walk-through: a cluster with a node, the chart's pods, an org, an invite, a join (root).
tour: tools
	hack/tour.sh

## Regenerate crds/ and the chart's copy (charts/roster/files/crds, which its templates render) from the
## Rust types.
crds:
	cargo run --quiet -- crds --dir crds
	cargo run --quiet -- crds --dir charts/roster/files/crds

## Start a local control plane, install the CRDs, apply examples/ and show the result.
dev: tools
	hack/dev.sh

up: tools
	hack/control-plane.sh up $(CONTROL_PLANE_DIR)

down:
	hack/control-plane.sh down $(CONTROL_PLANE_DIR)

## A one-node cluster that runs pods (root; one per machine): the control plane, containerd, a kubelet.
## `eval "$$(hack/node.sh env)"` to use it; `make cluster-down` stops it and restores the machine.
cluster: tools
	hack/install-deps.sh
	hack/node.sh up $(NODE_DIR)

cluster-down:
	hack/node.sh down $(NODE_DIR)

## Bring a node up in a directory of its own, prove its network rule, bring it down, and check that
## the machine is as before (root; fails while another node runs).
node-test: tools
	hack/install-deps.sh
	hack/node-test.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings

## Check that the crate builds with its rust-version (Cargo.toml), which the Dockerfile's image uses.
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
msrv:
	rustup toolchain install $(MSRV) --profile minimal
	cargo +$(MSRV) check --all-targets --locked

## Every benchmark: decisions (criterion), the webhook over TLS, convergence on a real control plane.
bench:
	cargo bench --bench decision
	cargo bench --bench webhook
	cargo bench --bench converge
	cargo bench --bench email
