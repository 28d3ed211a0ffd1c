//! `roster self-test`: proves an installation works, from inside the cluster (the chart's
//! `helm test` pod) or from anywhere with a kubeconfig. It checks that the API server serves the
//! four roster kinds, and that roster's admission webhook answers: a server-side dry run that only
//! the webhook refuses must be refused by it, with its reason.
//!
//! Deciding whether an answer passes is pure ([`discovery_check`], [`webhook_check`]); [`run`] only
//! asks the API server.

use std::fmt;
use std::path::PathBuf;

use kube::api::{Api, PostParams};

use crate::api::Organization;

/// Checks that roster is installed and its admission webhook answers.
#[derive(clap::Args, Debug, Clone)]
pub struct SelfTestArgs {
    /// Kubeconfig to use; without it, the in-cluster service account (or $KUBECONFIG,
    /// ~/.kube/config).
    #[arg(long, env = "ROSTER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Namespace of the dry-run request; one the webhook applies to (a watched namespace, when
    /// roster watches some). Default: the pod's namespace in a cluster, else the kubeconfig's.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

/// The kinds roster serves, as API resources.
pub const KINDS: [&str; 4] = ["organizations", "memberships", "invites", "teams"];

/// The group and version roster serves them in.
pub const GROUP_VERSION: &str = "roster.dev/v1alpha1";

/// The Organization the dry run would create (nothing is stored: `dryRun=All`).
pub const PROBE: &str = "roster-self-test";

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub check: &'static str,
    pub passed: bool,
    pub detail: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        write!(f, "{verdict} {}: {}", self.check, self.detail)
    }
}

fn outcome(check: &'static str, passed: bool, detail: impl Into<String>) -> Outcome {
    Outcome {
        check,
        passed,
        detail: detail.into(),
    }
}

/// Whether discovery of [`GROUP_VERSION`] (`served`: its resources, or why it failed) lists every
/// kind.
pub fn discovery_check(served: Result<Vec<String>, String>) -> Outcome {
    const CHECK: &str = "CRDs";
    let served = match served {
        Ok(served) => served,
        Err(e) => return outcome(CHECK, false, format!("{GROUP_VERSION} is not served: {e}")),
    };
    let missing: Vec<&str> = KINDS
        .into_iter()
        .filter(|k| !served.iter().any(|s| s == k))
        .collect();
    if missing.is_empty() {
        let kinds = KINDS.join(", ");
        outcome(CHECK, true, format!("{GROUP_VERSION} serves {kinds}"))
    } else {
        let missing = missing.join(", ");
        outcome(
            CHECK,
            false,
            format!("{GROUP_VERSION} does not serve {missing}: are roster's CRDs installed?"),
        )
    }
}

/// What the API server answered to the dry-run create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Allowed,
    /// Refused, with the API server's status message.
    Refused(String),
    /// No answer (the API server could not be reached).
    Unreachable(String),
}

/// The rules only roster's webhook refuses a dry-run Organization create with: the caller is no
/// platform principal, or (in roster's own namespace, where the chart's test runs unless roster
/// watches a list of namespaces) the namespace is excluded from every organization.
const EXPECTED_RULES: [&str; 2] = ["[rule PlatformOnly]", "[rule ExcludedNamespace]"];

/// Whether the dry-run create of an Organization by a caller that is no platform principal was
/// refused by roster's webhook, for a reason only the webhook can see: the caller, or the namespace
/// roster runs in.
pub fn webhook_check(answer: &Answer) -> Outcome {
    const CHECK: &str = "webhook";
    let webhook = crate::webhook::config::WEBHOOK_NAME;
    match answer {
        Answer::Allowed => outcome(
            CHECK,
            false,
            format!(
                "a dry-run Organization create was ALLOWED: no {webhook} webhook reviewed it (is the ValidatingWebhookConfiguration there, for this namespace?), or this caller is a platform principal"
            ),
        ),
        Answer::Refused(m)
            if m.contains(&format!("\"{webhook}\" denied"))
                && EXPECTED_RULES.iter().any(|r| m.contains(r)) =>
        {
            outcome(
                CHECK,
                true,
                format!(
                    "roster's admission webhook answered and refused a dry-run Organization create: {m}"
                ),
            )
        }
        Answer::Refused(m) if m.contains(&format!("\"{webhook}\" denied")) => outcome(
            CHECK,
            false,
            format!(
                "roster's webhook answered, but not with [rule PlatformOnly] or [rule ExcludedNamespace], what it tells callers that are no platform principals (is this caller one?): {m}"
            ),
        ),
        Answer::Refused(m) if m.contains("failed calling webhook") => outcome(
            CHECK,
            false,
            format!(
                "the API server could not call roster's webhook (are roster's pods ready, is its certificate trusted?): {m}"
            ),
        ),
        Answer::Refused(m) if m.contains("cannot create resource") => outcome(
            CHECK,
            false,
            format!(
                "refused by RBAC before the webhook was asked (this caller needs create on organizations.roster.dev): {m}"
            ),
        ),
        Answer::Refused(m) => outcome(
            CHECK,
            false,
            format!("refused, but not by roster's webhook: {m}"),
        ),
        Answer::Unreachable(e) => {
            outcome(CHECK, false, format!("no answer from the API server: {e}"))
        }
    }
}

/// The Organization of the dry run: valid for the CRD's schema and CEL rules, so that only the
/// webhook refuses it (creating Organizations is for platform principals).
fn probe() -> Organization {
    serde_json::from_value(serde_json::json!({
        "apiVersion": GROUP_VERSION, "kind": "Organization",
        "metadata": { "name": PROBE },
        "spec": {}
    }))
    .expect("a valid Organization")
}

/// Asks the API server what it serves in [`GROUP_VERSION`].
async fn discover(client: &kube::Client) -> Result<Vec<String>, String> {
    let list = client
        .list_api_group_resources(GROUP_VERSION)
        .await
        .map_err(|e| e.to_string())?;
    Ok(list.resources.into_iter().map(|r| r.name).collect())
}

/// A server-side dry run (`dryRun=All`: nothing is stored) of the probe's creation in `namespace`.
async fn dry_run(client: &kube::Client, namespace: &str) -> Answer {
    let api: Api<Organization> = Api::namespaced(client.clone(), namespace);
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match api.create(&params, &probe()).await {
        Ok(_) => Answer::Allowed,
        Err(kube::Error::Api(status)) => Answer::Refused(status.message),
        Err(e) => Answer::Unreachable(e.to_string()),
    }
}

/// Runs the checks, printing a line for each; true when all passed.
pub async fn run(args: SelfTestArgs) -> anyhow::Result<bool> {
    let client = crate::run::client(args.kubeconfig.as_deref()).await?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let discovered = discovery_check(discover(&client).await);
    println!("{discovered}");
    let answered = webhook_check(&dry_run(&client, &namespace).await);
    println!("{answered}");
    Ok(discovered.passed && answered.passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(kinds: &[&str]) -> Result<Vec<String>, String> {
        Ok(kinds.iter().map(|k| k.to_string()).collect())
    }

    #[test]
    fn discovery_passes_only_with_all_four_kinds() {
        let all = discovery_check(served(&[
            "organizations",
            "organizations/status",
            "memberships",
            "invites",
            "teams",
        ]));
        assert!(all.passed, "{all}");
        let some = discovery_check(served(&["organizations", "memberships"]));
        assert!(!some.passed);
        assert!(some.detail.contains("invites, teams"), "{some}");
        let none = discovery_check(Err(
            "the server could not find the requested resource".into()
        ));
        assert!(!none.passed);
        assert!(none.to_string().starts_with("FAIL CRDs: "), "{none}");
    }

    #[test]
    fn roster_refusing_its_own_namespace_passes_too() {
        let excluded = Answer::Refused(
            "admission webhook \"validate.roster.dev\" denied the request: roster: namespace roster-system is excluded by the installer (--excluded-namespaces) [rule ExcludedNamespace]".into(),
        );
        assert!(webhook_check(&excluded).passed);
    }

    #[test]
    fn only_roster_webhooks_refusal_passes() {
        let denied = Answer::Refused(
            "admission webhook \"validate.roster.dev\" denied the request: roster: creating an Organization is for platform principals [rule PlatformOnly]".into(),
        );
        let pass = webhook_check(&denied);
        assert!(pass.passed, "{pass}");
        assert!(pass.to_string().starts_with("PASS webhook: "));
        for (answer, says) in [
            (Answer::Allowed, "ALLOWED"),
            (
                Answer::Refused("Internal error occurred: failed calling webhook \"validate.roster.dev\": failed to call webhook: Post \"https://roster.roster-system.svc:443/validate?timeout=5s\": no endpoints available".into()),
                "could not call",
            ),
            (
                Answer::Refused("organizations.roster.dev \"roster-self-test\" is forbidden: User \"system:serviceaccount:x:y\" cannot create resource \"organizations\"".into()),
                "RBAC",
            ),
            (
                Answer::Refused("admission webhook \"other.example.com\" denied the request: [rule PlatformOnly]".into()),
                "not by roster's webhook",
            ),
            (
                // roster's webhook, but another rule: not the answer a non-platform caller gets.
                Answer::Refused("admission webhook \"validate.roster.dev\" denied the request: roster: x [rule Duplicate]".into()),
                "platform principal",
            ),
            (Answer::Unreachable("connection refused".into()), "no answer"),
        ] {
            let fail = webhook_check(&answer);
            assert!(!fail.passed, "{answer:?}");
            assert!(fail.detail.contains(says), "{answer:?}: {fail}");
        }
    }
}
