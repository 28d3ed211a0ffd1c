//! Statuses this replica wrote that its caches do not show yet.
//!
//! The next reconcile of an org can start before the watch has delivered all of the last one's
//! writes, most of all in a burst, when the API server is busy. From the old statuses it would
//! decide again what it just decided, with a new time (a Membership "joins" twice, seconds apart),
//! and write every one of them again. So a reconcile reads each object with the status this
//! replica last wrote on it, as long as the cached object is still at the resourceVersion that
//! write was computed from. Any change to the object moves its resourceVersion, and from then on
//! the cache alone says what the object is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::core::object::HasStatus;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long an entry is kept at most: by then the watch has long delivered the write (an entry
/// the cache caught up with is dropped at once; this bounds the entries of deleted objects).
const KEEP: Duration = Duration::from_secs(60);

/// Kind, namespace and name.
type Key = (String, String, String);

struct Written {
    /// The resourceVersion the status was computed from.
    read_at: String,
    /// The status, packed as JSON (a burst leaves thousands of these for a moment).
    status: Box<[u8]>,
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
    /// `obj` as this replica last left it: with the status it wrote, while the cached `obj` is
    /// still at the version that write was computed from.
    pub fn read<K>(&self, obj: Arc<K>) -> Arc<K>
    where
        K: Resource<DynamicType = ()> + HasStatus + Clone,
        K::Status: DeserializeOwned,
    {
        let mut state = self.0.lock().expect("recent writes lock");
        if state.entries.is_empty() {
            return obj;
        }
        let key = key(obj.as_ref());
        let Some(w) = state.entries.get(&key) else {
            return obj;
        };
        if obj.resource_version().as_deref() != Some(w.read_at.as_str()) {
            // The cache has moved on (this write, or someone else's): it alone decides.
            state.entries.remove(&key);
            return obj;
        }
        let Ok(status) = serde_json::from_slice(&w.status) else {
            return obj;
        };
        let mut written = K::clone(&obj);
        *written.status_mut() = Some(status);
        Arc::new(written)
    }

    /// Records a status written on `obj` as the cache showed it.
    pub fn record<K, S>(&self, obj: &K, status: &S)
    where
        K: Resource<DynamicType = ()>,
        S: Serialize,
    {
        let (Some(read_at), Ok(status)) = (obj.resource_version(), serde_json::to_vec(status))
        else {
            return;
        };
        let now = Instant::now();
        let mut state = self.0.lock().expect("recent writes lock");
        if state.pruned.is_none_or(|t| now.duration_since(t) > KEEP) {
            state.entries.retain(|_, w| now.duration_since(w.at) < KEEP);
            state.pruned = Some(now);
        }
        let written = Written {
            read_at,
            status: status.into(),
            at: now,
        };
        state.entries.insert(key(obj), written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Membership, MembershipPhase, MembershipStatus};

    fn membership(resource_version: &str, phase: Option<MembershipPhase>) -> Arc<Membership> {
        let mut m: Membership = serde_json::from_value(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
            "metadata": { "name": "ada", "namespace": "acme", "resourceVersion": resource_version },
            "spec": { "user": "ada@x.example", "role": "member" }
        }))
        .unwrap();
        m.status = phase.map(|p| MembershipStatus {
            phase: Some(p),
            ..Default::default()
        });
        Arc::new(m)
    }

    fn phase(m: &Membership) -> Option<MembershipPhase> {
        m.status.as_ref().and_then(|s| s.phase)
    }

    #[test]
    fn a_reconcile_reads_its_own_status_until_the_cache_moves_on() {
        let recent = RecentWrites::default();
        let cached = membership("7", None);
        assert_eq!(phase(&recent.read(cached.clone())), None);
        let active = MembershipStatus {
            phase: Some(MembershipPhase::Active),
            ..Default::default()
        };
        recent.record(cached.as_ref(), &active);
        // The watch has not delivered the write: the cache still shows version 7.
        assert_eq!(
            phase(&recent.read(cached.clone())),
            Some(MembershipPhase::Active)
        );
        // The cache moved on (our write arrived, or someone else's): it alone decides, and the
        // entry is gone.
        let changed = membership("9", Some(MembershipPhase::Pending));
        assert_eq!(phase(&recent.read(changed)), Some(MembershipPhase::Pending));
        assert_eq!(phase(&recent.read(cached)), None);
    }
}
