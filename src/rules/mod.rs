//! The one place that decides: roles and their order, who may do what, the invariants, and the
//! effective state. No I/O and no clock of its own (time is an argument), so the controller, the
//! webhook, `roster check` and the tests all get the same answers.

pub mod access_conditions;
pub mod actor;
pub mod age;
pub mod authorize;
pub mod conditions;
pub mod delivery;
pub mod effective;
pub mod first_status;
pub mod identity;
pub mod identity_providers;
pub mod index;
pub mod invite_code;
pub mod leftovers;
pub mod open_invites;
pub mod rbac;
pub mod reason;
pub mod redemption;
pub mod removals;
pub mod status;
pub mod ttl;
pub mod write_order;

pub use actor::{Actor, Config};
pub use age::{age_key, oldest_first, organization_of};
pub use authorize::{
    Context, Decision, Denial, Operation, Reason, Redemption, admit, authorize, bind_rights,
    binds_to_confirm, org_namespace, reserved_metadata,
};
pub use effective::{Effective, MembershipEffect, Notice, OrgObjects, compute};
pub use identity_providers::{IdentityProvider, IdentityProviders};
pub use index::OrgIndex;
pub use reason::ConditionReason;
