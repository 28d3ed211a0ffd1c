//! The e-mails roster sends, as text: the invitation (and its resends), the cancellation notice
//! and the billing admin notice. The only place an invite code is written outside its Secret.

use k8s_openapi::jiff::Timestamp;
use lettre::Message;
use lettre::message::header::ContentType;

use super::relay::Relay;
use crate::api::{IdentityProviderRef, OrgRole};

/// The organization a message is about.
pub struct Org<'a> {
    pub namespace: &'a str,
    /// Its display name, else the Organization's name.
    pub name: &'a str,
}

/// What a message says.
pub enum Content<'a> {
    Invitation {
        invite: &'a str,
        role: OrgRole,
        expires_at: Option<Timestamp>,
        code: &'a str,
        /// A resend says so, so that people know the earlier one is the same invitation.
        resent: bool,
        /// The identity provider (and tenant) the invite is bound to: the message says to sign in
        /// with it, and the join command declares the tenant.
        identity_provider: Option<&'a IdentityProviderRef>,
    },
    Cancellation {
        invite: &'a str,
    },
    BillingAdmin {
        user: &'a str,
    },
}

/// The subject and plain-text body.
pub fn render(org: &Org<'_>, content: &Content<'_>, join_url: Option<&str>) -> (String, String) {
    match content {
        Content::Invitation {
            invite,
            role,
            expires_at,
            code,
            resent,
            identity_provider,
        } => invitation(
            org,
            invite,
            *role,
            *expires_at,
            code,
            *resent,
            *identity_provider,
            join_url,
        ),
        Content::Cancellation { invite } => (
            format!("Your invitation to join {} has been canceled", org.name),
            format!(
                "The invitation to join the organization {} (Invite {invite} in namespace {}) was revoked by an administrator. Its code no longer works.\n\nIf you should still join, ask them for a new invitation.\n",
                org.name, org.namespace
            ),
        ),
        Content::BillingAdmin { user } => (
            format!("You are now the billing admin of {}", org.name),
            format!(
                "{user} is now the billing admin of the organization {} (namespace {}).\n\nInvoices and billing notices for this organization go to this address from now on.\n",
                org.name, org.namespace
            ),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn invitation(
    org: &Org<'_>,
    invite: &str,
    role: OrgRole,
    expires_at: Option<Timestamp>,
    code: &str,
    resent: bool,
    identity_provider: Option<&IdentityProviderRef>,
    join_url: Option<&str>,
) -> (String, String) {
    let again = if resent { " (sent again)" } else { "" };
    let subject = format!("You are invited to join {} as {role}{again}", org.name);
    let expiry = expires_at.map_or_else(
        || "It does not expire by time.".to_string(),
        |t| format!("It expires at {t}."),
    );
    let how = match join_url {
        Some(template) => format!(
            "Join here:\n\n    {}\n\nYour code, should the page ask for it:\n\n    {code}\n",
            portal_link(template, org.namespace, invite, role, code)
        ),
        None => {
            // An invite bound to a tenant is redeemed declaring it (roster's webhook checks it
            // against the sign-in), so the command carries it.
            let tenant = identity_provider
                .and_then(|p| p.tenant.as_deref())
                .map(|t| format!(" --tenant {t}"))
                .unwrap_or_default();
            format!(
                "Your code:\n\n    {code}\n\nJoin with kubectl (with the roster plugin installed), signed in as the account you were invited as:\n\n    kubectl roster join {} --invite {invite} --code {code} --role {role}{tenant}\n",
                org.namespace
            )
        }
    };
    let sign_in = match identity_provider {
        Some(IdentityProviderRef {
            name,
            tenant: Some(t),
        }) => format!(
            "Sign in with {name}, in tenant {t}: the invitation is for that account only.\n\n"
        ),
        Some(IdentityProviderRef { name, .. }) => {
            format!("Sign in with {name}: the invitation is for that account only.\n\n")
        }
        None => String::new(),
    };
    let body = format!(
        "You are invited to join the organization {} as {role}{again}.\n\n{sign_in}{how}\n{expiry} The code is for you alone: whoever has it can use it.\n\nIf you did not expect this invitation, ignore this message.\n",
        org.name
    );
    (subject, body)
}

/// The portal link: `{namespace}`, `{invite}`, `{role}` and `{code}` replaced, each URL-encoded.
fn portal_link(template: &str, namespace: &str, invite: &str, role: OrgRole, code: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    template
        .replace("{namespace}", &enc(namespace))
        .replace("{invite}", &enc(invite))
        .replace("{role}", role.as_str())
        .replace("{code}", &enc(code))
}

/// The message as sent: from the relay's address to `to`, with a Message-ID that names the
/// object and message, so that a mail client can tell a duplicate (`id` is unique per message).
pub fn build(
    relay: &Relay,
    to: &str,
    id: &str,
    subject: String,
    body: String,
) -> Result<Message, String> {
    let to = to
        .parse()
        .map_err(|e| format!("{to:?} is not an e-mail address: {e}"))?;
    let domain = relay.from.email.domain();
    Message::builder()
        .from(relay.from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{id}@{domain}>")))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: Org<'static> = Org {
        namespace: "acme",
        name: "Acme Research",
    };

    fn invitation(join_url: Option<&str>, resent: bool) -> (String, String) {
        let content = Content::Invitation {
            invite: "ada",
            role: OrgRole::Admin,
            expires_at: Some("2027-01-15T08:00:00Z".parse().unwrap()),
            code: "ABCD-EFGH-JKLM-NPQR",
            resent,
            identity_provider: None,
        };
        render(&ORG, &content, join_url)
    }

    #[test]
    fn an_invitation_bound_to_a_tenant_says_how_to_sign_in_and_declares_it() {
        let entra = IdentityProviderRef {
            name: "entra".into(),
            tenant: Some("t-1".into()),
        };
        let content = Content::Invitation {
            invite: "ada",
            role: OrgRole::Member,
            expires_at: None,
            code: "ABCD-EFGH-JKLM-NPQR",
            resent: false,
            identity_provider: Some(&entra),
        };
        let (_, body) = render(&ORG, &content, None);
        assert!(body.contains("Sign in with entra, in tenant t-1"), "{body}");
        assert!(
            body.contains(
                "kubectl roster join acme --invite ada --code ABCD-EFGH-JKLM-NPQR --role member --tenant t-1\n"
            ),
            "{body}"
        );
    }

    #[test]
    fn an_invitation_names_the_org_the_role_the_expiry_and_the_exact_join_command() {
        let (subject, body) = invitation(None, false);
        assert_eq!(subject, "You are invited to join Acme Research as admin");
        assert!(body.contains("2027-01-15T08:00:00Z"), "{body}");
        assert!(
            body.contains(
                "kubectl roster join acme --invite ada --code ABCD-EFGH-JKLM-NPQR --role admin"
            ),
            "{body}"
        );
        let (subject, _) = invitation(None, true);
        assert!(subject.ends_with("(sent again)"), "{subject}");
    }

    #[test]
    fn a_portal_link_replaces_the_command_with_every_value_encoded() {
        let (_, body) = invitation(
            Some("https://portal.example/join?org={namespace}&i={invite}&c={code}&r={role}"),
            false,
        );
        assert!(
            body.contains(
                "https://portal.example/join?org=acme&i=ada&c=ABCD-EFGH-JKLM-NPQR&r=admin"
            ),
            "{body}"
        );
        assert!(!body.contains("kubectl roster join"), "{body}");
        let odd = portal_link("https://p/{invite}", "ns", "a&b=c", OrgRole::Member, "x");
        assert_eq!(odd, "https://p/a%26b%3Dc");
    }

    #[test]
    fn notices_carry_no_code() {
        let (subject, body) = render(&ORG, &Content::Cancellation { invite: "ada" }, None);
        assert_eq!(
            subject,
            "Your invitation to join Acme Research has been canceled"
        );
        assert!(body.contains("no longer works"), "{body}");
        let (subject, _) = render(
            &ORG,
            &Content::BillingAdmin {
                user: "ada@acme.example",
            },
            None,
        );
        assert_eq!(subject, "You are now the billing admin of Acme Research");
    }
}
