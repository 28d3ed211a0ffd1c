//! `roster check`: validates a folder of org manifests offline, the way a GitOps repository's CI would
//! before Argo CD or Flux applies it.
//!
//! Three layers, in the order the API server and roster apply them:
//! 1. **Each object on its own**: the structural schema of the CRD (`required`, `enum`, types,
//!    `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`, unknown fields), the CRD's
//!    CEL rules (with kube's client-side CEL validator), and decoding into the Rust types. An object
//!    that fails here would be refused by the API server, so it takes no part in what follows.
//! 2. **The webhook's invariants**, per org namespace: [`rules::authorize`] as a platform principal
//!    (what a GitOps controller is), for every object as if it were created in name order: one
//!    Organization per namespace, duplicates, allowed ClusterRoles and namespaces, pending admin
//!    invites, open invites.
//! 3. **The effective state**: [`rules::compute`] over the whole namespace with every object freshly
//!    created, and every Membership that would not become `Active` reported with the reason and
//!    message of its `Ready` condition (owner quorum, seats, duplicates, invites), plus the
//!    Organization's and Teams' conditions that need a person (team members who are not org members,
//!    more owners than `maxOwners`, a billing admin without a membership) as warnings.
//!
//! Nothing here decides anything the rules module does not: this module only feeds it.
//!
//! Documents of other kinds (Namespaces, Argo CD Applications, ...) are skipped and listed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::core::cel::Validator;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{Invite, Membership, MembershipPhase, Organization, Team};
use crate::rules::effective::condition;
use crate::rules::{
    self, Actor, Config, Decision, Operation, OrgIndex, OrgObjects, Redemption, invite_code,
};

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

/// What to check and against which installation.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Files and folders (searched recursively for `*.yaml` and `*.yml`).
    pub paths: Vec<PathBuf>,
    /// The namespace of objects that set none (like `kubectl apply -n`); default `default`.
    pub namespace: Option<String>,
    /// The installation's allow-lists, as `roster run` is configured.
    pub config: Config,
}

/// Where a document came from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Source {
    file: String,
    line: usize,
}

/// One roster object that passed the per-object checks.
struct Checked<K> {
    object: K,
    source: Source,
}

#[derive(Default)]
struct Namespace {
    organizations: Vec<Checked<Organization>>,
    memberships: Vec<Checked<Membership>>,
    invites: Vec<Checked<Invite>>,
    teams: Vec<Checked<Team>>,
    /// Whether an Organization was found here but refused by the per-object checks.
    refused_organization: bool,
}

struct Findings {
    list: Vec<Finding>,
    seen: HashSet<(String, usize, String, String, String, String)>,
}

impl Findings {
    #[allow(clippy::too_many_arguments)]
    fn push(
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

    fn on<K: Resource<DynamicType = ()>>(
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
}

/// Runs every check; never fails (unreadable files are findings).
pub fn check(options: &Options) -> Report {
    let mut findings = Findings {
        list: Vec::new(),
        seen: HashSet::new(),
    };
    let mut report = Report::default();
    let mut files = Vec::new();
    for path in &options.paths {
        collect_files(path, true, &mut files, &mut findings);
    }
    report.files = files.len();

    let schemas: BTreeMap<String, Value> = crate::crds::all()
        .into_iter()
        .filter_map(|(_, crd)| {
            let kind = crd.spec.names.kind.clone();
            let schema = crd
                .spec
                .versions
                .iter()
                .find(|v| v.name == crate::api::VERSION)?
                .schema
                .as_ref()?
                .open_api_v3_schema
                .as_ref()?;
            Some((kind, serde_json::to_value(schema).ok()?))
        })
        .collect();
    let validator = Validator::new();
    let default_ns = options
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());

    let mut namespaces: BTreeMap<String, Namespace> = BTreeMap::new();
    let mut identities: BTreeMap<(String, String, String), Source> = BTreeMap::new();
    for file in &files {
        let display = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                findings.push(
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
                continue;
            }
        };
        for (line, doc) in documents(&text) {
            let source = Source {
                file: display.clone(),
                line,
            };
            let value: Value = match serde_yaml::from_str(&doc) {
                Ok(v) => v,
                Err(e) => {
                    findings.push(
                        Severity::Error,
                        &source,
                        None,
                        None,
                        None,
                        "yaml",
                        format!("not valid YAML: {e}"),
                    );
                    continue;
                }
            };
            let items = match value {
                Value::Null => continue,
                Value::Object(ref o)
                    if o.get("kind").and_then(Value::as_str) == Some("List")
                        && o.get("items").is_some_and(Value::is_array) =>
                {
                    o["items"].as_array().cloned().unwrap_or_default()
                }
                other => vec![other],
            };
            for item in items {
                let Some((api_version, kind)) = type_of(&item) else {
                    findings.push(
                        Severity::Error,
                        &source,
                        None,
                        None,
                        None,
                        "object",
                        "a document must be a Kubernetes object with apiVersion and kind",
                    );
                    continue;
                };
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let group = api_version.split_once('/').map_or("", |(g, _)| g);
                if group != crate::api::GROUP {
                    report.skipped.push(Skipped {
                        file: source.file.clone(),
                        line,
                        api_version,
                        kind,
                        name,
                    });
                    continue;
                }
                report.objects += 1;
                let namespace = match item.pointer("/metadata/namespace").and_then(Value::as_str) {
                    Some(ns) => ns.to_string(),
                    None => {
                        if options.namespace.is_none() {
                            findings.push(
                                Severity::Warning,
                                &source,
                                Some(&kind),
                                None,
                                name.as_deref(),
                                "namespace",
                                format!(
                                    "metadata.namespace is not set: checked as namespace {default_ns} (pass --namespace, or set it, since roster kinds are namespaced and an org is one namespace)"
                                ),
                            );
                        }
                        default_ns.clone()
                    }
                };
                let ns_entry = namespaces.entry(namespace.clone()).or_default();
                let Some(schema) = schemas.get(&kind).filter(|_| {
                    api_version == format!("{}/{}", crate::api::GROUP, crate::api::VERSION)
                }) else {
                    findings.push(
                        Severity::Error,
                        &source,
                        Some(&kind),
                        Some(&namespace),
                        name.as_deref(),
                        "kind",
                        format!(
                            "{api_version} {kind} is not a roster kind; roster serves Organization, Membership, Invite and Team in {}/{}",
                            crate::api::GROUP,
                            crate::api::VERSION
                        ),
                    );
                    continue;
                };
                let mut object = item.clone();
                object["metadata"]["namespace"] = Value::String(namespace.clone());
                let problems = validate_object(&validator, schema, &mut object);
                let refused = problems.iter().any(|p| p.0 == Severity::Error);
                for (severity, rule, message) in problems {
                    findings.push(
                        severity,
                        &source,
                        Some(&kind),
                        Some(&namespace),
                        name.as_deref(),
                        &rule,
                        message,
                    );
                }
                if refused {
                    // The API server would refuse it: it takes no part in the rest.
                    ns_entry.refused_organization |= kind == "Organization";
                    continue;
                }
                let name = name.unwrap_or_default();
                let id = (kind.clone(), namespace.clone(), name.clone());
                if let Some(first) = identities.get(&id) {
                    findings.push(
                        Severity::Error,
                        &source,
                        Some(&kind),
                        Some(&namespace),
                        Some(&name),
                        "duplicateObject",
                        format!(
                            "the same {kind} is also defined at {}:{}; the later one would overwrite it",
                            first.file, first.line
                        ),
                    );
                    continue;
                }
                identities.insert(id, source.clone());
                let decoded = match kind.as_str() {
                    "Organization" => {
                        decode(object, &source).map(|o| ns_entry.organizations.push(o))
                    }
                    "Membership" => decode(object, &source).map(|o| ns_entry.memberships.push(o)),
                    "Invite" => decode(object, &source).map(|o| ns_entry.invites.push(o)),
                    _ => decode(object, &source).map(|o| ns_entry.teams.push(o)),
                };
                if let Err(e) = decoded {
                    findings.push(
                        Severity::Error,
                        &source,
                        Some(&kind),
                        Some(&namespace),
                        Some(&name),
                        "decode",
                        format!("does not decode as a {kind}: {e}"),
                    );
                }
            }
        }
    }

    let now = Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid time");
    let all_orgs: Vec<Organization> = namespaces
        .values()
        .filter_map(|n| {
            n.organizations
                .iter()
                .min_by_key(|c| c.object.name_any())
                .map(|c| created(&c.object, now))
        })
        .collect();
    for (ns, group) in &mut namespaces {
        check_namespace(ns, group, &all_orgs, &options.config, now, &mut findings);
    }
    report.namespaces = namespaces.keys().cloned().collect();

    let mut list = findings.list;
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
    report
}

fn collect_files(path: &Path, explicit: bool, out: &mut Vec<PathBuf>, findings: &mut Findings) {
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

/// The per-object checks; `object` comes back with schema defaults applied and without `status`.
fn validate_object(
    validator: &Validator,
    schema: &Value,
    object: &mut Value,
) -> Vec<(Severity, String, String)> {
    let mut problems = Vec::new();
    if let Some(o) = object.as_object_mut()
        && o.remove("status").is_some()
    {
        problems.push((
            Severity::Warning,
            "status".to_string(),
            "status is ignored when an object is applied; the operator computes it".to_string(),
        ));
    }
    match object.pointer("/metadata/name").and_then(Value::as_str) {
        None => problems.push((
            Severity::Error,
            "metadata".into(),
            "metadata.name: Required value".into(),
        )),
        Some(name) if !dns_subdomain(name) => problems.push((
            Severity::Error,
            "metadata".into(),
            format!(
                "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        )),
        _ => {}
    }
    if let Some(ns) = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        && !(dns_label(ns))
    {
        problems.push((
            Severity::Error,
            "metadata".into(),
            format!("metadata.namespace: Invalid value: {ns:?}: a lowercase RFC 1123 label must be at most 63 characters of lower case alphanumerics or '-', starting and ending with an alphanumeric"),
        ));
    }
    prune_nulls(schema, object);
    let mut structural = Vec::new();
    validate_schema(schema, object, "", &mut structural);
    problems.extend(
        structural
            .into_iter()
            .map(|(rule, message)| (Severity::Error, format!("schema/{rule}"), message)),
    );
    if let Err(errors) = validator.validate(schema, object, None) {
        for e in errors.iter() {
            // roster's CEL messages name their field already.
            let message = if e.field_path.is_empty() || e.message.starts_with(&e.field_path) {
                e.message.clone()
            } else {
                e.to_string()
            };
            problems.push((Severity::Error, "cel".into(), message));
        }
    }
    *object = kube::core::cel::apply_defaults(schema, object);
    problems
}

fn decode<K: DeserializeOwned>(object: Value, source: &Source) -> Result<Checked<K>, String> {
    serde_json::from_value(object)
        .map(|object| Checked {
            object,
            source: source.clone(),
        })
        .map_err(|e| e.to_string())
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// The API server drops `null` values of fields that are not nullable before it validates.
fn prune_nulls(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            map.retain(|k, v| {
                let sub = props.and_then(|p| p.get(k)).or(additional);
                !v.is_null() || sub.is_some_and(|s| s["nullable"] == Value::Bool(true))
            });
            for (k, v) in map.iter_mut() {
                if let Some(sub) = props.and_then(|p| p.get(k)).or(additional) {
                    prune_nulls(sub, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for v in items {
                    prune_nulls(sub, v);
                }
            }
        }
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join_path(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// What kube's CEL validator leaves out: the structural schema, with the API server's wording.
fn validate_schema(schema: &Value, value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let shown = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = json_type(value);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            out.push((
                "type".into(),
                format!(
                    "{shown}: Invalid value: \"{actual}\": {shown} in body must be of type {t}: \"{actual}\""
                ),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        out.push((
            "enum".into(),
            format!(
                "{shown}: Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        ));
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        out.push((
                            "required".into(),
                            format!("{}: Required value", join_path(path, r)),
                        ));
                    }
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            for (k, v) in map {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue; // implicit in every CRD, validated by the API server itself
                }
                let sub_path = join_path(path, k);
                match props.and_then(|p| p.get(k)).or(additional) {
                    Some(sub) => validate_schema(sub, v, &sub_path, out),
                    None if props.is_some() && !preserve => out.push((
                        "unknownField".into(),
                        format!("unknown field \"{sub_path}\": the {} schema does not declare it (check the spelling and indentation)", if path.is_empty() { "object's" } else { "field's" }),
                    )),
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                out.push((
                    "minItems".into(),
                    format!("{shown} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                out.push((
                    "maxItems".into(),
                    format!(
                        "{shown}: Too many: {}: must have at most {max} items",
                        items.len()
                    ),
                ));
            }
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate_schema(sub, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                out.push((
                    "minLength".into(),
                    format!("{shown} in body should be at least {min} chars long"),
                ));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                out.push((
                    "maxLength".into(),
                    format!("{shown}: Too long: may not be more than {max} characters"),
                ));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                out.push((
                    "minimum".into(),
                    format!("{shown} in body should be greater than or equal to {min}"),
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                out.push((
                    "maximum".into(),
                    format!("{shown} in body should be less than or equal to {max}"),
                ));
            }
            let int32 = schema.get("format").and_then(Value::as_str) == Some("int32");
            if int32 && n.as_i64().is_none_or(|i| i32::try_from(i).is_err()) {
                out.push((
                    "format".into(),
                    format!("{shown} in body must be a 32-bit integer"),
                ));
            }
        }
        _ => {}
    }
}

/// Gives an object what the API server would on create, so the rules see a fresh object.
fn created<K: Resource<DynamicType = ()> + Clone>(object: &K, now: Timestamp) -> K {
    let mut o = object.clone();
    let kind = K::kind(&());
    let meta = o.meta_mut();
    meta.creation_timestamp = Some(Time(now));
    meta.generation = Some(1);
    meta.uid = Some(format!(
        "roster-check:{kind}:{}:{}",
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default()
    ));
    o
}

/// The webhook's verdict on one create, as a platform principal (a GitOps controller).
fn push_decision<K: Resource<DynamicType = ()>>(
    findings: &mut Findings,
    c: &Checked<K>,
    decision: Decision,
) {
    if let Some(denial) = decision.denial {
        findings.on(
            Severity::Error,
            c,
            denial.reason.as_str(),
            format!("the admission webhook would refuse it: {}", denial.message),
        );
    }
}

/// The code `roster check` assumes every redemption proves: the real one exists only in the cluster.
const UNVERIFIED_CODE: &str = "UNVERIFIED";

/// `m` with a proof of [`UNVERIFIED_CODE`] for its own username, so that the rules judge everything
/// about the redemption but the code.
fn with_right_proof(m: &Membership, invites: &[Invite]) -> Membership {
    let mut m = m.clone();
    if let (Some(r), Some(user)) = (m.spec.invite.as_mut(), m.spec.user.as_deref()) {
        let namespace = invites
            .iter()
            .find(|i| i.name_any() == r.name)
            .and_then(|i| i.namespace())
            .unwrap_or_default();
        r.proof = Some(invite_code::proof(
            UNVERIFIED_CODE,
            &namespace,
            &r.name,
            user,
        ));
    }
    m
}

/// Every roster object in an excluded namespace: the webhook refuses each create, and an
/// Organization that got there anyway grants nothing.
fn report_excluded(ns: &str, group: &Namespace, config: &Config, findings: &mut Findings) {
    fn each<K: Resource<DynamicType = ()>>(
        objects: &[Checked<K>],
        ns: &str,
        config: &Config,
        findings: &mut Findings,
    ) {
        for c in objects {
            if let Err(denial) = rules::org_namespace(config, ns, &K::kind(&())) {
                findings.on(
                    Severity::Error,
                    c,
                    denial.reason.as_str(),
                    format!("the admission webhook would refuse it: {}", denial.message),
                );
            }
        }
    }
    each(&group.organizations, ns, config, findings);
    each(&group.memberships, ns, config, findings);
    each(&group.invites, ns, config, findings);
    each(&group.teams, ns, config, findings);
}

fn check_namespace(
    ns: &str,
    group: &mut Namespace,
    all_orgs: &[Organization],
    config: &Config,
    now: Timestamp,
    findings: &mut Findings,
) {
    // Objects applied together: creation time `now` for all, so the rules break ties by name.
    group.organizations.sort_by_key(|c| c.object.name_any());
    group.memberships.sort_by_key(|c| c.object.name_any());
    group.invites.sort_by_key(|c| c.object.name_any());
    group.teams.sort_by_key(|c| c.object.name_any());
    for c in &mut group.organizations {
        c.object = created(&c.object, now);
    }
    for c in &mut group.memberships {
        c.object = created(&c.object, now);
    }
    for c in &mut group.invites {
        c.object = created(&c.object, now);
    }
    for c in &mut group.teams {
        c.object = created(&c.object, now);
    }
    let platform = Actor {
        username: "roster-check".into(),
        groups: vec!["system:masters".into()],
        platform: true,
    };
    let ctx = rules::Context {
        now,
        removals_last_hour: 0,
        namespace_deleting: false,
    };

    report_excluded(ns, group, config, findings);
    // One Organization per namespace; the first (by name) is the organization.
    let org = group.organizations.first().map(|c| c.object.clone());
    for (i, c) in group.organizations.iter().enumerate() {
        let index = match i {
            0 => OrgIndex::default(),
            _ => OrgIndex::new(org.as_ref(), [], []),
        };
        let op = Operation::CreateOrganization(&c.object.spec);
        push_decision(
            findings,
            c,
            rules::authorize(&index, config, &platform, &op, &ctx),
        );
    }
    if let Some(c) = group.organizations.first() {
        let orgs: Vec<&Organization> = all_orgs.iter().collect();
        let claims = crate::access::claims(&c.object, &orgs, &config.excluded_namespaces);
        for (namespace, why) in claims.refused {
            if !config.excluded_namespaces.contains(&namespace) {
                findings.on(
                    Severity::Error,
                    c,
                    "NamespaceClaim",
                    format!(
                        "spec.access.namespaces lists {namespace}, which would get no access: {why}"
                    ),
                );
            }
        }
    }
    let roster_objects = group.memberships.len() + group.invites.len() + group.teams.len();
    // Reported once, on the first object in file order, rather than on every Membership.
    let first = group
        .memberships
        .iter()
        .map(|c| (&c.source, "Membership", c.object.name_any()))
        .chain(
            group
                .invites
                .iter()
                .map(|c| (&c.source, "Invite", c.object.name_any())),
        )
        .chain(
            group
                .teams
                .iter()
                .map(|c| (&c.source, "Team", c.object.name_any())),
        )
        .min_by(|a, b| (&a.0.file, a.0.line).cmp(&(&b.0.file, b.0.line)));
    let mut org_missing_reported = false;
    if org.is_none()
        && let Some((source, kind, name)) = first
    {
        org_missing_reported = true;
        let why = if group.refused_organization {
            "its Organization is refused (see above)"
        } else {
            "there is no Organization for it in the checked files"
        };
        findings.push(
            Severity::Error,
            source,
            Some(kind),
            Some(ns),
            Some(&name),
            "OrganizationMissing",
            format!(
                "namespace {ns} holds {roster_objects} roster object(s) but {why}: its Memberships would stay Pending"
            ),
        );
    }

    // Invite codes exist only once the operator generates them: assume each redemption carries the
    // right proof (of a stand-in code), and say that this could not be checked.
    let invites: Vec<Invite> = group.invites.iter().map(|c| c.object.clone()).collect();
    let codes: BTreeMap<String, String> = invites
        .iter()
        .map(|i| (i.name_any(), UNVERIFIED_CODE.to_string()))
        .collect();
    let assumed: Vec<Membership> = group
        .memberships
        .iter()
        .map(|c| with_right_proof(&c.object, &invites))
        .collect();
    for c in &group.memberships {
        if let Some(r) = &c.object.spec.invite {
            findings.on(
                Severity::Warning,
                c,
                "InviteCodeUnverified",
                format!(
                    "redeems Invite {} with a proof of a code that exists only once the operator generates it, so it cannot be checked offline (people redeem invites with `kubectl roster join`)",
                    r.name
                ),
            );
        }
    }

    let memberships: Vec<&Membership> = assumed.iter().collect();
    let teams: Vec<Team> = group.teams.iter().map(|c| c.object.clone()).collect();
    let effective = rules::compute(
        OrgObjects {
            organization: org.as_ref(),
            memberships: &memberships,
            invites: &invites,
            teams: &teams,
            invite_codes: &codes,
        },
        now,
    );

    // The Organization's conditions.
    let quorum_short = match (group.organizations.first(), &effective.organization) {
        (Some(c), Some(status)) => {
            let mut short = false;
            for cond in status.conditions.iter().filter(|c| c.status == "False") {
                match cond.type_.as_str() {
                    condition::OWNER_QUORUM => {
                        short = true;
                        let waiting = effective
                            .memberships
                            .values()
                            .filter(|e| {
                                rules::conditions::find(&e.status.conditions, condition::READY)
                                    .is_some_and(|r| r.reason == "OwnerQuorumNotMet")
                            })
                            .count();
                        let min = c.object.spec.policy.min_owners;
                        let mut message = format!(
                            "spec.policy.minOwners is {min}: {} [{}]",
                            cond.message, cond.reason
                        );
                        if waiting > 0 {
                            message.push_str(&format!(
                                "; all {waiting} Membership(s) would stay Pending (OwnerQuorumNotMet)"
                            ));
                        }
                        findings.on(Severity::Error, c, "OwnerQuorum", message);
                    }
                    condition::OWNERS_WITHIN_TARGET => {
                        findings.on(Severity::Warning, c, &cond.reason, cond.message.clone())
                    }
                    condition::BILLING_ADMIN => {
                        findings.on(Severity::Warning, c, "BillingAdmin", cond.message.clone())
                    }
                    _ => {}
                }
            }
            short
        }
        _ => false,
    };

    // Memberships that would not become Active.
    for c in &group.memberships {
        let Some(e) = effective.memberships.get(&c.object.name_any()) else {
            continue;
        };
        if e.status.phase == Some(MembershipPhase::Active) {
            continue;
        }
        let ready = rules::conditions::find(&e.status.conditions, condition::READY);
        let (reason, message) = ready.map_or(("NotActive", String::new()), |r| {
            (r.reason.as_str(), r.message.clone())
        });
        if (reason == "OwnerQuorumNotMet" && quorum_short)
            || (reason == "OrganizationMissing" && org_missing_reported)
        {
            continue;
        }
        let phase = e.status.phase.map_or("Pending", |p| match p {
            MembershipPhase::Active => "Active",
            MembershipPhase::Pending => "Pending",
            MembershipPhase::Denied => "Denied",
        });
        findings.on(
            Severity::Error,
            c,
            reason,
            format!("would stay {phase}: {message}"),
        );
    }

    // Invites and Teams.
    for c in &group.invites {
        let Some(status) = effective.invites.get(&c.object.name_any()) else {
            continue;
        };
        if let Some(ready) = rules::conditions::find(&status.conditions, condition::READY) {
            match ready.reason.as_str() {
                "OpenInvitesDisabled" => {
                    findings.on(Severity::Error, c, &ready.reason, ready.message.clone())
                }
                "TTLCapped" => {
                    findings.on(Severity::Warning, c, &ready.reason, ready.message.clone())
                }
                _ => {}
            }
        }
    }
    for c in &group.teams {
        let Some(status) = effective.teams.get(&c.object.name_any()) else {
            continue;
        };
        for cond in status.conditions.iter().filter(|c| c.status == "False") {
            if cond.reason == "MembersNotInOrganization" || cond.reason == "OwnerNotInOrganization"
            {
                findings.on(Severity::Warning, c, &cond.reason, cond.message.clone());
            }
        }
    }

    // The webhook's invariants for each create, in name order, against the effective state of
    // what came before it.
    let with_status: Vec<Membership> = memberships
        .iter()
        .map(|&m| {
            let mut m = m.clone();
            m.status = effective
                .memberships
                .get(&m.name_any())
                .map(|e| e.status.clone());
            m
        })
        .collect();
    let invites_with_status: Vec<Invite> = invites
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i.status = effective.invites.get(&i.name_any()).cloned();
            i
        })
        .collect();
    for (i, c) in group.memberships.iter().enumerate() {
        let before = &with_status[..i];
        // For a redemption, the invite as it was before this Membership used it.
        let invite_before = c.object.spec.invite.as_ref().and_then(|r| {
            let earlier = rules::compute(
                OrgObjects {
                    organization: org.as_ref(),
                    memberships: &memberships[..i],
                    invites: &invites,
                    teams: &[],
                    invite_codes: &codes,
                },
                now,
            );
            let mut invite = invites.iter().find(|inv| inv.name_any() == r.name)?.clone();
            invite.status = earlier.invites.get(&r.name).cloned();
            Some(invite)
        });
        let index = OrgIndex::new(org.as_ref(), before, &invites_with_status);
        let op = Operation::CreateMembership {
            spec: &assumed[i].spec,
            redemption: c.object.spec.invite.as_ref().map(|_| Redemption {
                invite: invite_before.as_ref(),
                code: Some(UNVERIFIED_CODE),
            }),
        };
        push_decision(
            findings,
            c,
            rules::authorize(&index, config, &platform, &op, &ctx),
        );
    }
    for (i, c) in group.invites.iter().enumerate() {
        let index = OrgIndex::new(org.as_ref(), &with_status, &invites_with_status[..i]);
        let op = Operation::CreateInvite(&c.object.spec);
        push_decision(
            findings,
            c,
            rules::authorize(&index, config, &platform, &op, &ctx),
        );
    }
    let index = OrgIndex::new(org.as_ref(), &with_status, &invites_with_status);
    for c in &group.teams {
        let op = Operation::CreateTeam(&c.object.spec);
        push_decision(
            findings,
            c,
            rules::authorize(&index, config, &platform, &op, &ctx),
        );
    }
}

/// The installation config for `roster check`, from the same flags as `roster run`.
pub fn config(allowed_cluster_roles: &[String], excluded_namespaces: &[String]) -> Config {
    let set = |v: &[String]| -> BTreeSet<String> { v.iter().cloned().collect() };
    Config {
        allowed_cluster_roles: set(allowed_cluster_roles),
        excluded_namespaces: set(excluded_namespaces),
        ..Config::default()
    }
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

    #[test]
    fn structural_schema_errors_read_like_the_api_servers() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": { "type": "string", "enum": ["owner", "member"] },
                "n": { "type": "integer", "minimum": 1.0, "format": "int32" },
                "list": { "type": "array", "maxItems": 1, "items": { "type": "string", "maxLength": 2 } }
            }
        });
        let mut out = Vec::new();
        validate_schema(
            &schema,
            &serde_json::json!({ "role": "boss", "n": 0, "list": ["abc", "d"], "extra": 1 }),
            "spec",
            &mut out,
        );
        let mut rules: Vec<&str> = out.iter().map(|(r, _)| r.as_str()).collect();
        rules.sort();
        assert_eq!(
            rules,
            ["enum", "maxItems", "maxLength", "minimum", "unknownField"]
        );
        assert!(
            out.iter()
                .any(|(_, m)| m.contains("spec.role: Unsupported value: \"boss\""))
        );
        let mut out = Vec::new();
        validate_schema(&schema, &serde_json::json!({}), "spec", &mut out);
        assert_eq!(out[0].1, "spec.role: Required value");
    }
}
