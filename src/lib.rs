//! roster: organizations, memberships, invites and teams as Kubernetes custom resources.
//!
//! [`rules`] decides everything (roles, authorization, invariants, effective state) without I/O;
//! the rest of the crate feeds it and applies its answers.

pub mod api;
pub mod caches;
pub mod check;
pub mod controller;
pub mod crds;
pub mod fingerprint;
pub mod invite_secrets;
pub mod mail;
pub mod metrics;
pub mod names;
pub mod plugin;
pub mod removals;
pub mod rules;
pub mod run;
pub mod self_test;
pub mod webhook;
