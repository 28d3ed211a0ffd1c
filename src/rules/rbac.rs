//! RBAC derivation: effective org and team roles become Kubernetes RBAC. Pure builders: from the effective
//! state, the ClusterRoles roster ships and the RoleBindings one organization should have.
//!
//! Bindings follow the *effective* role (status), never the desired one, so a held last-owner
//! demotion keeps its access, and a Pending member has none.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, PolicyRule, RoleBinding, RoleRef, Subject as RbacSubject,
};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::{
    Membership, MembershipPhase, MembershipStatus, OrgRole, Organization, Subject, Team, TeamRole,
};
use crate::names::{NAME_MAX, bounded_name, label_value};

pub use crate::names::{
    DATA_REGION_LABEL, MANAGED_BY, MEMBERSHIP_LABEL, ORGANIZATION_LABEL, TEAM_LABEL,
};

/// The ClusterRole an org role gets in the org namespace.
pub fn org_namespace_role(role: OrgRole) -> String {
    format!("roster-org-{role}")
}

fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec!["roster.dev".into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(MANAGED_BY.0.into(), MANAGED_BY.1.into())])),
            ..Default::default()
        },
        rules: Some(rules),
        ..Default::default()
    }
}

/// The ClusterRoles roster ships for managing roster objects in an org namespace. RBAC lets owners
/// and admins write; the webhook then limits what each role may do.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let read = ["get", "list", "watch"];
    let write = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let kinds = ["organizations", "memberships", "invites", "teams"];
    let managers = |name: &str| {
        cluster_role(
            name,
            vec![
                rule(
                    &["organizations"],
                    &["get", "list", "watch", "update", "patch", "delete"],
                ),
                rule(&["memberships", "invites", "teams"], &write),
                rule(
                    &[
                        "organizations/status",
                        "memberships/status",
                        "invites/status",
                        "teams/status",
                    ],
                    &read,
                ),
                // Invite codes, to hand them to the people invited.
                PolicyRule {
                    api_groups: Some(vec!["".into()]),
                    resources: Some(vec!["secrets".into()]),
                    verbs: read.iter().map(|v| v.to_string()).collect(),
                    ..Default::default()
                },
            ],
        )
    };
    vec![
        managers("roster-org-owner"),
        managers("roster-org-admin"),
        // Members and viewers read; every Membership may still leave (delete itself), which the
        // webhook allows for oneself: RBAC gives delete on memberships for that.
        cluster_role(
            "roster-org-member",
            vec![
                rule(&kinds, &read),
                rule(&["memberships"], &["delete"]),
                rule(&["teams"], &["update", "patch"]),
            ],
        ),
        cluster_role(
            "roster-org-viewer",
            vec![rule(&kinds, &read), rule(&["memberships"], &["delete"])],
        ),
        // Any authenticated user may create a Membership; the webhook admits only invite
        // redemptions and selfJoin domain matches from non-members. Bound only if the installer
        // asks, so to everyone: nothing to read, since an org's profile, policy and people are for
        // its members (joining needs only the invite's name, code and role, which the inviter hands
        // out).
        cluster_role(
            "roster-self-service",
            vec![rule(&["memberships"], &["create"])],
        ),
    ]
}

fn rbac_subject(s: &Subject) -> RbacSubject {
    match s {
        Subject::User(u) => RbacSubject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: u.clone(),
            namespace: None,
        },
        Subject::Group(g) => RbacSubject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: g.clone(),
            namespace: None,
        },
    }
}

/// Short, stable, DNS-safe suffix for a subject (names may hold `@` and `:`).
fn subject_key(s: &Subject) -> String {
    let text = match s {
        Subject::User(u) => format!("u:{u}"),
        Subject::Group(g) => format!("g:{g}"),
    };
    crate::names::hash_hex(&text)
}

fn binding(
    name: String,
    namespace: &str,
    labels: BTreeMap<String, String>,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    cluster_role: &str,
    subject: &Subject,
) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: cluster_role.into(),
        },
        subjects: Some(vec![rbac_subject(subject)]),
    }
}

/// Which workload namespaces an organization may use, and why others were refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    pub granted: Vec<String>,
    /// Namespace and the reason it was refused.
    pub refused: Vec<(String, String)>,
}

/// Decides the organization's workload namespaces: never an excluded one, and a namespace listed by
/// two organizations goes to the older (by creation time, then org namespace).
pub fn claims(
    org: &Organization,
    all_orgs: &[&Organization],
    excluded: &BTreeSet<String>,
) -> Claims {
    let own_ns = org.namespace().unwrap_or_default();
    let key = super::age::across_namespaces_key;
    let mut out = Claims::default();
    for ns in &org.spec.access.namespaces {
        if excluded.contains(ns) {
            out.refused
                .push((ns.clone(), format!("{ns} is excluded by the installer")));
        } else if *ns == own_ns {
            out.refused.push((
                ns.clone(),
                "the org namespace is not a workload namespace".into(),
            ));
        } else if all_orgs
            .iter()
            .any(|o| o.namespace().as_deref() == Some(ns.as_str()))
        {
            // Its Secrets are another org's invite codes, its roster objects another org's.
            out.refused.push((
                ns.clone(),
                format!("{ns} is another organization's org namespace"),
            ));
        } else if let Some(first) = all_orgs
            .iter()
            .filter(|o| {
                // One in an excluded namespace is no organization and claims nothing.
                o.meta().deletion_timestamp.is_none()
                    && o.spec.access.namespaces.contains(ns)
                    && !o.namespace().is_some_and(|n| excluded.contains(&n))
            })
            .min_by_key(|o| key(o))
            .filter(|o| key(o) < key(org))
        {
            out.refused.push((
                ns.clone(),
                format!(
                    "{ns} is already given to the organization in namespace {}",
                    first.namespace().unwrap_or_default()
                ),
            ));
        } else {
            out.granted.push(ns.clone());
        }
    }
    out
}

fn effective(m: &Membership, status: &MembershipStatus) -> Option<(Subject, OrgRole)> {
    // A held owner being deleted is still Active, so it keeps its access until it goes.
    if status.phase != Some(MembershipPhase::Active) {
        return None;
    }
    Some((m.spec.subject()?, status.effective_role?))
}

/// Every RoleBinding the organization should have, from the effective statuses of its Memberships
/// (each Membership with its effective status, which may be newer than the one it carries) and
/// Teams, handed to `out` one at a time: an org of 10,000 members has 10,000 of them, and the
/// controller keeps only those that differ from what exists. `allowed` is the installer's
/// ClusterRole allow-list: nothing else is ever bound.
pub fn each_binding(
    org: &Organization,
    claims: &Claims,
    memberships: &[(&Membership, &MembershipStatus)],
    teams: &[Team],
    allowed: &BTreeSet<String>,
    mut out: impl FnMut(RoleBinding),
) {
    let org_ns = org.namespace().unwrap_or_default();
    let labels = |extra: (&str, String)| {
        BTreeMap::from([
            (ORGANIZATION_LABEL.to_string(), org_ns.clone()),
            (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
            (extra.0.to_string(), extra.1),
        ])
    };
    let mut effective_subjects = BTreeSet::new();
    for &(m, status) in memberships {
        let Some((subject, role)) = effective(m, status) else {
            continue;
        };
        effective_subjects.insert(subject.clone());
        let name = m.name_any();
        let owner = m.controller_owner_ref(&()).map(|mut o| {
            o.controller = Some(false);
            o.block_owner_deletion = None;
            o
        });
        out(binding(
            bounded_name("roster-member-", &name, NAME_MAX),
            &org_ns,
            labels((MEMBERSHIP_LABEL, label_value(&name))),
            owner,
            &org_namespace_role(role),
            &subject,
        ));
        let cluster_role = org.spec.access.cluster_roles.for_role(role);
        if !allowed.contains(cluster_role) {
            continue;
        }
        for ns in &claims.granted {
            out(binding(
                // `member-` and `team-` keep a Membership's name from ever spelling a team
                // binding's (one org's bindings share a workload namespace).
                bounded_name(&format!("roster-{org_ns}-member-"), &name, NAME_MAX),
                ns,
                labels((MEMBERSHIP_LABEL, label_value(&name))),
                None,
                cluster_role,
                &subject,
            ));
        }
    }
    let org_mapped = org.spec.access.cluster_roles.all();
    for team in teams
        .iter()
        .filter(|t| t.spec.active && t.meta().deletion_timestamp.is_none())
    {
        let Some(access) = &team.spec.access else {
            continue;
        };
        for member in &team.spec.members {
            let Some(subject) = member.subject() else {
                continue;
            };
            if !effective_subjects.contains(&subject) {
                continue; // unresolved: no org membership, no team access
            }
            let cluster_role = team_cluster_role(access, member.role);
            // Only what the installer allows and the platform mapped for this org (the webhook
            // keeps teams within that; this holds even if it was bypassed).
            if !allowed.contains(cluster_role) || !org_mapped.contains(&cluster_role) {
                continue;
            }
            for ns in access
                .namespaces
                .iter()
                .filter(|n| claims.granted.contains(n))
            {
                out(binding(
                    bounded_name(
                        &format!("roster-{org_ns}-team-"),
                        &format!("{}-{}", team.name_any(), subject_key(&subject)),
                        NAME_MAX,
                    ),
                    ns,
                    labels((TEAM_LABEL, label_value(&team.name_any()))),
                    None,
                    cluster_role,
                    &subject,
                ));
            }
        }
    }
}

fn team_cluster_role(access: &crate::api::TeamAccess, role: TeamRole) -> &str {
    let m = &access.cluster_roles;
    match role {
        TeamRole::Owner => &m.owner,
        TeamRole::Admin => &m.admin,
        TeamRole::Moderator => &m.moderator,
        TeamRole::Member => &m.member,
        TeamRole::Viewer => &m.viewer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MembershipStatus, Team};

    fn bindings(
        org: &Organization,
        claims: &Claims,
        memberships: &[(&Membership, &MembershipStatus)],
        teams: &[Team],
        allowed: &BTreeSet<String>,
    ) -> Vec<RoleBinding> {
        let mut out = Vec::new();
        each_binding(org, claims, memberships, teams, allowed, |b| out.push(b));
        out
    }

    fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    /// A Membership named like a team binding's suffix gets bindings of its own, never the team's.
    #[test]
    fn membership_and_team_bindings_never_share_a_name() {
        let org: Organization = from_json(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
            "metadata": { "name": "org", "namespace": "acme" },
            "spec": { "access": { "namespaces": ["work"] } }
        }));
        let alice = Subject::User("alice@example.com".into());
        let team: Team = from_json(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Team",
            "metadata": { "name": "dev", "namespace": "acme" },
            "spec": { "members": [{ "user": "alice@example.com", "role": "owner" }],
                      "access": { "namespaces": ["work"] } }
        }));
        let membership = |name: String, user: &str| -> Membership {
            from_json(serde_json::json!({
                "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
                "metadata": { "name": name, "namespace": "acme" },
                "spec": { "user": user, "role": "member" }
            }))
        };
        let active = MembershipStatus {
            phase: Some(MembershipPhase::Active),
            effective_role: Some(OrgRole::Member),
            ..Default::default()
        };
        let members = [
            membership("alice".into(), "alice@example.com"),
            membership(
                format!("team-dev-{}", subject_key(&alice)),
                "mallory@example.com",
            ),
        ];
        let pairs: Vec<(&Membership, &MembershipStatus)> =
            members.iter().map(|m| (m, &active)).collect();
        let claims = Claims {
            granted: vec!["work".into()],
            refused: vec![],
        };
        let allowed = ["admin", "edit", "view"].map(String::from).into();
        let all = bindings(&org, &claims, &pairs, &[team], &allowed);
        let keys: BTreeSet<(String, String)> = all
            .iter()
            .map(|b| (b.namespace().unwrap(), b.name_any()))
            .collect();
        assert_eq!(
            keys.len(),
            all.len(),
            "every binding has a name of its own: {keys:?}"
        );
        assert_eq!(
            all.len(),
            5,
            "two per member, one for the team member: {keys:?}"
        );

        // A team that names a ClusterRole the platform allows but did not map for this org grants
        // nothing with it (the webhook refuses such a team; this holds if it was bypassed).
        let mut beyond = team_with_owner_role("monitoring-edit");
        beyond.metadata.name = Some("ops".into());
        let allowed = ["admin", "edit", "view", "monitoring-edit"]
            .map(String::from)
            .into();
        let all = bindings(&org, &claims, &pairs, &[beyond], &allowed);
        assert!(
            all.iter().all(|b| b.role_ref.name != "monitoring-edit"),
            "{all:?}"
        );
    }

    #[test]
    fn another_organizations_namespace_is_never_a_workload_namespace() {
        let org = |ns: &str, access: &[&str]| -> Organization {
            from_json(serde_json::json!({
                "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
                "metadata": { "name": ns, "namespace": ns },
                "spec": { "access": { "namespaces": access } }
            }))
        };
        let (a, b) = (org("a", &["b", "work"]), org("b", &[]));
        let claims = claims(&a, &[&a, &b], &BTreeSet::new());
        assert_eq!(claims.granted, ["work"]);
        assert_eq!(claims.refused.len(), 1);
        assert!(
            claims.refused[0].1.contains("another organization"),
            "{claims:?}"
        );
    }

    fn team_with_owner_role(cluster_role: &str) -> Team {
        from_json(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Team",
            "metadata": { "name": "dev", "namespace": "acme" },
            "spec": { "members": [{ "user": "alice@example.com", "role": "owner" }],
                      "access": { "namespaces": ["work"], "clusterRoles": { "owner": cluster_role } } }
        }))
    }
}
