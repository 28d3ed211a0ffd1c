//! The e-mail test harness itself, proven with a real SMTP client (lettre, on rustls): Mailpit
//! (tests/support/mailpit.rs) receives over plain SMTP, STARTTLS and implicit TLS with the test's CA,
//! with SMTP AUTH, across a stop and a restart, and refuses on demand; the fault-injecting relay
//! (tests/support/smtp_proxy.rs) refuses connections when down and withholds the server's acceptance
//! of a message while the server already has it.
//!
//! Mailpit comes from hack/build-mailpit.sh, which the harness runs: a missing binary is built, and a
//! failed build fails these tests.

mod support;

use std::error::Error as _;
use std::time::Duration;

use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::Error;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use support::mailpit::{self, Mailpit, Options, Stage};
use support::smtp_proxy::{Counts, Mode, SmtpProxy};

const WAIT: Duration = Duration::from_secs(10);

/// A client that opens one connection per message to 127.0.0.1:`port`.
fn client(
    port: u16,
    tls: Tls,
    credentials: Option<(&str, &str)>,
) -> AsyncSmtpTransport<Tokio1Executor> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(20)));
    if let Some((user, password)) = credentials {
        builder = builder.credentials(Credentials::new(user.into(), password.into()));
    }
    builder.build()
}

/// TLS for `localhost` that trusts `ca` only (no built-in roots: lettre is built without them).
fn trusting(ca: Option<&str>) -> TlsParameters {
    let mut tls =
        TlsParameters::builder("localhost".into()).certificate_store(CertificateStore::None);
    if let Some(ca) = ca {
        tls = tls.add_root_certificate(Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    tls.build_rustls().unwrap()
}

/// Message `n` from roster to ada, with a Message-ID of its own.
fn message(n: u32) -> Message {
    let mailbox = |s: &str| s.parse::<Mailbox>().unwrap();
    Message::builder()
        .from(mailbox("Roster <roster@acme.example>"))
        .to(mailbox("Ada <ada@acme.example>"))
        .cc(mailbox("owners@acme.example"))
        .subject(format!("Invitation {n}"))
        .message_id(Some(format!("<invite-{n}@roster.test>")))
        .body(format!("Join acme with code {n}.\r\n"))
        .unwrap()
}

/// The I/O error under a client error (lettre wraps connection and TLS failures in its own).
fn root_io_error(e: &Error) -> Option<&std::io::Error> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

/// Whether `e` is a refused TCP connection.
fn refused(e: &Error) -> bool {
    root_io_error(e).is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
}

#[tokio::test]
async fn plain_smtp_messages_are_read_back_through_the_api() {
    let mailpit = Mailpit::start(Options::default()).await;
    let smtp = client(mailpit.smtp_port, Tls::None, None);
    smtp.send(message(1)).await.unwrap();
    smtp.send(message(2)).await.unwrap();

    let messages = mailpit.wait_for_messages(2, WAIT).await;
    assert_eq!(messages.len(), 2);
    let (first, second) = (&messages[0], &messages[1]);
    assert_eq!(first.subject, "Invitation 1", "oldest first: {messages:#?}");
    assert_eq!(second.subject, "Invitation 2");
    assert_eq!(first.message_id, "invite-1@roster.test");
    assert_eq!(first.from, "roster@acme.example");
    assert_eq!(first.to, ["ada@acme.example"]);
    assert!(!first.created.is_empty());
    assert_eq!(first.username, "");

    let full = mailpit.message(&first.id).await;
    assert_eq!(full.text.trim_end(), "Join acme with code 1.");
    assert_eq!(full.cc, ["owners@acme.example"]);
    let headers = mailpit.headers(&first.id).await;
    assert_eq!(headers["Subject"], ["Invitation 1"]);
    assert_eq!(headers["Message-Id"], ["<invite-1@roster.test>"]);
    let raw = mailpit.raw(&first.id).await;
    assert!(raw.contains("\r\nSubject: Invitation 1\r\n"), "{raw:?}");
    // lettre ends the body with a line break of its own before the end-of-data dot.
    assert!(
        raw.ends_with("\r\n\r\nJoin acme with code 1.\r\n\r\n"),
        "{raw:?}"
    );

    mailpit.delete_all().await;
    assert!(mailpit.messages().await.is_empty());
}

#[tokio::test]
async fn required_starttls_works_with_the_test_ca_only() {
    let mailpit = Mailpit::start(Options {
        tls: mailpit::Tls::Required,
        ..Options::default()
    })
    .await;
    let ca = mailpit.ca_pem().unwrap();
    assert_eq!(
        std::fs::read_to_string(mailpit.ca_pem_path().unwrap()).unwrap(),
        ca
    );

    client(mailpit.smtp_port, Tls::Required(trusting(Some(ca))), None)
        .send(message(1))
        .await
        .unwrap();
    let untrusted = client(mailpit.smtp_port, Tls::Required(trusting(None)), None)
        .send(message(2))
        .await
        .unwrap_err();
    assert!(
        root_io_error(&untrusted)
            .and_then(|io| io.get_ref()?.downcast_ref::<rustls::Error>())
            .is_some_and(|e| *e
                == rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
        "{untrusted:?}"
    );
    let plain = client(mailpit.smtp_port, Tls::None, None)
        .send(message(3))
        .await
        .unwrap_err();
    assert_eq!(plain.status().map(u16::from), Some(530), "{plain:?}");

    assert_eq!(mailpit.wait_for_messages(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn implicit_tls_works_with_the_test_ca() {
    let mailpit = Mailpit::start(Options {
        tls: mailpit::Tls::Implicit,
        ..Options::default()
    })
    .await;
    let ca = mailpit.ca_pem().unwrap();
    client(mailpit.smtp_port, Tls::Wrapper(trusting(Some(ca))), None)
        .send(message(1))
        .await
        .unwrap();
    assert_eq!(mailpit.wait_for_messages(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn smtp_auth_accepts_the_right_password_only() {
    let mailpit = Mailpit::start(Options {
        auth: Some(("roster".into(), "s3cret".into())),
        ..Options::default()
    })
    .await;
    let port = mailpit.smtp_port;

    client(port, Tls::None, Some(("roster", "s3cret")))
        .send(message(1))
        .await
        .unwrap();
    let wrong = client(port, Tls::None, Some(("roster", "guess")))
        .send(message(2))
        .await
        .unwrap_err();
    assert!(wrong.is_permanent(), "{wrong:?}");
    assert_eq!(wrong.status().map(u16::from), Some(535), "{wrong:?}");
    let anonymous = client(port, Tls::None, None)
        .send(message(3))
        .await
        .unwrap_err();
    assert_eq!(
        anonymous.status().map(u16::from),
        Some(530),
        "{anonymous:?}"
    );

    let messages = mailpit.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].username, "roster");
}

#[tokio::test]
async fn smtp_auth_after_starttls() {
    let mailpit = Mailpit::start(Options {
        tls: mailpit::Tls::Required,
        auth: Some(("roster".into(), "s3cret".into())),
    })
    .await;
    let tls = || Tls::Required(trusting(mailpit.ca_pem()));
    client(mailpit.smtp_port, tls(), Some(("roster", "s3cret")))
        .send(message(1))
        .await
        .unwrap();
    let wrong = client(mailpit.smtp_port, tls(), Some(("roster", "guess")))
        .send(message(2))
        .await
        .unwrap_err();
    assert_eq!(wrong.status().map(u16::from), Some(535), "{wrong:?}");
    assert_eq!(mailpit.wait_for_messages(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn a_stopped_relay_refuses_and_a_restarted_one_keeps_its_messages() {
    let mut mailpit = Mailpit::start(Options::default()).await;
    let smtp = client(mailpit.smtp_port, Tls::None, None);
    smtp.send(message(1)).await.unwrap();

    mailpit.stop();
    let down = smtp.send(message(2)).await.unwrap_err();
    assert!(refused(&down), "{down:?}");

    mailpit.restart().await;
    smtp.send(message(3)).await.unwrap();
    let subjects: Vec<String> = mailpit
        .wait_for_messages(2, WAIT)
        .await
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert_eq!(subjects, ["Invitation 1", "Invitation 3"]);
}

#[tokio::test]
async fn fail_at_makes_transactions_fail_with_the_code() {
    let mailpit = Mailpit::start(Options::default()).await;
    let smtp = client(mailpit.smtp_port, Tls::None, None);

    mailpit.fail_at(Stage::Recipient, Some(451)).await;
    let transient = smtp.send(message(1)).await.unwrap_err();
    assert!(transient.is_transient(), "{transient:?}");
    assert_eq!(transient.status().map(u16::from), Some(451));

    mailpit.fail_at(Stage::Recipient, None).await;
    mailpit.fail_at(Stage::Sender, Some(550)).await;
    let permanent = smtp.send(message(2)).await.unwrap_err();
    assert!(permanent.is_permanent(), "{permanent:?}");
    assert_eq!(permanent.status().map(u16::from), Some(550));

    mailpit.fail_at(Stage::Sender, None).await;
    smtp.send(message(3)).await.unwrap();
    let messages = mailpit.wait_for_messages(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject, "Invitation 3");
}

#[tokio::test]
async fn the_proxy_relays_and_when_down_refuses_connections() {
    let mailpit = Mailpit::start(Options::default()).await;
    let proxy = SmtpProxy::start(mailpit.smtp_addr());
    let smtp = client(proxy.port(), Tls::None, None);

    smtp.send(message(1)).await.unwrap();
    proxy.set_mode(Mode::Down);
    let down = smtp.send(message(2)).await.unwrap_err();
    assert!(refused(&down), "{down:?}");
    proxy.set_mode(Mode::Pass);
    smtp.send(message(3)).await.unwrap();

    assert_eq!(mailpit.wait_for_messages(2, WAIT).await.len(), 2);
    assert_eq!(
        proxy.counts(),
        Counts {
            connections: 2,
            accepted: 2,
            held: 0
        }
    );
}

#[tokio::test]
async fn the_proxy_holds_the_acceptance_until_released() {
    let mailpit = Mailpit::start(Options::default()).await;
    let proxy = SmtpProxy::start(mailpit.smtp_addr());
    let smtp = client(proxy.port(), Tls::None, None);
    proxy.set_mode(Mode::HoldAfterData);

    let send = tokio::spawn(async move { smtp.send(message(1)).await });
    proxy.wait_held(1, WAIT).await;
    // The relay has the message; its sender has not been told.
    let messages = mailpit.wait_for_messages(1, WAIT).await;
    assert_eq!(messages[0].subject, "Invitation 1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !send.is_finished(),
        "the send completed while its reply was held"
    );

    proxy.set_mode(Mode::Pass);
    let response = send.await.unwrap().unwrap();
    assert_eq!(u16::from(response.code()), 250);
    assert_eq!(
        proxy.counts(),
        Counts {
            connections: 1,
            accepted: 1,
            held: 1
        }
    );
}

#[tokio::test]
async fn a_sender_that_dies_while_held_leaves_one_message() {
    let mailpit = Mailpit::start(Options::default()).await;
    let proxy = SmtpProxy::start(mailpit.smtp_addr());
    proxy.set_mode(Mode::HoldAfterData);

    // The sender dies as a killed process does: its connection closes with the reply unread.
    let smtp = client(proxy.port(), Tls::None, None);
    let send = tokio::spawn(async move { smtp.send(message(1)).await });
    proxy.wait_held(1, WAIT).await;
    send.abort();
    assert!(send.await.unwrap_err().is_cancelled());

    proxy.set_mode(Mode::Pass);
    client(proxy.port(), Tls::None, None)
        .send(message(2))
        .await
        .unwrap();
    let subjects: Vec<String> = mailpit
        .wait_for_messages(2, WAIT)
        .await
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert_eq!(subjects, ["Invitation 1", "Invitation 2"]);
    let counts = proxy.counts();
    assert_eq!((counts.accepted, counts.held), (2, 1), "{counts:?}");
}
