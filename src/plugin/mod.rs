//! `kubectl roster`: the kubectl plugin for the people in an organization (binary `kubectl-roster`,
//! src/bin/kubectl-roster.rs, which only calls [`main`]).
//!
//! Every command is a plain API request made as the caller (honouring `--kubeconfig`, `--context`,
//! `-n` and kubectl's impersonation flags `--as`/`--as-group`), so RBAC and roster's admission
//! webhook decide exactly as they do for `kubectl apply`: the plugin adds convenience, never rights.
//!
//! The organization is addressed by its namespace (`-n`, or the kubeconfig context's namespace);
//! `join` takes it as an argument since the joiner usually has no context for it yet.
//!
//! One file per command group: `members`, `invites`, `join` (and leave), `transfer`,
//! `status`; `session` connects as the caller and `output` prints tables, JSON or YAML.

mod invites;
mod join;
mod members;
mod output;
mod session;
mod status;
mod transfer;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::OrgRole;
use crate::rules::invite_code;
use join::Join;
pub use join::membership_name;
use session::connect;

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
    /// Extra information for the impersonated user, as KEY=VALUE; repeat for several (like kubectl
    /// --as-user-extra), for example the tenant claim an identity provider's users carry.
    #[arg(long = "as-user-extra", global = true, requires = "as_user", value_parser = parse_extra)]
    pub as_user_extra: Vec<(String, String)>,
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
        /// The tenant you signed in to, for an invite bound to an identity provider's tenant (the
        /// inviter's join command includes it); the webhook checks it against your sign-in.
        #[arg(long)]
        tenant: Option<String>,
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
        /// Only users who signed in with this identity provider (as the platform named it, such
        /// as google or entra) may redeem it; `--email` is then their address without the
        /// provider's username prefix (default: any provider).
        #[arg(long)]
        identity_provider: Option<String>,
        /// With --identity-provider: only users of this tenant (such as an Entra tenant ID).
        #[arg(long, requires = "identity_provider")]
        tenant: Option<String>,
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

fn parse_extra(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s} is not KEY=VALUE"))
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

/// Runs one command; `invite proof` works offline, everything else connects as the caller.
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
        Command::Members => members::members(&s).await,
        Command::Invite(command) => invites::run(&s, command).await,
        Command::Join {
            org_namespace,
            invite,
            code,
            name,
            display_name,
            role,
            tenant,
            timeout,
        } => {
            s.namespace = org_namespace;
            join::join(
                &s,
                Join {
                    invite,
                    code,
                    name,
                    display_name,
                    role,
                    tenant,
                },
                Duration::from_secs(timeout),
            )
            .await
        }
        Command::Leave => join::leave(&s).await,
        Command::TransferOwnership {
            to,
            confirm,
            demote_to,
            timeout,
        } => {
            let timeout = Duration::from_secs(timeout);
            transfer::transfer(&s, &to, &confirm, demote_to, timeout).await
        }
        Command::Status => status::status(&s).await,
    }
}

#[cfg(test)]
mod tests {
    use super::output::table;
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
