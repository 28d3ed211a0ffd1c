//! Statuses this replica wrote that its caches do not show yet.
//!
//! The next reconcile of an org can start before the watch has delivered all of the last one's
//! writes, most of all in a burst, when the API server is busy. It would see the old statuses and
//! write every one of them again. A status is not written again while the cached object is still
//! at the resourceVersion the last write was computed from and the status is the same: the API
//! server already has it. Any other change to the object moves its resourceVersion, and then the
//! cache decides again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::fingerprint;

/// How long an entry is kept at most: by then the watch has long delivered the write (an entry
/// the cache caught up with is dropped at once; this bounds the entries of deleted objects).
const KEEP: Duration = Duration::from_secs(60);

/// Kind, namespace and name.
type Key = (String, String, String);

struct Written {
    /// The resourceVersion the status was computed from.
    read_at: String,
    status: u64,
    at: Instant,
}

#[derive(Default)]
pub struct RecentWrites(Mutex<State>);

#[derive(Default)]
struct State {
    entries: HashMap<Key, Written>,
    pruned: Option<Instant>,
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> Key {
    let kind = K::kind(&()).into_owned();
    (kind, obj.namespace().unwrap_or_default(), obj.name_any())
}

impl RecentWrites {
    /// Whether `status` is what this replica last wrote on `obj`, and the cached `obj` is still at
    /// the version that write was computed from.
    pub fn already_written<K, S>(&self, obj: &K, status: &S) -> bool
    where
        K: Resource<DynamicType = ()>,
        S: Serialize,
    {
        let entries = &mut self.0.lock().expect("recent writes lock").entries;
        let key = key(obj);
        let Some(w) = entries.get(&key) else {
            return false;
        };
        if obj.resource_version().as_deref() != Some(w.read_at.as_str()) {
            // The cache has moved on (this write, or someone else's): it decides again.
            entries.remove(&key);
            return false;
        }
        w.status == fingerprint::of_json(status)
    }

    /// Records a status written on `obj` as the cache showed it.
    pub fn record<K, S>(&self, obj: &K, status: &S)
    where
        K: Resource<DynamicType = ()>,
        S: Serialize,
    {
        let Some(read_at) = obj.resource_version() else {
            return;
        };
        let now = Instant::now();
        let mut state = self.0.lock().expect("recent writes lock");
        if state.pruned.is_none_or(|t| now.duration_since(t) > KEEP) {
            state.entries.retain(|_, w| now.duration_since(w.at) < KEEP);
            state.pruned = Some(now);
        }
        let status = fingerprint::of_json(status);
        let written = Written {
            read_at,
            status,
            at: now,
        };
        state.entries.insert(key(obj), written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Membership, MembershipPhase, MembershipStatus};

    fn membership(resource_version: &str) -> Membership {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
            "metadata": { "name": "ada", "namespace": "acme", "resourceVersion": resource_version },
            "spec": { "user": "ada@x.example", "role": "member" }
        }))
        .unwrap()
    }

    fn status(phase: MembershipPhase) -> MembershipStatus {
        MembershipStatus {
            phase: Some(phase),
            ..Default::default()
        }
    }

    #[test]
    fn a_status_is_not_written_twice_from_the_same_version() {
        let recent = RecentWrites::default();
        let (read, active) = (membership("7"), status(MembershipPhase::Active));
        assert!(!recent.already_written(&read, &active));
        recent.record(&read, &active);
        assert!(recent.already_written(&read, &active));
        // Another status from the same version is a new decision: written.
        assert!(!recent.already_written(&read, &status(MembershipPhase::Pending)));
        // The cache moved on (our write arrived, or someone else's): it decides again, and the
        // entry is gone.
        assert!(!recent.already_written(&membership("8"), &active));
        assert!(!recent.already_written(&read, &active));
    }
}
