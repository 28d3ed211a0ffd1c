//! One SMTP transaction per message, in phases, so that a failure says whether the message could
//! have reached the relay (see `rules::delivery::Retry`).

use k8s_openapi::jiff::Timestamp;
use lettre::Message;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;

use super::relay::{Relay, Security};
use crate::rules::delivery::{Outcome, Retry};

/// Sends `message` through `relay`: the relay's acceptance, or why not and whether another
/// attempt could duplicate it.
pub async fn send(relay: &Relay, message: &Message) -> Outcome {
    let mut sending = false;
    let attempt = transaction(relay, message, &mut sending);
    match tokio::time::timeout(relay.timeout, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failed {
            error: format!("the relay did not answer within {:?}", relay.timeout),
            // Once the message is on its way, silence may mean it was accepted.
            retry: if sending { Retry::Unsafe } else { Retry::Safe },
        },
    }
}

async fn transaction(relay: &Relay, message: &Message, sending: &mut bool) -> Outcome {
    let failed = |error: String, retry| Outcome::Failed { error, retry };
    let mut conn = match connect(relay).await {
        Ok(conn) => conn,
        // Nothing was handed over: connecting, TLS and logging in come first.
        Err(e) => return failed(e, Retry::Safe),
    };
    *sending = true;
    let result = conn.send(message.envelope(), &message.formatted()).await;
    let outcome = match result {
        Ok(_) => Outcome::Accepted(Timestamp::now()),
        // A reply code is a definite answer: the message was not accepted.
        Err(e) if e.is_transient() => failed(format!("the relay answered: {e}"), Retry::Safe),
        Err(e) if e.is_permanent() => failed(format!("the relay refused: {e}"), Retry::Never),
        Err(e) => failed(
            format!("the connection broke while sending: {e}"),
            Retry::Unsafe,
        ),
    };
    let _ = conn.quit().await;
    outcome
}

/// A connection ready for MAIL FROM: greeted, encrypted as configured, logged in.
async fn connect(relay: &Relay) -> Result<AsyncSmtpConnection, String> {
    let tls = |relay: &Relay| relay.tls().map_err(|e| format!("TLS settings: {e}"));
    let hello = ClientId::Domain(relay.from.email.domain().to_string());
    let wrapped = match relay.security {
        Security::Tls => Some(tls(relay)?),
        Security::StartTls | Security::None => None,
    };
    let address = (relay.host.as_str(), relay.port);
    let mut conn =
        AsyncSmtpConnection::connect_tokio1(address, Some(relay.timeout), &hello, wrapped, None)
            .await
            .map_err(|e| format!("could not connect to {}:{}: {e}", relay.host, relay.port))?;
    if relay.security == Security::StartTls {
        if !conn.can_starttls() {
            return Err(format!(
                "{}:{} does not offer STARTTLS, which smtp:// requires (use smtps:// for TLS, or ?tls=none for a relay on the same node)",
                relay.host, relay.port
            ));
        }
        conn.starttls(tls(relay)?, &hello)
            .await
            .map_err(|e| format!("STARTTLS with {} failed: {e}", relay.host))?;
    }
    if let Some(credentials) = &relay.credentials {
        conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
            .await
            .map_err(|e| format!("login to {} failed: {e}", relay.host))?;
    }
    Ok(conn)
}
