//! Objects kept packed: as JSON, filed by namespace. A Membership decoded is about 1.1 KiB in
//! memory, mostly the empty fields and small allocations of its metadata; packed, it is the 500-odd
//! bytes of its JSON. Every Membership of the cluster is cached, and a reconcile reads one org's
//! (decoding 10,000 takes a few milliseconds), so the cache keeps them packed.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::runtime::watcher::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Packed objects by name.
type Objects = HashMap<Box<str>, Box<[u8]>>;

/// The objects of one kind, packed, by namespace, kept current from a watch.
pub struct Packed<K> {
    state: Arc<RwLock<State>>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Packed {
            state: self.state.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Default for Packed<K> {
    fn default() -> Self {
        Packed {
            state: Arc::default(),
            kind: PhantomData,
        }
    }
}

#[derive(Default)]
struct State {
    current: HashMap<Box<str>, Objects>,
    /// What a (re)list has delivered so far; it replaces `current` when the list is done.
    listing: Option<HashMap<Box<str>, Objects>>,
}

impl<K> Packed<K>
where
    K: kube::Resource + Serialize + DeserializeOwned,
{
    pub fn apply(&self, event: &Event<K>) {
        let mut state = self.state.write().expect("packed lock");
        match event {
            Event::Apply(o) => insert(&mut state.current, o),
            Event::Delete(o) => {
                let ns = o.namespace().unwrap_or_default();
                if let Some(objects) = state.current.get_mut(ns.as_str()) {
                    objects.remove(o.name_any().as_str());
                    if objects.is_empty() {
                        state.current.remove(ns.as_str());
                    }
                }
            }
            Event::Init => state.listing = Some(HashMap::new()),
            Event::InitApply(o) => insert(state.listing.get_or_insert_default(), o),
            Event::InitDone => state.current = state.listing.take().unwrap_or_default(),
        }
    }

    /// The objects of `namespace`, decoded.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let state = self.state.read().expect("packed lock");
        let Some(objects) = state.current.get(namespace) else {
            return Vec::new();
        };
        objects.values().filter_map(|o| decode(o)).collect()
    }

    /// The namespaces that hold objects.
    pub fn namespaces(&self) -> Vec<String> {
        let state = self.state.read().expect("packed lock");
        state.current.keys().map(|ns| ns.to_string()).collect()
    }
}

/// Objects listed once, without a watch (benchmarks and tests of the webhook).
impl<K> FromIterator<K> for Packed<K>
where
    K: kube::Resource + Serialize + DeserializeOwned,
{
    fn from_iter<I: IntoIterator<Item = K>>(objects: I) -> Self {
        let packed = Packed::default();
        packed.apply(&Event::Init);
        for o in objects {
            packed.apply(&Event::InitApply(o));
        }
        packed.apply(&Event::InitDone);
        packed
    }
}

fn insert<K: kube::Resource + Serialize>(into: &mut HashMap<Box<str>, Objects>, o: &K) {
    let Ok(packed) = serde_json::to_vec(o) else {
        return;
    };
    let ns = o.namespace().unwrap_or_default();
    let objects = match into.get_mut(ns.as_str()) {
        Some(objects) => objects,
        None => into.entry(ns.into()).or_default(),
    };
    objects.insert(o.name_any().into(), packed.into());
}

fn decode<K: DeserializeOwned>(packed: &[u8]) -> Option<Arc<K>> {
    // Packed from a K by this process: it always decodes.
    serde_json::from_slice(packed)
        .inspect_err(|e| tracing::error!(error = %e, "a cached object does not decode"))
        .ok()
        .map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Membership;

    fn membership(ns: &str, name: &str, user: &str) -> Membership {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
            "metadata": { "name": name, "namespace": ns, "uid": format!("{ns}-{name}") },
            "spec": { "user": user, "role": "member" },
            "status": { "phase": "Active", "effectiveRole": "member" }
        }))
        .unwrap()
    }

    fn names(store: &Packed<Membership>, ns: &str) -> Vec<String> {
        let mut v: Vec<String> = (store.in_namespace(ns).iter())
            .map(|m| m.name_any())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn objects_come_back_as_they_went_in_by_namespace() {
        let store = Packed::<Membership>::default();
        let ada = membership("acme", "ada", "ada@x.example");
        store.apply(&Event::Apply(ada.clone()));
        store.apply(&Event::Apply(membership("acme", "bob", "bob@x.example")));
        store.apply(&Event::Apply(membership("globex", "eve", "eve@x.example")));
        let back = store.in_namespace("acme");
        let back = back.iter().find(|m| m.name_any() == "ada").unwrap();
        assert_eq!(
            serde_json::to_value(back.as_ref()).unwrap(),
            serde_json::to_value(&ada).unwrap()
        );
        assert_eq!(names(&store, "acme"), ["ada", "bob"]);
        assert_eq!(names(&store, "globex"), ["eve"]);
        let mut namespaces = store.namespaces();
        namespaces.sort();
        assert_eq!(namespaces, ["acme", "globex"]);

        store.apply(&Event::Delete(membership("globex", "eve", "eve@x.example")));
        assert!(names(&store, "globex").is_empty());
        assert_eq!(store.namespaces(), ["acme"]);
    }

    #[test]
    fn a_relist_replaces_everything_once_it_is_done() {
        let store = Packed::<Membership>::default();
        store.apply(&Event::Apply(membership("acme", "gone", "gone@x.example")));
        store.apply(&Event::Init);
        store.apply(&Event::InitApply(membership(
            "acme",
            "kept",
            "kept@x.example",
        )));
        assert_eq!(
            names(&store, "acme"),
            ["gone"],
            "readers see the old list meanwhile"
        );
        store.apply(&Event::InitDone);
        assert_eq!(names(&store, "acme"), ["kept"]);
    }
}
