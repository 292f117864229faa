//! `accelprobe verify` end to end: the seed scenario and its failures, bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{accelprobe, fixture, stderr, stdout};
use serde_json::{json, Value};

fn verify(args: &[&str]) -> Output {
    accelprobe()
        .arg("verify")
        .args(args)
        .output()
        .expect("run accelprobe verify")
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

/// The checks with `id`; at least one must exist, so `.all(...)` over them means something.
fn checks<'a>(v: &'a Value, id: &str) -> Vec<&'a Value> {
    let found: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == id)
        .collect();
    assert!(!found.is_empty(), "no check {id} in the verdict: {v}");
    found
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
fn node_labels_naming_the_instance_type_do_not_make_catalog_floors_explicit() {
    // The seed report carries no benchmarks: the catalog's floors wait for them, whether the
    // instance type comes from the report or from the node's label.
    let labels = fixture("k8s/labels-map.yaml");
    let o = seed(
        "seed-l40s",
        &["--node-labels", labels.to_str().unwrap()],
        "json",
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for id in ["perf.gemm.f32", "perf.copy"] {
        for c in checks(&v, id) {
            assert_eq!(c["status"], "skip", "{c}");
            assert!(
                c["message"].as_str().unwrap().contains("catalog floor"),
                "{c}"
            );
        }
    }
    // An explicit floor still has to be measured.
    let o = seed(
        "seed-l40s",
        &[
            "--node-labels",
            labels.to_str().unwrap(),
            "--expect",
            "min-tflops.f32=10",
        ],
        "json",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
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
        "min-memory=81GiB",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let drv = checks(&v, "driver.version")[0];
    assert_eq!(drv["status"], "fail");
    assert_eq!(drv["sources"][0]["kind"], "flag");
    let mem = checks(&v, "gpu.memory")[0];
    assert_eq!(
        mem["status"], "fail",
        "81559 MiB < 81 GiB less the 1 % allowance = 82114 MiB"
    );
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
fn a_transfer_below_the_catalogs_floor_warns_and_below_an_explicit_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    // The seed's L40S (catalog h2d floor 18.9 GB/s) moving 12 GB/s host to device.
    let r = seed_report(dir.path(), "h2d.json", |r| {
        r["benchmarks"] = json!([{
            "kernel": "h2d", "dtype": null, "device": "cuda:0", "device_name": "NVIDIA L40S",
            "implementation": "cuda-memcpy-pinned", "size": {"bytes": 268435456u64},
            "warmup_iterations": 1, "iterations": 10, "samples_s": vec![0.0224; 10],
            "stats": {"median_s": 0.0224, "p10_s": 0.0224, "p90_s": 0.0224, "mean_s": 0.0224,
                      "min_s": 0.0224, "max_s": 0.0224, "cv": 0.0},
            "throughput": {"value": 12.0, "unit": "GB/s"},
            "peak": 31.5, "fraction_of_peak": 0.38,
            "correctness": {"passed": true, "max_rel_error": 0.0, "bound": 0.0,
                            "method": "exact", "elements_checked": 1}
        }]);
    });
    let (code, v) = json_verdict(&["--report", r.to_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
    let c = checks(&v, "perf.h2d")[0];
    assert_eq!(c["status"], "warn", "{c}");
    assert!(
        c["message"].as_str().unwrap().contains("host's side"),
        "{c}"
    );
    let (code, v) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--expect",
        "min-h2d-gbps=15",
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(checks(&v, "perf.h2d")[0]["status"], "fail");
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

/// A report derived from the seed fixture, changed by `edit`, written to `dir`.
fn seed_report(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut r: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("nvml/seed-l40s.json")).unwrap())
            .unwrap();
    edit(&mut r);
    let p = dir.join(name);
    std::fs::write(&p, r.to_string()).unwrap();
    p
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const POOL_HEAD: &str = "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: NAME\nspec:\n  template:\n    spec:\n      nodeClassRef: {group: eks.amazonaws.com, kind: NodeClass, name: default}\n      requirements:\n";

fn pool(name: &str, reqs: &str) -> String {
    format!("{}{reqs}", POOL_HEAD.replace("NAME", name))
}

fn json_verdict(args: &[&str]) -> (i32, Value) {
    let o = verify(&[args, &["--format", "json"]].concat());
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), v)
}

#[test]
fn the_nodes_own_instance_type_must_satisfy_the_selectors() {
    let dir = tempfile::tempdir().unwrap();
    let r = seed_report(dir.path(), "xl.json", |r| {
        r["host"]["instance_type"] = "g6e.xlarge".into()
    });
    let np = write(dir.path(), "np.yaml", &pool("multi", "        - key: eks.amazonaws.com/instance-gpu-count\n          operator: Gt\n          values: [\"1\"]\n"));
    let (code, v) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--nodepool",
        np.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{v}");
    let c = checks(&v, "requirements.consistent")[0];
    assert!(c["message"].as_str().unwrap().contains("g6e.xlarge"), "{c}");
    let pod = write(dir.path(), "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeSelector:\n    node.kubernetes.io/instance-type: g6e.12xlarge\n  containers: [{name: c, image: x}]\n");
    let (code, _) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--pod",
        pod.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
}

#[test]
fn selectors_that_admit_nodes_without_accelerators_require_none() {
    let dir = tempfile::tempdir().unwrap();
    // A CPU node: no accelerators, an instance type outside the catalog.
    let cpu = seed_report(dir.path(), "cpu.json", |r| {
        r["devices"] = Value::Array(vec![]);
        r["host"]["instance_type"] = "c7i.xlarge".into();
    });
    let affinity = |expr: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {expr}\n  containers: [{{name: c, image: x}}]\n"
        )
    };
    let labels = write(
        dir.path(),
        "labels.yaml",
        "node.kubernetes.io/instance-type: c7i.xlarge\nkubernetes.io/arch: amd64\nkarpenter.k8s.aws/instance-category: c\n",
    );
    for (name, expr) in [
        (
            "dne",
            "{key: karpenter.k8s.aws/instance-gpu-count, operator: DoesNotExist}",
        ),
        (
            "notin",
            "{key: karpenter.k8s.aws/instance-gpu-name, operator: NotIn, values: [l40s]}",
        ),
        (
            "arch",
            "{key: kubernetes.io/arch, operator: In, values: [amd64]}",
        ),
        (
            "family",
            "{key: karpenter.k8s.aws/instance-family, operator: In, values: [g6e, c7i]}",
        ),
    ] {
        let pod = write(dir.path(), &format!("{name}.yaml"), &affinity(expr));
        let args = [
            "--report",
            cpu.to_str().unwrap(),
            "--pod",
            pod.to_str().unwrap(),
        ];
        let (code, v) = json_verdict(&args);
        assert_eq!(code, 0, "{name}: {v}");
        let (code, v) =
            json_verdict(&[&args[..], &["--node-labels", labels.to_str().unwrap()]].concat());
        assert_eq!(code, 0, "{name} with the node's labels: {v}");
    }
    // A selector only catalog instance types satisfy still requires their accelerators.
    let pod = write(
        dir.path(),
        "g6e.yaml",
        &affinity("{key: karpenter.k8s.aws/instance-family, operator: In, values: [g6e]}"),
    );
    let (code, v) = json_verdict(&[
        "--report",
        cpu.to_str().unwrap(),
        "--pod",
        pod.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{v}");
    // And the GPU node the selector excludes fails on its own instance type.
    let gpu = fixture("nvml/seed-l40s.json");
    let pod = write(
        dir.path(),
        "dne.yaml",
        &affinity("{key: karpenter.k8s.aws/instance-gpu-count, operator: DoesNotExist}"),
    );
    let (code, v) = json_verdict(&[
        "--report",
        gpu.to_str().unwrap(),
        "--pod",
        pod.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        checks(&v, "requirements.consistent")[0]["status"],
        "fail",
        "{v}"
    );
}

#[test]
fn count_selectors_beyond_exact_and_minimum_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    // One L40S, instance type unknown: only the count selectors can judge the count.
    let r = seed_report(dir.path(), "noit.json", |r| {
        r["host"]["instance_type"] = Value::Null
    });
    let terms = |terms: &[&str]| {
        let body: String = terms
            .iter()
            .map(|t| format!("        - matchExpressions:\n          - {t}\n"))
            .collect();
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n{body}  containers: [{{name: c, image: x}}]\n")
    };
    let count = |op: &str, values: &str| {
        format!("{{key: karpenter.k8s.aws/instance-gpu-count, operator: {op}, values: [{values}]}}")
    };
    for (name, pod, passes) in [
        ("lt2", terms(&[&count("Lt", "\"2\"")]), true),
        ("lt1", terms(&[&count("Lt", "\"1\"")]), false),
        ("in24", terms(&[&count("In", "\"2\", \"4\"")]), false),
        ("in12", terms(&[&count("In", "\"1\", \"2\"")]), true),
        ("notin1", terms(&[&count("NotIn", "\"1\"")]), false),
        (
            "or",
            terms(&[&count("In", "\"8\""), &count("In", "\"1\"")]),
            true,
        ),
        (
            "or-not",
            terms(&[&count("In", "\"8\""), &count("In", "\"4\"")]),
            false,
        ),
    ] {
        let pod = write(dir.path(), &format!("{name}.yaml"), &pod);
        let (code, v) = json_verdict(&[
            "--report",
            r.to_str().unwrap(),
            "--pod",
            pod.to_str().unwrap(),
        ]);
        assert_eq!(code, if passes { 0 } else { 1 }, "{name}: {v}");
        let c = checks(&v, "gpu.count");
        assert!(
            c.iter().any(|c| c["expected"]
                .as_str()
                .is_some_and(|e| e.starts_with("satisfies "))
                && c["status"] == if passes { "pass" } else { "fail" }),
            "{name}: {c:?}"
        );
    }
}

#[test]
fn device_resources_accelprobe_does_not_count_are_named_in_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let pod = write(dir.path(), "mig.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x\n    resources:\n      limits: {nvidia.com/mig-1g.10gb: 1, memory: 1Gi, example.com/foo: 1}\n");
    let r = fixture("nvml/seed-l40s.json");
    let (code, v) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--pod",
        pod.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("mig.yaml:9:")
                && w.contains("nvidia.com/mig-1g.10gb is not checked")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("example.com/foo")),
        "{warnings:?}"
    );
}

#[test]
fn the_nodes_labels_must_agree_with_the_report_and_name_ignored_pools() {
    let dir = tempfile::tempdir().unwrap();
    let r = fixture("nvml/seed-l40s.json"); // a g6e.2xlarge by its DMI
    let labels = write(
        dir.path(),
        "l.yaml",
        "node.kubernetes.io/instance-type: g6e.12xlarge\nkarpenter.sh/nodepool: other\n",
    );
    let np = fixture("k8s/seed-nodepool-gpu.yaml");
    let (code, v) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--node-labels",
        labels.to_str().unwrap(),
        "--nodepool",
        np.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{v}");
    let c = checks(&v, "requirements.consistent")[0];
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        v["conflicts"]
            .to_string()
            .contains("g6e.2xlarge (read from its DMI)"),
        "{v}"
    );
    assert!(
        v["warnings"].to_string().contains("NodePool gpu")
            && v["warnings"]
                .to_string()
                .contains("is ignored: the node belongs to NodePool other"),
        "{}",
        v["warnings"]
    );
}

#[test]
fn an_instance_type_outside_the_catalog_is_judged_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let r = seed_report(dir.path(), "noit.json", |r| {
        r["host"]["instance_type"] = Value::Null
    });
    let labels = |it: &str| {
        write(
            dir.path(),
            &format!("{it}.yaml"),
            &format!("node.kubernetes.io/instance-type: {it}\nkarpenter.sh/nodepool: gpu\n"),
        )
    };
    let np = fixture("k8s/seed-nodepool-gpu.yaml");
    let run = |it: &str| {
        json_verdict(&[
            "--report",
            r.to_str().unwrap(),
            "--nodepool",
            np.to_str().unwrap(),
            "--node-labels",
            labels(it).to_str().unwrap(),
        ])
    };
    // A CPU type under the seed's GPU NodePool (g6e, l40s): the pool cannot have made it.
    let (code, v) = run("c7i.2xlarge");
    assert_eq!(code, 1, "{v}");
    assert!(
        v["conflicts"]
            .to_string()
            .contains("the node is a c7i.2xlarge"),
        "{v}"
    );
    // Its own type passes.
    let (code, v) = run("g6e.2xlarge");
    assert_eq!(code, 0, "{v}");
}

#[test]
fn count_selectors_become_count_requirements() {
    let dir = tempfile::tempdir().unwrap();
    let r = seed_report(dir.path(), "noit.json", |r| {
        r["host"]["instance_type"] = Value::Null
    });
    let pod = write(dir.path(), "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeSelector:\n    eks.amazonaws.com/instance-gpu-count: \"8\"\n  containers: [{name: c, image: x}]\n");
    let (code, v) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--pod",
        pod.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{v}");
    assert!(
        checks(&v, "gpu.count")
            .iter()
            .any(|c| c["status"] == "fail" && c["expected"] == "8"),
        "{v}"
    );
}

#[test]
fn several_nodepools_are_alternatives() {
    let dir = tempfile::tempdir().unwrap();
    let fam = |f: &str| {
        format!("        - key: eks.amazonaws.com/instance-family\n          operator: In\n          values: [{f}]\n")
    };
    let two = write(
        dir.path(),
        "two.yaml",
        &format!(
            "{}---\n{}",
            pool("l40s", &fam("g6e")),
            pool("h100", &fam("p5"))
        ),
    );
    let r = fixture("nvml/seed-l40s.json");
    let (code, v) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--nodepool",
        two.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    // A node labelled with its NodePool is held to that pool only.
    let labels = write(
        dir.path(),
        "labels.json",
        r#"{"karpenter.sh/nodepool": "h100"}"#,
    );
    let (code, _) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--nodepool",
        two.to_str().unwrap(),
        "--node-labels",
        labels.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
}

#[test]
fn neuron_requests_on_a_gpu_report_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let r = seed_report(dir.path(), "noit.json", |r| {
        r["host"]["instance_type"] = Value::Null
    });
    let pod = write(dir.path(), "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x\n    resources: {limits: {aws.amazon.com/neuron: 1}}\n");
    let (code, v) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--pod",
        pod.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(checks(&v, "gpu.vendor")[0]["status"], "fail");
    let count = checks(&v, "gpu.count");
    assert!(
        count.iter().all(|c| c["status"] != "pass"),
        "the L40S must not count as a Neuron device: {count:?}"
    );
}

#[test]
fn unreadable_health_fields_are_not_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let r = seed_report(dir.path(), "noecc.json", |r| {
        let d = &mut r["devices"][0];
        for k in [
            "mode_current",
            "mode_pending",
            "volatile_corrected",
            "volatile_uncorrected",
            "aggregate_corrected",
            "aggregate_uncorrected",
        ] {
            d["ecc"][k] = Value::Null;
        }
        d["unavailable"]["ecc.mode_current"] = "timed out".into();
        d["pcie"]["gen_max"] = Value::Null;
    });
    let (_, v) = json_verdict(&["--report", r.to_str().unwrap()]);
    assert_ne!(checks(&v, "health.ecc")[0]["status"], "pass", "{v}");
    assert_eq!(
        checks(&v, "health.pcie_link")[0]["status"],
        "fail",
        "catalog requires gen 4, unknown must fail"
    );
}

#[test]
fn min_memory_in_round_units_means_what_people_mean() {
    let r = fixture("nvml/seed-l40s.json");
    let (code, v) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--expect",
        "min-memory=45GiB",
    ]);
    assert_eq!(code, 0, "{v}");
    let (code, _) = json_verdict(&[
        "--report",
        r.to_str().unwrap(),
        "--expect",
        "min-memory=47GiB",
    ]);
    assert_eq!(code, 1);
}

/// Mixed alternatives, label spellings and count labels (found reviewing the changes above).
#[test]
fn alternatives_without_accelerators_bind_only_the_accelerators_found() {
    let dir = tempfile::tempdir().unwrap();
    let np = |name: &str, req: &str| pool(name, &format!("        - {req}\n"));
    let two = write(
        dir.path(),
        "two.yaml",
        &format!(
            "{}---\n{}",
            np(
                "cpu",
                "{key: karpenter.k8s.aws/instance-category, operator: In, values: [c, m, r]}"
            ),
            np(
                "l40s",
                "{key: eks.amazonaws.com/instance-family, operator: In, values: [g6e]}"
            )
        ),
    );
    // An L4 whose instance type is unknown, against a CPU pool beside an L40S pool: an
    // accelerator it has must still be one the GPU pool allows.
    let l4: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("nvml/l4.json")).unwrap()).unwrap();
    let mut l4 = l4;
    l4["host"]["instance_type"] = Value::Null;
    let l4 = write(dir.path(), "l4.json", &l4.to_string());
    let (code, v) = json_verdict(&[
        "--report",
        l4.to_str().unwrap(),
        "--nodepool",
        two.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(checks(&v, "gpu.model")[0]["status"], "fail", "{v}");
    // A CPU node under the same pools passes: it has no accelerator to bind.
    let cpu = seed_report(dir.path(), "cpu.json", |r| {
        r["devices"] = json!([]);
        r["host"]["instance_type"] = Value::Null;
        for rt in r["runtimes"].as_array_mut().unwrap() {
            rt["status"] = "absent".into();
        }
    });
    let (code, v) = json_verdict(&[
        "--report",
        cpu.to_str().unwrap(),
        "--nodepool",
        two.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    // A value no node carries (EC2 names are lower case) is no way out: a conflict.
    let typo = write(
        dir.path(),
        "typo.yaml",
        &np(
            "l40s",
            "{key: eks.amazonaws.com/instance-family, operator: In, values: [G6E]}",
        ),
    );
    let (code, v) = json_verdict(&[
        "--report",
        l4.to_str().unwrap(),
        "--nodepool",
        typo.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        checks(&v, "requirements.consistent")[0]["status"],
        "fail",
        "{v}"
    );
    // A GPU pool that excludes Neuron devices does not judge the GPU count by them.
    let no_neuron = write(
        dir.path(),
        "gpu.yaml",
        &pool(
            "gpu",
            "        - {key: karpenter.k8s.aws/instance-gpu-name, operator: In, values: [l4]}\n        - {key: karpenter.k8s.aws/instance-accelerator-count, operator: DoesNotExist}\n",
        ),
    );
    let (code, v) = json_verdict(&[
        "--report",
        l4.to_str().unwrap(),
        "--nodepool",
        no_neuron.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    // A CPU node without NVML under `instance-gpu-count DoesNotExist`: nothing to list.
    let dne = write(
        dir.path(),
        "dne.yaml",
        &np(
            "cpu",
            "{key: karpenter.k8s.aws/instance-gpu-count, operator: DoesNotExist}",
        ),
    );
    let (code, v) = json_verdict(&[
        "--report",
        cpu.to_str().unwrap(),
        "--nodepool",
        dne.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    // --expect count replaces a pool's count selector, as it replaces an exact count: a Job
    // given one GPU of a 4-GPU node sees one.
    let four_or_eight = write(
        dir.path(),
        "c48.yaml",
        &pool(
            "c48",
            "        - {key: eks.amazonaws.com/instance-gpu-name, operator: In, values: [l40s]}\n        - {key: eks.amazonaws.com/instance-gpu-count, operator: In, values: [\"4\", \"8\"]}\n",
        ),
    );
    let one_visible = seed_report(dir.path(), "one.json", |r| {
        r["host"]["instance_type"] = "g6e.12xlarge".into()
    });
    let args = [
        "--report",
        one_visible.to_str().unwrap(),
        "--nodepool",
        four_or_eight.to_str().unwrap(),
    ];
    let (code, _) = json_verdict(&args);
    assert_eq!(code, 1);
    let (code, v) = json_verdict(&[&args[..], &["--expect", "count=1"]].concat());
    assert_eq!(code, 0, "{v}");
    assert!(
        v["warnings"]
            .to_string()
            .contains("overrides the count selector"),
        "{v}"
    );

    // A CPU family, a NotIn, or an architecture in a selector lets a node without
    // accelerators through, never a GPU no admitted instance type has.
    for (name, req) in [
        (
            "mixed",
            "{key: eks.amazonaws.com/instance-family, operator: In, values: [g6e, c7i]}",
        ),
        (
            "notin",
            "{key: eks.amazonaws.com/instance-gpu-name, operator: NotIn, values: [l4, h100]}",
        ),
        (
            "arm",
            "{key: kubernetes.io/arch, operator: In, values: [arm64]}",
        ),
    ] {
        let f = write(dir.path(), &format!("{name}.yaml"), &np(name, req));
        let (code, v) = json_verdict(&[
            "--report",
            l4.to_str().unwrap(),
            "--nodepool",
            f.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{name}: {v}");
        assert_eq!(checks(&v, "gpu.model")[0]["status"], "fail", "{name}: {v}");
        let (code, v) = json_verdict(&[
            "--report",
            cpu.to_str().unwrap(),
            "--nodepool",
            f.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{name} on a CPU node: {v}");
    }
    // Two selectors that each admit a CPU node are no conflict for one, even when no
    // accelerator satisfies both.
    let l4_or_c7i = write(dir.path(), "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {key: eks.amazonaws.com/instance-gpu-name, operator: In, values: [l4]}\n        - matchExpressions:\n          - {key: eks.amazonaws.com/instance-family, operator: In, values: [c7i]}\n  containers: [{name: c, image: x}]\n");
    let (code, v) = json_verdict(&[
        "--report",
        cpu.to_str().unwrap(),
        "--nodepool",
        two.to_str().unwrap(),
        "--pod",
        l4_or_c7i.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
}
