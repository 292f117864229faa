//! `accelprobe serve` end to end on loopback: validation pods (`accelprobe run --post` against
//! the fake NVML and CUDA driver) report to a collector started by the test; the collector's
//! own verdicts, its API, metrics and fleet page are checked, then its refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{accelprobe, fakes, fixture, stderr, Collector};
use serde_json::Value;

/// A requirements directory with the seed's NodePool and Pod, and a labels file for a node of
/// that NodePool with an L40S.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let req = dir.join("requirements");
    std::fs::create_dir_all(&req).unwrap();
    for f in ["seed-nodepool-gpu.yaml", "seed-pod.yaml"] {
        std::fs::copy(fixture(&format!("k8s/{f}")), req.join(f)).unwrap();
    }
    let labels = dir.join("labels.json");
    std::fs::write(
        &labels,
        r#"{"karpenter.sh/nodepool": "gpu",
            "eks.amazonaws.com/instance-gpu-name": "l40s",
            "eks.amazonaws.com/compute-type": "auto",
            "kubernetes.io/arch": "amd64"}"#,
    )
    .unwrap();
    (req, labels)
}

/// `accelprobe run --no-bench --post URL` as node `node` serving `fixture_name`.
fn spawn_run(node: &str, fixture_name: &str, labels: &Path, url: &str, dir: &Path) -> Child {
    let mut cmd = accelprobe();
    fakes().serve(&mut cmd, fixture_name);
    cmd.arg("run")
        .args(["--no-bench", "--post"])
        .arg(format!("{url}/v1/reports"))
        .arg("--node-labels")
        .arg(labels)
        .arg("--termination-log")
        .arg(dir.join(format!("term-{node}")))
        .env("NODE_NAME", node)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start accelprobe run")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn validation_pods_report_and_the_collector_judges_records_and_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let (req, labels) = setup(dir.path());
    let db = dir.path().join("c.db");
    let collector = Collector::start(&[
        "--db".as_ref(),
        db.as_os_str(),
        "--requirements".as_ref(),
        req.as_os_str(),
    ]);
    // Three pods at once: two L40S nodes pass, an L4 node fails the Pod's l40s selector.
    let nodes = [
        ("gpu-node-a", "seed-l40s", 0),
        ("gpu-node-b", "l4", 1),
        ("gpu-node-c", "seed-l40s", 0),
    ];
    let children: Vec<(&str, i32, Child)> = nodes
        .iter()
        .map(|(n, f, code)| {
            (
                *n,
                *code,
                spawn_run(n, f, &labels, &collector.url, dir.path()),
            )
        })
        .collect();
    let mut ids = std::collections::BTreeMap::new();
    for (node, code, child) in children {
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{node}: {err}");
        assert!(err.contains("delivered (HTTP 201)"), "{node}: {err}");
        let doc = json(String::from_utf8_lossy(&o.stdout).trim());
        ids.insert(node, doc["id"].as_str().unwrap().to_string());
    }

    // Latest verdict per node.
    let (status, body) = collector.get("/v1/nodes");
    assert_eq!(status, 200);
    let list = json(&body);
    let by_node: std::collections::BTreeMap<&str, &Value> = list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap(), n))
        .collect();
    assert_eq!(by_node.len(), 3, "{body}");
    assert_eq!(by_node["gpu-node-a"]["passed"], true, "{body}");
    assert_eq!(by_node["gpu-node-c"]["passed"], true);
    let b = by_node["gpu-node-b"];
    assert_eq!(b["passed"], false);
    assert_eq!(b["node_pool"], "gpu");
    assert_eq!(b["labels_from"], "report");
    assert_eq!(b["accelerator"], "NVIDIA L4");
    let failing: Vec<&str> = b["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(failing.contains(&"gpu.model"), "{failing:?}");

    // History of one node, a stored report with the collector's verdict.
    let (status, body) = collector.get("/v1/nodes/gpu-node-b");
    assert_eq!(status, 200);
    let h = json(&body);
    assert_eq!(h["history"].as_array().unwrap().len(), 1);
    assert_eq!(h["history"][0]["report_id"], ids["gpu-node-b"].as_str());
    let (status, body) = collector.get(&format!("/v1/reports/{}", ids["gpu-node-b"]));
    assert_eq!(status, 200);
    let r = json(&body);
    assert_eq!(r["report"]["devices"][0]["name"], "NVIDIA L4");
    assert_eq!(r["verdict"]["passed"], false);
    assert_eq!(r["verdict"]["node"], "gpu-node-b");
    let sources = r["verdict"]["requirements"].to_string();
    assert!(
        sources.contains("seed-pod.yaml") && sources.contains("seed-nodepool-gpu.yaml"),
        "the collector's own manifests are the sources: {sources}"
    );

    // Metrics.
    let (status, metrics) = collector.get("/metrics");
    assert_eq!(status, 200);
    for want in [
        "accelprobe_node_passed{node=\"gpu-node-a\",instance_type=\"\",nodepool=\"gpu\"} 1",
        "accelprobe_node_passed{node=\"gpu-node-b\",instance_type=\"\",nodepool=\"gpu\"} 0",
        "accelprobe_node_check_failed{node=\"gpu-node-b\",check=\"gpu.model\"} 1",
        "accelprobe_check_failing_nodes{check=\"gpu.model\"} 1",
        "accelprobe_nodes{verdict=\"pass\"} 2",
        "accelprobe_nodes{verdict=\"fail\"} 1",
        "accelprobe_reports_stored_total 3",
    ] {
        assert!(metrics.contains(want), "missing {want}:\n{metrics}");
    }

    // The page lists every node, the failing one with its check.
    let (status, page) = collector.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("3 nodes: 2 passing, 1 failing"), "{page}");
    let row_b = &page[page.find("data-node=\"gpu-node-b\"").unwrap()..];
    let row_b = &row_b[..row_b.find("</tr>").unwrap()];
    assert!(
        row_b.contains(">FAIL<") && row_b.contains("gpu.model"),
        "{row_b}"
    );

    let (status, health) = collector.get("/healthz");
    assert_eq!(status, 200);
    assert_eq!(json(&health)["reports"], 3);
}

/// A report as `accelprobe run` would post it for an L4 node, with the probe's own verdict.
fn l4_report(dir: &Path, labels: &Path, node: &str) -> Value {
    let mut cmd = accelprobe();
    fakes().serve(&mut cmd, "l4");
    let o = cmd
        .args(["run", "--no-bench", "--node-labels"])
        .arg(labels)
        .arg("--termination-log")
        .arg(dir.join("term"))
        .env("NODE_NAME", node)
        .output()
        .unwrap();
    json(String::from_utf8_lossy(&o.stdout).trim())
}

#[test]
fn a_probe_cannot_certify_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (req, labels) = setup(dir.path());
    let collector = Collector::start(&[
        "--db".as_ref(),
        dir.path().join("c.db").as_os_str(),
        "--requirements".as_ref(),
        req.as_os_str(),
    ]);
    let mut doc = l4_report(dir.path(), &labels, "forged");
    // The probe claims a pass.
    doc["verdict"] = serde_json::json!({"passed": true, "checks": []});
    let (status, body) = collector.post("/v1/reports", doc.to_string().as_bytes(), None);
    assert_eq!(status, 201, "{body}");
    let answer = json(&body);
    assert_eq!(answer["passed"], false, "{body}");
    assert_eq!(answer["summary"]["probe_passed"], true);
    assert!(answer["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == "gpu.model" && c["status"] == "fail"));
}

#[test]
fn a_node_the_collector_has_no_requirements_for_fails() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&["--db".as_ref(), dir.path().join("c.db").as_os_str()]);
    // No labels, no instance type, no manifests: nothing to judge against.
    let mut cmd = accelprobe();
    fakes().serve(&mut cmd, "seed-l40s");
    let o = cmd
        .args(["run", "--no-bench", "--post"])
        .arg(format!("{}/v1/reports", collector.url))
        .arg("--termination-log")
        .arg(dir.path().join("term"))
        .env("NODE_NAME", "bare")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "the probe itself found nothing wrong"
    );
    let (_, body) = collector.get("/v1/nodes/bare");
    let h = json(&body);
    assert_eq!(h["history"][0]["passed"], false, "{body}");
    assert_eq!(h["history"][0]["failing"][0]["id"], "requirements.present");

    // Labels every node has (an on-premises node, a NodePool the collector does not hold)
    // say nothing about its accelerators: still nothing to judge against.
    let labels = dir.path().join("labels.yaml");
    std::fs::write(
        &labels,
        "kubernetes.io/arch: amd64\nkubernetes.io/os: linux\nkubernetes.io/hostname: onprem-1\nkarpenter.sh/nodepool: elsewhere\n",
    )
    .unwrap();
    let mut cmd = accelprobe();
    fakes().serve(&mut cmd, "seed-l40s");
    let o = cmd
        .args(["run", "--no-bench", "--node-labels"])
        .arg(&labels)
        .arg("--post")
        .arg(format!("{}/v1/reports", collector.url))
        .arg("--termination-log")
        .arg(dir.path().join("term"))
        .env("NODE_NAME", "onprem-1")
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("delivered (HTTP 201)"),
        "{}",
        stderr(&o)
    );
    let (_, body) = collector.get("/v1/nodes/onprem-1");
    let h = json(&body);
    assert_eq!(h["history"][0]["passed"], false, "{body}");
    assert_eq!(h["history"][0]["failing"][0]["id"], "requirements.present");
}

#[test]
fn tokens_limits_idempotency_and_bad_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let (_, labels) = setup(dir.path());
    let token = dir.path().join("token");
    std::fs::write(&token, "# current\ns3cret\n").unwrap();
    let collector = Collector::start(&[
        "--db".as_ref(),
        dir.path().join("c.db").as_os_str(),
        "--token-file".as_ref(),
        token.as_os_str(),
        "--max-body".as_ref(),
        "64KiB".as_ref(),
    ]);
    let doc = l4_report(dir.path(), &labels, "node-x");
    let body = doc.to_string();
    let post = |b: &[u8], t: Option<&str>| collector.post("/v1/reports", b, t);

    assert_eq!(post(body.as_bytes(), None).0, 401);
    assert_eq!(post(body.as_bytes(), Some("s3cre")).0, 401);
    let (status, first) = post(body.as_bytes(), Some("s3cret"));
    assert_eq!(status, 201, "{first}");
    assert_eq!(json(&first)["stored"], "new");
    let (status, again) = post(body.as_bytes(), Some("s3cret"));
    assert_eq!(status, 200, "{again}");
    assert_eq!(json(&again)["stored"], "repeat");
    // Same id, other content.
    let mut other = doc.clone();
    other["host"]["hostname"] = "elsewhere".into();
    let (status, conflict) = post(other.to_string().as_bytes(), Some("s3cret"));
    assert_eq!(status, 409, "{conflict}");

    let too_big = vec![b' '; 100 * 1024];
    assert_eq!(post(&too_big, Some("s3cret")).0, 413);
    for (bad, why) in [
        (&b"{\"schema_version\": 1, "[..], "invalid JSON"),
        (&b"[]"[..], "not an accelprobe report"),
        (&b"\xff\xfe"[..], "not UTF-8"),
        (&b""[..], "invalid JSON"),
    ] {
        let (status, text) = post(bad, Some("s3cret"));
        assert_eq!(status, 400, "{why}: {text}");
        assert!(
            json(&text)["error"].as_str().unwrap().contains(why),
            "{text}"
        );
    }
    let mut newer = doc.clone();
    newer["schema_version"] = 999.into();
    newer["id"] = "newer".into();
    let (status, text) = post(newer.to_string().as_bytes(), Some("s3cret"));
    assert_eq!(status, 400);
    assert!(text.contains("newer"), "{text}");
    let mut nameless = doc.clone();
    nameless["id"] = "nameless".into();
    nameless["host"] = serde_json::json!({});
    let (status, text) = post(nameless.to_string().as_bytes(), Some("s3cret"));
    assert_eq!(status, 400);
    assert!(text.contains("names no node"), "{text}");

    let (status, text) = collector.get("/v1/reports");
    assert_eq!(status, 405, "{text}");
    assert!(json(&text)["error"].is_string());
    let (status, text) = collector.get("/v1/nodes/node-x?limit=lots");
    assert_eq!(status, 400, "{text}");
    assert!(json(&text)["error"].as_str().unwrap().contains("limit"));
    assert_eq!(collector.get("/v1/reports/nope").0, 404);
    assert_eq!(collector.get("/v1/nodes/nope").0, 404);
    let (status, text) = collector.get("/v2/whatever");
    assert_eq!(status, 404);
    assert!(text.contains("no such endpoint"), "{text}");

    let (_, metrics) = collector.get("/metrics");
    for want in [
        "accelprobe_reports_received_total 12",
        "accelprobe_reports_stored_total 1",
        "accelprobe_reports_repeated_total 1",
        "accelprobe_reports_rejected_total{reason=\"unauthorized\"} 2",
        "accelprobe_reports_rejected_total{reason=\"conflict\"} 1",
        "accelprobe_reports_rejected_total{reason=\"too_large\"} 1",
        "accelprobe_reports_rejected_total{reason=\"invalid\"} 6",
    ] {
        assert!(metrics.contains(want), "missing {want}:\n{metrics}");
    }
    let (status, health) = collector.get("/healthz");
    assert_eq!((status, json(&health)["reports"].as_u64()), (200, Some(1)));
}

#[test]
fn stored_reports_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_, labels) = setup(dir.path());
    let db = dir.path().join("c.db");
    let args = ["--db".as_ref(), db.as_os_str()];
    let mut first = Collector::start(&args);
    let doc = l4_report(dir.path(), &labels, "node-r");
    assert_eq!(
        first
            .post("/v1/reports", doc.to_string().as_bytes(), None)
            .0,
        201
    );
    assert!(first.stop().success(), "SIGTERM is a clean stop");
    let second = Collector::start(&args);
    let (_, body) = second.get("/v1/nodes");
    assert_eq!(json(&body)["nodes"][0]["node"], "node-r");
    assert_eq!(
        second
            .post("/v1/reports", doc.to_string().as_bytes(), None)
            .0,
        200,
        "still known after the restart"
    );
}

fn serve_fails(args: &[&str]) -> (i32, String) {
    let o = accelprobe().arg("serve").args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn unsafe_or_broken_settings_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let db = db.to_str().unwrap();
    let (code, err) = serve_fails(&["--listen", "0.0.0.0:0", "--db", db]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--token-file") && err.contains("--insecure"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("np.yaml"), "kind: NodePool\nspec: [unclosed\n").unwrap();
    let (code, err) = serve_fails(&["--db", db, "--requirements", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("np.yaml"), "{err}");

    let (code, err) = serve_fails(&["--db", "/nonexistent-dir/c.db"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("/nonexistent-dir/c.db"), "{err}");

    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let (code, err) = serve_fails(&["--db", db, "--token-file", empty.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("holds no token"), "{err}");

    // --kube with an API server that does not answer: exit 3 at start, not a silent gate.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster: {server: \"http://127.0.0.1:9\"}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: x, user: u}\n\
         current-context: c\n",
    )
    .unwrap();
    let o = accelprobe()
        .args(["serve", "--db", db, "--kube"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot reach the Kubernetes API"), "{err}");

    // Port already taken: exit 3.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = serve_fails(&["--db", db, "--listen", &addr]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot listen"), "{err}");
}

#[test]
fn connections_that_stall_before_their_headers_are_closed() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&[
        "--db".as_ref(),
        dir.path().join("c.db").as_os_str(),
        "--header-timeout".as_ref(),
        "1s".as_ref(),
    ]);
    let addr = collector.url.trim_start_matches("http://").to_string();
    let open = || {
        let s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    };
    // Closed: read returns end of stream (or the connection is reset), well before 15 s.
    let closed_within = |mut s: std::net::TcpStream, what: &str| {
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "{what}: open after {took:?}"
        );
        rest
    };
    // Half a request line, then nothing.
    let mut slow = open();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    closed_within(slow, "a half-sent header");
    // A kept-alive connection idle after its first answer.
    let mut idle = open();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = closed_within(idle, "an idle kept-alive connection");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The collector still serves.
    let (status, _) = collector.get("/healthz");
    assert_eq!(status, 200);
}

#[test]
fn a_stopping_collector_refuses_new_connections_while_open_ones_finish() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&["--db".as_ref(), dir.path().join("c.db").as_os_str()]);
    let addr = collector.url.trim_start_matches("http://").to_string();
    // A POST whose body is still on its way holds the shutdown open (up to its grace).
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill(2) on the collector's own pid.
    assert_eq!(
        unsafe { libc::kill(collector.child.id() as i32, libc::SIGTERM) },
        0
    );
    let started = Instant::now();
    loop {
        match std::net::TcpStream::connect(&addr) {
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                break;
            }
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "still accepting connections {:?} after SIGTERM",
                    started.elapsed()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    drop(slow);
}
