//! `kubectl roster invite create --count N`: join codes in bulk, for a class or a lab.
//!
//! N single-use Invites (generated names), each created as the caller so that RBAC and roster's
//! webhook decide on every one as on a single invite, then their codes, written as CSV (or JSON or
//! YAML) to `--file` or standard output. A created invite's code must never be lost: CSV rows are
//! written and flushed one by one as each code is read, JSON and YAML are written before the
//! command fails, and a failure names what was created, what was written and what went wrong.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::ResourceExt;

use super::Output;
use super::invites::{CreatedInvite, create as create_one, wait_for_code};
use super::session::Session;
use crate::api::InviteSpec;

/// Creates `count` invites like `spec` and writes their codes.
pub(super) async fn create(
    s: &Session,
    spec: InviteSpec,
    count: u32,
    file: Option<PathBuf>,
    timeout: Duration,
) -> anyhow::Result<()> {
    if spec.email.is_some() {
        bail!(
            "--email names one person, and --count makes codes for anyone you hand one to: leave out --email (or leave out --count)"
        );
    }
    let format = match s.output {
        Output::Table => Format::Csv,
        Output::Json => Format::Json,
        Output::Yaml => Format::Yaml,
        Output::Name => bail!(
            "-o name would leave out the codes: --count writes CSV (the default), -o json or -o yaml"
        ),
    };
    if s.dry_run {
        return dry_run(s, &spec, count, file.as_deref()).await;
    }
    // Opened before the first create, so that a path that cannot be written fails before any
    // invite exists.
    let mut sink = Sink::open(format, file.as_deref())?;
    let (created, failure) = create_all(s, &spec, count).await;
    let missing = write_codes(s, &created, &mut sink, timeout).await?;
    let written = sink.finish()?;
    if let Some(path) = &file
        && written == 0
    {
        // Nothing to keep, and a file left behind would block the next attempt.
        let _ = std::fs::remove_file(path);
    }
    let dest = file.as_ref().map_or_else(
        || "standard output".to_string(),
        |p| p.display().to_string(),
    );
    report(s, count, &created, written, &dest, failure, missing)
}

/// Creates the invites one after the other, stopping at the first refusal (the next ones would
/// meet the same rule); returns the names created and the failure, numbered from 1.
async fn create_all(
    s: &Session,
    spec: &InviteSpec,
    count: u32,
) -> (Vec<String>, Option<(u32, anyhow::Error)>) {
    let mut created = Vec::new();
    for i in 1..=count {
        match create_one(s, None, spec.clone()).await {
            Ok(invite) => created.push(invite.name_any()),
            Err(e) => return (created, Some((i, e))),
        }
    }
    (created, None)
}

/// Reads each created invite's code, in creation order, and writes its row at once; returns the
/// invites whose code could not be read within `timeout` (for all of them together) and why.
async fn write_codes(
    s: &Session,
    created: &[String],
    sink: &mut Sink,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, anyhow::Error)>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut missing = Vec::new();
    for name in created {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match wait_for_code(s, name, left).await {
            Ok((invite, code)) => sink.row(CreatedInvite::new(s, &invite, Some(code)))?,
            Err(e) => missing.push((name.clone(), e)),
        }
    }
    Ok(missing)
}

/// The summary on success; otherwise an error that names what was created and written and what
/// failed.
fn report(
    s: &Session,
    count: u32,
    created: &[String],
    written: usize,
    dest: &str,
    failure: Option<(u32, anyhow::Error)>,
    missing: Vec<(String, anyhow::Error)>,
) -> anyhow::Result<()> {
    let ns = &s.namespace;
    if let Some((name, e)) = missing.first() {
        let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "error: {} invite(s) were created but their codes were not read: {}; the first: {name}: {e:#}",
            names.len(),
            names.join(", ")
        );
        eprintln!(
            "read each code later with: kubectl -n {ns} get secret NAME-invite-code -o jsonpath='{{.data.code}}' | base64 -d"
        );
    }
    let summary = format!(
        "{} of {count} invite(s) created in {ns} ({}); {written} row(s) with codes written to {dest}",
        created.len(),
        if created.is_empty() {
            "none".to_string()
        } else {
            created.join(", ")
        }
    );
    match failure {
        Some((i, e)) => Err(e.context(format!("{summary}; invite {i} of {count} failed"))),
        None if !missing.is_empty() => bail!("{summary}; {} code(s) missing", missing.len()),
        None => {
            if dest != "standard output" {
                println!("{summary}");
            }
            Ok(())
        }
    }
}

/// `--dry-run=server`: every create is asked of the API server and the webhook, and nothing is
/// stored, so there are no codes and no file.
async fn dry_run(
    s: &Session,
    spec: &InviteSpec,
    count: u32,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(path) = file {
        refuse_existing(path)?;
    }
    for i in 1..=count {
        let invite = create_one(s, None, spec.clone())
            .await
            .with_context(|| format!("invite {i} of {count} (server dry run)"))?;
        println!("invite/{} created{}", invite.name_any(), s.dry());
    }
    if let Some(path) = file {
        println!("{} not written{}: no codes exist", path.display(), s.dry());
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Json,
    Yaml,
}

/// Where the rows go: CSV rows are written and flushed as they come; JSON and YAML, which are
/// whole documents, when [`Sink::finish`] runs (also before a failure is reported).
struct Sink {
    out: Box<dyn Write>,
    format: Format,
    rows: Vec<CreatedInvite>,
}

const CSV_HEADER: &str = "name,role,expires,code,join_command";

impl Sink {
    fn open(format: Format, path: Option<&Path>) -> anyhow::Result<Sink> {
        let out: Box<dyn Write> = match path {
            Some(path) => {
                refuse_existing(path)?;
                Box::new(
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        // The codes are secrets: only the caller may read them.
                        .mode(0o600)
                        .open(path)
                        .with_context(|| format!("--file {}: create it", path.display()))?,
                )
            }
            None => Box::new(std::io::stdout()),
        };
        let mut sink = Sink {
            out,
            format,
            rows: Vec::new(),
        };
        if let Format::Csv = format {
            writeln!(sink.out, "{CSV_HEADER}")?;
            sink.out.flush()?;
        }
        Ok(sink)
    }

    fn row(&mut self, row: CreatedInvite) -> anyhow::Result<()> {
        if let Format::Csv = self.format {
            let cells = [
                row.invite.as_str(),
                row.role.as_str(),
                row.expires_at.as_deref().unwrap_or_default(),
                row.code.as_deref().unwrap_or_default(),
                row.join_command.as_deref().unwrap_or_default(),
            ];
            let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            writeln!(self.out, "{}", line.join(","))?;
            self.out.flush()?;
        }
        self.rows.push(row);
        Ok(())
    }

    /// Writes what is still to write; returns the number of rows.
    fn finish(mut self) -> anyhow::Result<usize> {
        match self.format {
            Format::Csv => {}
            Format::Json => writeln!(self.out, "{}", serde_json::to_string_pretty(&self.rows)?)?,
            Format::Yaml => write!(self.out, "{}", serde_yaml::to_string(&self.rows)?)?,
        }
        self.out.flush()?;
        Ok(self.rows.len())
    }
}

fn refuse_existing(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        bail!(
            "--file {}: it exists, and may hold the codes of an earlier batch; choose another path",
            path.display()
        );
    }
    Ok(())
}

/// A CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        assert_eq!(csv_cell("member-x7k2p"), "member-x7k2p");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
