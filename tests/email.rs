//! Invitation e-mails through a real SMTP server (Mailpit, built by hack/build-mailpit.sh), with
//! roster and its webhook on the real control plane and people as impersonated users with roster's
//! RBAC: what arrives, to whom, with which code, exactly once; a relay that is down or refuses;
//! and a SIGKILL between the relay's acceptance and roster recording it.

mod support;

use std::time::Duration;

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use roster::api::{DeliveryState, Invite, Membership, MembershipPhase, Organization};
use roster::rules::conditions;
use serde_json::json;
use support::mailpit::{Mailpit, Options, Stage, Summary, Tls};
use support::smtp_proxy::{Mode, SmtpProxy};
use support::{Operator, eventually};

const WAIT: Duration = Duration::from_secs(30);
const FROM: &str = "Acme Platform <no-reply@platform.example>";
const OLIVIA: &str = "olivia@acme.example";
const ADAM: &str = "adam@acme.example";
const VIC: &str = "vic@acme.example";

/// An org whose Organization asks for e-mail, with an owner (Olivia), an admin (Adam) and a
/// viewer (Vic), and roster running with `relay_args`.
struct Org {
    client: Client,
    ns: String,
    args: Vec<String>,
    operator: Operator,
}

impl Org {
    async fn start(test: &str, relay_args: Vec<String>) -> Org {
        let client = support::admin_client().await;
        support::install_crds(&client).await;
        let ns = support::namespace(&client, test).await;
        support::install_roster_rbac(&client, &ns).await;
        let operator = start_operator(&ns, &relay_args);
        support::wait_for_webhook(&client, &ns).await;
        let org = "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: acme\nspec:\n  displayName: Acme Mail\n  policy:\n    notifications:\n      email: true\n";
        support::apply(&client, &ns, org).await;
        let people = [(OLIVIA, "owner"), (ADAM, "admin"), (VIC, "viewer")];
        for (user, role) in people {
            let name = user.split('@').next().unwrap();
            support::apply(&client, &ns, &support::membership_yaml(name, user, role)).await;
        }
        let org = Org {
            client,
            ns,
            args: relay_args,
            operator,
        };
        for (user, _) in people {
            org.wait_for_rights(user).await;
        }
        org
    }

    /// Until `user`'s role is bound (RBAC follows the effective state).
    async fn wait_for_rights(&self, user: &str) {
        eventually(&format!("{user}'s rights"), WAIT, || async {
            support::can(user, "get", "invites.roster.dev", &self.ns).then_some(())
        })
        .await;
    }

    async fn as_user(&self, user: &str) -> Api<Invite> {
        Api::namespaced(support::client_as(user, &[]).await, &self.ns)
    }

    /// `user` creates an Invite.
    async fn invite(&self, user: &str, name: &str, spec: serde_json::Value) -> Invite {
        let invite = json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Invite",
            "metadata": { "name": name }, "spec": spec,
        });
        let params = PatchParams::apply("test");
        (self.as_user(user).await)
            .patch(name, &params, &Patch::Apply(&invite))
            .await
            .unwrap_or_else(|e| panic!("{user} creates Invite {name}: {e}"))
    }

    /// `user` merge-patches an Invite's spec; the API server's answer.
    async fn change(
        &self,
        user: &str,
        name: &str,
        spec: serde_json::Value,
    ) -> Result<Invite, kube::Error> {
        let patch = Patch::Merge(json!({ "spec": spec }));
        (self.as_user(user).await)
            .patch(name, &PatchParams::default(), &patch)
            .await
    }

    /// Waits until Invite `name`'s delivery record satisfies `done`; returns the Invite.
    async fn delivery(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&Invite) -> bool + Copy,
    ) -> Invite {
        let api: Api<Invite> = Api::namespaced(self.client.clone(), &self.ns);
        eventually(&format!("Invite {name}: {what}"), WAIT, || {
            let api = api.clone();
            async move {
                let invite = api.get(name).await.ok()?;
                done(&invite).then_some(invite)
            }
        })
        .await
    }

    async fn code(&self, invite: &str) -> String {
        let api: Api<Invite> = Api::namespaced(self.client.clone(), &self.ns);
        eventually("the invite's code", WAIT, || async {
            api.get(invite).await.ok()?.status?.code_secret_name
        })
        .await;
        support::invite_code(&self.client, &self.ns, invite).await
    }

    /// Stops roster with SIGKILL and starts it again with the same flags.
    fn restart_after_kill(&mut self) {
        self.operator.kill();
        self.operator = start_operator(&self.ns, &self.args);
    }
}

fn start_operator(ns: &str, relay_args: &[String]) -> Operator {
    let args: Vec<&str> = relay_args.iter().map(String::as_str).collect();
    support::operator_with_webhook_and(&[ns], &args)
}

fn args(url: String, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--smtp-url".into(), url, "--mail-from".into(), FROM.into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn state(i: &Invite) -> Option<DeliveryState> {
    Some(i.status.as_ref()?.delivery.as_ref()?.state)
}

fn delivered(i: &Invite) -> Option<(String, String)> {
    let status = i.status.as_ref()?;
    let c = conditions::find(&status.conditions, "Delivered")?;
    Some((c.reason.clone(), c.message.clone()))
}

fn subjects(messages: &[Summary]) -> Vec<String> {
    let mut subjects: Vec<String> = messages.iter().map(|m| m.subject.clone()).collect();
    subjects.sort();
    subjects
}

#[tokio::test]
async fn invitations_resends_cancellations_and_billing_notices_each_arrive_once() {
    // A relay as platforms run them: STARTTLS required, a login, a private CA.
    let login = ("roster".to_string(), "relay-secret".to_string());
    let relay = Mailpit::start(Options {
        tls: Tls::Required,
        auth: Some(login.clone()),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{}\n", login.1)).unwrap();
    let ca = relay.ca_pem_path().expect("a CA for STARTTLS");
    let org = Org::start(
        "mail",
        args(
            format!("smtp://localhost:{}", relay.smtp_port),
            &[
                "--smtp-username",
                &login.0,
                "--smtp-password-file",
                password.to_str().unwrap(),
                "--smtp-ca-file",
                ca.to_str().unwrap(),
            ],
        ),
    )
    .await;
    let ns = org.ns.clone();

    // An admin invites Ada: the invitation arrives, names the org, the role and the command, and
    // carries the code of the Invite's Secret; status says it was sent, and nothing else has it.
    let ada = org
        .invite(
            ADAM,
            "ada",
            json!({ "email": "ada@acme.example", "role": "member" }),
        )
        .await;
    let mail = relay.wait_for_messages(1, WAIT).await;
    let code = org.code("ada").await;
    let m = &mail[0];
    assert_eq!(m.to, ["ada@acme.example"]);
    assert_eq!(m.subject, "You are invited to join Acme Mail as member");
    assert_eq!(m.username, login.0, "sent with the relay login");
    assert_eq!(
        m.message_id,
        format!("{}.invitation@platform.example", ada.uid().unwrap())
    );
    let text = relay.message(&m.id).await.text;
    let command = format!("kubectl roster join {ns} --invite ada --code {code} --role member");
    assert!(text.contains(&command), "{text}");
    assert!(text.contains("It expires at"), "{text}");
    let sent = org
        .delivery("ada", "sent", |i| state(i) == Some(DeliveryState::Sent))
        .await;
    let (reason, message) = delivered(&sent).unwrap();
    assert_eq!(reason, "Sent");
    assert!(message.contains("ada@acme.example"), "{message}");
    assert!(
        conditions::is_true(&sent.status.as_ref().unwrap().conditions, "Ready"),
        "delivery is no part of Ready"
    );

    // Ada joins with the code from the e-mail.
    let ada_client = support::client_as("ada@acme.example", &[]).await;
    let joined = support::redemption_json("ada", &ns, "ada@acme.example", "member", "ada", &code);
    let api: Api<Membership> = Api::namespaced(ada_client, &ns);
    api.create(
        &Default::default(),
        &serde_json::from_value(joined).unwrap(),
    )
    .await
    .expect("Ada joins with the e-mailed code");
    let admin_memberships: Api<Membership> = Api::namespaced(org.client.clone(), &ns);
    eventually("Ada Active", WAIT, || async {
        let s = admin_memberships.get("ada").await.ok()?.status?;
        (s.phase == Some(MembershipPhase::Active)).then_some(())
    })
    .await;

    // To a separate notification address; a viewer may not resend it, the admin may; revoking
    // it sends a cancellation. Each message once.
    let grace_spec = json!({
        "email": "grace@acme.example",
        "notificationEmail": "grace.hopper@mail.example",
        "role": "member",
    });
    let grace = org.invite(ADAM, "grace", grace_spec).await;
    let mail = relay.wait_for_messages(2, WAIT).await;
    assert!(
        mail.iter().any(|m| m.to == ["grace.hopper@mail.example"]),
        "{mail:?}"
    );
    let refused = org.change(VIC, "grace", json!({ "resends": 1 })).await;
    assert!(refused.is_err(), "a viewer resends nothing: {refused:?}");
    org.delivery("grace", "sent", |i| state(i) == Some(DeliveryState::Sent))
        .await;
    org.change(ADAM, "grace", json!({ "resends": 1 }))
        .await
        .expect("the admin resends");
    let mail = relay.wait_for_messages(3, WAIT).await;
    let resend = mail
        .iter()
        .find(|m| m.subject.ends_with("(sent again)"))
        .expect("the resend");
    assert_eq!(
        resend.message_id,
        format!("{}.resend-1@platform.example", grace.uid().unwrap())
    );
    let grace_code = org.code("grace").await;
    assert!(
        relay.message(&resend.id).await.text.contains(&grace_code),
        "the same code"
    );
    org.delivery("grace", "resend sent", |i| {
        state(i) == Some(DeliveryState::Sent)
            && i.status.as_ref().unwrap().delivery.as_ref().unwrap().resend == Some(1)
    })
    .await;
    org.change(ADAM, "grace", json!({ "revoked": true }))
        .await
        .expect("the admin revokes");
    let mail = relay.wait_for_messages(4, WAIT).await;
    assert!(
        mail.iter().any(
            |m| m.subject == "Your invitation to join Acme Mail has been canceled"
                && m.to == ["grace.hopper@mail.example"]
        ),
        "{mail:?}"
    );

    // Admin invites are the owner's: the admin may not resend one.
    org.invite(
        OLIVIA,
        "boss",
        json!({ "email": "boss@acme.example", "role": "admin" }),
    )
    .await;
    relay.wait_for_messages(5, WAIT).await;
    let refused = org.change(ADAM, "boss", json!({ "resends": 1 })).await;
    let refused = format!(
        "{:?}",
        refused.expect_err("an admin resends no admin invite")
    );
    assert!(refused.contains("owner"), "{refused}");

    // A new billing admin is told, once.
    let orgs: Api<Organization> = Api::namespaced(org.client.clone(), &ns);
    let billing = Patch::Merge(json!({ "spec": { "billingAdmin": OLIVIA } }));
    orgs.patch("acme", &PatchParams::default(), &billing)
        .await
        .unwrap();
    let mail = relay.wait_for_messages(6, WAIT).await;
    assert!(
        mail.iter()
            .any(|m| m.subject == "You are now the billing admin of Acme Mail" && m.to == [OLIVIA]),
        "{mail:?}"
    );

    // Settled: nothing more arrives, every message is another, and no code is anywhere but mail.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mail = relay.messages().await;
    assert_eq!(subjects(&mail).len(), 6, "{:#?}", subjects(&mail));
    let mut ids: Vec<&str> = mail.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert_eq!(org.operator.metric_sum("roster_emails_total"), 6.0);
    let invites: Api<Invite> = Api::namespaced(org.client.clone(), &ns);
    let statuses =
        serde_json::to_string(&invites.list(&ListParams::default()).await.unwrap()).unwrap();
    let events = support::kubectl(&["get", "events", "-n", &ns, "-o", "json"]).1;
    for (secret, name) in [(&code, "ada"), (&grace_code, "grace")] {
        assert!(
            !statuses.contains(secret.as_str()),
            "{name}'s code in an Invite"
        );
        assert!(
            !events.contains(secret.as_str()),
            "{name}'s code in an Event"
        );
        assert!(
            !org.operator.logs().contains(secret.as_str()),
            "{name}'s code in roster's log"
        );
    }
}

#[tokio::test]
async fn a_relay_that_is_down_or_refuses_delays_only_its_own_messages() {
    let relay = Mailpit::start(Options::default()).await;
    let proxy = SmtpProxy::start(relay.smtp_addr());
    let url = format!("smtp://127.0.0.1:{}?tls=none", proxy.port());
    let org = Org::start(
        "maildown",
        args(url, &["--smtp-retry-after", "2s", "--smtp-timeout", "5s"]),
    )
    .await;

    // Down: the attempt fails, is retried, and says why; everything else goes on.
    proxy.set_mode(Mode::Down);
    org.invite(
        ADAM,
        "ada",
        json!({ "email": "ada@acme.example", "role": "member" }),
    )
    .await;
    let failed = org
        .delivery("ada", "failed", |i| state(i) == Some(DeliveryState::Failed))
        .await;
    let (reason, message) = delivered(&failed).unwrap();
    assert_eq!(reason, "SendFailed");
    assert!(
        message.contains("could not connect") && message.contains("next attempt at"),
        "{message}"
    );
    assert!(conditions::is_true(
        &failed.status.as_ref().unwrap().conditions,
        "Usable"
    ));
    support::apply(
        &org.client,
        &org.ns,
        &support::membership_yaml("mia", "mia@acme.example", "member"),
    )
    .await;
    org.wait_for_rights("mia@acme.example").await;
    let admitted = org.invite(ADAM, "bob", json!({ "role": "member" })).await;
    assert!(
        admitted.uid().is_some(),
        "the webhook admits while the relay is down"
    );

    // Up: the next retry delivers it, once.
    proxy.set_mode(Mode::Pass);
    let mail = relay.wait_for_messages(1, WAIT).await;
    assert_eq!(mail[0].to, ["ada@acme.example"]);
    let sent = org
        .delivery("ada", "sent after the relay came back", |i| {
            state(i) == Some(DeliveryState::Sent)
        })
        .await;
    assert!(sent.status.unwrap().delivery.unwrap().attempts >= 2);

    // A permanent refusal (550 to RCPT TO) is not tried again; a temporary one (451) is.
    relay.fail_at(Stage::Recipient, Some(550)).await;
    org.invite(
        ADAM,
        "nobody",
        json!({ "email": "nobody@acme.example", "role": "member" }),
    )
    .await;
    let rejected = org
        .delivery("nobody", "rejected", |i| {
            delivered(i).is_some_and(|(reason, _)| reason == "SendRejected")
        })
        .await;
    relay.fail_at(Stage::Recipient, None).await;
    relay.fail_at(Stage::Sender, Some(451)).await;
    org.invite(
        ADAM,
        "carl",
        json!({ "email": "carl@acme.example", "role": "member" }),
    )
    .await;
    org.delivery("carl", "failed for now", |i| {
        delivered(i).is_some_and(|(reason, _)| reason == "SendFailed")
    })
    .await;
    relay.fail_at(Stage::Sender, None).await;
    let mail = relay.wait_for_messages(2, WAIT).await;
    assert!(
        mail.iter().any(|m| m.to == ["carl@acme.example"]),
        "{mail:?}"
    );
    let attempts = |i: &Invite| {
        i.status
            .as_ref()
            .unwrap()
            .delivery
            .as_ref()
            .unwrap()
            .attempts
    };
    let api: Api<Invite> = Api::namespaced(org.client.clone(), &org.ns);
    assert_eq!(
        attempts(&api.get("nobody").await.unwrap()),
        attempts(&rejected),
        "not retried"
    );
    assert!(
        !relay
            .messages()
            .await
            .iter()
            .any(|m| m.to == ["nobody@acme.example"])
    );
}

#[tokio::test]
async fn a_kill_between_the_relays_acceptance_and_its_record_sends_nothing_twice() {
    let relay = Mailpit::start(Options::default()).await;
    let proxy = SmtpProxy::start(relay.smtp_addr());
    let url = format!("smtp://127.0.0.1:{}?tls=none", proxy.port());
    let mut org = Org::start("mailkill", args(url, &["--smtp-retry-after", "1s"])).await;

    // The relay has the message; roster has not heard so when it is killed.
    proxy.set_mode(Mode::HoldAfterData);
    org.invite(
        ADAM,
        "ada",
        json!({ "email": "ada@acme.example", "role": "member" }),
    )
    .await;
    proxy.wait_held(1, WAIT).await;
    let api: Api<Invite> = Api::namespaced(org.client.clone(), &org.ns);
    let before = api.get("ada").await.unwrap();
    assert_eq!(
        state(&before),
        Some(DeliveryState::Sending),
        "recorded before sending"
    );
    org.restart_after_kill();
    proxy.set_mode(Mode::Pass);
    assert_eq!(relay.wait_for_messages(1, WAIT).await.len(), 1);

    // The new process cannot know: it says so and does not send again.
    let unknown = org
        .delivery("ada", "unknown", |i| {
            state(i) == Some(DeliveryState::Unknown)
        })
        .await;
    let (reason, message) = delivered(&unknown).unwrap();
    assert_eq!(reason, "DeliveryUnknown");
    assert!(
        message.contains("kubectl roster invite resend ada"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(relay.messages().await.len(), 1, "at most once");
    assert_eq!(proxy.counts().accepted, 1);

    // A resend is a new message, sent once.
    org.change(ADAM, "ada", json!({ "resends": 1 }))
        .await
        .expect("the admin resends");
    let mail = relay.wait_for_messages(2, WAIT).await;
    assert!(
        mail.iter().any(|m| m.subject.ends_with("(sent again)")),
        "{mail:?}"
    );
    org.delivery("ada", "resend sent", |i| {
        state(i) == Some(DeliveryState::Sent)
    })
    .await;
}
