use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// roster: organizations, memberships, invites and teams as Kubernetes custom resources.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions of all roster kinds as YAML
    /// (`roster crds | kubectl apply --server-side -f -`).
    Crds {
        /// Write one file per kind into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the operator: reconcile organizations and keep their status true.
    Run(Box<roster::run::RunArgs>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => roster::run::run(*args).await?,
        Command::Crds { dir: None } => print!("{}", roster::crds::all_yaml()),
        Command::Crds { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            for (file, crd) in roster::crds::all() {
                let path = dir.join(file);
                std::fs::write(&path, roster::crds::to_yaml(&crd))
                    .with_context(|| format!("write {}", path.display()))?;
            }
        }
    }
    Ok(())
}
