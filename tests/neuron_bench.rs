//! `accelprobe bench` and `accelprobe run` on AWS Neuron nodes: host-to-device and
//! device-to-host copies through libnrt tensors, with the fixture sysfs trees
//! (`--sysfs-root`) and the fake libnrt (tests/fake-nrt), whose tensors are host memory.
//! No timing is asserted beyond "positive".

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{
    accelprobe, bench_benchmarks, fake_nrt, fixture, neuron_bench, stderr, stdout, NRT_CONFIG_ENV,
    NRT_CORRUPT_ENV, NRT_ERRORS_ENV, NRT_HANG_ENV, NRT_STALE_ENV,
};
use serde_json::Value;

const INF2_XLARGE: &str = r#"{"version":"2.22.14.0","family":4,"size":0,"total_cores":2}"#;
/// A trn1.32xlarge whose process sees 8 of its 32 NeuronCores.
const TRN1_8_VISIBLE: &str =
    r#"{"version":"2.22.14.0","family":2,"size":6,"total_cores":32,"visible_cores":8}"#;
/// Small and short, for every test that does not test the profile.
const SMALL: &[&str] = &["--size", "1", "--duration", "10ms"];

fn root(name: &str) -> PathBuf {
    fixture(&format!("neuron/{name}"))
}

/// `accelprobe bench --no-cuda` on the fixture `tree` with the fake libnrt configured by
/// `config`, as JSON.
fn bench(tree: &str, config: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    neuron_bench(&root(tree), config, args, env)
}

fn benchmarks(o: &Output) -> Vec<Value> {
    bench_benchmarks(o)
}

/// (device, kernel) of every benchmark, in order.
fn targets(benches: &[Value]) -> Vec<(String, String)> {
    benches
        .iter()
        .map(|b| {
            (
                b["device"].as_str().unwrap().to_string(),
                b["kernel"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn every_core(n: u32) -> Vec<(String, String)> {
    (0..n)
        .flat_map(|c| ["h2d", "d2h"].map(|k| (format!("neuron:{c}"), k.to_string())))
        .collect()
}

fn assert_good(b: &Value) {
    assert_eq!(b["correctness"]["passed"], true, "{b}");
    assert_eq!(b["correctness"]["max_rel_error"], 0.0, "{b}");
    assert!(b["correctness"]["failure"].is_null(), "{b}");
    assert_eq!(b["throughput"]["unit"], "GB/s", "{b}");
    assert!(b["throughput"]["value"].as_f64().unwrap() > 0.0, "{b}");
    assert_eq!(b["implementation"], "nrt-tensor", "{b}");
    assert!(b["dtype"].is_null(), "{b}");
    let n = b["iterations"].as_u64().unwrap();
    assert!(
        n > 0 && b["samples_s"].as_array().unwrap().len() as u64 == n,
        "{b}"
    );
}

#[test]
fn quick_profile_on_neuron_0_gives_checked_h2d_and_d2h() {
    let o = bench(
        "inf2.xlarge",
        INF2_XLARGE,
        &["--device", "neuron:0", "--profile", "quick"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let benches = benchmarks(&o);
    assert_eq!(targets(&benches), every_core(1));
    for b in &benches {
        assert_good(b);
        assert_eq!(b["device_name"], "Inferentia2");
        // The quick profile moves 64 MiB per iteration, after warm-up, at least 10 times.
        assert_eq!(b["size"]["bytes"], 64u64 << 20);
        assert_eq!(b["warmup_iterations"], 3);
        assert!(b["iterations"].as_u64().unwrap() >= 10);
        // In 8 consecutive rounds that add up to the iterations.
        let rounds: Vec<u64> = b["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_u64().unwrap())
            .collect();
        assert_eq!(rounds.len(), 8, "{b}");
        assert_eq!(
            rounds.iter().sum::<u64>(),
            b["iterations"].as_u64().unwrap()
        );
        assert!(b["correctness"]["elements_checked"].as_u64().unwrap() == 16 << 20);
        // The catalog has no host-link figure for Inferentia2: no peak, and a note says so.
        assert!(
            b["peak"].is_null() && b["fraction_of_peak"].is_null(),
            "{b}"
        );
        assert!(
            b["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n.as_str().unwrap().starts_with("no peak")),
            "{b}"
        );
    }
    let method = |i: usize| benches[i]["correctness"]["method"].as_str().unwrap();
    assert!(method(0).contains("zeros before the first write"));
    assert!(method(1).contains("zeroed before each read"));
    // The other kernels are said to be skipped, not silently dropped.
    assert!(stderr(&o).contains("skipped on Neuron"), "{}", stderr(&o));
}

#[test]
fn all_and_auto_cover_every_visible_core() {
    for device in ["all", "auto"] {
        let mut args = vec!["--device", device, "--kernel", "h2d,d2h"];
        args.extend_from_slice(SMALL);
        let o = bench("trn1.32xlarge", TRN1_8_VISIBLE, &args, &[]);
        assert_eq!(o.status.code(), Some(0), "{device}: {}", stderr(&o));
        let benches = benchmarks(&o);
        // The 8 NeuronCores the runtime makes visible; the CPU has no host-device copy.
        assert_eq!(targets(&benches), every_core(8), "{device}");
        for b in &benches {
            assert_good(b);
            assert_eq!(b["device_name"], "Trainium1");
            assert_eq!(b["size"]["bytes"], 1u64 << 20);
        }
        assert!(
            !stderr(&o).contains("fell back"),
            "{device}: {}",
            stderr(&o)
        );
    }
    // `all` adds the CPU; `auto` on a Neuron node does not.
    let mut args = vec!["--device", "all", "--kernel", "h2d,copy"];
    args.extend_from_slice(SMALL);
    let o = bench("inf2.xlarge", INF2_XLARGE, &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = targets(&benchmarks(&o));
    assert_eq!(
        t,
        [
            ("neuron:0".to_string(), "h2d".to_string()),
            ("neuron:1".to_string(), "h2d".to_string()),
            ("cpu".to_string(), "copy".to_string()),
        ]
    );
}

#[test]
fn an_injected_libnrt_error_is_a_failed_benchmark_and_exit_1() {
    for (call, code, name) in [
        ("nrt_tensor_write", "1", "NRT_FAILURE (1)"),
        ("nrt_tensor_read", "6", "NRT_HW_ERROR (6)"),
        ("nrt_tensor_allocate", "4", "NRT_RESOURCE (4)"),
    ] {
        let rule = format!("{call}={code}");
        let mut args = vec!["--device", "neuron:0"];
        args.extend_from_slice(SMALL);
        let o = bench(
            "inf2.xlarge",
            INF2_XLARGE,
            &args,
            &[(NRT_ERRORS_ENV, rule.as_str())],
        );
        assert_eq!(o.status.code(), Some(1), "{call}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{call}: one line: {err}");
        let why = format!("{call} returned {name}");
        assert!(err.contains(&why), "{call}: {err}");
        assert!(
            err.contains("could not run h2d on neuron:0"),
            "{call}: {err}"
        );
        let benches = benchmarks(&o);
        assert_eq!(targets(&benches), every_core(1), "{call}");
        // h2d reads its tensor back, so a read error fails both; the others fail both too.
        for b in &benches {
            assert_eq!(b["correctness"]["passed"], false, "{call}: {b}");
            assert_eq!(b["iterations"], 0, "{call}: {b}");
            assert_eq!(b["correctness"]["failure"], why.as_str(), "{call}: {b}");
        }
    }
}

#[test]
fn a_report_with_benchmarks_that_could_not_run_stays_readable() {
    // The failed h2d/d2h entries have no statistics (null in JSON); verify and compare must
    // still read the report, skip them by name and use the CPU copy beside them.
    let mut args = vec!["--device", "all", "--kernel", "copy,h2d"];
    args.extend_from_slice(SMALL);
    let o = bench(
        "inf2.xlarge",
        INF2_XLARGE,
        &args,
        &[(NRT_ERRORS_ENV, "nrt_tensor_write=4")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let benches = benchmarks(&o);
    let failed = benches
        .iter()
        .find(|b| b["device"] == "neuron:0" && b["kernel"] == "h2d")
        .expect("a failed h2d");
    assert!(failed["stats"]["median_s"].is_null(), "{failed}");
    assert!(benches.iter().any(|b| b["device"] == "cpu"));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("mixed.json");
    std::fs::write(&report, &o.stdout).unwrap();

    let c = accelprobe()
        .args(["compare", "--format", "json"])
        .arg(&report)
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    let v: Value = serde_json::from_slice(&c.stdout).unwrap();
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("skipped h2d"), "{warnings}");
    assert!(v["nodes"][0]["metrics"][0]["metric"]
        .as_str()
        .unwrap()
        .starts_with("copy/"));

    let r = accelprobe()
        .args(["verify", "--format", "json", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_ne!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(serde_json::from_slice::<Value>(&r.stdout).is_ok());
}

#[test]
fn a_hung_runtime_times_out_and_names_the_call() {
    let started = Instant::now();
    let mut args = vec!["--device", "all", "--kernel", "h2d,d2h", "--timeout", "1s"];
    args.extend_from_slice(SMALL);
    let o = bench(
        "inf2.xlarge",
        INF2_XLARGE,
        &args,
        &[(NRT_HANG_ENV, "nrt_tensor_write=60000")],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let benches = benchmarks(&o);
    assert_eq!(targets(&benches), every_core(2));
    for b in &benches {
        assert_eq!(b["correctness"]["passed"], false, "{b}");
        let f = b["correctness"]["failure"].as_str().unwrap();
        assert!(
            f.starts_with("nrt_tensor_write on neuron:0 did not return within")
                && f.contains("hung"),
            "{f}"
        );
    }
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn corrupted_copies_fail_the_check() {
    let mut args = vec!["--device", "neuron:1"];
    args.extend_from_slice(SMALL);
    // The fake runtime flips a bit on the way back: both directions read through it.
    let o = bench(
        "inf2.xlarge",
        INF2_XLARGE,
        &args,
        &[(NRT_CORRUPT_ENV, "nrt_tensor_read")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrong results from h2d on neuron:1, d2h on neuron:1"));
    assert_eq!(benchmarks(&o).len(), 2);
    for b in benchmarks(&o) {
        assert_eq!(b["correctness"]["passed"], false, "{b}");
        assert!(b["iterations"].as_u64().unwrap() > 0, "{b}");
        assert!(
            b["correctness"]["failure"]
                .as_str()
                .unwrap()
                .starts_with("1 of 262144 words differ"),
            "{b}"
        );
    }
    // A bit flipped on the way in: h2d reads back what its timed writes stored, d2h reads
    // what its one untimed write stored; both are caught.
    let o = bench(
        "inf2.xlarge",
        INF2_XLARGE,
        &args,
        &[(NRT_CORRUPT_ENV, "nrt_tensor_write")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(benchmarks(&o).len(), 2);
    for b in benchmarks(&o) {
        assert_eq!(b["correctness"]["passed"], false, "{b}");
    }
    // Writes that stop arriving after the first two (the zeros and the first timed write)
    // while still returning success: the read-back must show it.
    let mut h2d = vec!["--device", "neuron:0", "--kernel", "h2d"];
    h2d.extend_from_slice(SMALL);
    let o = bench(
        "inf2.xlarge",
        INF2_XLARGE,
        &h2d,
        &[(NRT_STALE_ENV, "nrt_tensor_write=2")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = benchmarks(&o);
    assert_eq!(b[0]["kernel"], "h2d");
    assert_eq!(b[0]["correctness"]["passed"], false, "{}", b[0]);
    // accelprobe's own damage after the run, for h2d only.
    let o = bench(
        "inf2.xlarge",
        INF2_XLARGE,
        &args,
        &[("ACCELPROBE_INJECT_CORRUPTION", "h2d")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = benchmarks(&o);
    assert_eq!(b[0]["correctness"]["passed"], false);
    assert_good(&b[1]);
}

#[test]
fn unusable_neuron_devices_are_usage_errors() {
    let cases: &[(&str, Option<PathBuf>, &[&str], &str)] = &[
        (
            "inf2.xlarge",
            None,
            &["--device", "neuron:2"],
            "--device neuron:2: the Neuron runtime sees 2 NeuronCore(s), neuron:0 to neuron:1",
        ),
        (
            "inf2.xlarge",
            None,
            &["--device", "neuron:0", "--kernel", "gemm"],
            "--device neuron:0 runs only the h2d and d2h kernels",
        ),
        (
            "inf2.xlarge",
            Some(PathBuf::from("/nonexistent/libnrt.so.1")),
            &["--device", "neuron:0"],
            "--device neuron:0: no NeuronCore is available (libnrt is not loaded",
        ),
    ];
    for (tree, lib, args, want) in cases {
        let lib = lib.as_deref().unwrap_or(fake_nrt());
        let o = common::neuron_bench_with(&root(tree), lib, INF2_XLARGE, args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = accelprobe()
        .args(["bench", "--device", "neuron:x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("neuron:N"), "{}", stderr(&o));
}

#[test]
fn run_benchmarks_the_neuron_cores_and_the_verdict_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let o = accelprobe()
        .args([
            "run",
            "--no-cuda",
            "--nvml-lib",
            "/nonexistent/libnvidia-ml.so.1",
        ])
        .arg("--sysfs-root")
        .arg(root("inf2.xlarge"))
        .arg("--neuron-lib")
        .arg(fake_nrt())
        .args(["--expect", "vendor=neuron", "--profile", "quick"])
        .arg("--termination-log")
        .arg(dir.path().join("termination-log"))
        .env(NRT_CONFIG_ENV, INF2_XLARGE)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    let doc: Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON document");
    let benches = doc["benchmarks"].as_array().unwrap();
    // auto on a Neuron node: the NeuronCores, not the CPU.
    assert_eq!(targets(benches), every_core(2));
    for b in benches {
        assert_good(b);
    }
    let checks: Vec<&Value> = doc["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == "perf.neuron.h2d")
        .collect();
    assert!(!checks.is_empty(), "{}", doc["verdict"]);
    for c in &checks {
        let m = c["message"].as_str().unwrap();
        assert!(!m.contains("no Neuron host-device benchmark"), "{c}");
        assert_ne!(c["status"], "skip", "{c}");
    }
    assert!(err.contains("4 benchmarks"), "{err}");
}
