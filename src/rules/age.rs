//! Oldest first: the one order that breaks every tie in roster (creation time, then name). The
//! oldest Organization of a namespace is its organization (any other is a duplicate); the oldest
//! Membership of a user or group is theirs; older redemptions take an invite's uses first.

use std::ops::Deref;

use k8s_openapi::jiff::Timestamp;
use kube::Resource;

use crate::api::Organization;

/// The sort key of the order: creation time (unset first, as objects not yet stored), then name.
pub fn age_key<K: Resource>(o: &K) -> (Option<Timestamp>, &str) {
    let meta = o.meta();
    (
        meta.creation_timestamp.as_ref().map(|t| t.0),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// The same order for Organizations of different namespaces (which may share a name): creation
/// time, then namespace. A workload namespace two organizations list goes to the older.
pub fn across_namespaces_key(o: &Organization) -> (Option<Timestamp>, &str) {
    let meta = o.meta();
    (
        meta.creation_timestamp.as_ref().map(|t| t.0),
        meta.namespace.as_deref().unwrap_or_default(),
    )
}

/// Sorts objects (or references, `Arc`s, ...) oldest first.
pub fn oldest_first<T, K>(objects: &mut [T])
where
    T: Deref<Target = K>,
    K: Resource,
{
    objects.sort_by(|a, b| age_key(&**a).cmp(&age_key(&**b)));
}

/// The organization of a namespace, given the Organizations stored there: the oldest.
pub fn organization_of<'a, I>(organizations: I) -> Option<&'a Organization>
where
    I: IntoIterator<Item = &'a Organization>,
{
    organizations
        .into_iter()
        .min_by(|a, b| age_key(*a).cmp(&age_key(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn org(name: &str, created: Option<i64>) -> Organization {
        let mut o = Organization::new(name, Default::default());
        o.metadata.creation_timestamp = created.map(|s| Time(Timestamp::from_second(s).unwrap()));
        o
    }

    #[test]
    fn the_oldest_wins_and_the_name_breaks_ties() {
        let orgs = [org("b", Some(10)), org("c", Some(5)), org("a", Some(10))];
        assert_eq!(
            organization_of(&orgs).unwrap().metadata.name.as_deref(),
            Some("c")
        );
        let mut refs: Vec<&Organization> = orgs.iter().collect();
        oldest_first(&mut refs);
        let names: Vec<&str> = refs
            .iter()
            .map(|o| o.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
        assert!(organization_of(&[]).is_none());
    }
}
