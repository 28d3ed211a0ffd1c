//! The e-mail step of a reconcile: `rules::delivery` says what each Invite (and a new billing
//! admin) is owed; an attempt is written to status as `Sending`, on the resourceVersion this
//! reconcile read, before the [`Mailer`](crate::mail::Mailer) makes it. A lost race or a stale
//! cache therefore fails the write, and nothing is sent twice.

use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use lettre::Message;

use super::Context;
use super::apply::{self, Object};
use crate::api::{
    Delivery, DeliveryMessage, Invite, InvitePhase, InviteStatus, Membership, Organization,
    OrganizationStatus,
};
use crate::mail::message::{self, Content, Org};
use crate::rules::conditions;
use crate::rules::delivery::{self, Due, Outcome, Retry};
use crate::rules::effective::condition::{BILLING_ADMIN, DELIVERED};

/// What the e-mail step asks of the write that follows it.
#[derive(Default)]
pub(super) struct Planned {
    /// Send this once the status (which records it as `Sending`) is written.
    pub message: Option<Message>,
    /// When a failed message is due to be tried again.
    pub wake: Option<Timestamp>,
}

/// Fills an Invite's `status.delivery` and `Delivered` condition (`status` is what the rules
/// computed; `code` the invite's code, if generated).
pub(super) fn invite(
    ctx: &Context,
    org: Option<&Organization>,
    invite: &Invite,
    status: &mut InviteStatus,
    code: Option<&str>,
    now: Timestamp,
) -> Planned {
    let previous = (invite.status.as_ref())
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = invite.meta().generation;
    let (Some(org), Some(uid)) = (org.filter(|o| sends_email(o)), invite.uid()) else {
        conditions::put(
            &mut status.conditions,
            DELIVERED,
            None,
            previous,
            generation,
            now,
        );
        return Planned::default();
    };
    let cached = invite.status.as_ref().and_then(|s| s.delivery.as_ref());
    let record = resolved(ctx, &uid, cached, status.delivery.as_ref(), now);
    let phase = status.phase.unwrap_or(InvitePhase::Pending);
    let due = delivery::invite_due(&invite.spec, phase, record.as_ref())
        // The invitation carries the code: it waits until the code exists.
        .filter(|d| d.message == DeliveryMessage::Cancellation || code.is_some());
    let relay = ctx.mail.relay().is_some();
    let step = delivery::step(due.clone(), record, relay, now);
    let name = invite.name_any();
    let expires_at = status.expires_at.as_ref().map(|t| t.0);
    let content = |due: &Due| match due.message {
        DeliveryMessage::Cancellation => Content::Cancellation { invite: &name },
        _ => Content::Invitation {
            invite: &name,
            role: invite.spec.role,
            expires_at,
            code: code.unwrap_or_default(),
            resent: due.message == DeliveryMessage::Resend,
            identity_provider: invite.spec.identity_provider.as_ref(),
        },
    };
    let (record, message) = compose(ctx, org, &uid, step.delivery, step.send.as_ref(), content);
    let owed = due.filter(|_| message.is_none());
    let want = delivery::condition(&name, record.as_ref(), owed.as_ref(), relay);
    conditions::put(
        &mut status.conditions,
        DELIVERED,
        want,
        previous,
        generation,
        now,
    );
    status.delivery = record;
    Planned {
        message,
        wake: step.wake,
    }
}

/// Fills an Organization's `status.billingAdminNotice`: one notice to each new billing admin, once
/// they hold an effective Membership (the `BillingAdmin` condition).
pub(super) fn billing_admin(
    ctx: &Context,
    org: &Organization,
    memberships: &[&Membership],
    status: &mut OrganizationStatus,
    now: Timestamp,
) -> Planned {
    let Some(uid) = org.uid().filter(|_| sends_email(org)) else {
        return Planned::default();
    };
    let cached = org
        .status
        .as_ref()
        .and_then(|s| s.billing_admin_notice.as_ref());
    let record = resolved(ctx, &uid, cached, status.billing_admin_notice.as_ref(), now);
    let user = (org.spec.billing_admin.as_deref())
        .filter(|_| conditions::is_true(&status.conditions, BILLING_ADMIN));
    let address =
        user.and_then(|u| delivery::billing_admin_address(u, memberships.iter().copied()));
    let due = delivery::billing_admin_due(user, address);
    let step = delivery::step(due, record, ctx.mail.relay().is_some(), now);
    let (record, message) = compose(ctx, org, &uid, step.delivery, step.send.as_ref(), notice);
    status.billing_admin_notice = record;
    Planned {
        message,
        wake: step.wake,
    }
}

fn first_retry(ctx: &Context) -> k8s_openapi::jiff::SignedDuration {
    (ctx.mail.relay())
        .and_then(|r| k8s_openapi::jiff::SignedDuration::try_from(r.first_retry).ok())
        .unwrap_or(delivery::FIRST_BACKOFF)
}

fn notice(due: &Due) -> Content<'_> {
    Content::BillingAdmin {
        user: due.user.as_deref().unwrap_or_default(),
    }
}

fn sends_email(org: &Organization) -> bool {
    org.spec.policy.notifications.email
}

/// The record as this replica knows it: the cached one, with the outcome of this replica's own
/// attempt folded in. `computed` is the rules' copy of the cached record (the two are the same).
fn resolved(
    ctx: &Context,
    uid: &str,
    cached: Option<&Delivery>,
    computed: Option<&Delivery>,
    now: Timestamp,
) -> Option<Delivery> {
    ctx.mail.forget_settled(uid, cached);
    let first_retry = first_retry(ctx);
    computed.map(|d| delivery::resolve(d, ctx.mail.outcome(uid, d).as_ref(), first_retry, now))
}

/// The message for an attempt the step started; a message that cannot be built (an address the
/// relay could never take) fails the attempt for good instead.
fn compose<'a>(
    ctx: &Context,
    org: &Organization,
    uid: &str,
    record: Option<Delivery>,
    send: Option<&'a Due>,
    content: impl FnOnce(&'a Due) -> Content<'a>,
) -> (Option<Delivery>, Option<Message>) {
    let (Some(due), Some(relay), Some(sending)) = (send, ctx.mail.relay(), record.as_ref()) else {
        return (record, None);
    };
    let namespace = org.namespace().unwrap_or_default();
    let name = org
        .spec
        .display_name
        .clone()
        .unwrap_or_else(|| org.name_any());
    let org = Org {
        namespace: &namespace,
        name: &name,
    };
    let (subject, body) = message::render(&org, &content(due), relay.join_url.as_deref());
    match message::build(relay, &due.to, &message_id(uid, due), subject, body) {
        Ok(message) => (record, Some(message)),
        Err(error) => {
            let refused = Outcome::Failed {
                error,
                retry: Retry::Never,
            };
            (
                Some(delivery::resolve(
                    sending,
                    Some(&refused),
                    first_retry(ctx),
                    Timestamp::now(),
                )),
                None,
            )
        }
    }
}

/// The same for every attempt at one message, so that a mail client can drop a copy.
fn message_id(uid: &str, due: &Due) -> String {
    match (due.message, due.resend, due.user.as_deref()) {
        (DeliveryMessage::Resend, Some(n), _) => format!("{uid}.resend-{n}"),
        (DeliveryMessage::BillingAdmin, _, Some(user)) => {
            format!("{uid}.billing-admin-{:016x}", fnv_hash(user))
        }
        (m, ..) => format!("{uid}.{}", format!("{m:?}").to_lowercase()),
    }
}

fn fnv_hash(s: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(s.as_bytes());
    h.finish()
}

/// Writes `status` on the resourceVersion read (so a stale read writes nothing), then sends.
pub(super) async fn write_then_send<K, S>(
    ctx: &Context,
    obj: &K,
    status: &S,
    record: Option<&Delivery>,
    message: Message,
) -> Result<(), kube::Error>
where
    K: Object,
    S: serde::Serialize,
{
    match apply::status_at(ctx, obj, status, obj.resource_version().as_deref()).await {
        // Deleted meanwhile: nobody is owed anything any more.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        other => other?,
    }
    let (Some(record), Some(uid)) = (record, obj.uid()) else {
        return Ok(());
    };
    if !ctx.stopping() {
        let namespace = obj.namespace().unwrap_or_default();
        ctx.mail.dispatch(&namespace, &uid, record, message);
    }
    Ok(())
}
