//! `roster check`: validates a folder of org manifests offline, the way a GitOps repository's CI would
//! before Argo CD or Flux applies it.
//!
//! Three layers, in the order the API server and roster apply them:
//! 1. **Each object on its own**: the structural schema of the CRD (`required`, `enum`, types,
//!    `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`, unknown fields), the CRD's
//!    CEL rules (with kube's client-side CEL validator), and decoding into the Rust types. An object
//!    that fails here would be refused by the API server, so it takes no part in what follows.
//! 2. **The webhook's invariants**, per org namespace: [`rules::authorize`] as a platform principal
//!    (what a GitOps controller is), for every object as if it were created in name order: one
//!    Organization per namespace, duplicates, allowed ClusterRoles and namespaces, pending admin
//!    invites, open invites.
//! 3. **The effective state**: [`rules::compute`] over the whole namespace with every object freshly
//!    created, and every Membership that would not become `Active` reported with the reason and
//!    message of its `Ready` condition (owner quorum, seats, duplicates, invites), plus the
//!    Organization's and Teams' conditions that need a person (team members who are not org members,
//!    more owners than `maxOwners`, a billing admin without a membership) as warnings.
//!
//! Nothing here decides anything the rules module does not: this module only feeds it.
//!
//! Documents of other kinds (Namespaces, Argo CD Applications, ...) are skipped and listed.

//!
//! The module follows those layers: `load` reads the files and runs `schema`'s per-object
//! checks, `namespace` checks each org namespace, and `report` collects the findings. See
//! docs/design.md, "Offline checks", for where each invariant is enforced in a cluster.

mod load;
mod namespace;
mod report;
mod schema;

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{Invite, Membership, Organization, Team};
use crate::rules::Config;
use report::Findings;
pub use report::{Finding, Report, Severity, Skipped};

/// What to check and against which installation.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Files and folders (searched recursively for `*.yaml` and `*.yml`).
    pub paths: Vec<PathBuf>,
    /// The namespace of objects that set none (like `kubectl apply -n`); default `default`.
    pub namespace: Option<String>,
    /// The installation's allow-lists, as `roster run` is configured.
    pub config: Config,
}

/// Where a document came from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Source {
    file: String,
    line: usize,
}

/// One roster object that passed the per-object checks.
struct Checked<K> {
    object: K,
    source: Source,
}

#[derive(Default)]
struct Namespace {
    organizations: Vec<Checked<Organization>>,
    memberships: Vec<Checked<Membership>>,
    invites: Vec<Checked<Invite>>,
    teams: Vec<Checked<Team>>,
    /// Whether an Organization was found here but refused by the per-object checks.
    refused_organization: bool,
}

/// Runs every check; never fails (unreadable files are findings).
pub fn check(options: &Options) -> Report {
    let mut findings = Findings::default();
    let mut report = Report::default();
    let mut files = Vec::new();
    for path in &options.paths {
        load::collect_files(path, true, &mut files, &mut findings);
    }
    report.files = files.len();

    let mut loader = load::Loader::new(options, &mut findings, &mut report);
    for file in &files {
        loader.file(file);
    }
    let mut namespaces = loader.namespaces;

    let now = Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid time");
    let all_orgs: Vec<Organization> = namespaces
        .values()
        .filter_map(|n| {
            n.organizations
                .iter()
                .min_by_key(|c| c.object.name_any())
                .map(|c| namespace::created(&c.object, now))
        })
        .collect();
    for (ns, group) in &mut namespaces {
        namespace::check_namespace(ns, group, &all_orgs, &options.config, now, &mut findings);
    }
    report.namespaces = namespaces.keys().cloned().collect();
    findings.finish(&mut report);
    report
}

/// The installation config for `roster check`, from the same flags as `roster run`.
pub fn config(
    allowed_cluster_roles: &[String],
    excluded_namespaces: &[String],
    identity_providers: crate::rules::IdentityProviders,
) -> Config {
    let set = |v: &[String]| -> BTreeSet<String> { v.iter().cloned().collect() };
    Config {
        allowed_cluster_roles: set(allowed_cluster_roles),
        excluded_namespaces: set(excluded_namespaces),
        identity_providers,
        ..Config::default()
    }
}
