//! `Invite`: a code that lets someone create their own Membership with a given role.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, Delivery, IdentityProviderRef, OrgRole};

/// An invitation to join the organization. The operator generates the code into a Secret owned by the
/// Invite (`status.codeSecretName`); the code never appears in status.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "Invite",
    plural = "invites",
    namespaced,
    status = "InviteStatus",
    shortname = "inv",
    category = "roster",
    printcolumn(name = "Email", type_ = "string", json_path = ".spec.email"),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.role"),
    printcolumn(name = "Uses", type_ = "integer", json_path = ".status.uses"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxUses"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
// Org admins read every invite's code (to hand codes out), and admins may not add admins: an open
// admin invite would let them. A revoked one is harmless, and revoking one made before this rule
// must stay possible.
#[x_kube(validation = Rule::new("self.role != 'admin' || has(self.email) || self.revoked").message("spec.email: an admin invite must name the person it is for (org admins can read invite codes, and only owners add admins)"))]
pub struct InviteSpec {
    /// Who the invite is for; the redeeming username must equal it. Empty makes an open invite that
    /// anyone with the code may use (when `spec.policy.invites.allowOpenInvites` permits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254))]
    #[x_kube(validation = Rule::new("self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$')").message("spec.email must be an e-mail address such as ada@example.com, or be left out for an open invite"))]
    pub email: Option<String>,

    /// The org role the invite grants: `admin`, `member` or `viewer`.
    #[x_kube(validation = Rule::new("self != 'owner'").message("spec.role: an invite cannot grant owner; invite as admin, then have an owner promote them"))]
    pub role: OrgRole,

    /// How many people may use the code; more than 1 makes a multi-use link.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10000))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("spec.maxUses can only be raised: uses already taken stay taken"))]
    pub max_uses: i32,

    /// Lifetime from creation, as a Go duration such as `72h`. Defaults to
    /// `spec.policy.invites.defaultTTL` and is capped by `maxTTL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s')").message("spec.ttl must be a positive duration such as 72h or 30m"))]
    pub ttl: Option<String>,

    /// When true the code no longer works. Cannot be undone.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self || !oldSelf").message("spec.revoked cannot be set back to false: create a new Invite instead"))]
    pub revoked: bool,

    /// Where the invitation e-mail goes when it should not go to `email` (for example when the
    /// username is not an e-mail address), or the address of an open invite's recipient. Sent only
    /// when the organization's `spec.policy.notifications.email` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254))]
    #[x_kube(validation = Rule::new("self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$')").message("spec.notificationEmail must be an e-mail address such as ada@example.com"))]
    pub notification_email: Option<String>,

    /// How many times the invitation e-mail has been asked to be sent again. Raising it by one
    /// (`kubectl roster invite resend`) sends it once more; it can only be raised.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = 100))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("spec.resends can only be raised: raise it by one to send the invitation again"))]
    pub resends: i32,

    /// The identity provider (and tenant) the redeeming user must sign in with. Left out, any
    /// provider the platform accepts will do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<IdentityProviderRef>,
}

impl Default for InviteSpec {
    /// A single-use member invite with nothing else set.
    fn default() -> Self {
        InviteSpec {
            email: None,
            role: OrgRole::Member,
            max_uses: one(),
            ttl: None,
            revoked: false,
            notification_email: None,
            resends: 0,
            identity_provider: None,
        }
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn one() -> i32 {
    1
}

/// Where an invite stands.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvitePhase {
    /// Usable: not expired, not revoked, uses left.
    Pending,
    /// All uses taken.
    Accepted,
    /// Past `expiresAt` with uses left.
    Expired,
    /// `spec.revoked` is set.
    Revoked,
}

impl InvitePhase {
    /// The name used in status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            InvitePhase::Pending => "Pending",
            InvitePhase::Accepted => "Accepted",
            InvitePhase::Expired => "Expired",
            InvitePhase::Revoked => "Revoked",
        }
    }
}

/// What is true of the invite, computed by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InviteStatus {
    /// `Pending`, `Accepted`, `Expired` or `Revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<InvitePhase>,
    /// When the code stops working.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::lenient::time"
    )]
    pub expires_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// How many Memberships redeemed it.
    #[serde(default)]
    pub uses: i32,
    /// Who redeemed it, oldest first.
    #[serde(default)]
    pub accepted_by: Vec<AcceptedBy>,
    /// The Secret in this namespace that holds the code (key `code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_secret_name: Option<String>,
    /// The invitation e-mail: which message was sent last, to whom, when, and the last error. Set
    /// only when the organization sends e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
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
    /// `Ready` (with `Reconciling` or `Stalled` while one holds), `Usable`, and `Delivered` when
    /// the organization sends e-mail.
    #[serde(default, deserialize_with = "super::lenient::conditions")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One redemption.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedBy {
    /// The username.
    pub user: String,
    /// The Membership created with the code.
    pub membership: String,
    /// When that Membership was created.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::lenient::time"
    )]
    pub at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}
