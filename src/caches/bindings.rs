//! The RoleBindings roster made, as roster needs to know them: where each is, which organization
//! it belongs to, and a fingerprint of what roster writes in it. A whole binding is about 1.8 KiB
//! in memory and there is one per Membership (and more per workload namespace); a fingerprint
//! finds drift just as well in a tenth of that.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef};
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::fingerprint;
use crate::names::{MANAGED_BY, MEMBERSHIP_LABEL, ORGANIZATION_LABEL, TEAM_LABEL};

/// Namespace and name of a binding.
pub type BindingKey = (Box<str>, Box<str>);

/// The labels roster sets on a binding besides the organization's (which files it under its org).
const LABELS: [&str; 3] = [MANAGED_BY.0, MEMBERSHIP_LABEL, TEAM_LABEL];

/// What roster writes in one binding, hashed (see [`crate::fingerprint`]: nobody who may edit a
/// binding can craft one that reads as unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// `roleRef` apart, because it is immutable: a different one means delete, then create.
    pub role_ref: u64,
    /// Subjects and ownerReferences.
    grants: u64,
    /// Each of [`LABELS`]: the hash of its value, if set.
    labels: [Option<u64>; 3],
}

fn hash_role_ref(r: &RoleRef) -> u64 {
    fingerprint::of((&r.api_group, &r.kind, &r.name))
}

impl Fingerprint {
    pub fn of(b: &RoleBinding) -> Fingerprint {
        let mut grants = fingerprint::hasher().build_hasher();
        for s in b.subjects.iter().flatten() {
            (&s.api_group, &s.kind, &s.name, &s.namespace).hash(&mut grants);
        }
        for o in b.owner_references() {
            let flags = (o.controller, o.block_owner_deletion);
            (&o.api_version, &o.kind, &o.name, &o.uid, flags).hash(&mut grants);
        }
        Fingerprint {
            role_ref: hash_role_ref(&b.role_ref),
            grants: grants.finish(),
            labels: LABELS.map(|k| b.labels().get(k).map(fingerprint::of)),
        }
    }

    /// Whether a binding with this fingerprint already holds what `wanted` says: the same
    /// roleRef, subjects and ownerReferences, and every label `wanted` sets (others may be there).
    pub fn holds(&self, wanted: &Fingerprint) -> bool {
        self.role_ref == wanted.role_ref
            && self.grants == wanted.grants
            && (self.labels.iter().zip(&wanted.labels))
                .all(|(have, want)| want.is_none() || have == want)
    }
}

/// A binding as the cache keeps it.
#[derive(Clone, Debug)]
struct Seen {
    organization: Arc<str>,
    fingerprint: Fingerprint,
}

/// The bindings labelled with an organization, filed by it, kept current from a watch.
#[derive(Clone, Default)]
pub struct Bindings(Arc<RwLock<State>>);

#[derive(Default)]
struct State {
    current: Index,
    /// What a (re)list has delivered so far; it replaces `current` when the list is done.
    listing: Option<Index>,
}

#[derive(Default)]
struct Index {
    all: HashMap<Arc<BindingKey>, Seen>,
    by_organization: HashMap<Arc<str>, HashSet<Arc<BindingKey>>>,
}

impl Bindings {
    /// The bindings of the organization in `namespace`, with their fingerprints.
    pub fn of_organization(&self, namespace: &str) -> Vec<(BindingKey, Fingerprint)> {
        let state = self.0.read().expect("bindings lock");
        let index = &state.current;
        let Some(keys) = index.by_organization.get(namespace) else {
            return Vec::new();
        };
        keys.iter()
            .map(|k| (BindingKey::clone(k), index.all[k].fingerprint))
            .collect()
    }

    /// The organizations (by namespace) that have bindings.
    pub fn organizations(&self) -> Vec<String> {
        let state = self.0.read().expect("bindings lock");
        state
            .current
            .by_organization
            .keys()
            .map(|o| o.to_string())
            .collect()
    }

    pub fn apply(&self, event: &Event<RoleBinding>) {
        let mut state = self.0.write().expect("bindings lock");
        match event {
            Event::Apply(b) => state.current.insert(b),
            Event::Delete(b) => state.current.remove(&key(b)),
            Event::Init => state.listing = Some(Index::default()),
            Event::InitApply(b) => state.listing.get_or_insert_default().insert(b),
            Event::InitDone => state.current = state.listing.take().unwrap_or_default(),
        }
    }
}

fn key(b: &RoleBinding) -> BindingKey {
    (
        b.namespace().unwrap_or_default().into(),
        b.name_any().into(),
    )
}

impl Index {
    fn insert(&mut self, b: &RoleBinding) {
        let key = key(b);
        self.remove(&key);
        let Some(org) = b.labels().get(ORGANIZATION_LABEL) else {
            return;
        };
        let key = Arc::new(key);
        let organization = match self.by_organization.get_key_value(org.as_str()) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(org.as_str()),
        };
        (self
            .by_organization
            .entry(organization.clone())
            .or_default())
        .insert(key.clone());
        let fingerprint = Fingerprint::of(b);
        self.all.insert(
            key,
            Seen {
                organization,
                fingerprint,
            },
        );
    }

    fn remove(&mut self, key: &BindingKey) {
        let Some(seen) = self.all.remove(key) else {
            return;
        };
        if let Some(keys) = self.by_organization.get_mut(&seen.organization) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_organization.remove(&seen.organization);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(ns: &str, name: &str, org: &str, user: &str, role: &str) -> RoleBinding {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "namespace": ns, "labels": {
                ORGANIZATION_LABEL: org, MANAGED_BY.0: MANAGED_BY.1, MEMBERSHIP_LABEL: name } },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
        }))
        .unwrap()
    }

    #[test]
    fn a_fingerprint_holds_only_what_roster_wrote() {
        let wanted = binding("acme", "ada", "acme", "ada@x.example", "roster-org-member");
        let want = Fingerprint::of(&wanted);
        assert!(want.holds(&want));

        let mut labelled = wanted.clone();
        labelled
            .labels_mut()
            .insert("team.example/cost-center".into(), "42".into());
        assert!(
            Fingerprint::of(&labelled).holds(&want),
            "someone else's label is no drift"
        );

        let mut unlabelled = wanted.clone();
        unlabelled.labels_mut().remove(MEMBERSHIP_LABEL);
        assert!(!Fingerprint::of(&unlabelled).holds(&want));

        let mut widened = wanted.clone();
        let extra = widened.subjects.as_ref().unwrap()[0].clone();
        widened
            .subjects
            .as_mut()
            .unwrap()
            .push(rbac_subject(extra, "eve@x.example"));
        assert!(
            !Fingerprint::of(&widened).holds(&want),
            "an added subject is drift"
        );

        let promoted = binding("acme", "ada", "acme", "ada@x.example", "roster-org-admin");
        let promoted = Fingerprint::of(&promoted);
        assert!(!promoted.holds(&want));
        assert_ne!(
            promoted.role_ref, want.role_ref,
            "a new roleRef means delete, then create"
        );

        let mut owned = wanted.clone();
        owned.metadata.owner_references = Some(vec![Default::default()]);
        assert!(!Fingerprint::of(&owned).holds(&want));
    }

    fn rbac_subject(
        mut s: k8s_openapi::api::rbac::v1::Subject,
        name: &str,
    ) -> k8s_openapi::api::rbac::v1::Subject {
        s.name = name.into();
        s
    }

    fn keys(cache: &Bindings, org: &str) -> Vec<String> {
        let mut v: Vec<String> = (cache.of_organization(org).into_iter())
            .map(|((ns, name), _)| format!("{ns}/{name}"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn bindings_are_filed_by_their_organization_label_as_it_is_now() {
        let cache = Bindings::default();
        let ada = binding("acme", "ada", "acme", "ada@x.example", "view");
        let grace = binding("shop", "grace", "acme", "grace@x.example", "edit");
        for b in [&ada, &grace] {
            cache.apply(&Event::Apply(b.clone()));
        }
        assert_eq!(keys(&cache, "acme"), ["acme/ada", "shop/grace"]);

        // Relabelled to another org: filed there only.
        let moved = binding("shop", "grace", "globex", "grace@x.example", "edit");
        cache.apply(&Event::Apply(moved.clone()));
        assert_eq!(keys(&cache, "acme"), ["acme/ada"]);
        assert_eq!(keys(&cache, "globex"), ["shop/grace"]);

        // Label removed: no org's any more.
        let mut stray = moved.clone();
        stray.labels_mut().remove(ORGANIZATION_LABEL);
        cache.apply(&Event::Apply(stray));
        assert!(keys(&cache, "globex").is_empty());
        assert_eq!(cache.organizations(), ["acme"]);

        cache.apply(&Event::Delete(ada.clone()));
        assert!(keys(&cache, "acme").is_empty());
    }

    #[test]
    fn a_relist_replaces_everything_once_it_is_done() {
        let cache = Bindings::default();
        let gone = binding("acme", "gone", "acme", "gone@x.example", "view");
        let kept = binding("acme", "kept", "acme", "kept@x.example", "view");
        cache.apply(&Event::Apply(gone));
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(kept));
        assert_eq!(
            keys(&cache, "acme"),
            ["acme/gone"],
            "readers see the old list meanwhile"
        );
        cache.apply(&Event::InitDone);
        assert_eq!(keys(&cache, "acme"), ["acme/kept"]);
    }
}
