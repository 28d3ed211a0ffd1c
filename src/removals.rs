//! Membership removals of the last hour per org namespace, for `spec.policy.maxRemovalsPerHour`.
//!
//! The budget guards against a bad sync or script removing much of an organization, so it counts
//! removals by someone else; leaving (deleting the Membership that names you) never counts. The
//! Membership watch cannot tell the two apart (a deleted object does not say who deleted it); only
//! the webhook that admitted the deletion knows. So a removal counts when this replica's webhook
//! admitted it as a removal by someone else (a short-lived reservation, made in the same step as
//! the decision so that concurrent requests cannot all take the last slot) and this replica's watch
//! then saw that Membership really go (the reservation becomes a removal, counted for the hour). A
//! reservation the watch does not confirm within [`RESERVATION`] (a dry run elsewhere, a later
//! webhook's refusal, a review nobody sent through the API server) expires and leaves nothing.
//!
//! With several replicas each counts the removals its own webhook admitted, so the budget binds
//! per replica (at most the replica count times the budget across them): what another replica
//! admitted, this one cannot tell from a self-leave, and counting it would let anyone who may
//! leave spend the budget. A restarted replica starts from nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

const WINDOW: SignedDuration = SignedDuration::from_hours(1);

/// How long an admitted removal counts without the watch confirming it: long enough for the API
/// server to delete what it admitted and the watch to report it, short enough that reviews that
/// changed nothing leave no lasting trace.
pub const RESERVATION: SignedDuration = SignedDuration::from_secs(10);

/// The most entries one namespace keeps of each sort; a namespace at the cap refuses further
/// removals as if over budget rather than grow.
pub const CAP: usize = 1024;

#[derive(Default)]
struct Namespace {
    /// Confirmed removals: Membership uid, then when the watch saw it go.
    removed: HashMap<String, Timestamp>,
    /// Admitted, not yet seen going: Membership uid, then when it was admitted.
    reserved: HashMap<String, Timestamp>,
}

impl Namespace {
    fn count_without(&self, uid: &str) -> u32 {
        let others = |m: &HashMap<String, Timestamp>| m.keys().filter(|u| *u != uid).count();
        (others(&self.removed) + others(&self.reserved)) as u32
    }

    fn full(&self) -> bool {
        self.removed.len() >= CAP || self.reserved.len() >= CAP
    }
}

#[derive(Default)]
pub struct RemovalLog {
    by_namespace: Mutex<HashMap<String, Namespace>>,
}

/// Drops what left the window and reservations that expired, in every namespace.
fn prune(log: &mut HashMap<String, Namespace>, now: Timestamp) {
    log.retain(|_, ns| {
        ns.removed.retain(|_, t| *t >= now - WINDOW);
        ns.reserved.retain(|_, t| *t >= now - RESERVATION);
        !(ns.removed.is_empty() && ns.reserved.is_empty())
    });
}

impl RemovalLog {
    /// Removals by someone else in `namespace` during the hour before `now`, reservations included.
    pub fn last_hour(&self, namespace: &str, now: Timestamp) -> u32 {
        let mut log = self.by_namespace.lock().expect("removal log lock");
        prune(&mut log, now);
        log.get(namespace).map_or(0, |ns| ns.count_without(""))
    }

    /// Decides the removal of `uid` by someone else from the count of the other removals (`decide`
    /// gets it and says whether the removal is admitted) and, if it is, reserves it before anyone
    /// else may decide. A namespace at the [`CAP`] is decided as if over any budget.
    pub fn decide<T>(
        &self,
        namespace: &str,
        uid: &str,
        now: Timestamp,
        decide: impl FnOnce(u32) -> (bool, T),
    ) -> T {
        let mut log = self.by_namespace.lock().expect("removal log lock");
        prune(&mut log, now);
        let ns = log.get(namespace);
        let count = match ns {
            Some(ns) if ns.full() => u32::MAX,
            Some(ns) => ns.count_without(uid),
            None => 0,
        };
        let (admitted, answer) = decide(count);
        if admitted {
            let ns = log.entry(namespace.to_string()).or_default();
            if !ns.removed.contains_key(uid) {
                ns.reserved.entry(uid.to_string()).or_insert(now);
            }
        }
        answer
    }

    /// Forgets a reservation of `uid`: the Membership's own subject is leaving, which is no removal.
    pub fn release(&self, namespace: &str, uid: &str) {
        let mut log = self.by_namespace.lock().expect("removal log lock");
        if let Some(ns) = log.get_mut(namespace) {
            ns.reserved.remove(uid);
        }
    }

    /// The watch saw the Membership `uid` go (deleted, or `Terminating`) at `at`: a removal this
    /// replica admitted for someone else now counts for the hour. Others count nothing.
    pub fn confirm(&self, namespace: &str, uid: &str, at: Timestamp, now: Timestamp) {
        let mut log = self.by_namespace.lock().expect("removal log lock");
        prune(&mut log, now);
        let Some(ns) = log.get_mut(namespace) else {
            return;
        };
        if let Some(admitted) = ns.reserved.remove(uid)
            && ns.removed.len() < CAP
        {
            ns.removed.insert(uid.to_string(), admitted.min(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn admit(log: &RemovalLog, uid: &str, now: Timestamp, budget: u32) -> bool {
        log.decide("org", uid, now, |count| (count < budget, count < budget))
    }

    #[test]
    fn deciding_and_reserving_are_one_step() {
        let log = RemovalLog::default();
        let admitted: Vec<bool> = ["a", "b", "c"]
            .iter()
            .map(|uid| admit(&log, uid, at(0), 2))
            .collect();
        assert_eq!(admitted, [true, true, false]);
        assert_eq!(log.last_hour("org", at(1)), 2, "a refusal reserves nothing");
        let again = log.decide("org", "a", at(1), |others| (true, others));
        assert_eq!(again, 1, "a removal asked for again counts only the others");
    }

    #[test]
    fn only_reservations_the_watch_confirms_count_for_the_hour() {
        let log = RemovalLog::default();
        assert!(admit(&log, "a", at(0), 5));
        assert!(admit(&log, "forged", at(0), 5));
        log.confirm("org", "a", at(1), at(1));
        log.confirm("org", "a", at(2), at(2)); // seen again: still one
        log.confirm("org", "self-leave", at(2), at(2)); // nothing reserved it
        assert_eq!(log.last_hour("org", at(2)), 2);
        assert_eq!(
            log.last_hour("org", at(11)),
            1,
            "the unconfirmed one expired"
        );
        log.confirm("org", "forged", at(12), at(12));
        assert_eq!(log.last_hour("org", at(12)), 1, "too late to confirm");
        assert_eq!(log.last_hour("org", at(3600)), 1);
        assert_eq!(
            log.last_hour("org", at(3601)),
            0,
            "an hour after it was admitted"
        );
        assert!(log.by_namespace.lock().unwrap().is_empty(), "nothing kept");
    }

    #[test]
    fn a_leaving_subject_releases_a_reservation() {
        let log = RemovalLog::default();
        assert!(admit(&log, "a", at(0), 5));
        log.release("org", "a");
        log.confirm("org", "a", at(1), at(1));
        assert_eq!(log.last_hour("org", at(1)), 0);
    }

    #[test]
    fn a_namespace_keeps_at_most_the_cap() {
        let log = RemovalLog::default();
        for i in 0..CAP + 10 {
            admit(&log, &format!("uid-{i}"), at(0), u32::MAX);
        }
        let log_ns = log.by_namespace.lock().unwrap();
        assert_eq!(log_ns["org"].reserved.len(), CAP);
    }
}
