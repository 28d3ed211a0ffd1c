//! Invites and selfJoin bound to an identity provider, through the real API server as an attacker
//! works: users impersonated with the username prefix and the `userInfo.extra` an authenticator's
//! claim mappings would give them (`Impersonate-Extra-*`, like `kubectl --as-user-extra`), holding
//! only the RBAC roster grants (its `roster-org-*` roles and the self-service role). A user of
//! another provider holding a valid code, the right provider in the wrong tenant, usernames crafted
//! to look like another provider's, and a selfJoin domain claimed through another provider are
//! refused by the webhook, which names the provider; Memberships written where no webhook reviewed
//! them are held by the controller, Denied with a condition that names the provider.
//!
//! Also, without a cluster: `roster run` refuses a provider configuration it cannot trust before
//! it starts anything.

mod support;

use std::process::Command;
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use roster::api::{Invite, Membership, MembershipPhase};
use serde_json::{Value, json};
use support::{Operator, eventually, membership_json, object_json};

const WAIT: Duration = Duration::from_secs(30);

/// How the platform named its providers: Google, and Microsoft Entra ID with the tenant claim.
const PROVIDERS: [&str; 4] = [
    "--identity-provider",
    "name=google,usernamePrefix=google:",
    "--identity-provider",
    "name=entra,usernamePrefix=entra:,tenantKey=entra.example/tid",
];
const TID: &str = "entra.example/tid";
const TENANT: &str = "11111111-aaaa-4bbb-8ccc-000000000001";
const OTHER_TENANT: &str = "22222222-aaaa-4bbb-8ccc-000000000002";

const OLIVE: &str = "google:olive@corp.example"; // owner

/// One org namespace with roster's RBAC, roster (with or without its webhook) configured with
/// [`PROVIDERS`], an Organization whose selfJoin is bound to the Entra tenant, and its owner.
struct Org {
    admin: Client,
    ns: String,
    _operator: Operator,
}

impl Org {
    async fn new(test: &str, webhook: bool) -> Org {
        let admin = support::admin_client().await;
        support::install_crds(&admin).await;
        let ns = support::namespace(&admin, test).await;
        support::install_roster_rbac(&admin, &ns).await;
        let operator = if webhook {
            let op = support::operator_with_webhook_and(&[&ns], &PROVIDERS);
            support::wait_for_webhook(&admin, &ns).await;
            op
        } else {
            Operator::start(&[&ns], &PROVIDERS)
        };
        let org = Org {
            admin,
            ns,
            _operator: operator,
        };
        let organization = json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
            "metadata": { "name": "corp" },
            "spec": { "policy": { "selfJoin": {
                "emailDomains": ["corp.example"], "role": "member",
                "identityProvider": { "name": "entra", "tenant": TENANT }
            } } }
        });
        org.platform_create(organization).await.unwrap();
        org.platform_create(membership_json("olive", OLIVE, "owner"))
            .await
            .unwrap();
        org.phase("olive", MembershipPhase::Active).await;
        org
    }

    async fn platform_create(&self, object: Value) -> Result<(), String> {
        support::create_raw(&self.admin, &self.ns, object)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Creates `object` as `user`, signed in with `extra`.
    async fn create_as(
        &self,
        user: &str,
        extra: &[(&str, &[&str])],
        object: Value,
    ) -> Result<(), String> {
        let client = support::client_signed_in(user, extra).await;
        support::create_raw(&client, &self.ns, object)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The owner creates an Invite (once the webhook knows her as owner) and reads its code, as
    /// she would to hand it out.
    async fn invite(&self, name: &str, spec: Value) -> String {
        eventually(&format!("the owner to create Invite {name}"), WAIT, || {
            let object = object_json("Invite", name, spec.clone());
            async move { self.create_as(OLIVE, &[], object).await.ok() }
        })
        .await;
        let owner = support::client_as(OLIVE, &[]).await;
        support::invite_code(&owner, &self.ns, name).await
    }

    async fn phase(&self, name: &str, phase: MembershipPhase) -> Membership {
        support::membership_in_phase(&self.admin, &self.ns, name, phase, WAIT).await
    }

    /// Waits until Membership `name` is Denied, and returns its Ready condition's reason and message.
    async fn denied(&self, name: &str) -> (String, String) {
        let m = self.phase(name, MembershipPhase::Denied).await;
        let ready = m
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("a Ready condition");
        (ready.reason, ready.message)
    }
}

/// The Membership `user` writes to redeem `invite` with `code`, declaring `tenant`.
fn redemption(
    name: &str,
    ns: &str,
    user: &str,
    invite: &str,
    code: &str,
    tenant: Option<&str>,
) -> Value {
    let mut m = support::redemption_json(name, ns, user, "member", invite, code);
    if let Some(t) = tenant {
        m["spec"]["invite"]["tenant"] = json!(t);
    }
    m
}

fn refused(result: Result<(), String>, what: &str) -> String {
    match result {
        Ok(()) => panic!("{what} was admitted"),
        Err(e) => {
            assert!(e.contains("roster:"), "{what}: refused by roster: {e}");
            e
        }
    }
}

const IN_TENANT: &[(&str, &[&str])] = &[(TID, &[TENANT])];
const IN_OTHER_TENANT: &[(&str, &[&str])] = &[(TID, &[OTHER_TENANT])];

/// A valid code does not let in a user of another provider, a username crafted to look like the
/// provider's, or the right provider's user in another tenant; the webhook says which provider.
#[tokio::test]
async fn a_bound_invite_refuses_other_providers_and_tenants() {
    let org = Org::new("idp-invites", true).await;
    let ns = org.ns.clone();
    let google_code = org
        .invite(
            "ada-google",
            json!({ "email": "ada@corp.example", "role": "member", "identityProvider": { "name": "google" } }),
        )
        .await;
    let entra_code = org
        .invite(
            "ada-entra",
            json!({ "email": "ada@corp.example", "role": "member", "maxUses": 3,
                    "identityProvider": { "name": "entra", "tenant": TENANT } }),
        )
        .await;

    // Bound to what the platform did not configure: refused at creation, naming the field.
    for (spec, says) in [
        (
            json!({ "email": "ada@corp.example", "role": "member", "identityProvider": { "name": "okta" } }),
            "spec.identityProvider.name: identity provider okta is not configured",
        ),
        (
            json!({ "email": "ada@corp.example", "role": "member", "identityProvider": { "name": "google", "tenant": TENANT } }),
            "spec.identityProvider.tenant: identity provider google has no tenantKey",
        ),
        (
            json!({ "email": "google:ada@corp.example", "role": "member", "identityProvider": { "name": "google" } }),
            "set it to ada@corp.example",
        ),
    ] {
        let e = refused(
            org.create_as(OLIVE, &[], object_json("Invite", "bad", spec))
                .await,
            says,
        );
        assert!(e.contains(says), "{e}");
    }

    // The google invite: another provider's user with the valid code, and crafted usernames.
    let bound = format!("invite {ns}/ada-google is bound to identity provider google; user");
    for (i, (user, extra)) in [
        ("entra:ada@corp.example", IN_TENANT),
        ("entra:google:ada@corp.example", IN_TENANT),
        ("Google:ada@corp.example", &[][..]),
        ("ada@corp.example", &[][..]),
        ("googleada@corp.example", &[][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let m = redemption(
            &format!("x{i}"),
            &ns,
            user,
            "ada-google",
            &google_code,
            None,
        );
        let e = refused(org.create_as(user, extra, m).await, user);
        assert!(e.contains(&bound), "{user}: {e}");
        assert!(
            e.contains(&format!("{user} did not sign in with it")),
            "{e}"
        );
    }
    let m = redemption(
        "x9",
        &ns,
        "google:ada@corp.example.evil.example",
        "ada-google",
        &google_code,
        None,
    );
    let e = refused(
        org.create_as("google:ada@corp.example.evil.example", &[], m)
            .await,
        "another address",
    );
    assert!(
        e.contains(
            "it is for ada@corp.example signed in with google (username google:ada@corp.example)"
        ),
        "{e}"
    );
    // Ada, signed in with google, joins.
    let m = redemption(
        "ada-g",
        &ns,
        "google:ada@corp.example",
        "ada-google",
        &google_code,
        None,
    );
    org.create_as("google:ada@corp.example", &[], m)
        .await
        .expect("google:ada redeems her google invite");
    org.phase("ada-g", MembershipPhase::Active).await;

    // The entra tenant invite: the wrong tenant, no declaration, another provider in the tenant.
    let user = "entra:ada@corp.example";
    let bound = format!(
        "invite {ns}/ada-entra is bound to identity provider entra, tenant {TENANT}; user {user} did not sign in to that tenant (userInfo.extra[{TID}] holds {OTHER_TENANT})"
    );
    let m = redemption("ada-e", &ns, user, "ada-entra", &entra_code, Some(TENANT));
    let e = refused(
        org.create_as(user, IN_OTHER_TENANT, m.clone()).await,
        "another tenant",
    );
    assert!(e.contains(&bound), "{e}");
    let e = refused(org.create_as(user, &[], m.clone()).await, "no tenant claim");
    assert!(e.contains("holds nothing"), "{e}");
    let undeclared = redemption("ada-e", &ns, user, "ada-entra", &entra_code, None);
    let e = refused(
        org.create_as(user, IN_TENANT, undeclared).await,
        "no declaration",
    );
    assert!(e.contains(&format!("set it to {TENANT}")), "{e}");
    let google = redemption(
        "ada-ge",
        &ns,
        "google:ada@corp.example",
        "ada-entra",
        &entra_code,
        Some(TENANT),
    );
    let e = refused(
        org.create_as("google:ada@corp.example", IN_TENANT, google)
            .await,
        "google in the tenant",
    );
    assert!(
        e.contains(&format!("invite {ns}/ada-entra is bound to identity provider entra, tenant {TENANT}; user google:ada@corp.example did not sign in with it")),
        "{e}"
    );
    org.create_as(user, IN_TENANT, m)
        .await
        .expect("entra:ada in the tenant redeems her entra invite");
    org.phase("ada-e", MembershipPhase::Active).await;

    // A platform principal skips no invariant: another provider's user is refused for it too.
    let forged = redemption(
        "forged",
        &ns,
        "google:carl@corp.example",
        "ada-entra",
        &entra_code,
        Some(TENANT),
    );
    let e = refused(org.platform_create(forged).await, "the platform's forgery");
    assert!(e.contains("is bound to identity provider entra"), "{e}");
}

/// A selfJoin domain bound to a provider and tenant cannot be claimed through another provider,
/// another authenticator, or another tenant.
#[tokio::test]
async fn a_self_join_domain_is_claimed_only_through_its_provider_and_tenant() {
    let org = Org::new("idp-self-join", true).await;
    let own = |name: &str, user: &str| membership_json(name, user, "member");
    let bound =
        format!("binds its e-mail domains to identity provider entra, tenant {TENANT}; user");
    for (i, (user, extra)) in [
        ("google:sam@corp.example", IN_TENANT),
        ("sam@corp.example", IN_TENANT),
        ("okta:sam@corp.example", IN_TENANT),
        ("Entra:sam@corp.example", IN_TENANT),
        ("google:entra:sam@corp.example", IN_TENANT),
    ]
    .into_iter()
    .enumerate()
    {
        let e = refused(
            org.create_as(user, extra, own(&format!("s{i}"), user))
                .await,
            user,
        );
        assert!(e.contains(&bound), "{user}: {e}");
        assert!(
            e.contains(&format!("{user} did not sign in with it")),
            "{e}"
        );
    }
    let sam = "entra:sam@corp.example";
    let e = refused(
        org.create_as(sam, IN_OTHER_TENANT, own("sam", sam)).await,
        "another tenant",
    );
    assert!(
        e.contains(&format!("{bound} {sam} did not sign in to that tenant")),
        "{e}"
    );
    let e = refused(org.create_as(sam, &[], own("sam", sam)).await, "no tenant");
    assert!(e.contains("holds nothing"), "{e}");
    org.create_as(sam, IN_TENANT, own("sam", sam))
        .await
        .expect("entra:sam in the tenant self-joins");
    org.phase("sam", MembershipPhase::Active).await;
}

/// Where no webhook reviewed them (roster without its webhook: what a platform principal writes
/// while it is down, or with its configuration removed), Memberships that redeem bound invites
/// are held by the controller: Denied, with a condition that names the provider.
#[tokio::test]
async fn the_controller_holds_what_no_webhook_reviewed() {
    let org = Org::new("idp-controller", false).await;
    let ns = org.ns.clone();
    let code = |name: &'static str| {
        let admin = org.admin.clone();
        let ns = ns.clone();
        async move { support::invite_code(&admin, &ns, name).await }
    };
    for (name, spec) in [
        (
            "ada-google",
            json!({ "email": "ada@corp.example", "role": "member", "identityProvider": { "name": "google" } }),
        ),
        (
            "entra-link",
            json!({ "role": "member", "maxUses": 5, "identityProvider": { "name": "entra", "tenant": TENANT } }),
        ),
        (
            "okta-link",
            json!({ "role": "member", "maxUses": 5, "identityProvider": { "name": "okta" } }),
        ),
    ] {
        org.platform_create(object_json("Invite", name, spec))
            .await
            .unwrap();
    }
    let (google, entra, okta) = (
        code("ada-google").await,
        code("entra-link").await,
        code("okta-link").await,
    );
    for m in [
        redemption(
            "entra-ada",
            &ns,
            "entra:ada@corp.example",
            "ada-google",
            &google,
            None,
        ),
        redemption(
            "crafted",
            &ns,
            "entra:google:ada@corp.example",
            "ada-google",
            &google,
            None,
        ),
        redemption(
            "other-tenant",
            &ns,
            "entra:bob@corp.example",
            "entra-link",
            &entra,
            Some(OTHER_TENANT),
        ),
        redemption(
            "undeclared",
            &ns,
            "entra:carl@corp.example",
            "entra-link",
            &entra,
            None,
        ),
        redemption(
            "okta",
            &ns,
            "okta:dan@corp.example",
            "okta-link",
            &okta,
            None,
        ),
        redemption(
            "google-ada",
            &ns,
            "google:ada@corp.example",
            "ada-google",
            &google,
            None,
        ),
        redemption(
            "entra-eve",
            &ns,
            "entra:eve@corp.example",
            "entra-link",
            &entra,
            Some(TENANT),
        ),
    ] {
        org.platform_create(m).await.unwrap();
    }
    for (name, reason, says) in [
        (
            "entra-ada",
            "InviteIdentityProviderMismatch",
            format!(
                "invite {ns}/ada-google is bound to identity provider google; user entra:ada@corp.example did not sign in with it"
            ),
        ),
        (
            "crafted",
            "InviteIdentityProviderMismatch",
            format!(
                "invite {ns}/ada-google is bound to identity provider google; user entra:google:ada@corp.example did not sign in with it"
            ),
        ),
        (
            "other-tenant",
            "InviteTenantMismatch",
            format!(
                "invite {ns}/entra-link is bound to identity provider entra, tenant {TENANT}; spec.invite.tenant must declare that tenant (it is {OTHER_TENANT})"
            ),
        ),
        (
            "undeclared",
            "InviteTenantMismatch",
            format!(
                "invite {ns}/entra-link is bound to identity provider entra, tenant {TENANT}; spec.invite.tenant must declare that tenant (it is not set)"
            ),
        ),
        (
            "okta",
            "IdentityProviderNotConfigured",
            format!(
                "invite {ns}/okta-link is bound to identity provider okta, which this installation cannot check"
            ),
        ),
    ] {
        let (got_reason, message) = org.denied(name).await;
        assert_eq!(got_reason, reason, "{name}: {message}");
        assert!(message.contains(&says), "{name}: {message}");
    }
    // What the invite allows stays allowed: the provider's users, the declared tenant (only the
    // webhook can see the sign-in; here a platform principal wrote it and is taken at its word).
    org.phase("google-ada", MembershipPhase::Active).await;
    org.phase("entra-eve", MembershipPhase::Active).await;
    // The Invite bound to an unconfigured provider says so.
    let invites: Api<Invite> = Api::namespaced(org.admin.clone(), &ns);
    let stalled = eventually("Invite okta-link to be Stalled", WAIT, || async {
        let i = invites.get("okta-link").await.ok()?;
        i.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Stalled" && c.status == "True")
    })
    .await;
    assert_eq!(stalled.reason, "IdentityProviderNotConfigured");
    assert!(
        stalled
            .message
            .contains("spec.identityProvider.name: identity provider okta is not configured"),
        "{}",
        stalled.message
    );
    // Uses are counted for the valid redemptions only.
    let link = invites.get("entra-link").await.unwrap();
    assert_eq!(link.status.unwrap().uses, 1);
}

/// The plugin binds an invite to a tenant and prints the join command with `--tenant`; the invitee
/// joins with it when their sign-in is in that tenant (impersonated with `--as-user-extra`, as
/// kubectl does), and is refused, naming the provider, when it is not.
#[tokio::test]
async fn the_plugin_invites_for_a_tenant_and_joins_declaring_it() {
    let org = Org::new("idp-plugin", true).await;
    let plugin = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
            .arg("--kubeconfig")
            .arg(&support::control_plane().kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl-roster");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let ns = org.ns.as_str();
    let created = eventually("the owner to create the invite", WAIT, || async {
        let (ok, stdout, _) = plugin(&[
            "-n",
            ns,
            "--as",
            OLIVE,
            "-o",
            "json",
            "invite",
            "create",
            "partner",
            "--role",
            "viewer",
            "--max-uses",
            "2",
            "--identity-provider",
            "entra",
            "--tenant",
            TENANT,
        ]);
        ok.then(|| serde_json::from_str::<Value>(&stdout).unwrap())
    })
    .await;
    let join = created["joinCommand"].as_str().unwrap().to_string();
    assert!(
        join.ends_with(&format!("--role viewer --tenant {TENANT}")),
        "{join}"
    );
    let code = created["code"].as_str().unwrap();
    let join = |user: &str, tenant: &str| {
        let extra = format!("{TID}={tenant}");
        plugin(&[
            "join",
            ns,
            "--invite",
            "partner",
            "--code",
            code,
            "--role",
            "viewer",
            "--tenant",
            TENANT,
            "--as",
            user,
            "--as-user-extra",
            &extra,
        ])
    };
    let (ok, _, stderr) = join("entra:pat@partner.example", OTHER_TENANT);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("invite {ns}/partner is bound to identity provider entra, tenant {TENANT}; user entra:pat@partner.example did not sign in to that tenant")),
        "{stderr}"
    );
    let (ok, _, stderr) = join("google:pat@partner.example", TENANT);
    assert!(!ok);
    assert!(stderr.contains("did not sign in with it"), "{stderr}");
    let (ok, stdout, stderr) = join("entra:pat@partner.example", TENANT);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("joined"), "{stdout}");
}

/// `roster run` refuses a provider configuration it cannot trust before it starts anything, from
/// flags and from the environment.
#[test]
fn roster_run_refuses_untrustworthy_providers_at_start() {
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
        cmd.arg("run")
            .args(["--kubeconfig", "/nonexistent", "--webhook-addr", ""])
            .args(args)
            .env_remove("ROSTER_IDENTITY_PROVIDERS");
        if let Some(value) = env {
            cmd.env("ROSTER_IDENTITY_PROVIDERS", value);
        }
        let out = cmd.output().expect("run roster");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (args, env, says) in [
        (
            vec!["--identity-provider", "name=legacy,usernamePrefix="],
            None,
            "usernamePrefix must not be empty",
        ),
        (
            vec!["--identity-provider", "name=google"],
            None,
            "usernamePrefix is missing",
        ),
        (
            vec!["--identity-provider", "name=google,prefix=google:"],
            None,
            "unknown key",
        ),
        (
            vec![
                "--identity-provider",
                "name=google,usernamePrefix=google:",
                "--identity-provider",
                "name=workspace,usernamePrefix=google:ws:",
            ],
            None,
            "identity providers google and workspace overlap",
        ),
        (
            vec![
                "--identity-provider",
                "name=google,usernamePrefix=google:",
                "--identity-provider",
                "name=google,usernamePrefix=g:",
            ],
            None,
            "identity provider google is configured twice",
        ),
        (
            vec![],
            Some("name=google,usernamePrefix=google:;name=entra,usernamePrefix=google:"),
            "overlap",
        ),
        (
            vec![
                "--identity-provider",
                "name=entra,usernamePrefix=entra:,tenantKey=Entra.example/TID",
            ],
            None,
            "lower case",
        ),
    ] {
        let (ok, stderr) = run(&args, env);
        assert!(!ok, "{args:?} {env:?} must be refused");
        assert!(stderr.contains(says), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("identity-provider") || stderr.contains("identity provider"),
            "names the flag: {stderr}"
        );
    }
    // A good configuration gets past the check (and fails later, on the missing kubeconfig).
    let (ok, stderr) = run(
        &[
            "--identity-provider",
            "name=google,usernamePrefix=google:",
            "--identity-provider",
            "name=entra,usernamePrefix=entra:,tenantKey=entra.example/tid",
        ],
        None,
    );
    assert!(!ok);
    assert!(
        !stderr.contains("identity") && stderr.contains("kubeconfig"),
        "{stderr}"
    );
}
