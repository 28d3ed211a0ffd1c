//! `kubectl roster invite`: create (printing the code once), list and revoke invites.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde::Serialize;

use super::InviteCommand;
use super::output::{emit, or_dash, table};
use super::session::{Session, wait_for};
use crate::api::{IdentityProviderRef, Invite, InvitePhase, InviteSpec, OrgRole};
use crate::invite_secrets::code_of;

/// `kubectl roster invite ...` (but `proof`, which needs no connection).
pub(super) async fn run(s: &Session, command: InviteCommand) -> anyhow::Result<()> {
    match command {
        InviteCommand::Create {
            name,
            role,
            email,
            max_uses,
            identity_provider,
            tenant,
            ttl,
            timeout,
        } => {
            let spec = InviteSpec {
                email,
                role,
                max_uses,
                ttl,
                identity_provider: identity_provider
                    .map(|name| IdentityProviderRef { name, tenant }),
                ..InviteSpec::default()
            };
            invite_create(s, name, spec, Duration::from_secs(timeout)).await
        }
        InviteCommand::List => invite_list(s).await,
        InviteCommand::Revoke { name } => invite_revoke(s, &name).await,
        InviteCommand::Proof { .. } => unreachable!("answered offline"),
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
    }
}

async fn invite_list(s: &Session) -> anyhow::Result<()> {
    let api: Api<Invite> = Api::namespaced(s.client.clone(), &s.namespace);
    let mut list = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("list Invites in {}", s.namespace))?
        .items;
    list.sort_by_key(|i| i.name_any());
    let rows: Vec<InviteRow> = list.iter().map(invite_row).collect();
    emit(s, &rows, || {
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
        table(
            &["NAME", "EMAIL", "ROLE", "USES", "EXPIRES", "PHASE"],
            &cells,
        )
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedInvite {
    namespace: String,
    invite: String,
    role: OrgRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    max_uses: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    code: String,
    join_command: String,
}

/// Creates the Invite, waits for its code and prints it with the command that redeems it.
async fn invite_create(
    s: &Session,
    name: Option<String>,
    spec: InviteSpec,
    timeout: Duration,
) -> anyhow::Result<()> {
    let invite = create_and_wait(s, name, spec, timeout).await?;
    let name = invite.name_any();
    let status = invite.status.clone().unwrap_or_default();
    let secret_name = status.code_secret_name.clone().unwrap_or_default();
    let code = read_code(s, &secret_name).await?;
    // With the role (and the tenant), joining needs no right to read the Invite (non-members
    // have none).
    let mut join_command = format!(
        "kubectl roster join {} --invite {name} --code {code} --role {}",
        s.namespace, invite.spec.role
    );
    let bound = invite.spec.identity_provider.as_ref();
    if let Some(tenant) = bound.and_then(|p| p.tenant.as_deref()) {
        join_command.push_str(&format!(" --tenant {tenant}"));
    }
    let out = CreatedInvite {
        namespace: s.namespace.clone(),
        invite: name.clone(),
        role: invite.spec.role,
        email: invite.spec.email.clone(),
        max_uses: invite.spec.max_uses,
        expires_at: status.expires_at.map(|t| t.0.to_string()),
        code,
        join_command,
    };
    emit(s, &out, || {
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
        format!(
            "invite/{name} created in {ns}: role {role} for {who}, {uses} use(s), expires {expires}\n\n\
             Code (shown only now; it stays in Secret {secret_name}):\n\n    {code}\n\n\
             Send it to the person you invite; they join with:\n\n    {join}\n",
            ns = out.namespace,
            role = out.role,
            uses = out.max_uses,
            expires = or_dash(out.expires_at.as_ref()),
            code = out.code,
            join = out.join_command,
        )
    })
}

/// Creates the Invite (named, or named after its role) and waits until the operator has generated
/// its code; returns the Invite as it is then.
async fn create_and_wait(
    s: &Session,
    name: Option<String>,
    spec: InviteSpec,
    timeout: Duration,
) -> anyhow::Result<Invite> {
    let api: Api<Invite> = Api::namespaced(s.client.clone(), &s.namespace);
    let mut invite = Invite::new(name.as_deref().unwrap_or_default(), spec);
    if name.is_none() {
        invite.metadata.name = None;
        invite.metadata.generate_name = Some(format!("{}-", invite.spec.role));
    }
    let created = api
        .create(&PostParams::default(), &invite)
        .await
        .with_context(|| format!("create the Invite in {}", s.namespace))?;
    let name = created.name_any();
    wait_for(
        &format!("the operator to generate the code of Invite {name}"),
        timeout,
        || async {
            let i = api.get(&name).await?;
            Ok(i.status
                .as_ref()
                .and_then(|st| st.code_secret_name.as_ref())
                .map(|_| i.clone()))
        },
    )
    .await
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
    let api: Api<Invite> = Api::namespaced(s.client.clone(), &s.namespace);
    let invite = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "revoked": true } })),
        )
        .await
        .with_context(|| format!("revoke Invite {name} in {}", s.namespace))?;
    let row = invite_row(&invite);
    emit(s, &row, || {
        format!(
            "invite/{name} revoked in {}: its code no longer works\n",
            s.namespace
        )
    })
}
