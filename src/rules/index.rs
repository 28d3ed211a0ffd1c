//! An index of one organization's effective state, so that a decision costs O(1) lookups however
//! large the organization is. Built from the objects' statuses (what the controller made effective)
//! and kept current with `upsert`/`remove` as the caches change.

use std::collections::HashMap;

use k8s_openapi::jiff::Timestamp;

use kube::{Resource, ResourceExt};

use crate::api::{
    Invite, InvitePhase, Membership, MembershipPhase, OrgRole, Organization, Subject,
};

/// One Membership as the index remembers it. Kept small: an index holds every Membership of the
/// cluster (100,000 and more), so names are boxed and the subject is the only other string.
#[derive(Clone, Debug)]
struct Record {
    subject: Subject,
    /// The role in force; `None` unless the Membership is Active.
    effective_role: Option<OrgRole>,
    created: Option<Timestamp>,
}

/// What the index knows about one subject.
#[derive(Clone, Debug, Default)]
struct SubjectState {
    /// The Memberships (not being deleted) naming the subject, oldest first: the first claims it,
    /// as the controller decides duplicates, and the next takes over when it goes. Almost always
    /// one, so a sorted `Vec` rather than a tree (whose first node alone is half a kilobyte).
    claimants: Vec<(Option<Timestamp>, Box<str>)>,
    /// The role of the subject's Active Membership.
    effective: Option<OrgRole>,
}

/// The effective state of one organization, indexed for decisions.
#[derive(Clone, Debug, Default)]
pub struct OrgIndex {
    /// The Organization of the namespace, if any.
    pub organization: Option<Organization>,
    /// Every Membership by name.
    memberships: HashMap<Box<str>, Record>,
    /// Claims and effective roles by subject.
    subjects: HashMap<Subject, SubjectState>,
    /// Subjects with an effective role.
    effective_members: usize,
    owners: usize,
    /// Pending invites by name and whether each grants admin.
    pending_invites: HashMap<String, bool>,
    pending_admin_invites: usize,
}

impl OrgIndex {
    /// Builds the index from the objects of one org namespace.
    pub fn new<'a>(
        organization: Option<&Organization>,
        memberships: impl IntoIterator<Item = &'a Membership>,
        invites: impl IntoIterator<Item = &'a Invite>,
    ) -> OrgIndex {
        let mut index = OrgIndex {
            organization: organization.cloned(),
            ..Default::default()
        };
        let mut ms: Vec<&Membership> = memberships.into_iter().collect();
        super::age::oldest_first(&mut ms);
        for m in ms {
            index.upsert_membership(m);
        }
        for i in invites {
            index.upsert_invite(i);
        }
        index
    }

    /// Records a new or changed Membership.
    pub fn upsert_membership(&mut self, m: &Membership) {
        let Some(subject) = m.spec.subject() else {
            return;
        };
        let name = m.name_any();
        self.remove_membership(&name);
        let effective_role = (m.status.as_ref())
            .filter(|s| s.phase == Some(MembershipPhase::Active))
            .and_then(|s| s.effective_role);
        let record = Record {
            subject: subject.clone(),
            effective_role,
            created: m.meta().creation_timestamp.as_ref().map(|t| t.0),
        };
        let state = self.subjects.entry(subject).or_default();
        if m.meta().deletion_timestamp.is_none() {
            let claim = (record.created, Box::from(name.as_str()));
            let at = state.claimants.partition_point(|c| *c < claim);
            state.claimants.insert(at, claim);
        }
        if let Some(role) = effective_role {
            self.effective_members += state.effective.is_none() as usize;
            self.owners += (role == OrgRole::Owner) as usize;
            self.owners -= (state.effective == Some(OrgRole::Owner)) as usize;
            state.effective = Some(role);
        }
        self.memberships.insert(name.into(), record);
    }

    /// Forgets a deleted Membership.
    pub fn remove_membership(&mut self, name: &str) {
        let Some(record) = self.memberships.remove(name) else {
            return;
        };
        let Some(state) = self.subjects.get_mut(&record.subject) else {
            return;
        };
        state
            .claimants
            .retain(|(created, n)| (*created, &**n) != (record.created, name));
        if record.effective_role.is_some() && state.effective == record.effective_role {
            state.effective = None;
            self.effective_members -= 1;
            self.owners -= (record.effective_role == Some(OrgRole::Owner)) as usize;
        }
        if state.claimants.is_empty() && state.effective.is_none() {
            self.subjects.remove(&record.subject);
        }
    }

    /// Records a new or changed Invite.
    pub fn upsert_invite(&mut self, invite: &Invite) {
        let name = invite.name_any();
        self.remove_invite(&name);
        let pending = invite
            .status
            .as_ref()
            .is_none_or(|s| s.phase.is_none_or(|p| p == InvitePhase::Pending));
        if pending && !invite.spec.revoked {
            let admin = invite.spec.role == OrgRole::Admin;
            self.pending_admin_invites += admin as usize;
            self.pending_invites.insert(name, admin);
        }
    }

    /// Forgets a deleted Invite.
    pub fn remove_invite(&mut self, name: &str) {
        if let Some(admin) = self.pending_invites.remove(name) {
            self.pending_admin_invites -= admin as usize;
        }
    }

    /// The highest effective role among the user's own Membership and those of their groups.
    pub fn role_of(&self, username: &str, groups: &[String]) -> Option<OrgRole> {
        let user = self.effective_role(&Subject::User(username.to_string()));
        groups
            .iter()
            .filter_map(|g| self.effective_role(&Subject::Group(g.clone())))
            .chain(user)
            .max()
    }

    /// The effective role of a subject's own Membership.
    pub fn effective_role(&self, subject: &Subject) -> Option<OrgRole> {
        self.subjects.get(subject).and_then(|s| s.effective)
    }

    /// The Membership that claims a subject, if any.
    pub fn claimed_by(&self, subject: &Subject) -> Option<&str> {
        self.subjects
            .get(subject)
            .and_then(|s| s.claimants.first())
            .map(|(_, name)| &**name)
    }

    /// Effective owners (users and groups).
    pub fn owners(&self) -> usize {
        self.owners
    }

    /// Effective Memberships.
    pub fn effective_members(&self) -> usize {
        self.effective_members
    }

    /// Invites that are still usable and grant admin.
    pub fn pending_admin_invites(&self) -> usize {
        self.pending_admin_invites
    }

    /// Whether the Organization exists and is being deleted.
    pub fn organization_deleting(&self) -> bool {
        self.organization
            .as_ref()
            .is_some_and(|o| o.meta().deletion_timestamp.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(name: &str, user: &str, created: i64, active: Option<OrgRole>) -> Membership {
        let mut m: Membership = serde_json::from_value(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
            "metadata": { "name": name, "creationTimestamp": Timestamp::from_second(created).unwrap() },
            "spec": { "user": user, "role": "member" }
        }))
        .unwrap();
        m.status = active.map(|role| crate::api::MembershipStatus {
            phase: Some(MembershipPhase::Active),
            effective_role: Some(role),
            ..Default::default()
        });
        m
    }

    #[test]
    fn the_next_duplicate_takes_over_the_claim_when_the_first_goes() {
        let first = membership("first", "ada@x.example", 1, Some(OrgRole::Owner));
        let second = membership("second", "ada@x.example", 2, None);
        let mut index = OrgIndex::new(None, [&second, &first], []);
        let ada = Subject::User("ada@x.example".into());
        assert_eq!(index.claimed_by(&ada), Some("first"));
        assert_eq!(index.owners(), 1);
        index.remove_membership("first");
        assert_eq!(index.claimed_by(&ada), Some("second"));
        assert_eq!(index.owners(), 0);
        assert_eq!(index.role_of("ada@x.example", &[]), None);
        index.remove_membership("second");
        assert_eq!(index.claimed_by(&ada), None);
    }

    #[test]
    fn role_of_takes_the_highest_of_user_and_groups() {
        let mut group = membership("eng", "unused", 1, Some(OrgRole::Admin));
        group.spec.user = None;
        group.spec.group = Some("eng".into());
        let own = membership("ada", "ada@x.example", 2, Some(OrgRole::Viewer));
        let index = OrgIndex::new(None, [&group, &own], []);
        assert_eq!(index.role_of("ada@x.example", &[]), Some(OrgRole::Viewer));
        assert_eq!(
            index.role_of("ada@x.example", &["eng".into()]),
            Some(OrgRole::Admin)
        );
        assert_eq!(index.role_of("bob@x.example", &["ops".into()]), None);
        assert_eq!(index.effective_members(), 2);
    }
}
