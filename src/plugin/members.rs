//! `kubectl roster members`, and reading Memberships for the other commands.

use crate::rules::age_key;
use anyhow::{Context as _, anyhow, bail};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::output::{emit, or_dash, table};
use super::session::{Me, Session, is_forbidden};
use crate::api::{Membership, MembershipPhase, OrgRole};
use crate::rules::conditions;
use crate::rules::effective::condition;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberRow {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    role: OrgRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_role: Option<OrgRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<MembershipPhase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    joined_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    deleting: bool,
}

pub(super) fn phase_str(p: Option<MembershipPhase>) -> &'static str {
    p.map_or("Unknown", MembershipPhase::as_str)
}

/// What a person should know about a Membership beyond its phase: why it is not in force, or the
/// change that is held.
pub(super) fn note(m: &Membership) -> (Option<String>, Option<String>) {
    let Some(status) = &m.status else {
        return (
            Some("NotReconciled".into()),
            Some("the operator has not seen it yet".into()),
        );
    };
    let held = conditions::find(&status.conditions, condition::ROLE_CHANGE_HELD)
        .filter(|c| c.status == "True");
    let ready = conditions::find(&status.conditions, condition::READY);
    match (held, ready) {
        (Some(c), _) => (Some(c.reason.clone()), Some(c.message.clone())),
        (None, Some(c)) if c.status != "True" => (Some(c.reason.clone()), Some(c.message.clone())),
        _ => (None, None),
    }
}

fn member_row(m: &Membership) -> MemberRow {
    let status = m.status.clone().unwrap_or_default();
    let (reason, message) = note(m);
    MemberRow {
        name: m.name_any(),
        user: m.spec.user.clone(),
        group: m.spec.group.clone(),
        role: m.spec.role,
        effective_role: status.effective_role,
        phase: status.phase,
        joined_at: status.joined_at.map(|t| t.0.to_string()),
        reason,
        message,
        deleting: m.metadata.deletion_timestamp.is_some(),
    }
}

pub(super) async fn memberships(s: &Session) -> anyhow::Result<Vec<Membership>> {
    let api: Api<Membership> = Api::namespaced(s.client.clone(), &s.namespace);
    Ok(api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("list Memberships in {}", s.namespace))?
        .items)
}

pub(super) async fn members(s: &Session) -> anyhow::Result<()> {
    let mut list = memberships(s).await?;
    // Leaders first, then by name.
    list.sort_by_key(|m| {
        let effective = m.status.as_ref().and_then(|s| s.effective_role);
        (std::cmp::Reverse(effective), m.name_any())
    });
    let rows: Vec<MemberRow> = list.iter().map(member_row).collect();
    emit(s, &rows, || {
        if rows.is_empty() {
            return format!("No Memberships in namespace {}.\n", s.namespace);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let subject = match (&r.user, &r.group) {
                    (Some(u), _) => u.clone(),
                    (None, Some(g)) => format!("group:{g}"),
                    _ => "-".into(),
                };
                let phase = if r.deleting {
                    format!("{} (leaving)", phase_str(r.phase))
                } else {
                    phase_str(r.phase).to_string()
                };
                let note = match (&r.reason, &r.message) {
                    (Some(reason), Some(message)) => format!("{reason}: {message}"),
                    _ => String::new(),
                };
                vec![
                    r.name.clone(),
                    subject,
                    r.role.to_string(),
                    or_dash(r.effective_role),
                    phase,
                    note,
                ]
            })
            .collect();
        table(
            &["NAME", "SUBJECT", "ROLE", "EFFECTIVE", "PHASE", "NOTE"],
            &cells,
        )
    })
}

/// The caller's own Membership (naming their username) in the session's namespace.
pub(super) async fn own_membership(s: &Session, me: &Me) -> anyhow::Result<Membership> {
    let all = match memberships(s).await {
        Ok(all) => all,
        // Members may list Memberships; someone who may not is no member (any more, since roster
        // removes a member's RoleBinding with their Membership).
        Err(e) if is_forbidden(&e) => bail!(
            "{} holds no Membership in {} that they may read: Memberships are readable to Active members only, so one that waits for a seat or was denied is not either; an org admin sees it with `kubectl roster -n {} members`",
            me.username,
            s.namespace,
            s.namespace
        ),
        Err(e) => return Err(e),
    };
    all.into_iter()
        .filter(|m| m.spec.user.as_deref() == Some(me.username.as_str()))
        .min_by(|a, b| {
            let deleting = |m: &Membership| m.metadata.deletion_timestamp.is_some();
            (deleting(a), age_key(a)).cmp(&(deleting(b), age_key(b)))
        })
        .ok_or_else(|| {
            anyhow!(
                "{} holds no Membership of their own in {} (a role through a group is left by leaving the group)",
                me.username,
                s.namespace
            )
        })
}
