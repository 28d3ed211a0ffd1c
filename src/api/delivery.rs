//! `Delivery`: what roster knows of one e-mail it sent through the platform's SMTP relay, kept in
//! the status of the object the message is about.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

/// The last e-mail message roster sent (or tried to send) for this object.
#[derive(kube::KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Which message: `Invitation`, `Resend`, `Cancellation` or `BillingAdmin`.
    pub message: DeliveryMessage,
    /// For a `Resend`, the value of `spec.resends` it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend: Option<i32>,
    /// For a `BillingAdmin` notice, the billing admin it was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The address it went to.
    pub to: String,
    /// `Sending` while an attempt is under way, then `Sent`, `Failed` (retried until
    /// `nextAttemptTime`, unless the relay refused the message for good) or `Unknown` (roster
    /// stopped during an attempt and does not send twice: resend if it did not arrive).
    pub state: DeliveryState,
    /// Attempts made for this message.
    pub attempts: i32,
    /// When the last attempt began.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::lenient::time"
    )]
    pub last_attempt_time: Option<Time>,
    /// When the relay accepted the message.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::lenient::time"
    )]
    pub sent_time: Option<Time>,
    /// When a failed message is tried again.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::lenient::time"
    )]
    pub next_attempt_time: Option<Time>,
    /// Why the last attempt failed, as the relay or the connection said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Which e-mail message a [`Delivery`] is about.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryMessage {
    /// The invitation, with the code and the command that redeems it.
    Invitation,
    /// The invitation again, asked for by raising `spec.resends`.
    Resend,
    /// The notice that a sent invitation was revoked.
    Cancellation,
    /// The notice to a new billing admin.
    BillingAdmin,
}

/// Where one message's delivery stands.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// An attempt is under way.
    Sending,
    /// The relay accepted the message.
    Sent,
    /// The last attempt failed.
    Failed,
    /// roster stopped during an attempt; the message may or may not have gone out.
    Unknown,
}
