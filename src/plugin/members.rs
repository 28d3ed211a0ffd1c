//! `kubectl roster members` and `member`: the list, role changes and removals; and reading
//! Memberships for the other commands.

use std::time::Duration;

use crate::rules::age_key;
use anyhow::{Context as _, anyhow, bail};
use clap::Subcommand;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch};
use serde::Serialize;

use super::args::{org_role, parse_timeout};
use super::output::{Names, emit, kind, or_dash};
use super::session::{Me, Session, is_forbidden, wait_for};
use crate::api::{Membership, MembershipPhase, OrgRole};
use crate::rules::conditions;
use crate::rules::effective::condition;

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// List the organization's Memberships (the same as `kubectl roster members`).
    List,
    /// Change a member's role; waits until roster has applied it (a last owner's demotion is
    /// held until another owner is in place).
    SetRole {
        /// The member: a username, `group:NAME`, or `membership/NAME` for a Membership by name.
        member: String,
        /// The new role.
        #[arg(value_parser = org_role())]
        role: OrgRole,
        /// How long to wait for roster to apply it, such as 30s (0: do not wait; a bare number
        /// counts as seconds).
        #[arg(long, value_parser = parse_timeout, default_value = "30s", value_name = "DURATION")]
        timeout: Duration,
    },
    /// Remove a member from the organization (deletes their Membership).
    Remove {
        /// The member: a username, `group:NAME`, or `membership/NAME` for a Membership by name.
        member: String,
    },
}

/// `kubectl roster member ...`.
pub(super) async fn run(s: &Session, command: MemberCommand) -> anyhow::Result<()> {
    match command {
        MemberCommand::List => members(s).await,
        MemberCommand::SetRole {
            member,
            role,
            timeout,
        } => set_role(s, &member, role, timeout).await,
        MemberCommand::Remove { member } => remove(s, &member).await,
    }
}

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

pub(super) fn api(s: &Session) -> Api<Membership> {
    Api::namespaced(s.client.clone(), &s.namespace)
}

pub(super) async fn memberships(s: &Session) -> anyhow::Result<Vec<Membership>> {
    Ok(api(s)
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
    let names = Names::all(kind::MEMBERSHIP, rows.iter().map(|r| &r.name));
    emit(s, &rows, names, || {
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
        s.table(
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

/// `user`, or `group:NAME`, as the tables show a Membership's subject.
pub(super) fn subject_of(m: &Membership) -> String {
    match (&m.spec.user, &m.spec.group) {
        (Some(u), _) => u.clone(),
        (None, Some(g)) => format!("group:{g}"),
        _ => "-".into(),
    }
}

/// The Membership a command names: `membership/NAME` (or `membership.roster.dev/NAME`, as
/// `-o name` prints it) by name, `group:NAME` by group, anything else by username, or else by
/// name when no Membership has that username.
pub(super) async fn resolve(s: &Session, member: &str) -> anyhow::Result<Membership> {
    let by_name = ["membership/", "membership.roster.dev/", "mem/"]
        .iter()
        .find_map(|p| member.strip_prefix(p));
    if let Some(name) = by_name {
        return api(s)
            .get(name)
            .await
            .with_context(|| format!("read Membership {name} in {}", s.namespace));
    }
    let all = memberships(s).await?;
    let live = |m: &&Membership| m.metadata.deletion_timestamp.is_none();
    let oldest = |ms: Vec<&Membership>| ms.into_iter().min_by_key(|m| age_key(*m)).cloned();
    let subject = match member.strip_prefix("group:") {
        Some(group) => oldest(
            all.iter()
                .filter(live)
                .filter(|m| m.spec.group.as_deref() == Some(group))
                .collect(),
        ),
        None => oldest(
            all.iter()
                .filter(live)
                .filter(|m| m.spec.user.as_deref() == Some(member))
                .collect(),
        ),
    };
    let named = all.iter().find(|m| m.name_any() == member);
    match (subject, named) {
        (Some(a), Some(b)) if a.name_any() != b.name_any() => bail!(
            "{member} is the user of Membership {} and the name of Membership {} ({}): say membership/{member} for the one named so",
            a.name_any(),
            b.name_any(),
            subject_of(b)
        ),
        (Some(m), _) => Ok(m),
        (None, Some(m)) => Ok(m.clone()),
        (None, None) => bail!(
            "{member} holds no Membership in {} (name a username, group:NAME or membership/NAME; `kubectl roster -n {} members` lists them)",
            s.namespace,
            s.namespace
        ),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleChanged {
    namespace: String,
    membership: String,
    subject: String,
    from: OrgRole,
    to: OrgRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_role: Option<OrgRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<MembershipPhase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    dry_run: bool,
}

/// `member set-role`: one merge patch of spec.role as the caller, so that the webhook decides
/// (an admin may not make admins), then the role roster put in force.
async fn set_role(
    s: &Session,
    member: &str,
    role: OrgRole,
    timeout: Duration,
) -> anyhow::Result<()> {
    let m = resolve(s, member).await?;
    let (name, subject, from) = (m.name_any(), subject_of(&m), m.spec.role);
    let patch = serde_json::json!({ "spec": { "role": role } });
    let updated = api(s)
        .patch(&name, &s.patch_params(), &Patch::Merge(patch))
        .await
        .with_context(|| {
            format!("change the role of {subject} (Membership {name}) from {from} to {role}")
        })?;
    let applied = if s.dry_run || timeout.is_zero() {
        None
    } else {
        Some(applied(s, &name, updated.metadata.generation, timeout).await?)
    };
    let (reason, message) = applied.as_ref().map(note).unwrap_or_default();
    let status = applied.and_then(|m| m.status).unwrap_or_default();
    let out = RoleChanged {
        namespace: s.namespace.clone(),
        membership: name.clone(),
        subject,
        from,
        to: role,
        effective_role: status.effective_role,
        phase: status.phase,
        reason,
        message,
        dry_run: s.dry_run,
    };
    emit(s, &out, Names::one(kind::MEMBERSHIP, &name), || {
        role_changed_text(s, &out)
    })
}

fn role_changed_text(s: &Session, out: &RoleChanged) -> String {
    let head = format!(
        "membership/{} ({}) role changed from {} to {}{}",
        out.membership,
        out.subject,
        out.from,
        out.to,
        s.dry()
    );
    match (&out.reason, &out.message, out.effective_role) {
        (Some(reason), Some(message), effective) => format!(
            "{head}, not in force yet (effective: {}): {reason}: {message}\n",
            or_dash(effective)
        ),
        (_, _, Some(effective)) => format!("{head}; in force as {effective}\n"),
        _ => format!("{head}\n"),
    }
}

/// Waits until roster has seen generation `generation` of Membership `name`.
async fn applied(
    s: &Session,
    name: &str,
    generation: Option<i64>,
    timeout: Duration,
) -> anyhow::Result<Membership> {
    let api = api(s);
    wait_for(
        &format!("roster to apply the change of Membership {name}"),
        timeout,
        || async {
            let m = api.get(name).await?;
            let seen = m.status.as_ref().and_then(|st| st.observed_generation);
            Ok((seen >= generation).then_some(m))
        },
    )
    .await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Removed {
    pub(super) namespace: String,
    pub(super) membership: String,
    pub(super) subject: String,
    /// True while the removal is held (the last owner leaving an org with members).
    pub(super) held: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) message: Option<String>,
    pub(super) dry_run: bool,
}

/// Deletes Membership `m` as the caller; returns what happened (a last owner's removal is held
/// by a finalizer until another owner is effective).
pub(super) async fn delete(s: &Session, m: &Membership) -> anyhow::Result<Removed> {
    let (name, subject) = (m.name_any(), subject_of(m));
    api(s)
        .delete(&name, &s.delete_params())
        .await
        .with_context(|| {
            format!(
                "remove {subject} from {} (delete Membership {name})",
                s.namespace
            )
        })?;
    let held = if s.dry_run {
        None
    } else {
        held_removal(s, &name).await
    };
    Ok(Removed {
        namespace: s.namespace.clone(),
        membership: name,
        subject,
        message: held.as_ref().and_then(|m| note(m).1),
        held: held.is_some(),
        dry_run: s.dry_run,
    })
}

/// The Membership if its deletion is held (within 3 s; owners carry a protection finalizer that
/// goes once another owner is effective), None once it is gone.
async fn held_removal(s: &Session, name: &str) -> Option<Membership> {
    let api = api(s);
    wait_for("the Membership to go", Duration::from_secs(3), || async {
        match api.get_opt(name).await? {
            None => Ok(Some(None)),
            Some(m)
                if conditions::find(
                    &m.status.clone().unwrap_or_default().conditions,
                    condition::ROLE_CHANGE_HELD,
                )
                .is_some_and(|c| c.status == "True") =>
            {
                Ok(Some(Some(m)))
            }
            Some(_) => Ok(None),
        }
    })
    .await
    .unwrap_or_default()
}

/// `member remove`.
async fn remove(s: &Session, member: &str) -> anyhow::Result<()> {
    let m = resolve(s, member).await?;
    let out = delete(s, &m).await?;
    emit(
        s,
        &out,
        Names::one(kind::MEMBERSHIP, &out.membership),
        || match &out.message {
            Some(message) => format!(
                "membership/{} is being deleted, but held: {message}\n",
                out.membership
            ),
            None => format!(
                "membership/{} ({}) removed from {}{}\n",
                out.membership,
                out.subject,
                out.namespace,
                s.dry()
            ),
        },
    )
}
