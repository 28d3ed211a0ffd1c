//! Shell completion, two ways:
//!
//! - `kubectl roster completion bash|zsh|fish` prints a script (clap_complete) for the binary run
//!   by its own name, `kubectl-roster ...`;
//! - `kubectl roster ...` itself: kubectl (1.26 and later) completes a plugin's words by running
//!   `kubectl_complete-roster WORDS... CURRENT` from the PATH and reading Cobra's answer: one
//!   candidate a line (with a tab and a description), then `:DIRECTIVE`. The second binary
//!   `kubectl_complete-roster` (src/bin) and `kubectl-roster __complete` both answer with
//!   [`complete`], from the same clap definition, so the two never disagree.
//!
//! Names of objects (invites, teams, members) are not completed: that would need a request to the
//! API server on every Tab.

use std::io::Write as _;

use clap::{Arg, Command, CommandFactory as _, ValueEnum};
use clap_complete::Shell as ClapShell;

use super::Cli;

/// The hidden first word that asks `kubectl-roster` for completions (Cobra's name for it).
pub(super) const COMPLETE: &str = "__complete";

/// Cobra's `ShellCompDirectiveDefault`: the shell may complete file names.
const FILES: u8 = 0;
/// Cobra's `ShellCompDirectiveNoFileComp`: only the candidates given.
const NO_FILES: u8 = 4;

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `kubectl roster completion SHELL`.
pub(super) fn script(shell: Shell) -> anyhow::Result<()> {
    let shell = match shell {
        Shell::Bash => ClapShell::Bash,
        Shell::Zsh => ClapShell::Zsh,
        Shell::Fish => ClapShell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kubectl-roster", &mut out);
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// The entry point of `kubectl_complete-roster`: the words kubectl passes, the current one last.
pub fn complete_main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    print(&words);
}

/// Prints Cobra's answer for `words` (the current, possibly empty, word last).
pub(super) fn print(words: &[String]) {
    let (candidates, directive) = complete(words);
    for c in candidates {
        println!("{c}");
    }
    println!(":{directive}");
}

/// The candidates for the last of `words`, each `VALUE\tDESCRIPTION`, and Cobra's directive.
pub(super) fn complete(words: &[String]) -> (Vec<String>, u8) {
    let mut root = Cli::command();
    // Propagates the global flags into every subcommand.
    root.build();
    let (done, current) = match words.split_last() {
        Some((current, done)) => (done, current.as_str()),
        None => (&[][..], ""),
    };
    let (cmd, pending) = walk(&root, done);
    if let Some(arg) = pending {
        return values(arg, "", current);
    }
    if let Some((flag, value)) = current.split_once('=')
        && let Some(arg) = long_flag(cmd, flag)
    {
        return values(arg, &format!("{flag}="), value);
    }
    if current.starts_with('-') {
        return (flags(cmd, current), NO_FILES);
    }
    let mut out: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name().starts_with(current))
        .map(|c| described(c.get_name(), c.get_about().map(|a| a.to_string())))
        .collect();
    if let Some(arg) = next_positional(cmd, done) {
        let (more, directive) = values(arg, "", current);
        if out.is_empty() {
            return (more, directive);
        }
        out.extend(more);
    }
    (out, NO_FILES)
}

/// Follows the completed words down the subcommands; returns the command reached and the flag
/// whose value comes next, if the last word was a flag that takes one.
fn walk<'a>(root: &'a Command, done: &[String]) -> (&'a Command, Option<&'a Arg>) {
    let mut cmd = root;
    let mut pending: Option<&Arg> = None;
    for word in done {
        if pending.take().is_some() {
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            if !long.contains('=') {
                pending = cmd
                    .get_arguments()
                    .find(|a| a.get_long() == Some(long))
                    .filter(|a| takes_value(a));
            }
        } else if let Some(short) = word.strip_prefix('-').filter(|s| s.len() == 1) {
            let c = short.chars().next();
            pending = cmd
                .get_arguments()
                .find(|a| a.get_short() == c)
                .filter(|a| takes_value(a));
        } else if let Some(sub) = cmd.find_subcommand(word) {
            cmd = sub;
        }
    }
    (cmd, pending)
}

fn takes_value(a: &Arg) -> bool {
    a.get_action().takes_values()
}

fn long_flag<'a>(cmd: &'a Command, flag: &str) -> Option<&'a Arg> {
    let long = flag.strip_prefix("--")?;
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .filter(|a| takes_value(a))
}

/// The positional argument the next plain word fills, counting the plain words given after the
/// last subcommand.
fn next_positional<'a>(cmd: &'a Command, done: &[String]) -> Option<&'a Arg> {
    let name = cmd.get_name();
    let after = done.iter().rposition(|w| w == name).map_or(0, |i| i + 1);
    let mut given = 0;
    let mut skip = false;
    for w in &done[after..] {
        if skip {
            skip = false;
        } else if w.starts_with('-') {
            skip = !w.contains('=')
                && (long_flag(cmd, w).is_some()
                    || cmd.get_arguments().any(|a| {
                        takes_value(a) && w.len() == 2 && a.get_short() == w.chars().nth(1)
                    }));
        } else {
            given += 1;
        }
    }
    cmd.get_positionals().nth(given)
}

/// The values an argument can take that start with `current`, each prefixed (`--output=`); file
/// names where the argument is a path.
fn values(arg: &Arg, prefix: &str, current: &str) -> (Vec<String>, u8) {
    let possible = arg.get_possible_values();
    if possible.is_empty() {
        let path = matches!(
            arg.get_value_names()
                .and_then(|n| n.first())
                .map(|n| n.as_str()),
            Some("PATH")
        );
        return (Vec::new(), if path { FILES } else { NO_FILES });
    }
    let out = possible
        .iter()
        .filter(|v| !v.is_hide_set() && v.get_name().starts_with(current))
        .map(|v| {
            described(
                &format!("{prefix}{}", v.get_name()),
                v.get_help().map(|h| h.to_string()),
            )
        })
        .collect();
    (out, NO_FILES)
}

/// The long flags of `cmd` (its own and the global ones) that start with `current`.
fn flags(cmd: &Command, current: &str) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| (format!("--{l}"), a)))
        .filter(|(flag, _)| flag.starts_with(current))
        .map(|(flag, a)| described(&flag, a.get_help().map(|h| h.to_string())))
        .collect()
}

/// `VALUE\tDESCRIPTION` (Cobra's form), the description cut to its first sentence.
fn described(value: &str, help: Option<String>) -> String {
    match help {
        Some(h) => {
            let line = h.lines().next().unwrap_or_default();
            let first = line.split(". ").next().unwrap_or_default();
            format!("{value}\t{}", first.trim().trim_end_matches('.'))
        }
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        let mut w: Vec<String> = s.split(' ').map(str::to_string).collect();
        if s.is_empty() {
            w = vec![String::new()];
        }
        w
    }

    fn values_of(s: &str) -> (Vec<String>, u8) {
        let (c, d) = complete(&words(s));
        (
            c.into_iter()
                .map(|c| c.split('\t').next().unwrap().to_string())
                .collect(),
            d,
        )
    }

    #[test]
    fn subcommands_flags_and_values() {
        let (top, d) = values_of("");
        for want in [
            "members",
            "member",
            "invite",
            "join",
            "team",
            "org",
            "leadership",
        ] {
            assert!(top.iter().any(|c| c == want), "{want} in {top:?}");
        }
        assert!(!top.iter().any(|c| c.starts_with("__")), "{top:?}");
        assert_eq!(d, NO_FILES);
        assert_eq!(values_of("inv").0, vec!["invite"]);
        let invite = values_of("invite ").0;
        assert!(invite.contains(&"resend".to_string()), "{invite:?}");
        let flags = values_of("invite create --").0;
        for want in ["--count", "--file", "--role", "--namespace", "--dry-run"] {
            assert!(flags.iter().any(|c| c == want), "{want} in {flags:?}");
        }
        assert_eq!(values_of("-n acme invite create --role a").0, vec!["admin"]);
        assert_eq!(values_of("members -o j").0, vec!["json"]);
        assert_eq!(values_of("members --output=y").0, vec!["--output=yaml"]);
        assert_eq!(values_of("--dry-run s").0, vec!["server"]);
        assert_eq!(values_of("completion f").0, vec!["fish"]);
        // A path: the shell completes file names.
        assert_eq!(values_of("invite create --count 3 --file ").1, FILES);
        assert_eq!(
            values_of("team set-role platform ada@x.example ").0.len(),
            5
        );
        // Descriptions are the help's first sentence, for zsh and fish to show.
        assert_eq!(
            complete(&words("--kube")).0,
            [
                "--kubeconfig\tPath to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)"
            ]
        );
    }
}
