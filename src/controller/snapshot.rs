//! The load step of a reconcile: the cached objects of one org namespace, and what a deleted
//! Organization left behind among them.

use std::sync::Arc;

use kube::Resource;
use kube::core::object::HasStatus;
use serde::de::DeserializeOwned;

use super::recent::RecentWrites;

use crate::api::{Invite, Membership, Organization, Team};
use crate::rules;

/// The cached objects of one org namespace, oldest first.
pub(super) struct Snapshot {
    pub organizations: Vec<Arc<Organization>>,
    pub memberships: Vec<Arc<Membership>>,
    pub invites: Vec<Invite>,
    pub teams: Vec<Team>,
}

/// The objects of a deleted Organization still in its namespace.
#[derive(Default)]
pub(super) struct LeftOver {
    pub memberships: Vec<Arc<Membership>>,
    pub invites: Vec<Invite>,
    pub teams: Vec<Team>,
}

impl Snapshot {
    /// The objects of `namespace`, each with the status this replica last wrote on it if the
    /// cache does not show that write yet.
    pub fn read(
        stores: &crate::caches::Stores,
        recent: &RecentWrites,
        namespace: &str,
    ) -> Snapshot {
        Snapshot {
            organizations: objects_in(&stores.organizations, recent, namespace),
            memberships: oldest_first(stores.memberships.in_namespace(namespace), recent),
            invites: objects_in(&stores.invites, recent, namespace)
                .iter()
                .map(|i| Invite::clone(i))
                .collect(),
            teams: objects_in(&stores.teams, recent, namespace)
                .iter()
                .map(|t| Team::clone(t))
                .collect(),
        }
    }

    /// Takes out the objects left over from a deleted Organization (see `rules::leftovers`).
    pub fn split_left_over(&mut self) -> LeftOver {
        let present: Vec<String> = self
            .organizations
            .iter()
            .filter_map(|o| o.meta().uid.clone())
            .collect();
        let present: Vec<&str> = present.iter().map(String::as_str).collect();
        let left_over = |meta: &kube::api::ObjectMeta, recorded: Option<&str>| {
            rules::leftovers::is_left_over(
                rules::leftovers::organization_uid(meta, recorded),
                &present,
            )
        };
        let (memberships, kept) = std::mem::take(&mut self.memberships)
            .into_iter()
            .partition(|m| left_over(m.meta(), recorded(&m.status, |s| &s.organization_uid)));
        self.memberships = kept;
        let (invites, kept) = std::mem::take(&mut self.invites)
            .into_iter()
            .partition(|i| left_over(i.meta(), recorded(&i.status, |s| &s.organization_uid)));
        self.invites = kept;
        let (teams, kept) = std::mem::take(&mut self.teams)
            .into_iter()
            .partition(|t| left_over(t.meta(), recorded(&t.status, |s| &s.organization_uid)));
        self.teams = kept;
        LeftOver {
            memberships,
            invites,
            teams,
        }
    }
}

/// The cached objects of one namespace, oldest first: shared with the cache, never copied (an org
/// may hold 10,000 Memberships).
fn objects_in<K>(
    store: &kube::runtime::reflector::Store<K>,
    recent: &RecentWrites,
    ns: &str,
) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone,
    K::Status: DeserializeOwned,
{
    oldest_first(
        store.state_filter(|o| o.meta().namespace.as_deref() == Some(ns)),
        recent,
    )
}

/// Objects as this replica last left them (see [`RecentWrites`]), oldest first.
fn oldest_first<K>(objects: Vec<Arc<K>>, recent: &RecentWrites) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone,
    K::Status: DeserializeOwned,
{
    let mut v: Vec<Arc<K>> = objects.into_iter().map(|o| recent.read(o)).collect();
    crate::rules::oldest_first(&mut v);
    v
}

/// The Organization uid a status records.
fn recorded<S>(status: &Option<S>, uid: impl Fn(&S) -> &Option<String>) -> Option<&str> {
    status.as_ref().and_then(|s| uid(s).as_deref())
}
