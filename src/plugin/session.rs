//! The connection every command shares, who the caller is, and waiting for the operator.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::{Global, Output};

/// A client acting as the caller, the org namespace and the output format.
pub(super) struct Session {
    pub(super) client: Client,
    pub(super) namespace: String,
    pub(super) output: Output,
}

pub(super) async fn connect(global: &Global) -> anyhow::Result<Session> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..Default::default()
    };
    let mut config = match &global.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &options).await?
        }
        None if global.context.is_some() => Config::from_kubeconfig(&options).await?,
        None => Config::infer().await?,
    };
    if let Some(user) = &global.as_user {
        config.auth_info.impersonate = Some(user.clone());
        if !global.as_group.is_empty() {
            config.auth_info.impersonate_groups = Some(global.as_group.clone());
        }
        if !global.as_user_extra.is_empty() {
            let mut extra: std::collections::HashMap<String, Vec<String>> = Default::default();
            for (key, value) in &global.as_user_extra {
                extra.entry(key.clone()).or_default().push(value.clone());
            }
            config.auth_info.impersonate_user_extra = Some(extra);
        }
    }
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok(Session {
        client: Client::try_from(config)?,
        namespace,
        output: global.output,
    })
}

/// The caller, as the API server sees them.
pub(super) struct Me {
    pub(super) username: String,
    pub(super) groups: Vec<String>,
}

pub(super) async fn whoami(client: &Client) -> anyhow::Result<Me> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review: SelfSubjectReview = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"
    }))?;
    let review = api
        .create(&PostParams::default(), &review)
        .await
        .context("find your username (SelfSubjectReview)")?;
    let info = review
        .status
        .and_then(|s| s.user_info)
        .ok_or_else(|| anyhow!("the API server did not say who you are"))?;
    Ok(Me {
        username: info
            .username
            .ok_or_else(|| anyhow!("the API server did not say who you are"))?,
        groups: info.groups.unwrap_or_default(),
    })
}

/// Polls `check` every 200 ms until it returns Some, or fails after `timeout` saying `what`.
pub(super) async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {}s waiting for {what}", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the API server refused the request as Forbidden.
pub(super) fn is_forbidden(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<kube::Error>(),
            Some(kube::Error::Api(s)) if s.code == 403
        )
    })
}
