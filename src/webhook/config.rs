//! The ValidatingWebhookConfiguration roster ships: `roster.dev` resources only, so that nothing
//! else in the cluster can ever be blocked by roster, even when it is down.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
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

/// The configuration for `endpoint`; with `namespaces`, it applies to those namespaces only.
pub fn configuration(
    name: &str,
    endpoint: &Endpoint,
    ca_bundle: Option<&[u8]>,
    namespaces: &[String],
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
            name: "validate.roster.dev".into(),
            admission_review_versions: vec!["v1".into()],
            client_config,
            failure_policy: Some("Fail".into()),
            match_policy: Some("Equivalent".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(5),
            namespace_selector,
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["roster.dev".into()]),
                api_versions: Some(vec!["*".into()]),
                operations: Some(vec!["CREATE".into(), "UPDATE".into(), "DELETE".into()]),
                resources: Some(vec![
                    "organizations".into(),
                    "memberships".into(),
                    "invites".into(),
                    "teams".into(),
                ]),
                scope: Some("Namespaced".into()),
            }]),
            ..Default::default()
        }]),
    }
}

/// Writes the configuration (with the CA bundle roster generated) by server-side apply.
pub async fn apply(
    client: &kube::Client,
    config: &ValidatingWebhookConfiguration,
) -> Result<(), kube::Error> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mut body = serde_json::to_value(config).expect("serializable");
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
