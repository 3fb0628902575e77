//! The accept loop: hyper's HTTP/1.1 connection builder with a timer, a header read timeout,
//! header count and buffer caps, a connection cap, and back-off on accept errors — none of which
//! `axum::serve` exposes. Runs on its own small tokio runtime, so sync programs can start it.

use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::http::toolkit::{PeerAddr, Stopping};

/// Limits of the HTTP front. The defaults suit a desktop app or a test fixture on loopback.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Time allowed to send the request head (default 10 s): slow-header clients are cut off.
    pub header_read_timeout: Duration,
    /// Most request headers (default 100); more is 431.
    pub max_headers: usize,
    /// Largest request head in bytes (default 64 KiB); more is 431.
    pub max_head_bytes: usize,
    /// Most open connections (default 1024); further clients wait in the accept queue.
    pub max_connections: usize,
    /// Largest request body in bytes (default 2 MiB), also for chunked bodies; more is 413.
    pub max_body_bytes: usize,
    /// Largest upload body in bytes (default 256 MiB): multipart bodies and the file routes.
    /// Each bucket's own size limit is enforced exactly as the bytes arrive; this is the
    /// ceiling above every bucket.
    pub max_upload_bytes: usize,
    /// Longest time a request may take (default 30 s); then 408.
    pub request_timeout: Duration,
    /// Worker threads of the front's runtime (default 2).
    pub worker_threads: usize,
    /// Write one line per request to stderr: method, path (never the query string, which may
    /// carry a key), status and time. Default off (`larder serve` turns it on).
    pub log_requests: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_head_bytes: 64 * 1024,
            max_connections: 1024,
            max_body_bytes: 2 * 1024 * 1024,
            max_upload_bytes: 256 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            worker_threads: 2,
            log_requests: false,
        }
    }
}

/// The HTTP front of a database.
///
/// ```
/// # fn main() -> larder::Result<()> {
/// let db = larder::Db::in_memory()?;
/// let server = larder::Server::start(db, "127.0.0.1:0")?;
/// assert!(server.url().starts_with("http://127.0.0.1:"));
/// server.shutdown();
/// # Ok(()) }
/// ```
pub struct Server;

impl Server {
    /// Serves `db` on `addr` (port 0 picks a free port) with the default limits.
    ///
    /// # Errors
    /// `Storage` if the address cannot be bound.
    pub fn start(db: Db, addr: impl ToSocketAddrs) -> Result<ServerHandle> {
        Self::start_with(db, addr, ServerConfig::default())
    }

    /// Serves `db` on `addr` with the given limits.
    ///
    /// # Errors
    /// `Storage` if the address cannot be bound or the runtime cannot start.
    pub fn start_with(
        db: Db,
        addr: impl ToSocketAddrs,
        config: ServerConfig,
    ) -> Result<ServerHandle> {
        let listener = StdListener::bind(addr).map_err(Error::storage)?;
        Self::start_on(db, listener, config)
    }

    /// Serves `db` on a socket already bound, so a program can claim its port before it opens
    /// or creates anything (what `larder serve` does).
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    /// let server = larder::Server::start_on(
    ///     larder::Db::in_memory()?,
    ///     listener,
    ///     larder::ServerConfig::default(),
    /// )?;
    /// assert!(server.url().starts_with("http://127.0.0.1:"));
    /// server.shutdown();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `Storage` if the socket cannot be set up or the runtime cannot start.
    pub fn start_on(db: Db, listener: StdListener, config: ServerConfig) -> Result<ServerHandle> {
        listener.set_nonblocking(true).map_err(Error::storage)?;
        let local = listener.local_addr().map_err(Error::storage)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("larder-http")
            .enable_all()
            .build()
            .map_err(Error::storage)?;
        let (stop, stopped) = watch::channel(false);
        // Mails link to larder's own pages when no app URL is configured.
        db.store().set_served_url(format!("http://{local}"));
        let router = super::router(db, &config);
        let thread = std::thread::Builder::new()
            .name("larder-http-accept".into())
            .spawn(move || {
                runtime.block_on(serve(listener, router, config, stopped));
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .map_err(Error::storage)?;
        Ok(ServerHandle {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }
}

/// A running server. Dropping it shuts the server down gracefully.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ServerHandle {
    /// The bound address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish (up to 5 s), and returns when the server
    /// has stopped.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Blocks until the server stops (another thread calling [`ServerHandle::shutdown`] or the
    /// process ending).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// A handle that can stop the server from another thread (e.g. a signal handler).
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Stops a server from anywhere.
#[derive(Debug, Clone)]
pub struct Stopper(watch::Sender<bool>);

impl Stopper {
    /// Asks the server to stop gracefully.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

async fn serve(
    listener: StdListener,
    router: axum::Router,
    config: ServerConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_headers(config.max_headers)
        .max_buf_size(config.max_head_bytes.max(8192))
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        // Wait for a free connection slot before accepting: over the cap, clients queue in the
        // kernel's backlog instead of costing memory here.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stopped.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors and friends: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let builder = builder.clone();
        let mut stop = stopped.clone();
        let stopping = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(PeerAddr(peer));
                    request.extensions_mut().insert(Stopping(stopping.clone()));
                    router.clone().oneshot(request)
                },
            );
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
        });
    }
    // Let connections in flight finish: every permit back means every connection closed.
    let all = u32::try_from(config.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.acquire_many(all)).await;
}
