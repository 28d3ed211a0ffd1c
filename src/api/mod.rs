//! The `roster.dev/v1alpha1` API: four namespaced kinds whose doc comments become the CRD descriptions
//! that `kubectl explain` shows, and whose `x_kube(validation)` rules become the CRDs' CEL rules.
//!
//! The types hold no logic beyond (de)serialisation and schema; everything that decides lives in
//! [`crate::rules`].

// kube's derive takes one `printcolumn(..)` per column, which clippy reads as repeated attributes.
#![allow(clippy::duplicated_attributes)]

mod common;
mod delivery;
mod invite;
mod lenient;
mod membership;
mod organization;
mod team;

pub use common::{Condition, IdentityProviderRef, OrgRole, Subject, TeamRole};
pub use delivery::{Delivery, DeliveryMessage, DeliveryState};
pub use invite::{AcceptedBy, Invite, InvitePhase, InviteSpec, InviteStatus};
pub use membership::{InviteRef, Membership, MembershipPhase, MembershipSpec, MembershipStatus};
pub use organization::{
    Access, ClusterRoleMap, DataRegion, InvitePolicy, Leader, Notifications, OrgPolicy,
    Organization, OrganizationSpec, OrganizationStatus, Profile, Seats, SelfJoin, SelfJoinRole,
};
pub use team::{Team, TeamAccess, TeamClusterRoleMap, TeamMember, TeamPhase, TeamSpec, TeamStatus};

/// The API group of every roster kind.
pub const GROUP: &str = "roster.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
