//! The agent's HTTP server: Prometheus metrics, liveness and readiness.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Clone)]
struct Shared {
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
}

/// The routes: `GET /metrics` (OpenMetrics text), `GET /healthz` (200 while the process
/// serves), `GET /readyz` (200 while `ready` holds true, else 503): pass it
/// [`SyncBuilder::readiness`](sync_core::SyncBuilder::readiness).
pub fn router(registry: Arc<Registry>, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Shared { registry, ready })
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
///
/// # Errors
///
/// When accepting connections fails.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(registry, ready))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {e}\n"),
        ),
    }
}

async fn readyz(State(s): State<Shared>) -> (StatusCode, &'static str) {
    if *s.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches filling, or a watch failing for longer than the threshold\n",
        )
    }
}

/// A token cancelled on SIGTERM or Ctrl-C, for the agents' shutdown.
///
/// # Errors
///
/// When the SIGTERM handler cannot be installed.
pub fn shutdown_on_signal() -> std::io::Result<tokio_util::sync::CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
        }
        on_signal.cancel();
    });
    Ok(shutdown)
}
