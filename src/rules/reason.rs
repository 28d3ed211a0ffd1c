//! Every condition reason roster writes, named once. `roster check`, the plugin and the tests match
//! on these, never on strings, so renaming a reason is a compile error wherever it is read.

use std::borrow::Cow;

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A condition reason (metav1.Condition `reason`: CamelCase).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ConditionReason {
            $($(#[$doc])* $name,)*
        }

        impl ConditionReason {
            /// The reason as written in status.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ConditionReason::$name => stringify!($name),)*
                }
            }

            /// The reason a condition carries, if roster wrote it.
            pub fn parse(s: &str) -> Option<ConditionReason> {
                match s {
                    $(stringify!($name) => Some(ConditionReason::$name),)*
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    // Memberships: in force, held, or why not (Pending resolves by itself, Denied does not).
    Active,
    LastOwnerRemovalHeld,
    LastOwnerDemotionHeld,
    OrganizationMissing,
    Deleting,
    InvalidSpec,
    Duplicate,
    InviteNotFound,
    InviteCodeUnavailable,
    InviteCodeMismatch,
    InviteRevoked,
    InviteExpired,
    InviteEmailMismatch,
    InviteRoleMismatch,
    /// The redeeming user did not sign in with the identity provider the invite is bound to.
    InviteIdentityProviderMismatch,
    /// `spec.invite.tenant` is not the tenant the invite is bound to.
    InviteTenantMismatch,
    /// The invite is bound to an identity provider (or tenant) the installation does not configure
    /// (Memberships and Invites).
    IdentityProviderNotConfigured,
    OpenInvitesDisabled,
    OpenAdminInvite,
    InviteExhausted,
    AnotherAdminInvitePending,
    SeatLimitReached,
    OwnerQuorumNotMet,
    WaitingForPreviousMembership,
    // Invites.
    Usable,
    TTLCapped,
    Accepted,
    Expired,
    Revoked,
    CodeSecretFailed,
    // Invites' e-mail (`Delivered`).
    Sending,
    Sent,
    SendFailed,
    SendRejected,
    DeliveryUnknown,
    NoRelay,
    // Teams.
    Deactivated,
    OwnerNotInOrganization,
    AllMembersInOrganization,
    MembersNotInOrganization,
    // Organizations.
    Ready,
    Satisfied,
    NoOwners,
    TooFewOwners,
    WithinTarget,
    AboveMaxOwners,
    SeatsFree,
    NoLimit,
    NotSet,
    Member,
    NotAMember,
    DuplicateOrganization,
    NamespaceExcluded,
    // Access (Organizations and Teams).
    Synced,
    BindingFailed,
    NamespaceRefused,
    NamespaceNotGranted,
    ClusterRoleNotMapped,
}

impl From<ConditionReason> for Cow<'static, str> {
    fn from(r: ConditionReason) -> Self {
        Cow::Borrowed(r.as_str())
    }
}

impl PartialEq<ConditionReason> for String {
    fn eq(&self, r: &ConditionReason) -> bool {
        self == r.as_str()
    }
}

impl PartialEq<ConditionReason> for &str {
    fn eq(&self, r: &ConditionReason) -> bool {
        *self == r.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_reads_back_as_itself() {
        for r in [
            ConditionReason::Active,
            ConditionReason::TTLCapped,
            ConditionReason::ClusterRoleNotMapped,
        ] {
            assert_eq!(ConditionReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(ConditionReason::TTLCapped.as_str(), "TTLCapped");
        assert_eq!(ConditionReason::parse("NoSuchReason"), None);
    }
}
