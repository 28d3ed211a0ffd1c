//! E-mail delivery: which message an Invite (or a new billing admin) is owed, what one step of
//! sending it does to the `status.delivery` record, and the `Delivered` condition that explains it.
//!
//! Delivery is **at most once**. The record says `Sending` (written, with a resourceVersion
//! precondition, before the relay is contacted) until this replica learns what the relay said. A
//! replica that finds `Sending` with no attempt of its own in flight cannot know whether the
//! message went out (the previous leader may have been killed just after the relay accepted it),
//! so it records `Unknown` and never sends that message again: people can ask for a resend, but
//! nobody gets the same message twice from roster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::conditions::Want;
use super::effective::condition::DELIVERED;
use super::reason::ConditionReason;
use crate::api::{Delivery, DeliveryMessage, DeliveryState, InvitePhase, InviteSpec};

/// The first retry waits this long by default; each further one twice as long, up to
/// [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: SignedDuration = SignedDuration::from_secs(30);
/// The longest wait between two attempts at one message.
pub const MAX_BACKOFF: SignedDuration = SignedDuration::from_hours(1);

/// One message owed to someone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub message: DeliveryMessage,
    /// For a resend, the `spec.resends` it answers.
    pub resend: Option<i32>,
    /// For a billing admin notice, the billing admin.
    pub user: Option<String>,
    pub to: String,
}

impl Due {
    fn is_for(&self, d: &Delivery) -> bool {
        self.message == d.message && self.resend == d.resend && self.user == d.user
    }
}

/// What became of this replica's own attempt at the message a `Sending` record stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still talking to the relay.
    InFlight,
    /// The relay accepted the message.
    Accepted(Timestamp),
    /// The attempt failed; `retry` says whether another attempt could duplicate the message.
    Failed { error: String, retry: Retry },
}

/// Whether a failed attempt may be made again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The message never reached the relay (no connection, TLS or login failed, or the relay
    /// answered with a temporary 4xx code): trying again cannot duplicate it.
    Safe,
    /// The relay refused it for good (a 5xx code): trying again gets the same answer.
    Never,
    /// The connection broke while the message was on its way: it may have gone out.
    Unsafe,
}

/// One step of delivery for one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The record to keep in status.
    pub delivery: Option<Delivery>,
    /// Send this message once `delivery` (which then says `Sending`) is written.
    pub send: Option<Due>,
    /// When to look again (a retry's time).
    pub wake: Option<Timestamp>,
}

/// The message an Invite is owed now, given the record so far (already [`resolve`]d): the
/// invitation (or the resend `spec.resends` asks for) while it is pending, and a cancellation
/// when an invitation that may have arrived is revoked. Nothing when no address is known.
pub fn invite_due(spec: &InviteSpec, phase: InvitePhase, record: Option<&Delivery>) -> Option<Due> {
    let to = spec.notification_email.as_ref().or(spec.email.as_ref())?;
    let due = |message, resend| Due {
        message,
        resend,
        user: None,
        to: to.clone(),
    };
    if spec.revoked {
        let told = record.is_some_and(|d| match d.message {
            DeliveryMessage::Cancellation => true,
            _ => matches!(d.state, DeliveryState::Sent | DeliveryState::Unknown),
        });
        return told.then(|| due(DeliveryMessage::Cancellation, None));
    }
    if phase != InvitePhase::Pending {
        return None;
    }
    Some(match spec.resends {
        0 => due(DeliveryMessage::Invitation, None),
        n => due(DeliveryMessage::Resend, Some(n)),
    })
}

/// The notice a new billing admin is owed: one per billing admin, once they are a member.
pub fn billing_admin_due(user: Option<&str>, address: Option<&str>) -> Option<Due> {
    Some(Due {
        message: DeliveryMessage::BillingAdmin,
        resend: None,
        user: Some(user?.to_string()),
        to: address?.to_string(),
    })
}

/// Where a billing admin's notice goes: the e-mail of their Membership's profile, else their
/// username when it is an e-mail address.
pub fn billing_admin_address<'a>(
    user: &'a str,
    memberships: impl IntoIterator<Item = &'a crate::api::Membership>,
) -> Option<&'a str> {
    let profile = memberships
        .into_iter()
        .find(|m| m.spec.user.as_deref() == Some(user))
        .and_then(|m| m.spec.email.as_deref());
    profile.or_else(|| super::identity::email_domain(user).map(|_| user))
}

/// The record once this replica's knowledge of its own attempt is folded in: a `Sending` record
/// becomes `Sent`, `Failed` or `Unknown` unless its attempt is still in flight here. A failure that
/// is safe to retry is tried again after [`backoff`] from `first_retry`.
pub fn resolve(
    record: &Delivery,
    outcome: Option<&Outcome>,
    first_retry: SignedDuration,
    now: Timestamp,
) -> Delivery {
    let mut d = record.clone();
    if d.state != DeliveryState::Sending {
        return d;
    }
    match outcome {
        Some(Outcome::InFlight) => {}
        Some(Outcome::Accepted(at)) => {
            d.state = DeliveryState::Sent;
            d.sent_time = Some(Time(*at));
            d.last_error = None;
        }
        Some(Outcome::Failed { error, retry }) => {
            d.last_error = Some(error.clone());
            d.state = match retry {
                Retry::Unsafe => DeliveryState::Unknown,
                Retry::Safe | Retry::Never => DeliveryState::Failed,
            };
            d.next_attempt_time =
                (*retry == Retry::Safe).then(|| Time(now + backoff(first_retry, d.attempts)));
        }
        None => d.state = DeliveryState::Unknown,
    }
    d
}

/// How long to wait after the `attempts`-th failed attempt: `first`, doubled each time.
pub fn backoff(first: SignedDuration, attempts: i32) -> SignedDuration {
    let doublings = attempts.clamp(1, 16) - 1;
    (first * 2i32.pow(doublings as u32)).min(MAX_BACKOFF)
}

/// One step: the record (resolved) and the message owed decide whether to start an attempt now,
/// wait for a retry, or keep the record as it is. `relay` says whether roster has a relay at all.
pub fn step(due: Option<Due>, record: Option<Delivery>, relay: bool, now: Timestamp) -> Step {
    let keep = |delivery: Option<Delivery>, wake| Step {
        delivery,
        send: None,
        wake,
    };
    let Some(due) = due else {
        // Nothing more is owed: a failed message is not tried again.
        let record = record.map(|mut d| {
            d.next_attempt_time = None;
            d
        });
        return keep(record, None);
    };
    let attempts = match &record {
        Some(d) if due.is_for(d) => match (d.state, d.next_attempt_time.as_ref()) {
            (DeliveryState::Failed, Some(next)) if next.0 > now => {
                return keep(record.clone(), Some(next.0));
            }
            (DeliveryState::Failed, Some(_)) => d.attempts + 1,
            _ => return keep(record, None),
        },
        _ => 1,
    };
    if !relay {
        return keep(record, None);
    }
    Step {
        delivery: Some(Delivery {
            message: due.message,
            resend: due.resend,
            user: due.user.clone(),
            to: due.to.clone(),
            state: DeliveryState::Sending,
            attempts,
            last_attempt_time: Some(Time(now)),
            sent_time: None,
            next_attempt_time: None,
            last_error: record.filter(|d| due.is_for(d)).and_then(|d| d.last_error),
        }),
        send: Some(due),
        wake: None,
    }
}

/// The `Delivered` condition of an Invite named `invite`: what happened to the last message, or
/// why nothing can be sent. `owed` is the message still owed when the step sent nothing.
pub fn condition(
    invite: &str,
    record: Option<&Delivery>,
    owed: Option<&Due>,
    relay: bool,
) -> Option<Want> {
    let want = |status, reason: ConditionReason, message: String| {
        Some(Want::new(DELIVERED, status, reason.as_str(), message))
    };
    let stale = |d: &Delivery| owed.is_some_and(|o| !o.is_for(d));
    match record {
        _ if !relay && owed.is_some() && record.is_none_or(stale) => want(
            false,
            ConditionReason::NoRelay,
            format!(
                "roster has no SMTP relay configured (roster run --smtp-url, chart value email.smtp.url), so the {} to {} is not sent; hand the code over yourself",
                describe(owed?),
                owed?.to
            ),
        ),
        None => None,
        Some(d) => {
            let what = describe_delivery(d);
            match d.state {
                DeliveryState::Sending => want(
                    false,
                    ConditionReason::Sending,
                    format!("sending the {what} to {} (attempt {})", d.to, d.attempts),
                ),
                DeliveryState::Sent => want(
                    true,
                    ConditionReason::Sent,
                    format!(
                        "the {what} was accepted by the relay for {} at {}",
                        d.to,
                        d.sent_time
                            .as_ref()
                            .map(|t| t.0.to_string())
                            .unwrap_or_default()
                    ),
                ),
                DeliveryState::Failed => failed(invite, d, &what),
                DeliveryState::Unknown => want(
                    false,
                    ConditionReason::DeliveryUnknown,
                    format!(
                        "roster stopped while sending the {what} to {}, so it may or may not have gone out; roster never sends a message twice: if it did not arrive, resend it (kubectl roster invite resend {invite})",
                        d.to
                    ),
                ),
            }
        }
    }
}

fn failed(invite: &str, d: &Delivery, what: &str) -> Option<Want> {
    let error = d.last_error.as_deref().unwrap_or("unknown error");
    let (reason, message) = match &d.next_attempt_time {
        Some(next) => (
            ConditionReason::SendFailed,
            format!(
                "attempt {} to send the {what} to {} failed: {error}; next attempt at {}",
                d.attempts, d.to, next.0
            ),
        ),
        None => (
            ConditionReason::SendRejected,
            format!(
                "the {what} to {} was not sent: {error}; it is not tried again (correct spec.notificationEmail, then kubectl roster invite resend {invite})",
                d.to
            ),
        ),
    };
    Some(Want::new(DELIVERED, false, reason.as_str(), message))
}

fn describe(due: &Due) -> String {
    name(due.message, due.resend)
}

fn describe_delivery(d: &Delivery) -> String {
    name(d.message, d.resend)
}

fn name(message: DeliveryMessage, resend: Option<i32>) -> String {
    match (message, resend) {
        (DeliveryMessage::Invitation, _) => "invitation".into(),
        (DeliveryMessage::Resend, Some(n)) => format!("invitation (resend {n})"),
        (DeliveryMessage::Resend, None) => "invitation (resent)".into(),
        (DeliveryMessage::Cancellation, _) => "cancellation notice".into(),
        (DeliveryMessage::BillingAdmin, _) => "billing admin notice".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn spec() -> InviteSpec {
        InviteSpec {
            email: Some("ada@acme.example".into()),
            ..InviteSpec::default()
        }
    }

    fn sending(due: &Due, attempts: i32) -> Delivery {
        step(Some(due.clone()), None, true, t(0))
            .delivery
            .map(|mut d| {
                d.attempts = attempts;
                d
            })
            .unwrap()
    }

    #[test]
    fn a_pending_invite_is_owed_its_invitation_and_then_the_resend_asked_for() {
        let due = invite_due(&spec(), InvitePhase::Pending, None).unwrap();
        assert_eq!(due.message, DeliveryMessage::Invitation);
        assert_eq!(due.to, "ada@acme.example");
        let resend = InviteSpec {
            resends: 2,
            ..spec()
        };
        let due = invite_due(&resend, InvitePhase::Pending, None).unwrap();
        assert_eq!(
            (due.message, due.resend),
            (DeliveryMessage::Resend, Some(2))
        );
        let notify = InviteSpec {
            notification_email: Some("ada.private@mail.example".into()),
            ..spec()
        };
        assert_eq!(
            invite_due(&notify, InvitePhase::Pending, None).unwrap().to,
            "ada.private@mail.example"
        );
        let open = InviteSpec {
            email: None,
            ..spec()
        };
        assert_eq!(invite_due(&open, InvitePhase::Pending, None), None);
        for settled in [InvitePhase::Accepted, InvitePhase::Expired] {
            assert_eq!(invite_due(&spec(), settled, None), None);
        }
    }

    #[test]
    fn only_an_invitation_that_may_have_arrived_is_cancelled() {
        let revoked = InviteSpec {
            revoked: true,
            ..spec()
        };
        let invitation = invite_due(&spec(), InvitePhase::Pending, None).unwrap();
        let mut record = sending(&invitation, 1);
        assert_eq!(invite_due(&revoked, InvitePhase::Revoked, None), None);
        assert_eq!(
            invite_due(&revoked, InvitePhase::Revoked, Some(&record)),
            None
        );
        for told in [DeliveryState::Sent, DeliveryState::Unknown] {
            record.state = told;
            let due = invite_due(&revoked, InvitePhase::Revoked, Some(&record)).unwrap();
            assert_eq!(due.message, DeliveryMessage::Cancellation);
        }
        record.state = DeliveryState::Failed;
        assert_eq!(
            invite_due(&revoked, InvitePhase::Revoked, Some(&record)),
            None
        );
    }

    #[test]
    fn an_attempt_is_recorded_as_sending_before_it_is_made() {
        let due = invite_due(&spec(), InvitePhase::Pending, None).unwrap();
        let s = step(Some(due.clone()), None, true, t(0));
        let d = s.delivery.unwrap();
        assert_eq!((d.state, d.attempts), (DeliveryState::Sending, 1));
        assert_eq!(s.send, Some(due));
    }

    #[test]
    fn without_a_relay_nothing_is_sent_and_the_condition_says_why() {
        let due = invite_due(&spec(), InvitePhase::Pending, None).unwrap();
        let s = step(Some(due.clone()), None, false, t(0));
        assert_eq!((s.delivery, s.send), (None, None));
        let c = condition("ada", None, Some(&due), false).unwrap();
        assert_eq!(c.reason, "NoRelay");
        assert!(c.message.contains("--smtp-url"), "{}", c.message);
    }

    #[test]
    fn a_sending_record_without_an_attempt_of_ours_is_unknown_and_never_sent_again() {
        let due = invite_due(&spec(), InvitePhase::Pending, None).unwrap();
        let record = resolve(&sending(&due, 1), None, FIRST_BACKOFF, t(10));
        assert_eq!(record.state, DeliveryState::Unknown);
        let s = step(Some(due), Some(record.clone()), true, t(3600));
        assert_eq!((s.delivery, s.send), (Some(record), None));
    }

    #[test]
    fn an_attempt_in_flight_is_left_alone() {
        let due = invite_due(&spec(), InvitePhase::Pending, None).unwrap();
        let record = resolve(
            &sending(&due, 1),
            Some(&Outcome::InFlight),
            FIRST_BACKOFF,
            t(10),
        );
        let s = step(Some(due), Some(record.clone()), true, t(10));
        assert_eq!((s.delivery, s.send), (Some(record), None));
    }

    #[test]
    fn a_safe_failure_is_retried_after_a_growing_backoff_and_a_refusal_never() {
        let due = invite_due(&spec(), InvitePhase::Pending, None).unwrap();
        let failed = |retry| Outcome::Failed {
            error: "connection refused".into(),
            retry,
        };
        let record = resolve(
            &sending(&due, 3),
            Some(&failed(Retry::Safe)),
            FIRST_BACKOFF,
            t(0),
        );
        assert_eq!(record.state, DeliveryState::Failed);
        let next = record.next_attempt_time.clone().unwrap().0;
        assert_eq!(next, t(0) + SignedDuration::from_secs(120));
        let waiting = step(Some(due.clone()), Some(record.clone()), true, t(60));
        assert_eq!((waiting.send.as_ref(), waiting.wake), (None, Some(next)));
        let again = step(Some(due.clone()), Some(record), true, next);
        assert_eq!(again.delivery.unwrap().attempts, 4);
        assert!(again.send.is_some());
        let refused = resolve(
            &sending(&due, 1),
            Some(&failed(Retry::Never)),
            FIRST_BACKOFF,
            t(0),
        );
        assert_eq!(refused.next_attempt_time, None);
        let s = step(Some(due.clone()), Some(refused.clone()), true, t(99_999));
        assert_eq!(s.send, None);
        let c = condition("ada", Some(&refused), None, true).unwrap();
        assert_eq!(c.reason, "SendRejected");
        let broken = resolve(
            &sending(&due, 1),
            Some(&failed(Retry::Unsafe)),
            FIRST_BACKOFF,
            t(0),
        );
        assert_eq!(broken.state, DeliveryState::Unknown);
        assert_eq!(backoff(FIRST_BACKOFF, 100), MAX_BACKOFF);
    }

    #[test]
    fn a_resend_after_a_sent_invitation_is_a_new_message() {
        let due = invite_due(&spec(), InvitePhase::Pending, None).unwrap();
        let sent = resolve(
            &sending(&due, 1),
            Some(&Outcome::Accepted(t(1))),
            FIRST_BACKOFF,
            t(1),
        );
        assert_eq!(sent.state, DeliveryState::Sent);
        let c = condition("ada", Some(&sent), None, true).unwrap();
        assert!(c.status && c.reason == "Sent", "{c:?}");
        assert_eq!(step(Some(due), Some(sent.clone()), true, t(2)).send, None);
        let resend = InviteSpec {
            resends: 1,
            ..spec()
        };
        let due = invite_due(&resend, InvitePhase::Pending, Some(&sent)).unwrap();
        let s = step(Some(due), Some(sent), true, t(3));
        let d = s.delivery.unwrap();
        assert_eq!(
            (d.message, d.resend, d.attempts),
            (DeliveryMessage::Resend, Some(1), 1)
        );
    }

    #[test]
    fn a_billing_admin_is_owed_one_notice_each() {
        let ada = billing_admin_due(Some("ada@acme.example"), Some("ada@acme.example")).unwrap();
        let sent = resolve(
            &sending(&ada, 1),
            Some(&Outcome::Accepted(t(1))),
            FIRST_BACKOFF,
            t(1),
        );
        assert_eq!(step(Some(ada), Some(sent.clone()), true, t(2)).send, None);
        let grace = billing_admin_due(Some("grace"), Some("grace@acme.example")).unwrap();
        assert!(step(Some(grace), Some(sent), true, t(2)).send.is_some());
        assert_eq!(billing_admin_due(Some("grace"), None), None);
    }
}
