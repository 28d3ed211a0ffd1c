//! `kubectl roster status`: readiness, owners, seats, invites and the caller's role.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::members::{memberships, phase_str};
use super::output::{Names, emit, kind, table};
use super::session::{Me, Session, whoami};
use crate::api::{Membership, OrgRole, Organization};
use crate::rules::conditions;
use crate::rules::effective::condition;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusView {
    namespace: String,
    organization: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    ready: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ready_message: Option<String>,
    owners: Vec<String>,
    admins: Vec<String>,
    members: i32,
    seats_used: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    seat_limit: Option<i32>,
    pending_invites: i32,
    /// Memberships by phase.
    phases: BTreeMap<String, usize>,
    you: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    your_role: Option<OrgRole>,
    conditions: Vec<ConditionRow>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConditionRow {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: String,
    message: String,
}

/// `kubectl roster status`: the organization at a glance.
pub(super) async fn status(s: &Session) -> anyhow::Result<()> {
    let org = organization(s).await?;
    let me = whoami(&s.client).await?;
    let all = memberships(s).await?;
    let view = status_view(s, &org, &me, &all);
    emit(
        s,
        &view,
        Names::one(kind::ORGANIZATION, &org.name_any()),
        || text(&view),
    )
}

/// The namespace's organization: its oldest Organization.
pub(super) async fn organization(s: &Session) -> anyhow::Result<Organization> {
    let orgs: Api<Organization> = Api::namespaced(s.client.clone(), &s.namespace);
    let list = match orgs.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 403 => bail!(
            "you may not read the organization in {}: only its members may (if you just joined, your Membership is not Active yet)",
            s.namespace
        ),
        Err(e) => {
            return Err(
                anyhow::Error::from(e).context(format!("read the Organization in {}", s.namespace))
            );
        }
    };
    crate::rules::organization_of(&list)
        .cloned()
        .ok_or_else(|| anyhow!("there is no Organization in namespace {}", s.namespace))
}

/// What `status` shows, from the Organization's status and the Memberships.
fn status_view(s: &Session, org: &Organization, me: &Me, all: &[Membership]) -> StatusView {
    // The highest effective role among your own Membership and your groups', as the webhook sees it.
    let your_role = crate::rules::OrgIndex::new(None, all, []).role_of(&me.username, &me.groups);
    let mut phases = BTreeMap::new();
    for m in all {
        *phases
            .entry(phase_str(m.status.as_ref().and_then(|s| s.phase)).to_string())
            .or_default() += 1;
    }
    let st = org.status.clone().unwrap_or_default();
    let ready = conditions::find(&st.conditions, condition::READY);
    StatusView {
        namespace: s.namespace.clone(),
        organization: org.name_any(),
        display_name: org.spec.display_name.clone(),
        ready: ready.map_or_else(|| "Unknown".into(), |c| c.status.clone()),
        ready_message: ready.map(|c| c.message.clone()),
        owners: st.owners.clone(),
        admins: st.admins.clone(),
        members: st.members,
        seats_used: st.seats.used,
        seat_limit: st.seats.limit,
        pending_invites: st.pending_invites,
        phases,
        you: me.username.clone(),
        your_role,
        conditions: st
            .conditions
            .iter()
            .map(|c| ConditionRow {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
            .collect(),
    }
}

/// `status` as text.
fn text(view: &StatusView) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let seats = match view.seat_limit {
        Some(l) => format!("{} of {l} used", view.seats_used),
        None => format!("{} used, no limit", view.seats_used),
    };
    let phases: Vec<String> = view
        .phases
        .iter()
        .map(|(p, n)| format!("{n} {p}"))
        .collect();
    let mut out = format!(
        "Organization:     {} ({})\nNamespace:        {}\nReady:            {}{}\nOwners:           {}\nAdmins:           {}\nMembers:          {} effective ({})\nSeats:            {seats}\nPending invites:  {}\nYou:              {} ({})\n\nConditions:\n",
        view.organization,
        view.display_name.as_deref().unwrap_or("no display name"),
        view.namespace,
        view.ready,
        view.ready_message
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default(),
        list(&view.owners),
        list(&view.admins),
        view.members,
        if phases.is_empty() {
            "no Memberships".to_string()
        } else {
            phases.join(", ")
        },
        view.pending_invites,
        view.you,
        view.your_role
            .map_or_else(|| "not a member".to_string(), |r| r.to_string()),
    );
    let rows: Vec<Vec<String>> = view
        .conditions
        .iter()
        .map(|c| {
            vec![
                format!("  {}", c.type_),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["  TYPE", "STATUS", "REASON", "MESSAGE"],
        &rows,
        true,
    ));
    out
}
