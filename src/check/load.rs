//! Reading the checked files: folders searched for YAML, multi-document streams and `List`s split
//! into objects, and every roster object put in its org namespace once it passes the per-object
//! checks ([`super::schema`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::core::cel::Validator;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::report::{Findings, Report, Severity, Skipped};
use super::{Checked, Namespace, Options, Source, schema};

pub(super) fn collect_files(
    path: &Path,
    explicit: bool,
    out: &mut Vec<PathBuf>,
    findings: &mut Findings,
) {
    let source = || Source {
        file: path.display().to_string(),
        line: 0,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            findings.push(
                Severity::Error,
                &source(),
                None,
                None,
                None,
                "read",
                format!("cannot read: {e}"),
            );
            return;
        }
    };
    if meta.is_dir() {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') && n != "." && n != "..");
        if hidden && !explicit {
            return; // .git and friends
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                findings.push(
                    Severity::Error,
                    &source(),
                    None,
                    None,
                    None,
                    "read",
                    format!("cannot list: {e}"),
                );
                return;
            }
        };
        entries.sort();
        for e in entries {
            collect_files(&e, false, out, findings);
        }
    } else if explicit
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
    {
        out.push(path.to_path_buf());
    }
}

/// Reads documents into org namespaces, running the per-object checks on each roster object.
pub(super) struct Loader<'a> {
    options: &'a Options,
    schemas: BTreeMap<String, Value>,
    validator: Validator,
    /// The namespace of objects that set none.
    default_ns: String,
    findings: &'a mut Findings,
    report: &'a mut Report,
    /// The objects that passed, by org namespace.
    pub(super) namespaces: BTreeMap<String, Namespace>,
    /// Where each (kind, namespace, name) was first defined.
    identities: BTreeMap<(String, String, String), Source>,
}

impl<'a> Loader<'a> {
    pub(super) fn new(
        options: &'a Options,
        findings: &'a mut Findings,
        report: &'a mut Report,
    ) -> Loader<'a> {
        Loader {
            options,
            schemas: schema::schemas(),
            validator: Validator::new(),
            default_ns: options
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            findings,
            report,
            namespaces: BTreeMap::new(),
            identities: BTreeMap::new(),
        }
    }

    /// Every document of one file.
    pub(super) fn file(&mut self, file: &Path) {
        let display = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                self.findings.push(
                    Severity::Error,
                    &Source {
                        file: display,
                        line: 0,
                    },
                    None,
                    None,
                    None,
                    "read",
                    format!("cannot read the file: {e}"),
                );
                return;
            }
        };
        for (line, doc) in documents(&text) {
            let source = Source {
                file: display.clone(),
                line,
            };
            self.document(&source, &doc);
        }
    }

    /// One YAML document: an object, a `List` of objects, or nothing.
    fn document(&mut self, source: &Source, doc: &str) {
        let value: Value = match serde_yaml::from_str(doc) {
            Ok(v) => v,
            Err(e) => {
                self.findings.push(
                    Severity::Error,
                    source,
                    None,
                    None,
                    None,
                    "yaml",
                    format!("not valid YAML: {e}"),
                );
                return;
            }
        };
        let items = match value {
            Value::Null => return,
            Value::Object(ref o)
                if o.get("kind").and_then(Value::as_str) == Some("List")
                    && o.get("items").is_some_and(Value::is_array) =>
            {
                o["items"].as_array().cloned().unwrap_or_default()
            }
            other => vec![other],
        };
        for item in items {
            self.item(source, item);
        }
    }

    /// One object: skipped when of another API group, else checked on its own and, when the API
    /// server would accept it, added to its namespace.
    fn item(&mut self, source: &Source, item: Value) {
        let Some((api_version, kind)) = type_of(&item) else {
            self.findings.push(
                Severity::Error,
                source,
                None,
                None,
                None,
                "object",
                "a document must be a Kubernetes object with apiVersion and kind",
            );
            return;
        };
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        if group != crate::api::GROUP {
            self.report.skipped.push(Skipped {
                file: source.file.clone(),
                line: source.line,
                api_version,
                kind,
                name,
            });
            return;
        }
        self.report.objects += 1;
        let namespace = self.namespace_of(&item, source, &kind, name.as_deref());
        self.namespaces.entry(namespace.clone()).or_default();
        let mut object = item;
        object["metadata"]["namespace"] = Value::String(namespace.clone());
        let id = (kind, namespace, name);
        if !self.accepted(source, &api_version, &id, &mut object) {
            return;
        }
        let (kind, namespace, name) = id;
        let id = (kind, namespace, name.unwrap_or_default());
        if self.duplicate(source, &id) {
            return;
        }
        self.identities.insert(id.clone(), source.clone());
        self.add(source, id, object);
    }

    /// The object's namespace, or the default one (with a warning unless `--namespace` chose it).
    fn namespace_of(
        &mut self,
        item: &Value,
        source: &Source,
        kind: &str,
        name: Option<&str>,
    ) -> String {
        if let Some(ns) = item.pointer("/metadata/namespace").and_then(Value::as_str) {
            return ns.to_string();
        }
        if self.options.namespace.is_none() {
            let default_ns = &self.default_ns;
            self.findings.push(
                Severity::Warning,
                source,
                Some(kind),
                None,
                name,
                "namespace",
                format!(
                    "metadata.namespace is not set: checked as namespace {default_ns} (pass --namespace, or set it, since roster kinds are namespaced and an org is one namespace)"
                ),
            );
        }
        self.default_ns.clone()
    }

    /// The per-object checks of a roster object (kind, namespace, name); whether the API server
    /// would accept it. `object` comes back with schema defaults applied and without `status`.
    fn accepted(
        &mut self,
        source: &Source,
        api_version: &str,
        (kind, namespace, name): &(String, String, Option<String>),
        object: &mut Value,
    ) -> bool {
        let served = format!("{}/{}", crate::api::GROUP, crate::api::VERSION);
        let Some(schema) = self.schemas.get(kind).filter(|_| api_version == served) else {
            self.findings.push(
                Severity::Error,
                source,
                Some(kind),
                Some(namespace),
                name.as_deref(),
                "kind",
                format!(
                    "{api_version} {kind} is not a roster kind; roster serves Organization, Membership, Invite and Team in {served}"
                ),
            );
            return false;
        };
        let problems = schema::validate_object(&self.validator, schema, object);
        let refused = problems.iter().any(|p| p.0 == Severity::Error);
        for (severity, rule, message) in problems {
            self.findings.push(
                severity,
                source,
                Some(kind),
                Some(namespace),
                name.as_deref(),
                &rule,
                message,
            );
        }
        if refused {
            // The API server would refuse it: it takes no part in the rest.
            if let Some(group) = self.namespaces.get_mut(namespace) {
                group.refused_organization |= kind == "Organization";
            }
        }
        !refused
    }

    /// Whether the same object was defined before (said so if it was).
    fn duplicate(&mut self, source: &Source, id: &(String, String, String)) -> bool {
        let Some(first) = self.identities.get(id) else {
            return false;
        };
        let (kind, namespace, name) = id;
        self.findings.push(
            Severity::Error,
            source,
            Some(kind),
            Some(namespace),
            Some(name),
            "duplicateObject",
            format!(
                "the same {kind} is also defined at {}:{}; the later one would overwrite it",
                first.file, first.line
            ),
        );
        true
    }

    /// Decodes the object into its kind and adds it to its namespace.
    fn add(
        &mut self,
        source: &Source,
        (kind, namespace, name): (String, String, String),
        object: Value,
    ) {
        let group = self.namespaces.entry(namespace.clone()).or_default();
        let decoded = match kind.as_str() {
            "Organization" => decode(object, source).map(|o| group.organizations.push(o)),
            "Membership" => decode(object, source).map(|o| group.memberships.push(o)),
            "Invite" => decode(object, source).map(|o| group.invites.push(o)),
            _ => decode(object, source).map(|o| group.teams.push(o)),
        };
        if let Err(e) = decoded {
            self.findings.push(
                Severity::Error,
                source,
                Some(&kind),
                Some(&namespace),
                Some(&name),
                "decode",
                format!("does not decode as a {kind}: {e}"),
            );
        }
    }
}

/// Splits a multi-document YAML stream at `---` lines; each document with the line (1-based) where
/// its content starts. Documents with nothing but comments are left out.
fn documents(text: &str) -> Vec<(usize, String)> {
    let content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            match start.take() {
                Some(s) => docs.push((s, std::mem::take(&mut current))),
                None => current.clear(),
            }
            if let Some(rest) = trimmed.strip_prefix("--- ") {
                if content(rest) {
                    start = Some(i + 1);
                }
                current.push_str(rest);
                current.push('\n');
            }
            continue;
        }
        if start.is_none() && content(line) {
            start = Some(i + 1);
        }
        current.push_str(line);
        current.push('\n');
    }
    if let Some(s) = start {
        docs.push((s, current));
    }
    docs
}

fn type_of(v: &Value) -> Option<(String, String)> {
    Some((
        v.get("apiVersion")?.as_str()?.to_string(),
        v.get("kind")?.as_str()?.to_string(),
    ))
}

fn decode<K: DeserializeOwned>(object: Value, source: &Source) -> Result<Checked<K>, String> {
    serde_json::from_value(object)
        .map(|object| Checked {
            object,
            source: source.clone(),
        })
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_start_at_their_first_line() {
        let text = "# header\n\napiVersion: v1\nkind: A\n---\n# c\nkind: B\n---\n\n---\nkind: C\n";
        let docs = documents(text);
        let lines: Vec<usize> = docs.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 7, 11]);
    }
}
