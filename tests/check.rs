//! `roster check` as a GitOps repository's CI runs it: the built binary on folders of manifests.
//!
//! Each folder under tests/fixtures/check/ is a broken organization that must be caught with a message
//! naming the file, the object and the rule; every folder in examples/ must pass.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use roster::api::{Invite, InvitePhase, Membership, MembershipPhase, Organization, Team};
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn roster_check(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .current_dir(repo())
        .arg("check")
        .args(args)
        .output()
        .expect("run roster check");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json_report(path: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--output", "json", path];
    args.extend_from_slice(extra);
    let run = roster_check(&args);
    let report = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("JSON report for {path}: {e}\n{}{}", run.stdout, run.stderr));
    (run.code, report)
}

/// One broken folder: what must be reported, where, and under which rule.
struct Case {
    folder: &'static str,
    severity: &'static str,
    file: &'static str,
    object: &'static str,
    rule: &'static str,
    message: &'static str,
}

const CASES: &[Case] = &[
    Case {
        folder: "last-owner-missing",
        severity: "error",
        file: "organization.yaml",
        object: "Organization shop/shop",
        rule: "OwnerQuorum",
        message: "no effective owner",
    },
    Case {
        folder: "duplicate-membership",
        severity: "error",
        file: "memberships.yaml",
        object: "Membership shop/ada-lovelace",
        rule: "Duplicate",
        message: "user ada@shop.example already has Membership ada",
    },
    Case {
        folder: "seats-exceeded",
        severity: "error",
        file: "all.yaml",
        object: "Membership shop/cy",
        rule: "SeatLimitReached",
        message: "all 2 seats (spec.policy.maxMembers) are taken",
    },
    Case {
        folder: "invalid-enum",
        severity: "error",
        file: "superuser.yaml",
        object: "Membership shop/root",
        rule: "schema/enum",
        message: "spec.role: Unsupported value: \"superuser\"",
    },
    Case {
        folder: "two-team-owners",
        severity: "error",
        file: "team.yaml",
        object: "Team shop/checkout",
        rule: "cel",
        message: "spec.members must have exactly one member with role owner",
    },
    Case {
        folder: "owner-invite",
        severity: "error",
        file: "invite.yaml",
        object: "Invite shop/co-founder",
        rule: "cel",
        message: "spec.role: an invite cannot grant owner",
    },
    Case {
        folder: "two-organizations",
        severity: "error",
        file: "shop-eu.yaml",
        object: "Organization shop/shop-eu",
        rule: "OrganizationExists",
        message: "this namespace already holds Organization shop",
    },
    Case {
        folder: "invite-max-uses",
        severity: "error",
        file: "all.yaml",
        object: "Membership shop/cy",
        rule: "InviteExhausted",
        message: "Invite link has no uses left",
    },
    Case {
        folder: "forbidden-access",
        severity: "error",
        file: "all.yaml",
        object: "Organization shop/shop",
        rule: "ExcludedNamespace",
        message: "kube-system, which the installer excluded",
    },
    Case {
        folder: "excluded-org-namespace",
        severity: "error",
        file: "all.yaml",
        object: "Organization kube-system/sneaky",
        rule: "ExcludedNamespace",
        message: "namespace kube-system is excluded by the installer",
    },
    Case {
        folder: "excluded-org-namespace",
        severity: "error",
        file: "all.yaml",
        object: "Membership kube-system/ada",
        rule: "ExcludedNamespace",
        message: "never org namespaces",
    },
    Case {
        folder: "typos",
        severity: "error",
        file: "all.yaml",
        object: "Organization shop/shop",
        rule: "schema/unknownField",
        message: "unknown field \"spec.polcy\"",
    },
    Case {
        folder: "typos",
        severity: "error",
        file: "all.yaml",
        object: "Membership shop/Bob",
        rule: "schema/required",
        message: "spec.role: Required value",
    },
    Case {
        folder: "typos",
        severity: "error",
        file: "all.yaml",
        object: "Membership shop/cy",
        rule: "kind",
        message: "roster.dev/v1beta1 Membership is not a roster kind",
    },
    Case {
        folder: "typos",
        severity: "error",
        file: "all.yaml",
        object: "Membership shop/ada",
        rule: "OrganizationMissing",
        message: "its Organization is refused",
    },
    Case {
        folder: "team-cluster-role-not-mapped",
        severity: "error",
        file: "all.yaml",
        object: "Team shop/checkout",
        rule: "ClusterRoleNotMapped",
        message: "spec.access.clusterRoles names edit, which the Organization",
    },
    Case {
        folder: "team-member-not-in-org",
        severity: "warning",
        file: "all.yaml",
        object: "Team shop/checkout",
        rule: "MembersNotInOrganization",
        message: "no effective Membership for stranger@elsewhere.example",
    },
];

#[test]
fn every_broken_folder_is_caught_naming_the_file_the_object_and_the_rule() {
    let mut problems = Vec::new();
    for case in CASES {
        let folder = format!("tests/fixtures/check/{}", case.folder);
        let file = format!("{folder}/{}", case.file);
        let run = roster_check(&[&folder]);
        let want_code = if case.severity == "error" { 1 } else { 0 };
        if run.code != want_code {
            problems.push(format!(
                "{}: exit code {} (want {want_code})\n{}{}",
                case.folder, run.code, run.stdout, run.stderr
            ));
        }
        // Text: `FILE:LINE: error: Kind ns/name: [rule] message`.
        let hit = run.stdout.lines().any(|l| {
            l.starts_with(&format!("{file}:"))
                && l.contains(&format!(
                    ": {}: {}: [{}] ",
                    case.severity, case.object, case.rule
                ))
                && l.contains(case.message)
        });
        if !hit {
            problems.push(format!(
                "{}: no {} line for {} [{}] containing {:?} in {file}:\n{}",
                case.folder, case.severity, case.object, case.rule, case.message, run.stdout
            ));
        }
        // JSON: the same finding, structured.
        let (code, report) = json_report(&folder, &[]);
        assert_eq!(code, want_code, "{}: JSON exit code", case.folder);
        let found = report["findings"].as_array().unwrap().iter().any(|f| {
            f["file"] == file.as_str()
                && f["severity"] == case.severity
                && f["rule"] == case.rule
                && format!(
                    "{} {}/{}",
                    f["kind"].as_str().unwrap_or_default(),
                    f["namespace"].as_str().unwrap_or_default(),
                    f["name"].as_str().unwrap_or_default()
                ) == case.object
                && f["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(case.message))
                && f["line"].as_u64().is_some_and(|l| l > 0)
        });
        if !found {
            problems.push(format!(
                "{}: the JSON report lacks the finding: {report:#}",
                case.folder
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn every_fixture_folder_is_a_case() {
    let dir = repo().join("tests/fixtures/check");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            CASES.iter().any(|c| c.folder == name),
            "tests/fixtures/check/{name} has no case in tests/check.rs"
        );
    }
}

#[test]
fn a_broken_folder_reports_only_what_is_wrong() {
    // The last owner missing is one finding on the Organization, not one per waiting Membership.
    let (_, report) = json_report("tests/fixtures/check/last-owner-missing", &[]);
    assert_eq!(report["errors"], 1, "{report:#}");
    // A refused object takes no part in the cross-object checks: the owner invite is the only error.
    let (_, report) = json_report("tests/fixtures/check/owner-invite", &[]);
    assert_eq!(report["errors"], 1, "{report:#}");
    // Redemptions cannot be verified offline: said as a warning, besides the exhausted invite.
    let (_, report) = json_report("tests/fixtures/check/invite-max-uses", &[]);
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"InviteCodeUnverified"), "{rules:?}");
    assert!(
        !report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "bob" && f["severity"] == "error"),
        "the first redemption is fine: {report:#}"
    );
}

#[test]
fn warnings_pass_unless_strict() {
    let folder = "tests/fixtures/check/team-member-not-in-org";
    let run = roster_check(&[folder]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("0 error(s), 1 warning(s)"),
        "{}",
        run.stdout
    );
    let strict = roster_check(&["--strict", folder]);
    assert_eq!(strict.code, 1, "{}", strict.stdout);
}

#[test]
fn the_installation_allow_lists_are_flags() {
    let folder = "tests/fixtures/check/forbidden-access";
    let run = roster_check(&[folder]);
    assert!(run.stdout.contains("[ExcludedNamespace]"), "{}", run.stdout);
    // With kube-system allowed, the ClusterRole outside the allow-list is what remains.
    let run = roster_check(&["--excluded-namespaces", "kube-public", folder]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("[ClusterRoleNotAllowed]") && run.stdout.contains("cluster-admin"),
        "{}",
        run.stdout
    );
    let run = roster_check(&[
        "--excluded-namespaces",
        "kube-public",
        "--allowed-cluster-roles",
        "admin,edit,view,cluster-admin",
        folder,
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

/// The identity providers the examples are bound to (examples/agency), as the platform names them
/// for `roster run` (and `make dev`); `roster check` takes the same flags.
const EXAMPLE_PROVIDERS: [&str; 4] = [
    "--identity-provider",
    "name=google,usernamePrefix=google:",
    "--identity-provider",
    "name=entra,usernamePrefix=entra:,tenantKey=entra.example/tid",
];

fn example_folders() -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    folders
}

#[test]
fn every_example_passes_without_errors_or_warnings() {
    let folders = example_folders();
    for expected in ["acme", "lab", "enterprise", "agency", "gitops"] {
        assert!(
            folders.iter().any(|f| f.ends_with(expected)),
            "examples/{expected} exists"
        );
    }
    for folder in folders.iter().map(|f| f.display().to_string()) {
        let mut args = vec!["--strict", &folder];
        args.extend(EXAMPLE_PROVIDERS);
        let run = roster_check(&args);
        assert_eq!(run.code, 0, "{folder}:\n{}{}", run.stdout, run.stderr);
    }
    // The whole tree at once, as the Argo CD Application syncs it.
    let mut args = vec!["--strict"];
    args.extend(EXAMPLE_PROVIDERS);
    let (code, report) = json_report("examples", &args);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        report["namespaces"],
        serde_json::json!(["acme", "fabrikam", "globex", "lovelace-lab"])
    );
    // Without the providers the agency's Invites and Organization are bound to, the webhook would
    // refuse them, and check says so; the other examples need none.
    let run = roster_check(&["examples/agency"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    for (file, object, field) in [
        (
            "invites.yaml",
            "Invite fabrikam/freelancer-rosa",
            "spec.identityProvider.name: identity provider google is not configured",
        ),
        (
            "organization.yaml",
            "Organization fabrikam/fabrikam",
            "spec.policy.selfJoin.identityProvider.name: identity provider entra is not configured",
        ),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains(object))
            .unwrap_or_else(|| panic!("{object} reported:\n{}", run.stdout));
        assert!(
            line.contains(file)
                && line.contains("[IdentityProviderNotConfigured]")
                && line.contains(field),
            "{line}"
        );
    }
    for folder in ["examples/acme", "examples/lab", "examples/enterprise"] {
        assert_eq!(roster_check(&["--strict", folder]).code, 0, "{folder}");
    }
    // Non-roster kinds are skipped, not errors: the Namespaces and the GitOps reference manifests.
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    for kind in ["Namespace", "Application", "GitRepository", "Kustomization"] {
        assert!(skipped.contains(&kind), "{kind} skipped: {skipped:?}");
    }
}

#[test]
fn the_examples_are_what_they_say() {
    let text = |p: &str| std::fs::read_to_string(repo().join(p)).unwrap();
    let acme = text("examples/acme/organization.yaml");
    assert!(acme.contains("maxMembers:"), "acme has seats");
    let invites = text("examples/acme/invites-and-teams.yaml");
    assert!(
        invites.contains("maxUses: 10"),
        "acme has an open multi-use link"
    );
    let lab = text("examples/lab/organization.yaml");
    assert!(lab.contains("maxOwners: 1"), "the lab has a single owner");
    let enterprise = text("examples/enterprise/organization.yaml");
    assert!(enterprise.contains("selfJoin:") && enterprise.contains("emailDomains:"));
    let agency = text("examples/agency/organization.yaml");
    assert!(
        agency.contains("selfJoin:") && agency.contains("identityProvider:"),
        "the agency binds selfJoin to an identity provider"
    );
    let invites = text("examples/agency/invites.yaml");
    assert!(
        invites.contains("name: google") && invites.contains("tenant:"),
        "the agency has invites bound to a provider and to a tenant"
    );
    assert!(text("examples/enterprise/00-namespaces.yaml").contains("name: globex-data"));
    let argo = text("examples/gitops/argocd-application.yaml");
    for want in ["ServerSideApply=true", "retry:", "path: examples"] {
        assert!(argo.contains(want), "the Argo CD Application has {want}");
    }
    let flux = text("examples/gitops/flux-kustomization.yaml");
    for want in [
        "kind: GitRepository",
        "kind: Kustomization",
        "path: ./examples",
    ] {
        assert!(flux.contains(want), "the Flux manifests have {want}");
    }
}

#[test]
fn unreadable_paths_and_bad_yaml_are_errors_too() {
    let dir = std::env::temp_dir().join(format!("roster-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: roster.dev/v1alpha1\nkind: [unclosed\n").unwrap();
    let run = roster_check(&[bad.to_str().unwrap(), "no/such/folder"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("bad.yaml:1: error: [yaml]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("no/such/folder: error: [read]"),
        "{}",
        run.stdout
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The YAML documents of an example folder, parsed.
fn example_objects(folder: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples").join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    out
}

/// What `roster check` accepts, the API server, the webhook and the controller accept too: every
/// example, moved into namespaces of its own, is admitted and converges (every Membership Active
/// with the role it asks for, the Organization Ready, teams resolved, invites usable).
#[tokio::test]
async fn every_example_converges_on_a_real_cluster_as_check_predicts() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let prefix = format!("ex{}", std::process::id());
    let rename = |ns: &str| format!("{prefix}-{ns}");
    let folders = ["acme", "lab", "enterprise", "agency"];
    let mut objects: Vec<Value> = Vec::new();
    let mut org_namespaces = Vec::new();
    for folder in folders {
        for mut o in example_objects(folder) {
            if o["kind"] == "Namespace" {
                let name = rename(o["metadata"]["name"].as_str().unwrap());
                o["metadata"]["name"] = name.clone().into();
                let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
                namespaces
                    .create(&PostParams::default(), &serde_json::from_value(o).unwrap())
                    .await
                    .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
                continue;
            }
            let ns = rename(o["metadata"]["namespace"].as_str().unwrap());
            o["metadata"]["namespace"] = ns.clone().into();
            if o["kind"] == "Organization" {
                org_namespaces.push(ns);
            }
            for path in ["/spec/access/namespaces"] {
                if let Some(list) = o.pointer_mut(path).and_then(Value::as_array_mut) {
                    for n in list {
                        *n = rename(n.as_str().unwrap()).into();
                    }
                }
            }
            objects.push(o);
        }
    }
    assert_eq!(org_namespaces.len(), folders.len());
    let refs: Vec<&str> = org_namespaces.iter().map(String::as_str).collect();
    let _operator = support::operator_with_webhook_and(&refs, &EXAMPLE_PROVIDERS);
    support::wait_for_webhook(&client, &org_namespaces[0]).await;

    // Applied as a GitOps controller would: in file order, retrying what is refused for now.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let mut pending = objects.clone();
    while !pending.is_empty() {
        let mut refused = Vec::new();
        let mut errors = Vec::new();
        for o in pending {
            let obj: kube::api::DynamicObject = serde_json::from_value(o.clone()).unwrap();
            let gvk = kube::api::GroupVersionKind::try_from(obj.types.as_ref().unwrap()).unwrap();
            let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
            let api = Api::<kube::api::DynamicObject>::namespaced_with(
                client.clone(),
                obj.metadata.namespace.as_deref().unwrap(),
                &ar,
            );
            let name = obj.metadata.name.clone().unwrap();
            if let Err(e) = api
                .patch(
                    &name,
                    &PatchParams::apply("examples").force(),
                    &Patch::Apply(&obj),
                )
                .await
            {
                errors.push(format!("{} {name}: {e}", gvk.kind));
                refused.push(o);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "examples still refused:\n{}",
            errors.join("\n")
        );
        pending = refused;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    for ns in &org_namespaces {
        support::eventually(
            &format!("the example in {ns} to converge"),
            Duration::from_secs(45),
            || async {
                let lp = ListParams::default();
                let memberships = Api::<Membership>::namespaced(client.clone(), ns)
                    .list(&lp)
                    .await
                    .ok()?
                    .items;
                let all_active = memberships.iter().all(|m| {
                    m.status.as_ref().is_some_and(|s| {
                        s.phase == Some(MembershipPhase::Active)
                            && s.effective_role == Some(m.spec.role)
                    })
                });
                let org = Api::<Organization>::namespaced(client.clone(), ns)
                    .list(&lp)
                    .await
                    .ok()?
                    .items
                    .pop()?;
                let org_status = org.status?;
                let ready = roster::rules::conditions::is_true(&org_status.conditions, "Ready");
                let teams = Api::<Team>::namespaced(client.clone(), ns)
                    .list(&lp)
                    .await
                    .ok()?
                    .items;
                let resolved = teams.iter().all(|t| {
                    t.status.as_ref().is_some_and(|s| {
                        roster::rules::conditions::is_true(&s.conditions, "MembersResolved")
                    })
                });
                let invites = Api::<Invite>::namespaced(client.clone(), ns)
                    .list(&lp)
                    .await
                    .ok()?
                    .items;
                let usable = invites.iter().all(|i| {
                    i.status
                        .as_ref()
                        .is_some_and(|s| s.phase == Some(InvitePhase::Pending))
                });
                (all_active
                    && ready
                    && resolved
                    && usable
                    && org_status.members as usize == memberships.len()
                    && org_status.pending_invites as usize == invites.len())
                .then_some(())
            },
        )
        .await;
    }
    // The conditions a person would look at are all good, too (billing admin, owner target).
    let mut not_true = BTreeMap::new();
    for ns in &org_namespaces {
        let org = Api::<Organization>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .pop()
            .unwrap();
        for c in org.status.unwrap().conditions {
            if c.status != "True" {
                not_true.insert(format!("{ns} {}", c.type_), c.message);
            }
        }
    }
    assert!(not_true.is_empty(), "{not_true:#?}");
}

/// kube's CEL validator checks only CEL rules; `roster check` adds the structural schema. Every case
/// here is refused by `roster check` and by the real API server, with the same words.
#[tokio::test]
async fn offline_schema_checks_agree_with_the_api_server() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "Organization",
            serde_json::json!({ "dataRegion": "Mars" }),
            "spec.dataRegion: Unsupported value: \"Mars\"",
        ),
        (
            "Organization",
            serde_json::json!({ "policy": { "minOwners": 0 } }),
            "spec.policy.minOwners in body should be greater than or equal to 1",
        ),
        (
            "Organization",
            serde_json::json!({ "policy": { "maxMembers": "ten" } }),
            "spec.policy.maxMembers in body must be of type integer",
        ),
        (
            "Organization",
            serde_json::json!({ "displayName": "x".repeat(257) }),
            "spec.displayName: Too long",
        ),
        (
            "Organization",
            serde_json::json!({ "billingAdmin": "" }),
            "spec.billingAdmin in body should be at least 1 chars long",
        ),
        (
            "Organization",
            serde_json::json!({ "policy": { "selfJoin": { "emailDomains": [] } } }),
            "spec.policy.selfJoin.emailDomains in body should have at least 1 items",
        ),
        (
            "Organization",
            serde_json::json!({ "access": { "namespaces": (0..101).map(|i| format!("ns-{i}")).collect::<Vec<_>>() } }),
            "spec.access.namespaces: Too many: 101: must have at most 100 items",
        ),
        (
            "Membership",
            serde_json::json!({ "user": "ada@x.example" }),
            "spec.role: Required value",
        ),
        (
            "Invite",
            serde_json::json!({ "role": "member", "maxUses": 10001 }),
            "spec.maxUses in body should be less than or equal to 10000",
        ),
        (
            "Team",
            serde_json::json!({ "members": [{ "user": "a", "role": "owner" }, { "user": "b", "role": "lead" }] }),
            "spec.members[1].role: Unsupported value: \"lead\"",
        ),
    ];
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "check-schema").await;
    let dir = std::env::temp_dir().join(format!("roster-check-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut problems = Vec::new();
    for (i, (kind, spec, message)) in cases.iter().enumerate() {
        let object = serde_json::json!({
            "apiVersion": "roster.dev/v1alpha1", "kind": kind,
            "metadata": { "name": format!("case-{i}"), "namespace": ns },
            "spec": spec,
        });
        let file = dir.join(format!("case-{i}.yaml"));
        std::fs::write(&file, serde_yaml::to_string(&object).unwrap()).unwrap();
        let (code, report) = json_report(file.to_str().unwrap(), &[]);
        let offline = report["findings"].as_array().unwrap().iter().any(|f| {
            f["rule"].as_str().is_some_and(|r| r.starts_with("schema/"))
                && f["message"].as_str().is_some_and(|m| m.contains(message))
        });
        if code != 1 || !offline {
            problems.push(format!("roster check misses {message:?}: {report:#}"));
        }
        let server = support::create_raw_dry_run(&client, &ns, object).await;
        match server {
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(message) => {}
            other => problems.push(format!(
                "the API server does not say {message:?}: {other:?}"
            )),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
