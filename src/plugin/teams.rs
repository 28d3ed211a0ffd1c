//! `kubectl roster team`: list, show, create, add and remove members, set team roles, transfer
//! ownership, deactivate and activate.
//!
//! A team change is a read and one write of `spec.members` (or `spec.active`) as the caller, with
//! the read's resourceVersion as a precondition: the members list is written whole, so a change
//! someone made in between must not be overwritten (on a conflict the change is made again on the
//! fresh list). Roster's webhook decides who may do what: org admins anything, a team owner all but
//! `access`, a team admin only roles below admin.

use anyhow::{Context as _, anyhow, bail};
use clap::Subcommand;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch};
use serde::Serialize;

use super::args::{parse_subject, team_role};
use super::output::{Names, emit, kind, or_dash};
use super::session::{Session, retry_on_conflict, whoami};
use crate::api::{Subject, Team, TeamMember, TeamPhase, TeamRole, TeamSpec};

#[derive(Subcommand, Debug)]
pub enum TeamCommand {
    /// List the organization's teams.
    List,
    /// A team's members and their team roles.
    Show {
        /// The Team's name.
        team: String,
    },
    /// Create a team (org admins and owners). Its owner is you unless --owner says otherwise.
    Create {
        /// The Team's name.
        team: String,
        /// The team's owner: a username or group:NAME (default: you).
        #[arg(long)]
        owner: Option<String>,
        /// The name people see.
        #[arg(long)]
        display_name: Option<String>,
        /// What the team does.
        #[arg(long)]
        description: Option<String>,
        /// A colour such as #1f6feb (default: one derived from the name).
        #[arg(long)]
        color: Option<String>,
    },
    /// Add a member to a team (as a team member unless --role says otherwise).
    Add {
        /// The Team's name.
        team: String,
        /// A username or group:NAME; they need an org Membership for the team to count them.
        member: String,
        /// Their team role (below your own, unless you are the team owner or an org admin).
        #[arg(long, value_parser = team_role(), default_value = "member")]
        role: TeamRole,
    },
    /// Remove a member from a team.
    Remove {
        /// The Team's name.
        team: String,
        /// A username or group:NAME.
        member: String,
    },
    /// Change a member's team role (to make someone owner, transfer ownership).
    SetRole {
        /// The Team's name.
        team: String,
        /// A username or group:NAME.
        member: String,
        /// The new team role.
        #[arg(value_parser = team_role())]
        role: TeamRole,
    },
    /// Hand the team's ownership to one of its members; the owner becomes admin, in one write.
    TransferOwnership {
        /// The Team's name.
        team: String,
        /// The new owner: a member of the team (username or group:NAME).
        #[arg(long)]
        to: String,
        /// The previous owner's team role afterwards.
        #[arg(long, value_parser = team_role(), default_value = "admin")]
        demote_to: TeamRole,
    },
    /// Deactivate a team: it grants nothing and is kept for the record.
    Deactivate {
        /// The Team's name.
        team: String,
    },
    /// Activate a deactivated team again.
    Activate {
        /// The Team's name.
        team: String,
    },
}

/// `kubectl roster team ...`.
pub(super) async fn run(s: &Session, command: TeamCommand) -> anyhow::Result<()> {
    match command {
        TeamCommand::List => list(s).await,
        TeamCommand::Show { team } => show(s, &team).await,
        TeamCommand::Create {
            team,
            owner,
            display_name,
            description,
            color,
        } => {
            let owner = match owner {
                Some(o) => parse_subject(&o),
                None => Subject::User(whoami(&s.client).await?.username),
            };
            let spec = TeamSpec {
                display_name,
                description,
                color,
                active: true,
                members: vec![entry(&owner, TeamRole::Owner)],
                access: None,
            };
            create(s, &team, spec).await
        }
        TeamCommand::Add { team, member, role } => {
            let who = parse_subject(&member);
            change(s, &team, |spec| add(spec, &team, &who, role)).await
        }
        TeamCommand::Remove { team, member } => {
            let who = parse_subject(&member);
            change(s, &team, |spec| remove(spec, &who)).await
        }
        TeamCommand::SetRole { team, member, role } => {
            let who = parse_subject(&member);
            change(s, &team, |spec| set_role(spec, &team, &who, role)).await
        }
        TeamCommand::TransferOwnership {
            team,
            to,
            demote_to,
        } => {
            let who = parse_subject(&to);
            change(s, &team, |spec| transfer(spec, &team, &who, demote_to)).await
        }
        TeamCommand::Deactivate { team } => change(s, &team, |spec| activate(spec, false)).await,
        TeamCommand::Activate { team } => change(s, &team, |spec| activate(spec, true)).await,
    }
}

fn teams(s: &Session) -> Api<Team> {
    Api::namespaced(s.client.clone(), &s.namespace)
}

fn entry(who: &Subject, role: TeamRole) -> TeamMember {
    let (user, group) = match who {
        Subject::User(u) => (Some(u.clone()), None),
        Subject::Group(g) => (None, Some(g.clone())),
    };
    TeamMember { user, group, role }
}

/// `ada@x.example` or `group:eng`, as people type and read them.
fn shown(who: &Subject) -> String {
    match who {
        Subject::User(u) => u.clone(),
        Subject::Group(g) => format!("group:{g}"),
    }
}

fn position(spec: &TeamSpec, who: &Subject) -> Option<usize> {
    spec.members
        .iter()
        .position(|m| m.subject().as_ref() == Some(who))
}

fn owner_of(spec: &TeamSpec) -> Option<Subject> {
    spec.members
        .iter()
        .find(|m| m.role == TeamRole::Owner)
        .and_then(TeamMember::subject)
}

fn no_owner_role(team: &str, role: TeamRole) -> anyhow::Result<()> {
    if role == TeamRole::Owner {
        bail!(
            "a team has exactly one owner: make someone owner with `kubectl roster team transfer-ownership {team} --to MEMBER`"
        );
    }
    Ok(())
}

fn add(spec: &mut TeamSpec, team: &str, who: &Subject, role: TeamRole) -> anyhow::Result<String> {
    if let Some(i) = position(spec, who) {
        bail!(
            "{} is already in the team as {}; change that with `team set-role`",
            shown(who),
            spec.members[i].role
        );
    }
    no_owner_role(team, role)?;
    spec.members.push(entry(who, role));
    Ok(format!("{} added as {role}", shown(who)))
}

fn remove(spec: &mut TeamSpec, who: &Subject) -> anyhow::Result<String> {
    let i = position(spec, who).ok_or_else(|| anyhow!("{} is not in the team", shown(who)))?;
    if spec.members[i].role == TeamRole::Owner {
        bail!(
            "{} owns the team: transfer ownership first (`team transfer-ownership`)",
            shown(who)
        );
    }
    spec.members.remove(i);
    Ok(format!("{} removed", shown(who)))
}

fn set_role(
    spec: &mut TeamSpec,
    team: &str,
    who: &Subject,
    role: TeamRole,
) -> anyhow::Result<String> {
    no_owner_role(team, role)?;
    let i = position(spec, who).ok_or_else(|| {
        anyhow!(
            "{} is not in the team: add them with `kubectl roster team add {team} {}`",
            shown(who),
            shown(who)
        )
    })?;
    let from = spec.members[i].role;
    if from == TeamRole::Owner {
        bail!(
            "{} owns the team: hand ownership to someone else with `kubectl roster team transfer-ownership {team} --to MEMBER`",
            shown(who)
        );
    }
    spec.members[i].role = role;
    Ok(format!("{} changed from {from} to {role}", shown(who)))
}

/// The new owner and the old owner's demotion in one members list, so the team never has two
/// owners or none (CEL: exactly one owner).
fn transfer(
    spec: &mut TeamSpec,
    team: &str,
    to: &Subject,
    demote_to: TeamRole,
) -> anyhow::Result<String> {
    if demote_to == TeamRole::Owner {
        bail!("--demote-to owner would not transfer anything; choose admin or lower");
    }
    let i = position(spec, to).ok_or_else(|| {
        anyhow!(
            "{} is not in the team: add them first with `kubectl roster team add {team} {}`",
            shown(to),
            shown(to)
        )
    })?;
    let old = owner_of(spec);
    if old.as_ref() == Some(to) {
        bail!("{} already owns the team", shown(to));
    }
    for m in spec
        .members
        .iter_mut()
        .filter(|m| m.role == TeamRole::Owner)
    {
        m.role = demote_to;
    }
    spec.members[i].role = TeamRole::Owner;
    Ok(format!(
        "ownership transferred to {}{}",
        shown(to),
        old.map(|o| format!("; {} is now {demote_to}", shown(&o)))
            .unwrap_or_default()
    ))
}

fn activate(spec: &mut TeamSpec, active: bool) -> anyhow::Result<String> {
    spec.active = active;
    Ok(if active { "activated" } else { "deactivated" }.to_string())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TeamChanged {
    namespace: String,
    team: String,
    change: String,
    active: bool,
    members: Vec<TeamMember>,
    dry_run: bool,
}

/// Reads Team `name`, applies `edit` to its spec and writes `members` and `active` back on the
/// version read; again on a fresh read when someone wrote in between.
async fn change<F>(s: &Session, name: &str, edit: F) -> anyhow::Result<()>
where
    F: Fn(&mut TeamSpec) -> anyhow::Result<String>,
{
    let (api, edit) = (&teams(s), &edit);
    let (team, change) = retry_on_conflict(|| async move {
        let current = api
            .get(name)
            .await
            .with_context(|| format!("read Team {name} in {}", s.namespace))?;
        let mut spec = current.spec.clone();
        let change = edit(&mut spec).with_context(|| format!("team/{name}"))?;
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": current.resource_version() },
            "spec": { "members": spec.members, "active": spec.active },
        });
        let team = api
            .patch(name, &s.patch_params(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("change Team {name} in {} ({change})", s.namespace))?;
        Ok((team, change))
    })
    .await?;
    let out = TeamChanged {
        namespace: s.namespace.clone(),
        team: name.to_string(),
        change,
        active: team.spec.active,
        members: team.spec.members,
        dry_run: s.dry_run,
    };
    emit(s, &out, Names::one(kind::TEAM, name), || {
        format!("team/{name}: {}{}\n", out.change, s.dry())
    })
}

async fn create(s: &Session, name: &str, spec: TeamSpec) -> anyhow::Result<()> {
    let team = teams(s)
        .create(&s.post_params(), &Team::new(name, spec))
        .await
        .with_context(|| format!("create Team {name} in {}", s.namespace))?;
    let owner = owner_of(&team.spec).map(|o| shown(&o));
    emit(s, &team, Names::one(kind::TEAM, name), || {
        format!(
            "team/{name} created in {}{}: owner {}\n",
            s.namespace,
            s.dry(),
            or_dash(owner.as_ref())
        )
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TeamRow {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    /// Entries in spec.members.
    entries: usize,
    /// Members with an effective org Membership (status.members).
    members: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<TeamPhase>,
    active: bool,
}

fn team_row(t: &Team) -> TeamRow {
    let status = t.status.clone().unwrap_or_default();
    TeamRow {
        name: t.name_any(),
        display_name: t.spec.display_name.clone(),
        owner: owner_of(&t.spec).map(|o| shown(&o)),
        entries: t.spec.members.len(),
        members: status.members,
        phase: status.phase,
        active: t.spec.active,
    }
}

async fn list(s: &Session) -> anyhow::Result<()> {
    let mut all = teams(s)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("list Teams in {}", s.namespace))?
        .items;
    all.sort_by_key(|t| t.name_any());
    let rows: Vec<TeamRow> = all.iter().map(team_row).collect();
    let names = Names::all(kind::TEAM, rows.iter().map(|r| &r.name));
    emit(s, &rows, names, || {
        if rows.is_empty() {
            return format!("No Teams in namespace {}.\n", s.namespace);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    or_dash(r.display_name.as_ref()),
                    or_dash(r.owner.as_ref()),
                    format!("{}/{}", r.members, r.entries),
                    or_dash(r.phase.map(|p| format!("{p:?}"))),
                ]
            })
            .collect();
        s.table(
            &["NAME", "DISPLAY NAME", "OWNER", "MEMBERS", "PHASE"],
            &cells,
        )
    })
}

async fn show(s: &Session, name: &str) -> anyhow::Result<()> {
    let team = teams(s)
        .get(name)
        .await
        .with_context(|| format!("read Team {name} in {}", s.namespace))?;
    let unresolved = team
        .status
        .as_ref()
        .map(|st| st.unresolved_members.clone())
        .unwrap_or_default();
    let mut members = team.spec.members.clone();
    members.sort_by_key(|m| std::cmp::Reverse(m.role));
    emit(s, &team, Names::one(kind::TEAM, name), || {
        let rows: Vec<Vec<String>> = members
            .iter()
            .filter_map(|m| m.subject().map(|who| (shown(&who), m.role)))
            .map(|(who, role)| {
                let note = if unresolved.contains(&who) {
                    "no effective org Membership"
                } else {
                    ""
                };
                vec![who, role.to_string(), note.to_string()]
            })
            .collect();
        format!(
            "Team:    {name} ({})\nActive:  {}\n\n{}",
            team.spec
                .display_name
                .as_deref()
                .unwrap_or("no display name"),
            team.spec.active,
            s.table(&["MEMBER", "ROLE", "NOTE"], &rows)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(members: &[(&str, TeamRole)]) -> TeamSpec {
        TeamSpec {
            display_name: None,
            description: None,
            color: None,
            active: true,
            members: members
                .iter()
                .map(|(u, r)| entry(&Subject::User(u.to_string()), *r))
                .collect(),
            access: None,
        }
    }

    fn roles(spec: &TeamSpec) -> Vec<(String, TeamRole)> {
        spec.members
            .iter()
            .map(|m| (m.user.clone().unwrap(), m.role))
            .collect()
    }

    #[test]
    fn a_transfer_swaps_owner_and_admin_in_one_list() {
        let mut s = spec(&[("ada", TeamRole::Owner), ("bob", TeamRole::Member)]);
        let bob = Subject::User("bob".into());
        let msg = transfer(&mut s, "t", &bob, TeamRole::Admin).unwrap();
        assert_eq!(msg, "ownership transferred to bob; ada is now admin");
        assert_eq!(
            roles(&s),
            [
                ("ada".into(), TeamRole::Admin),
                ("bob".into(), TeamRole::Owner)
            ]
        );
        assert!(transfer(&mut s, "t", &bob, TeamRole::Admin).is_err());
        let carol = Subject::User("carol".into());
        assert!(transfer(&mut s, "t", &carol, TeamRole::Admin).is_err());
    }

    #[test]
    fn owners_change_only_by_transfer() {
        let mut s = spec(&[("ada", TeamRole::Owner), ("bob", TeamRole::Member)]);
        let (ada, bob) = (Subject::User("ada".into()), Subject::User("bob".into()));
        assert!(set_role(&mut s, "t", &bob, TeamRole::Owner).is_err());
        assert!(set_role(&mut s, "t", &ada, TeamRole::Admin).is_err());
        assert!(remove(&mut s, &ada).is_err());
        assert!(add(&mut s, "t", &bob, TeamRole::Viewer).is_err());
        set_role(&mut s, "t", &bob, TeamRole::Moderator).unwrap();
        add(&mut s, "t", &Subject::Group("eng".into()), TeamRole::Viewer).unwrap();
        remove(&mut s, &bob).unwrap();
        assert_eq!(s.members.len(), 2);
        assert_eq!(s.members[1].group.as_deref(), Some("eng"));
    }
}
