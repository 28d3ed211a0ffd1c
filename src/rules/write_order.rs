//! The order of one reconcile's Membership status writes. Clients (the webhook's caches among them)
//! see every state between two writes, so those states must keep the invariants too.

use crate::api::{MembershipPhase, MembershipStatus, OrgRole};

/// The rank in which a Membership's status is written within one reconcile (lower first): seats
/// are freed before they are taken, and ownership is gained before it is lost, so no state in
/// between has Active members without an Active owner, or more Active members than seats.
pub fn write_rank(
    before: Option<&MembershipStatus>,
    after: &MembershipStatus,
    owners_kept: bool,
) -> u8 {
    let active =
        |s: Option<&MembershipStatus>| s.is_some_and(|s| s.phase == Some(MembershipPhase::Active));
    let (was_owner, is_owner) = (is_active_owner(before), is_active_owner(Some(after)));
    if active(before) && !active(Some(after)) && (!was_owner || owners_kept) {
        0 // leaves a seat, and the org stays owned without it
    } else if is_owner && !was_owner {
        1
    } else if was_owner && !is_owner {
        3
    } else {
        2
    }
}

pub fn is_active_owner(s: Option<&MembershipStatus>) -> bool {
    s.is_some_and(|s| {
        s.phase == Some(MembershipPhase::Active) && s.effective_role == Some(OrgRole::Owner)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: MembershipPhase, role: OrgRole) -> MembershipStatus {
        MembershipStatus {
            phase: Some(phase),
            effective_role: Some(role),
            ..Default::default()
        }
    }

    /// Seats are freed before they are taken, and ownership is gained before it is lost: with
    /// `maxMembers: 3`, owners Alice and Bob, member Carol and Dave waiting, Bob leaving lets Dave in
    /// only after Bob's seat is free, since Alice keeps the org owned meanwhile.
    #[test]
    fn a_leaving_owner_frees_the_seat_first_when_other_owners_stay() {
        use MembershipPhase::{Active, Pending};
        let owner = status(Active, OrgRole::Owner);
        let gone = status(Pending, OrgRole::Owner);
        let member = status(Active, OrgRole::Member);
        let waiting = status(Pending, OrgRole::Member);
        let bob = write_rank(Some(&owner), &gone, true);
        let dave = write_rank(Some(&waiting), &member, true);
        assert!(bob < dave, "bob {bob} before dave {dave}");
        // Without another owner staying, the last owner's departure waits for the new owner.
        let carol_promoted = write_rank(Some(&member), &owner, false);
        let bob_alone = write_rank(Some(&owner), &gone, false);
        assert!(carol_promoted < bob_alone);
    }
}
