//! Prometheus metrics and the HTTP endpoints `/metrics`, `/healthz` and `/readyz`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::InvitePhase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    pub outcome: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    pub category: String,
}

/// Which webhook certificate an expiry is of.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum CertificateKind {
    /// The certificate the webhook serves.
    Serving,
    /// The CA that signed it.
    Ca,
}

impl CertificateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateKind::Serving => "serving",
            CertificateKind::Ca => "ca",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabel {
    pub certificate: String,
}

/// One e-mail attempt: which message, and `sent`, `failed` (retried), `refused` or `unknown`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabel {
    pub message: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    pub kind: String,
    pub what: String,
}

/// Everything roster measures about itself. Never labelled by invite code or user.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    /// By the category of the error (`controller::Error::category`).
    pub reconcile_errors: Family<CategoryLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub api_writes: Family<WriteLabel, Counter>,
    /// Reads of an invite code Secret's data (the caches hold only the Secrets' metadata).
    pub invite_code_reads: Counter,
    invites: Family<PhaseLabel, Gauge>,
    orgs_without_owner: Gauge,
    /// 1 while this replica runs the controller, so that `sum(roster_leader) == 0` alerts when
    /// no replica does (every replica serves the webhook either way).
    leader: Gauge,
    admission_requests: Counter,
    admission_duration: Histogram,
    admission_decisions: Family<DecisionLabel, Counter>,
    /// When the webhook's serving certificate and its CA expire (Unix seconds), so that an alert
    /// fires when renewal stopped working, long before the API server refuses the certificate.
    certificate_expiry: Family<CertificateLabel, Gauge>,
    /// E-mail attempts by message and result, and how long each took.
    emails: Family<EmailLabel, Counter>,
    email_duration: Histogram,
    /// Per org namespace, so that the gauges are sums of the latest reconcile of each org.
    per_org: Mutex<HashMap<String, OrgTally>>,
    ready: AtomicBool,
}

#[derive(Default, Clone, Copy)]
pub struct OrgTally {
    pub invites: [i64; 4],
    pub without_owner: bool,
}

fn phase_index(p: InvitePhase) -> usize {
    match p {
        InvitePhase::Pending => 0,
        InvitePhase::Accepted => 1,
        InvitePhase::Expired => 2,
        InvitePhase::Revoked => 3,
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("roster"),
            reconciles: Counter::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Histogram::new([
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
            ]),
            api_writes: Family::default(),
            invite_code_reads: Counter::default(),
            invites: Family::default(),
            orgs_without_owner: Gauge::default(),
            leader: Gauge::default(),
            admission_requests: Counter::default(),
            admission_duration: Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
            ]),
            admission_decisions: Family::default(),
            certificate_expiry: Family::default(),
            emails: Family::default(),
            email_duration: Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0]),
            per_org: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
        };
        metrics.register();
        for category in crate::controller::error::CATEGORIES {
            let label = CategoryLabel {
                category: category.into(),
            };
            drop(metrics.reconcile_errors.get_or_create(&label));
        }
        metrics
    }
}

impl Metrics {
    /// Registers every metric, in the order `/metrics` lists them.
    fn register(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "invite_code_reads",
            "Reads of an invite code Secret's data, only ever for a Secret a live Invite owns",
            self.invite_code_reads.clone(),
        );
        registry.register(
            "admission_requests",
            "AdmissionReviews received",
            self.admission_requests.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time to decide one AdmissionReview",
            self.admission_duration.clone(),
        );
        registry.register(
            "admission_decisions",
            "Admission decisions by outcome and reason",
            self.admission_decisions.clone(),
        );
        registry.register(
            "webhook_certificate_expiry_timestamp_seconds",
            "When the webhook's serving certificate (certificate=serving) and the CA that signed it (certificate=ca) expire, in Unix seconds",
            self.certificate_expiry.clone(),
        );
        registry.register(
            "emails",
            "E-mail attempts through the SMTP relay by message (Invitation, Resend, Cancellation, BillingAdmin) and result (sent, failed: retried, refused: not retried, unknown: the connection broke while sending)",
            self.emails.clone(),
        );
        registry.register(
            "email_duration_seconds",
            "Time of one e-mail attempt, from connecting to the relay to its answer",
            self.email_duration.clone(),
        );
        registry.register(
            "reconciles",
            "Organization reconciles",
            self.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Organization reconciles that failed, by the category of the error",
            self.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time to reconcile one organization",
            self.reconcile_duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes to the API server by kind and what was written",
            self.api_writes.clone(),
        );
        registry.register("invites", "Invites by phase", self.invites.clone());
        registry.register(
            "organizations_without_owner",
            "Organizations with members and no effective owner",
            self.orgs_without_owner.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica runs the controller (holds the Lease, or leader election is off)",
            self.leader.clone(),
        );
    }

    /// Starts timing a reconcile; the duration is observed when the guard drops.
    pub fn reconcile_timer(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            metrics: self,
            start: Instant::now(),
        }
    }

    pub fn admission(&self, outcome: &str, reason: &str, seconds: f64) {
        self.admission_requests.inc();
        self.admission_duration.observe(seconds);
        self.admission_decisions
            .get_or_create(&DecisionLabel {
                outcome: outcome.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts one e-mail attempt.
    pub fn email(&self, message: &str, result: &str, seconds: f64) {
        self.email_duration.observe(seconds);
        self.emails
            .get_or_create(&EmailLabel {
                message: message.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Counts a failed reconcile under the category of its error.
    pub fn reconcile_error(&self, category: &str) {
        self.reconcile_errors
            .get_or_create(&CategoryLabel {
                category: category.into(),
            })
            .inc();
    }

    pub fn write(&self, kind: &str, what: &str) {
        self.api_writes
            .get_or_create(&WriteLabel {
                kind: kind.into(),
                what: what.into(),
            })
            .inc();
    }

    /// Records the latest state of one org and refreshes the totals.
    pub fn tally(
        &self,
        namespace: &str,
        phases: impl IntoIterator<Item = InvitePhase>,
        without_owner: bool,
    ) {
        let mut t = OrgTally {
            without_owner,
            ..Default::default()
        };
        for p in phases {
            t.invites[phase_index(p)] += 1;
        }
        let mut per_org = self.per_org.lock().expect("metrics lock");
        per_org.insert(namespace.to_string(), t);
        let mut totals = [0i64; 4];
        for o in per_org.values() {
            for (i, n) in o.invites.iter().enumerate() {
                totals[i] += n;
            }
        }
        for p in [
            InvitePhase::Pending,
            InvitePhase::Accepted,
            InvitePhase::Expired,
            InvitePhase::Revoked,
        ] {
            self.invites
                .get_or_create(&PhaseLabel {
                    phase: p.as_str().into(),
                })
                .set(totals[phase_index(p)]);
        }
        self.orgs_without_owner
            .set(per_org.values().filter(|o| o.without_owner).count() as i64);
    }

    /// Records when the served certificate or its CA expires.
    pub fn set_certificate_expiry(&self, certificate: CertificateKind, at: std::time::SystemTime) {
        let seconds = at
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.certificate_expiry
            .get_or_create(&CertificateLabel {
                certificate: certificate.as_str().into(),
            })
            .set(seconds);
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encode metrics");
        out
    }
}

pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: std::sync::Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::{Router, http::StatusCode, routing::get};
    let m = metrics.clone();
    let app = Router::new()
        .route("/metrics", get(move || std::future::ready(m.encode())))
        .route("/healthz", get(|| std::future::ready("ok")))
        .route(
            "/readyz",
            get(move || {
                let ready = metrics.is_ready();
                std::future::ready(if ready {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: caches not synced, or shutting down",
                    )
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving metrics and health");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_errors_are_counted_by_category() {
        let metrics = Metrics::default();
        metrics.reconcile_error("Bindings");
        metrics.reconcile_error("Bindings");
        metrics.reconcile_error("ApiConflict");
        let text = metrics.encode();
        assert!(
            text.contains("roster_reconcile_errors_total{category=\"Bindings\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("roster_reconcile_errors_total{category=\"ApiConflict\"} 1"),
            "{text}"
        );
    }
}
