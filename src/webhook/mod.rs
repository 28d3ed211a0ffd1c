//! The validating admission webhook: HTTPS (rustls) on `/validate` for the four roster kinds, served
//! by every replica from the shared caches. Deciding is [`review`]'s job, which asks the rules.

pub mod certs;
pub mod config;
pub mod review;
pub mod rotation;
pub mod self_managed;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::metrics::Metrics;
pub use review::Decider;

struct Server {
    decider: Decider,
    metrics: Arc<Metrics>,
}

async fn validate(State(server): State<Arc<Server>>, body: Bytes) -> Response {
    let start = Instant::now();
    let answer = server.decider.review(&body).await;
    let (response, outcome, reason) = match answer {
        Ok((review, reason)) => {
            let allowed = review.response.as_ref().is_some_and(|r| r.allowed);
            (
                axum::Json(review).into_response(),
                if allowed { "allowed" } else { "denied" },
                reason,
            )
        }
        // Never a panic, never a guess: a body that is not an AdmissionReview is a client error.
        Err(error) => (
            (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
            "invalid",
            error.category(),
        ),
    };
    server
        .metrics
        .admission(outcome, reason, start.elapsed().as_secs_f64());
    response
}

/// The webhook's routes, without TLS (tests and benchmarks drive them directly too).
pub fn router(decider: Decider, metrics: Arc<Metrics>) -> Router {
    let ready = metrics.clone();
    Router::new()
        .route("/validate", post(validate))
        .route("/healthz", get(|| std::future::ready("ok")))
        .route(
            "/readyz",
            get(move || {
                let ok = ready.is_ready();
                std::future::ready(if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                })
            }),
        )
        .with_state(Arc::new(Server { decider, metrics }))
}

/// Binds the webhook's address now, so that a busy port fails the start with a clear error
/// instead of leaving a replica that looks healthy and answers nothing.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use anyhow::Context as _;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("bind the webhook to {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the webhook over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: axum_server::tls_rustls::RustlsConfig,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    tracing::info!(addr = %listener.local_addr()?, "serving the admission webhook");
    axum_server::from_tcp_rustls(listener, tls)?
        .handle(handle)
        .serve(app.into_make_service())
        .await?;
    Ok(())
}
