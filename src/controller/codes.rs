//! The first write step of a reconcile: every live Invite gets its invite code Secret before
//! anything is decided, so that redemptions can be checked.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::error::Failure;
use super::{Context, apply};
use crate::api::{Invite, InvitePhase, InviteStatus};
use crate::invite_secrets::code_secret_name;
use crate::rules;
use crate::rules::conditions::{self, Want};

/// Invite codes by Invite name, the Secrets that hold them, and the Invites whose Secret failed.
#[derive(Default)]
pub(super) struct Codes {
    pub codes: BTreeMap<String, String>,
    pub secret_names: HashMap<String, String>,
    /// Why, by Invite name.
    pub failed: BTreeMap<String, String>,
}

/// Every live invite gets its code Secret before anything is decided, so redemptions can be
/// checked. Returns the codes, and the Invites whose Secret failed (by name).
pub(super) async fn ensure_codes(ctx: &Context, invites: &[Invite]) -> (Codes, Vec<Failure>) {
    let mut out = Codes::default();
    let mut failed = BTreeMap::new();
    for invite in invites
        .iter()
        .filter(|i| i.meta().deletion_timestamp.is_none())
    {
        let name = invite.name_any();
        match invite_code_or_create(ctx, invite).await {
            Ok(Some(code)) => {
                out.codes.insert(name.clone(), code);
                out.secret_names.insert(name, code_secret_name(invite));
            }
            // A Secret of that name not owned by this Invite: leave it, report no code.
            Ok(None) => {}
            Err(e) => {
                out.failed.insert(name.clone(), e.to_string());
                failed.insert(name, e);
            }
        }
    }
    let failures = failed
        .into_iter()
        .map(|(invite, source)| Failure::CodeSecret { invite, source })
        .collect();
    (out, failures)
}

/// The invite's code, from its Secret, creating that Secret first when there is none.
async fn invite_code_or_create(
    ctx: &Context,
    invite: &Invite,
) -> Result<Option<String>, kube::Error> {
    let namespace = invite.namespace().unwrap_or_default();
    let exists = ctx
        .stores
        .secrets
        .get(&ObjectRef::new(&code_secret_name(invite)).within(&namespace))
        .is_some();
    if exists {
        return ctx.stores.invite_code(&ctx.client, invite).await;
    }
    let secret = apply::create_code_secret(ctx, invite).await?;
    Ok(ctx.stores.remember_code(&secret, invite))
}

/// Reports a code Secret that could not be created: `Reconciling` (`CodeSecretFailed`, retried) on
/// a usable Invite, and a Warning Event.
pub(super) async fn code_secret_failed(
    ctx: &Context,
    invite: &Invite,
    status: &mut InviteStatus,
    error: &str,
    now: Timestamp,
) {
    let message = format!("the Secret for the invite code could not be created: {error}");
    if status.phase == Some(InvitePhase::Pending) {
        let previous = invite
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let usable = Want::new(
            rules::effective::condition::USABLE,
            false,
            rules::ConditionReason::CodeSecretFailed,
            message.clone(),
        );
        let generation = invite.meta().generation;
        let standing = conditions::Standing::Reconciling;
        conditions::fold(
            &mut status.conditions,
            usable,
            standing,
            previous,
            generation,
            now,
        );
    }
    let event = Event {
        type_: EventType::Warning,
        reason: rules::ConditionReason::CodeSecretFailed.as_str().into(),
        note: Some(message.chars().take(1000).collect()),
        action: "CreateCodeSecret".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &invite.object_ref(&())).await {
        tracing::warn!(error = %e, invite = %invite.name_any(), "could not publish event");
    }
}
