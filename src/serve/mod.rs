//! The collector (`accelprobe serve`): receives reports from validation pods, judges them again
//! against the requirements it holds ([`judge`]), stores them durably ([`store`]), serves node
//! status, metrics and a fleet page ([`api`]), and with `--kube` gates nodes through the
//! Kubernetes API ([`gate`]): only a node that passed loses its startup taint.
//!
//! The log (one line per event on stderr) is this command's output; everything else is data.

pub mod api;
pub mod gate;
pub mod judge;
pub mod metrics;
pub mod store;
pub mod summary;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::AppState;

/// Reports read and judged at the same time at most; more wait (bounds memory under load).
const MAX_CONCURRENT_POSTS: usize = 64;
/// After SIGTERM, how long open connections may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: String,
    pub db: PathBuf,
    pub token_file: Option<PathBuf>,
    pub requirements: Option<PathBuf>,
    pub insecure: bool,
    pub kube: bool,
    pub max_body: usize,
    /// Longest wait for a request's headers (idle kept-alive connections included).
    pub header_timeout: Duration,
}

/// Why the collector did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is wrong (exit 2).
    #[error("{0}")]
    Config(String),
    /// The service could not start: port, database, Kubernetes API (exit 3).
    #[error("{0}")]
    Start(String),
}

/// One log line on stderr, with a UTC timestamp.
pub fn log(line: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "{} accelprobe serve: {line}",
        crate::probe::now_rfc3339()
    );
}

/// Resolve `--listen`; without a token only loopback addresses are allowed unless `--insecure`.
fn listen_addr(opts: &ServeOptions, has_tokens: bool) -> Result<SocketAddr, ServeError> {
    let addrs: Vec<SocketAddr> = opts
        .listen
        .to_socket_addrs()
        .map_err(|e| {
            ServeError::Config(format!(
                "--listen {}: not an address to listen on ({e}); use HOST:PORT, e.g. 0.0.0.0:8080",
                opts.listen
            ))
        })?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(ServeError::Config(format!(
            "--listen {}: resolves to no address",
            opts.listen
        )));
    };
    if !has_tokens && !opts.insecure && addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(ServeError::Config(format!(
            "--listen {}: refusing to accept reports from the network without authentication; \
             give --token-file, or --insecure to accept anyone's reports",
            opts.listen
        )));
    }
    Ok(first)
}

/// Run the collector until SIGTERM or SIGINT.
pub fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    let tokens = match &opts.token_file {
        Some(p) => crate::feedback::read_tokens(p).map_err(ServeError::Config)?,
        None => Vec::new(),
    };
    let addr = listen_addr(&opts, !tokens.is_empty())?;
    let judge = judge::Judge::load(opts.requirements.as_deref()).map_err(ServeError::Config)?;
    let catalog = crate::verify::catalog::Catalog::builtin();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Start(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let store = store::Store::open(&opts.db).map_err(|e| ServeError::Start(e.to_string()))?;
        let gate = if opts.kube {
            // Events about Nodes live in `default`, where the API server accepts them.
            let g = gate::Gate::connect()
                .await
                .map_err(|e| ServeError::Start(e.to_string()))?;
            let version = g
                .check()
                .await
                .map_err(|e| ServeError::Start(e.to_string()))?;
            log(&format!("Kubernetes API reachable (server {version})"));
            Some(g)
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Start(format!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr().unwrap_or(addr);
        let (pools, pods) = judge.counts();
        for w in judge.warnings() {
            log(&format!("requirements: {w}"));
        }
        log(&format!(
            "listening on http://{local} (database {}, {} NodePool(s) and {} pod spec(s) from {} file(s), auth {}, gating {})",
            store.path().display(),
            pools,
            pods,
            judge.files.len(),
            if tokens.is_empty() { "off" } else { "bearer token" },
            if opts.kube { "on" } else { "off" },
        ));
        let counters = metrics::Counters::default();
        let gate_queue = match &gate {
            Some(g) => Some(start_gate_worker(g.clone(), store.clone(), counters.clone()).await),
            None => None,
        };
        let state = Arc::new(AppState {
            store,
            judge,
            catalog,
            tokens,
            counters,
            gate,
            gate_queue,
            posting: tokio::sync::Semaphore::new(MAX_CONCURRENT_POSTS),
            pools: Default::default(),
        });
        let app = api::router(state, opts.max_body);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut stopping = stop_rx.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            log("stopping: finishing open requests");
            let _ = stop_tx.send(true);
        });
        let server = serve_connections(listener, app, opts.header_timeout, stop_rx.clone());
        // Idle or slow connections must not hold the shutdown forever.
        let deadline = async move {
            stopped(&mut stopping).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            () = server => {}
            _ = deadline => log(&format!(
                "connections still open after {}s; closing them",
                SHUTDOWN_GRACE.as_secs()
            )),
        }
        drop(stop_rx);
        log("stopped");
        Ok(())
    })
}

/// Accept connections and serve each with HTTP/1.1 until `stopping` turns true; then let every
/// open connection finish its request and wait for them all. A connection that does not send
/// a request's headers within `header_timeout` (slow, or idle between requests) is closed, so
/// clients that connect and stall cannot pile up.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    // Every connection task holds a receiver; `closed()` resolves when the last is gone.
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    // One connection setting, copied into each connection's task.
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    log(&format!("cannot accept a connection: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut stop = stopping.clone();
        let open = open_rx.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(open);
        });
    }
    // Refuse new connections at once while the open ones finish.
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// Resolves once `stopping` is true (or its sender is gone).
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Wakes the gate worker for a node.
#[derive(Debug, Clone)]
pub struct GateQueue {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
}

impl GateQueue {
    /// Look at `node` again: its latest report is applied if it has not been yet.
    pub fn wake(&self, node: &str) {
        let _ = self.tx.send(node.to_string());
    }
}

/// Longest wait between two attempts at one node.
const GATE_MAX_DELAY: Duration = Duration::from_secs(300);

/// Start the gate worker: it applies the latest stored verdict of each node it is woken for,
/// one node at a time (so verdicts of one node are applied in the order they were stored),
/// marks it applied, and retries failures with exponential back-off. At start it is woken for
/// every node whose latest verdict was never applied (a crash, an API outage, a restart).
async fn start_gate_worker(
    gate: gate::Gate,
    store: store::Store,
    counters: metrics::Counters,
) -> GateQueue {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let queue = GateQueue { tx };
    let pending_at_start = store.ungated_nodes().await;
    let mut worker = GateWorker {
        gate,
        store,
        counters,
        requeue: queue.clone(),
        failures: HashMap::new(),
        unrecorded: HashMap::new(),
        retrying: Default::default(),
    };
    tokio::spawn(async move {
        while let Some(node) = rx.recv().await {
            worker.visit(node).await;
        }
    });
    match pending_at_start {
        Ok(nodes) => {
            if !nodes.is_empty() {
                log(&format!(
                    "{} node(s) have a verdict not yet applied; applying",
                    nodes.len()
                ));
            }
            for n in nodes {
                queue.wake(&n);
            }
        }
        Err(e) => log(&format!("cannot list verdicts not yet applied: {e}")),
    }
    queue
}

/// The gate worker's state between wake-ups.
struct GateWorker {
    gate: gate::Gate,
    store: store::Store,
    counters: metrics::Counters,
    requeue: GateQueue,
    /// Failed attempts in a row per node, for the back-off.
    failures: HashMap<String, u32>,
    /// Per node, a verdict applied to the cluster whose record in the database failed:
    /// (report id, the line to log once recorded). The next attempt records it without
    /// applying it again (which would post a second Event for a failed node).
    unrecorded: HashMap<String, (String, String)>,
    /// Nodes with a retry already scheduled: more failures (a new report for a node whose
    /// gate keeps failing) do not start more timers.
    retrying: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl GateWorker {
    /// Apply `node`'s latest verdict if it has not been applied, and record that it was.
    /// Whatever fails (reading the verdict, the API, recording) is retried later: a verdict
    /// the collector acknowledged is never dropped by the worker.
    async fn visit(&mut self, node: String) {
        let pending = match self.store.ungated(node.clone()).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.failures.remove(&node);
                self.unrecorded.remove(&node);
                return;
            }
            Err(e) => {
                return self.retry_later(&node, &format!("cannot read its latest verdict: {e}"))
            }
        };
        let line = match self.unrecorded.remove(&node) {
            Some((id, line)) if id == pending.report_id => line,
            _ => match self.apply(&node, &pending).await {
                Some(line) => line,
                None => return,
            },
        };
        // Logged after the record, so a log line means it will not be applied again.
        match self.store.mark_gated(pending.report_id.clone()).await {
            Ok(()) => {
                self.failures.remove(&node);
                // A timer still pending from earlier failures must not hold back the next
                // failure's short first retry; if it fires, the visit finds nothing to do.
                self.retrying
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&node);
                log(&line);
            }
            Err(e) => {
                let why = format!("{line}; cannot record the gate action: {e}");
                self.unrecorded
                    .insert(node.clone(), (pending.report_id, line));
                self.retry_later(&node, &why);
            }
        }
    }

    /// Apply one verdict. `Some(line to log)` when there is nothing more to do for it
    /// (applied, or a node that cannot be gated at all); `None` when it will be retried.
    async fn apply(&mut self, node: &str, pending: &store::Ungated) -> Option<String> {
        let outcome = self
            .gate
            .apply(node, pending.passed, &pending.failing, &pending.report_id)
            .await;
        match outcome {
            Ok(a) => Some(format!(
                "node {node}: verdict {} (report {}); taint removed {}, label set {}, event {}",
                a.verdict, pending.report_id, a.taint_removed, a.label_set, a.event
            )),
            Err(
                e
                @ (gate::GateError::NodeNotFound { .. } | gate::GateError::InvalidNodeName { .. }),
            ) => {
                // Nothing to gate, now or later.
                self.counters.gate_errors.inc();
                Some(format!("node {node}: {e}; its verdict is not applied"))
            }
            Err(e) => {
                self.counters.gate_errors.inc();
                self.retry_later(node, &e.to_string());
                None
            }
        }
    }

    /// Log why `node` is not done and wake the worker for it again after a back-off.
    fn retry_later(&mut self, node: &str, why: &str) {
        let n = self.failures.entry(node.to_string()).or_insert(0);
        *n += 1;
        let (n, delay) = (*n, retry_delay(*n));
        let scheduled = {
            let mut retrying = self.retrying.lock().unwrap_or_else(|e| e.into_inner());
            retrying.insert(node.to_string())
        };
        if !scheduled {
            log(&format!(
                "node {node}: attempt {n}: {why}; a retry is already scheduled"
            ));
            return;
        }
        log(&format!(
            "node {node}: attempt {n}: {why}; retrying in {}s",
            delay.as_secs()
        ));
        let q = self.requeue.clone();
        let again = node.to_string();
        let retrying = Arc::clone(&self.retrying);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            retrying
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&again);
            q.wake(&again);
        });
    }
}

/// The wait before attempt `failures + 1`: 2 s, 4 s, 8 s, … up to [`GATE_MAX_DELAY`].
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(9)).min(GATE_MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(listen: &str, insecure: bool) -> ServeOptions {
        ServeOptions {
            listen: listen.into(),
            db: "x.db".into(),
            token_file: None,
            requirements: None,
            insecure,
            kube: false,
            max_body: 1,
            header_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn retries_back_off_from_two_seconds_to_five_minutes() {
        let delays: Vec<u64> = (1..=12).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]);
    }

    #[test]
    fn network_listening_needs_a_token_or_insecure() {
        assert!(listen_addr(&opts("127.0.0.1:0", false), false).is_ok());
        let e = listen_addr(&opts("0.0.0.0:0", false), false).unwrap_err();
        assert!(e.to_string().contains("--token-file"), "{e}");
        assert!(listen_addr(&opts("0.0.0.0:0", true), false).is_ok());
        assert!(listen_addr(&opts("0.0.0.0:0", false), true).is_ok());
        assert!(listen_addr(&opts("nonsense", false), false).is_err());
    }
}
