//! The connections of one listener (TCP or the Unix socket): at most `max_connections` served at
//! once (the rest wait in the kernel's backlog, so file descriptors can't run out), the TLS
//! handshake where the listener has one and headers each read within `header_timeout` (a
//! half-sent handshake or request, or an idle keep-alive connection, is closed then), and a
//! graceful end that waits a little for answers under way.

use super::peer::Peer;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// How long a stopping daemon waits for answers under way (event streams never end by
/// themselves).
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` resolves, over TLS if `tls` is given; `peer` says
/// who a connection is from.
pub async fn serve<L: Listener>(
    mut listener: L,
    router: Router,
    peer: fn(&L::Io, &L::Addr) -> Peer,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let peer = peer(&io, &addr);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let (watcher, tls) = (graceful.watcher(), tls.clone());
        // The handshake is the connection's own: a slow one holds its permit, not the loop.
        tokio::spawn(async move {
            match tls {
                None => connection(io, service, limits, watcher).await,
                Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => connection(stream, service, limits, watcher).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "a TLS handshake failed"),
                    Err(_) => tracing::debug!("a TLS handshake took longer than the header timeout"),
                },
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::debug!("answers still under way at shutdown were cut");
    }
}

async fn connection<I, S>(io: I, service: S, limits: ConnectionLimits, watcher: hyper_util::server::graceful::Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = axum::response::Response, Error = std::convert::Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let served = hyper::server::conn::http1::Builder::new().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(served).await {
        tracing::debug!(error = %e, "connection ended");
    }
}
