//! `kubectl roster`: the kubectl plugin for the people in an organization (binary `kubectl-roster`,
//! src/bin/kubectl-roster.rs, which only calls [`main`]; shell completion for kubectl also calls
//! [`complete_main`] through `kubectl_complete-roster`).
//!
//! Every command is a plain API request made as the caller (honouring `--kubeconfig`, `--context`,
//! `-n` and kubectl's impersonation flags `--as`/`--as-group`), so RBAC and roster's admission
//! webhook decide exactly as they do for `kubectl apply`: the plugin adds convenience, never rights.
//! `--dry-run=server` sends every write with dryRun=All, so the answer is the real one and nothing
//! is stored.
//!
//! The organization is addressed by its namespace (`-n`, or the kubeconfig context's namespace);
//! `join` takes it as an argument since the joiner usually has no context for it yet.
//!
//! One file per command group: `members` (list, role changes, removals), `invites` (and `bulk`,
//! for `invite create --count`), `join` (and leave), `transfer`, `status`, `org` (profile and
//! leadership), `teams`, `completion`; `args` parses what people type, `session` connects as the
//! caller and `output` prints tables, JSON, YAML or names.

mod args;
mod bulk;
mod completion;
mod invites;
mod join;
mod members;
mod org;
mod output;
mod session;
mod status;
mod teams;
mod transfer;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::OrgRole;
use crate::rules::invite_code;
use args::{CodeArgs, org_role, parse_extra, parse_timeout};
pub use completion::complete_main;
use join::Join;
pub use join::membership_name;
use session::connect;

/// kubectl roster: members, invites, teams, joining and leaving an organization.
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
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The org namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Username to impersonate for the operation (like kubectl --as).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate for the operation; repeat for several (like kubectl --as-group).
    #[arg(
        long = "as-group",
        global = true,
        requires = "as_user",
        value_name = "GROUP"
    )]
    pub as_group: Vec<String>,
    /// Extra information for the impersonated user, as KEY=VALUE; repeat for several (like kubectl
    /// --as-user-extra), for example the tenant claim an identity provider's users carry.
    #[arg(long = "as-user-extra", global = true, requires = "as_user", value_parser = parse_extra)]
    pub as_user_extra: Vec<(String, String)>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// Leave out table headers (like kubectl get --no-headers).
    #[arg(long, global = true)]
    pub no_headers: bool,
    /// `server`: send every write as a server dry run (dryRun=All): RBAC and roster's webhook
    /// answer as for the real request, and nothing is stored.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "none",
        value_name = "STRATEGY"
    )]
    pub dry_run: DryRun,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Tables and sentences (the default).
    Table,
    Json,
    Yaml,
    /// KIND/NAME of the objects shown or written, like kubectl -o name.
    Name,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRun {
    /// Write for real.
    None,
    /// Ask the API server, RBAC and roster's webhook, and store nothing.
    Server,
    /// Refused: roster's answers come from its webhook, which a client-side dry run never asks.
    Client,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the organization's Memberships: who holds which role, and who waits for what.
    Members,
    /// List members, change a member's role, remove a member.
    #[command(subcommand)]
    Member(members::MemberCommand),
    /// Create, list, revoke and resend invites, and make join codes in bulk.
    #[command(subcommand)]
    Invite(invites::InviteCommand),
    /// Join an organization with an invite code: creates your own Membership.
    Join {
        /// The org namespace.
        org_namespace: String,
        /// The Invite's name.
        #[arg(long)]
        invite: String,
        #[command(flatten)]
        code: CodeArgs,
        /// Name of your Membership (default: derived from your username).
        #[arg(long)]
        name: Option<String>,
        /// Your name as people see it.
        #[arg(long)]
        display_name: Option<String>,
        /// The role the invite grants (default: read from the Invite).
        #[arg(long, value_parser = org_role())]
        role: Option<OrgRole>,
        /// The tenant you signed in to, for an invite bound to an identity provider's tenant (the
        /// inviter's join command includes it); the webhook checks it against your sign-in.
        #[arg(long)]
        tenant: Option<String>,
        /// How long to wait for the Membership to become Active, such as 30s or 2m (0: do not
        /// wait; a bare number counts as seconds).
        #[arg(long, value_parser = parse_timeout, default_value = "30s", value_name = "DURATION")]
        timeout: Duration,
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
        #[arg(long, value_parser = org_role(), default_value = "admin")]
        demote_to: OrgRole,
        /// How long to wait for each step to take effect (a bare number counts as seconds).
        #[arg(long, value_parser = parse_timeout, default_value = "60s", value_name = "DURATION")]
        timeout: Duration,
    },
    /// The organization at a glance: readiness, owners, seats, invites and your role.
    Status,
    /// The organization's owners and admins: who to contact.
    Leadership,
    /// Show the organization's profile, or edit its display name and profile.
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// List, show, create and change teams.
    #[command(subcommand)]
    Team(teams::TeamCommand),
    /// Print a shell completion script: `source <(kubectl roster completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: completion::Shell,
    },
}

/// Runs the plugin; the process exits 1 with a message on stderr when a command fails.
pub async fn main() {
    // `kubectl-roster __complete WORDS...` answers as `kubectl_complete-roster WORDS...` does (the
    // Cobra convention, which kubectl's plugin completion speaks), before clap could take the
    // words for flags.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(completion::COMPLETE) {
        completion::print(&argv[2..]);
        return;
    }
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

/// Runs one command; `invite proof` and `completion` work offline, everything else
/// connects as the caller.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.global.dry_run == DryRun::Client {
        return Err(anyhow!(
            "--dry-run=client is not supported: roster's webhook decides, and only the API server asks it; use --dry-run=server"
        ));
    }
    match &cli.command {
        Command::Invite(invites::InviteCommand::Proof { name, code, user }) => {
            let namespace = cli.global.namespace.as_deref().ok_or_else(|| {
                anyhow!("-n/--namespace is required: the proof is for the org namespace's Invite")
            })?;
            let code = code.read()?;
            println!("{}", invite_code::proof(&code, namespace, name, user));
            return Ok(());
        }
        Command::Completion { shell } => return completion::script(*shell),
        _ => {}
    }
    let mut s = connect(&cli.global).await?;
    match cli.command {
        Command::Members => members::members(&s).await,
        Command::Member(command) => members::run(&s, command).await,
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
            let code = code.read()?;
            let j = Join {
                invite,
                code,
                name,
                display_name,
                role,
                tenant,
            };
            join::join(&s, j, timeout).await
        }
        Command::Leave => join::leave(&s).await,
        Command::TransferOwnership {
            to,
            confirm,
            demote_to,
            timeout,
        } => transfer::transfer(&s, &to, &confirm, demote_to, timeout).await,
        Command::Status => status::status(&s).await,
        Command::Leadership => org::leadership(&s).await,
        Command::Org(command) => org::run(&s, command).await,
        Command::Team(command) => teams::run(&s, command).await,
        Command::Completion { .. } => unreachable!("answered offline"),
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
        let rows = [
            vec!["ada".into(), "owner".into()],
            vec!["grace-hopper".into(), "member".into()],
        ];
        assert_eq!(
            table(&["NAME", "ROLE"], &rows, true),
            "NAME           ROLE\nada            owner\ngrace-hopper   member\n"
        );
        assert_eq!(
            table(&["NAME", "ROLE"], &rows, false),
            "ada            owner\ngrace-hopper   member\n"
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
