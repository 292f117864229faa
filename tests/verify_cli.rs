//! `accelprobe verify` end to end: the seed scenario and its failures, bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::accelprobe;
use serde_json::Value;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn verify(args: &[&str]) -> Output {
    accelprobe()
        .arg("verify")
        .args(args)
        .output()
        .expect("run accelprobe verify")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn seed(report: &str, extra: &[&str], format: &str) -> Output {
    let r = fixture(&format!("nvml/{report}.json"));
    let pod = fixture("k8s/seed-pod.yaml");
    let np = fixture("k8s/seed-nodepool-gpu.yaml");
    let mut args = vec![
        "--report",
        r.to_str().unwrap(),
        "--pod",
        pod.to_str().unwrap(),
        "--nodepool",
        np.to_str().unwrap(),
        "--format",
        format,
    ];
    args.extend_from_slice(extra);
    verify(&args)
}

fn checks<'a>(v: &'a Value, id: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == id)
        .collect()
}

#[test]
fn the_seed_node_passes_and_the_table_names_the_sources() {
    let o = seed("seed-l40s", &[], "table");
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("accelprobe verify: PASS"), "{out}");
    let model = out.lines().find(|l| l.starts_with("gpu.model")).unwrap();
    assert!(
        model.contains("pass") && model.contains("NVIDIA L40S"),
        "{model}"
    );
    assert!(
        out.contains("seed-pod.yaml:8:5"),
        "the Pod's nodeSelector is named as a source:\n{out}"
    );
    assert!(
        out.contains("seed-nodepool-gpu.yaml:"),
        "the NodePool is named as a source:\n{out}"
    );
    assert!(out.contains("Requirements:"));

    let v: Value = serde_json::from_slice(&seed("seed-l40s", &[], "json").stdout).unwrap();
    assert_eq!(v["passed"], true);
    let m = checks(&v, "gpu.model")[0];
    assert_eq!(m["status"], "pass");
    assert!(m["sources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["kind"] == "file" && s["line"] == 8));
}

#[test]
fn an_l4_where_l40s_was_requested_fails_at_gpu_model() {
    let o = seed("l4", &[], "json");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], false);
    let m = checks(&v, "gpu.model")[0];
    assert_eq!(m["status"], "fail");
    let msg = m["message"].as_str().unwrap();
    assert!(
        msg.contains("l40s was requested") && msg.contains("NVIDIA L4 found"),
        "{msg}"
    );
    assert!(stderr(&o).contains("gpu.model"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn a_g6e_12xlarge_with_three_l40s_fails_at_gpu_count() {
    let dir = tempfile::tempdir().unwrap();
    // Three of the seed's L40S in one report.
    let mut r: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("nvml/seed-l40s.json")).unwrap())
            .unwrap();
    let d = r["devices"][0].clone();
    r["devices"] = Value::Array(
        (0..3)
            .map(|i| {
                let mut x = d.clone();
                x["index"] = i.into();
                x["pci_bus_id"] = format!("00000000:{:02X}:00.0", 0x30 + i).into();
                x
            })
            .collect(),
    );
    r["host"]["instance_type"] = Value::Null;
    let report = dir.path().join("three.json");
    std::fs::write(&report, r.to_string()).unwrap();
    let labels = dir.path().join("labels.json");
    std::fs::write(
        &labels,
        r#"{"node.kubernetes.io/instance-type": "g6e.12xlarge", "eks.amazonaws.com/instance-gpu-name": "l40s", "eks.amazonaws.com/instance-gpu-count": "4"}"#,
    )
    .unwrap();
    let o = verify(&[
        "--report",
        report.to_str().unwrap(),
        "--node-labels",
        labels.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = checks(&v, "gpu.count");
    let exact = c
        .iter()
        .find(|c| c["expected"] == "4")
        .expect("an exact count check");
    assert_eq!(exact["status"], "fail");
    assert_eq!(exact["observed"], "3");
    assert_eq!(checks(&v, "gpu.model")[0]["status"], "pass");
}

#[test]
fn an_a10g_with_ecc_errors_fails_at_health_ecc() {
    let r = fixture("nvml/a10gx4-ecc.json");
    let o = verify(&[
        "--report",
        r.to_str().unwrap(),
        "--expect",
        "gpu=a10g",
        "--expect",
        "count=4",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ecc = checks(&v, "health.ecc");
    assert!(
        ecc.iter()
            .any(|c| c["status"] == "fail" && c["device"] == "GPU 2"),
        "{ecc:?}"
    );
    assert_eq!(checks(&v, "gpu.model")[0]["status"], "pass");
    assert!(checks(&v, "gpu.count")
        .iter()
        .all(|c| c["status"] == "pass"));
}

#[test]
fn expectations_from_flags_are_checked_with_their_source() {
    let r = fixture("nvml/h100x8.json");
    let o = verify(&[
        "--report",
        r.to_str().unwrap(),
        "--expect",
        "min-driver=560",
        "--expect",
        "min-memory=80GiB",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let drv = checks(&v, "driver.version")[0];
    assert_eq!(drv["status"], "fail");
    assert_eq!(drv["sources"][0]["kind"], "flag");
    let mem = checks(&v, "gpu.memory")[0];
    assert_eq!(mem["status"], "fail", "81559 MiB < 80 GiB = 81920 MiB");
    // An explicit performance floor without benchmarks cannot pass.
    let o = verify(&[
        "--report",
        r.to_str().unwrap(),
        "--expect",
        "min-tflops.bf16=400",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(checks(&v, "perf.gemm.bf16")[0]["status"], "fail");
}

#[test]
fn bad_input_exits_2_naming_the_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = dir.path().join("bad.yaml");
    std::fs::write(
        &bad_yaml,
        "apiVersion: v1\nkind: Pod\nspec:\n  nodeSelector: [unclosed\n",
    )
    .unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\n  \"schema_version\": 1,\n  oops\n}").unwrap();
    let newer = dir.path().join("newer.json");
    std::fs::write(&newer, r#"{"schema_version": 99}"#).unwrap();
    let report = fixture("nvml/seed-l40s.json");
    let rep = report.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--report", rep, "--pod", bad_yaml.to_str().unwrap()],
            "bad.yaml:",
        ),
        (vec!["--report", bad_json.to_str().unwrap()], "line 3"),
        (vec!["--report", newer.to_str().unwrap()], "newer"),
        (
            vec!["--report", "/nonexistent/report.json"],
            "/nonexistent/report.json",
        ),
        (vec!["--report", rep, "--expect", "gpu=rtx9999"], "rtx9999"),
        (vec!["--report", rep, "--expect", "bogus"], "KEY=VALUE"),
        (vec!["--report", rep, "--format", "xml"], "xml"),
        (
            vec!["--report", rep, "--node-labels", bad_json.to_str().unwrap()],
            "bad.json",
        ),
    ];
    for (args, needle) in cases {
        let o = verify(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn unknown_kinds_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mixed.yaml");
    let seed_pod = std::fs::read_to_string(fixture("k8s/seed-pod.yaml")).unwrap();
    std::fs::write(
        &f,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: {{}}\n---\n{seed_pod}"
        ),
    )
    .unwrap();
    let r = fixture("nvml/seed-l40s.json");
    let o = verify(&[
        "--report",
        r.to_str().unwrap(),
        "--pod",
        f.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("ConfigMap")),
        "{}",
        v["warnings"]
    );
}

#[test]
fn the_report_can_come_from_stdin() {
    let text = std::fs::read(fixture("nvml/seed-l40s.json")).unwrap();
    let mut child = accelprobe()
        .args(["verify", "--report", "-", "--expect", "gpu=l40s"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// The verdict table of the seed scenario, compared with a committed snapshot
/// (`tests/fixtures/verify/seed-pass.txt`; regenerate with ACCELPROBE_UPDATE_SNAPSHOTS=1).
#[test]
fn snapshot_of_the_seed_verdict_table() {
    for (report, name) in [("seed-l40s", "seed-pass"), ("l4", "seed-l4-fail")] {
        // Relative paths, so the sources read the same in every checkout.
        let o = accelprobe()
            .current_dir(fixture(""))
            .args([
                "verify",
                "--report",
                &format!("nvml/{report}.json"),
                "--pod",
                "k8s/seed-pod.yaml",
                "--nodepool",
                "k8s/seed-nodepool-gpu.yaml",
            ])
            .output()
            .unwrap();
        let out = stdout(&o);
        let path = fixture(&format!("verify/{name}.txt"));
        if std::env::var_os("ACCELPROBE_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &out).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(out, want, "snapshot {name} differs; rerun with ACCELPROBE_UPDATE_SNAPSHOTS=1 if the change is intended");
    }
}
