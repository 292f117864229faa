//! The collector's store: embedded SQLite in WAL mode with `synchronous=FULL`, so a commit has
//! reached the disk before it returns. Reports are acknowledged only after their commit.
//!
//! Writes (reports, and the record that a verdict was applied to its node) go through one
//! writer thread that commits whatever is waiting in one transaction
//! (group commit): under load many reports share one fsync, and each request still waits for
//! the commit that holds its report. Reads use a small pool of their own connections (WAL
//! readers never block the writer, nor each other).
//!
//! Each report also records whether its verdict has been applied to the node (`gated`), so the
//! gate can catch up after a crash or an API outage: the latest report of every node is gated
//! eventually, older ones never. The latest summary of every node is kept in memory for `/metrics` and the fleet
//! page, loaded from the database at start and updated after each commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Reports committed together at most.
const MAX_BATCH: usize = 512;
/// Reader connections.
const READERS: usize = 4;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {message}; check that the directory exists and is writable")]
    Open { path: String, message: String },
    #[error("database error: {0}")]
    Sql(String),
    #[error("the store is shutting down")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e.to_string())
    }
}

/// One failing check, as lists and pages show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailingCheck {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub message: String,
}

/// A performance check and what it found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PerfCheck {
    pub id: String,
    pub status: crate::verify::verdict::Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub expected: Option<String>,
    pub observed: Option<String>,
}

/// One measured figure of a benchmark.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figure {
    pub kernel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    pub value: f64,
    pub unit: String,
}

/// What the collector knows about a node from one report and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeSummary {
    pub node: String,
    pub report_id: String,
    /// When the collector stored it (RFC 3339, UTC).
    pub received_at: String,
    /// When the probe wrote it.
    pub created_at: String,
    /// The collector's verdict.
    pub passed: bool,
    /// What the probe itself concluded, when it sent a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_passed: Option<bool>,
    pub instance_type: Option<String>,
    pub node_pool: Option<String>,
    /// The most common accelerator name on the node.
    pub accelerator: Option<String>,
    pub accelerator_count: usize,
    pub checks: usize,
    pub failing: Vec<FailingCheck>,
    pub warned: Vec<String>,
    pub perf: Vec<PerfCheck>,
    pub figures: Vec<Figure>,
    /// Where the node's labels came from (Kubernetes API, the report, none).
    pub labels_from: String,
}

/// A report ready to store.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub summary: NodeSummary,
    /// `summary` as JSON, made once for the database and the answer.
    pub summary_json: String,
    /// The report as the collector parsed it (canonical JSON).
    pub report_json: String,
    /// The collector's verdict.
    pub verdict_json: String,
}

impl NewReport {
    pub fn new(summary: NodeSummary, report_json: String, verdict_json: String) -> NewReport {
        NewReport {
            summary_json: serde_json::to_string(&summary).unwrap_or_else(|_| "null".into()),
            summary,
            report_json,
            verdict_json,
        }
    }
}

/// What storing did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// A new report, committed.
    New(NodeSummary),
    /// The same report was stored before: nothing changed. The stored summary.
    Repeat(NodeSummary),
    /// Another report with this id exists.
    Conflict,
}

/// A write waiting for the writer thread, with whoever waits for its commit.
enum Pending {
    Insert {
        report: Box<NewReport>,
        ack: oneshot::Sender<Result<Stored, StoreError>>,
    },
    /// Record that a report's verdict has been applied to its node.
    MarkGated {
        report_id: String,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// What one pending write came to, inside a committed transaction.
enum Done {
    Inserted(Box<Stored>),
    Marked,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Pending>,
    readers: Arc<Vec<Mutex<Connection>>>,
    latest: Arc<RwLock<BTreeMap<String, NodeSummary>>>,
    path: PathBuf,
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let err = |e: rusqlite::Error| StoreError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            path: path.display().to_string(),
            message: format!("cannot switch to WAL mode (got {mode})"),
        });
    }
    // FULL: in WAL mode every commit syncs the log, so an acknowledged report survives a crash
    // or power loss.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    Ok(conn)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    node TEXT NOT NULL,
    received_at TEXT NOT NULL,
    passed INTEGER NOT NULL,
    report TEXT NOT NULL,
    verdict TEXT NOT NULL,
    summary TEXT NOT NULL,
    gated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS reports_by_node ON reports(node, seq);
";

impl Store {
    /// Open (or create) the database and start the writer. Must be called inside a Tokio
    /// runtime's context only for the channel; the writer is a plain thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let writer_conn = open(path)?;
        writer_conn.execute_batch(SCHEMA)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(Mutex::new(open(path)?));
        }
        let latest = {
            let first = match readers[0].lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            Arc::new(RwLock::new(load_latest(&first)?))
        };
        let (tx, rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        let latest_w = Arc::clone(&latest);
        std::thread::Builder::new()
            .name("accelprobe-store".into())
            .spawn(move || writer(writer_conn, rx, latest_w))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                message: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Store {
            writer: tx,
            readers: Arc::new(readers),
            latest,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Store a report; returns once it is committed (or known).
    pub async fn insert(&self, report: NewReport) -> Result<Stored, StoreError> {
        let (ack, done) = oneshot::channel();
        self.write(Pending::Insert {
            report: Box::new(report),
            ack,
        })
        .await?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    async fn write(&self, p: Pending) -> Result<(), StoreError> {
        self.writer.send(p).await.map_err(|_| StoreError::Closed)
    }

    /// The latest summary of every node, by name.
    pub fn latest(&self) -> Vec<NodeSummary> {
        match self.latest.read() {
            Ok(m) => m.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        }
    }

    /// A stored report with its verdict and summary.
    pub async fn report(&self, id: String) -> Result<Option<StoredReport>, StoreError> {
        self.with_conn(move |c| {
            c.query_row(
                "SELECT report, verdict, summary FROM reports WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(StoreError::from)
            .map(|row| {
                row.map(|(report, verdict, summary)| StoredReport {
                    report,
                    verdict,
                    summary,
                })
            })
        })
        .await
    }

    /// The newest `limit` summaries of a node, newest first.
    pub async fn history(&self, node: String, limit: u32) -> Result<Vec<NodeSummary>, StoreError> {
        self.with_conn(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT summary FROM reports WHERE node = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![node, limit], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                if let Some(s) = parse_summary(&row?) {
                    out.push(s);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The latest report of `node` when its verdict has not been applied to the node yet:
    /// (report id, passed, failing checks as (id, message)).
    pub async fn ungated(&self, node: String) -> Result<Option<Ungated>, StoreError> {
        self.with_conn(move |c| {
            let row = c
                .query_row(
                    "SELECT summary, gated FROM reports WHERE node = ?1 ORDER BY seq DESC LIMIT 1",
                    params![node],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)),
                )
                .optional()?;
            Ok(match row {
                Some((summary, false)) => parse_summary(&summary).map(|s| Ungated {
                    report_id: s.report_id,
                    passed: s.passed,
                    failing: s.failing.into_iter().map(|f| (f.id, f.message)).collect(),
                }),
                _ => None,
            })
        })
        .await
    }

    /// Nodes whose latest report has not been applied to the node.
    pub async fn ungated_nodes(&self) -> Result<Vec<String>, StoreError> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT r.node FROM reports r
                 WHERE r.seq = (SELECT max(seq) FROM reports WHERE node = r.node) AND r.gated = 0",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Record that a report's verdict has been applied to its node.
    /// Goes through the writer like every other write, and returns once committed.
    pub async fn mark_gated(&self, report_id: String) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.write(Pending::MarkGated { report_id, ack }).await?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    /// How many reports are stored.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.with_conn(|c| {
            let n: i64 = c.query_row("SELECT count(*) FROM reports", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            // A free connection if there is one, else wait for the first.
            let conn = readers
                .iter()
                .find_map(|m| m.try_lock().ok())
                .unwrap_or_else(|| match readers[0].lock() {
                    Ok(c) => c,
                    Err(poisoned) => poisoned.into_inner(),
                });
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Sql(format!("read task failed: {e}")))?
    }
}

/// A verdict waiting to be applied to its node.
#[derive(Debug, Clone, PartialEq)]
pub struct Ungated {
    pub report_id: String,
    pub passed: bool,
    pub failing: Vec<(String, String)>,
}

/// A stored report's parts, as JSON text.
#[derive(Debug, Clone)]
pub struct StoredReport {
    pub report: String,
    pub verdict: String,
    pub summary: String,
}

fn parse_summary(text: &str) -> Option<NodeSummary> {
    serde_json::from_str(text).ok()
}

fn load_latest(c: &Connection) -> Result<BTreeMap<String, NodeSummary>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT r.summary FROM reports r
         WHERE r.seq = (SELECT max(seq) FROM reports WHERE node = r.node)",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = BTreeMap::new();
    for row in rows {
        if let Some(s) = parse_summary(&row?) {
            out.insert(s.node.clone(), s);
        }
    }
    Ok(out)
}

/// The writer thread: commit everything that is waiting in one transaction, then answer.
fn writer(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Pending>,
    latest: Arc<RwLock<BTreeMap<String, NodeSummary>>>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        match commit(&mut conn, &batch) {
            Ok(results) => {
                if let Ok(mut map) = latest.write() {
                    for r in &results {
                        if let Done::Inserted(stored) = r {
                            let Stored::New(s) = stored.as_ref() else {
                                continue;
                            };
                            map.insert(s.node.clone(), s.clone());
                        }
                    }
                }
                for (p, r) in batch.into_iter().zip(results) {
                    match (p, r) {
                        (Pending::Insert { ack, .. }, Done::Inserted(s)) => {
                            let _ = ack.send(Ok(*s));
                        }
                        (Pending::MarkGated { ack, .. }, _) => {
                            let _ = ack.send(Ok(()));
                        }
                        // `commit` answers each write in order; this pairing cannot occur.
                        (Pending::Insert { ack, .. }, Done::Marked) => {
                            let _ = ack.send(Err(StoreError::Sql(
                                "internal: the writer lost track of a report".into(),
                            )));
                        }
                    }
                }
            }
            Err(e) => {
                let text = e.to_string();
                for p in batch {
                    let err = StoreError::Sql(text.clone());
                    match p {
                        Pending::Insert { ack, .. } => {
                            let _ = ack.send(Err(err));
                        }
                        Pending::MarkGated { ack, .. } => {
                            let _ = ack.send(Err(err));
                        }
                    }
                }
            }
        }
    }
}

fn commit(conn: &mut Connection, batch: &[Pending]) -> Result<Vec<Done>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut find = tx.prepare_cached("SELECT report, summary FROM reports WHERE id = ?1")?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO reports (id, node, received_at, passed, report, verdict, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut mark = tx.prepare_cached("UPDATE reports SET gated = 1 WHERE id = ?1")?;
        for p in batch {
            let r = match p {
                Pending::Insert { report, .. } => report,
                Pending::MarkGated { report_id, .. } => {
                    mark.execute(params![report_id])?;
                    results.push(Done::Marked);
                    continue;
                }
            };
            let s = &r.summary;
            let existing = find
                .query_row(params![s.report_id], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .optional()?;
            let outcome = match existing {
                Some((report, summary)) if report == r.report_json => {
                    Stored::Repeat(parse_summary(&summary).unwrap_or_else(|| s.clone()))
                }
                Some(_) => Stored::Conflict,
                None => {
                    insert.execute(params![
                        s.report_id,
                        s.node,
                        s.received_at,
                        s.passed,
                        r.report_json,
                        r.verdict_json,
                        r.summary_json
                    ])?;
                    Stored::New(s.clone())
                }
            };
            results.push(Done::Inserted(Box::new(outcome)));
        }
    }
    tx.commit()?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, node: &str, passed: bool) -> NodeSummary {
        NodeSummary {
            node: node.into(),
            report_id: id.into(),
            received_at: "2026-11-29T00:00:00Z".into(),
            created_at: "2026-11-29T00:00:00Z".into(),
            passed,
            probe_passed: None,
            instance_type: Some("g6e.xlarge".into()),
            node_pool: None,
            accelerator: Some("NVIDIA L40S".into()),
            accelerator_count: 1,
            checks: 3,
            failing: vec![],
            warned: vec![],
            perf: vec![],
            figures: vec![],
            labels_from: "none".into(),
        }
    }

    fn new(id: &str, node: &str, body: &str) -> NewReport {
        NewReport::new(summary(id, node, true), body.into(), "{}".into())
    }

    #[tokio::test]
    async fn new_repeat_conflict_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = Store::open(&path).unwrap();
        assert!(matches!(
            store.insert(new("a", "n1", "{1}")).await.unwrap(),
            Stored::New(_)
        ));
        assert!(matches!(
            store.insert(new("a", "n1", "{1}")).await.unwrap(),
            Stored::Repeat(_)
        ));
        assert_eq!(
            store.insert(new("a", "n1", "{2}")).await.unwrap(),
            Stored::Conflict
        );
        store.insert(new("b", "n1", "{3}")).await.unwrap();
        store.insert(new("c", "n2", "{4}")).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 3);
        let hist = store.history("n1".into(), 10).await.unwrap();
        assert_eq!(
            hist.iter()
                .map(|s| s.report_id.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(store.report("a".into()).await.unwrap().is_some());
        assert!(store.report("zz".into()).await.unwrap().is_none());
        drop(store);
        // A fresh open sees the latest per node.
        let again = Store::open(&path).unwrap();
        let latest: Vec<(String, String)> = again
            .latest()
            .into_iter()
            .map(|s| (s.node, s.report_id))
            .collect();
        assert_eq!(
            latest,
            [("n1".into(), "b".into()), ("n2".into(), "c".into())]
        );
    }

    #[tokio::test]
    async fn only_the_latest_report_of_a_node_waits_for_the_gate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).unwrap();
        store.insert(new("a", "n1", "{1}")).await.unwrap();
        store.insert(new("b", "n1", "{2}")).await.unwrap();
        store.insert(new("c", "n2", "{3}")).await.unwrap();
        let mut nodes = store.ungated_nodes().await.unwrap();
        nodes.sort();
        assert_eq!(nodes, ["n1", "n2"]);
        let u = store.ungated("n1".into()).await.unwrap().unwrap();
        assert_eq!(u.report_id, "b", "the latest, not the first");
        store.mark_gated("b".into()).await.unwrap();
        assert_eq!(store.ungated("n1".into()).await.unwrap(), None);
        assert_eq!(store.ungated_nodes().await.unwrap(), ["n2"]);
        // Gating an older report does not count for the latest.
        store.mark_gated("a".into()).await.unwrap();
        store.insert(new("d", "n1", "{4}")).await.unwrap();
        assert_eq!(
            store.ungated("n1".into()).await.unwrap().unwrap().report_id,
            "d"
        );
        // A mark and a report sent at once share the writer (and may share its batch).
        let (stored, marked) = tokio::join!(
            store.insert(new("e", "n2", "{5}")),
            store.mark_gated("c".into())
        );
        assert!(matches!(stored.unwrap(), Stored::New(_)));
        marked.unwrap();
        assert_eq!(
            store.ungated("n2".into()).await.unwrap().unwrap().report_id,
            "e"
        );
    }

    #[tokio::test]
    async fn concurrent_inserts_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.insert(new(&format!("r{i}"), &format!("n{}", i % 7), "{}"))
                    .await
            }));
        }
        for t in tasks {
            assert!(matches!(t.await.unwrap().unwrap(), Stored::New(_)));
        }
        assert_eq!(store.count().await.unwrap(), 200);
        assert_eq!(store.latest().len(), 7);
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let e = Store::open(Path::new("/nonexistent-dir/x/c.db"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent-dir/x/c.db"), "{e}");
    }
}
