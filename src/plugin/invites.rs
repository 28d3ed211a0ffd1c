//! `kubectl roster invite`: create (printing the code once), list, revoke and resend invites;
//! `--count` hands over to [`super::bulk`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Subcommand;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch};
use serde::Serialize;

use super::args::{CodeArgs, org_role, parse_count, parse_identity_provider, parse_timeout};
use super::output::{Names, emit, kind, or_dash};
use super::session::{Session, retry_on_conflict, wait_for};
use crate::api::{IdentityProviderRef, Invite, InvitePhase, InviteSpec, OrgRole};
use crate::invite_secrets::code_of;

#[derive(Subcommand, Debug)]
pub enum InviteCommand {
    /// Create an invite and print its code (once) with the command that redeems it; with
    /// --count, create that many single-use invites and write their codes to a file.
    Create {
        /// The Invite's name (default: generated).
        name: Option<String>,
        /// The role it grants.
        #[arg(long, value_parser = org_role(), default_value = "member")]
        role: OrgRole,
        /// Only this username may redeem it (default: an open invite anyone with the code may use;
        /// an admin invite must name it).
        #[arg(long)]
        email: Option<String>,
        /// How many people may use the code.
        #[arg(long, default_value_t = 1)]
        max_uses: i32,
        /// Lifetime, as a Go duration such as 72h (default: the organization's defaultTTL).
        #[arg(long)]
        ttl: Option<String>,
        /// Send the invitation e-mail here rather than to --email (when the organization sends
        /// e-mail).
        #[arg(long, value_name = "ADDR")]
        notification_email: Option<String>,
        /// Only users who signed in with this identity provider (as the platform named it, such
        /// as google or entra) may redeem it, and with NAME:TENANT only users of that tenant (such
        /// as an Entra tenant ID); `--email` is then their address without the provider's
        /// username prefix (default: any provider).
        #[arg(long, value_parser = parse_identity_provider, value_name = "NAME[:TENANT]")]
        identity_provider: Option<IdentityProviderRef>,
        /// With --identity-provider NAME: only users of this tenant (the same as NAME:TENANT).
        #[arg(long, requires = "identity_provider")]
        tenant: Option<String>,
        /// Create this many invites (1 to 50) with generated names, and write name, code, expiry
        /// and join command of each as CSV (or -o json|yaml) to --file or standard output.
        #[arg(long, value_parser = parse_count, value_name = "N")]
        count: Option<u32>,
        /// With --count: the file to write (created with mode 0600; an existing file is never
        /// overwritten, since it may hold the codes of an earlier batch).
        #[arg(long, requires = "count", value_name = "PATH")]
        file: Option<PathBuf>,
        /// How long to wait for the operator to generate each code, such as 30s (a bare number
        /// counts as seconds).
        #[arg(long, value_parser = parse_timeout, default_value = "30s", value_name = "DURATION")]
        timeout: Duration,
    },
    /// List invites (never their codes).
    List,
    /// Revoke an invite: its code stops working. Cannot be undone.
    Revoke {
        /// The Invite's name.
        name: String,
    },
    /// Send the invitation e-mail again (raises spec.resends by one).
    Resend {
        /// The Invite's name.
        name: String,
    },
    /// Print the `spec.invite.proof` a Membership of USER needs to redeem an invite, for writing
    /// the Membership yourself (`join` does this for you). Works offline; the code stays here.
    Proof {
        /// The Invite's name.
        name: String,
        #[command(flatten)]
        code: CodeArgs,
        /// The username that redeems it (the Membership's spec.user).
        #[arg(long)]
        user: String,
    },
}

/// `kubectl roster invite ...` (but `proof`, which needs no connection).
pub(super) async fn run(s: &Session, command: InviteCommand) -> anyhow::Result<()> {
    match command {
        InviteCommand::Create {
            name,
            role,
            email,
            max_uses,
            ttl,
            notification_email,
            identity_provider,
            tenant,
            count,
            file,
            timeout,
        } => {
            let spec = InviteSpec {
                email,
                role,
                max_uses,
                ttl,
                notification_email,
                identity_provider: with_tenant(identity_provider, tenant)?,
                ..InviteSpec::default()
            };
            match count {
                Some(count) => {
                    if name.is_some() {
                        bail!("--count gives each invite a generated name: leave out NAME");
                    }
                    super::bulk::create(s, spec, count, file, timeout).await
                }
                None => invite_create(s, name, spec, timeout).await,
            }
        }
        InviteCommand::List => invite_list(s).await,
        InviteCommand::Revoke { name } => invite_revoke(s, &name).await,
        InviteCommand::Resend { name } => invite_resend(s, &name).await,
        InviteCommand::Proof { .. } => unreachable!("answered offline"),
    }
}

/// `--identity-provider NAME` with `--tenant TENANT`, the same as `--identity-provider
/// NAME:TENANT`; the tenant given twice is refused.
fn with_tenant(
    provider: Option<IdentityProviderRef>,
    tenant: Option<String>,
) -> anyhow::Result<Option<IdentityProviderRef>> {
    match (provider, tenant) {
        (Some(p), Some(t)) if p.tenant.is_some() => bail!(
            "--tenant {t} and --identity-provider {}:{}: give the tenant once",
            p.name,
            p.tenant.unwrap_or_default()
        ),
        (Some(p), Some(t)) => Ok(Some(IdentityProviderRef {
            tenant: Some(t),
            ..p
        })),
        (p, _) => Ok(p),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InviteRow {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    role: OrgRole,
    uses: i32,
    max_uses: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<InvitePhase>,
    revoked: bool,
    resends: i32,
}

fn invite_row(i: &Invite) -> InviteRow {
    let status = i.status.clone().unwrap_or_default();
    InviteRow {
        name: i.name_any(),
        email: i.spec.email.clone(),
        role: i.spec.role,
        uses: status.uses,
        max_uses: i.spec.max_uses,
        expires_at: status.expires_at.map(|t| t.0.to_string()),
        phase: status.phase,
        revoked: i.spec.revoked,
        resends: i.spec.resends,
    }
}

fn invites(s: &Session) -> Api<Invite> {
    Api::namespaced(s.client.clone(), &s.namespace)
}

async fn invite_list(s: &Session) -> anyhow::Result<()> {
    let mut list = invites(s)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("list Invites in {}", s.namespace))?
        .items;
    list.sort_by_key(|i| i.name_any());
    let rows: Vec<InviteRow> = list.iter().map(invite_row).collect();
    let names = Names::all(kind::INVITE, rows.iter().map(|r| &r.name));
    emit(s, &rows, names, || {
        if rows.is_empty() {
            return format!("No Invites in namespace {}.\n", s.namespace);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.email.clone().unwrap_or_else(|| "<open>".into()),
                    r.role.to_string(),
                    format!("{}/{}", r.uses, r.max_uses),
                    or_dash(r.expires_at.as_ref()),
                    or_dash(r.phase.map(|p| p.as_str())),
                ]
            })
            .collect();
        s.table(
            &["NAME", "EMAIL", "ROLE", "USES", "EXPIRES", "PHASE"],
            &cells,
        )
    })
}

/// A created invite with its code, as `invite create` prints it and `--count` writes it.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreatedInvite {
    pub(super) namespace: String,
    pub(super) invite: String,
    pub(super) role: OrgRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) email: Option<String>,
    pub(super) max_uses: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) expires_at: Option<String>,
    /// None in a dry run: nothing was stored, so no code was generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) join_command: Option<String>,
}

impl CreatedInvite {
    pub(super) fn new(s: &Session, invite: &Invite, code: Option<String>) -> CreatedInvite {
        let name = invite.name_any();
        // With the role (and the tenant), joining needs no right to read the Invite (non-members
        // have none).
        let tenant = invite
            .spec
            .identity_provider
            .as_ref()
            .and_then(|p| p.tenant.as_deref())
            .map(|t| format!(" --tenant {t}"))
            .unwrap_or_default();
        let join_command = code.as_ref().map(|code| {
            format!(
                "kubectl roster join {} --invite {name} --code {code} --role {}{tenant}",
                s.namespace, invite.spec.role
            )
        });
        CreatedInvite {
            namespace: s.namespace.clone(),
            invite: name,
            role: invite.spec.role,
            email: invite.spec.email.clone(),
            max_uses: invite.spec.max_uses,
            expires_at: invite
                .status
                .as_ref()
                .and_then(|st| st.expires_at.as_ref())
                .map(|t| t.0.to_string()),
            code,
            join_command,
        }
    }
}

/// Creates the Invite, waits for its code and prints it with the command that redeems it.
async fn invite_create(
    s: &Session,
    name: Option<String>,
    spec: InviteSpec,
    timeout: Duration,
) -> anyhow::Result<()> {
    let created = create(s, name, spec).await?;
    let name = created.name_any();
    let out = if s.dry_run {
        CreatedInvite::new(s, &created, None)
    } else {
        let (invite, code) = wait_for_code(s, &name, timeout).await?;
        CreatedInvite::new(s, &invite, Some(code))
    };
    let bound = created.spec.identity_provider.as_ref();
    emit(s, &out, Names::one(kind::INVITE, &name), || {
        let mut who = out
            .email
            .as_deref()
            .map_or_else(|| "anyone with the code".to_string(), |e| e.to_string());
        if let Some(p) = bound {
            who.push_str(&format!(" signed in with {}", p.name));
            if let Some(t) = &p.tenant {
                who.push_str(&format!(" (tenant {t})"));
            }
        }
        let head = format!(
            "invite/{name} created in {ns}{dry}: role {role} for {who}, {uses} use(s), expires {expires}\n",
            ns = out.namespace,
            dry = s.dry(),
            role = out.role,
            uses = out.max_uses,
            expires = or_dash(out.expires_at.as_ref()),
        );
        match (&out.code, &out.join_command) {
            (Some(code), Some(join)) => format!(
                "{head}\nCode (shown only now; it stays in Secret {secret}):\n\n    {code}\n\n\
                 Send it to the person you invite; they join with:\n\n    {join}\n",
                secret = code_secret_name(&created),
            ),
            _ => head,
        }
    })
}

/// The Secret that holds an Invite's code: the operator names it in status, and names it
/// `NAME-invite-code`.
fn code_secret_name(invite: &Invite) -> String {
    invite
        .status
        .as_ref()
        .and_then(|st| st.code_secret_name.clone())
        .unwrap_or_else(|| format!("{}-invite-code", invite.name_any()))
}

/// Creates the Invite, named, or with a name generated from its role.
pub(super) async fn create(
    s: &Session,
    name: Option<String>,
    spec: InviteSpec,
) -> anyhow::Result<Invite> {
    let mut invite = Invite::new(name.as_deref().unwrap_or_default(), spec);
    if name.is_none() {
        invite.metadata.name = None;
        invite.metadata.generate_name = Some(format!("{}-", invite.spec.role));
    }
    invites(s)
        .create(&s.post_params(), &invite)
        .await
        .with_context(|| format!("create the Invite in {}", s.namespace))
}

/// Waits until the operator has generated the code of Invite `name`; returns the Invite as it is
/// then and the code, read as the caller.
pub(super) async fn wait_for_code(
    s: &Session,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<(Invite, String)> {
    let api = invites(s);
    let invite = wait_for(
        &format!("the operator to generate the code of Invite {name}"),
        timeout,
        || async {
            let i = api.get(name).await?;
            Ok(i.status
                .as_ref()
                .and_then(|st| st.code_secret_name.as_ref())
                .map(|_| i.clone()))
        },
    )
    .await?;
    let code = read_code(s, &code_secret_name(&invite)).await?;
    Ok((invite, code))
}

/// The code in the invite code Secret `secret_name`, read as the caller.
async fn read_code(s: &Session, secret_name: &str) -> anyhow::Result<String> {
    let secret = Api::<Secret>::namespaced(s.client.clone(), &s.namespace)
        .get(secret_name)
        .await
        .with_context(|| format!("read the code from Secret {secret_name}"))?;
    code_of(&secret).ok_or_else(|| anyhow!("Secret {secret_name} holds no code"))
}

async fn invite_revoke(s: &Session, name: &str) -> anyhow::Result<()> {
    let invite = invites(s)
        .patch(
            name,
            &s.patch_params(),
            &Patch::Merge(serde_json::json!({ "spec": { "revoked": true } })),
        )
        .await
        .with_context(|| format!("revoke Invite {name} in {}", s.namespace))?;
    let row = invite_row(&invite);
    emit(s, &row, Names::one(kind::INVITE, name), || {
        format!(
            "invite/{name} revoked in {}{}: its code no longer works\n",
            s.namespace,
            s.dry()
        )
    })
}

/// Raises `spec.resends` by one from the value read, with that read's resourceVersion as a
/// precondition: two resends at once both count (the second is retried on the new value)
/// instead of both writing the same number.
async fn invite_resend(s: &Session, name: &str) -> anyhow::Result<()> {
    let api = &invites(s);
    let invite = retry_on_conflict(|| async move {
        let current = api
            .get(name)
            .await
            .with_context(|| format!("read Invite {name} in {}", s.namespace))?;
        if recipient(&current).is_none() {
            bail!(
                "Invite {name} names no address to send to (spec.email or spec.notificationEmail): hand its code over yourself"
            );
        }
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": current.resource_version() },
            "spec": { "resends": current.spec.resends + 1 },
        });
        api.patch(name, &s.patch_params(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("resend Invite {name} in {}", s.namespace))
    })
    .await?;
    let row = invite_row(&invite);
    emit(s, &row, Names::one(kind::INVITE, name), || {
        format!(
            "invite/{name} resend {} requested{}: roster sends the invitation to {} again (when the organization sends e-mail)\n",
            row.resends,
            s.dry(),
            recipient(&invite).unwrap_or_default()
        )
    })
}

/// Where the invitation e-mail goes: spec.notificationEmail, else spec.email.
fn recipient(invite: &Invite) -> Option<&str> {
    invite
        .spec
        .notification_email
        .as_deref()
        .or(invite.spec.email.as_deref())
}
