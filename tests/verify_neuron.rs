//! Verification of AWS Neuron nodes from reports: a healthy trn1.32xlarge passes the trn1
//! NodePool and a pod asking for 16 Neuron devices; a missing device, hardware errors, wrong
//! core counts, a broken runtime each fail the check that names them. The reports are built
//! here from a real (device-less) report so the checks are tested apart from the probe.

mod common;

use common::{accelprobe, fixture, stderr, stdout};
use serde_json::{json, Value};

/// A report of this machine (no accelerators) turned into a trn1.32xlarge with `devices`
/// Neuron devices of `cores` cores each, and a loaded runtime.
fn trn1(devices: u32, cores: u32) -> Value {
    // Probed once per test process, and without this machine's own accelerators (NVML, CUDA
    // and Neuron kept out), so the result does not depend on where the tests run.
    static BASE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let mut r = BASE
        .get_or_init(|| {
            let o = accelprobe()
                .args(["report", "--format", "json", "--no-cuda", "--no-neuron"])
                .args(["--nvml-lib", "/nonexistent/libnvidia-ml.so.1"])
                .output()
                .unwrap();
            serde_json::from_str(&stdout(&o)).unwrap()
        })
        .clone();
    r["host"]["instance_type"] = json!("trn1.32xlarge");
    r["host"]["kubernetes"] = json!({"node_name": "trn-node"});
    r["devices"] = Value::Array(
        (0..devices)
            .map(|i| {
                json!({
                    "index": i,
                    "vendor": "neuron",
                    "name": "Trainium1",
                    "serial": format!("SN{i:04}"),
                    "neuron": {
                        "arch_type": "NDv2",
                        "instance_type": "Trn1",
                        "core_count": cores,
                        "connected_devices": [(i + 1) % devices],
                        "mem_ecc_uncorrected": 0,
                        "mem_ecc_repairable_uncorrected": 0,
                        "sram_ecc_uncorrected": 0,
                        "cores": (0..cores).map(|c| json!({"index": c, "arch_type": "NCv2"})).collect::<Vec<_>>(),
                        "sysfs_layout": "legacy"
                    },
                    "unavailable": {"memory_total_mib": "not exposed in sysfs"}
                })
            })
            .collect(),
    );
    let runtimes = r["runtimes"].as_array_mut().unwrap();
    runtimes.retain(|rt| rt["name"] != "neuron");
    runtimes.push(json!({
        "name": "neuron", "status": "loaded", "library": "/opt/aws/neuron/lib/libnrt.so.1",
        "version": "2.22.14.0", "driver_version": "2.19.64.0", "device_count": devices,
        "neuron": {"cores_total": devices * cores, "cores_visible": devices * cores,
                   "instance_family": "TRN1", "instance_size": "32xlarge"}
    }));
    r
}

/// `verify --format json` of `report` against the trn1 NodePool and pod: (exit code, verdict).
fn verify(report: &Value, extra: &[&str]) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    std::fs::write(&path, report.to_string()).unwrap();
    let o = accelprobe()
        .args(["verify", "--format", "json", "--report"])
        .arg(&path)
        .arg("--nodepool")
        .arg(fixture("k8s/nodepool-trn1.yaml"))
        .arg("--pod")
        .arg(fixture("k8s/pod-trn1.yaml"))
        .args(extra)
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stderr));
    });
    (o.status.code().unwrap_or(-1), v)
}

fn statuses<'v>(v: &'v Value, id: &str) -> Vec<&'v str> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == id)
        .map(|c| c["status"].as_str().unwrap())
        .collect()
}

fn message<'v>(v: &'v Value, id: &str) -> &'v str {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id && c["status"] == "fail")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_else(|| panic!("no failing {id} in {v}"))
}

#[test]
fn a_healthy_trn1_32xlarge_passes() {
    let (code, v) = verify(&trn1(16, 2), &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        statuses(&v, "neuron.count"),
        ["pass", "pass"],
        "exact and at least"
    );
    assert_eq!(statuses(&v, "neuron.cores"), ["pass"]);
    assert_eq!(statuses(&v, "neuron.runtime"), ["pass"]);
    assert_eq!(
        statuses(&v, "gpu.model"),
        ["pass"],
        "Trainium1 is the trainium model"
    );
    assert_eq!(
        statuses(&v, "health.neuron_errors"),
        ["pass"],
        "one line for 16 clean devices"
    );
    assert_eq!(
        statuses(&v, "neuron.memory"),
        ["skip"],
        "no memory size in sysfs"
    );
    assert_eq!(statuses(&v, "gpu.count"), ["skip"]);
}

#[test]
fn a_missing_device_fails_neuron_count_and_names_it() {
    let mut r = trn1(16, 2);
    r["devices"].as_array_mut().unwrap().remove(7);
    let (code, v) = verify(&r, &[]);
    assert_eq!(code, 1);
    let m = message(&v, "neuron.count");
    assert!(m.contains("16 Neuron device(s) expected, 15 found"), "{m}");
    assert!(m.contains("missing: neuron7"), "{m}");
}

#[test]
fn hardware_errors_fail_and_repairable_ones_warn() {
    let mut r = trn1(16, 2);
    r["devices"][3]["neuron"]["mem_ecc_uncorrected"] = json!(3);
    r["devices"][9]["neuron"]["sram_ecc_uncorrected"] = json!(1);
    r["devices"][11]["neuron"]["mem_ecc_repairable_uncorrected"] = json!(2);
    let (code, v) = verify(&r, &[]);
    assert_eq!(code, 1);
    let by_device: Vec<(String, String)> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == "health.neuron_errors" && c["status"] != "pass")
        .map(|c| {
            (
                c["device"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        by_device,
        [
            ("3".to_string(), "fail".to_string()),
            ("9".to_string(), "fail".to_string()),
            ("11".to_string(), "warn".to_string())
        ]
    );
    // Unread counters are not a pass.
    let mut r = trn1(16, 2);
    for d in r["devices"].as_array_mut().unwrap() {
        d["neuron"]["mem_ecc_uncorrected"] = Value::Null;
        d["neuron"]["sram_ecc_uncorrected"] = Value::Null;
        d["unavailable"]["neuron.mem_ecc_uncorrected"] = json!("permission denied");
    }
    let (_, v) = verify(&r, &[]);
    assert!(statuses(&v, "health.neuron_errors")
        .iter()
        .all(|s| *s == "skip"));
}

#[test]
fn wrong_core_counts_and_a_failed_runtime_fail() {
    let (code, v) = verify(&trn1(16, 1), &[]);
    assert_eq!(code, 1);
    assert!(message(&v, "neuron.cores").contains("2 NeuronCores per device expected"));

    let mut r = trn1(16, 2);
    r["runtimes"].as_array_mut().unwrap().last_mut().unwrap()["status"] = json!("timeout");
    r["runtimes"].as_array_mut().unwrap().last_mut().unwrap()["error"] =
        json!("nrt_init did not return before the deadline");
    let (code, v) = verify(&r, &[]);
    assert_eq!(code, 1);
    assert!(message(&v, "neuron.runtime").contains("nrt_init"));

    // No runtime library in the container: the inventory still counts, with a warning.
    let mut r = trn1(16, 2);
    r["runtimes"].as_array_mut().unwrap().last_mut().unwrap()["status"] = json!("absent");
    let (code, v) = verify(&r, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(statuses(&v, "neuron.runtime"), ["warn"]);
}

#[test]
fn a_core_count_only_root_may_read_is_counted_from_the_core_directories() {
    // A validation pod is not root: core_count (0400) is unreadable, the neuron_core<i>
    // directories are not.
    let unreadable = |mut r: Value, cores_listed: u32| {
        for d in r["devices"].as_array_mut().unwrap() {
            d["neuron"]["core_count"] = Value::Null;
            d["neuron"]["cores"] = (0..cores_listed)
                .map(|c| json!({"index": c, "arch_type": "NCv2"}))
                .collect();
            d["unavailable"]["neuron.core_count"] =
                json!("permission denied: core_count is readable by root only (0400)");
        }
        r
    };
    let (code, v) = verify(&unreadable(trn1(16, 2), 2), &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(statuses(&v, "neuron.cores"), ["pass"; 1]);
    // The directories still tell a wrong count.
    let (code, v) = verify(&unreadable(trn1(16, 2), 1), &[]);
    assert_eq!(code, 1, "{v}");
    // Neither: unknown, never pass.
    let (code, v) = verify(&unreadable(trn1(16, 2), 0), &[]);
    assert_eq!(code, 1, "{v}");
    assert!(message(&v, "neuron.cores").contains("root only"), "{v}");
}

#[test]
fn neuroncore_requests_and_unprobed_reports() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("cores.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: c\n      image: i\n      resources:\n        limits: {aws.amazon.com/neuroncore: 64}\n",
    )
    .unwrap();
    let (code, v) = verify(&trn1(16, 2), &["--pod", pod.to_str().unwrap()]);
    assert_eq!(code, 1, "32 cores cannot serve 64");
    assert!(message(&v, "neuron.cores").contains("requests 64 NeuronCore(s), the node has 32"));

    // A report without any Neuron probe cannot prove a Neuron node.
    let mut r = trn1(16, 2);
    r["runtimes"]
        .as_array_mut()
        .unwrap()
        .retain(|rt| rt["name"] != "neuron");
    let (code, v) = verify(&r, &[]);
    assert_eq!(code, 1);
    assert!(message(&v, "neuron.count").contains("no Neuron probe"));
}

#[test]
fn gpu_nodes_skip_the_neuron_checks() {
    let (_, v) = {
        let o = accelprobe()
            .args(["report", "--format", "json", "--no-cuda"])
            .output()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, stdout(&o)).unwrap();
        let o = accelprobe()
            .args([
                "verify", "--format", "json", "--expect", "gpu=l40s", "--report",
            ])
            .arg(&path)
            .output()
            .unwrap();
        (
            o.status.code(),
            serde_json::from_str::<Value>(&stdout(&o)).unwrap(),
        )
    };
    for id in [
        "neuron.count",
        "neuron.cores",
        "neuron.memory",
        "neuron.runtime",
        "health.neuron_errors",
        "perf.neuron.h2d",
    ] {
        assert_eq!(statuses(&v, id), ["skip"], "{id}");
    }
}

/// The acceptance: the probe reads the fixture sysfs trees, and verify judges them
/// against the trn1 NodePool and a pod asking for `aws.amazon.com/neuron: 16`.
#[test]
fn probed_trn1_fixtures_pass_and_the_faulty_one_fails_at_neuron_count() {
    let run = |tree: &str| {
        let o = accelprobe()
            .args(["verify", "--no-cuda", "--format", "json", "--sysfs-root"])
            .arg(fixture(&format!("neuron/{tree}")))
            .arg("--nodepool")
            .arg(fixture("k8s/nodepool-trn1.yaml"))
            .arg("--pod")
            .arg(fixture("k8s/pod-trn1.yaml"))
            .output()
            .unwrap();
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        (o.status.code(), v, stderr(&o))
    };
    let (code, v, _) = run("trn1.32xlarge");
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(statuses(&v, "neuron.count"), ["pass"]);
    assert_eq!(statuses(&v, "neuron.cores"), ["pass"]);
    let (code, v, err) = run("trn1-faulty");
    assert_eq!(code, Some(1));
    // The one-line summary names each failing check once, the first failure's message after.
    assert_eq!(
        err.trim(),
        "accelprobe: verdict FAIL: neuron.count, health.neuron_errors (the workload requests 16 \
         Neuron device(s), 15 found; missing: neuron7)"
    );
    let m = message(&v, "neuron.count");
    assert_eq!(
        m,
        "the workload requests 16 Neuron device(s), 15 found; missing: neuron7"
    );
    let failing: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        failing,
        [
            "neuron.count",
            "health.neuron_errors",
            "health.neuron_errors"
        ]
    );
}
