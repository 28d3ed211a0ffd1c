//! `Membership`: one user or group in the organization of its namespace, with an org role.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, OrgRole, Subject};

/// The desired membership of one user or one group.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "Membership",
    plural = "memberships",
    namespaced,
    status = "MembershipStatus",
    shortname = "mem",
    shortname = "members",
    category = "roster",
    printcolumn(name = "User", type_ = "string", json_path = ".spec.user"),
    printcolumn(name = "Group", type_ = "string", json_path = ".spec.group"),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.role"),
    printcolumn(
        name = "Effective",
        type_ = "string",
        json_path = ".status.effectiveRole"
    ),
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
#[x_kube(
    validation = Rule::new("has(self.user) != has(self.group)").message("spec: set exactly one of spec.user or spec.group"),
    validation = Rule::new("has(self.user) == has(oldSelf.user) && (!has(self.user) || self.user == oldSelf.user)").field_path(".user").message("spec.user is immutable: delete this Membership and create a new one"),
    validation = Rule::new("has(self.group) == has(oldSelf.group) && (!has(self.group) || self.group == oldSelf.group)").field_path(".group").message("spec.group is immutable: delete this Membership and create a new one"),
    validation = Rule::new("has(self.invite) == has(oldSelf.invite) && (!has(self.invite) || self.invite == oldSelf.invite)").field_path(".invite").message("spec.invite is immutable: it records how the member joined"),
    validation = Rule::new("!has(self.invite) || has(self.user)").message("spec.invite: only a user Membership can redeem an invite; remove spec.invite or set spec.user"),
    // Every unauthenticated request is system:anonymous in group system:unauthenticated: a role for
    // either is a role for the whole network. Refused here so it holds even without the webhook.
    validation = Rule::new("!has(self.user) || self.user != 'system:anonymous'").field_path(".user").message("spec.user: system:anonymous is every unauthenticated request; roster never gives it a role"),
    validation = Rule::new("!has(self.group) || self.group != 'system:unauthenticated'").field_path(".group").message("spec.group: system:unauthenticated is every unauthenticated request; roster never gives it a role"),
)]
pub struct MembershipSpec {
    /// The Kubernetes username (usually an OIDC e-mail). Exactly one of `user` and `group`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub user: Option<String>,

    /// A Kubernetes group (for example from an OIDC groups claim): everyone in it holds the role.
    /// Exactly one of `user` and `group`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub group: Option<String>,

    /// The desired org role. The effective role is in `status.effectiveRole`.
    pub role: OrgRole,

    /// The member's name as people see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// Contact e-mail, when it differs from the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254))]
    #[x_kube(validation = Rule::new("self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$')").message("spec.email must be an e-mail address such as ada@example.com"))]
    pub email: Option<String>,

    /// The invite this user joined with. Set only when joining with an invite code. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<InviteRef>,
}

impl MembershipSpec {
    /// The user or group this Membership names; `None` only for objects the CRD schema would reject.
    pub fn subject(&self) -> Option<Subject> {
        Subject::from_pair(&self.user, &self.group)
    }
}

/// An invite being redeemed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
// Optional in the schema only so that Memberships stored before proofs (with a code, which the API
// server now prunes) still decode; every new redemption needs one.
#[x_kube(validation = Rule::new("has(self.proof)").message("spec.invite.proof is required: the proof that `kubectl roster join` computes from the code (never the code itself)"))]
pub struct InviteRef {
    /// The Invite's name in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Proof that this user holds the invite's code: `hmac-sha256:` and 64 hex digits, the
    /// HMAC-SHA256 of `roster.dev/invite-proof/v1\n<namespace>\n<invite name>\n<username>` keyed
    /// with the code (upper case, without dashes). `kubectl roster join` computes it. Never the code
    /// itself: org members and viewers read Memberships.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^hmac-sha256:[0-9a-f]{64}$')").message("spec.invite.proof must be the proof that `kubectl roster join` computes (hmac-sha256: and 64 hex digits), never the invite code itself: org members and viewers can read Memberships"))]
    pub proof: Option<String>,
    /// The tenant the user signed in to, declared when the Invite is bound to an identity
    /// provider's tenant (`spec.identityProvider.tenant`; `kubectl roster join --tenant`). The
    /// webhook checks it against the tenant the authenticator reported for the joining user
    /// (`userInfo.extra`), which only it sees; the controller checks it against the Invite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tenant: Option<String>,
}

/// Whether a Membership is in force.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MembershipPhase {
    /// Effective: the role in `effectiveRole` applies.
    Active,
    /// Waiting for something that may still happen: the Organization, a free seat.
    Pending,
    /// Will not become effective as it is: a duplicate, an invalid invite, a domain mismatch.
    Denied,
}

impl MembershipPhase {
    /// The name used in status, metrics and output.
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipPhase::Active => "Active",
            MembershipPhase::Pending => "Pending",
            MembershipPhase::Denied => "Denied",
        }
    }
}

/// What is effective for this Membership, computed by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MembershipStatus {
    /// `Active`, `Pending` or `Denied`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MembershipPhase>,
    /// The role in force; differs from `spec.role` while a change is held (for example the demotion
    /// of the last owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_role: Option<OrgRole>,
    /// When the Membership first became effective.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::lenient::time"
    )]
    pub joined_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The invite redeemed, when it was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
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
    /// `Ready` (with `Reconciling` or `Stalled` while one holds) and `RoleChangeHeld`.
    #[serde(default, deserialize_with = "super::lenient::conditions")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
