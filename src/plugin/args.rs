//! Parsing what people type: roles, durations, subjects, identity providers, and invite codes
//! given on the command line, on standard input or in a file.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::api::{IdentityProviderRef, OrgRole, Subject, TeamRole};

/// An org role argument: clap lists the roles in its errors and completion offers them.
pub(super) fn org_role() -> impl TypedValueParser<Value = OrgRole> {
    PossibleValuesParser::new(OrgRole::ALL.map(OrgRole::as_str)).map(|s| {
        OrgRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .expect("one of the listed roles")
    })
}

/// A team role argument, likewise.
pub(super) fn team_role() -> impl TypedValueParser<Value = TeamRole> {
    PossibleValuesParser::new(TeamRole::ALL.map(TeamRole::as_str)).map(|s| {
        TeamRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .expect("one of the listed team roles")
    })
}

/// A timeout: a duration such as `30s`, `2m`, `1m30s` or `500ms`, as kubectl takes them; a bare
/// number counts as seconds, which is what the plugin took before durations (kept so that
/// scripts keep working).
pub(super) fn parse_timeout(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{s:?} is not a duration such as 30s, 2m or 1h30m (a bare number counts as seconds)"
        )
    };
    if let Ok(seconds) = s.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let one = match &rest[..unit] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        total += one * u32::try_from(n).map_err(|_| bad())?;
        rest = &rest[unit..];
    }
    Ok(total)
}

/// A duration as people read it: `30s`, `2m`, `1m30s`, `500ms`.
pub(super) fn human(d: Duration) -> String {
    let (secs, millis) = (d.as_secs(), d.subsec_millis());
    if secs == 0 {
        return format!("{millis}ms");
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// `--as-user-extra KEY=VALUE`, as kubectl takes it.
pub(super) fn parse_extra(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s} is not KEY=VALUE"))
}

/// A team or org subject: `group:NAME` for a Kubernetes group, anything else a username.
pub(super) fn parse_subject(s: &str) -> Subject {
    match s.strip_prefix("group:") {
        Some(group) => Subject::Group(group.to_string()),
        None => Subject::User(s.to_string()),
    }
}

/// `--identity-provider NAME[:TENANT]`.
pub(super) fn parse_identity_provider(s: &str) -> Result<IdentityProviderRef, String> {
    let (name, tenant) = match s.split_once(':') {
        Some((name, tenant)) => (name, Some(tenant)),
        None => (s, None),
    };
    if name.is_empty() || tenant == Some("") {
        return Err(format!(
            "{s:?} is not NAME or NAME:TENANT, such as google or entra:7f3c1c0e-0000-4000-8000-000000000000"
        ));
    }
    Ok(IdentityProviderRef {
        name: name.to_string(),
        tenant: tenant.map(str::to_string),
    })
}

/// The most invites `invite create --count` makes at once, the product's bulk limit.
pub(super) const MAX_BULK: u32 = 50;

pub(super) fn parse_count(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_BULK).contains(&n) => Ok(n),
        Ok(n) if n > MAX_BULK => Err(format!(
            "{n} is more than {MAX_BULK}, the most invites made at once: run it again for more"
        )),
        _ => Err(format!("{s:?} is not a number from 1 to {MAX_BULK}")),
    }
}

/// Where an invite code comes from. `--code -` and `--code-file` keep it out of the shell's
/// history and of the process list, which every user of the machine can read.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct CodeArgs {
    /// The code you were given, like ABCD-EFGH-JKLM-NPQR; `-` reads it from standard input.
    #[arg(long)]
    pub code: Option<String>,
    /// Read the code from this file (its first line).
    #[arg(long, value_name = "PATH")]
    pub code_file: Option<PathBuf>,
}

impl CodeArgs {
    /// The code, read from where the flags say.
    pub(super) fn read(&self) -> anyhow::Result<String> {
        let code = match (&self.code, &self.code_file) {
            (Some(code), _) if code == "-" => {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("--code -: read the code from standard input")?;
                line
            }
            (Some(code), _) => code.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("--code-file: read {}", path.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            (None, None) => {
                bail!("give the invite code with --code CODE, --code - or --code-file PATH")
            }
        };
        let code = code.trim().to_string();
        if code.is_empty() {
            let from = match &self.code_file {
                Some(path) => format!("--code-file {}", path.display()),
                None => "--code - (standard input)".into(),
            };
            bail!("{from}: no code there");
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_durations_or_seconds() {
        assert_eq!(parse_timeout("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("0"), Ok(Duration::ZERO));
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timeout("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "s", "30x", "1.5m", "-3s", "m30"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(Duration::from_secs(30)), "30s");
        assert_eq!(human(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn counts_stop_at_fifty() {
        assert_eq!(parse_count("1"), Ok(1));
        assert_eq!(parse_count("50"), Ok(50));
        assert!(parse_count("51").unwrap_err().contains("more than 50"));
        assert!(parse_count("0").is_err());
        assert!(parse_count("x").is_err());
    }

    #[test]
    fn identity_providers_and_subjects() {
        let idp = parse_identity_provider("entra:tenant-1").unwrap();
        assert_eq!(
            (idp.name.as_str(), idp.tenant.as_deref()),
            ("entra", Some("tenant-1"))
        );
        assert_eq!(parse_identity_provider("google").unwrap().tenant, None);
        assert!(parse_identity_provider("entra:").is_err());
        assert!(parse_identity_provider(":x").is_err());
        assert_eq!(parse_subject("group:eng"), Subject::Group("eng".into()));
        assert_eq!(
            parse_subject("ada@x.example"),
            Subject::User("ada@x.example".into())
        );
    }
}
