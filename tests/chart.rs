//! The Helm chart (`charts/roster`): `helm lint` and `helm template` with default and other values,
//! its CRDs and org ClusterRoles kept equal to the crate's, wrong values refused by the schema, the
//! CRDs' upgrade path (adopted, upgraded by `helm upgrade`, kept by `helm uninstall`) and a real
//! `helm install` into the local control plane. There are no nodes, so no pod ever runs: the
//! operator binary runs outside the cluster *as the chart's ServiceAccount* (a token from the
//! TokenRequest API), with the Deployment's own arguments, which proves the chart's RBAC is enough.
//! `helm uninstall` must then leave nothing behind and nothing stuck.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use roster::api::{Invite, InvitePhase, Membership, MembershipPhase, Organization};
use serde::Deserialize;
use serde_json::{Value, json};
use support::Operator;

const WAIT: Duration = Duration::from_secs(30);
/// Release name and namespace of the rendering tests (the full name is then `roster`).
const RELEASE: &str = "roster";
const RELEASE_NS: &str = "roster-system";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    repo().join("charts/roster")
}

/// The helm binary hack/build-control-plane.sh builds (second line of its output).
fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = Command::new(repo().join("hack/build-control-plane.sh"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run hack/build-control-plane.sh");
        assert!(out.status.success(), "hack/build-control-plane.sh failed");
        let dirs = String::from_utf8(out.stdout).unwrap();
        let dir = dirs.lines().nth(1).expect("the helm bin directory");
        PathBuf::from(dir).join("helm")
    })
}

/// Runs helm with its cache and configuration in a private directory (never the user's), kept in
/// the target directory between runs.
fn helm(args: &[&str]) -> Output {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    Command::new(helm_bin())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every document of a YAML stream, as JSON values (empty documents dropped).
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

/// `helm template` of the chart with `--set` values; panics with helm's message when it fails.
fn render(set: &[&str]) -> Vec<Value> {
    let out = try_render(set);
    assert!(
        out.status.success(),
        "helm template {set:?}: {}",
        text(&out)
    );
    documents(&String::from_utf8(out.stdout).unwrap())
}

fn try_render(set: &[&str]) -> Output {
    let chart = chart();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        RELEASE_NS,
    ];
    for s in set {
        args.extend(["--set", s]);
    }
    helm(&args)
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn container(docs: &[Value]) -> &Value {
    &find(docs, "Deployment", RELEASE)["spec"]["template"]["spec"]["containers"][0]
}

fn container_args(docs: &[Value]) -> Vec<String> {
    serde_json::from_value(container(docs)["args"].clone()).expect("args are strings")
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

fn rules(role: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(role["rules"].clone()).expect("rules parse as PolicyRules")
}

/// Whether `rules` allow `verb` on `group`/`resource` (optionally a named object), as RBAC would.
fn allows(
    rules: &[PolicyRule],
    verb: &str,
    group: &str,
    resource: &str,
    name: Option<&str>,
) -> bool {
    let has = |list: &Option<Vec<String>>, x: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|v| v == x || v == "*"))
    };
    rules.iter().any(|r| {
        (r.verbs.iter().any(|v| v == verb || v == "*"))
            && has(&r.api_groups, group)
            && has(&r.resources, resource)
            && match (&r.resource_names, name) {
                (None, _) => true,
                (Some(names), Some(n)) => names.is_empty() || names.iter().any(|x| x == n),
                (Some(names), None) => names.is_empty(),
            }
    })
}

/// The operator's ClusterRole never holds wildcards, `escalate`, `impersonate`, or write access to
/// ClusterRoles and ClusterRoleBindings, and `bind`s exactly `bindable`.
fn assert_least_privilege(rules: &[PolicyRule], bindable: &BTreeSet<String>) {
    for r in rules {
        for list in [&Some(r.verbs.clone()), &r.api_groups, &r.resources] {
            assert!(
                !list.iter().flatten().any(|v| v == "*"),
                "no wildcards in the operator's ClusterRole: {r:?}"
            );
        }
        for verb in ["escalate", "impersonate", "deletecollection"] {
            assert!(!r.verbs.iter().any(|v| v == verb), "{verb} granted: {r:?}");
        }
        if r.verbs.iter().any(|v| v == "bind") {
            assert_eq!(r.verbs, vec!["bind"], "bind stands alone: {r:?}");
            let names: BTreeSet<String> = r
                .resource_names
                .clone()
                .expect("bind is limited by resourceNames")
                .into_iter()
                .collect();
            assert_eq!(
                &names, bindable,
                "bind only on the ClusterRoles roster hands out"
            );
        }
    }
    for (verb, resource) in [
        ("create", "clusterroles"),
        ("patch", "clusterroles"),
        ("create", "clusterrolebindings"),
        ("create", "roles"),
        ("bind", "clusterroles"),
    ] {
        assert!(
            !allows(rules, verb, "rbac.authorization.k8s.io", resource, None),
            "{verb} {resource} (unnamed) must not be granted"
        );
    }
    assert!(!allows(
        rules,
        "bind",
        "rbac.authorization.k8s.io",
        "clusterroles",
        Some("cluster-admin")
    ));
    for (verb, group, resource) in [
        ("delete", "", "secrets"),
        ("update", "", "secrets"),
        ("create", "", "namespaces"),
        ("delete", "", "namespaces"),
        ("create", "roster.dev", "organizations"),
        ("update", "roster.dev", "memberships"),
        ("delete", "roster.dev", "organizations"),
        ("create", "", "pods"),
    ] {
        assert!(
            !allows(rules, verb, group, resource, None),
            "{verb} {group}/{resource} must not be granted"
        );
    }
}

/// What the operator does need (tests/chart.rs's install test proves it is also enough).
fn assert_operator_needs(rules: &[PolicyRule]) {
    for kind in ["organizations", "memberships", "invites", "teams"] {
        for verb in ["get", "list", "watch", "patch"] {
            assert!(
                allows(rules, verb, "roster.dev", kind, None),
                "{verb} {kind}"
            );
        }
        assert!(allows(
            rules,
            "patch",
            "roster.dev",
            &format!("{kind}/status"),
            None
        ));
        assert!(allows(
            rules,
            "update",
            "roster.dev",
            &format!("{kind}/finalizers"),
            None
        ));
        // What a deleted Organization left behind.
        assert_eq!(
            allows(rules, "delete", "roster.dev", kind, None),
            kind != "organizations",
            "delete {kind}"
        );
    }
    for verb in ["get", "list", "watch", "patch"] {
        assert!(
            allows(rules, verb, "", "namespaces", None),
            "{verb} namespaces"
        );
    }
    for verb in ["get", "list", "watch", "create"] {
        assert!(allows(rules, verb, "", "secrets", None), "{verb} secrets");
    }
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        let group = "rbac.authorization.k8s.io";
        assert!(
            allows(rules, verb, group, "rolebindings", None),
            "{verb} rolebindings"
        );
    }
    assert!(allows(rules, "create", "events.k8s.io", "events", None));
    assert!(allows(rules, "patch", "events.k8s.io", "events", None));
    assert!(allows(
        rules,
        "create",
        "authentication.k8s.io",
        "selfsubjectreviews",
        None
    ));
    assert!(allows(
        rules,
        "create",
        "authorization.k8s.io",
        "subjectaccessreviews",
        None
    ));
}

/// The policy that narrows roster's own writes: it selects roster's ServiceAccount only, and knows
/// the allow-list and the excluded namespaces (the release namespace among them).
fn assert_admission_policy(docs: &[Value]) {
    let policy = find(docs, "ValidatingAdmissionPolicy", RELEASE);
    let binding = find(docs, "ValidatingAdmissionPolicyBinding", RELEASE);
    assert_eq!(binding["spec"]["policyName"], RELEASE);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    let spec = policy["spec"].to_string();
    assert!(
        spec.contains("system:serviceaccount:roster-system:roster"),
        "{spec}"
    );
    for word in [
        "kube-system",
        "roster-system",
        "roster-org-owner",
        "edit",
        "roster.dev/invite-code",
    ] {
        assert!(spec.contains(word), "{word}: {spec}");
    }
}

fn bindable(extra: &[&str]) -> BTreeSet<String> {
    [
        "roster-org-owner",
        "roster-org-admin",
        "roster-org-member",
        "roster-org-viewer",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn chart_lints_with_default_and_other_values() {
    let chart = chart();
    for set in [
        vec![],
        vec![
            "replicas=2",
            "webhook.certManager.enabled=true",
            "watchNamespaces={team-a,team-b}",
            "selfService.bindAuthenticated=true",
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "platform.users={system:serviceaccount:argocd:argocd-application-controller}",
            "identityProviders[0].name=google",
            "identityProviders[0].usernamePrefix=google:",
            "identityProviders[1].name=entra",
            "identityProviders[1].usernamePrefix=entra:",
            "identityProviders[1].tenantKey=entra.example/tid",
        ],
        vec![
            "webhook.enabled=false",
            "replicas=3",
            "podDisruptionBudget.minAvailable=2",
        ],
        vec![
            "webhook.certManager.enabled=true",
            "webhook.certManager.issuerRef.kind=ClusterIssuer",
            "webhook.certManager.issuerRef.name=corp-ca",
        ],
        vec![
            "webhook.clientCA.secretName=apiserver-webhook-client-ca",
            "networkPolicy.enabled=true",
            "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
        ],
        vec![
            "networkPolicy.enabled=true",
            "networkPolicy.apiServer[0].cidr=10.0.0.10/32",
            "networkPolicy.apiServer[0].ports={6443}",
            "hostNetwork=true",
            "webhook.port=9443",
            "metrics.port=9090",
            "crds.keep=false",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        for s in &set {
            args.extend(["--set", s]);
        }
        let out = helm(&args);
        assert!(out.status.success(), "helm lint {set:?}:\n{}", text(&out));
    }
}

#[test]
fn default_values_render_one_restricted_replica_with_a_self_managed_webhook() {
    let docs = render(&[]);
    let deployment = find(&docs, "Deployment", RELEASE);
    assert_eq!(deployment["spec"]["replicas"], 1);
    let args = container_args(&docs);
    assert_eq!(args[0], "run");
    assert!(
        args.contains(&"--leader-elect".into()),
        "a rolling update never runs two controllers: {args:?}"
    );
    let without = container_args(&render(&["leaderElection.enabled=false"]));
    assert!(!without.contains(&"--leader-elect".into()), "{without:?}");
    assert_eq!(
        flag(&args, "--webhook-service"),
        Some("roster-system/roster:443")
    );
    assert_eq!(flag(&args, "--webhook-config-name"), Some(RELEASE));
    assert_eq!(flag(&args, "--webhook-timeout-seconds"), Some("5"));
    let slower = container_args(&render(&["webhook.timeoutSeconds=12"]));
    assert_eq!(flag(&slower, "--webhook-timeout-seconds"), Some("12"));
    assert_eq!(flag(&args, "--webhook-addr"), Some("0.0.0.0:8443"));
    assert_eq!(flag(&args, "--metrics-addr"), Some("0.0.0.0:8080"));
    assert_eq!(
        flag(&args, "--allowed-cluster-roles"),
        Some("admin,edit,view")
    );
    assert_eq!(
        flag(&args, "--excluded-namespaces"),
        Some("kube-system,kube-public,kube-node-lease")
    );
    assert_eq!(flag(&args, "--platform-groups"), Some("system:masters"));
    assert_eq!(
        flag(&args, "--platform-users"),
        Some("system:serviceaccount:roster-system:roster"),
        "roster's own ServiceAccount, whatever it learns at start"
    );
    // An empty list is passed as such, not left to roster's default (system:masters).
    let no_groups = container_args(&render(&["platform.groups=null"]));
    assert_eq!(flag(&no_groups, "--platform-groups"), Some(""));
    assert!(flag(&args, "--webhook-cert-dir").is_none());
    assert!(flag(&args, "--namespaces").is_none(), "all namespaces");
    // Self-managed certificates: cert-manager's default validity and renewal, a three-year CA.
    for (name, value) in [
        ("--webhook-cert-validity", "2160h"),
        ("--webhook-cert-renew-before", "720h"),
        ("--webhook-ca-validity", "26280h"),
    ] {
        assert_eq!(flag(&args, name), Some(value), "{args:?}");
    }
    let short = container_args(&render(&[
        "webhook.selfManaged.duration=20s",
        "webhook.selfManaged.renewBefore=10s",
        "webhook.selfManaged.caDuration=1m",
    ]));
    assert_eq!(flag(&short, "--webhook-cert-validity"), Some("20s"));
    assert_eq!(flag(&short, "--webhook-cert-renew-before"), Some("10s"));
    assert_eq!(flag(&short, "--webhook-ca-validity"), Some("1m"));

    // The restricted Pod Security profile.
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(&docs);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["serviceAccountName"], RELEASE);

    // Downward API, probes and ports.
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let env = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} is set"));
        assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], path);
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    let ports: Vec<(String, i64)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![("metrics".into(), 8080), ("webhook".into(), 8443)]
    );

    // The Service and the PodDisruptionBudget select the pods.
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let service = find(&docs, "Service", RELEASE);
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "the Service selects the pods");
    }
    let service_ports: Vec<(String, i64, String)> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["port"].as_i64().unwrap(),
                p["targetPort"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        service_ports,
        vec![
            ("webhook".into(), 443, "webhook".into()),
            ("metrics".into(), 8080, "metrics".into())
        ]
    );
    let pdb = find(&docs, "PodDisruptionBudget", RELEASE);
    assert_eq!(
        pdb["spec"]["selector"], deployment["spec"]["selector"],
        "the PDB covers the operator's pods"
    );
    assert_eq!(pdb["spec"]["maxUnavailable"], 1, "never blocks a drain");

    // Self-managed: roster writes the webhooks into the (empty) configuration the chart owns, and
    // may patch that one configuration only.
    let vwc = find(&docs, "ValidatingWebhookConfiguration", RELEASE);
    assert!(vwc["webhooks"].is_null(), "roster writes them: {vwc}");
    assert!(of_kind(&docs, "Certificate").is_empty());
    assert!(of_kind(&docs, "Issuer").is_empty());
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
    let operator = rules(find(&docs, "ClusterRole", RELEASE));
    assert_least_privilege(&operator, &bindable(&["admin", "edit", "view"]));
    assert_operator_needs(&operator);
    let group = "admissionregistration.k8s.io";
    let resource = "validatingwebhookconfigurations";
    assert!(allows(&operator, "patch", group, resource, Some(RELEASE)));
    assert!(!allows(
        &operator,
        "patch",
        group,
        resource,
        Some("another")
    ));
    assert!(!allows(&operator, "patch", group, resource, None));
    assert!(!allows(&operator, "create", group, resource, None));

    let lease_role = rules(find(&docs, "Role", RELEASE));
    assert!(allows(
        &lease_role,
        "create",
        "coordination.k8s.io",
        "leases",
        None
    ));
    assert!(allows(
        &lease_role,
        "update",
        "coordination.k8s.io",
        "leases",
        Some(RELEASE)
    ));
    assert!(!allows(
        &lease_role,
        "update",
        "coordination.k8s.io",
        "leases",
        Some("other")
    ));
    // Self-managed certificates: an empty Secret roster fills, and `update` on that name only.
    let shared = find(&docs, "Secret", "roster-webhook-self-managed");
    assert!(shared.get("data").is_none(), "rendered empty: {shared}");
    assert_eq!(
        roster::webhook::tls::shared_secret_name(RELEASE),
        "roster-webhook-self-managed"
    );
    let secret_update = |name| allows(&lease_role, "update", "", "secrets", Some(name));
    assert!(secret_update("roster-webhook-self-managed"));
    assert!(!secret_update("some-other-secret"));
    let binding = find(&docs, "ClusterRoleBinding", RELEASE);
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NS }])
    );
    assert!(
        of_kind(&docs, "ClusterRoleBinding")
            .iter()
            .all(|b| b["roleRef"]["name"] != "roster-self-service"),
        "self-service is bound only when asked"
    );
    assert_admission_policy(&docs);
    let off = render(&["admissionPolicy.enabled=false"]);
    assert!(of_kind(&off, "ValidatingAdmissionPolicy").is_empty());
    assert!(of_kind(&off, "ValidatingAdmissionPolicyBinding").is_empty());
    // Everything namespaced lands in the release namespace.
    for d in &docs {
        if let Some(ns) = d["metadata"]["namespace"].as_str() {
            assert_eq!(ns, RELEASE_NS, "{}", d["kind"]);
        }
    }
}

/// By default the webhook takes any caller and no NetworkPolicy is rendered; a client CA Secret makes
/// it accept only the API server's certificate, and the NetworkPolicy opens the two ports alone.
#[test]
fn a_client_ca_and_a_network_policy_restrict_who_calls_roster() {
    let docs = render(&[]);
    assert!(flag(&container_args(&docs), "--webhook-client-ca").is_none());
    assert!(of_kind(&docs, "NetworkPolicy").is_empty());

    let docs = render(&[
        "webhook.certManager.enabled=true",
        "webhook.clientCA.secretName=apiserver-webhook-client-ca",
        "networkPolicy.enabled=true",
        "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
    ]);
    let ca = flag(&container_args(&docs), "--webhook-client-ca")
        .expect("--webhook-client-ca")
        .to_string();
    let pod = &find(&docs, "Deployment", RELEASE)["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == "apiserver-webhook-client-ca")
        .expect("the client CA Secret is a volume");
    let mount = container(&docs)["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("and is mounted");
    assert_eq!(mount["readOnly"], true);
    assert_eq!(
        ca,
        format!("{}/ca.crt", mount["mountPath"].as_str().unwrap())
    );
    assert!(
        container(&docs)["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/var/run/roster/webhook-tls"),
        "the certificate's mount stays"
    );

    let policy = find(&docs, "NetworkPolicy", RELEASE);
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        find(&docs, "Deployment", RELEASE)["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    let ingress = policy["spec"]["ingress"].as_array().unwrap();
    let ports: Vec<&Value> = ingress.iter().map(|i| &i["ports"]).collect();
    assert_eq!(
        ports,
        [
            &json!([{ "port": "webhook", "protocol": "TCP" }]),
            &json!([{ "port": "metrics", "protocol": "TCP" }])
        ]
    );
    assert!(
        ingress[0].get("from").is_none(),
        "the API server's address varies"
    );
    assert_eq!(
        ingress[1]["from"],
        json!([{ "namespaceSelector": { "matchLabels": { "name": "monitoring" } } }])
    );
}

/// With `networkPolicy.apiServer`, egress is restricted too: to the API server's addresses and ports,
/// and DNS unless turned off; without, the policy is about ingress only.
#[test]
fn network_policy_egress_reaches_the_api_server_and_dns_only() {
    let ingress_only = render(&["networkPolicy.enabled=true"]);
    let policy = find(&ingress_only, "NetworkPolicy", RELEASE);
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(policy["spec"].get("egress").is_none(), "{policy}");

    let api_server = [
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer[0].cidr=10.0.0.10/32",
        "networkPolicy.apiServer[0].ports={443,6443}",
        "networkPolicy.apiServer[1].cidr=fd00:10:96::1/128",
        "networkPolicy.apiServer[1].ports={443}",
    ];
    let docs = render(&api_server);
    let spec = &find(&docs, "NetworkPolicy", RELEASE)["spec"];
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        spec["ingress"].as_array().unwrap().len(),
        2,
        "ingress stays as it was"
    );
    let tcp = |port: u16| json!({ "port": port, "protocol": "TCP" });
    let dns = json!({
        "ports": [{ "port": 53, "protocol": "UDP" }, { "port": 53, "protocol": "TCP" }],
        "to": [{
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
            "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } }
        }]
    });
    assert_eq!(
        spec["egress"],
        json!([
            { "to": [{ "ipBlock": { "cidr": "10.0.0.10/32" } }], "ports": [tcp(443), tcp(6443)] },
            { "to": [{ "ipBlock": { "cidr": "fd00:10:96::1/128" } }], "ports": [tcp(443)] },
            dns
        ])
    );

    let without_dns = render(&[&api_server[..], &["networkPolicy.dns.enabled=false"]].concat());
    let egress = &find(&without_dns, "NetworkPolicy", RELEASE)["spec"]["egress"];
    assert_eq!(egress.as_array().unwrap().len(), 2, "{egress}");
    let any_dns = render(&[&api_server[..], &["networkPolicy.dns.to=null"]].concat());
    let egress = &find(&any_dns, "NetworkPolicy", RELEASE)["spec"]["egress"];
    assert_eq!(
        egress[2],
        json!({ "ports": dns["ports"] }),
        "port 53 anywhere"
    );
}

/// The SMTP relay's settings reach roster as environment variables, the login only from the
/// Secret (never as an argument, which the process list shows); a private CA is mounted; with
/// egress restricted, `networkPolicy.extraEgress` opens the relay's port. Without `email.smtp.url`
/// nothing of it is rendered.
#[test]
fn email_values_reach_roster_from_a_secret_and_open_the_relay_port() {
    let env_of = |docs: &[Value]| -> BTreeMap<String, Value> {
        (container(docs)["env"].as_array().unwrap().iter())
            .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
            .collect()
    };
    let plain = render(&[]);
    assert!(
        !env_of(&plain)
            .keys()
            .any(|k| k.contains("SMTP") || k.contains("MAIL")),
        "no e-mail settings without email.smtp.url"
    );
    let docs = render(&[
        "email.smtp.url=smtp://relay.mail.svc:587",
        "email.from=Acme Platform <no-reply@platform.example>",
        "email.smtp.existingSecret=smtp-login",
        "email.smtp.caConfigMap=smtp-ca",
        "email.joinURLTemplate=https://portal.example/join?invite={invite}",
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer[0].cidr=10.0.0.10/32",
        "networkPolicy.apiServer[0].ports={6443}",
        "networkPolicy.extraEgress[0].cidr=10.20.0.5/32",
        "networkPolicy.extraEgress[0].ports={587}",
    ]);
    let env = env_of(&docs);
    assert_eq!(env["ROSTER_SMTP_URL"]["value"], "smtp://relay.mail.svc:587");
    assert_eq!(
        env["ROSTER_MAIL_FROM"]["value"],
        "Acme Platform <no-reply@platform.example>"
    );
    assert_eq!(
        env["ROSTER_JOIN_URL_TEMPLATE"]["value"],
        "https://portal.example/join?invite={invite}"
    );
    for (var, key) in [
        ("ROSTER_SMTP_USERNAME", "username"),
        ("ROSTER_SMTP_PASSWORD", "password"),
    ] {
        assert_eq!(
            env[var]["valueFrom"]["secretKeyRef"],
            json!({ "name": "smtp-login", "key": key }),
            "{var}"
        );
    }
    let args = container_args(&docs);
    assert!(
        !args
            .iter()
            .any(|a| a.contains("smtp") || a.contains("password")),
        "{args:?}"
    );
    let ca_file = env["ROSTER_SMTP_CA_FILE"]["value"].as_str().unwrap();
    let mount = (container(&docs)["volumeMounts"].as_array().unwrap().iter())
        .find(|m| m["name"] == "smtp-ca")
        .expect("the CA is mounted");
    assert!(
        ca_file.starts_with(mount["mountPath"].as_str().unwrap()),
        "{ca_file}"
    );
    let egress = &find(&docs, "NetworkPolicy", RELEASE)["spec"]["egress"];
    assert_eq!(
        egress[1],
        json!({ "to": [{ "ipBlock": { "cidr": "10.20.0.5/32" } }], "ports": [{ "port": 587, "protocol": "TCP" }] })
    );
}

/// On the node's network (a control plane that cannot reach pod IPs), roster listens on the ports
/// chosen for the node, and resolves cluster names as other pods do.
#[test]
fn host_network_runs_roster_on_the_node_with_its_own_ports() {
    let docs = render(&[]);
    let pod = &find(&docs, "Deployment", RELEASE)["spec"]["template"]["spec"];
    assert!(pod.get("hostNetwork").is_none(), "{pod}");
    assert!(pod.get("dnsPolicy").is_none(), "{pod}");

    let docs = render(&["hostNetwork=true", "webhook.port=9443", "metrics.port=9090"]);
    let pod = &find(&docs, "Deployment", RELEASE)["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    let args = container_args(&docs);
    assert_eq!(flag(&args, "--webhook-addr"), Some("0.0.0.0:9443"));
    assert_eq!(flag(&args, "--metrics-addr"), Some("0.0.0.0:9090"));
    let c = container(&docs);
    assert_eq!(
        c["ports"],
        json!([
            { "name": "metrics", "containerPort": 9090, "protocol": "TCP" },
            { "name": "webhook", "containerPort": 9443, "protocol": "TCP" }
        ])
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    // The Service still serves the webhook on 443 (the configuration's port) and finds the node's
    // port by name.
    let service = find(&docs, "Service", RELEASE);
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "webhook");
    assert_eq!(
        flag(&args, "--webhook-service"),
        Some("roster-system/roster:443")
    );
}

#[test]
fn two_replicas_elect_a_leader_and_cert_manager_owns_the_webhook() {
    let docs = render(&[
        "replicas=2",
        "webhook.certManager.enabled=true",
        "watchNamespaces={team-a,team-b}",
        "webhook.timeoutSeconds=12",
    ]);
    assert_eq!(find(&docs, "Deployment", RELEASE)["spec"]["replicas"], 2);
    let args = container_args(&docs);
    assert!(args.contains(&"--leader-elect".into()), "{args:?}");
    assert_eq!(flag(&args, "--lease-name"), Some(RELEASE));
    assert_eq!(flag(&args, "--namespaces"), Some("team-a,team-b"));
    assert!(flag(&args, "--webhook-service").is_none(), "{args:?}");
    assert!(flag(&args, "--webhook-config-name").is_none(), "{args:?}");
    assert!(
        flag(&args, "--webhook-timeout-seconds").is_none(),
        "the chart renders the timeout: {args:?}"
    );
    assert!(
        flag(&args, "--webhook-cert-validity").is_none(),
        "cert-manager's: {args:?}"
    );
    let cert_dir = flag(&args, "--webhook-cert-dir").expect("--webhook-cert-dir");

    // cert-manager issues the certificate into the Secret the pod mounts at the cert dir.
    assert!(
        of_kind(&docs, "Secret").is_empty(),
        "no self-managed Secret with cert-manager"
    );
    let certificate = find(&docs, "Certificate", "roster-webhook");
    let secret = certificate["spec"]["secretName"].as_str().unwrap();
    let pod = &find(&docs, "Deployment", RELEASE)["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == secret)
        .expect("the certificate's Secret is a volume");
    let mount = container(&docs)["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("and is mounted");
    assert_eq!(mount["mountPath"], cert_dir);
    assert_eq!(mount["readOnly"], true);
    let dns: Vec<&str> = certificate["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(dns.contains(&"roster.roster-system.svc"), "{dns:?}");
    let issuer = &certificate["spec"]["issuerRef"];
    find(
        &docs,
        issuer["kind"].as_str().unwrap(),
        issuer["name"].as_str().unwrap(),
    );

    // The chart's configuration is roster's own (as `roster webhook-config` prints it), with the CA
    // injected by cert-manager.
    let vwc = find(&docs, "ValidatingWebhookConfiguration", RELEASE);
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "roster-system/roster-webhook"
    );
    let expected = roster::webhook::config::configuration(
        RELEASE,
        &roster::webhook::config::Endpoint::Service {
            namespace: RELEASE_NS.into(),
            name: RELEASE.into(),
            port: 443,
        },
        None,
        &["team-a".into(), "team-b".into()],
        12,
    );
    assert_eq!(
        vwc["webhooks"],
        serde_json::to_value(expected.webhooks).unwrap()
    );
    let operator = rules(find(&docs, "ClusterRole", RELEASE));
    assert!(
        !allows(
            &operator,
            "patch",
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            Some(RELEASE)
        ),
        "roster writes no webhook configuration when cert-manager's is rendered"
    );
    assert_least_privilege(&operator, &bindable(&["admin", "edit", "view"]));

    // A chosen issuer replaces the self-signed one.
    let docs = render(&[
        "webhook.certManager.enabled=true",
        "webhook.certManager.issuerRef.kind=ClusterIssuer",
        "webhook.certManager.issuerRef.name=corp-ca",
    ]);
    assert!(of_kind(&docs, "Issuer").is_empty());
    assert_eq!(
        find(&docs, "Certificate", "roster-webhook")["spec"]["issuerRef"],
        json!({ "kind": "ClusterIssuer", "name": "corp-ca" })
    );
}

#[test]
fn other_values_bind_self_service_name_platform_principals_and_more_cluster_roles() {
    let docs = render(&[
        "selfService.bindAuthenticated=true",
        "platform.users={system:serviceaccount:argocd:argocd-application-controller,system:serviceaccount:flux-system:kustomize-controller}",
        "platform.groups={system:masters,platform-team}",
        "allowedClusterRoles={admin,edit,view,monitoring-view}",
        "excludedNamespaces={kube-system,argocd}",
        "metrics.serviceMonitor.enabled=true",
        "leaderElection.enabled=true",
    ]);
    let args = container_args(&docs);
    assert_eq!(
        flag(&args, "--platform-users"),
        Some(
            "system:serviceaccount:roster-system:roster,system:serviceaccount:argocd:argocd-application-controller,system:serviceaccount:flux-system:kustomize-controller"
        )
    );
    assert_eq!(
        flag(&args, "--platform-groups"),
        Some("system:masters,platform-team")
    );
    assert_eq!(
        flag(&args, "--allowed-cluster-roles"),
        Some("admin,edit,view,monitoring-view")
    );
    assert_eq!(
        flag(&args, "--excluded-namespaces"),
        Some("kube-system,argocd")
    );
    assert!(
        args.contains(&"--leader-elect".into()),
        "forced with one replica"
    );
    let operator = rules(find(&docs, "ClusterRole", RELEASE));
    assert_least_privilege(
        &operator,
        &bindable(&["admin", "edit", "view", "monitoring-view"]),
    );
    let self_service = of_kind(&docs, "ClusterRoleBinding")
        .into_iter()
        .find(|b| b["roleRef"]["name"] == "roster-self-service")
        .expect("roster-self-service is bound");
    assert_eq!(
        self_service["subjects"],
        json!([{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated" }])
    );
    let monitor = find(&docs, "ServiceMonitor", RELEASE);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");

    // Without the webhook: no port, no configuration, no rights on configurations.
    let docs = render(&["webhook.enabled=false"]);
    let args = container_args(&docs);
    assert!(args.contains(&"--webhook-addr=".into()), "{args:?}");
    assert!(of_kind(&docs, "ValidatingWebhookConfiguration").is_empty());
    assert!(of_kind(&docs, "Secret").is_empty(), "no certificate Secret");
    let service = find(&docs, "Service", RELEASE);
    assert_eq!(service["spec"]["ports"].as_array().unwrap().len(), 1);
    assert!(
        !rules(find(&docs, "ClusterRole", RELEASE))
            .iter()
            .any(|r| r.api_groups == Some(vec!["admissionregistration.k8s.io".into()]))
    );
}

/// `identityProviders` become one `--identity-provider` each, in the form roster reads; none by
/// default.
#[test]
fn identity_providers_are_passed_to_roster() {
    let args = container_args(&render(&[]));
    assert!(
        !args.contains(&"--identity-provider".to_string()),
        "{args:?}"
    );
    let docs = render(&[
        "identityProviders[0].name=google",
        "identityProviders[0].usernamePrefix=google:",
        "identityProviders[1].name=entra",
        "identityProviders[1].usernamePrefix=https://login.microsoftonline.com/#",
        "identityProviders[1].tenantKey=entra.example/tid",
    ]);
    let args = container_args(&docs);
    let given: Vec<&str> = args
        .iter()
        .zip(args.iter().skip(1))
        .filter(|(flag, _)| *flag == "--identity-provider")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(
        given,
        [
            "name=google,usernamePrefix=google:",
            "name=entra,usernamePrefix=https://login.microsoftonline.com/#,tenantKey=entra.example/tid",
        ]
    );
    let parsed: Vec<roster::rules::IdentityProvider> =
        given.iter().map(|v| v.parse().unwrap()).collect();
    let providers = roster::rules::IdentityProviders::new(parsed).expect("roster accepts them");
    let entra = providers.get("entra").unwrap();
    assert_eq!(entra.tenant_key.as_deref(), Some("entra.example/tid"));
}

/// The alerts query only series roster exports, scoped to the release namespace.
#[test]
fn prometheus_rule_alerts_on_metrics_roster_exports() {
    assert!(of_kind(&render(&[]), "PrometheusRule").is_empty());
    let docs = render(&["metrics.prometheusRule.enabled=true"]);
    let rule = find(&docs, "PrometheusRule", RELEASE);
    let alerts = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "RosterControllerNotRunning",
            "RosterOrganizationWithoutOwner",
            "RosterReconcileErrors",
            "RosterWebhookSlow",
            "RosterWebhookCertificateExpiresSoon"
        ]
    );
    // Every series name roster exposes: samples, and the families their # TYPE lines announce.
    // The certificate expiry appears once a certificate is served (a zero would read as expired).
    let metrics = roster::metrics::Metrics::default();
    metrics.set_certificate_expiry(
        roster::metrics::CertificateKind::Serving,
        std::time::SystemTime::now(),
    );
    let exposition = metrics.encode();
    let families: BTreeSet<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let exported = |series: &str| {
        ["", "_total", "_bucket", "_count", "_sum"]
            .iter()
            .any(|suffix| {
                series
                    .strip_suffix(suffix)
                    .is_some_and(|family| families.contains(family))
            })
    };
    for alert in alerts {
        let expr = alert["expr"].as_str().unwrap();
        let series: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("roster_"))
            .collect();
        assert!(!series.is_empty(), "{expr}");
        for s in series {
            assert!(
                exported(s),
                "{} queries {s}, which roster does not export",
                alert["alert"]
            );
        }
        assert!(
            expr.contains(&format!("namespace=\"{RELEASE_NS}\"")),
            "scoped to the release namespace: {expr}"
        );
        assert!(alert["annotations"]["description"].is_string());
    }
}

/// `helm test`: a pod running `roster self-test` with the operator's image, pod and container
/// security contexts, as a ServiceAccount that may only create Organizations in the namespace of the
/// dry run (what a dry run needs, and what roster's webhook always refuses it). All of it exists for
/// the test only: hooks, its RBAC weighted before the pod, deleted once the test succeeded.
#[test]
fn helm_test_runs_roster_self_test_with_least_privilege() {
    let docs = render(&[]);
    let name = "roster-self-test";
    let hooks: Vec<&Value> = docs
        .iter()
        .filter(|d| d["metadata"]["annotations"]["helm.sh/hook"] == "test")
        .collect();
    let kinds: Vec<&str> = hooks.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "Role", "RoleBinding", "Pod"]);
    let weight = |d: &Value| -> i32 {
        d["metadata"]["annotations"]["helm.sh/hook-weight"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    for d in &hooks {
        assert_eq!(d["metadata"]["name"], name, "{d}");
        assert_eq!(
            d["metadata"]["annotations"]["helm.sh/hook-delete-policy"],
            "before-hook-creation,hook-succeeded"
        );
        if d["kind"] != "Pod" {
            assert!(weight(d) < weight(hooks[3]), "{} before the pod", d["kind"]);
        }
    }
    assert!(
        weight(hooks[1]) <= weight(hooks[2]),
        "the Role before its binding"
    );

    let pod = &hooks[3]["spec"];
    let operator = &find(&docs, "Deployment", RELEASE)["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["serviceAccountName"], name);
    assert_eq!(pod["securityContext"], operator["securityContext"]);
    let (test, roster) = (&pod["containers"][0], &operator["containers"][0]);
    for field in ["image", "imagePullPolicy", "securityContext"] {
        assert_eq!(test[field], roster[field], "{field}");
    }
    assert_eq!(
        test["args"],
        json!(["self-test", "--namespace", RELEASE_NS])
    );
    // The Service, PodDisruptionBudget and NetworkPolicy select the operator's pods only.
    let selector = find(&docs, "Deployment", RELEASE)["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    let labels = &hooks[3]["metadata"]["labels"];
    assert!(
        selector.iter().any(|(k, v)| &labels[k] != v),
        "the test pod must not match the operator's selector: {labels}"
    );

    // The least a dry-run create needs: create on organizations, in the one namespace.
    let role = rules(hooks[1]);
    assert_eq!(role.len(), 1, "{role:?}");
    assert!(allows(&role, "create", "roster.dev", "organizations", None));
    for (verb, group, resource) in [
        ("get", "roster.dev", "organizations"),
        ("create", "roster.dev", "memberships"),
        ("get", "", "secrets"),
        ("create", "", "pods"),
    ] {
        assert!(
            !allows(&role, verb, group, resource, None),
            "{verb} {resource}"
        );
    }
    assert_eq!(hooks[1]["metadata"]["namespace"], RELEASE_NS);
    let binding = hooks[2];
    assert_eq!(
        binding["roleRef"],
        json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name })
    );
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": name, "namespace": RELEASE_NS }])
    );
    // Nothing outside the test runs as that ServiceAccount or is bound to it.
    for d in docs.iter().filter(|d| !hooks.contains(d)) {
        assert!(
            !d.to_string().contains(name),
            "{} {}",
            d["kind"],
            d["metadata"]["name"]
        );
    }

    // Watching namespaces, the dry run goes where the webhook applies: the first of them.
    let watching = render(&["watchNamespaces={team-a,team-b}"]);
    let in_ns = |kind: &str| find(&watching, kind, name)["metadata"]["namespace"].clone();
    assert_eq!(
        (in_ns("Role"), in_ns("RoleBinding")),
        (json!("team-a"), json!("team-a"))
    );
    assert_eq!(in_ns("Pod"), json!(RELEASE_NS));
    let args = &find(&watching, "Pod", name)["spec"]["containers"][0]["args"];
    assert_eq!(args, &json!(["self-test", "--namespace", "team-a"]));
    // Without the webhook there is nothing to prove.
    let off = render(&["webhook.enabled=false"]);
    assert!(off.iter().all(|d| d["metadata"]["name"] != name));
}

#[test]
fn wrong_values_are_refused_with_the_reason() {
    for (set, expected) in [
        (vec!["replicas=two"], "/replicas"),
        (vec!["replicas=two"], "want integer"),
        (vec!["log.format=xml"], "/log/format"),
        (vec!["webhook.timeoutSeconds=0"], "/webhook/timeoutSeconds"),
        (vec!["crds.enabled=no"], "/crds/enabled"),
        (vec!["hostNetwork=yes"], "/hostNetwork"),
        (
            vec!["email.smtp.url=smtp://relay"],
            "email.from is required",
        ),
        (
            vec![
                "email.smtp.url=smtp://user:secret@relay",
                "email.from=a@b.example",
            ],
            "/email/smtp/url",
        ),
        (
            vec!["webhook.port=9090", "metrics.port=9090"],
            "webhook.port and metrics.port are both 9090",
        ),
        (
            vec![
                "networkPolicy.apiServer[0].cidr=10.0.0.10",
                "networkPolicy.apiServer[0].ports={6443}",
            ],
            "/networkPolicy/apiServer/0/cidr",
        ),
        (
            vec!["networkPolicy.apiServer[0].cidr=10.0.0.10/32"],
            "missing property 'ports'",
        ),
        (
            vec![
                "networkPolicy.apiServer[0].cidr=10.0.0.10/32",
                "networkPolicy.apiServer[0].ports={70000}",
            ],
            "/networkPolicy/apiServer/0/ports/0",
        ),
        (
            vec!["webhook.timeoutSeconds=31"],
            "maximum: got 31, want 30",
        ),
        (vec!["webhok.enabled=false"], "webhok"),
        (
            vec!["webhook.selfManaged.duration=90d"],
            "/webhook/selfManaged/duration",
        ),
        (
            vec!["allowedClusterRoles={admin,cluster-admin}"],
            "never cluster-admin",
        ),
        (
            vec!["allowedClusterRoles={*}"],
            "never cluster-admin or wildcards",
        ),
        (
            vec!["watchNamespaces={Not_A_Namespace}"],
            "/watchNamespaces/0",
        ),
        (
            vec![
                "webhook.enabled=false",
                "selfService.bindAuthenticated=true",
            ],
            "selfService.bindAuthenticated needs webhook.enabled",
        ),
        (
            vec!["identityProviders[0].name=google"],
            "missing property 'usernamePrefix'",
        ),
        (
            vec![
                "identityProviders[0].name=google",
                "identityProviders[0].usernamePrefix=",
            ],
            "/identityProviders/0/usernamePrefix",
        ),
        (
            vec![
                "identityProviders[0].name=google",
                "identityProviders[0].usernamePrefix=system:google:",
            ],
            "/identityProviders/0/usernamePrefix",
        ),
        (
            vec![
                "identityProviders[0].name=Google",
                "identityProviders[0].usernamePrefix=google:",
            ],
            "/identityProviders/0/name",
        ),
        (
            vec![
                "identityProviders[0].name=entra",
                "identityProviders[0].usernamePrefix=entra:",
                "identityProviders[0].tenantKey=Entra.example/TID",
            ],
            "/identityProviders/0/tenantKey",
        ),
        (
            vec![
                "identityProviders[0].name=google",
                "identityProviders[0].usernamePrefix=google:",
                "identityProviders[1].name=google",
                "identityProviders[1].usernamePrefix=g:",
            ],
            "identityProviders: google is configured twice",
        ),
        (
            vec![
                "identityProviders[0].name=google",
                "identityProviders[0].usernamePrefix=google:",
                "identityProviders[1].name=workspace",
                "identityProviders[1].usernamePrefix=google:workspace:",
            ],
            "identityProviders: google and workspace overlap",
        ),
    ] {
        let out = try_render(&set);
        assert!(!out.status.success(), "{set:?} must be refused");
        let message = text(&out);
        assert!(message.contains(expected), "{set:?}: {message}");
    }
}

/// The image the Dockerfile builds is the one the chart runs: built with the crate's rust-version,
/// as the user and on the ports the chart expects, with `roster` as its entrypoint. (No container
/// engine here builds it; this keeps the two from drifting apart.)
#[test]
fn the_dockerfile_builds_what_the_chart_runs() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("Cargo.toml names its rust-version");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    assert!(
        froms[0].starts_with(&format!("FROM docker.io/library/rust:{msrv}-")),
        "the build stage uses rust {msrv}: {}",
        froms[0]
    );
    assert!(dockerfile.contains("cargo build --release --locked --bin roster"));
    let docs = render(&[]);
    let pod = &find(&docs, "Deployment", RELEASE)["spec"]["template"]["spec"];
    let uid = pod["securityContext"]["runAsUser"].as_i64().unwrap();
    assert!(
        lines.contains(&format!("USER {uid}:{uid}").as_str()),
        "USER {uid}"
    );
    let c = container(&docs);
    assert!(
        c.get("command").is_none(),
        "the chart keeps the image's entrypoint"
    );
    assert_eq!(container_args(&docs)[0], "run");
    assert!(lines.contains(&r#"ENTRYPOINT ["/usr/local/bin/roster"]"#));
    let ports: Vec<String> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].to_string())
        .collect();
    assert!(
        lines.contains(&format!("EXPOSE {}", ports.join(" ")).as_str()),
        "EXPOSE {ports:?}"
    );
}

#[test]
fn chart_crds_are_the_repository_crds() {
    let list = |dir: PathBuf| -> BTreeSet<String> {
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let (repo_crds, chart_crds) = (repo().join("crds"), chart().join("files/crds"));
    assert_eq!(
        list(chart_crds.clone()),
        list(repo_crds.clone()),
        "charts/roster/files/crds holds exactly the files of crds/"
    );
    for file in list(repo_crds.clone()) {
        assert_eq!(
            std::fs::read(chart_crds.join(&file)).unwrap(),
            std::fs::read(repo_crds.join(&file)).unwrap(),
            "charts/roster/files/crds/{file} differs from crds/{file}: run `make crds`"
        );
    }
    assert!(
        !chart().join("crds").exists(),
        "no crds/ in the chart: Helm would install those once and never upgrade them"
    );
}

/// The chart renders the CRDs from files/crds as templates (so that `helm upgrade` upgrades them):
/// exactly the Rust types' CRDs, with the chart's labels and, unless `crds.keep=false`, the
/// annotation that keeps them on `helm uninstall`.
#[test]
fn chart_renders_the_rust_types_crds_and_keeps_them_on_uninstall() {
    let docs = render(&[]);
    let rendered = of_kind(&docs, "CustomResourceDefinition");
    let expected = roster::crds::all();
    assert_eq!(rendered.len(), expected.len());
    for (_, crd) in expected {
        let name = crd.metadata.name.clone().unwrap();
        let doc = find(&docs, "CustomResourceDefinition", &name);
        assert!(
            doc["metadata"].get("namespace").is_none(),
            "CRDs are cluster-scoped"
        );
        let labels = &doc["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE);
        assert_eq!(
            doc["metadata"]["annotations"],
            json!({ "helm.sh/resource-policy": "keep" })
        );
        let mut served: CustomResourceDefinition = serde_json::from_value(doc.clone()).unwrap();
        served.metadata.labels = None;
        served.metadata.annotations = None;
        assert_eq!(
            served, crd,
            "the chart's {name} is not the CRD of roster::crds::all()"
        );
    }
    let not_kept = render(&["crds.keep=false"]);
    for crd in of_kind(&not_kept, "CustomResourceDefinition") {
        assert!(crd["metadata"].get("annotations").is_none(), "{crd}");
    }
    assert_eq!(of_kind(&not_kept, "CustomResourceDefinition").len(), 4);
    assert!(of_kind(&render(&["crds.enabled=false"]), "CustomResourceDefinition").is_empty());
}

/// Chart.yaml's metadata for Artifact Hub: the CRDs it lists are the chart's, its examples pass
/// `roster check` (schema, CEL rules, invariants) without a finding, and its license is the crate's
/// and the LICENSE file's.
#[test]
fn chart_metadata_lists_the_crds_and_valid_examples() {
    let chart_yaml: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    let annotations = &chart_yaml["annotations"];
    let listed: Vec<Value> =
        serde_yaml::from_str(annotations["artifacthub.io/crds"].as_str().unwrap()).unwrap();
    let listed: BTreeSet<(String, String)> = listed
        .iter()
        .map(|c| {
            assert!(
                c["description"].is_string() && c["displayName"].is_string(),
                "{c}"
            );
            (
                c["kind"].as_str().unwrap().into(),
                c["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    let generated: BTreeSet<(String, String)> = roster::crds::all()
        .into_iter()
        .map(|(_, crd)| (crd.spec.names.kind, crd.spec.versions[0].name.clone()))
        .collect();
    assert_eq!(listed, generated, "artifacthub.io/crds");

    let examples: Vec<Value> =
        serde_yaml::from_str(annotations["artifacthub.io/crdsExamples"].as_str().unwrap()).unwrap();
    let kinds: BTreeSet<(String, String)> = examples
        .iter()
        .map(|e| {
            let version = e["apiVersion"]
                .as_str()
                .unwrap()
                .trim_start_matches("roster.dev/");
            (e["kind"].as_str().unwrap().into(), version.into())
        })
        .collect();
    assert_eq!(kinds, generated, "one example of each kind");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("examples.yaml");
    let stream: String = examples
        .iter()
        .map(|e| format!("---\n{}", serde_yaml::to_string(e).unwrap()))
        .collect();
    std::fs::write(&file, stream).unwrap();
    let report = roster::check::check(&roster::check::Options {
        paths: vec![file],
        ..Default::default()
    });
    assert_eq!(report.objects, examples.len(), "{}", report.text());
    assert!(
        report.errors == 0 && report.warnings == 0,
        "{}",
        report.text()
    );

    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let license = annotations["artifacthub.io/license"].as_str().unwrap();
    assert!(manifest.contains(&format!("license = \"{license}\"")));
    let text = std::fs::read_to_string(repo().join("LICENSE")).expect("a LICENSE file");
    assert!(text.contains("Apache License") && text.contains("Version 2.0"));
    assert_eq!(
        chart_yaml["kubeVersion"].as_str(),
        Some(tested_range().as_str())
    );
}

/// The minor of a version like v1.30.14.
fn minor(version: &str) -> u32 {
    version.split('.').nth(1).unwrap().parse().unwrap()
}

/// The chart's kubeVersion: from the oldest minor hack/versions.sh tests to the newest, whole.
fn tested_range() -> String {
    let versions = support::k8s_versions();
    let (newest, oldest) = (&versions[0], versions.last().unwrap());
    format!(">=1.{}.0-0 <1.{}.0-0", minor(oldest), minor(newest) + 1)
}

/// The chart installs on the minors hack/versions.sh tests, and on no other: an older or a newer one
/// is refused with the reason, while `helm template` without --kube-version renders (every other
/// test here renders without it).
#[test]
fn untested_kubernetes_versions_are_refused() {
    let chart = chart();
    let render_for = |version: &str| {
        helm(&[
            "template",
            RELEASE,
            chart.to_str().unwrap(),
            "--kube-version",
            version,
        ])
    };
    let versions = support::k8s_versions();
    let (newest, oldest) = (minor(&versions[0]), minor(versions.last().unwrap()));
    for refused in [format!("1.{}.9", oldest - 1), format!("1.{}.0", newest + 1)] {
        let out = render_for(&refused);
        assert!(!out.status.success(), "{refused} accepted");
        assert!(
            text(&out).contains(&format!("chart requires kubeVersion: {}", tested_range())),
            "{}",
            text(&out)
        );
    }
    for accepted in [format!("1.{oldest}.0"), format!("1.{newest}.99")] {
        let out = render_for(&accepted);
        assert!(out.status.success(), "{accepted}: {}", text(&out));
    }
}

#[test]
fn chart_cluster_roles_are_roster_access_cluster_roles() {
    let docs = render(&[]);
    let expected = roster::rules::rbac::cluster_roles();
    let rendered: BTreeSet<String> = of_kind(&docs, "ClusterRole")
        .iter()
        .map(|r| {
            r["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|n| n.starts_with("roster-org-") || n == "roster-self-service")
        .collect();
    let names: BTreeSet<String> = expected
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(rendered, names);
    for role in expected {
        let name = role.metadata.name.clone().unwrap();
        let chart_role: ClusterRole =
            serde_json::from_value(find(&docs, "ClusterRole", &name).clone()).unwrap();
        assert_eq!(
            chart_role.rules, role.rules,
            "ClusterRole {name} in the chart differs from roster::rules::rbac::cluster_roles()"
        );
    }
    // The operator may bind each of them in org namespaces.
    let operator = rules(find(&docs, "ClusterRole", RELEASE));
    for role in [
        roster::api::OrgRole::Owner,
        roster::api::OrgRole::Admin,
        roster::api::OrgRole::Member,
        roster::api::OrgRole::Viewer,
    ] {
        let name = roster::rules::rbac::org_namespace_role(role);
        assert!(allows(
            &operator,
            "bind",
            "rbac.authorization.k8s.io",
            "clusterroles",
            Some(&name)
        ));
    }
    // Without them (another release creates them), nothing else changes.
    let docs = render(&["rbac.createOrgClusterRoles=false"]);
    assert_eq!(of_kind(&docs, "ClusterRole").len(), 1);
}

// ---------------------------------------------------------------------------------------------------
// helm install into the real control plane, and the operator as the chart's ServiceAccount.

/// A kubeconfig for `token`, with the server and CA of the test control plane.
/// What RBAC lets roster's ServiceAccount do but roster never does: the chart's
/// ValidatingAdmissionPolicy refuses it, whoever holds the token.
async fn refused_by_the_admission_policy(kubeconfig: &Path, dir: &Path, release: &str, work: &str) {
    let binding = |name: &str, ns: &str, role: &str, labelled: bool| {
        let labels = if labelled {
            json!({ "app.kubernetes.io/managed-by": "roster" })
        } else {
            json!({})
        };
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": name, "namespace": ns, "labels": labels },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory@example.com" }]
        })
    };
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": { "name": "loot", "namespace": work }
    });
    let attempts = [
        ("its own ClusterRole", binding("own", work, release, true)),
        (
            "roster-org-owner in kube-system",
            binding("system", "kube-system", "roster-org-owner", true),
        ),
        (
            "edit without roster's label",
            binding("unlabelled", work, "edit", false),
        ),
        ("a Secret that is no invite code", secret),
    ];
    let create = |what: &str, object: &Value| {
        let file = dir.join(format!("{}.json", what.replace(' ', "-")));
        std::fs::write(&file, object.to_string()).unwrap();
        kubectl_with(
            kubeconfig,
            &["create", "--dry-run=server", "-f", file.to_str().unwrap()],
        )
    };
    // The API server enforces a new policy once its informer has it. Server dry runs are admitted
    // by the same policies and leave nothing behind.
    let (what, first) = &attempts[0];
    let mut last = String::new();
    for _ in 0..100 {
        let (_, _, err) = create(what, first);
        if err.contains("ValidatingAdmissionPolicy") {
            last.clear();
            break;
        }
        last = format!("admitted or refused otherwise: {err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(last.is_empty(), "{what}: not refused by the policy: {last}");
    for (what, object) in &attempts[1..] {
        let (ok, _, err) = create(what, object);
        assert!(!ok, "{what} was created");
        assert!(err.contains("ValidatingAdmissionPolicy"), "{what}: {err}");
    }
}

/// kubectl with a given kubeconfig: (success, stdout, stderr).
fn kubectl_with(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(&support::control_plane().kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `check` until it returns Some; on timeout panics with `what` and the operator's log, which
/// names anything the API server refused the operator.
async fn wait_for<T, F, Fut>(operator: &Operator, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "timed out after {WAIT:?} waiting for {what}\n{}",
                diagnosis(operator)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The operator's log (without colours) and the conditions of every Organization: roster reports
/// writes the API server refused there (AccessSynced) or in its log.
fn diagnosis(operator: &Operator) -> String {
    let mut log = String::new();
    let mut chars = operator.logs().chars().collect::<Vec<_>>().into_iter();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI escape: skip to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            log.push(c);
        }
    }
    let (_, conditions, _) = support::kubectl(&[
        "get",
        "organizations",
        "-A",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.namespace}: {.status.conditions}{"\n"}{end}"#,
    ]);
    format!("--- Organization conditions ---\n{conditions}\n--- operator log ---\n{log}")
}

fn condition_true(conditions: &[roster::api::Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

async fn namespace_gone(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    support::eventually(
        &format!("namespace {name} to be gone (not stuck in Terminating)"),
        Duration::from_secs(60),
        || async { api.get_opt(name).await.unwrap().is_none().then_some(()) },
    )
    .await;
}

/// Held by the tests that install the chart: its CRDs and org ClusterRoles are cluster-scoped with
/// fixed names, and the CRD upgrade test serves an older Membership schema for a while.
static CLUSTER_SCOPED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn installed_chart_runs_the_operator_as_its_service_account_and_uninstalls_cleanly() {
    let _cluster_scoped = CLUSTER_SCOPED.lock().await;
    let t = Release::namespaces().await;
    a_wrong_value_fails_the_install_before_anything_is_created(&t);
    install(&t).await;
    let sa_kubeconfig = a_service_account_kubeconfig_the_admission_policy_restricts(&t).await;
    let mut running = run_the_operator_as_the_service_account(&t, &sa_kubeconfig).await;
    let shared_name = roster_writes_the_webhook_and_helm_upgrade_keeps_it(&t, &running).await;
    an_organization_is_served(&t, &running.operator).await;
    rbac_follows_the_organization(&t, &running.operator).await;
    the_operator_holds_the_lease(&t, &running).await;
    the_service_account_can_do_nothing_dangerous(&t, &running.operator);
    delete_the_organization_then_uninstall(&t, &mut running, &shared_name).await;
}

/// The release of the installed-chart test: its namespaces, name and scratch directory.
struct Release {
    client: kube::Client,
    kubeconfig: String,
    chart: String,
    name: String,
    /// The namespace the release is installed in (restricted Pod Security).
    ns: String,
    /// The organization's namespace, the one roster watches.
    org_ns: String,
    /// The organization's workload namespace.
    work_ns: String,
    /// The chart's ServiceAccount as a user name.
    sa_user: String,
    dir: PathBuf,
}

/// The operator the test runs as the chart's ServiceAccount, with the Deployment's arguments.
struct Running {
    operator: Operator,
    pod_name: String,
    webhook_port: u16,
}

impl Release {
    /// Three fresh namespaces, the release one labelled for the restricted Pod Security Standard.
    async fn namespaces() -> Release {
        let cp = support::control_plane();
        let kubeconfig = cp.kubeconfig.to_str().unwrap().to_string();
        let client = support::admin_client().await;
        let release_ns = support::namespace(&client, "chart-release").await;
        let org_ns = support::namespace(&client, "chart-org").await;
        let work_ns = support::namespace(&client, "chart-work").await;
        let release = format!("roster-chart-{}", std::process::id());
        let sa_user = format!("system:serviceaccount:{release_ns}:{release}");
        let (ok, _, err) = support::kubectl(&[
            "label",
            "namespace",
            &release_ns,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ]);
        assert!(ok, "{err}");
        Release {
            client,
            kubeconfig,
            chart: chart().to_str().unwrap().to_string(),
            name: release,
            ns: release_ns,
            org_ns,
            work_ns,
            sa_user,
            dir: std::env::temp_dir().join(format!("roster-chart-{}", std::process::id())),
        }
    }

    /// `helm install` of the chart with `extra` arguments.
    fn helm_install(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "install",
            &self.name,
            &self.chart,
            "--namespace",
            &self.ns,
            "--kubeconfig",
            &self.kubeconfig,
            "--timeout",
            "60s",
        ];
        args.extend_from_slice(extra);
        helm(&args)
    }
}

/// A wrong value fails the install before anything is created.
fn a_wrong_value_fails_the_install_before_anything_is_created(t: &Release) {
    let out = t.helm_install(&["--set", "replicas=two"]);
    assert!(!out.status.success(), "replicas=two must fail the install");
    assert!(text(&out).contains("/replicas"), "{}", text(&out));
    let status = helm(&[
        "status",
        &t.name,
        "-n",
        &t.ns,
        "--kubeconfig",
        &t.kubeconfig,
    ]);
    assert!(!status.status.success(), "no release was recorded");
}

/// `helm install` watching the org namespace; the CRDs come with the chart (or were there already)
/// and are Established.
async fn install(t: &Release) {
    std::fs::create_dir_all(&t.dir).unwrap();
    let values = t.dir.join("values.yaml");
    std::fs::write(
        &values,
        format!(
            "watchNamespaces: [{}]\nwebhook:\n  timeoutSeconds: 7\nnetworkPolicy:\n  enabled: true\n  apiServer: [{{cidr: 127.0.0.1/32, ports: [6443]}}, {{cidr: '::1/128', ports: [6443]}}]\nleaderElection:\n  enabled: true\nlog:\n  format: text\n  level: roster=debug,info\nselfService:\n  bindAuthenticated: true\nplatform:\n  users: [system:serviceaccount:argocd:argocd-application-controller]\n",
            t.org_ns
        ),
    )
    .unwrap();
    // roster-org-* and the CRDs have fixed names; in a control plane shared by all test binaries
    // other tests may have applied them already (or an uninstalled release kept the CRDs), which
    // only an explicit take-over lets this release own.
    let cluster_roles: Api<ClusterRole> = Api::all(t.client.clone());
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let mut extra = vec!["--values", values.to_str().unwrap()];
    if cluster_roles
        .get_opt("roster-org-owner")
        .await
        .unwrap()
        .is_some()
        || crds
            .get_opt("organizations.roster.dev")
            .await
            .unwrap()
            .is_some()
    {
        extra.push("--take-ownership");
    }
    let out = t.helm_install(&extra);
    let installed = text(&out);
    assert!(out.status.success(), "helm install: {installed}");
    assert!(
        !installed.contains("PodSecurity"),
        "the pod template meets the restricted Pod Security Standard: {installed}"
    );

    // The API server took the NetworkPolicy with its egress rules.
    let (ok, types, err) = support::kubectl(&[
        "get",
        "networkpolicy",
        &t.name,
        "-n",
        &t.ns,
        "-o",
        "jsonpath={.spec.policyTypes}",
    ]);
    assert!(ok, "{err}");
    assert_eq!(types, r#"["Ingress","Egress"]"#);

    // The CRDs belong to the release, are kept on uninstall, and are Established.
    for (_, crd) in roster::crds::all() {
        let name = crd.metadata.name.unwrap();
        let established = tokio::time::timeout(
            WAIT,
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established"))
        .unwrap()
        .unwrap();
        let annotations = established.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get("meta.helm.sh/release-name"),
            Some(&t.name),
            "{name}"
        );
        assert_eq!(
            annotations
                .get("helm.sh/resource-policy")
                .map(String::as_str),
            Some("keep"),
            "{name}"
        );
    }
}

/// A token of the chart's ServiceAccount, in a kubeconfig of its own; what RBAC would let it do
/// beyond roster's needs, the chart's admission policy refuses.
async fn a_service_account_kubeconfig_the_admission_policy_restricts(t: &Release) -> PathBuf {
    let (ok, token, err) =
        support::kubectl(&["create", "token", &t.name, "-n", &t.ns, "--duration", "1h"]);
    assert!(ok, "kubectl create token: {err}");
    let sa_kubeconfig = t.dir.join("kubeconfig");
    support::token_kubeconfig(token.trim(), &sa_kubeconfig);
    let (ok, whoami, err) = kubectl_with(
        &sa_kubeconfig,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert!(ok, "kubectl auth whoami as the ServiceAccount: {err}");
    assert_eq!(whoami, t.sa_user);
    refused_by_the_admission_policy(&sa_kubeconfig, &t.dir, &t.name, &t.work_ns).await;
    sa_kubeconfig
}

/// The operator with the installed Deployment's arguments, adjusted to run outside the cluster:
/// loopback addresses, and the webhook reached by URL instead of through the Service. Returns once
/// it is ready (caches synced).
async fn run_the_operator_as_the_service_account(t: &Release, sa_kubeconfig: &Path) -> Running {
    let deployment = Api::<Deployment>::namespaced(t.client.clone(), &t.ns)
        .get(&t.name)
        .await
        .expect("the chart's Deployment");
    let pod = deployment.spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(t.name.as_str()));
    let c = &pod.containers[0];
    let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert!(
        env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"),
        "{env:?}"
    );
    let (metrics_port, webhook_port) = (support::free_port(), support::free_port());
    let mut args = Vec::new();
    let mut given = c.args.clone().unwrap().into_iter();
    while let Some(a) = given.next() {
        match a.as_str() {
            "--metrics-addr" => {
                given.next();
                args.extend(["--metrics-addr".into(), format!("127.0.0.1:{metrics_port}")]);
            }
            "--webhook-addr" => {
                given.next();
                args.extend(["--webhook-addr".into(), format!("127.0.0.1:{webhook_port}")]);
            }
            "--webhook-service" => {
                let service = given.next().unwrap();
                assert_eq!(service, format!("{}/{}:443", t.ns, t.name));
                args.extend([
                    "--webhook-url".into(),
                    format!("https://127.0.0.1:{webhook_port}/validate"),
                ]);
            }
            _ => args.push(a),
        }
    }
    assert!(args.contains(&"--leader-elect".into()), "{args:?}");
    assert_eq!(flag(&args, "--webhook-config-name"), Some(t.name.as_str()));
    args.extend([
        "--kubeconfig".into(),
        sa_kubeconfig.to_str().unwrap().into(),
    ]);
    let pod_name = format!("{}-7d4b9c-x2x9q", t.name);
    let operator = Operator::spawn(
        &args,
        &[("POD_NAME", &pod_name), ("POD_NAMESPACE", &t.ns)],
        metrics_port,
    );

    wait_for(&operator, "/readyz (caches synced)", || async {
        operator.ready().then_some(())
    })
    .await;
    Running {
        operator,
        pod_name,
        webhook_port,
    }
}

/// roster wrote its webhook into the configuration the chart created, the API server calls it, and
/// `helm upgrade` leaves it alone. Returns the name of the Secret with the shared certificate.
async fn roster_writes_the_webhook_and_helm_upgrade_keeps_it(
    t: &Release,
    running: &Running,
) -> String {
    let (operator, webhook_port) = (&running.operator, running.webhook_port);
    let probe: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "webhook-probe" },
        "spec": { "access": { "namespaces": ["kube-system"] } }
    }))
    .unwrap();
    let org_resource = kube::api::ApiResource::erase::<Organization>(&());
    let dynamic = Api::<kube::api::DynamicObject>::namespaced_with(
        t.client.clone(),
        &t.org_ns,
        &org_resource,
    );
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    wait_for(
        operator,
        "the webhook to answer for the org namespace",
        || async {
            match dynamic.create(&dry_run, &probe).await {
                Err(kube::Error::Api(s)) if s.message.contains("roster:") => Some(()),
                _ => None,
            }
        },
    )
    .await;
    let (_, vwc, _) = support::kubectl(&[
        "get",
        "validatingwebhookconfiguration",
        &t.name,
        "-o",
        "json",
    ]);
    let vwc: Value = serde_json::from_str(&vwc).expect("the configuration");
    assert_eq!(
        vwc["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    assert_eq!(
        vwc["webhooks"][0]["clientConfig"]["url"],
        format!("https://127.0.0.1:{webhook_port}/validate")
    );
    assert_eq!(
        vwc["webhooks"][0]["timeoutSeconds"], 7,
        "webhook.timeoutSeconds reaches the configuration roster writes"
    );
    // The certificate replicas share went into the Secret the chart rendered empty.
    let shared_name = roster::webhook::tls::shared_secret_name(&t.name);
    let secrets: Api<Secret> = Api::namespaced(t.client.clone(), &t.ns);
    let shared = secrets.get(&shared_name).await.expect("the chart's Secret");
    let data = shared.data.expect("filled by roster");
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    );
    let ca_bundle: k8s_openapi::ByteString =
        serde_json::from_value(vwc["webhooks"][0]["clientConfig"]["caBundle"].clone()).unwrap();
    assert_eq!(ca_bundle, data["ca.crt"], "the caBundle is the shared CA");
    // A `helm upgrade` leaves the webhooks roster wrote alone (the chart renders none of its own).
    let out = helm(&[
        "upgrade",
        &t.name,
        &t.chart,
        "--namespace",
        &t.ns,
        "--kubeconfig",
        &t.kubeconfig,
        "--reuse-values",
        "--set",
        "podAnnotations.upgraded=yes",
    ]);
    assert!(out.status.success(), "helm upgrade: {}", text(&out));
    let (_, hooks, _) = support::kubectl(&[
        "get",
        "validatingwebhookconfiguration",
        &t.name,
        "-o",
        "jsonpath={.webhooks[*].clientConfig.url}",
    ]);
    assert_eq!(
        hooks,
        format!("https://127.0.0.1:{webhook_port}/validate"),
        "helm upgrade kept roster's webhooks"
    );
    shared_name
}

/// An organization, as a platform admin would apply it, becomes Ready; its owner is protected; an
/// invite is redeemed with kubectl through roster-self-service; a short invite expires.
async fn an_organization_is_served(t: &Release, operator: &Operator) {
    let (client, org_ns, work_ns) = (&t.client, &t.org_ns, &t.work_ns);
    let org = format!(
        "apiVersion: roster.dev/v1alpha1\nkind: Organization\nmetadata:\n  name: org\nspec:\n  displayName: Chart Org\n  dataRegion: EU\n  access:\n    namespaces: [{work_ns}]\n"
    );
    support::apply(client, org_ns, &org).await;
    for (name, user, role) in [
        ("owner", "owner@example.com", "owner"),
        ("member", "member@example.com", "member"),
        ("viewer", "viewer@example.com", "viewer"),
    ] {
        support::apply(client, org_ns, &support::membership_yaml(name, user, role)).await;
    }
    support::apply(
        client,
        org_ns,
        &format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: welcome\nspec:\n  email: new@example.com\n  role: member\n---\napiVersion: roster.dev/v1alpha1\nkind: Invite\nmetadata:\n  name: short\nspec:\n  role: viewer\n  ttl: 2s\n---\napiVersion: roster.dev/v1alpha1\nkind: Team\nmetadata:\n  name: ops\nspec:\n  members:\n  - user: owner@example.com\n    role: owner\n  - user: viewer@example.com\n    role: member\n  access:\n    namespaces: [{work_ns}]\n"
        ),
    )
    .await;

    let orgs: Api<Organization> = Api::namespaced(client.clone(), org_ns);
    wait_for(
        operator,
        "the Organization to be Ready with 3 members",
        || async {
            let s = orgs.get("org").await.ok()?.status?;
            (condition_true(&s.conditions, "Ready") && s.members == 3).then_some(())
        },
    )
    .await;
    let memberships: Api<Membership> = Api::namespaced(client.clone(), org_ns);
    wait_for(operator, "the owner-protection finalizer", || async {
        let owner = memberships.get("owner").await.ok()?;
        owner
            .metadata
            .finalizers?
            .contains(&roster::controller::OWNER_PROTECTION.to_string())
            .then_some(())
    })
    .await;
    let invites: Api<Invite> = Api::namespaced(client.clone(), org_ns);
    let secret_name = wait_for(operator, "the invite's code Secret", || async {
        invites.get("welcome").await.ok()?.status?.code_secret_name
    })
    .await;
    let secret = Api::<Secret>::namespaced(client.clone(), org_ns)
        .get(&secret_name)
        .await
        .expect("the code Secret exists");
    let code = String::from_utf8(secret.data.unwrap()["code"].0.clone()).unwrap();
    let proof = support::proof(&code, org_ns, "welcome", "new@example.com");

    // The invited person redeems the code with kubectl (roster-self-service, bound by the chart),
    // carrying the proof `kubectl roster invite proof` prints; the webhook checks it against the
    // code in roster's Secret.
    let redemption = t.dir.join("redeem.yaml");
    std::fs::write(
        &redemption,
        format!(
            "apiVersion: roster.dev/v1alpha1\nkind: Membership\nmetadata:\n  name: newbie\n  namespace: {org_ns}\nspec:\n  user: new@example.com\n  role: member\n  invite:\n    name: welcome\n    proof: {proof}\n"
        ),
    )
    .unwrap();
    let (ok, out, err) = support::kubectl(&[
        "--as",
        "new@example.com",
        "create",
        "-f",
        redemption.to_str().unwrap(),
    ]);
    assert!(ok, "redeeming the invite: {out}{err}");
    wait_for(operator, "the redeemed Membership to be Active", || async {
        let s = memberships.get("newbie").await.ok()?.status?;
        (s.phase == Some(MembershipPhase::Active)).then_some(())
    })
    .await;

    wait_for(operator, "the short invite to expire", || async {
        let s = invites.get("short").await.ok()?.status?;
        (s.phase == Some(InvitePhase::Expired)).then_some(())
    })
    .await;
    wait_for(operator, "an InviteExpired Event", || async {
        let (_, reasons, _) = support::kubectl(&[
            "get",
            "events",
            "-n",
            org_ns,
            "-o",
            "jsonpath={.items[*].reason}",
        ]);
        reasons.contains("InviteExpired").then_some(())
    })
    .await;
}

/// RoleBindings in the org namespace and the workload namespace, as can-i sees them; the workload
/// namespace labelled with the data region; AccessSynced.
async fn rbac_follows_the_organization(t: &Release, operator: &Operator) {
    let (client, org_ns, work_ns) = (&t.client, &t.org_ns, &t.work_ns);
    let eventually_can = |user: &'static str, verb: &'static str, resource: &'static str, ns| async move {
        wait_for(
            operator,
            &format!("{user} can-i {verb} {resource} -n {ns}"),
            || async { support::can(user, verb, resource, ns).then_some(()) },
        )
        .await
    };
    eventually_can(
        "owner@example.com",
        "create",
        "memberships.roster.dev",
        org_ns,
    )
    .await;
    eventually_can("member@example.com", "create", "deployments.apps", work_ns).await;
    eventually_can("new@example.com", "create", "deployments.apps", work_ns).await;
    // The team makes the viewer a team member in the workload namespace (edit).
    eventually_can("viewer@example.com", "create", "deployments.apps", work_ns).await;
    assert!(support::can(
        "viewer@example.com",
        "list",
        "memberships.roster.dev",
        org_ns
    ));
    assert!(!support::can(
        "viewer@example.com",
        "update",
        "memberships.roster.dev",
        org_ns
    ));
    // Self-service: anyone authenticated may create a Membership (the webhook decides which).
    assert!(support::can(
        "stranger@example.com",
        "create",
        "memberships.roster.dev",
        org_ns
    ));
    assert!(!support::can(
        "member@example.com",
        "create",
        "invites.roster.dev",
        org_ns
    ));
    assert!(!support::can(
        "stranger@example.com",
        "list",
        "memberships.roster.dev",
        org_ns
    ));
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), org_ns)
        .list(&ListParams::default().labels(&format!(
            "{}={org_ns}",
            roster::rules::rbac::ORGANIZATION_LABEL
        )))
        .await
        .unwrap();
    let roles: BTreeSet<String> = bindings
        .items
        .iter()
        .map(|b| b.role_ref.name.clone())
        .collect();
    assert_eq!(
        roles,
        bindable(&[])
            .into_iter()
            .filter(|r| r != "roster-org-admin")
            .collect()
    );
    let (_, labels, _) = support::kubectl(&[
        "get",
        "namespace",
        work_ns,
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(
        labels.contains("\"roster.dev/data-region\":\"EU\""),
        "dataRegion labels the workload namespace: {labels}"
    );
    let orgs: Api<Organization> = Api::namespaced(client.clone(), org_ns);
    let status = orgs.get("org").await.unwrap().status.unwrap();
    assert!(
        condition_true(&status.conditions, "AccessSynced"),
        "{}",
        diagnosis(operator)
    );
}

/// Leader election in the release namespace.
async fn the_operator_holds_the_lease(t: &Release, running: &Running) {
    let leases: Api<Lease> = Api::namespaced(t.client.clone(), &t.ns);
    wait_for(
        &running.operator,
        "the operator to hold the Lease",
        || async {
            let holder = leases.get(&t.name).await.ok()?.spec?.holder_identity?;
            (holder == running.pod_name).then_some(())
        },
    )
    .await;
}

/// What the ServiceAccount can do beyond that: nothing dangerous.
fn the_service_account_can_do_nothing_dangerous(t: &Release, operator: &Operator) {
    let (org_ns, work_ns, release, sa_user) = (&t.org_ns, &t.work_ns, &t.name, &t.sa_user);
    for (verb, resource, ns, expected) in [
        (
            "bind",
            "clusterroles/roster-org-owner",
            org_ns.as_str(),
            true,
        ),
        ("bind", "clusterroles/admin", work_ns.as_str(), true),
        (
            "bind",
            "clusterroles/cluster-admin",
            work_ns.as_str(),
            false,
        ),
        ("escalate", "clusterroles", work_ns.as_str(), false),
        ("create", "clusterrolebindings", work_ns.as_str(), false),
        ("create", "roles", work_ns.as_str(), false),
        ("delete", "secrets", org_ns.as_str(), false),
        ("create", "pods", work_ns.as_str(), false),
        ("create", "organizations.roster.dev", org_ns.as_str(), false),
        ("delete", "memberships.roster.dev", org_ns.as_str(), true),
        ("delete", "namespaces", work_ns.as_str(), false),
        ("impersonate", "users", work_ns.as_str(), false),
        (
            "create",
            "leases.coordination.k8s.io",
            org_ns.as_str(),
            false,
        ),
        (
            "patch",
            &format!("validatingwebhookconfigurations/{release}"),
            work_ns.as_str(),
            true,
        ),
        (
            "patch",
            "validatingwebhookconfigurations/someone-else",
            work_ns.as_str(),
            false,
        ),
    ] {
        assert_eq!(
            support::can(sa_user, verb, resource, ns),
            expected,
            "{sa_user} can-i {verb} {resource} -n {ns}"
        );
    }
    assert!(
        !operator.logs().to_lowercase().contains("forbidden"),
        "the API server refused the operator something:\n{}",
        diagnosis(operator)
    );
}

/// The documented uninstall path: delete the organization's namespace while roster runs (it
/// releases the owner protection and removes the bindings), stop roster, then uninstall, which
/// leaves nothing behind and nothing stuck.
async fn delete_the_organization_then_uninstall(
    t: &Release,
    running: &mut Running,
    shared_name: &str,
) {
    let (client, release, release_ns, org_ns, work_ns) =
        (&t.client, &t.name, &t.ns, &t.org_ns, &t.work_ns);
    let (operator, pod_name) = (&mut running.operator, &running.pod_name);
    Api::<Namespace>::all(client.clone())
        .delete(org_ns, &DeleteParams::default())
        .await
        .unwrap();
    namespace_gone(client, org_ns).await;
    let work_bindings = Api::<RoleBinding>::namespaced(client.clone(), work_ns);
    wait_for(
        operator,
        "the workload namespace's bindings to go",
        || async {
            let left = work_bindings
                .list(&ListParams::default().labels(&format!(
                    "{}={org_ns}",
                    roster::rules::rbac::ORGANIZATION_LABEL
                )))
                .await
                .ok()?;
            left.items.is_empty().then_some(())
        },
    )
    .await;
    assert!(
        operator.terminate(Duration::from_secs(15)),
        "graceful shutdown on SIGTERM\n{}",
        diagnosis(operator)
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), release_ns);
    let holder = leases
        .get(release)
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_ne!(
        holder.as_deref(),
        Some(pod_name.as_str()),
        "the Lease is released"
    );

    let out = helm(&[
        "uninstall",
        release,
        "--namespace",
        release_ns,
        "--kubeconfig",
        &t.kubeconfig,
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(out.status.success(), "helm uninstall: {}", text(&out));
    let selector = format!("app.kubernetes.io/instance={release}");
    for (kinds, namespace) in [
        (
            "deployments,services,serviceaccounts,roles,rolebindings,poddisruptionbudgets,secrets,configmaps,networkpolicies",
            Some(release_ns.as_str()),
        ),
        (
            "clusterroles,clusterrolebindings,validatingwebhookconfigurations,validatingadmissionpolicies,validatingadmissionpolicybindings",
            None,
        ),
    ] {
        let mut args = vec!["get", kinds, "-l", &selector, "-o", "name"];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        let (ok, left, err) = support::kubectl(&args);
        assert!(ok, "{err}");
        assert!(left.trim().is_empty(), "helm uninstall left: {left}");
    }
    let (_, release_secrets, _) = support::kubectl(&[
        "get",
        "secrets",
        "-n",
        release_ns,
        "-l",
        &format!("owner=helm,name={release}"),
        "-o",
        "name",
    ]);
    assert!(release_secrets.trim().is_empty(), "{release_secrets}");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), release_ns);
    assert!(
        secrets.get_opt(shared_name).await.unwrap().is_none(),
        "uninstall removes the self-managed certificate's Secret, CA key included"
    );
    let (_, vwc, _) = support::kubectl(&["get", "validatingwebhookconfigurations", "-o", "name"]);
    assert!(
        !vwc.contains(release.as_str()),
        "the webhook configuration roster wrote into is gone: {vwc}"
    );
    // The CRDs stay (helm.sh/resource-policy: keep), and nothing is stuck: the remaining namespaces
    // (the release namespace still holds roster's released Lease) delete at once.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt("organizations.roster.dev")
            .await
            .unwrap()
            .is_some()
    );
    for ns in [release_ns, work_ns] {
        Api::<Namespace>::all(client.clone())
            .delete(ns, &DeleteParams::default())
            .await
            .unwrap();
    }
    namespace_gone(client, release_ns).await;
    namespace_gone(client, work_ns).await;
    let _ = std::fs::remove_dir_all(&t.dir);
}

// ---------------------------------------------------------------------------------------------------
// The CRDs' upgrade path: adopted from an install that did not own them, upgraded by `helm upgrade`,
// kept by `helm uninstall`.

/// The CRD whose schema the upgrade test changes, and the field it leaves out of the older chart.
const UPGRADED_CRD: &str = "memberships.roster.dev";
const UPGRADED_FIELD: &str = "displayName";

/// A release made with an older chart whose Membership CRD lacks `spec.displayName` and which did not
/// own the CRDs (like the chart's releases from before it rendered them): the documented adoption lets
/// `helm upgrade` take them over, the next upgrade serves the field, and `helm uninstall` leaves the
/// CRDs. The control plane may be shared, with the CRDs applied by other tests: they are applied here
/// too, as the earlier chart or kubectl left them.
#[tokio::test]
async fn crds_are_adopted_upgraded_by_helm_upgrade_and_kept_by_helm_uninstall() {
    let _cluster_scoped = CLUSTER_SCOPED.lock().await;
    let client = support::admin_client().await;
    let kubeconfig = support::control_plane()
        .kubeconfig
        .to_str()
        .unwrap()
        .to_string();
    support::install_crds(&client).await;
    let _restore = RestoreCrdsOnPanic;
    let ns = support::namespace(&client, "chart-crds").await;
    let release = format!("roster-crds-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let older = older_chart_without_the_field(dir.path());
    let older = older.to_str().unwrap();
    let current = chart();
    let current = current.to_str().unwrap();
    let helm_in = |verb: &str, chart: &str, set: &[&str]| {
        let mut args = vec![
            verb,
            &release,
            chart,
            "--namespace",
            &ns,
            "--kubeconfig",
            &kubeconfig,
            "--timeout",
            "60s",
            // roster-org-* have fixed names: the other chart test creates them.
            "--set",
            "rbac.createOrgClusterRoles=false",
        ];
        for s in set {
            args.extend(["--set", s]);
        }
        helm(&args)
    };

    // The earlier release: the CRDs are there, the release has none.
    let out = helm_in("install", older, &["crds.enabled=false"]);
    assert!(out.status.success(), "helm install: {}", text(&out));
    let out = helm_in("upgrade", older, &[]);
    assert!(!out.status.success(), "CRDs owned by no release were taken");
    assert!(
        text(&out)
            .contains("cannot be imported into the current release: invalid ownership metadata"),
        "{}",
        text(&out)
    );
    run_documented_crd_adoption(&release, &ns);
    let out = helm_in("upgrade", older, &[]);
    assert!(
        out.status.success(),
        "helm upgrade after the adoption: {}",
        text(&out)
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get(UPGRADED_CRD).await.unwrap();
    assert!(
        !spec_fields(&crd).contains(UPGRADED_FIELD),
        "helm upgrade now writes the CRDs: the older chart's schema is served"
    );
    assert_eq!(
        crd.metadata.annotations.unwrap_or_default()["meta.helm.sh/release-name"],
        release
    );
    field_served(&client, &ns, false).await;

    // The chart of this repository brings the field back.
    let out = helm_in("upgrade", current, &[]);
    assert!(out.status.success(), "helm upgrade: {}", text(&out));
    assert!(spec_fields(&crds.get(UPGRADED_CRD).await.unwrap()).contains(UPGRADED_FIELD));
    field_served(&client, &ns, true).await;

    // Neither leaving them out of the release nor uninstalling it deletes them.
    let out = helm_in("upgrade", current, &["crds.enabled=false"]);
    assert!(out.status.success(), "helm upgrade: {}", text(&out));
    let out = helm(&[
        "uninstall",
        &release,
        "--namespace",
        &ns,
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert!(out.status.success(), "helm uninstall: {}", text(&out));
    for (_, crd) in roster::crds::all() {
        let name = crd.metadata.name.unwrap();
        let kept = crds.get_opt(&name).await.unwrap();
        assert!(
            kept.is_some_and(|c| c.metadata.deletion_timestamp.is_none()),
            "{name} was deleted"
        );
    }
    assert!(spec_fields(&crds.get(UPGRADED_CRD).await.unwrap()).contains(UPGRADED_FIELD));
    Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    namespace_gone(&client, &ns).await;
}

/// A copy of the chart in `dir` whose Membership CRD lacks `spec.displayName`.
fn older_chart_without_the_field(dir: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let older = dir.join("roster");
    copy(&chart(), &older);
    let (file, mut crd) = roster::crds::all()
        .into_iter()
        .find(|(_, crd)| crd.metadata.name.as_deref() == Some(UPGRADED_CRD))
        .unwrap();
    let schema = crd.spec.versions[0].schema.as_mut().unwrap();
    let properties = schema
        .open_api_v3_schema
        .as_mut()
        .unwrap()
        .properties
        .as_mut();
    let spec = properties.unwrap().get_mut("spec").unwrap();
    let removed = spec.properties.as_mut().unwrap().remove(UPGRADED_FIELD);
    assert!(
        removed.is_some(),
        "{UPGRADED_CRD} has spec.{UPGRADED_FIELD}"
    );
    std::fs::write(
        older.join("files/crds").join(file),
        roster::crds::to_yaml(&crd),
    )
    .unwrap();
    older
}

/// The properties of the CRD's `spec`, as the API server stores the CRD.
fn spec_fields(crd: &CustomResourceDefinition) -> BTreeSet<String> {
    let schema = crd.spec.versions[0].schema.as_ref().unwrap();
    let properties = schema
        .open_api_v3_schema
        .as_ref()
        .unwrap()
        .properties
        .as_ref()
        .unwrap();
    properties["spec"]
        .properties
        .as_ref()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// Waits until a Membership created (server-side dry run) with `spec.displayName` keeps it, or has it
/// pruned, as the served schema says: the API server serves a changed CRD shortly after storing it.
async fn field_served(client: &kube::Client, ns: &str, served: bool) {
    let resource = kube::api::ApiResource::erase::<Membership>(&());
    let api = Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &resource);
    let membership: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Membership",
        "metadata": { "name": "schema-probe" },
        "spec": { "user": "ada@example.com", "role": "member", UPGRADED_FIELD: "Ada" }
    }))
    .unwrap();
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    support::eventually(
        &format!("spec.{UPGRADED_FIELD} to be served: {served}"),
        WAIT,
        || async {
            let created = api.create(&dry_run, &membership).await.ok()?;
            (created.data["spec"].get(UPGRADED_FIELD).is_some() == served).then_some(())
        },
    )
    .await;
}

/// The adoption commands of docs/operations.md, between their marker comments, run by bash with
/// this release and namespace in place of the documented ones.
fn run_documented_crd_adoption(release: &str, ns: &str) {
    let doc = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    let (begin, end) = ("<!-- BEGIN adopt-crds -->", "<!-- END adopt-crds -->");
    let start = doc.find(begin).expect("begin marker") + begin.len();
    let stop = start + doc[start..].find(end).expect("end marker");
    let documented = "RELEASE=roster NAMESPACE=roster-system";
    let script: Vec<String> = doc[start..stop]
        .lines()
        .filter(|l| !l.starts_with("```"))
        .map(|l| {
            if l.starts_with(documented) {
                format!("RELEASE={release} NAMESPACE={ns}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(
        script.iter().filter(|l| l.starts_with("RELEASE=")).count(),
        1,
        "the commands start with `{documented}`: {script:?}"
    );
    let cp = support::control_plane();
    let path = format!(
        "{}:{}",
        cp.kubectl.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script.join("\n")])
        .env("PATH", path)
        .env("KUBECONFIG", &cp.kubeconfig)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "the documented adoption: {}",
        text(&out)
    );
}

/// Applies the repository's CRDs again when the upgrade test fails while the (shared) control plane
/// serves the older chart's Membership schema.
struct RestoreCrdsOnPanic;

impl Drop for RestoreCrdsOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let crds = repo().join("crds");
            let (ok, _, err) = support::kubectl(&[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                "roster-tests",
                "-f",
                crds.to_str().unwrap(),
            ]);
            if !ok {
                eprintln!("could not restore the CRDs: {err}");
            }
        }
    }
}

/// `roster self-test` (what `helm test` runs) as the test hook's ServiceAccount, with the hook's
/// Role and RoleBinding: it passes while roster's webhook answers for the namespace, and fails,
/// exit status 1 and the reason printed, when the webhook is down or its configuration gone.
#[tokio::test]
async fn roster_self_test_passes_as_the_helm_test_service_account_only_while_the_webhook_answers() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let release_ns = support::namespace(&client, "self-test-release").await;
    let org_ns = support::namespace(&client, "self-test-org").await;
    let dir = tempfile::tempdir().unwrap();

    // What `helm test` creates before the pod, as it renders it.
    let chart = chart();
    let watch = format!("watchNamespaces={{{org_ns}}}");
    let out = helm(&[
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        &release_ns,
        "--set",
        &watch,
        "--show-only",
        "templates/tests/self-test.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    let pod = docs.iter().find(|d| d["kind"] == "Pod").unwrap();
    let args: Vec<String> =
        serde_json::from_value(pod["spec"]["containers"][0]["args"].clone()).unwrap();
    assert_eq!(args, ["self-test", "--namespace", org_ns.as_str()]);
    let rbac: Vec<&Value> = docs.iter().filter(|d| d["kind"] != "Pod").collect();
    let manifest = dir.path().join("rbac.json");
    std::fs::write(
        &manifest,
        json!({ "apiVersion": "v1", "kind": "List", "items": rbac }).to_string(),
    )
    .unwrap();
    let (ok, _, err) = support::kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, token, err) = support::kubectl(&[
        "create",
        "token",
        "roster-self-test",
        "-n",
        &release_ns,
        "--duration",
        "1h",
    ]);
    assert!(ok, "{err}");
    let kubeconfig = dir.path().join("kubeconfig");
    support::token_kubeconfig(token.trim(), &kubeconfig);
    let self_test = || {
        let out = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(&args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .expect("run roster self-test");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    // roster's webhook answers for the namespace: both checks pass.
    let mut operator = support::operator_with_webhook(&[&org_ns]);
    support::wait_for_webhook(&client, &org_ns).await;
    let (code, printed) = self_test();
    assert_eq!(code, Some(0), "{printed}");
    assert!(
        printed.contains("PASS CRDs: roster.dev/v1alpha1 serves"),
        "{printed}"
    );
    assert!(printed.contains("PASS webhook: "), "{printed}");
    assert!(printed.contains("[rule PlatformOnly]"), "{printed}");

    // The webhook down, its configuration still there: the API server cannot call it.
    operator.kill();
    let (code, printed) = self_test();
    assert_eq!(code, Some(1), "{printed}");
    assert!(printed.contains("PASS CRDs"), "{printed}");
    assert!(
        printed.contains("FAIL webhook: the API server could not call"),
        "{printed}"
    );

    // No webhook configuration at all: nothing refuses the dry run.
    let configurations: Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    > = Api::all(client.clone());
    configurations
        .delete(&format!("roster-{org_ns}"), &DeleteParams::default())
        .await
        .unwrap();
    let (code, printed) = support::eventually(
        "the API server to forget the webhook configuration",
        WAIT,
        || async {
            let (code, printed) = self_test();
            printed.contains("ALLOWED").then_some((code, printed))
        },
    )
    .await;
    assert_eq!(code, Some(1), "{printed}");
    assert!(
        printed.contains("FAIL webhook: a dry-run Organization create was ALLOWED"),
        "{printed}"
    );
    let organizations: Api<Organization> = Api::namespaced(client, &org_ns);
    assert!(
        organizations
            .get_opt("roster-self-test")
            .await
            .unwrap()
            .is_none(),
        "a dry run stores nothing"
    );
}
