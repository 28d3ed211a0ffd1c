//! What is left of a deleted Organization. The kinds people apply carry no ownerReferences (Argo CD
//! never prunes an object that has one), so the garbage collector no longer deletes an org's
//! Memberships, Invites and Teams with it: roster does. Each object's status records the
//! Organization it was computed under; once that Organization is gone from the namespace, the
//! object is left over. A left-over object grants nothing and is deleted, so that an Organization
//! created later in the same namespace never takes over the access of people removed with the old
//! one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::{GROUP, OrgRole, VERSION};

/// Whether `r` is an ownerReference to a roster Organization (which roster wrote before this
/// version, and now removes).
pub fn is_organization_owner(r: &OwnerReference) -> bool {
    r.kind == "Organization" && r.api_version.split_once('/') == Some((GROUP, VERSION))
}

/// The uid of the Organization an object belongs to: the one its status records, or else the one
/// its old ownerReference names.
pub fn organization_uid<'a>(meta: &'a ObjectMeta, recorded: Option<&'a str>) -> Option<&'a str> {
    recorded.or_else(|| {
        meta.owner_references
            .iter()
            .flatten()
            .find(|r| is_organization_owner(r))
            .map(|r| r.uid.as_str())
    })
}

/// Whether an object that belongs to `belongs_to` is left over: that Organization no longer exists
/// in the namespace, whose Organizations (in any state, being deleted included) have the uids
/// `present`. An object that never belonged to one waits for its Organization instead.
pub fn is_left_over(belongs_to: Option<&str>, present: &[&str]) -> bool {
    belongs_to.is_some_and(|uid| !present.contains(&uid))
}

/// Whether a left-over Membership is deleted in the last wave: an owner's goes after every other,
/// so that no moment of an org's deletion shows members without an owner among them.
pub fn removed_last(effective_role: Option<OrgRole>) -> bool {
    effective_role == Some(OrgRole::Owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(owner_uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            owner_references: owner_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "roster.dev/v1alpha1".into(),
                    kind: "Organization".into(),
                    name: "org".into(),
                    uid: uid.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_object_belongs_to_the_organization_its_status_records_else_its_old_owner() {
        assert_eq!(
            organization_uid(&meta(Some("old")), Some("new")),
            Some("new")
        );
        assert_eq!(organization_uid(&meta(Some("old")), None), Some("old"));
        assert_eq!(organization_uid(&meta(None), None), None);
        let mut other = meta(Some("x"));
        other.owner_references.as_mut().unwrap()[0].api_version = "example.com/v1".into();
        assert_eq!(organization_uid(&other, None), None);
    }

    #[test]
    fn only_an_object_whose_organization_is_gone_is_left_over() {
        assert!(is_left_over(Some("a"), &[]));
        assert!(is_left_over(Some("a"), &["b"]));
        assert!(!is_left_over(Some("a"), &["b", "a"]));
        // Created before any Organization: it waits for one.
        assert!(!is_left_over(None, &[]));
    }

    #[test]
    fn owners_are_removed_last() {
        assert!(removed_last(Some(OrgRole::Owner)));
        assert!(!removed_last(Some(OrgRole::Admin)));
        assert!(!removed_last(None));
    }
}
