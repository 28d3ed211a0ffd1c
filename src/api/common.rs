//! Types shared by several kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `metav1.Condition`, reused so that conditions look like every other Kubernetes condition.
pub type Condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A role in an organization, ranked `owner` > `admin` > `member` > `viewer`.
///
/// Variants are declared lowest first so that the derived `Ord` is the rank.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    /// Reads the organization.
    Viewer,
    /// Works in the organization.
    Member,
    /// Manages members and viewers, invites and teams.
    Admin,
    /// Manages everything in the organization, including other owners.
    Owner,
}

impl OrgRole {
    /// All roles, lowest first.
    pub const ALL: [OrgRole; 4] = [
        OrgRole::Viewer,
        OrgRole::Member,
        OrgRole::Admin,
        OrgRole::Owner,
    ];

    /// The name used in YAML, messages and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Viewer => "viewer",
            OrgRole::Member => "member",
            OrgRole::Admin => "admin",
            OrgRole::Owner => "owner",
        }
    }
}

impl std::fmt::Display for OrgRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role in a team, ranked `owner` > `admin` > `moderator` > `member` > `viewer`.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum TeamRole {
    /// Reads the team.
    Viewer,
    /// Belongs to the team.
    Member,
    /// Moderates the team's work.
    Moderator,
    /// Manages the team's members below admin.
    Admin,
    /// The one owner of the team; may hand ownership to another member.
    Owner,
}

impl TeamRole {
    /// All roles, lowest first.
    pub const ALL: [TeamRole; 5] = [
        TeamRole::Viewer,
        TeamRole::Member,
        TeamRole::Moderator,
        TeamRole::Admin,
        TeamRole::Owner,
    ];

    /// The name used in YAML, messages and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Viewer => "viewer",
            TeamRole::Member => "member",
            TeamRole::Moderator => "moderator",
            TeamRole::Admin => "admin",
            TeamRole::Owner => "owner",
        }
    }
}

impl std::fmt::Display for TeamRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a Membership or team entry names: a Kubernetes user or a Kubernetes group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A Kubernetes username, usually an OIDC e-mail.
    User(String),
    /// A Kubernetes group, for example from an OIDC groups claim.
    Group(String),
}

impl Subject {
    /// Builds a subject from the `user`/`group` pair of a spec; `None` when neither is set.
    pub fn from_pair(user: &Option<String>, group: &Option<String>) -> Option<Subject> {
        match (user, group) {
            (Some(u), _) => Some(Subject::User(u.clone())),
            (None, Some(g)) => Some(Subject::Group(g.clone())),
            (None, None) => None,
        }
    }

    /// The name without its kind.
    pub fn name(&self) -> &str {
        match self {
            Subject::User(n) | Subject::Group(n) => n,
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::User(u) => write!(f, "user {u}"),
            Subject::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// An identity provider the platform named at install (`roster run --identity-provider`), and
/// optionally the tenant within it, that a user must sign in with.
#[derive(kube::KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderRef {
    /// The provider's name as the platform configured it, for example `google` or `entra`.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([a-z0-9-]*[a-z0-9])?$')").message("identityProvider.name must be a lowercase name such as google or entra, as the platform configured it"))]
    pub name: String,
    /// The tenant within the provider (for example a Microsoft Entra tenant ID), compared with the
    /// user's tenant as the authenticator reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tenant: Option<String>,
}
