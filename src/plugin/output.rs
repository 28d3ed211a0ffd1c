//! Output: kubectl-style tables, or the same data as JSON or YAML (`-o`).

use serde::Serialize;

use super::Output;
use super::session::Session;

/// Prints rows as a kubectl-style table: upper-case headers, columns three spaces apart.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
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
pub(super) fn emit<T: Serialize>(
    s: &Session,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match s.output {
        Output::Table => print!("{}", text()),
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(value)?),
    }
    Ok(())
}

pub(super) fn or_dash(s: Option<impl ToString>) -> String {
    s.map_or_else(|| "-".to_string(), |s| s.to_string())
}
