//! `kubectl roster`: the kubectl plugin for the people in an organization (binary `kubectl-roster`,
//! src/bin/kubectl-roster.rs, which only calls [`main`]).
//!
//! Every command is a plain API request made as the caller (honouring `--kubeconfig`, `--context`,
//! `-n` and kubectl's impersonation flags `--as`/`--as-group`), so RBAC and roster's admission
//! webhook decide exactly as they do for `kubectl apply`: the plugin adds convenience, never rights.
//!
//! The organization is addressed by its namespace (`-n`, or the kubeconfig context's namespace);
//! `join` takes it as an argument since the joiner usually has no context for it yet.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde::Serialize;

use crate::api::{
    Invite, InvitePhase, InviteRef, InviteSpec, Membership, MembershipPhase, MembershipSpec,
    OrgRole, Organization,
};
use crate::rules::effective::condition;
use crate::rules::{conditions, invite_code};

/// kubectl roster: members, invites, joining and leaving an organization.
#[derive(Parser, Debug)]
#[command(name = "kubectl roster", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The kubectl flags every command honours.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The org namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Username to impersonate for the operation (like kubectl --as).
    #[arg(long = "as", global = true)]
    pub as_user: Option<String>,
    /// Group to impersonate for the operation; repeat for several (like kubectl --as-group).
    #[arg(long = "as-group", global = true, requires = "as_user")]
    pub as_group: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the organization's Memberships: who holds which role, and who waits for what.
    Members,
    /// Create, list and revoke invites.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Join an organization with an invite code: creates your own Membership.
    Join {
        /// The org namespace.
        org_namespace: String,
        /// The Invite's name.
        #[arg(long)]
        invite: String,
        /// The code you were given, like ABCD-EFGH-JKLM-NPQR.
        #[arg(long)]
        code: String,
        /// Name of your Membership (default: derived from your username).
        #[arg(long)]
        name: Option<String>,
        /// Your name as people see it.
        #[arg(long)]
        display_name: Option<String>,
        /// The role the invite grants (default: read from the Invite).
        #[arg(long, value_parser = parse_role)]
        role: Option<OrgRole>,
        /// Seconds to wait for the Membership to become Active (0: do not wait).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Leave the organization: deletes your own Membership.
    Leave,
    /// Hand your ownership to another member: promotes them to owner, waits until that is
    /// effective, then demotes you.
    TransferOwnership {
        /// The username of the new owner; they must hold a Membership of their own.
        #[arg(long)]
        to: String,
        /// Type NAMESPACE/USER (the org namespace and the new owner) to confirm.
        #[arg(long)]
        confirm: String,
        /// Your role afterwards.
        #[arg(long, value_parser = parse_role, default_value = "admin")]
        demote_to: OrgRole,
        /// Seconds to wait for each step to take effect.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// The organization at a glance: readiness, owners, seats, invites and your role.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum InviteCommand {
    /// Create an invite and print its code (once) with the command that redeems it.
    Create {
        /// The Invite's name (default: generated).
        name: Option<String>,
        /// The role it grants: admin, member or viewer.
        #[arg(long, value_parser = parse_role, default_value = "member")]
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
        /// Seconds to wait for the operator to generate the code.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// List invites (never their codes).
    List,
    /// Revoke an invite: its code stops working. Cannot be undone.
    Revoke {
        /// The Invite's name.
        name: String,
    },
    /// Print the `spec.invite.proof` a Membership of USER needs to redeem an invite, for writing
    /// the Membership yourself (`join` does this for you). Works offline; the code stays here.
    Proof {
        /// The Invite's name.
        name: String,
        /// The code, like ABCD-EFGH-JKLM-NPQR.
        #[arg(long)]
        code: String,
        /// The username that redeems it (the Membership's spec.user).
        #[arg(long)]
        user: String,
    },
}

fn parse_role(s: &str) -> Result<OrgRole, String> {
    OrgRole::ALL
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| format!("{s} is not a role: owner, admin, member or viewer"))
}

/// Runs the plugin; the process exits 1 with a message on stderr when a command fails.
pub async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {}", describe(&e));
        std::process::exit(1);
    }
}

/// An error as kubectl would print it: the API server's message without the plumbing.
fn describe(e: &anyhow::Error) -> String {
    let api = e
        .chain()
        .find_map(|c| match c.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) => Some(s.clone()),
            _ => None,
        });
    match api {
        Some(s) => {
            let context = e.to_string();
            let reason = if s.reason.is_empty() {
                s.code.to_string()
            } else {
                s.reason.clone()
            };
            format!("{context}: ({reason}) {}", s.message)
        }
        None => format!("{e:#}"),
    }
}

struct Session {
    client: Client,
    namespace: String,
    output: Output,
}

async fn connect(global: &Global) -> anyhow::Result<Session> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..Default::default()
    };
    let mut config = match &global.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &options).await?
        }
        None if global.context.is_some() => Config::from_kubeconfig(&options).await?,
        None => Config::infer().await?,
    };
    if let Some(user) = &global.as_user {
        config.auth_info.impersonate = Some(user.clone());
        if !global.as_group.is_empty() {
            config.auth_info.impersonate_groups = Some(global.as_group.clone());
        }
    }
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok(Session {
        client: Client::try_from(config)?,
        namespace,
        output: global.output,
    })
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Invite(InviteCommand::Proof { name, code, user }) = &cli.command {
        let namespace = cli.global.namespace.as_deref().ok_or_else(|| {
            anyhow!("-n/--namespace is required: the proof is for the org namespace's Invite")
        })?;
        println!("{}", invite_code::proof(code, namespace, name, user));
        return Ok(());
    }
    let mut s = connect(&cli.global).await?;
    match cli.command {
        Command::Members => members(&s).await,
        Command::Invite(InviteCommand::Create {
            name,
            role,
            email,
            max_uses,
            ttl,
            timeout,
        }) => {
            let spec = InviteSpec {
                email,
                role,
                max_uses,
                ttl,
                revoked: false,
            };
            invite_create(&s, name, spec, Duration::from_secs(timeout)).await
        }
        Command::Invite(InviteCommand::List) => invite_list(&s).await,
        Command::Invite(InviteCommand::Revoke { name }) => invite_revoke(&s, &name).await,
        Command::Invite(InviteCommand::Proof { .. }) => unreachable!("answered offline above"),
        Command::Join {
            org_namespace,
            invite,
            code,
            name,
            display_name,
            role,
            timeout,
        } => {
            s.namespace = org_namespace;
            join(
                &s,
                Join {
                    invite,
                    code,
                    name,
                    display_name,
                    role,
                },
                Duration::from_secs(timeout),
            )
            .await
        }
        Command::Leave => leave(&s).await,
        Command::TransferOwnership {
            to,
            confirm,
            demote_to,
            timeout,
        } => transfer(&s, &to, &confirm, demote_to, Duration::from_secs(timeout)).await,
        Command::Status => status(&s).await,
    }
}

// ---- output ----

/// Prints rows as a kubectl-style table: upper-case headers, columns three spaces apart.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(&cell);
            } else {
                let pad = widths[i] - cell.chars().count() + 3;
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// Prints `value` as JSON or YAML, or `text` for the table output.
fn emit<T: Serialize>(s: &Session, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    match s.output {
        Output::Table => print!("{}", text()),
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(value)?),
    }
    Ok(())
}

fn or_dash(s: Option<impl ToString>) -> String {
    s.map_or_else(|| "-".to_string(), |s| s.to_string())
}

// ---- who am I ----

struct Me {
    username: String,
    groups: Vec<String>,
}

async fn whoami(client: &Client) -> anyhow::Result<Me> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review: SelfSubjectReview = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"
    }))?;
    let review = api
        .create(&PostParams::default(), &review)
        .await
        .context("find your username (SelfSubjectReview)")?;
    let info = review
        .status
        .and_then(|s| s.user_info)
        .ok_or_else(|| anyhow!("the API server did not say who you are"))?;
    Ok(Me {
        username: info
            .username
            .ok_or_else(|| anyhow!("the API server did not say who you are"))?,
        groups: info.groups.unwrap_or_default(),
    })
}

// ---- members ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberRow {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    role: OrgRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_role: Option<OrgRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<MembershipPhase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    joined_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    deleting: bool,
}

fn phase_str(p: Option<MembershipPhase>) -> &'static str {
    match p {
        Some(MembershipPhase::Active) => "Active",
        Some(MembershipPhase::Pending) => "Pending",
        Some(MembershipPhase::Denied) => "Denied",
        None => "Unknown",
    }
}

/// What a person should know about a Membership beyond its phase: why it is not in force, or the
/// change that is held.
fn note(m: &Membership) -> (Option<String>, Option<String>) {
    let Some(status) = &m.status else {
        return (
            Some("NotReconciled".into()),
            Some("the operator has not seen it yet".into()),
        );
    };
    let held = conditions::find(&status.conditions, condition::ROLE_CHANGE_HELD)
        .filter(|c| c.status == "True");
    let ready = conditions::find(&status.conditions, condition::READY);
    match (held, ready) {
        (Some(c), _) => (Some(c.reason.clone()), Some(c.message.clone())),
        (None, Some(c)) if c.status != "True" => (Some(c.reason.clone()), Some(c.message.clone())),
        _ => (None, None),
    }
}

fn member_row(m: &Membership) -> MemberRow {
    let status = m.status.clone().unwrap_or_default();
    let (reason, message) = note(m);
    MemberRow {
        name: m.name_any(),
        user: m.spec.user.clone(),
        group: m.spec.group.clone(),
        role: m.spec.role,
        effective_role: status.effective_role,
        phase: status.phase,
        joined_at: status.joined_at.map(|t| t.0.to_string()),
        reason,
        message,
        deleting: m.metadata.deletion_timestamp.is_some(),
    }
}

async fn memberships(s: &Session) -> anyhow::Result<Vec<Membership>> {
    let api: Api<Membership> = Api::namespaced(s.client.clone(), &s.namespace);
    Ok(api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("list Memberships in {}", s.namespace))?
        .items)
}

async fn members(s: &Session) -> anyhow::Result<()> {
    let mut list = memberships(s).await?;
    // Leaders first, then by name.
    list.sort_by_key(|m| {
        let effective = m.status.as_ref().and_then(|s| s.effective_role);
        (std::cmp::Reverse(effective), m.name_any())
    });
    let rows: Vec<MemberRow> = list.iter().map(member_row).collect();
    emit(s, &rows, || {
        if rows.is_empty() {
            return format!("No Memberships in namespace {}.\n", s.namespace);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let subject = match (&r.user, &r.group) {
                    (Some(u), _) => u.clone(),
                    (None, Some(g)) => format!("group:{g}"),
                    _ => "-".into(),
                };
                let phase = if r.deleting {
                    format!("{} (leaving)", phase_str(r.phase))
                } else {
                    phase_str(r.phase).to_string()
                };
                let note = match (&r.reason, &r.message) {
                    (Some(reason), Some(message)) => format!("{reason}: {message}"),
                    _ => String::new(),
                };
                vec![
                    r.name.clone(),
                    subject,
                    r.role.to_string(),
                    or_dash(r.effective_role),
                    phase,
                    note,
                ]
            })
            .collect();
        table(
            &["NAME", "SUBJECT", "ROLE", "EFFECTIVE", "PHASE", "NOTE"],
            &cells,
        )
    })
}

// ---- invites ----

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

/// Polls `check` every 200 ms until it returns Some, or fails after `timeout` saying `what`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {}s waiting for {what}", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

async fn invite_create(
    s: &Session,
    name: Option<String>,
    spec: InviteSpec,
    timeout: Duration,
) -> anyhow::Result<()> {
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
    let invite = wait_for(
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
    .await?;
    let status = invite.status.clone().unwrap_or_default();
    let secret_name = status.code_secret_name.clone().unwrap_or_default();
    let secret = Api::<Secret>::namespaced(s.client.clone(), &s.namespace)
        .get(&secret_name)
        .await
        .with_context(|| format!("read the code from Secret {secret_name}"))?;
    let code = secret
        .data
        .as_ref()
        .and_then(|d| d.get("code"))
        .and_then(|c| String::from_utf8(c.0.clone()).ok())
        .ok_or_else(|| anyhow!("Secret {secret_name} holds no code"))?;
    // With the role, joining needs no right to read the Invite (non-members have none).
    let join_command = format!(
        "kubectl roster join {} --invite {name} --code {code} --role {}",
        s.namespace, invite.spec.role
    );
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
        let who = out
            .email
            .as_deref()
            .map_or_else(|| "anyone with the code".to_string(), |e| e.to_string());
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

// ---- join and leave ----

struct Join {
    invite: String,
    code: String,
    name: Option<String>,
    display_name: Option<String>,
    role: Option<OrgRole>,
}

/// A Membership name from a username: `ada@acme.example` becomes `ada-acme-example`.
pub fn membership_name(username: &str) -> String {
    let mut name = String::new();
    for c in username.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(63);
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "member".into()
    } else {
        name
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Joined {
    namespace: String,
    membership: String,
    user: String,
    role: OrgRole,
    phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

async fn join(s: &Session, j: Join, timeout: Duration) -> anyhow::Result<()> {
    let me = whoami(&s.client).await?;
    let role = match j.role {
        Some(r) => r,
        None => {
            let invites: Api<Invite> = Api::namespaced(s.client.clone(), &s.namespace);
            invites
                .get(&j.invite)
                .await
                .with_context(|| {
                    format!(
                        "read Invite {} in {} for its role (pass --role if you may not read it)",
                        j.invite, s.namespace
                    )
                })?
                .spec
                .role
        }
    };
    let name = j
        .name
        .clone()
        .unwrap_or_else(|| membership_name(&me.username));
    let membership = Membership::new(
        &name,
        MembershipSpec {
            user: Some(me.username.clone()),
            group: None,
            role,
            display_name: j.display_name.clone(),
            email: None,
            // The code itself never leaves this process: the Membership carries a proof that
            // only works for this username (members and viewers read Memberships).
            invite: Some(InviteRef {
                name: j.invite.clone(),
                proof: Some(invite_code::proof(
                    &j.code,
                    &s.namespace,
                    &j.invite,
                    &me.username,
                )),
            }),
        },
    );
    let api: Api<Membership> = Api::namespaced(s.client.clone(), &s.namespace);
    api.create(&PostParams::default(), &membership)
        .await
        .with_context(|| {
            format!(
                "join {} as {} with Invite {}",
                s.namespace, me.username, j.invite
            )
        })?;
    let mut result = Joined {
        namespace: s.namespace.clone(),
        membership: name.clone(),
        user: me.username.clone(),
        role,
        phase: "Pending",
        reason: None,
        message: None,
    };
    if !timeout.is_zero() {
        // A joiner may read their Membership only once it is Active and roster has bound their
        // role; until then the API server says Forbidden, which here means "not yet".
        let m = wait_for(
            &format!("Membership {name} to become Active"),
            timeout,
            || async {
                let m = match api.get(&name).await {
                    Ok(m) => m,
                    Err(kube::Error::Api(e)) if e.code == 403 => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let phase = m.status.as_ref().and_then(|s| s.phase);
                Ok(matches!(
                    phase,
                    Some(MembershipPhase::Active | MembershipPhase::Denied)
                )
                .then_some(m))
            },
        )
        .await
        .with_context(|| {
            format!(
                "membership/{name} was created but is not Active yet (you may read it once it is); \
                 it may wait for a seat or have been denied: an org admin sees why with \
                 `kubectl roster -n {} members`",
                s.namespace
            )
        })?;
        let (reason, message) = note(&m);
        result.phase = phase_str(m.status.as_ref().and_then(|s| s.phase));
        result.reason = reason;
        result.message = message;
    }
    emit(s, &result, || match result.phase {
        "Active" => format!(
            "membership/{name} created: {} joined {} as {role}\n",
            result.user, result.namespace
        ),
        phase => format!(
            "membership/{name} created but {phase}: {}: {}\n",
            or_dash(result.reason.as_ref()),
            or_dash(result.message.as_ref())
        ),
    })?;
    if result.phase == "Denied" {
        bail!(
            "Membership {name} was denied: {}",
            or_dash(result.message.as_ref())
        );
    }
    Ok(())
}

fn is_forbidden(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<kube::Error>(),
            Some(kube::Error::Api(s)) if s.code == 403
        )
    })
}

/// The caller's own Membership (naming their username) in the session's namespace.
async fn own_membership(s: &Session, me: &Me) -> anyhow::Result<Membership> {
    let all = match memberships(s).await {
        Ok(all) => all,
        // Members may list Memberships; someone who may not is no member (any more, since roster
        // removes a member's RoleBinding with their Membership).
        Err(e) if is_forbidden(&e) => bail!(
            "{} holds no Membership in {} that they may read: Memberships are readable to Active members only, so one that waits for a seat or was denied is not either; an org admin sees it with `kubectl roster -n {} members`",
            me.username,
            s.namespace,
            s.namespace
        ),
        Err(e) => return Err(e),
    };
    all.into_iter()
        .filter(|m| m.spec.user.as_deref() == Some(me.username.as_str()))
        .min_by_key(|m| {
            (
                m.metadata.deletion_timestamp.is_some(),
                m.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        })
        .ok_or_else(|| {
            anyhow!(
                "{} holds no Membership of their own in {} (a role through a group is left by leaving the group)",
                me.username,
                s.namespace
            )
        })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Left {
    namespace: String,
    membership: String,
    user: String,
    /// True while the removal is held (the last owner leaving an org with members).
    held: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

async fn leave(s: &Session) -> anyhow::Result<()> {
    let me = whoami(&s.client).await?;
    let mine = own_membership(s, &me).await?;
    let name = mine.name_any();
    let api: Api<Membership> = Api::namespaced(s.client.clone(), &s.namespace);
    api.delete(&name, &DeleteParams::default())
        .await
        .with_context(|| format!("leave {} (delete Membership {name})", s.namespace))?;
    // Owners carry a protection finalizer: the object goes once another owner is effective.
    let remaining = wait_for("the Membership to go", Duration::from_secs(3), || async {
        match api.get_opt(&name).await? {
            None => Ok(Some(None)),
            Some(m)
                if conditions::find(
                    &m.status.clone().unwrap_or_default().conditions,
                    condition::ROLE_CHANGE_HELD,
                )
                .is_some_and(|c| c.status == "True") =>
            {
                Ok(Some(Some(m)))
            }
            Some(_) => Ok(None),
        }
    })
    .await
    .unwrap_or_default();
    let out = Left {
        namespace: s.namespace.clone(),
        membership: name.clone(),
        user: me.username.clone(),
        held: remaining.is_some(),
        message: remaining.as_ref().and_then(|m| note(m).1),
    };
    emit(s, &out, || match &out.message {
        Some(message) => format!("membership/{name} is being deleted, but held: {message}\n"),
        None => format!("{} left {}\n", out.user, out.namespace),
    })
}

// ---- ownership transfer ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Transferred {
    namespace: String,
    new_owner: String,
    previous_owner: String,
    previous_owner_role: OrgRole,
}

fn effective(m: &Membership) -> Option<OrgRole> {
    m.status
        .as_ref()
        .filter(|s| s.phase == Some(MembershipPhase::Active))
        .and_then(|s| s.effective_role)
}

async fn set_role(api: &Api<Membership>, name: &str, role: OrgRole) -> anyhow::Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": { "role": role } })),
    )
    .await
    .with_context(|| format!("set the role of Membership {name} to {role}"))?;
    Ok(())
}

async fn wait_effective(
    api: &Api<Membership>,
    name: &str,
    role: OrgRole,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_for(
        &format!("Membership {name} to be effective as {role}"),
        timeout,
        || async {
            let m = api.get(name).await?;
            if effective(&m) == Some(role) {
                return Ok(Some(()));
            }
            if let Some(MembershipPhase::Denied) = m.status.as_ref().and_then(|s| s.phase) {
                bail!(
                    "Membership {name} is Denied: {}",
                    or_dash(note(&m).1.as_ref())
                );
            }
            Ok(None)
        },
    )
    .await
}

async fn transfer(
    s: &Session,
    to: &str,
    confirm: &str,
    demote_to: OrgRole,
    timeout: Duration,
) -> anyhow::Result<()> {
    let expected = format!("{}/{to}", s.namespace);
    if confirm != expected {
        bail!(
            "refusing to transfer ownership: --confirm must be exactly {expected} (the org namespace and the new owner), got {confirm:?}"
        );
    }
    if demote_to == OrgRole::Owner {
        bail!("--demote-to owner would not transfer anything; choose admin, member or viewer");
    }
    let me = whoami(&s.client).await?;
    if me.username == to {
        bail!("{to} is you: name the member who becomes owner");
    }
    let all = memberships(s).await?;
    let mine = own_membership(s, &me).await?;
    if effective(&mine) != Some(OrgRole::Owner) {
        bail!(
            "{} is not an effective owner of {} (effective role: {}); only an owner hands over ownership",
            me.username,
            s.namespace,
            or_dash(effective(&mine))
        );
    }
    let target = all
        .iter()
        .filter(|m| m.spec.user.as_deref() == Some(to) && m.metadata.deletion_timestamp.is_none())
        .min_by_key(|m| m.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .ok_or_else(|| {
            anyhow!(
                "{to} holds no Membership in {}: add them (or have them join) first",
                s.namespace
            )
        })?;
    let api: Api<Membership> = Api::namespaced(s.client.clone(), &s.namespace);
    let (target_name, my_name) = (target.name_any(), mine.name_any());
    // Promote first, and demote only once the new owner is effective: the organization never
    // lacks an owner, and a failed promotion leaves everything as it was.
    if effective(target) != Some(OrgRole::Owner) {
        set_role(&api, &target_name, OrgRole::Owner).await?;
        wait_effective(&api, &target_name, OrgRole::Owner, timeout)
            .await
            .with_context(|| {
                format!("{to} was promoted but is not an effective owner yet; you are still owner")
            })?;
    }
    set_role(&api, &my_name, demote_to).await?;
    wait_effective(&api, &my_name, demote_to, timeout).await?;
    let out = Transferred {
        namespace: s.namespace.clone(),
        new_owner: to.to_string(),
        previous_owner: me.username.clone(),
        previous_owner_role: demote_to,
    };
    emit(s, &out, || {
        format!(
            "ownership of {} transferred: {to} is owner, {} is now {demote_to}\n",
            out.namespace, out.previous_owner
        )
    })
}

// ---- status ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusView {
    namespace: String,
    organization: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    ready: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ready_message: Option<String>,
    owners: Vec<String>,
    admins: Vec<String>,
    members: i32,
    seats_used: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    seat_limit: Option<i32>,
    pending_invites: i32,
    /// Memberships by phase.
    phases: BTreeMap<String, usize>,
    you: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    your_role: Option<OrgRole>,
    conditions: Vec<ConditionRow>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConditionRow {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: String,
    message: String,
}

async fn status(s: &Session) -> anyhow::Result<()> {
    let orgs: Api<Organization> = Api::namespaced(s.client.clone(), &s.namespace);
    let mut list = match orgs.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 403 => bail!(
            "you may not read the organization in {}: only its members may (if you just joined, your Membership is not Active yet)",
            s.namespace
        ),
        Err(e) => {
            return Err(
                anyhow::Error::from(e).context(format!("read the Organization in {}", s.namespace))
            );
        }
    };
    list.sort_by_key(|o| {
        (
            o.metadata.creation_timestamp.as_ref().map(|t| t.0),
            o.name_any(),
        )
    });
    let org = list
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("there is no Organization in namespace {}", s.namespace))?;
    let me = whoami(&s.client).await?;
    let all = memberships(s).await?;
    // The highest effective role among your own Membership and your groups', as the webhook sees it.
    let your_role = crate::rules::OrgIndex::new(None, &all, []).role_of(&me.username, &me.groups);
    let mut phases = BTreeMap::new();
    for m in &all {
        *phases
            .entry(phase_str(m.status.as_ref().and_then(|s| s.phase)).to_string())
            .or_default() += 1;
    }
    let st = org.status.clone().unwrap_or_default();
    let ready = conditions::find(&st.conditions, condition::READY);
    let view = StatusView {
        namespace: s.namespace.clone(),
        organization: org.name_any(),
        display_name: org.spec.display_name.clone(),
        ready: ready.map_or_else(|| "Unknown".into(), |c| c.status.clone()),
        ready_message: ready.map(|c| c.message.clone()),
        owners: st.owners.clone(),
        admins: st.admins.clone(),
        members: st.members,
        seats_used: st.seats.used,
        seat_limit: st.seats.limit,
        pending_invites: st.pending_invites,
        phases,
        you: me.username.clone(),
        your_role,
        conditions: st
            .conditions
            .iter()
            .map(|c| ConditionRow {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
            .collect(),
    };
    emit(s, &view, || {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        let seats = match view.seat_limit {
            Some(l) => format!("{} of {l} used", view.seats_used),
            None => format!("{} used, no limit", view.seats_used),
        };
        let phases: Vec<String> = view
            .phases
            .iter()
            .map(|(p, n)| format!("{n} {p}"))
            .collect();
        let mut out = format!(
            "Organization:     {} ({})\nNamespace:        {}\nReady:            {}{}\nOwners:           {}\nAdmins:           {}\nMembers:          {} effective ({})\nSeats:            {seats}\nPending invites:  {}\nYou:              {} ({})\n\nConditions:\n",
            view.organization,
            view.display_name.as_deref().unwrap_or("no display name"),
            view.namespace,
            view.ready,
            view.ready_message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            list(&view.owners),
            list(&view.admins),
            view.members,
            if phases.is_empty() {
                "no Memberships".to_string()
            } else {
                phases.join(", ")
            },
            view.pending_invites,
            view.you,
            view.your_role
                .map_or_else(|| "not a member".to_string(), |r| r.to_string()),
        );
        let rows: Vec<Vec<String>> = view
            .conditions
            .iter()
            .map(|c| {
                vec![
                    format!("  {}", c.type_),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["  TYPE", "STATUS", "REASON", "MESSAGE"], &rows));
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_names_come_from_usernames() {
        assert_eq!(membership_name("ada@acme.example"), "ada-acme-example");
        assert_eq!(
            membership_name("Ada.Lovelace+x@Acme.example"),
            "ada-lovelace-x-acme-example"
        );
        assert_eq!(membership_name("@@@"), "member");
        assert!(membership_name(&"a".repeat(100)).len() <= 63);
    }

    #[test]
    fn tables_align_like_kubectl() {
        let t = table(
            &["NAME", "ROLE"],
            &[
                vec!["ada".into(), "owner".into()],
                vec!["grace-hopper".into(), "member".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME           ROLE\nada            owner\ngrace-hopper   member\n"
        );
    }
}
