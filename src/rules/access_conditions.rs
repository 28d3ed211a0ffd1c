//! The `AccessSynced` conditions: how the access step went for the Organization and for each Team
//! with `spec.access`, and where that leaves them (failed writes are retried; refused namespaces and
//! unmapped ClusterRoles wait for a person). `roster check` asks the same questions offline.

use super::conditions::{Standing, Want};
use super::rbac::Claims;
use super::reason::ConditionReason;
use crate::api::{Organization, Team};

pub const ACCESS_SYNCED: &str = "AccessSynced";

/// What the access step did: the namespaces claimed, and the bindings that could not be written.
pub struct Synced {
    pub claims: Claims,
    /// Bindings that could not be written, with the error, in a stable order.
    pub failures: Vec<String>,
}

/// The `AccessSynced` condition of the Organization, and where it leaves the Organization: failed
/// writes are retried, refused namespaces wait for a person.
pub fn org_access(synced: &Synced) -> (Want, Standing) {
    if !synced.failures.is_empty() {
        let message = synced.failures.join("; ");
        let want = Want::new(
            ACCESS_SYNCED,
            false,
            ConditionReason::BindingFailed,
            message,
        );
        (want, Standing::Reconciling)
    } else if !synced.claims.refused.is_empty() {
        let why: Vec<&str> = synced
            .claims
            .refused
            .iter()
            .map(|(_, why)| why.as_str())
            .collect();
        let message = format!("spec.access.namespaces: {}", why.join("; "));
        let want = Want::new(
            ACCESS_SYNCED,
            false,
            ConditionReason::NamespaceRefused,
            message,
        );
        (want, Standing::Stalled)
    } else {
        let message = format!(
            "RoleBindings match the effective roles in {} workload namespace(s)",
            synced.claims.granted.len()
        );
        (
            Want::new(ACCESS_SYNCED, true, ConditionReason::Synced, message),
            Standing::Current,
        )
    }
}

/// The `AccessSynced` condition of a Team with `spec.access`, and where it leaves the Team.
pub fn team_access(
    team: &Team,
    org: Option<&Organization>,
    synced: &Synced,
) -> Option<(Want, Standing)> {
    let access = team.spec.access.as_ref()?;
    // Team roles bind only ClusterRoles the Organization's platform-set mapping uses.
    let unmapped: Vec<&str> = org.map_or_else(Vec::new, |o| {
        let mapped = o.spec.access.cluster_roles.all();
        let mut unmapped: Vec<&str> = access
            .cluster_roles
            .all()
            .into_iter()
            .filter(|cr| !mapped.contains(cr))
            .collect();
        unmapped.dedup();
        unmapped
    });
    let missing: Vec<&str> = access
        .namespaces
        .iter()
        .filter(|n| !synced.claims.granted.contains(n))
        .map(String::as_str)
        .collect();
    let (standing, reason, message) = if !team.spec.active {
        (
            Standing::Current,
            ConditionReason::Deactivated,
            "the team is deactivated and grants no access".to_string(),
        )
    } else if !missing.is_empty() {
        (
            Standing::Stalled,
            ConditionReason::NamespaceNotGranted,
            format!(
                "{} not among the Organization's workload namespaces (spec.access.namespaces of the Organization)",
                missing.join(", ")
            ),
        )
    } else if !unmapped.is_empty() {
        (
            Standing::Stalled,
            ConditionReason::ClusterRoleNotMapped,
            format!(
                "spec.access.clusterRoles names {}, which the Organization's spec.access.clusterRoles does not use: team roles mapped to it grant nothing (ask a platform principal to map it, or name one the Organization uses)",
                unmapped.join(", ")
            ),
        )
    } else if !synced.failures.is_empty() {
        (
            Standing::Reconciling,
            ConditionReason::BindingFailed,
            "see the Organization's AccessSynced condition".to_string(),
        )
    } else {
        (
            Standing::Current,
            ConditionReason::Synced,
            "team members have the access of their team roles".to_string(),
        )
    };
    let synced = standing == Standing::Current;
    Some((Want::new(ACCESS_SYNCED, synced, reason, message), standing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::rbac::Claims;

    #[test]
    fn a_team_naming_a_cluster_role_the_organization_does_not_map_says_so() {
        let org: Organization = serde_json::from_value(serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
            "metadata": { "name": "org", "namespace": "acme" },
            "spec": { "access": { "namespaces": ["work"] } }
        }))
        .unwrap();
        let team = |owner_role: &str| -> Team {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "roster.dev/v1alpha1", "kind": "Team",
                "metadata": { "name": "ops", "namespace": "acme", "generation": 1 },
                "spec": { "members": [{ "user": "a@example.com", "role": "owner" }],
                          "access": { "namespaces": ["work"], "clusterRoles": { "owner": owner_role } } }
            }))
            .unwrap()
        };
        let synced = Synced {
            claims: Claims {
                granted: vec!["work".into()],
                refused: vec![],
            },
            failures: vec![],
        };
        let (unmapped, standing) =
            team_access(&team("monitoring-edit"), Some(&org), &synced).unwrap();
        assert!(!unmapped.status);
        assert_eq!(standing, Standing::Stalled);
        assert_eq!(
            unmapped.reason,
            ConditionReason::ClusterRoleNotMapped.as_str()
        );
        assert!(
            unmapped.message.contains("monitoring-edit"),
            "{}",
            unmapped.message
        );
        let (mapped, standing) = team_access(&team("admin"), Some(&org), &synced).unwrap();
        assert_eq!(
            (mapped.status, mapped.reason.as_ref(), standing),
            (true, ConditionReason::Synced.as_str(), Standing::Current)
        );
    }
}
