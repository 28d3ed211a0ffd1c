//! `Organization`: one per org namespace; its policy governs the Memberships, Invites and Teams there.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, Delivery, IdentityProviderRef, OrgRole};

/// The desired state of an organization.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "Organization",
    plural = "organizations",
    namespaced,
    status = "OrganizationStatus",
    shortname = "org",
    shortname = "orgs",
    category = "roster",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Owners", type_ = "string", json_path = ".status.owners"),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.members"),
    printcolumn(name = "Seats", type_ = "integer", json_path = ".status.seats.used"),
    printcolumn(name = "Limit", type_ = "integer", json_path = ".status.seats.limit"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 63").message("metadata.name: an Organization name must be at most 63 characters, since it is used in labels"),
)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSpec {
    /// The name people see, for example "Acme Research".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// Public profile of the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,

    /// Where the organization's data must stay. Propagated as the label `roster.dev/data-region` to the
    /// org namespace and its workload namespaces, so that placement policies can select on it.
    #[serde(default)]
    pub data_region: DataRegion,

    /// Rules for owners, seats, invites, self-service joining and removals.
    #[serde(default)]
    pub policy: OrgPolicy,

    /// The username responsible for billing. Must hold an effective Membership; the `BillingAdmin`
    /// condition says when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub billing_admin: Option<String>,

    /// Kubernetes access that org roles grant outside the org namespace. Only platform principals may
    /// change it, since it grants rights beyond the organization's own objects.
    #[serde(default)]
    pub access: Access,

    /// When true, deleting the Organization is refused until this is set back to false.
    #[serde(default)]
    pub deletion_protection: bool,
}

/// Public profile of an organization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Home page, for example `https://acme.example`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^\\\\s/?#]+([/?#]\\\\S*)?$')").message("spec.profile.website must be an http:// or https:// URL"))]
    pub website: Option<String>,
    /// Where the organization is, for example "Berlin, Germany".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub location: Option<String>,
    /// Industry or field, for example "Education".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub sector: Option<String>,
    /// The university, for academic organizations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub university: Option<String>,
    /// A few sentences about the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,
}

/// Where an organization's data must stay.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum DataRegion {
    /// No restriction.
    #[default]
    Global,
    /// United States.
    US,
    /// European Union.
    EU,
}

impl DataRegion {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DataRegion::Global => "Global",
            DataRegion::US => "US",
            DataRegion::EU => "EU",
        }
    }
}

/// Rules for owners, seats, invites, self-service joining and removals.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.maxOwners) || self.maxOwners >= self.minOwners").message("spec.policy.maxOwners must be at least spec.policy.minOwners"),
    validation = Rule::new("!has(self.maxMembers) || self.maxMembers >= self.minOwners").message("spec.policy.maxMembers must be at least spec.policy.minOwners, since owners take seats too"),
)]
pub struct OrgPolicy {
    /// The fewest effective owners the organization may have while it has members. A demotion or
    /// removal that would go below it stays pending.
    #[serde(default = "default_min_owners")]
    #[schemars(range(min = 1, max = 100))]
    pub min_owners: i32,

    /// The most owners wanted; 1 makes a single-owner organization. A target, not a wall: more owners
    /// are admitted with a warning and reported by the `OwnersWithinTarget` condition, so that an
    /// ownership transfer can be applied in any order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_owners: Option<i32>,

    /// Seat limit: the most effective Memberships. Memberships beyond it stay `Pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_members: Option<i32>,

    /// Invite lifetimes and whether open (no e-mail) invites are allowed.
    #[serde(default)]
    pub invites: InvitePolicy,

    /// Lets users whose username is an e-mail in one of these domains create their own Membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_join: Option<SelfJoin>,

    /// The most Memberships that may be deleted in one hour, a guard against a bad sync deleting much
    /// of an organization at once. An owner can raise or remove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_removals_per_hour: Option<i32>,

    /// Which e-mails roster sends for this organization through the platform's SMTP relay.
    #[serde(default)]
    pub notifications: Notifications,
}

/// E-mail notifications, sent through the SMTP relay the platform configured for roster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    /// Send invitations (to `spec.notificationEmail` or `spec.email`), resends and cancellation
    /// notices for Invites, and a notice to each new billing admin. Off by default, so that
    /// turning on a relay never mails the invites an organization already has.
    #[serde(default)]
    pub email: bool,
}

fn default_min_owners() -> i32 {
    1
}

impl Default for OrgPolicy {
    fn default() -> Self {
        OrgPolicy {
            min_owners: default_min_owners(),
            max_owners: None,
            max_members: None,
            invites: InvitePolicy::default(),
            self_join: None,
            max_removals_per_hour: None,
            notifications: Notifications::default(),
        }
    }
}

/// Invite lifetimes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("duration(self.defaultTTL) <= duration(self.maxTTL)").message("spec.policy.invites.defaultTTL must not exceed spec.policy.invites.maxTTL"))]
pub struct InvitePolicy {
    /// Lifetime of an invite that sets no `ttl`, as a Go duration such as `168h`.
    #[serde(rename = "defaultTTL", default = "default_ttl")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s')").message("spec.policy.invites.defaultTTL must be a positive duration such as 168h or 30m"))]
    pub default_ttl: String,

    /// The longest `ttl` an invite may ask for, as a Go duration such as `720h`.
    #[serde(rename = "maxTTL", default = "max_ttl")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s')").message("spec.policy.invites.maxTTL must be a positive duration such as 720h"))]
    pub max_ttl: String,

    /// Whether invites without an e-mail (links anyone with the code may use) are allowed.
    #[serde(default = "yes")]
    pub allow_open_invites: bool,
}

fn default_ttl() -> String {
    "168h".into()
}
fn max_ttl() -> String {
    "720h".into()
}
fn yes() -> bool {
    true
}

impl Default for InvitePolicy {
    fn default() -> Self {
        InvitePolicy {
            default_ttl: default_ttl(),
            max_ttl: max_ttl(),
            allow_open_invites: true,
        }
    }
}

/// Self-service joining by e-mail domain (the SSO auto-provisioning of SaaS products).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SelfJoin {
    /// Domains such as `acme.example`; a username `ada@acme.example` matches.
    #[schemars(length(min = 1, max = 50), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = Rule::new("self.all(d, d.matches('^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$'))").message("spec.policy.selfJoin.emailDomains must be lowercase domain names such as acme.example, without '@'"))]
    pub email_domains: Vec<String>,
    /// The role a self-joined member gets.
    #[serde(default)]
    pub role: SelfJoinRole,
    /// The identity provider (and tenant) a self-joining user must have signed in with. Without
    /// it, any authenticator that can produce a username in these domains can claim them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<IdentityProviderRef>,
}

/// The role a self-joined member gets: never above member.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum SelfJoinRole {
    /// A member.
    #[default]
    Member,
    /// A viewer.
    Viewer,
}

impl From<SelfJoinRole> for OrgRole {
    fn from(r: SelfJoinRole) -> OrgRole {
        match r {
            SelfJoinRole::Member => OrgRole::Member,
            SelfJoinRole::Viewer => OrgRole::Viewer,
        }
    }
}

/// Kubernetes access granted by org roles outside the org namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// Workload namespaces where effective members get the ClusterRole their role maps to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 63)))]
    #[x_kube(validation = Rule::new("self.all(n, self.exists_one(m, m == n))").message("spec.access.namespaces must not list a namespace twice"))]
    pub namespaces: Vec<String>,
    /// Which ClusterRole each org role gets in those namespaces.
    #[serde(default)]
    pub cluster_roles: ClusterRoleMap,
}

/// The ClusterRole bound for each org role in the workload namespaces.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRoleMap {
    /// For owners (default `admin`).
    #[serde(default = "admin")]
    #[schemars(length(min = 1, max = 253))]
    pub owner: String,
    /// For admins (default `admin`).
    #[serde(default = "admin")]
    #[schemars(length(min = 1, max = 253))]
    pub admin: String,
    /// For members (default `edit`).
    #[serde(default = "edit")]
    #[schemars(length(min = 1, max = 253))]
    pub member: String,
    /// For viewers (default `view`).
    #[serde(default = "view")]
    #[schemars(length(min = 1, max = 253))]
    pub viewer: String,
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

impl Default for ClusterRoleMap {
    fn default() -> Self {
        ClusterRoleMap {
            owner: admin(),
            admin: admin(),
            member: edit(),
            viewer: view(),
        }
    }
}

impl ClusterRoleMap {
    /// The ClusterRole for an org role.
    /// Every ClusterRole the map names, owner's first.
    pub fn all(&self) -> [&str; 4] {
        OrgRole::ALL.map(|r| self.for_role(r))
    }

    pub fn for_role(&self, role: OrgRole) -> &str {
        match role {
            OrgRole::Owner => &self.owner,
            OrgRole::Admin => &self.admin,
            OrgRole::Member => &self.member,
            OrgRole::Viewer => &self.viewer,
        }
    }
}

/// What is effective in the organization, computed by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (with `Reconciling` or `Stalled` while one holds), `OwnerQuorum`,
    /// `OwnersWithinTarget`, `SeatsAvailable`, `BillingAdmin`, `AccessSynced`.
    #[serde(default, deserialize_with = "super::lenient::conditions")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Effective owners (users and groups, groups as `group:NAME`), sorted.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Effective admins, sorted.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Owners then admins with their role, for directory pages.
    #[serde(default)]
    pub leadership: Vec<Leader>,
    /// Number of effective Memberships.
    #[serde(default)]
    pub members: i32,
    /// Seats used and the limit.
    #[serde(default)]
    pub seats: Seats,
    /// Invites still usable.
    #[serde(default)]
    pub pending_invites: i32,
    /// The notice e-mailed to the billing admin when `spec.billingAdmin` last changed, when the
    /// organization sends e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_admin_notice: Option<Delivery>,
}

/// A person (or group) leading the organization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Leader {
    /// The user, or `group:NAME` for a group membership.
    pub user: String,
    /// `owner` or `admin`.
    pub role: String,
}

/// Seat usage.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Seats {
    /// Effective Memberships.
    pub used: i32,
    /// `spec.policy.maxMembers`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i32>,
}
