//! An index of one organization's effective state, so that a decision costs O(1) lookups however
//! large the organization is. Built from the objects' statuses (what the controller made effective)
//! and kept current with `upsert`/`remove` as the caches change.

use std::collections::HashMap;

use kube::{Resource, ResourceExt};

use crate::api::{
    Invite, InvitePhase, Membership, MembershipPhase, OrgRole, Organization, Subject,
};

/// One Membership as the index remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// The role in force; `None` unless the Membership is Active.
    pub effective_role: Option<OrgRole>,
    pub deleting: bool,
}

/// The effective state of one organization, indexed for decisions.
#[derive(Clone, Debug, Default)]
pub struct OrgIndex {
    /// The Organization of the namespace, if any.
    pub organization: Option<Organization>,
    /// Every Membership by name, with the subject it names.
    memberships: HashMap<String, (Subject, Entry)>,
    /// Which Membership claims a subject (the oldest, as the controller decides duplicates).
    claims: HashMap<Subject, String>,
    /// Active Memberships by subject.
    effective: HashMap<Subject, OrgRole>,
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
        ms.sort_by_key(|m| {
            (
                m.meta().creation_timestamp.as_ref().map(|t| t.0),
                m.name_any(),
            )
        });
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
        let status = m.status.as_ref();
        let effective_role = status
            .filter(|s| s.phase == Some(MembershipPhase::Active))
            .and_then(|s| s.effective_role);
        let entry = Entry {
            name: name.clone(),
            effective_role,
            deleting: m.meta().deletion_timestamp.is_some(),
        };
        if !entry.deleting {
            self.claims
                .entry(subject.clone())
                .or_insert_with(|| name.clone());
        }
        if let Some(role) = effective_role {
            if role == OrgRole::Owner {
                self.owners += 1;
            }
            self.effective.insert(subject.clone(), role);
        }
        self.memberships.insert(name, (subject, entry));
    }

    /// Forgets a deleted Membership.
    pub fn remove_membership(&mut self, name: &str) {
        let Some((subject, entry)) = self.memberships.remove(name) else {
            return;
        };
        if self.claims.get(&subject).is_some_and(|n| n == name) {
            self.claims.remove(&subject);
        }
        if entry.effective_role.is_some()
            && self.effective.get(&subject) == entry.effective_role.as_ref()
        {
            self.effective.remove(&subject);
            if entry.effective_role == Some(OrgRole::Owner) {
                self.owners -= 1;
            }
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
        let user = self
            .effective
            .get(&Subject::User(username.to_string()))
            .copied();
        groups
            .iter()
            .filter_map(|g| self.effective.get(&Subject::Group(g.clone())).copied())
            .chain(user)
            .max()
    }

    /// The effective role of a subject's own Membership.
    pub fn effective_role(&self, subject: &Subject) -> Option<OrgRole> {
        self.effective.get(subject).copied()
    }

    /// The Membership that claims a subject, if any.
    pub fn claimed_by(&self, subject: &Subject) -> Option<&str> {
        self.claims.get(subject).map(String::as_str)
    }

    /// Effective owners (users and groups).
    pub fn owners(&self) -> usize {
        self.owners
    }

    /// Effective Memberships.
    pub fn effective_members(&self) -> usize {
        self.effective.len()
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
