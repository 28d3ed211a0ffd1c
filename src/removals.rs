//! Membership removals of the last hour per org namespace, for `spec.policy.maxRemovalsPerHour`.
//!
//! Every replica fills the log from two sources: the deletions its own webhook admits, and the
//! deletions its Membership watch sees, whichever replica admitted them. Entries are keyed by the
//! Membership's uid, so one removal counts once however many times it is seen. Within a replica a
//! decision and its record are one step, so concurrent requests cannot all take the last slot;
//! across replicas the budget can be overshot only by what is admitted elsewhere within the watch's
//! latency. A restarted replica knows only the removals its first list still shows (Memberships
//! held Terminating by a finalizer).

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

const WINDOW: SignedDuration = SignedDuration::from_hours(1);

/// Namespace, then Membership uid, then when it was removed.
type Log = HashMap<String, HashMap<String, Timestamp>>;

#[derive(Default)]
pub struct RemovalLog {
    by_namespace: Mutex<Log>,
}

/// Drops what left the window, in every namespace (deleted orgs included).
fn prune(log: &mut Log, now: Timestamp) {
    log.retain(|_, removals| {
        removals.retain(|_, t| *t >= now - WINDOW);
        !removals.is_empty()
    });
}

fn insert(log: &mut Log, namespace: &str, uid: &str, at: Timestamp, now: Timestamp) {
    if at >= now - WINDOW {
        let t = log
            .entry(namespace.to_string())
            .or_default()
            .entry(uid.to_string())
            .or_insert(at);
        *t = (*t).min(at);
    }
}

impl RemovalLog {
    /// Notes that the Membership `uid` in `namespace` was removed at `at` (the earliest sighting
    /// wins).
    pub fn record(&self, namespace: &str, uid: &str, at: Timestamp, now: Timestamp) {
        let mut log = self.by_namespace.lock().expect("removal log lock");
        prune(&mut log, now);
        insert(&mut log, namespace, uid, at, now);
    }

    /// Removals in `namespace` during the hour before `now`.
    pub fn last_hour(&self, namespace: &str, now: Timestamp) -> u32 {
        let mut log = self.by_namespace.lock().expect("removal log lock");
        prune(&mut log, now);
        log.get(namespace).map_or(0, |r| r.len() as u32)
    }

    /// Decides the removal of `uid` from the count of the other removals of the last hour
    /// (`decide` gets it and says whether the removal is admitted) and, if it is, records it before
    /// anyone else may decide.
    pub fn decide<T>(
        &self,
        namespace: &str,
        uid: &str,
        now: Timestamp,
        decide: impl FnOnce(u32) -> (bool, T),
    ) -> T {
        let mut log = self.by_namespace.lock().expect("removal log lock");
        prune(&mut log, now);
        let others = log
            .get(namespace)
            .map_or(0, |r| r.len() as u32 - u32::from(r.contains_key(uid)));
        let (admitted, answer) = decide(others);
        if admitted {
            insert(&mut log, namespace, uid, now, now);
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
    }

    #[test]
    fn one_removal_counts_once_however_often_it_is_seen() {
        let log = RemovalLog::default();
        log.record("org", "uid-1", at(0), at(0));
        log.record("org", "uid-1", at(1), at(1)); // the watch sees what the webhook admitted
        log.record("org", "uid-2", at(2), at(2));
        log.record("other", "uid-3", at(2), at(2));
        assert_eq!(log.last_hour("org", at(3)), 2);
        assert_eq!(log.last_hour("other", at(3)), 1);
        assert_eq!(log.last_hour("nobody", at(3)), 0);
    }

    #[test]
    fn removals_leave_the_window_after_an_hour_from_their_first_sighting() {
        let log = RemovalLog::default();
        log.record("org", "uid-1", at(0), at(0));
        log.record("org", "uid-1", at(30), at(30));
        log.record("org", "uid-2", at(30), at(30));
        assert_eq!(log.last_hour("org", at(60)), 2);
        assert_eq!(log.last_hour("org", at(61)), 1, "uid-1 was first seen at 0");
        assert_eq!(log.last_hour("org", at(91)), 0);
        // A sighting of an old removal (a Terminating Membership in a relist) does not revive it.
        log.record("org", "uid-1", at(0), at(91));
        assert_eq!(log.last_hour("org", at(91)), 0);
    }

    #[test]
    fn deciding_and_recording_are_one_step() {
        let log = RemovalLog::default();
        let budget = 2;
        let admitted: Vec<bool> = ["a", "b", "c"]
            .iter()
            .map(|uid| {
                log.decide("org", uid, at(0), |count| {
                    let ok = count < budget;
                    (ok, ok)
                })
            })
            .collect();
        assert_eq!(admitted, [true, true, false]);
        assert_eq!(log.last_hour("org", at(1)), 2, "a refusal is not recorded");
        let again = log.decide("org", "a", at(1), |others| (others < budget, others));
        assert_eq!(again, 1, "a removal asked for again counts only the others");
    }

    #[test]
    fn namespaces_nobody_asks_about_again_are_forgotten_after_the_window() {
        let log = RemovalLog::default();
        log.record("deleted-org", "uid-1", at(0), at(0));
        log.record("org", "uid-2", at(61), at(61));
        assert!(!log.by_namespace.lock().unwrap().contains_key("deleted-org"));
    }
}
