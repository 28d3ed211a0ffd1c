//! What can go wrong in a reconcile, typed and sorted into a few categories (the `category` label
//! of `roster_reconcile_errors_total`).
//!
//! One object's failure never stops the rest of its org: each is a [`Failure`], collected, and the
//! reconcile ends in [`Error::Failed`] with all of them, so that it is retried with backoff.

/// Every category a reconcile error is counted under, so that each series exists (at 0) from the
/// start: alerts and dashboards find `roster_reconcile_errors_total` before the first failure.
pub const CATEGORIES: [&str; 7] = [
    "ApiConflict",
    "ApiUnreachable",
    "ApiWrite",
    "CodeSecret",
    "Bindings",
    "NamespaceLabel",
    "Internal",
];

/// One object that could not be written (or, for an Invite, whose code Secret could not be made).
/// The messages are those of the conditions and Events that report them.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The metadata or status of an object roster reconciles, or its deletion.
    #[error("{kind} {name}: {source}")]
    Write {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The invite code Secret of an Invite: created, or read.
    #[error("Invite {invite}: {source}")]
    CodeSecret {
        invite: String,
        #[source]
        source: kube::Error,
    },
    /// A RoleBinding applied.
    #[error("RoleBinding {namespace}/{name}: {source}")]
    ApplyBinding {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// A RoleBinding the organization should no longer have.
    #[error("removing RoleBinding {namespace}/{name}: {source}")]
    RemoveBinding {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The data-region label of an org or workload namespace.
    #[error("labelling namespace {namespace}: {source}")]
    LabelNamespace {
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

impl Failure {
    /// A failed write of `obj`, named after it.
    pub fn write<K: kube::Resource<DynamicType = ()>>(obj: &K, source: kube::Error) -> Failure {
        Failure::Write {
            kind: K::kind(&()).into_owned(),
            name: kube::ResourceExt::name_any(obj),
            source,
        }
    }

    fn api_error(&self) -> &kube::Error {
        match self {
            Failure::Write { source, .. }
            | Failure::CodeSecret { source, .. }
            | Failure::ApplyBinding { source, .. }
            | Failure::RemoveBinding { source, .. }
            | Failure::LabelNamespace { source, .. } => source,
        }
    }

    /// What kind of failure this is, for the metrics (one of [`CATEGORIES`]): whatever the step, a
    /// conflict (someone wrote first; the next reconcile reads again) and an API server that could
    /// not be reached are their own categories; otherwise the step that failed.
    pub fn category(&self) -> &'static str {
        match self.api_error() {
            kube::Error::Api(s) if s.code == 409 => return "ApiConflict",
            kube::Error::Api(_) => {}
            _ => return "ApiUnreachable",
        }
        match self {
            Failure::Write { .. } => "ApiWrite",
            Failure::CodeSecret { .. } => "CodeSecret",
            Failure::ApplyBinding { .. } | Failure::RemoveBinding { .. } => "Bindings",
            Failure::LabelNamespace { .. } => "NamespaceLabel",
        }
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writes that failed, one per object; everything else in the org was written.
    #[error("{} write(s) failed: {}", .0.len(), first_few(.0))]
    Failed(Vec<Failure>),
}

impl Error {
    /// The category of the first failure (in the order of the reconcile's steps): the one to look
    /// at first, as the later ones often follow from it.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Failed(failures) => failures.first().map_or("Internal", Failure::category),
        }
    }
}

/// The first failures, enough for a log line (an org of 10,000 members may fail 10,000 times).
fn first_few(failed: &[Failure]) -> String {
    let mut s = failed
        .iter()
        .take(3)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if failed.len() > 3 {
        s.push_str("; ...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("no", "Reason").with_code(code),
        ))
    }

    #[test]
    fn conflicts_are_their_own_category_whatever_the_step() {
        let binding = |source| Failure::ApplyBinding {
            namespace: "work".into(),
            name: "b".into(),
            source,
        };
        assert_eq!(binding(api(409)).category(), "ApiConflict");
        assert_eq!(binding(api(422)).category(), "Bindings");
        let failed = Error::Failed(vec![binding(api(500)), binding(api(409))]);
        assert_eq!(failed.category(), "Bindings");
        assert!(
            failed
                .to_string()
                .starts_with("2 write(s) failed: RoleBinding work/b: ")
        );
        assert_eq!(Error::Failed(vec![]).category(), "Internal");
    }
}
