//! What `roster check` reports: findings (file, object, rule, message), skipped documents, and the
//! summary.

use std::collections::{BTreeMap, HashSet};

use kube::Resource;
use serde::Serialize;

use super::{Checked, Source};

/// How bad a finding is: errors fail the check, warnings are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem, naming the file, the object and the rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    pub file: String,
    /// The line where the YAML document starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The rule: `schema/enum`, `cel`, a webhook reason such as `OrganizationExists`, or a `Ready`
    /// condition reason such as `SeatLimitReached`.
    pub rule: String,
    pub message: String,
}

impl Finding {
    /// `kind namespace/name`, or what is known of it.
    pub fn object(&self) -> Option<String> {
        let kind = self.kind.as_deref()?;
        Some(match (&self.namespace, &self.name) {
            (Some(ns), Some(n)) => format!("{kind} {ns}/{n}"),
            (None, Some(n)) => format!("{kind} {n}"),
            _ => kind.to_string(),
        })
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.severity.as_str())?;
        if let Some(object) = self.object() {
            write!(f, ": {object}")?;
        }
        write!(f, ": [{}] {}", self.rule, self.message)
    }
}

/// A document of another kind, left alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub file: String,
    pub line: usize,
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What `roster check` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// YAML files read.
    pub files: usize,
    /// roster objects checked.
    pub objects: usize,
    /// Org namespaces checked.
    pub namespaces: Vec<String>,
    pub skipped: Vec<Skipped>,
    pub findings: Vec<Finding>,
    pub errors: usize,
    pub warnings: usize,
}

impl Report {
    /// The human-readable report: one line per finding, then a summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&f.to_string());
            out.push('\n');
        }
        let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &self.skipped {
            *skipped.entry(s.kind.as_str()).or_default() += 1;
        }
        let skipped = if skipped.is_empty() {
            String::new()
        } else {
            let kinds: Vec<String> = skipped.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!("; skipped {} (not roster kinds)", kinds.join(", "))
        };
        out.push_str(&format!(
            "checked {} roster object(s) in {} namespace(s) from {} file(s){skipped}: {} error(s), {} warning(s)\n",
            self.objects,
            self.namespaces.len(),
            self.files,
            self.errors,
            self.warnings
        ));
        out
    }
}

/// The findings so far, each once.
#[derive(Default)]
pub(super) struct Findings {
    list: Vec<Finding>,
    seen: HashSet<(String, usize, String, String, String, String)>,
}

impl Findings {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
        &mut self,
        severity: Severity,
        source: &Source,
        kind: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
        rule: &str,
        message: impl Into<String>,
    ) {
        let message = message.into();
        // The same rule on the same object found by two layers (the webhook's and the controller's
        // view of a duplicate, say) is one finding; per-object layers may find a rule many times.
        let per_object = rule == "cel" || rule == "metadata" || rule.starts_with("schema/");
        let key = (
            source.file.clone(),
            source.line,
            kind.unwrap_or_default().to_string(),
            name.unwrap_or_default().to_string(),
            rule.to_string(),
            if per_object {
                message.clone()
            } else {
                String::new()
            },
        );
        if !self.seen.insert(key) {
            return;
        }
        self.list.push(Finding {
            severity,
            file: source.file.clone(),
            line: (source.line > 0).then_some(source.line),
            kind: kind.map(str::to_string),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            rule: rule.to_string(),
            message,
        });
    }

    pub(super) fn on<K: Resource<DynamicType = ()>>(
        &mut self,
        severity: Severity,
        c: &Checked<K>,
        rule: &str,
        message: impl Into<String>,
    ) {
        let kind = K::kind(&());
        let meta = c.object.meta();
        self.push(
            severity,
            &c.source,
            Some(&kind),
            meta.namespace.as_deref(),
            meta.name.as_deref(),
            rule,
            message,
        );
    }

    /// Puts the findings, in file order, and their counts into `report`.
    pub(super) fn finish(self, report: &mut Report) {
        let mut list = self.list;
        list.sort_by(|a, b| {
            (&a.file, a.line, a.severity, &a.kind, &a.name, &a.rule)
                .cmp(&(&b.file, b.line, b.severity, &b.kind, &b.name, &b.rule))
        });
        report.errors = list
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        report.warnings = list.len() - report.errors;
        report.findings = list;
    }
}
