//! `Team`: a named group of org members with team roles and, optionally, access of its own.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, Subject, TeamRole};

/// A team inside the organization.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "Team",
    plural = "teams",
    namespaced,
    status = "TeamStatus",
    shortname = "team",
    category = "roster",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Owner", type_ = "string", json_path = ".status.owner"),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.members"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TeamSpec {
    /// The name people see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// What the team does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,

    /// A colour such as `#1f6feb`; when empty a stable colour derived from the name is in `status.color`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 7))]
    #[x_kube(validation = Rule::new("self.matches('^#[0-9a-fA-F]{6}$')").message("spec.color must be a hex colour such as #1f6feb"))]
    pub color: Option<String>,

    /// False deactivates the team: it grants no access but is kept for the record.
    #[serde(default = "yes")]
    pub active: bool,

    /// The team's members: exactly one `owner`, and no user or group twice. At most 128 entries
    /// (bounded so the API server can afford the uniqueness check); larger teams name a group.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(
        validation = Rule::new("self.filter(m, m.role == 'owner').size() == 1").message("spec.members must have exactly one member with role owner"),
        validation = Rule::new("self.all(m, (!has(m.user) || self.exists_one(n, has(n.user) && n.user == m.user)) && (!has(m.group) || self.exists_one(n, has(n.group) && n.group == m.group)))").message("spec.members must not list the same user or group twice"),
    )]
    pub members: Vec<TeamMember>,

    /// Kubernetes access the team's members get through their team roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<TeamAccess>,
}

fn yes() -> bool {
    true
}

/// One team member.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.user) != has(self.group)").message("spec.members[]: set exactly one of user or group"))]
pub struct TeamMember {
    /// A Kubernetes username; must also hold an effective org Membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub user: Option<String>,
    /// A Kubernetes group; must also hold an effective org Membership as a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub group: Option<String>,
    /// The team role.
    pub role: TeamRole,
}

impl TeamMember {
    /// The user or group named.
    pub fn subject(&self) -> Option<Subject> {
        Subject::from_pair(&self.user, &self.group)
    }
}

/// Access granted to the team's members by team role.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TeamAccess {
    /// Workload namespaces of the organization where the team works.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
    /// Which ClusterRole each team role gets there.
    #[serde(default)]
    pub cluster_roles: TeamClusterRoleMap,
}

/// The ClusterRole bound for each team role.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TeamClusterRoleMap {
    /// Default `admin`.
    #[serde(default = "admin")]
    #[schemars(length(min = 1, max = 253))]
    pub owner: String,
    /// Default `admin`.
    #[serde(default = "admin")]
    #[schemars(length(min = 1, max = 253))]
    pub admin: String,
    /// Default `edit`.
    #[serde(default = "edit")]
    #[schemars(length(min = 1, max = 253))]
    pub moderator: String,
    /// Default `edit`.
    #[serde(default = "edit")]
    #[schemars(length(min = 1, max = 253))]
    pub member: String,
    /// Default `view`.
    #[serde(default = "view")]
    #[schemars(length(min = 1, max = 253))]
    pub viewer: String,
}

impl TeamClusterRoleMap {
    /// The ClusterRole a team role gets.
    pub fn for_role(&self, role: TeamRole) -> &str {
        match role {
            TeamRole::Owner => &self.owner,
            TeamRole::Admin => &self.admin,
            TeamRole::Moderator => &self.moderator,
            TeamRole::Member => &self.member,
            TeamRole::Viewer => &self.viewer,
        }
    }

    /// Every ClusterRole the map names, owner's first.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.owner,
            &self.admin,
            &self.moderator,
            &self.member,
            &self.viewer,
        ]
    }
}

fn admin() -> String {
    "admin".into()
}
fn edit() -> String {
    "edit".into()
}
fn view() -> String {
    "view".into()
}

impl Default for TeamClusterRoleMap {
    fn default() -> Self {
        TeamClusterRoleMap {
            owner: admin(),
            admin: admin(),
            moderator: edit(),
            member: edit(),
            viewer: view(),
        }
    }
}

/// Whether a team is in force.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeamPhase {
    /// `spec.active` is true: team roles grant what the team maps.
    Active,
    /// `spec.active` is false: the team grants nothing and is kept for the record.
    Deactivated,
}

/// What is true of the team, computed by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TeamStatus {
    /// `Active` or `Deactivated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TeamPhase>,
    /// The team's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Members who hold an effective org Membership.
    #[serde(default)]
    pub members: i32,
    /// `spec.color`, or a stable colour derived from the team's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Entries with no effective org Membership for the same user or group (groups as `group:NAME`).
    #[serde(default)]
    pub unresolved_members: Vec<String>,
    /// The uid of the Organization this status was computed under. When that Organization is
    /// deleted, roster deletes this object with it; another Organization never takes it over.
    #[serde(
        rename = "organizationUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub organization_uid: Option<String>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (with `Reconciling` or `Stalled` while one holds), `Active`, `MembersResolved` and,
    /// with `spec.access`, `AccessSynced`.
    #[serde(default, deserialize_with = "super::lenient::conditions")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
