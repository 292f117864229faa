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

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::AppState;

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
    let _ = writeln!(err, "{} accelprobe serve: {line}", api::now_rfc3339());
}

/// Bearer tokens, one per line (blank lines and `#` comments skipped), so a token can be
/// rotated by listing the old and the new one for a while.
pub fn read_tokens(path: &std::path::Path) -> Result<Vec<String>, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ServeError::Config(format!(
            "--token-file {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err(ServeError::Config(format!(
            "--token-file {}: holds no token (one per line)",
            path.display()
        )));
    }
    Ok(tokens)
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
        Some(p) => read_tokens(p)?,
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
        let state = Arc::new(AppState {
            store,
            judge,
            catalog,
            tokens,
            counters: metrics::Counters::default(),
            gate,
        });
        let app = api::router(state, opts.max_body);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| ServeError::Start(format!("the server stopped: {e}")))?;
        log("stopped");
        Ok(())
    })
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

/// Apply a stored verdict to the node, retrying API failures a few times; the outcome is
/// logged and failures counted in `/metrics`.
pub(crate) async fn apply_gate(
    state: Arc<AppState>,
    node: String,
    passed: bool,
    failing: Vec<(String, String)>,
    report_id: String,
) {
    let Some(gate) = &state.gate else {
        return;
    };
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=3 {
        match gate.apply(&node, passed, &failing, &report_id).await {
            Ok(a) => {
                log(&format!(
                    "node {node}: verdict {}; taint removed {}, label set {}, event {}",
                    a.verdict, a.taint_removed, a.label_set, a.event
                ));
                return;
            }
            Err(e) => {
                state.counters.gate_errors.inc();
                log(&format!("node {node}: gate attempt {attempt} failed: {e}"));
                if matches!(
                    e,
                    gate::GateError::Forbidden { .. } | gate::GateError::NodeNotFound { .. }
                ) {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
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
        }
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

    #[test]
    fn token_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "# rotation\nold\n\n new \n").unwrap();
        assert_eq!(read_tokens(&p).unwrap(), ["old", "new"]);
        std::fs::write(&p, "\n# none\n").unwrap();
        assert!(read_tokens(&p).is_err());
    }
}
