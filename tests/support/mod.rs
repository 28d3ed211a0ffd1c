//! Test harness for everything that talks to Kubernetes: one real control plane (etcd, kube-apiserver,
//! kube-controller-manager from hack/) per test binary, or the one `make test` started, and per test a
//! namespace, an admin client and clients that impersonate users.
//!
//! If the control plane cannot start, the test fails with the reason: nothing skips silently.
//!
//! By job: [`cluster`] (the control plane, clients, kubectl, namespaces, CRDs and RBAC installed),
//! [`operator`] (the operator process, its webhook and metrics), [`objects`] (object builders, apply,
//! raw creates, invite codes), [`flux`], [`invariants`], [`node`] (a cluster with a real node, for
//! the chart's pods), [`mailpit`] (a real SMTP server) and [`smtp_proxy`] (a relay in front of it that
//! injects faults), with [`process`] (child processes that die with the test binary). Everything but
//! `flux`, `invariants`, `node`, `mailpit`, `smtp_proxy` and `process` is re-exported here, so tests
//! write `support::admin_client()`.
//!
//! Each test binary compiles this module on its own and uses only part of it, hence `dead_code` here
//! and `unused_imports` on the re-exports (a binary may use nothing of one submodule).
#![allow(dead_code)]

pub mod cluster;
pub mod flux;
pub mod invariants;
pub mod mailpit;
pub mod node;
pub mod objects;
pub mod operator;
pub mod process;
pub mod smtp_proxy;

#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use objects::*;
#[allow(unused_imports)]
pub use operator::*;
