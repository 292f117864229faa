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
    if let Some(name) = path.strip_prefix("/api/v1/nodes/") {
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

#[test]
fn the_collector_gates_nodes_with_the_labels_the_api_server_holds() {
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
    let req = dir.path().join("requirements");
    std::fs::create_dir_all(&req).unwrap();
    std::fs::copy(
        common::fixture("k8s/seed-pod.yaml"),
        req.join("seed-pod.yaml"),
    )
    .unwrap();
    std::env::set_var("KUBECONFIG", &kubeconfig);
    let collector = Collector::start(&[
        "--db".as_ref(),
        dir.path().join("c.db").as_os_str(),
        "--requirements".as_ref(),
        req.as_os_str(),
        "--kube".as_ref(),
    ]);

    // The pods send no labels: the collector asks the API server.
    for (node, fixture) in [
        ("gpu-good", "seed-l40s"),
        ("gpu-bad", "l4"),
        ("ghost", "l4"),
    ] {
        let mut cmd = accelprobe();
        fakes().serve(&mut cmd, fixture);
        let o = cmd
            .args(["run", "--no-bench", "--post-timeout", "2s", "--post"])
            .arg(format!("{}/v1/reports", collector.url))
            .arg("--termination-log")
            .arg(dir.path().join("term"))
            .env("NODE_NAME", node)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if node == "ghost" {
            assert!(
                err.contains("refused the report with HTTP 400"),
                "a node the cluster does not have: {err}"
            );
        } else {
            assert!(err.contains("delivered (HTTP 201)"), "{node}: {err}");
        }
    }

    let (_, body) = collector.get("/v1/nodes/gpu-bad");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["history"][0]["labels_from"], "kubernetes-api");
    assert_eq!(h["history"][0]["node_pool"], "gpu");
    assert_eq!(h["history"][0]["passed"], false);

    let label = |c: &Cluster, n: &str| {
        c.nodes[n]["metadata"]["labels"]["accelprobe.io/verdict"]
            .as_str()
            .map(str::to_string)
    };
    wait_for("the gate", || {
        let c = cluster.lock().unwrap();
        label(&c, "gpu-good").is_some() && label(&c, "gpu-bad").is_some() && !c.events.is_empty()
    });
    let c = cluster.lock().unwrap();
    let taints = |n: &str| -> Vec<String> {
        c.nodes[n]["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(label(&c, "gpu-good").as_deref(), Some("pass"));
    assert_eq!(
        taints("gpu-good"),
        ["nvidia.com/gpu"],
        "only the startup taint goes"
    );
    assert_eq!(label(&c, "gpu-bad").as_deref(), Some("fail"));
    assert_eq!(
        taints("gpu-bad"),
        ["accelprobe.io/unverified", "nvidia.com/gpu"],
        "a failing node stays tainted"
    );
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
    let (_, metrics) = collector.get("/metrics");
    assert!(
        metrics.contains("accelprobe_gate_errors_total 0"),
        "{metrics}"
    );
}
