//! `kubectl roster join` and `leave`: creating and deleting one's own Membership.

use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::api::Api;
use serde::Serialize;

use super::members::{delete, note, own_membership, phase_str};
use super::output::{Names, emit, kind, or_dash};
use super::session::{Me, Session, wait_for, whoami};
use crate::api::{Invite, InviteRef, Membership, MembershipPhase, MembershipSpec, OrgRole};
use crate::rules::invite_code;

/// What `kubectl roster join` was given.
pub(super) struct Join {
    pub(super) invite: String,
    pub(super) code: String,
    pub(super) name: Option<String>,
    pub(super) display_name: Option<String>,
    pub(super) role: Option<OrgRole>,
    /// The tenant declared for an invite bound to one (`spec.invite.tenant`).
    pub(super) tenant: Option<String>,
}

/// A Membership name from a username: `ada@acme.example` becomes `ada-acme-example`.
pub fn membership_name(username: &str) -> String {
    let mut name = String::new();
    for c in username.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(63);
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "member".into()
    } else {
        name
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Joined {
    namespace: String,
    membership: String,
    user: String,
    role: OrgRole,
    phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// Creates the caller's Membership redeeming the invite, then waits (up to `timeout`) until it is
/// Active or Denied.
pub(super) async fn join(s: &Session, j: Join, timeout: Duration) -> anyhow::Result<()> {
    let me = whoami(&s.client).await?;
    let role = match j.role {
        Some(r) => r,
        None => invite_role(s, &j.invite).await?,
    };
    let name = j
        .name
        .clone()
        .unwrap_or_else(|| membership_name(&me.username));
    let api: Api<Membership> = Api::namespaced(s.client.clone(), &s.namespace);
    api.create(&s.post_params(), &redemption(s, &j, &me, &name, role))
        .await
        .with_context(|| {
            format!(
                "join {} as {} with Invite {}",
                s.namespace, me.username, j.invite
            )
        })?;
    let mut result = Joined {
        namespace: s.namespace.clone(),
        membership: name.clone(),
        user: me.username.clone(),
        role,
        phase: "Pending",
        reason: None,
        message: None,
    };
    if !timeout.is_zero() && !s.dry_run {
        let m = wait_active(s, &api, &name, timeout).await?;
        let (reason, message) = note(&m);
        result.phase = phase_str(m.status.as_ref().and_then(|s| s.phase));
        result.reason = reason;
        result.message = message;
    }
    emit(
        s,
        &result,
        Names::one(kind::MEMBERSHIP, &name),
        || match result.phase {
            _ if s.dry_run => format!(
                "membership/{name} created (server dry run): {} may join {} as {role}\n",
                result.user, result.namespace
            ),
            "Active" => format!(
                "membership/{name} created: {} joined {} as {role}\n",
                result.user, result.namespace
            ),
            phase => format!(
                "membership/{name} created but {phase}: {}: {}\n",
                or_dash(result.reason.as_ref()),
                or_dash(result.message.as_ref())
            ),
        },
    )?;
    if result.phase == "Denied" {
        bail!(
            "Membership {name} was denied: {}",
            or_dash(result.message.as_ref())
        );
    }
    Ok(())
}

/// The role an Invite grants, read from it (which needs the right to read it).
async fn invite_role(s: &Session, invite: &str) -> anyhow::Result<OrgRole> {
    let invites: Api<Invite> = Api::namespaced(s.client.clone(), &s.namespace);
    Ok(invites
        .get(invite)
        .await
        .with_context(|| {
            format!(
                "read Invite {} in {} for its role (pass --role if you may not read it)",
                invite, s.namespace
            )
        })?
        .spec
        .role)
}

/// The caller's Membership `name` redeeming the invite.
fn redemption(s: &Session, j: &Join, me: &Me, name: &str, role: OrgRole) -> Membership {
    Membership::new(
        name,
        MembershipSpec {
            user: Some(me.username.clone()),
            group: None,
            role,
            display_name: j.display_name.clone(),
            email: None,
            // The code itself never leaves this process: the Membership carries a proof that
            // only works for this username (members and viewers read Memberships).
            invite: Some(InviteRef {
                name: j.invite.clone(),
                proof: Some(invite_code::proof(
                    &j.code,
                    &s.namespace,
                    &j.invite,
                    &me.username,
                )),
                tenant: j.tenant.clone(),
            }),
        },
    )
}

/// Waits until Membership `name` is Active or Denied.
async fn wait_active(
    s: &Session,
    api: &Api<Membership>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Membership> {
    // A joiner may read their Membership only once it is Active and roster has bound their
    // role; until then the API server says Forbidden, which here means "not yet".
    wait_for(
        &format!("Membership {name} to become Active"),
        timeout,
        || async {
            let m = match api.get(name).await {
                Ok(m) => m,
                Err(kube::Error::Api(e)) if e.code == 403 => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let phase = m.status.as_ref().and_then(|s| s.phase);
            Ok(matches!(
                phase,
                Some(MembershipPhase::Active | MembershipPhase::Denied)
            )
            .then_some(m))
        },
    )
    .await
    .with_context(|| {
        format!(
            "membership/{name} was created but is not Active yet (you may read it once it is); \
                 it may wait for a seat or have been denied: an org admin sees why with \
                 `kubectl roster -n {} members`",
            s.namespace
        )
    })
}

pub(super) async fn leave(s: &Session) -> anyhow::Result<()> {
    let me = whoami(&s.client).await?;
    let mine = own_membership(s, &me).await?;
    let out = delete(s, &mine)
        .await
        .map_err(|e| e.context(format!("leave {}", s.namespace)))?;
    let name = &out.membership;
    emit(s, &out, Names::one(kind::MEMBERSHIP, name), || {
        match &out.message {
            Some(message) => format!("membership/{name} is being deleted, but held: {message}\n"),
            None => format!("{} left {}{}\n", me.username, s.namespace, s.dry()),
        }
    })
}
