//! `kubectl roster transfer-ownership`: promote the new owner, wait, then demote oneself.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use kube::ResourceExt;
use kube::api::{Api, Patch};
use serde::Serialize;

use super::members::{memberships, note, own_membership};
use super::output::{Names, emit, kind, or_dash};
use super::session::{Session, wait_for, whoami};
use crate::api::{Membership, MembershipPhase, OrgRole};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Transferred {
    namespace: String,
    new_owner: String,
    previous_owner: String,
    previous_owner_role: OrgRole,
}

fn effective(m: &Membership) -> Option<OrgRole> {
    m.status
        .as_ref()
        .filter(|s| s.phase == Some(MembershipPhase::Active))
        .and_then(|s| s.effective_role)
}

async fn set_role(
    s: &Session,
    api: &Api<Membership>,
    name: &str,
    role: OrgRole,
) -> anyhow::Result<()> {
    api.patch(
        name,
        &s.patch_params(),
        &Patch::Merge(serde_json::json!({ "spec": { "role": role } })),
    )
    .await
    .with_context(|| format!("set the role of Membership {name} to {role}"))?;
    Ok(())
}

async fn wait_effective(
    api: &Api<Membership>,
    name: &str,
    role: OrgRole,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_for(
        &format!("Membership {name} to be effective as {role}"),
        timeout,
        || async {
            let m = api.get(name).await?;
            if effective(&m) == Some(role) {
                return Ok(Some(()));
            }
            if let Some(MembershipPhase::Denied) = m.status.as_ref().and_then(|s| s.phase) {
                bail!(
                    "Membership {name} is Denied: {}",
                    or_dash(note(&m).1.as_ref())
                );
            }
            Ok(None)
        },
    )
    .await
}

/// Whether the flags confirm a transfer that transfers something.
fn confirmed(s: &Session, to: &str, confirm: &str, demote_to: OrgRole) -> anyhow::Result<()> {
    let expected = format!("{}/{to}", s.namespace);
    if confirm != expected {
        bail!(
            "refusing to transfer ownership: --confirm must be exactly {expected} (the org namespace and the new owner), got {confirm:?}"
        );
    }
    if demote_to == OrgRole::Owner {
        bail!("--demote-to owner would not transfer anything; choose admin, member or viewer");
    }
    Ok(())
}

/// The oldest live Membership of the new owner `to`.
fn new_owners_membership<'a>(
    all: &'a [Membership],
    to: &str,
    namespace: &str,
) -> anyhow::Result<&'a Membership> {
    all.iter()
        .filter(|m| m.spec.user.as_deref() == Some(to) && m.metadata.deletion_timestamp.is_none())
        .min_by_key(|m| crate::rules::age_key(*m))
        .ok_or_else(|| {
            anyhow!("{to} holds no Membership in {namespace}: add them (or have them join) first")
        })
}

/// Hands the caller's ownership to `to`; the organization never lacks an owner on the way.
pub(super) async fn transfer(
    s: &Session,
    to: &str,
    confirm: &str,
    demote_to: OrgRole,
    timeout: Duration,
) -> anyhow::Result<()> {
    confirmed(s, to, confirm, demote_to)?;
    let me = whoami(&s.client).await?;
    if me.username == to {
        bail!("{to} is you: name the member who becomes owner");
    }
    let all = memberships(s).await?;
    let mine = own_membership(s, &me).await?;
    if effective(&mine) != Some(OrgRole::Owner) {
        bail!(
            "{} is not an effective owner of {} (effective role: {}); only an owner hands over ownership",
            me.username,
            s.namespace,
            or_dash(effective(&mine))
        );
    }
    let target = new_owners_membership(&all, to, &s.namespace)?;
    let api: Api<Membership> = Api::namespaced(s.client.clone(), &s.namespace);
    let (target_name, my_name) = (target.name_any(), mine.name_any());
    if s.dry_run {
        return dry_run(s, &api, &target_name, to).await;
    }
    // Promote first, and demote only once the new owner is effective: the organization never
    // lacks an owner, and a failed promotion leaves everything as it was.
    if effective(target) != Some(OrgRole::Owner) {
        set_role(s, &api, &target_name, OrgRole::Owner).await?;
        wait_effective(&api, &target_name, OrgRole::Owner, timeout)
            .await
            .with_context(|| {
                format!("{to} was promoted but is not an effective owner yet; you are still owner")
            })?;
    }
    set_role(s, &api, &my_name, demote_to).await?;
    wait_effective(&api, &my_name, demote_to, timeout).await?;
    let out = Transferred {
        namespace: s.namespace.clone(),
        new_owner: to.to_string(),
        previous_owner: me.username.clone(),
        previous_owner_role: demote_to,
    };
    let names = Names::all(kind::MEMBERSHIP, [&target_name, &my_name]);
    emit(s, &out, names, || {
        format!(
            "ownership of {} transferred: {to} is owner, {} is now {demote_to}\n",
            out.namespace, out.previous_owner
        )
    })
}

/// `--dry-run=server`: asks for the promotion only. The demotion is decided once the promotion is
/// in force (the webhook refuses to demote the last owner), which a dry run never makes it.
async fn dry_run(
    s: &Session,
    api: &Api<Membership>,
    target_name: &str,
    to: &str,
) -> anyhow::Result<()> {
    set_role(s, api, target_name, OrgRole::Owner).await?;
    let out = serde_json::json!({
        "namespace": s.namespace, "newOwner": to, "membership": target_name, "dryRun": true,
    });
    emit(s, &out, Names::one(kind::MEMBERSHIP, target_name), || {
        format!(
            "membership/{target_name} ({to}) promoted to owner{}; your demotion is asked for only once that is in force\n",
            s.dry()
        )
    })
}
