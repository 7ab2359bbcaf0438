//! The HTTP accept loop: at most `max_connections` at once (more are closed at once and
//! counted), request headers must arrive within `header_read_timeout`, and a connection on
//! which nothing moves for `idle_timeout` is closed, so half-sent requests cannot hold the
//! server. At the stop it accepts no more and lets the requests in flight finish. With
//! `[http] certfile/keyfile` it serves HTTPS (the handshake, too, within
//! `header_read_timeout`).

use super::idle::Idle;
use super::HttpSection;
use crate::listen::Acceptor;
use crate::metrics::Metrics;
use crate::shutdown::Stopping;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long the stop waits for requests in flight.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` (over TLS with `tls`) until the stop.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    (limits, tls): (&HttpSection, Option<Arc<crate::tls::Server>>),
    metrics: Arc<Metrics>,
    mut stopping: Stopping,
) {
    let mut acceptor = Acceptor::new(listener, "http");
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let (socket, _peer) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            _ = stopping.wait() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.http_refused.fetch_add(1, Relaxed);
            continue; // Dropping the socket closes it.
        };
        let _ = socket.set_nodelay(true);
        let (app, limits, watcher, tls) =
            (app.clone(), limits.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let timeout = limits.header_read_timeout;
            match tls {
                None => connection(socket, app, &limits, watcher).await,
                Some(tls) => {
                    if let Ok(Ok(stream)) = tokio::time::timeout(timeout, tls.accept(socket)).await
                    {
                        connection(stream, app, &limits, watcher).await;
                    }
                }
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(FINISH_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("http requests still open {FINISH_TIMEOUT:?} after the stop");
    }
}

/// Serves one connection's requests until it closes or the stop.
async fn connection(
    socket: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    app: Router,
    limits: &HttpSection,
    watcher: Watcher,
) {
    let io = TokioIo::new(Idle::new(socket, limits.idle_timeout));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A client may shut its side down once the request is sent (`nc -N`, some embedded
        // stacks): it still gets its answer (the idle timeout ends the rest).
        .half_close(true)
        .serve_connection(io, TowerToHyperService::new(app));
    let _ = watcher.watch(connection).await;
}
