//! `accelprobe run`, the validation-pod entrypoint, configured through environment variables
//! as a manifest would, against the fake NVML and CUDA driver.

mod common;

use std::path::Path;
use std::process::Output;

use common::{accelprobe, fakes, fixture, stderr};
use serde_json::Value;

fn run(report_fixture: &str, term: &Path, extra_env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = accelprobe();
    fakes().serve(&mut cmd, report_fixture);
    cmd.arg("run")
        .args(args)
        .env("ACCELPROBE_POD", fixture("k8s/seed-pod.yaml"))
        .env("ACCELPROBE_NODEPOOL", fixture("k8s/seed-nodepool-gpu.yaml"))
        .env("ACCELPROBE_TERMINATION_LOG", term);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("run accelprobe run")
}

#[test]
fn the_seed_node_passes_with_one_json_line_and_a_termination_message() {
    let dir = tempfile::tempdir().unwrap();
    let term = dir.path().join("termination-log");
    let o = run("seed-l40s", &term, &[], &["--no-bench"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 1, "exactly one JSON line on stdout");
    let doc: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(doc["verdict"]["passed"], true);
    assert_eq!(doc["devices"][0]["name"], "NVIDIA L40S");
    assert!(
        err.contains("verdict PASS") && err.contains("NVIDIA L40S"),
        "{err}"
    );
    let msg = std::fs::read_to_string(&term).unwrap();
    assert!(msg.len() <= 4096);
    let m: Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(m["passed"], true);
    assert_eq!(m["report_id"], doc["id"]);
}

#[test]
fn a_wrong_gpu_fails_and_the_termination_message_leads_with_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let term = dir.path().join("termination-log");
    let o = run("l4", &term, &[], &["--no-bench"]);
    assert_eq!(o.status.code(), Some(1));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&term).unwrap()).unwrap();
    assert_eq!(m["passed"], false);
    let ids: Vec<&str> = m["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gpu.model"), "{ids:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("fail gpu.model"));
}

#[test]
fn expectations_come_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let term = dir.path().join("t");
    let o = run(
        "seed-l40s",
        &term,
        &[("ACCELPROBE_EXPECT", "count=2;min-driver=535".into())],
        &["--no-bench"],
    );
    assert_eq!(o.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&str> = doc["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["gpu.count"], "count=2 fails, min-driver=535 holds");

    // Switches read from the environment take the usual spellings of yes.
    for yes in ["1", "yes", "on", "true"] {
        let o = run(
            "seed-l40s",
            &term,
            &[("ACCELPROBE_NO_BENCH", yes.into())],
            &[],
        );
        assert_eq!(o.status.code(), Some(0), "{yes}: {}", stderr(&o));
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            doc["benchmarks"].as_array().is_none_or(Vec::is_empty),
            "{yes}"
        );
    }
    // (With "no" they run: benchmarks_run_and_land_in_the_report.)
}

#[test]
fn benchmarks_run_and_land_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let term = dir.path().join("t");
    // No CUDA: the quick profile runs on the CPU (small sizes to keep the test fast). A "no"
    // for the environment's switch is a no.
    let o = run(
        "seed-l40s",
        &term,
        &[("ACCELPROBE_NO_BENCH", "no".into())],
        &["--no-cuda", "--profile", "quick"],
    );
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = doc["benchmarks"].as_array().unwrap();
    assert!(b.len() >= 5, "{}", doc["benchmarks"]);
    assert!(b.iter().all(|x| x["correctness"]["passed"] == true));
}

#[test]
fn bad_input_exits_2_before_probing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: Pod\nspec: [\n").unwrap();
    let term = dir.path().join("t");
    let o = run(
        "seed-l40s",
        &term,
        &[("ACCELPROBE_POD", bad.display().to_string())],
        &["--no-bench"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.yaml"));
    assert!(!term.exists(), "no verdict is written for bad input");
}

/// A loopback HTTP server answering each request with the next status of `script` (the last
/// one repeats); returns its URL and the requests it received (head and body).
fn collector(script: Vec<u16>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/reports", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate().take(20) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .ok();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            // Read the head, then as much body as Content-Length says.
            loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).to_string());
            let status = *script.get(i).or(script.last()).unwrap();
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, seen)
}

#[test]
fn the_report_is_posted_with_retries_and_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let term = dir.path().join("t");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (url, seen) = collector(vec![503, 503, 201]);
    let o = run(
        "seed-l40s",
        &term,
        &[],
        &[
            "--no-bench",
            "--post",
            &url,
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("delivered (HTTP 201) after 3 attempt(s)"),
        "{err}"
    );
    let reqs = seen.lock().unwrap();
    assert_eq!(reqs.len(), 3);
    let last = &reqs[2];
    assert!(last.starts_with("POST /v1/reports"), "{last}");
    assert!(last.contains("Bearer s3cret"), "{last}");
    let body = &last[last.find("\r\n\r\n").unwrap() + 4..];
    let doc: Value = serde_json::from_str(body).unwrap();
    assert_eq!(doc["verdict"]["passed"], true);
}

#[test]
fn a_refusing_or_missing_collector_does_not_change_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let term = dir.path().join("t");
    let (url, seen) = collector(vec![401]);
    let o = run("seed-l40s", &term, &[], &["--no-bench", "--post", &url]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused the report with HTTP 401"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1, "a 401 is not retried");
    // Nothing listening: bounded retries, then the verdict's exit code (1 for the L4).
    let start = std::time::Instant::now();
    let o = run(
        "l4",
        &term,
        &[],
        &[
            "--no-bench",
            "--post",
            "http://127.0.0.1:9/v1/reports",
            "--post-timeout",
            "1s",
        ],
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not delivered"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Bad settings are bad input.
    let o = run(
        "seed-l40s",
        &term,
        &[],
        &["--no-bench", "--post", "ftp://x"],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn every_keeps_judging_and_bad_settings_stop_the_first_round() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let term = dir.path().join("t");
    let mut cmd = accelprobe();
    fakes().serve(&mut cmd, "l4");
    // The fixture is an L4 and the round requires an L40S: its verdict fails.
    let mut child = cmd
        .args(["run", "--no-bench", "--every", "1m", "--termination-log"])
        .arg(&term)
        .env("ACCELPROBE_EXPECT", "gpu=l40s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first round's line arrives although its verdict failed, and the process goes on.
    // Read it on a thread, so that a process that never writes fails the test, not hangs it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) else {
        child.kill().unwrap();
        panic!("no verdict line within 60 s");
    };
    let doc: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        doc["verdict"]["passed"], false,
        "an L4 is not an L40S: {line}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "still running");
    child.kill().unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("next round in 1m"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = run(
        "l4",
        &term,
        &[("ACCELPROBE_POD", "/nonexistent/pod.yaml".to_string())],
        &["--no-bench", "--every", "1m"],
    );
    assert_eq!(o.status.code(), Some(2), "bad settings end the first round");
    let o = run("l4", &term, &[], &["--no-bench", "--every", "5s"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an interval under a minute is refused"
    );
}
