//! Invitation e-mails through the platform's SMTP relay: the relay's settings (`relay`), the
//! messages (`message`), one SMTP transaction (`smtp`), and the [`Mailer`] that runs attempts
//! beside the controller and remembers their outcomes.
//!
//! What to send and when is decided by `rules::delivery`; the controller records each attempt as
//! `Sending` before handing it here, so a reconcile never waits on the relay and a relay that is
//! down never blocks anything but its own messages.

pub mod message;
pub mod relay;
mod smtp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lettre::Message;
use tokio::sync::Semaphore;

use crate::api::{Delivery, DeliveryMessage};
use crate::caches::Waker;
use crate::metrics::Metrics;
use crate::rules::delivery::{Outcome, Retry};
pub use relay::Relay;

/// Attempts in flight at once, across all organizations: a relay that hangs holds at most this
/// many connections.
const CONCURRENT_ATTEMPTS: usize = 4;

/// Which attempt of which message an outcome belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Attempt {
    message: DeliveryMessage,
    resend: Option<i32>,
    user: Option<String>,
    number: i32,
}

impl Attempt {
    fn of(d: &Delivery) -> Attempt {
        Attempt {
            message: d.message,
            resend: d.resend,
            user: d.user.clone(),
            number: d.attempts,
        }
    }
}

/// Sends messages and remembers, per object uid, what became of this replica's latest attempt.
/// Memory holds one entry per object with an attempt not yet settled in its status.
#[derive(Clone)]
pub struct Mailer {
    relay: Option<Arc<Relay>>,
    outbox: Arc<Mutex<HashMap<String, (Attempt, Outcome)>>>,
    slots: Arc<Semaphore>,
    waker: Waker,
    metrics: Arc<Metrics>,
}

impl Mailer {
    pub fn new(relay: Option<Relay>, waker: Waker, metrics: Arc<Metrics>) -> Mailer {
        Mailer {
            relay: relay.map(Arc::new),
            outbox: Arc::default(),
            slots: Arc::new(Semaphore::new(CONCURRENT_ATTEMPTS)),
            waker,
            metrics,
        }
    }

    pub fn relay(&self) -> Option<&Relay> {
        self.relay.as_deref()
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Attempt, Outcome)>> {
        self.outbox.lock().expect("outbox lock")
    }

    /// What became of this replica's attempt recorded by `record` on object `uid`: none when the
    /// attempt is not this replica's (a previous leader's, or from before a restart).
    pub fn outcome(&self, uid: &str, record: &Delivery) -> Option<Outcome> {
        let outbox = self.outbox();
        let (attempt, outcome) = outbox.get(uid)?;
        (*attempt == Attempt::of(record)).then(|| outcome.clone())
    }

    /// Forgets the outcome of an attempt once the status in the caches records it as settled.
    pub fn forget_settled(&self, uid: &str, cached: Option<&Delivery>) {
        let mut outbox = self.outbox();
        let settled = |(attempt, outcome): &(Attempt, Outcome)| {
            *outcome != Outcome::InFlight
                && cached.is_some_and(|d| {
                    Attempt::of(d) == *attempt && d.state != crate::api::DeliveryState::Sending
                })
        };
        if outbox.get(uid).is_some_and(settled) {
            outbox.remove(uid);
        }
    }

    /// Forgets everything about an object that is gone.
    pub fn forget(&self, uid: &str) {
        self.outbox().remove(uid);
    }

    /// Starts the attempt that `record` (already written as `Sending`) stands for, and wakes
    /// `namespace`'s reconcile when it is over.
    pub fn dispatch(&self, namespace: &str, uid: &str, record: &Delivery, message: Message) {
        let Some(relay) = self.relay.clone() else {
            return;
        };
        let attempt = Attempt::of(record);
        self.outbox()
            .insert(uid.to_string(), (attempt.clone(), Outcome::InFlight));
        let (mailer, namespace, uid) = (self.clone(), namespace.to_string(), uid.to_string());
        tokio::spawn(async move {
            let _slot = mailer.slots.acquire().await.expect("never closed");
            let start = Instant::now();
            let outcome = smtp::send(&relay, &message).await;
            mailer.count(attempt.message, &outcome, start.elapsed().as_secs_f64());
            if let Outcome::Failed { error, .. } = &outcome {
                tracing::warn!(%namespace, message = ?attempt.message, attempt = attempt.number, %error, "e-mail not sent");
            }
            let mut outbox = mailer.outbox();
            if outbox.get(&uid).is_some_and(|(a, _)| *a == attempt) {
                outbox.insert(uid, (attempt, outcome));
            }
            drop(outbox);
            mailer.waker.wake(&namespace);
        });
    }

    fn count(&self, message: DeliveryMessage, outcome: &Outcome, seconds: f64) {
        let result = match outcome {
            Outcome::InFlight => return,
            Outcome::Accepted(_) => "sent",
            Outcome::Failed {
                retry: Retry::Safe, ..
            } => "failed",
            Outcome::Failed {
                retry: Retry::Never,
                ..
            } => "refused",
            Outcome::Failed {
                retry: Retry::Unsafe,
                ..
            } => "unknown",
        };
        let message = serde_json::to_value(message)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        self.metrics.email(&message, result, seconds);
    }
}
