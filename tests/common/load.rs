//! Load and crash driver for the collector (`accelprobe serve`), shared by
//! `tests/serve_reliability.rs` and `benches/collector_load.rs` (both include this file with
//! `#[path = ...] mod load;`).
//!
//! - [`Server`] runs the real binary as a child process on `127.0.0.1`, parses the port from its
//!   `listening on http://...` log line, and can SIGKILL it and start it again on the same
//!   database (and the same port when it can be bound again).
//! - [`Template`] is a report made by the binary itself (`report --format json --no-cuda`);
//!   [`Template::body`] gives it a fresh `id` and node for every post.
//! - [`run_load`] posts reports from concurrent client threads, optionally SIGKILLs the server
//!   after a number of acknowledgements and restarts it, and records every attempt.
//! - [`verify`] checks through the API what the collector promises: every acknowledged report
//!   is stored, nothing is stored twice, every answer was consistent.
//! - [`hostile_bodies`] posts malformed, oversized and wrong-typed bodies over raw TCP and
//!   checks that each gets a 4xx and that the collector still answers `/healthz` afterwards.
//!
//! Nothing here asserts on timing; figures are returned for whoever wants to print them.
//!
//! What a SIGKILL can and cannot show: the killed process's writes that reached the kernel
//! survive it (the page cache is not lost), so this catches a collector that acknowledges a
//! report before SQLite has *written* its commit (e.g. acknowledging on receipt, or committing
//! on a timer), not one that skips the fsync (`synchronous=FULL`); that needs a power cut or a
//! disk that drops unsynced writes.
//!
//! Why the hostile bodies go over raw TCP with a reader thread: the collector reads a body
//! up to `--max-body`, answers 413 and closes the connection. A client that writes the whole
//! body before reading (ureq does) gets `Broken pipe` for a 20 MiB body instead of the 413;
//! reading while writing sees the 413 that was sent.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a server may take to log its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of one HTTP exchange (the collector's own request timeout is 30 s).
const HTTP_TIMEOUT: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// A running `accelprobe serve`.
pub struct Server {
    bin: PathBuf,
    db: PathBuf,
    log_dir: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
    addr: SocketAddr,
    starts: usize,
}

impl Server {
    /// Start `bin serve --listen 127.0.0.1:0 --db <db> <extra_args>`; its stderr goes to
    /// `<log_dir>/serve-<n>.log`.
    pub fn start(bin: &Path, db: &Path, log_dir: &Path, extra_args: &[&str]) -> Server {
        let mut s = Server {
            bin: bin.to_path_buf(),
            db: db.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            child: None,
            addr: "127.0.0.1:0".parse().expect("static"),
            starts: 0,
        };
        if let Err(e) = s.spawn("127.0.0.1:0") {
            panic!("cannot start the collector: {e}");
        }
        s
    }

    fn spawn(&mut self, listen: &str) -> Result<(), String> {
        self.starts += 1;
        let log = self.log_dir.join(format!("serve-{}.log", self.starts));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--db")
            .arg(&self.db)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        // Every option of `serve` also reads an ACCELPROBE_* variable: none may leak in.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ACCELPROBE_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = listening_addr(&text) {
                self.addr = addr;
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the collector exited ({status}) before listening: {text}"
                ));
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the collector did not log 'listening on' within {START_TIMEOUT:?}: {text}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same database, on the same port if it can be bound again (tokio sets
    /// SO_REUSEADDR, so connections in TIME_WAIT do not block it), else on a new port.
    /// Returns whether the port stayed the same.
    pub fn restart(&mut self) -> Result<bool, String> {
        self.kill();
        let same = format!("127.0.0.1:{}", self.addr.port());
        let mut last = String::new();
        for _ in 0..5 {
            match self.spawn(&same) {
                Ok(()) => return Ok(true),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn("127.0.0.1:0")
            .map(|()| false)
            .map_err(|e| format!("{e} (same port: {last})"))
    }

    /// Start again on another database file (used to show that [`verify`] notices losses).
    pub fn restart_with_db(&mut self, db: &Path) -> Result<bool, String> {
        self.db = db.to_path_buf();
        self.restart()
    }

    /// SIGTERM, then wait up to `grace` for a clean exit (SIGKILL after it). Returns whether the
    /// process exited by itself with status 0.
    pub fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let Ok(pid) = libc::pid_t::try_from(child.id()) else {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        };
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }

    /// Everything the server processes logged, start by start.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.starts {
            let p = self.log_dir.join(format!("serve-{n}.log"));
            let _ = writeln!(
                out,
                "--- start {n}:\n{}",
                std::fs::read_to_string(p).unwrap_or_default()
            );
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address in `... listening on http://127.0.0.1:PORT (...)`.
fn listening_addr(log: &str) -> Option<SocketAddr> {
    let rest = &log[log.find("listening on http://")? + "listening on http://".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The `accelprobe` binary: `$ACCELPROBE_BIN` when set, else `default` (the caller passes
/// `env!("CARGO_BIN_EXE_accelprobe")`, which Cargo sets for integration tests and benches).
pub fn binary(default: &str) -> PathBuf {
    std::env::var_os("ACCELPROBE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// A real report of this machine, to post again and again under new ids.
#[derive(Clone)]
pub struct Template {
    report: Value,
}

impl Template {
    /// `bin report --format json --no-cuda` with a clean environment. Without an NVIDIA driver
    /// the report lists the runtimes it looked for and describes the host (about 2 KB); with
    /// one it also holds the GPUs. Either way it is what a validation pod would send.
    pub fn from_binary(bin: &Path) -> Template {
        let mut cmd = Command::new(bin);
        cmd.args(["report", "--format", "json", "--no-cuda", "--timeout", "5s"])
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if name.starts_with("ACCELPROBE_")
                || matches!(&*name, "NODE_NAME" | "POD_NAME" | "POD_NAMESPACE")
            {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "`accelprobe report --format json` printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert!(report.get("id").is_some(), "not a report: {report}");
        Template { report }
    }

    /// The report as a validation pod on `node` would post it, with report id `id`: the node
    /// name from the downward API and the node's labels as Karpenter sets them.
    pub fn report(&self, id: &str, node: &str) -> Value {
        let mut r = self.report.clone();
        r["id"] = json!(id);
        r["host"]["hostname"] = json!(format!("validate-{node}"));
        r["host"]["kubernetes"] = json!({
            "node_name": node,
            "pod_name": format!("accelprobe-validate-{node}"),
            "pod_namespace": "accelprobe",
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": "g6e.xlarge",
                "beta.kubernetes.io/os": "linux",
                "failure-domain.beta.kubernetes.io/region": "us-west-2",
                "failure-domain.beta.kubernetes.io/zone": "us-west-2a",
                "k8s.io/cloud-provider-aws": "0b5e5c5e7d1f4a0c9e2d3b4a5c6d7e8f",
                "karpenter.k8s.aws/instance-category": "g",
                "karpenter.k8s.aws/instance-cpu": "4",
                "karpenter.k8s.aws/instance-family": "g6e",
                "karpenter.k8s.aws/instance-generation": "6",
                "karpenter.k8s.aws/instance-gpu-count": "1",
                "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
                "karpenter.k8s.aws/instance-gpu-memory": "46068",
                "karpenter.k8s.aws/instance-gpu-name": "l40s",
                "karpenter.k8s.aws/instance-memory": "32768",
                "karpenter.k8s.aws/instance-size": "xlarge",
                "karpenter.sh/capacity-type": "on-demand",
                "karpenter.sh/initialized": "true",
                "karpenter.sh/nodepool": "gpu-l40s",
                "karpenter.sh/registered": "true",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": node,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "g6e.xlarge",
                "nvidia.com/gpu.present": "true",
                "topology.kubernetes.io/region": "us-west-2",
                "topology.kubernetes.io/zone": "us-west-2a",
            },
        });
        r
    }

    /// [`Template::report`] as the bytes to post.
    pub fn body(&self, id: &str, node: &str) -> Vec<u8> {
        serde_json::to_vec(&self.report(id, node)).expect("a JSON value serializes")
    }
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

/// Which clients post a report again (same id, same body) after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Give up on a report at its first failure and go on with the next one.
    Never,
    /// Retry until acknowledged or [`LoadConfig::give_up_after`].
    Always,
    /// Clients 0, 2, 4... retry, the others do not: both paths in one run.
    EvenClients,
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub clients: usize,
    pub reports_per_client: usize,
    /// Reports are spread over this many node names.
    pub nodes: usize,
    /// Prefix of every report id (ids must be unique within a database).
    pub id_prefix: String,
    pub retry: Retry,
    /// SIGKILL the server once this many reports are acknowledged, then restart it.
    pub kill_after_acks: Option<usize>,
    /// How long the server stays down after the kill before it is started again.
    pub down_for: Duration,
    /// A retrying client gives a report up after this long.
    pub give_up_after: Duration,
    /// A client waits this long after a failed attempt (so it does not burn through its
    /// reports while the server is down).
    pub backoff: Duration,
}

impl LoadConfig {
    pub fn new(clients: usize, reports_per_client: usize) -> LoadConfig {
        LoadConfig {
            clients,
            reports_per_client,
            nodes: 50,
            id_prefix: "load".into(),
            retry: Retry::EvenClients,
            kill_after_acks: None,
            down_for: Duration::from_millis(300),
            give_up_after: Duration::from_secs(30),
            backoff: Duration::from_millis(25),
        }
    }

    pub fn total(&self) -> usize {
        self.clients * self.reports_per_client
    }
}

/// One HTTP attempt to post a report.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The HTTP status, `None` when no answer came (connection refused, reset, timeout).
    pub status: Option<u16>,
    /// The transport error, when there was one.
    pub error: Option<String>,
    /// `stored` of the answer (`new`, `repeat`).
    pub stored: Option<String>,
    /// `id` of the answer.
    pub answered_id: Option<String>,
    pub latency: Duration,
}

/// Everything that happened to one report.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    pub id: String,
    pub node: String,
    pub client: usize,
    pub attempts: Vec<Attempt>,
    /// When the acknowledgement (a 2xx) arrived.
    pub acked_at: Option<Instant>,
}

impl ReportOutcome {
    pub fn acked(&self) -> bool {
        self.acked_at.is_some()
    }

    /// Latency of the attempt that was acknowledged.
    pub fn ack_latency(&self) -> Option<Duration> {
        self.attempts
            .iter()
            .find(|a| a.status.is_some_and(|s| (200..300).contains(&s)))
            .map(|a| a.latency)
    }
}

/// The SIGKILL and restart in a run.
#[derive(Debug, Clone)]
pub struct KillEvent {
    /// Acknowledgements counted when the kill was sent.
    pub acks_before: usize,
    pub killed_at: Instant,
    /// When the new process was listening.
    pub restarted_at: Instant,
    /// Whether it listens on the same port again.
    pub same_port: bool,
}

/// What a load run did.
#[derive(Debug)]
pub struct LoadRun {
    pub config: LoadConfig,
    pub outcomes: Vec<ReportOutcome>,
    pub started: Instant,
    pub finished: Instant,
    pub kill: Option<KillEvent>,
    /// The server's URL at the end.
    pub base_url: String,
}

impl LoadRun {
    pub fn attempted(&self) -> usize {
        self.outcomes.len()
    }

    pub fn acked(&self) -> usize {
        self.outcomes.iter().filter(|o| o.acked()).count()
    }

    /// Reports answered 200 `repeat`: an earlier attempt was committed but its answer lost.
    pub fn repeats(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.attempts.iter().any(|a| a.status == Some(200)))
            .count()
    }

    /// Attempts that got no HTTP answer.
    pub fn transport_errors(&self) -> usize {
        self.outcomes
            .iter()
            .flat_map(|o| &o.attempts)
            .filter(|a| a.status.is_none())
            .count()
    }

    /// Reports that needed more than one attempt.
    pub fn retried(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.attempts.len() > 1)
            .count()
    }

    /// Acknowledgements per second before the kill (or over the whole run without one).
    pub fn steady_rate(&self) -> f64 {
        let end = self.kill.as_ref().map_or(self.finished, |k| k.killed_at);
        let n = self
            .outcomes
            .iter()
            .filter(|o| o.acked_at.is_some_and(|t| t <= end))
            .count();
        let secs = end.duration_since(self.started).as_secs_f64();
        if secs > 0.0 {
            n as f64 / secs
        } else {
            0.0
        }
    }

    /// The `q` quantile (0..=1) of the latency of acknowledged posts.
    pub fn ack_latency_quantile(&self, q: f64) -> Option<Duration> {
        let mut l: Vec<Duration> = self
            .outcomes
            .iter()
            .filter_map(ReportOutcome::ack_latency)
            .collect();
        if l.is_empty() {
            return None;
        }
        l.sort();
        let i = ((l.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        Some(l[i])
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(HTTP_TIMEOUT))
        .build()
        .into()
}

fn post_once(agent: &ureq::Agent, base: &str, body: &[u8]) -> Attempt {
    let started = Instant::now();
    let result = agent
        .post(format!("{base}/v1/reports"))
        .header("Content-Type", "application/json")
        .send(body);
    match result {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string();
            let latency = started.elapsed();
            let answer: Option<Value> = text.ok().and_then(|t| serde_json::from_str(&t).ok());
            let field = |k: &str| {
                answer
                    .as_ref()
                    .and_then(|v| v.get(k)?.as_str().map(str::to_string))
            };
            Attempt {
                status: Some(status),
                error: None,
                stored: field("stored"),
                answered_id: field("id"),
                latency,
            }
        }
        Err(e) => Attempt {
            status: None,
            error: Some(e.to_string()),
            stored: None,
            answered_id: None,
            latency: started.elapsed(),
        },
    }
}

/// Whether a report is worth posting again after this attempt: no answer, or the collector
/// said to retry later.
fn retryable(a: &Attempt) -> bool {
    matches!(a.status, None | Some(503) | Some(408))
}

/// The id and node of report `j` of client `c`.
pub fn report_name(cfg: &LoadConfig, c: usize, j: usize) -> (String, String) {
    let id = format!("{}-c{c:03}-r{j:05}", cfg.id_prefix);
    let node = format!(
        "node-{:03}",
        (c * cfg.reports_per_client + j) % cfg.nodes.max(1)
    );
    (id, node)
}

/// Post `cfg.total()` reports from `cfg.clients` threads against `server`; SIGKILL and restart
/// it once `cfg.kill_after_acks` reports are acknowledged. Panics when the server cannot be
/// started again.
pub fn run_load(server: &mut Server, template: &Template, cfg: &LoadConfig) -> LoadRun {
    let url = RwLock::new(server.base_url());
    let acks = AtomicUsize::new(0);
    let finished_clients = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::with_capacity(cfg.total()));
    let started = Instant::now();
    let mut kill = None;
    std::thread::scope(|scope| {
        for c in 0..cfg.clients {
            let (url, acks, outcomes, finished_clients) =
                (&url, &acks, &outcomes, &finished_clients);
            scope.spawn(move || {
                let agent = agent();
                let retry = match cfg.retry {
                    Retry::Never => false,
                    Retry::Always => true,
                    Retry::EvenClients => c % 2 == 0,
                };
                let mut mine = Vec::with_capacity(cfg.reports_per_client);
                for j in 0..cfg.reports_per_client {
                    let (id, node) = report_name(cfg, c, j);
                    let body = template.body(&id, &node);
                    let first = Instant::now();
                    let mut out = ReportOutcome {
                        id,
                        node,
                        client: c,
                        attempts: Vec::new(),
                        acked_at: None,
                    };
                    loop {
                        let base = url.read().map(|u| u.clone()).unwrap_or_default();
                        let a = post_once(&agent, &base, &body);
                        let ok = a.status.is_some_and(|s| (200..300).contains(&s));
                        let again = retryable(&a);
                        out.attempts.push(a);
                        if ok {
                            out.acked_at = Some(Instant::now());
                            acks.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        std::thread::sleep(cfg.backoff);
                        if !retry || !again || first.elapsed() > cfg.give_up_after {
                            break;
                        }
                    }
                    mine.push(out);
                }
                outcomes.lock().expect("no client panics").extend(mine);
                finished_clients.fetch_add(1, Ordering::SeqCst);
            });
        }
        // This thread is the chaos: it watches the acknowledgements and kills the server.
        if let Some(n) = cfg.kill_after_acks {
            loop {
                if finished_clients.load(Ordering::SeqCst) == cfg.clients {
                    break;
                }
                let seen = acks.load(Ordering::SeqCst);
                if seen >= n {
                    server.kill();
                    let killed_at = Instant::now();
                    std::thread::sleep(cfg.down_for);
                    let same_port = server
                        .restart()
                        .unwrap_or_else(|e| panic!("cannot restart the collector: {e}"));
                    *url.write().expect("not poisoned") = server.base_url();
                    kill = Some(KillEvent {
                        acks_before: seen,
                        killed_at,
                        restarted_at: Instant::now(),
                        same_port,
                    });
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    let mut outcomes = outcomes.into_inner().expect("no client panics");
    outcomes.sort_by(|a, b| a.id.cmp(&b.id));
    LoadRun {
        config: cfg.clone(),
        outcomes,
        started,
        finished: Instant::now(),
        kill,
        base_url: server.base_url(),
    }
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// What the collector holds after a run, compared with what it acknowledged.
#[derive(Debug, Default)]
pub struct Verification {
    pub attempted: usize,
    pub acked: usize,
    /// Attempted ids that `GET /v1/reports/{id}` finds.
    pub stored: usize,
    /// Stored although never acknowledged (committed, answer lost in the kill).
    pub stored_unacked: usize,
    /// `/healthz` `reports` less the count before the run.
    pub healthz_new: i64,
    /// Acknowledged but not stored: must be empty.
    pub lost: Vec<String>,
    /// Rows the count has beyond the stored ids (duplicates or strangers): must be 0.
    pub extra_rows: i64,
    /// Inconsistent answers and contents: must be empty.
    pub problems: Vec<String>,
}

impl Verification {
    /// Everything that breaks the collector's promises, one line each.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.lost.is_empty() {
            out.push(format!(
                "{} acknowledged report(s) are not stored: {:?}",
                self.lost.len(),
                &self.lost[..self.lost.len().min(10)]
            ));
        }
        if self.extra_rows != 0 {
            out.push(format!(
                "/healthz counts {} new report(s) but {} attempted id(s) are stored ({} extra)",
                self.healthz_new, self.stored, self.extra_rows
            ));
        }
        out.extend(self.problems.iter().take(20).cloned());
        if self.problems.len() > 20 {
            out.push(format!("... and {} more", self.problems.len() - 20));
        }
        out
    }
}

/// `GET base+path` → (status, parsed JSON body).
pub fn get_json(agent: &ureq::Agent, url: &str) -> Result<(u16, Value), String> {
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
    let v = serde_json::from_str(&text)
        .map_err(|e| format!("GET {url}: answer is not JSON ({e}): {text:.200}"))?;
    Ok((status, v))
}

/// `/healthz` `reports`.
pub fn healthz_count(base: &str) -> Result<u64, String> {
    let (status, v) = get_json(&agent(), &format!("{base}/healthz"))?;
    if status != 200 || v["status"] != "ok" {
        return Err(format!("/healthz answered {status}: {v}"));
    }
    v["reports"]
        .as_u64()
        .ok_or_else(|| format!("/healthz has no reports count: {v}"))
}

/// What `GET /v1/reports/{id}` found: the stored report, none (404), or an error.
type Probe = Result<Option<Value>, String>;

/// Check the collector at `base` against `run`. `before` is `/healthz` `reports` before the
/// run started (0 on a fresh database).
pub fn verify(base: &str, run: &LoadRun, before: u64) -> Verification {
    let mut v = Verification {
        attempted: run.attempted(),
        acked: run.acked(),
        ..Verification::default()
    };
    // The answers themselves.
    for o in &run.outcomes {
        let mut news = 0;
        for (i, a) in o.attempts.iter().enumerate() {
            let Some(status) = a.status else { continue };
            let wrong =
                |what: &str| format!("{}: attempt {} answered {status}: {what}", o.id, i + 1);
            match status {
                201 => {
                    news += 1;
                    if a.stored.as_deref() != Some("new") {
                        v.problems.push(wrong(&format!("stored = {:?}", a.stored)));
                    }
                }
                200 => {
                    if i == 0 {
                        v.problems
                            .push(wrong("a repeat although no earlier attempt was made"));
                    }
                    if a.stored.as_deref() != Some("repeat") {
                        v.problems.push(wrong(&format!("stored = {:?}", a.stored)));
                    }
                }
                409 if i > 0 => v.problems.push(wrong(
                    "the same report posted again was taken for another report with its id",
                )),
                _ => v
                    .problems
                    .push(wrong("not an answer to a valid new report")),
            }
            if (200..300).contains(&status) && a.answered_id.as_deref() != Some(o.id.as_str()) {
                v.problems
                    .push(wrong(&format!("answer names report {:?}", a.answered_id)));
            }
        }
        if news > 1 {
            v.problems
                .push(format!("{}: answered 201 (new) {news} times", o.id));
        }
    }
    // What is stored: probe every attempted id, a few threads at a time.
    let found: Mutex<Vec<(String, Probe)>> = Mutex::new(Vec::new());
    let chunk = run.outcomes.len().div_ceil(4).max(1);
    std::thread::scope(|s| {
        for part in run.outcomes.chunks(chunk) {
            let found = &found;
            s.spawn(move || {
                let agent = agent();
                let mut mine = Vec::with_capacity(part.len());
                for o in part {
                    let r = match get_json(&agent, &format!("{base}/v1/reports/{}", o.id)) {
                        Ok((200, body)) => Ok(Some(body)),
                        Ok((404, _)) => Ok(None),
                        Ok((s, body)) => Err(format!("answered {s}: {body}")),
                        Err(e) => Err(e),
                    };
                    mine.push((o.id.clone(), r));
                }
                found.lock().expect("no probe panics").extend(mine);
            });
        }
    });
    let found: BTreeMap<String, Probe> = found
        .into_inner()
        .expect("no probe panics")
        .into_iter()
        .collect();
    let mut stored_by_node: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in &run.outcomes {
        match &found[&o.id] {
            Err(e) => v.problems.push(format!("GET /v1/reports/{}: {e}", o.id)),
            Ok(None) => {
                if o.acked() {
                    v.lost.push(o.id.clone());
                }
            }
            Ok(Some(body)) => {
                v.stored += 1;
                if !o.acked() {
                    v.stored_unacked += 1;
                }
                let rid = &body["report"]["id"];
                let rnode = &body["report"]["host"]["kubernetes"]["node_name"];
                let snode = &body["summary"]["node"];
                if rid != o.id.as_str() || rnode != o.node.as_str() || snode != o.node.as_str() {
                    v.problems.push(format!(
                        "GET /v1/reports/{}: holds report {rid} of node {rnode} (summary: {snode}), \
                         posted for node {}",
                        o.id, o.node
                    ));
                }
                stored_by_node
                    .entry(o.node.clone())
                    .or_default()
                    .insert(o.id.clone());
            }
        }
    }
    match healthz_count(base) {
        Ok(n) => {
            v.healthz_new = n as i64 - before as i64;
            v.extra_rows = v.healthz_new - v.stored as i64;
        }
        Err(e) => v.problems.push(e),
    }
    // The node list (kept in memory, reloaded at start) names every node with a stored report,
    // with one of that node's reports.
    match get_json(&agent(), &format!("{base}/v1/nodes")) {
        Ok((200, body)) => {
            let listed: BTreeMap<String, String> = body["nodes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| {
                            Some((
                                n["node"].as_str()?.to_string(),
                                n["report_id"].as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (node, ids) in &stored_by_node {
                match listed.get(node) {
                    None => v
                        .problems
                        .push(format!("/v1/nodes does not list node {node}")),
                    Some(id) if before == 0 && !ids.contains(id) => v.problems.push(format!(
                        "/v1/nodes shows report {id} for node {node}, not one of its stored reports"
                    )),
                    _ => {}
                }
            }
        }
        Ok((s, body)) => v.problems.push(format!("/v1/nodes answered {s}: {body}")),
        Err(e) => v.problems.push(e),
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Hostile bodies
// ---------------------------------------------------------------------------------------------

/// How a hostile body is sent.
#[derive(Debug, Clone)]
pub enum Sending {
    /// With `Content-Length`.
    Sized(Vec<u8>),
    /// `Transfer-Encoding: chunked`, `total` bytes of `byte` in chunks of `chunk`.
    Chunked {
        byte: u8,
        total: usize,
        chunk: usize,
    },
    /// Declares `declared` bytes, sends `sent`, then closes its sending half.
    Short { declared: usize, sent: Vec<u8> },
}

/// What a raw HTTP exchange got.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    /// Status of the final answer (1xx skipped); `None`: no answer before the connection ended.
    pub status: Option<u16>,
    /// The answer's body (start of it).
    pub body: String,
    /// Body bytes written before the connection failed or the body was complete.
    pub sent: usize,
    /// Why writing stopped early.
    pub write_error: Option<String>,
    /// Why reading ended with an error (rather than end of stream).
    pub read_error: Option<String>,
}

/// POST over a plain TCP connection: a reader thread collects the answer while this thread
/// writes, so an early answer (413 before the body is complete) is seen even when the server
/// then resets the connection.
pub fn raw_post(addr: SocketAddr, path: &str, send: &Sending) -> RawAnswer {
    let mut stream = match TcpStream::connect_timeout(&addr, HTTP_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            return RawAnswer {
                status: None,
                body: String::new(),
                sent: 0,
                write_error: Some(format!("connect: {e}")),
                read_error: None,
            }
        }
    };
    let _ = stream.set_read_timeout(Some(HTTP_TIMEOUT));
    let _ = stream.set_write_timeout(Some(HTTP_TIMEOUT));
    let mut reader = stream.try_clone().expect("a TCP stream clones");
    let read = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => return (buf, None),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return (buf, Some(e.to_string())),
            }
        }
    });
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    );
    match send {
        Sending::Sized(b) => {
            let _ = write!(head, "Content-Length: {}\r\n", b.len());
        }
        Sending::Chunked { .. } => head.push_str("Transfer-Encoding: chunked\r\n"),
        Sending::Short { declared, .. } => {
            let _ = write!(head, "Content-Length: {declared}\r\n");
        }
    }
    head.push_str("\r\n");
    let mut sent = 0;
    let mut write_error = None;
    let mut write = |bytes: &[u8], counts: bool, sent: &mut usize| -> bool {
        match stream.write_all(bytes) {
            Ok(()) => {
                if counts {
                    *sent += bytes.len();
                }
                true
            }
            Err(e) => {
                write_error = Some(e.to_string());
                false
            }
        }
    };
    if write(head.as_bytes(), false, &mut sent) {
        match send {
            Sending::Sized(b) => {
                for piece in b.chunks(64 << 10) {
                    if !write(piece, true, &mut sent) {
                        break;
                    }
                }
            }
            Sending::Chunked { byte, total, chunk } => {
                let data = vec![*byte; *chunk];
                let mut left = *total;
                let mut ok = true;
                while left > 0 && ok {
                    let n = left.min(*chunk);
                    ok = write(format!("{n:x}\r\n").as_bytes(), false, &mut sent)
                        && write(&data[..n], true, &mut sent)
                        && write(b"\r\n", false, &mut sent);
                    left -= n;
                }
                if ok {
                    write(b"0\r\n\r\n", false, &mut sent);
                }
            }
            Sending::Short { sent: b, .. } => {
                if write(b, true, &mut sent) {
                    let _ = stream.shutdown(Shutdown::Write);
                }
            }
        }
    }
    let (bytes, read_error) = read.join().unwrap_or_else(|_| (Vec::new(), None));
    let (status, body) = parse_answer(&bytes);
    RawAnswer {
        status,
        body,
        sent,
        write_error,
        read_error,
    }
}

/// The final status and body of an HTTP/1.1 answer (interim 1xx answers skipped).
fn parse_answer(bytes: &[u8]) -> (Option<u16>, String) {
    let mut rest = bytes;
    loop {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            return (None, String::from_utf8_lossy(rest).into_owned());
        };
        let head = String::from_utf8_lossy(&rest[..end]);
        let status: Option<u16> = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok());
        let body = &rest[end + 4..];
        match status {
            Some(s) if (100..200).contains(&s) => rest = body,
            _ => {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                return (status, text);
            }
        }
    }
}

/// One hostile body and how the collector took it.
#[derive(Debug, Clone)]
pub struct HostileResult {
    pub name: String,
    /// Size of the body (declared size for [`Sending::Short`]).
    pub size: usize,
    /// Statuses that are right.
    pub expected: Vec<u16>,
    /// Whether ending the connection without an answer is also right.
    pub no_answer_ok: bool,
    pub answer: RawAnswer,
    /// `/healthz` afterwards: `Ok(reports)` or why it did not answer 200.
    pub healthz_after: Result<u64, String>,
    /// `/healthz` `reports` before this body.
    pub count_before: u64,
}

impl HostileResult {
    /// Why this result is wrong, if it is.
    pub fn failure(&self) -> Option<String> {
        let status_ok = match self.answer.status {
            Some(s) => self.expected.contains(&s),
            None => self.no_answer_ok,
        };
        if !status_ok {
            return Some(format!(
                "{}: expected {:?}{}, got {:?} {} (write error {:?}, read error {:?})",
                self.name,
                self.expected,
                if self.no_answer_ok {
                    " or no answer"
                } else {
                    ""
                },
                self.answer.status,
                self.answer.body,
                self.answer.write_error,
                self.answer.read_error
            ));
        }
        match &self.healthz_after {
            Err(e) => Some(format!("{}: afterwards {e}", self.name)),
            Ok(n) if *n != self.count_before => Some(format!(
                "{}: the report count went from {} to {n}",
                self.name, self.count_before
            )),
            Ok(_) => None,
        }
    }

    /// `413`, `400`, `no answer`.
    pub fn got(&self) -> String {
        match self.answer.status {
            Some(s) => s.to_string(),
            None => "no answer".into(),
        }
    }
}

/// A hostile body and what the collector must answer to it.
#[derive(Debug, Clone)]
pub struct HostileCase {
    pub name: String,
    pub send: Sending,
    /// Statuses that are right.
    pub expected: Vec<u16>,
    /// Whether ending the connection without an answer is also right.
    pub no_answer_ok: bool,
}

fn case(name: &str, send: Sending, expected: u16) -> HostileCase {
    HostileCase {
        name: name.into(),
        send,
        expected: vec![expected],
        no_answer_ok: false,
    }
}

/// The hostile bodies, each with what the collector must answer. `max_body` is the server's
/// `--max-body` (8 MiB by default).
pub fn hostile_cases(template: &Template, max_body: usize) -> Vec<HostileCase> {
    let valid = template.body("hostile-valid", "node-hostile");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut r = template.report("hostile-x", "node-hostile");
        f(&mut r);
        serde_json::to_vec(&r).expect("serializes")
    };
    let big = 20 << 20;
    assert!(big > max_body, "the large bodies must exceed --max-body");
    let mut deep = vec![b'['; 100_000];
    deep.extend(vec![b']'; 100_000]);
    let mut conflict: Value = serde_json::from_slice(&valid).expect("valid JSON");
    conflict["created_at"] = json!("2020-01-01T00:00:00Z");
    vec![
        case("empty body", Sending::Sized(Vec::new()), 400),
        case(
            "truncated JSON (first half of a report)",
            Sending::Sized(valid[..valid.len() / 2].to_vec()),
            400,
        ),
        case(
            "20 MiB, Content-Length",
            Sending::Sized(vec![b' '; big]),
            413,
        ),
        case(
            "20 MiB, chunked",
            Sending::Chunked {
                byte: b' ',
                total: big,
                chunk: 64 << 10,
            },
            413,
        ),
        case("100k nested [ ]", Sending::Sized(deep), 400),
        case("{\"id\": 5}", Sending::Sized(br#"{"id": 5}"#.to_vec()), 400),
        case(
            "{\"schema_version\":\"x\"}",
            Sending::Sized(br#"{"schema_version":"x"}"#.to_vec()),
            400,
        ),
        case("[]", Sending::Sized(b"[]".to_vec()), 400),
        case("null", Sending::Sized(b"null".to_vec()), 400),
        case(
            "non-UTF-8 bytes",
            Sending::Sized(b"{\"id\":\"\xff\xfe\xc0\xaf\"}".to_vec()),
            400,
        ),
        case(
            "schema_version 999",
            Sending::Sized(with(&|r| r["schema_version"] = json!(999))),
            400,
        ),
        case(
            "report id with '/'",
            Sending::Sized(with(&|r| r["id"] = json!("a/b"))),
            400,
        ),
        case(
            "empty report id",
            Sending::Sized(with(&|r| r["id"] = json!(""))),
            400,
        ),
        case(
            "node name of 300 characters",
            Sending::Sized(with(&|r| {
                r["host"]["kubernetes"]["node_name"] = json!("n".repeat(300))
            })),
            400,
        ),
        case(
            "no node name and no hostname",
            Sending::Sized(with(&|r| {
                r["host"]["kubernetes"] = Value::Null;
                r["host"]["hostname"] = Value::Null;
            })),
            400,
        ),
        case(
            "stored id, other body (conflict)",
            Sending::Sized(serde_json::to_vec(&conflict).expect("serializes")),
            409,
        ),
        HostileCase {
            no_answer_ok: true,
            ..case(
                "Content-Length 4096, 100 bytes sent, then EOF",
                Sending::Short {
                    declared: 4096,
                    sent: valid[..100].to_vec(),
                },
                400,
            )
        },
    ]
}

/// Post every hostile body to the server at `addr` and check `/healthz` after each. First
/// stores one valid report (`hostile-valid`, the original of the conflicting one).
pub fn hostile_bodies(
    addr: SocketAddr,
    template: &Template,
    max_body: usize,
) -> Vec<HostileResult> {
    let base = format!("http://{addr}");
    let original = raw_post(
        addr,
        "/v1/reports",
        &Sending::Sized(template.body("hostile-valid", "node-hostile")),
    );
    assert!(
        matches!(original.status, Some(200 | 201)),
        "the valid report before the hostile ones was not stored: {original:?}"
    );
    let mut out = Vec::new();
    for HostileCase {
        name,
        send,
        expected,
        no_answer_ok,
    } in hostile_cases(template, max_body)
    {
        let count_before = healthz_count(&base).unwrap_or(u64::MAX);
        let size = match &send {
            Sending::Sized(b) => b.len(),
            Sending::Chunked { total, .. } => *total,
            Sending::Short { declared, .. } => *declared,
        };
        let answer = raw_post(addr, "/v1/reports", &send);
        let healthz_after = healthz_count(&base);
        out.push(HostileResult {
            name,
            size,
            expected,
            no_answer_ok,
            answer,
            healthz_after,
            count_before,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
}

/// A two-column table of a run and its verification.
pub fn run_table(title: &str, run: &LoadRun, v: &Verification) -> String {
    let mut rows: Vec<(String, String)> = vec![
        (
            "clients x reports".into(),
            format!(
                "{} x {} ({} nodes)",
                run.config.clients, run.config.reports_per_client, run.config.nodes
            ),
        ),
        ("reports posted".into(), v.attempted.to_string()),
        ("acknowledged (2xx)".into(), v.acked.to_string()),
    ];
    if let Some(k) = &run.kill {
        rows.push((
            "SIGKILL after".into(),
            format!(
                "{} acks; down {:.0} ms; restarted on {} port",
                k.acks_before,
                k.restarted_at.duration_since(k.killed_at).as_secs_f64() * 1e3,
                if k.same_port { "the same" } else { "a new" }
            ),
        ));
        rows.push((
            "attempts without answer".into(),
            run.transport_errors().to_string(),
        ));
        rows.push(("reports retried".into(), run.retried().to_string()));
        rows.push((
            "answered 200 repeat".into(),
            format!("{} (committed, first answer lost)", run.repeats()),
        ));
        rows.push((
            "stored, never acknowledged".into(),
            v.stored_unacked.to_string(),
        ));
    }
    rows.extend([
        (
            if run.kill.is_some() {
                "stored after restart".to_string()
            } else {
                "stored".to_string()
            },
            v.stored.to_string(),
        ),
        ("lost acknowledged".into(), v.lost.len().to_string()),
        ("duplicates / extra rows".into(), v.extra_rows.to_string()),
        ("answer problems".into(), v.problems.len().to_string()),
        (
            if run.kill.is_some() {
                "reports/s before the kill".to_string()
            } else {
                "reports/s".to_string()
            },
            format!("{:.0}", run.steady_rate()),
        ),
        (
            "latency p50 (acked)".into(),
            ms(run.ack_latency_quantile(0.5)),
        ),
        (
            "latency p99 (acked)".into(),
            ms(run.ack_latency_quantile(0.99)),
        ),
        (
            "wall time".into(),
            format!(
                "{:.2} s",
                run.finished.duration_since(run.started).as_secs_f64()
            ),
        ),
    ]);
    table(title, &rows)
}

/// The hostile bodies as a table.
pub fn hostile_table(results: &[HostileResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<46} {:>10} {:>9} {:>10} {:>8}  answer",
        "hostile body", "bytes", "expected", "got", "healthz"
    );
    for r in results {
        let exp = r
            .expected
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join("/");
        let health = match &r.healthz_after {
            Ok(_) => "200".to_string(),
            Err(_) => "FAIL".to_string(),
        };
        let note = if r.answer.body.is_empty() {
            r.answer
                .write_error
                .clone()
                .or_else(|| r.answer.read_error.clone())
                .unwrap_or_default()
        } else {
            r.answer.body.clone()
        };
        let _ = writeln!(
            out,
            "{:<46} {:>10} {:>9} {:>10} {:>8}  {}{}",
            r.name,
            r.size,
            exp,
            r.got(),
            health,
            note.chars().take(90).collect::<String>(),
            if r.failure().is_some() {
                "  <-- WRONG"
            } else {
                ""
            }
        );
    }
    out
}

fn table(title: &str, rows: &[(String, String)]) -> String {
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = format!("{title}\n");
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<w$}  {v}");
    }
    out
}
