//! Membership removals of the last hour per org namespace, for `spec.policy.maxRemovalsPerHour`.
//!
//! Every replica fills the log from two sources: the deletions its own webhook admits, and the
//! deletions its Membership watch sees, whichever replica admitted them. Entries are keyed by the
//! Membership's uid, so one removal counts once however many times it is seen, and the budget holds
//! across replicas rather than per replica. A restarted replica knows only the removals its first
//! list still shows (Memberships held Terminating by a finalizer).

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

const WINDOW: SignedDuration = SignedDuration::from_hours(1);

#[derive(Default)]
pub struct RemovalLog {
    /// Namespace, then Membership uid, then when it was removed.
    by_namespace: Mutex<HashMap<String, HashMap<String, Timestamp>>>,
}

impl RemovalLog {
    /// Notes that the Membership `uid` in `namespace` was removed at `at` (the earliest sighting
    /// wins). Entries older than the window are dropped on the way.
    pub fn record(&self, namespace: &str, uid: &str, at: Timestamp, now: Timestamp) {
        let mut all = self.by_namespace.lock().expect("removal log lock");
        let log = all.entry(namespace.to_string()).or_default();
        log.retain(|_, t| *t >= now - WINDOW);
        if at >= now - WINDOW {
            let t = log.entry(uid.to_string()).or_insert(at);
            *t = (*t).min(at);
        }
    }

    /// Removals in `namespace` during the hour before `now`.
    pub fn last_hour(&self, namespace: &str, now: Timestamp) -> u32 {
        let mut all = self.by_namespace.lock().expect("removal log lock");
        let Some(log) = all.get_mut(namespace) else {
            return 0;
        };
        log.retain(|_, t| *t >= now - WINDOW);
        let n = log.len() as u32;
        if n == 0 {
            all.remove(namespace);
        }
        n
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
}
