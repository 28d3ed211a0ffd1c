//! Output: kubectl-style tables, or the same data as JSON or YAML, or object names (`-o`).

use anyhow::bail;
use serde::Serialize;

use super::Output;
use super::session::Session;

/// The `-o name` prefix of each kind, as kubectl prints it (`invite.roster.dev/welcome`).
pub(super) mod kind {
    pub(in crate::plugin) const INVITE: &str = "invite.roster.dev";
    pub(in crate::plugin) const MEMBERSHIP: &str = "membership.roster.dev";
    pub(in crate::plugin) const TEAM: &str = "team.roster.dev";
    pub(in crate::plugin) const ORGANIZATION: &str = "organization.roster.dev";
}

/// `KIND/NAME`, as `-o name` prints an object.
pub(super) fn object_name(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

/// Rows as a kubectl-style table: upper-case headers (left out with `--no-headers`), columns three
/// spaces apart.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>], show_headers: bool) -> String {
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
    let mut out = String::new();
    if show_headers {
        out = line(headers.iter().map(|h| h.to_string()).collect());
    }
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// What `-o name` prints for a command: the objects it shows or wrote, or nothing to name (a view
/// such as `status` or `leadership`, which `-o name` refuses, as kubectl does for what it cannot
/// name).
pub(super) enum Names {
    Objects(Vec<String>),
    NotObjects,
}

impl Names {
    pub(super) fn one(kind: &str, name: &str) -> Names {
        Names::Objects(vec![object_name(kind, name)])
    }

    pub(super) fn all<'a>(kind: &str, names: impl IntoIterator<Item = &'a String>) -> Names {
        Names::Objects(names.into_iter().map(|n| object_name(kind, n)).collect())
    }
}

/// Prints `value` as JSON or YAML, its object names, or `text` for the default output.
pub(super) fn emit<T: Serialize>(
    s: &Session,
    value: &T,
    names: Names,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match s.output {
        Output::Table => print!("{}", text()),
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(value)?),
        Output::Name => match names {
            Names::Objects(names) => {
                for n in names {
                    println!("{n}");
                }
            }
            Names::NotObjects => {
                bail!("-o name: this command shows no objects to name; use -o json or -o yaml")
            }
        },
    }
    Ok(())
}

pub(super) fn or_dash(s: Option<impl ToString>) -> String {
    s.map_or_else(|| "-".to_string(), |s| s.to_string())
}
