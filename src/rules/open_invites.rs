//! Open invites (no `spec.email`): anyone holding the code may redeem them. They are refused where
//! the policy disables them, and always for the admin role: org admins read every invite's code
//! (to hand codes out), and only owners add admins.

use super::reason::ConditionReason;
use crate::api::{InvitePolicy, InviteSpec, OrgRole};

/// Why an invite without `spec.email` may not be created or redeemed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `spec.policy.invites.allowOpenInvites` is false.
    Disabled,
    /// An admin invite must name its invitee.
    Admin,
}

impl Refusal {
    pub fn reason(self) -> ConditionReason {
        match self {
            Refusal::Disabled => ConditionReason::OpenInvitesDisabled,
            Refusal::Admin => ConditionReason::OpenAdminInvite,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Disabled => {
                "spec.email is required: spec.policy.invites.allowOpenInvites is false"
            }
            Refusal::Admin => {
                "spec.email is required for an admin invite: org admins can read invite codes, and only owners add admins"
            }
        }
    }
}

/// Whether `spec` is an open invite that may not be used, and why.
pub fn refusal(spec: &InviteSpec, policy: &InvitePolicy) -> Option<Refusal> {
    if spec.email.is_some() {
        None
    } else if spec.role == OrgRole::Admin {
        Some(Refusal::Admin)
    } else if !policy.allow_open_invites {
        Some(Refusal::Disabled)
    } else {
        None
    }
}
