//! When the first status of a new Membership waits.
//!
//! In a burst of creates (a GitOps sync, a bulk import) a Membership is often seen before its
//! Organization or the org's owners, which the same burst brings a moment later. Its first status
//! would say Pending and be rewritten as Active at once: two status writes where one does. So a new
//! Membership that waits only for what a burst brings gets its first status once the burst has had
//! [`SETTLE`] to arrive, or at once when it turns out to be in force sooner. kstatus (Flux's `wait`)
//! reads an object without status as Current, as it does any new object roster has not reached yet,
//! so the wait is kept short.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;

use crate::api::{Membership, MembershipPhase, MembershipStatus};

use super::ConditionReason;

/// How long after its creation a new Membership may go without status.
pub const SETTLE: SignedDuration = SignedDuration::from_secs(2);

/// When to write the first status of `m`, whose status is to be `next`, if that is later than
/// `now`; `None` means write now.
pub fn deferred_until(
    m: &Membership,
    next: &MembershipStatus,
    now: Timestamp,
) -> Option<Timestamp> {
    if m.status.is_some() || next.phase != Some(MembershipPhase::Pending) {
        return None;
    }
    let reason = (next.conditions.iter())
        .find(|c| c.type_ == "Ready")
        .and_then(|c| ConditionReason::parse(&c.reason));
    let burst = matches!(
        reason,
        Some(ConditionReason::OrganizationMissing | ConditionReason::OwnerQuorumNotMet)
    );
    let created = m.meta().creation_timestamp.as_ref()?.0;
    let until = created.checked_add(SETTLE).ok()?;
    (burst && until > now).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Condition, OrgRole};

    fn membership(created: i64, status: Option<MembershipStatus>) -> Membership {
        let mut m: Membership = serde_json::from_value(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
            "metadata": { "name": "ada", "namespace": "acme",
                          "creationTimestamp": Timestamp::from_second(created).unwrap() },
            "spec": { "user": "ada@x.example", "role": "member" }
        }))
        .unwrap();
        m.status = status;
        m
    }

    fn status(phase: MembershipPhase, reason: ConditionReason) -> MembershipStatus {
        MembershipStatus {
            phase: Some(phase),
            effective_role: (phase == MembershipPhase::Active).then_some(OrgRole::Member),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: reason.as_str().into(),
                message: String::new(),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)),
                observed_generation: None,
            }],
            ..Default::default()
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn a_new_membership_waiting_for_its_burst_gets_its_status_after_settling() {
        let new = membership(100, None);
        for reason in [
            ConditionReason::OrganizationMissing,
            ConditionReason::OwnerQuorumNotMet,
        ] {
            let pending = status(MembershipPhase::Pending, reason);
            assert_eq!(deferred_until(&new, &pending, at(100)), Some(at(102)));
            assert_eq!(deferred_until(&new, &pending, at(101)), Some(at(102)));
            assert_eq!(deferred_until(&new, &pending, at(102)), None, "{reason:?}");
        }
    }

    #[test]
    fn everything_else_is_written_at_once() {
        let new = membership(100, None);
        let active = status(MembershipPhase::Active, ConditionReason::Active);
        assert_eq!(deferred_until(&new, &active, at(100)), None);
        // Pending for a reason no burst resolves: a full org says so at once.
        let seats = status(MembershipPhase::Pending, ConditionReason::SeatLimitReached);
        assert_eq!(deferred_until(&new, &seats, at(100)), None);
        let denied = status(MembershipPhase::Denied, ConditionReason::Duplicate);
        assert_eq!(deferred_until(&new, &denied, at(100)), None);
        // A Membership with a status has been told something: a change is written at once.
        let told = membership(100, Some(active.clone()));
        let pending = status(MembershipPhase::Pending, ConditionReason::OwnerQuorumNotMet);
        assert_eq!(deferred_until(&told, &pending, at(100)), None);
    }
}
