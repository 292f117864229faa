//! `accelprobe serve --kube` against a fake Kubernetes API server (plain HTTP on loopback,
//! reached through a kubeconfig): the collector reads each node's labels from the API, judges
//! the report with them, and gates the node. The gate's exact requests are unit-tested in
//! `src/serve/gate.rs` with kube's mock service; this test proves the wiring end to end.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{accelprobe, fakes, Collector};
use serde_json::{json, Value};

#[derive(Default)]
struct Cluster {
    nodes: BTreeMap<String, Value>,
    events: Vec<Value>,
    /// "METHOD path" of every request.
    requests: Vec<String>,
    /// Answer this many PATCHes with 500 before accepting them (an API outage).
    failing_patches: u32,
}

type Shared = Arc<Mutex<Cluster>>;

fn node(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "1", "labels": labels},
        "spec": {"taints": [
            {"key": "accelprobe.io/unverified", "effect": "NoSchedule"},
            {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
        ]}
    })
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
           "reason": reason, "message": message})
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn handle(cluster: &Shared, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let mut c = cluster.lock().unwrap();
    c.requests.push(format!("{method} {path}"));
    let path = path.split('?').next().unwrap_or("");
    if path == "/version" {
        return (
            200,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "0",
                   "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                   "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        );
    }
    if let Some(name) = path.strip_prefix("/api/v1/nodes/") {
        if method == "PATCH" && c.failing_patches > 0 && c.nodes.contains_key(name) {
            c.failing_patches -= 1;
            return (
                500,
                status(500, "InternalError", "etcd is having a bad day"),
            );
        }
        let Some(n) = c.nodes.get_mut(name) else {
            return (
                404,
                status(404, "NotFound", &format!("nodes \"{name}\" not found")),
            );
        };
        return match method {
            "GET" => (200, n.clone()),
            "PATCH" => {
                let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let rv = n["metadata"]["resourceVersion"].clone();
                if patch["metadata"]["resourceVersion"] != rv {
                    return (409, status(409, "Conflict", "the object has been modified"));
                }
                merge(n, &patch);
                let next = rv.as_str().unwrap_or("1").parse::<u64>().unwrap_or(1) + 1;
                n["metadata"]["resourceVersion"] = json!(next.to_string());
                (200, n.clone())
            }
            _ => (405, status(405, "MethodNotAllowed", "no")),
        };
    }
    if path == "/apis/karpenter.sh/v1/nodepools/gpu" && method == "GET" {
        // The seed's NodePool, as the API server returns it.
        return (
            200,
            json!({
                "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
                "metadata": {"name": "gpu", "resourceVersion": "7"},
                "spec": {"template": {"spec": {
                    "nodeClassRef": {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "default"},
                    "requirements": [
                        {"key": "eks.amazonaws.com/instance-family", "operator": "In", "values": ["g6e", "g6"]}
                    ],
                    "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
                    "startupTaints": [{"key": "accelprobe.io/unverified", "effect": "NoSchedule"}]
                }}}
            }),
        );
    }
    if path == "/api/v1/namespaces/default/events" && method == "POST" {
        let mut e: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        e["metadata"]["name"] = json!(format!("event-{}", c.events.len()));
        c.events.push(e.clone());
        return (201, e);
    }
    (404, status(404, "NotFound", "no such path"))
}

fn serve_connection(cluster: Shared, stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let (code, answer) = handle(&cluster, &method, &path, &body);
    let text = answer.to_string();
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// Start the fake API server; its URL.
fn api_server(cluster: Shared) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let c = cluster.clone();
            std::thread::spawn(move || serve_connection(c, stream));
        }
    });
    url
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fake cluster with two GPU nodes of NodePool `gpu` (tainted), a kubeconfig for it, and a
/// requirements directory with the seed's Pod (l40s).
struct Setup {
    dir: tempfile::TempDir,
    cluster: Shared,
    kubeconfig: std::path::PathBuf,
    requirements: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let labels = json!({
        "karpenter.sh/nodepool": "gpu",
        "eks.amazonaws.com/instance-gpu-name": "l40s",
        "eks.amazonaws.com/compute-type": "auto"
    });
    let cluster: Shared = Arc::default();
    {
        let mut c = cluster.lock().unwrap();
        for name in ["gpu-good", "gpu-bad"] {
            c.nodes.insert(name.into(), node(name, labels.clone()));
        }
    }
    let api = api_server(cluster.clone());
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{api}\"}}\n\
             users:\n- name: collector\n  user: {{token: t}}\ncontexts:\n- name: c\n  context: {{cluster: fake, user: collector}}\n\
             current-context: c\n"
        ),
    )
    .unwrap();
    let requirements = dir.path().join("requirements");
    std::fs::create_dir_all(&requirements).unwrap();
    std::fs::copy(
        common::fixture("k8s/seed-pod.yaml"),
        requirements.join("seed-pod.yaml"),
    )
    .unwrap();
    Setup {
        dir,
        cluster,
        kubeconfig,
        requirements,
    }
}

impl Setup {
    fn collector(&self, kube: bool) -> Collector {
        let db = self.dir.path().join("c.db");
        let mut args = vec![
            "--db".as_ref(),
            db.as_os_str(),
            "--requirements".as_ref(),
            self.requirements.as_os_str(),
        ];
        if kube {
            args.push("--kube".as_ref());
        }
        Collector::start_with_env(&args, &[("KUBECONFIG", self.kubeconfig.as_os_str())])
    }

    /// `accelprobe run --post` as `node`, optionally claiming labels of its own; its stderr.
    fn run(
        &self,
        collector: &Collector,
        node: &str,
        fixture: &str,
        labels: Option<&str>,
    ) -> String {
        let mut cmd = accelprobe();
        fakes().serve(&mut cmd, fixture);
        cmd.args(["run", "--no-bench", "--post-timeout", "2s", "--post"])
            .arg(format!("{}/v1/reports", collector.url))
            .arg("--termination-log")
            .arg(self.dir.path().join("term"))
            .env("NODE_NAME", node);
        if let Some(text) = labels {
            let path = self.dir.path().join(format!("labels-{node}.json"));
            std::fs::write(&path, text).unwrap();
            cmd.arg("--node-labels").arg(path);
        }
        let o = cmd.output().unwrap();
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn label(&self, node: &str) -> Option<String> {
        self.cluster.lock().unwrap().nodes[node]["metadata"]["labels"]["accelprobe.io/verdict"]
            .as_str()
            .map(str::to_string)
    }

    fn taints(&self, node: &str) -> Vec<String> {
        self.cluster.lock().unwrap().nodes[node]["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn the_collector_gates_nodes_with_the_labels_the_api_server_holds() {
    let s = setup();
    // The first PATCH meets an API outage: the gate must come back to it.
    s.cluster.lock().unwrap().failing_patches = 1;
    let collector = s.collector(true);

    // gpu-good sends no labels; gpu-bad claims another NodePool and GPU: the API server's
    // labels are what count.
    let err = s.run(&collector, "gpu-good", "seed-l40s", None);
    assert!(err.contains("delivered (HTTP 201)"), "{err}");
    let claim =
        r#"{"karpenter.sh/nodepool": "other", "eks.amazonaws.com/instance-gpu-name": "l4"}"#;
    let err = s.run(&collector, "gpu-bad", "l4", Some(claim));
    assert!(err.contains("delivered (HTTP 201)"), "{err}");
    let err = s.run(&collector, "ghost", "l4", None);
    assert!(
        err.contains("refused the report with HTTP 400"),
        "a node the cluster does not have: {err}"
    );

    let (_, body) = collector.get("/v1/nodes/gpu-bad");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["history"][0]["labels_from"], "kubernetes-api");
    assert_eq!(h["history"][0]["node_pool"], "gpu", "not the claimed one");
    assert_eq!(h["history"][0]["passed"], false);
    // The NodePool came from the cluster (the requirements directory holds only the Pod).
    let id = h["history"][0]["report_id"].as_str().unwrap().to_string();
    let (_, body) = collector.get(&format!("/v1/reports/{id}"));
    assert!(
        body.contains("NodePool gpu (Kubernetes API)"),
        "the cluster's NodePool is a source: {body}"
    );

    wait_for("the gate", || {
        s.label("gpu-good").is_some()
            && s.label("gpu-bad").is_some()
            && !s.cluster.lock().unwrap().events.is_empty()
    });
    assert_eq!(s.label("gpu-good").as_deref(), Some("pass"));
    assert_eq!(
        s.taints("gpu-good"),
        ["nvidia.com/gpu"],
        "only the startup taint goes"
    );
    assert_eq!(s.label("gpu-bad").as_deref(), Some("fail"));
    assert_eq!(
        s.taints("gpu-bad"),
        ["accelprobe.io/unverified", "nvidia.com/gpu"],
        "a failing node stays tainted"
    );
    let c = s.cluster.lock().unwrap();
    assert_eq!(c.events.len(), 1, "{:?}", c.events);
    let e = &c.events[0];
    assert_eq!(e["involvedObject"]["name"], "gpu-bad");
    assert_eq!(e["type"], "Warning");
    assert!(e["message"].as_str().unwrap().contains("gpu.model"), "{e}");
    assert!(
        !c.requests
            .iter()
            .any(|r| r.contains("ghost") && !r.starts_with("GET")),
        "nothing is written about an unknown node: {:?}",
        c.requests
    );
    drop(c);
    let (_, metrics) = collector.get("/metrics");
    assert!(
        metrics.contains("accelprobe_gate_errors_total 1"),
        "the outage was counted: {metrics}"
    );
    assert!(collector.log.lock().unwrap().contains("retrying in"));
}

#[test]
fn verdicts_stored_without_the_gate_are_applied_when_it_starts() {
    let s = setup();
    // First without --kube (the labels come from the report), as after a crash between the
    // commit and the gate.
    let mut first = s.collector(false);
    let labels = r#"{"karpenter.sh/nodepool": "gpu", "eks.amazonaws.com/instance-gpu-name": "l40s", "eks.amazonaws.com/compute-type": "auto"}"#;
    let err = s.run(&first, "gpu-good", "seed-l40s", Some(labels));
    assert!(err.contains("delivered (HTTP 201)"), "{err}");
    assert!(first.stop().success());
    assert_eq!(s.label("gpu-good"), None);

    let second = s.collector(true);
    wait_for("the gate at start", || s.label("gpu-good").is_some());
    assert_eq!(s.label("gpu-good").as_deref(), Some("pass"));
    assert_eq!(s.taints("gpu-good"), ["nvidia.com/gpu"]);
    assert!(second.log.lock().unwrap().contains("not yet applied"));
    // The action is logged once it is recorded as applied.
    wait_for("the gate action recorded", || {
        second
            .log
            .lock()
            .unwrap()
            .contains("node gpu-good: verdict pass")
    });
    // Applied once: a restart does not even look at the node again (re-applying would read
    // it and find nothing to patch, so counting PATCHes alone would prove nothing).
    let mut second = second;
    assert!(second.stop().success());
    let touches = |c: &Cluster| c.requests.iter().filter(|r| r.contains("gpu-good")).count();
    let before = touches(&s.cluster.lock().unwrap());
    let third = s.collector(true);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(touches(&s.cluster.lock().unwrap()), before);
    assert!(
        !third.log.lock().unwrap().contains("not yet applied"),
        "{}",
        third.log.lock().unwrap()
    );
    drop(third);
}

#[test]
fn a_verdict_that_cannot_be_read_for_a_while_is_still_applied() {
    let s = setup();
    // The first PATCH fails, so the gate comes back to the node 2 s later; by then its
    // verdict cannot be read (the table is renamed away under the collector), and the gate
    // must come back again rather than drop the verdict.
    s.cluster.lock().unwrap().failing_patches = 1;
    let collector = s.collector(true);
    let err = s.run(&collector, "gpu-good", "seed-l40s", None);
    assert!(err.contains("delivered (HTTP 201)"), "{err}");
    let log = || collector.log.lock().unwrap().clone();
    wait_for("the first retry to be scheduled", || {
        log().contains("retrying in 2s")
    });
    let db = rusqlite::Connection::open(s.dir.path().join("c.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch("ALTER TABLE reports RENAME TO reports_away")
        .unwrap();
    wait_for("the read to fail", || {
        log().contains("cannot read its latest verdict")
    });
    assert_eq!(s.label("gpu-good"), None);
    db.execute_batch("ALTER TABLE reports_away RENAME TO reports")
        .unwrap();
    wait_for("the verdict applied after all", || {
        s.label("gpu-good").is_some()
    });
    assert_eq!(s.label("gpu-good").as_deref(), Some("pass"));
    assert_eq!(s.taints("gpu-good"), ["nvidia.com/gpu"]);
    wait_for("the gate action recorded", || {
        log().contains("node gpu-good: verdict pass")
    });
}
