//! The ValidatingWebhookConfiguration roster ships: `roster.dev` resources only, so that nothing
//! else in the cluster can ever be blocked by roster, even when it is down.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, RuleWithOperations, ServiceReference, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

/// Where the API server reaches the webhook.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A URL such as `https://127.0.0.1:8443/validate` (outside the cluster, tests).
    Url(String),
    /// A Service in the cluster.
    Service {
        namespace: String,
        name: String,
        port: i32,
    },
}

/// Why `--url` or `--service` names no endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("the webhook URL must use https://, got {0}")]
    NotHttps(String),
    #[error("the service is NAMESPACE/NAME[:PORT]")]
    ServiceForm,
    #[error("the service port {0} is not a number")]
    Port(String),
}

impl Endpoint {
    /// From `--url` or `--service NAMESPACE/NAME[:PORT]` (port 443 by default).
    pub fn parse(
        url: Option<&str>,
        service: Option<&str>,
    ) -> Result<Option<Endpoint>, EndpointError> {
        if let Some(url) = url {
            if !url.starts_with("https://") {
                return Err(EndpointError::NotHttps(url.to_string()));
            }
            return Ok(Some(Endpoint::Url(url.to_string())));
        }
        let Some(svc) = service else { return Ok(None) };
        let (namespace, rest) = svc.split_once('/').ok_or(EndpointError::ServiceForm)?;
        let (name, port) = rest.split_once(':').unwrap_or((rest, "443"));
        let port = port
            .parse()
            .map_err(|_| EndpointError::Port(port.to_string()))?;
        Ok(Some(Endpoint::Service {
            namespace: namespace.into(),
            name: name.into(),
            port,
        }))
    }
}

/// Seconds the API server waits for roster's answer before it fails the request (`failurePolicy:
/// Fail`), unless `--webhook-timeout-seconds` (`roster run`) or `--timeout-seconds`
/// (`roster webhook-config`) says otherwise.
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 5;

/// The webhook timeouts the API server accepts, in seconds.
pub const TIMEOUT_SECONDS: std::ops::RangeInclusive<i64> = 1..=30;

/// The configuration for `endpoint`; with `namespaces`, it applies to those namespaces only. The API
/// server waits `timeout_seconds` (within [`TIMEOUT_SECONDS`]) for an answer.
pub fn configuration(
    name: &str,
    endpoint: &Endpoint,
    ca_bundle: Option<&[u8]>,
    namespaces: &[String],
    timeout_seconds: i32,
) -> ValidatingWebhookConfiguration {
    let client_config = WebhookClientConfig {
        ca_bundle: ca_bundle.map(|b| ByteString(b.to_vec())),
        url: match endpoint {
            Endpoint::Url(u) => Some(u.clone()),
            Endpoint::Service { .. } => None,
        },
        service: match endpoint {
            Endpoint::Url(_) => None,
            Endpoint::Service {
                namespace,
                name,
                port,
            } => Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some("/validate".into()),
                port: Some(*port),
            }),
        },
    };
    let namespace_selector = (!namespaces.is_empty()).then(|| LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".into(),
            operator: "In".into(),
            values: Some(namespaces.to_vec()),
        }]),
        match_labels: None,
    });
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app.kubernetes.io/name".to_string(), "roster".to_string())].into()),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: WEBHOOK_NAME.into(),
            admission_review_versions: vec!["v1".into()],
            client_config,
            failure_policy: Some("Fail".into()),
            match_policy: Some("Equivalent".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(timeout_seconds),
            namespace_selector,
            match_conditions: Some(vec![kubernetes_controllers_delete()]),
            rules: Some(vec![
                rule(&["CREATE", "UPDATE", "DELETE"], ""),
                // The webhook trusts status (effective roles), so it reviews who writes it.
                rule(&["UPDATE"], "/status"),
            ]),
            ..Default::default()
        }]),
    }
}

/// The `caBundle` of roster's webhook in `config`, if it has one.
pub fn ca_bundle(config: &ValidatingWebhookConfiguration) -> Option<&[u8]> {
    config
        .webhooks
        .iter()
        .flatten()
        .find(|w| w.name == WEBHOOK_NAME)?
        .client_config
        .ca_bundle
        .as_ref()
        .map(|b| b.0.as_slice())
}

/// The name of roster's one webhook in its configuration.
pub const WEBHOOK_NAME: &str = "validate.roster.dev";

/// The name of the match condition that lets Kubernetes' own controllers delete without roster.
pub const KUBERNETES_CONTROLLERS_DELETE: &str = "skip-kubernetes-controller-deletions";

/// Deleting a namespace (the namespace controller) or what an owner took with it (the garbage
/// collector) must go through while roster is down: with `failurePolicy: Fail` the webhook would
/// otherwise hold them until roster is back. roster allows those deletions anyway (rules::authorize:
/// a namespace or organization being deleted takes everything in it, and the controller still keeps
/// the last owner through its finalizer), so the API server need not ask it.
fn kubernetes_controllers_delete() -> MatchCondition {
    let users = crate::rules::actor::KUBERNETES_CONTROLLERS
        .iter()
        .map(|u| format!("'{u}'"))
        .collect::<Vec<_>>()
        .join(", ");
    MatchCondition {
        name: KUBERNETES_CONTROLLERS_DELETE.into(),
        expression: format!(
            "!(request.operation == 'DELETE' && request.userInfo.username in [{users}])"
        ),
    }
}

/// A rule for the four kinds, or for one of their subresources (`suffix` such as `/status`).
fn rule(operations: &[&str], suffix: &str) -> RuleWithOperations {
    let kinds = ["organizations", "memberships", "invites", "teams"];
    RuleWithOperations {
        api_groups: Some(vec!["roster.dev".into()]),
        // One version, the one the webhook reads: with matchPolicy Equivalent the API server converts
        // a request made through any other served version to it (docs/api-versions.md).
        api_versions: Some(vec![crate::api::VERSION.into()]),
        operations: Some(operations.iter().map(|o| o.to_string()).collect()),
        resources: Some(kinds.iter().map(|k| format!("{k}{suffix}")).collect()),
        scope: Some("Namespaced".into()),
    }
}

/// Writes the configuration (with the CA bundle roster generated) by server-side apply.
pub async fn apply(
    client: &kube::Client,
    config: &ValidatingWebhookConfiguration,
) -> Result<(), kube::Error> {
    apply_over(client, config, None).await
}

/// [`apply`], but with `resource_version` only over that version of the configuration: a writer
/// that read an older one gets a 409 Conflict instead of overwriting a newer `caBundle`.
pub async fn apply_over(
    client: &kube::Client,
    config: &ValidatingWebhookConfiguration,
    resource_version: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mut body = serde_json::to_value(config).expect("serializable");
    if let Some(version) = resource_version {
        body["metadata"]["resourceVersion"] = version.into();
    }
    body["apiVersion"] = "admissionregistration.k8s.io/v1".into();
    body["kind"] = "ValidatingWebhookConfiguration".into();
    let name = config.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(crate::controller::FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_roster_resources_can_ever_be_blocked() {
        let c = configuration(
            "roster",
            &Endpoint::Url("https://127.0.0.1:8443/validate".into()),
            Some(b"CA"),
            &[],
            DEFAULT_TIMEOUT_SECONDS,
        );
        let hooks = c.webhooks.unwrap();
        assert_eq!(hooks.len(), 1);
        let h = &hooks[0];
        assert_eq!(h.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(h.side_effects, "None");
        assert_eq!(h.admission_review_versions, vec!["v1"]);
        assert_eq!(h.match_policy.as_deref(), Some("Equivalent"));
        assert_eq!(h.timeout_seconds, Some(DEFAULT_TIMEOUT_SECONDS));
        assert!(TIMEOUT_SECONDS.contains(&DEFAULT_TIMEOUT_SECONDS.into()));
        assert!(
            h.namespace_selector.is_none(),
            "all namespaces when none are given"
        );
        let rules = h.rules.as_ref().unwrap();
        assert_eq!(rules.len(), 2);
        for rule in rules {
            assert_eq!(
                rule.api_groups.as_deref(),
                Some(&["roster.dev".to_string()][..])
            );
            assert!(!rule.resources.as_ref().unwrap().iter().any(|r| r == "*"));
        }
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rules[0].operations,
            Some(strings(&["CREATE", "UPDATE", "DELETE"]))
        );
        assert!(
            !rules[0]
                .resources
                .as_ref()
                .unwrap()
                .iter()
                .any(|r| r.contains('/'))
        );
        // Status is written only by updates; no other subresource is ever reviewed.
        assert_eq!(rules[1].operations, Some(strings(&["UPDATE"])));
        assert!(
            rules[1]
                .resources
                .as_ref()
                .unwrap()
                .iter()
                .all(|r| r.ends_with("/status"))
        );
        assert_eq!(h.client_config.ca_bundle.as_ref().unwrap().0, b"CA");
        let conditions = h.match_conditions.as_ref().unwrap();
        assert_eq!(conditions.len(), 1);
        for user in crate::rules::actor::KUBERNETES_CONTROLLERS {
            assert!(conditions[0].expression.contains(user), "{user}");
        }
        assert!(conditions[0].expression.contains("'DELETE'"));
    }

    #[test]
    fn endpoints_parse_with_clear_errors() {
        assert!(matches!(
            Endpoint::parse(None, Some("roster-system/roster")),
            Ok(Some(Endpoint::Service { port: 443, .. }))
        ));
        assert!(matches!(
            Endpoint::parse(None, Some("roster-system/roster:9443")),
            Ok(Some(Endpoint::Service { port: 9443, .. }))
        ));
        assert!(
            Endpoint::parse(Some("http://x/validate"), None)
                .unwrap_err()
                .to_string()
                .contains("https://")
        );
        assert!(
            Endpoint::parse(None, Some("roster"))
                .unwrap_err()
                .to_string()
                .contains("NAMESPACE/NAME")
        );
        assert!(Endpoint::parse(None, None).unwrap().is_none());
    }

    #[test]
    fn namespaces_restrict_the_webhook_by_name() {
        let c = configuration(
            "t",
            &Endpoint::Url("https://x/validate".into()),
            None,
            &["a".into(), "b".into()],
            DEFAULT_TIMEOUT_SECONDS,
        );
        let sel = c.webhooks.unwrap()[0].namespace_selector.clone().unwrap();
        let expr = &sel.match_expressions.unwrap()[0];
        assert_eq!(expr.key, "kubernetes.io/metadata.name");
        assert_eq!(
            expr.values.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
    }

    #[test]
    fn the_timeout_is_the_one_given() {
        let c = configuration(
            "t",
            &Endpoint::Url("https://x/validate".into()),
            None,
            &[],
            12,
        );
        assert_eq!(c.webhooks.unwrap()[0].timeout_seconds, Some(12));
    }
}
