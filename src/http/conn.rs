//! The accept loop: one task per connection, with the limits `axum::serve` lacks.
//!
//! hyper's own `header_read_timeout` starts its timer whenever the connection waits for a
//! request head, including the quiet time between two requests on a kept-alive connection, so
//! it closed every idle keep-alive connection after 10 s and clients that reused one lost their
//! request in the race. Here the header timer starts at the first byte of a head ([`HeadWatch`])
//! and an idle connection lives for `idle_timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use tokio::sync::Notify;

/// Where a connection stands between request heads, shared by its IO, its service and its
/// watchdog.
struct HeadWatch {
    epoch: tokio::time::Instant,
    /// Milliseconds after `epoch`, plus one, when the first byte of the current request head
    /// arrived; 0 while no head is being read.
    started: AtomicU64,
    /// Requests whose response has not been fully written yet.
    in_flight: AtomicU32,
    /// HTTP/2 carries frames between requests (pings, settings): no head timer there.
    h2: AtomicBool,
    /// Woken when a head starts.
    started_notify: Notify,
}

impl HeadWatch {
    fn new(epoch: tokio::time::Instant) -> Self {
        HeadWatch {
            epoch,
            started: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            h2: AtomicBool::new(false),
            started_notify: Notify::new(),
        }
    }

    /// Bytes arrived: if nothing is in flight they begin a request head.
    fn on_bytes(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self.started.load(Ordering::Relaxed) == 0
        {
            let now = self.epoch.elapsed().as_millis() as u64 + 1;
            if self
                .started
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.started_notify.notify_one();
            }
        }
    }

    /// A head was parsed into a request: its timer stops until the response is written.
    fn begin(self: &Arc<Self>, version: axum::http::Version) -> InFlight {
        if version == axum::http::Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.store(0, Ordering::Release);
        InFlight(self.clone())
    }

    /// Resolves once a request head has been arriving for longer than `limit`.
    async fn overdue(&self, limit: Duration) {
        loop {
            let started = self.started.load(Ordering::Acquire);
            if started == 0 {
                // A permit stored by `notify_one` before this wait is not lost.
                self.started_notify.notified().await;
                continue;
            }
            let at = self.epoch + Duration::from_millis(started - 1) + limit;
            if tokio::time::Instant::now() >= at {
                if self.started.load(Ordering::Acquire) == started {
                    return;
                }
                continue;
            }
            tokio::time::sleep_until(at).await;
        }
    }
}

/// Held by a request until its response body is dropped (written or abandoned).
struct InFlight(Arc<HeadWatch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request body that notes when it has been read to its end.
struct ReadToEnd {
    inner: hyper::body::Incoming,
    done: Arc<AtomicBool>,
}

impl http_body::Body for ReadToEnd {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in flight until hyper has written it.
struct TrackedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's IO that notes when bytes last moved, for the idle timeout.
struct Watched<T> {
    io: T,
    epoch: tokio::time::Instant,
    /// Milliseconds after `epoch` when bytes last moved.
    last: Arc<AtomicU64>,
    head: Arc<HeadWatch>,
}

impl<T> Watched<T> {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
            self.head.on_bytes();
        }
        r
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Resolves once `last` is more than `idle` in the past.
async fn idle_for(epoch: tokio::time::Instant, last: Arc<AtomicU64>, idle: Duration) {
    loop {
        let at = epoch + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
        if tokio::time::Instant::now() >= at {
            return;
        }
        tokio::time::sleep_until(at).await;
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets open connections
/// finish for at most `grace`. Unlike `axum::serve` it enforces `[server]`
/// `header_read_timeout` (slowloris), `idle_timeout` and `max_connections_per_ip`.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    router: Router,
    config: Arc<crate::config::Config>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use tower::ServiceExt;

    let server = &config.server;
    let idle = server.idle_timeout.get();
    let max_per_ip = server.max_connections_per_ip;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Enforced by `HeadWatch` from a head's first byte instead (see the module docs).
        .header_read_timeout(None);
    let header_timeout = server.header_read_timeout.get();
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limiter = crate::limit::ConnLimiter::default();
    let refused_log = crate::limit::LogEvery::new(Duration::from_secs(10));
    let accept_log = crate::limit::LogEvery::new(Duration::from_secs(10));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    if let Some(held) = accept_log.allow() {
                        tracing::warn!("cannot accept a connection: {e} ({held} more not logged)");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A trusted proxy carries many clients; it limits them itself.
        let slot = if crate::limit::Cidr::any_contains(&server.trusted_proxies, peer.ip()) {
            None
        } else {
            match limiter.acquire(peer.ip(), max_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    if let Some(held) = refused_log.allow() {
                        tracing::warn!(
                            "closed a connection from {}: it already has {max_per_ip} open \
                             ([server] max_connections_per_ip; {held} more refusals not logged)",
                            peer.ip()
                        );
                    }
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let epoch = tokio::time::Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let head = Arc::new(HeadWatch::new(epoch));
        let io = Watched {
            io: stream,
            epoch,
            last: last.clone(),
            head: head.clone(),
        };
        let router = router.clone();
        let request_head = head.clone();
        let service = hyper::service::service_fn(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                let in_flight = request_head.begin(req.version());
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                let http1 = req.version() <= axum::http::Version::HTTP_11;
                let read = Arc::new(AtomicBool::new(http_body::Body::is_end_stream(req.body())));
                let done = read.clone();
                let req = req.map(|inner| axum::body::Body::new(ReadToEnd { inner, done }));
                let response = router.clone().oneshot(req);
                async move {
                    let mut response = response.await?;
                    // Answered before its body was read (a 413, a refused credential): hyper
                    // closes such a connection, so say so, or a client reuses it and its next
                    // request meets a closed socket.
                    if http1 && !read.load(Ordering::Acquire) {
                        response.headers_mut().insert(
                            axum::http::header::CONNECTION,
                            axum::http::HeaderValue::from_static("close"),
                        );
                    }
                    Ok::<_, std::convert::Infallible>(response.map(|inner| {
                        axum::body::Body::new(TrackedBody {
                            inner,
                            _in_flight: in_flight,
                        })
                    }))
                }
            },
        );
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                // Dropping the connection closes the socket.
                _ = idle_for(epoch, last, idle) => {}
                _ = head.overdue(header_timeout) => {}
            }
            drop(slot);
        });
    }
    drop(listener);
    let grace = config.server.shutdown_grace.get();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within {grace:?}; closing them");
    }
}
