//! The connection every command shares, who the caller is, and waiting for the operator.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, DeleteParams, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::args::human;
use super::output::table;
use super::{DryRun, Global, Output};

/// The field manager of the plugin's writes, so that `managedFields` say who changed what.
const FIELD_MANAGER: &str = "kubectl-roster";

/// A client acting as the caller, the org namespace, the output format and whether writes are
/// server dry runs.
pub(super) struct Session {
    pub(super) client: Client,
    pub(super) namespace: String,
    pub(super) output: Output,
    pub(super) no_headers: bool,
    pub(super) dry_run: bool,
}

impl Session {
    /// Parameters of a create: dryRun=All with `--dry-run=server`, so that the API server, RBAC
    /// and roster's webhook answer exactly as for the real request and store nothing.
    pub(super) fn post_params(&self) -> PostParams {
        PostParams {
            dry_run: self.dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        }
    }

    pub(super) fn patch_params(&self) -> PatchParams {
        PatchParams {
            dry_run: self.dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        }
    }

    pub(super) fn delete_params(&self) -> DeleteParams {
        DeleteParams {
            dry_run: self.dry_run,
            ..DeleteParams::default()
        }
    }

    /// What kubectl appends to a write's line in a dry run.
    pub(super) fn dry(&self) -> &'static str {
        if self.dry_run {
            " (server dry run)"
        } else {
            ""
        }
    }

    /// A table, with headers unless `--no-headers`.
    pub(super) fn table(&self, headers: &[&str], rows: &[Vec<String>]) -> String {
        table(headers, rows, !self.no_headers)
    }
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
        no_headers: global.no_headers,
        dry_run: global.dry_run == DryRun::Server,
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
            bail!("timed out after {} waiting for {what}", human(timeout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the API server refused the request as Forbidden.
pub(super) fn is_forbidden(e: &anyhow::Error) -> bool {
    api_code(e) == Some(403)
}

/// Whether the object changed since it was read (a resourceVersion precondition failed).
pub(super) fn is_conflict(e: &anyhow::Error) -> bool {
    api_code(e) == Some(409)
}

fn api_code(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        })
}

/// Reads, changes and writes an object until the write lands on the version it read: `attempt`
/// reads the object and writes its change with that resourceVersion as a precondition, and runs
/// again when someone else wrote in between (409 Conflict), so that two changes made at once
/// both count instead of one overwriting the other. roster's own status writes change the
/// resourceVersion too, hence a few more attempts than writers, a little apart.
pub(super) async fn retry_on_conflict<T, F, Fut>(mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    const ATTEMPTS: u32 = 10;
    for n in 1..ATTEMPTS {
        match attempt().await {
            Err(e) if is_conflict(&e) => {
                tokio::time::sleep(Duration::from_millis(10 * u64::from(n))).await
            }
            other => return other,
        }
    }
    attempt().await
}
