//! Who is asking: a Kubernetes user with groups, and whether the installer made them a platform
//! principal.

use std::collections::BTreeSet;

use super::identity_providers::{Extra, IdentityProviders};

/// The requesting user, as the API server authenticated them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub username: String,
    pub groups: Vec<String>,
    /// Platform principals skip the role checks of docs/design.md §2, never the invariants.
    pub platform: bool,
    /// `userInfo.extra`: what the authenticator says besides username and groups, such as the
    /// tenant an identity provider signed the user in to.
    pub extra: Extra,
}

impl Actor {
    /// An actor whose platform standing is decided by `config`.
    pub fn new(username: impl Into<String>, groups: Vec<String>, config: &Config) -> Actor {
        let username = username.into();
        let platform = config.platform_users.contains(&username)
            || groups.iter().any(|g| config.platform_groups.contains(g));
        Actor {
            username,
            groups,
            platform,
            extra: Extra::new(),
        }
    }

    /// The same actor with the request's `userInfo.extra`.
    pub fn with_extra(mut self, extra: Extra) -> Actor {
        self.extra = extra;
        self
    }
}

/// What the installer decides: who the platform principals are and what access orgs may hand out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Users who are platform principals (the operator's own service account, GitOps controllers).
    pub platform_users: BTreeSet<String>,
    /// Groups whose members are platform principals.
    pub platform_groups: BTreeSet<String>,
    /// ClusterRoles that `access.clusterRoles` may name.
    pub allowed_cluster_roles: BTreeSet<String>,
    /// Namespaces that `access.namespaces` may never name.
    pub excluded_namespaces: BTreeSet<String>,
    /// The identity providers Invites and selfJoin policies may be bound to.
    pub identity_providers: IdentityProviders,
}

/// Kubernetes' own controllers that delete roster objects when a namespace or an owner goes away:
/// with per-controller service accounts (kubeadm and most distributions) or one shared identity.
pub const KUBERNETES_CONTROLLERS: &[&str] = &[
    "system:serviceaccount:kube-system:namespace-controller",
    "system:serviceaccount:kube-system:generic-garbage-collector",
    "system:kube-controller-manager",
];

impl Default for Config {
    fn default() -> Self {
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Config {
            platform_users: set(KUBERNETES_CONTROLLERS),
            platform_groups: set(&["system:masters"]),
            allowed_cluster_roles: set(&["admin", "edit", "view"]),
            excluded_namespaces: set(&["kube-system", "kube-public", "kube-node-lease"]),
            identity_providers: IdentityProviders::default(),
        }
    }
}
