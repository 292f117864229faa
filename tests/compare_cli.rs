//! `accelprobe compare` end to end: synthetic reports with known answers, baselines written
//! by `bench --save-baseline`, the fleet mode, the output formats and the exit codes.

mod common;

use accelprobe::compare::stats::median;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{accelprobe, stderr, stdout};
use serde_json::{json, Value};

/// Deterministic samples around `center` seconds, relative spread `spread` (uniform).
fn noisy(center: f64, spread: f64, n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            center * (1.0 + spread * (2.0 * u - 1.0))
        })
        .collect()
}

/// A benchmark entry as `bench --format json` writes it.
fn bench(kernel: &str, dtype: Option<&str>, device: &str, model: &str, samples: &[f64]) -> Value {
    let med = median(samples);
    let (size, work, unit) = if kernel == "copy" {
        (json!({"bytes": 67108864u64}), 0.134217728, "GB/s")
    } else {
        (
            json!({"m": 1024, "n": 1024, "k": 1024}),
            0.002147483648,
            "TFLOP/s",
        )
    };
    json!({
        "kernel": kernel, "dtype": dtype, "device": device, "device_name": model,
        "implementation": if kernel == "copy" { "cpu-stream-copy" } else { "cpu-gemm-crate" },
        "size": size, "warmup_iterations": 1, "iterations": samples.len(),
        "samples_s": samples,
        "stats": {"median_s": med, "p10_s": med, "p90_s": med, "mean_s": med,
                  "min_s": med, "max_s": med, "cv": 0.0},
        "throughput": {"value": work / med, "unit": unit},
        "peak": null, "fraction_of_peak": null,
        "correctness": {"passed": true, "max_rel_error": 0.0, "bound": 1e-5,
                        "method": "synthetic", "elements_checked": 1}
    })
}

/// A report from `host` with the given benchmarks.
fn report(host: &str, driver: Option<&str>, benchmarks: Vec<Value>) -> Value {
    json!({
        "schema_version": 1,
        "tool": {"name": "accelprobe", "version": "0.1.0"},
        "id": format!("id-{host}"),
        "created_at": "2025-06-01T00:00:00Z",
        "host": {"hostname": host, "kubernetes": {"node_name": host}},
        "runtimes": [{"name": "nvml", "status": "loaded", "driver_version": driver,
                      "cuda_version": "12.4"}],
        "devices": [],
        "benchmarks": benchmarks,
        "errors": []
    })
}

/// One copy and one gemm benchmark, times scaled by `slow` (1.25 = 20 % less throughput).
fn two_kernels(host: &str, slow: f64, spread: f64, seed: u64) -> Value {
    report(
        host,
        Some("550.54.15"),
        vec![
            bench(
                "copy",
                None,
                "cpu",
                "Test CPU",
                &noisy(0.01 * slow, spread, 40, seed),
            ),
            bench(
                "gemm",
                Some("f32"),
                "cpu",
                "Test CPU",
                &noisy(0.02 * slow, spread, 40, seed + 1),
            ),
        ],
    )
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

fn compare(args: &[&Path], extra: &[&str]) -> Output {
    accelprobe()
        .arg("compare")
        .args(args)
        .args(extra)
        .output()
        .expect("run accelprobe compare")
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON ({e}): {}\n{}",
            stderr(o),
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn decisions(v: &Value) -> Vec<String> {
    v["nodes"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["decision"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn identical_reports_are_unchanged_with_a_tight_interval() {
    let d = tempfile::tempdir().unwrap();
    let r = two_kernels("node-a", 1.0, 0.02, 1);
    let (a, b) = (write(d.path(), "a.json", &r), write(d.path(), "b.json", &r));
    let o = compare(&[&a, &b], &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(v["kind"], "accelprobe-comparison");
    assert_eq!(v["passed"], true);
    assert_eq!(decisions(&v), ["unchanged", "unchanged"]);
    for m in v["nodes"][0]["metrics"].as_array().unwrap() {
        assert_eq!(m["change"].as_f64().unwrap(), 0.0);
        let (lo, hi) = (
            m["ci_low"].as_f64().unwrap(),
            m["ci_high"].as_f64().unwrap(),
        );
        assert!(lo <= 0.0 && hi >= 0.0 && hi - lo < 0.02, "{m}");
    }
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn a_twenty_percent_slowdown_is_a_regression_and_exits_1() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.json", &two_kernels("node-a", 1.0, 0.02, 1));
    let b = write(d.path(), "b.json", &two_kernels("node-a", 1.25, 0.02, 7));
    let o = compare(&[&a, &b], &["--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(v["passed"], false);
    assert_eq!(decisions(&v), ["regression", "regression"]);
    let m = &v["nodes"][0]["metrics"][0];
    assert!((m["change"].as_f64().unwrap() + 0.2).abs() < 0.02, "{m}");
    assert!(m["ci_high"].as_f64().unwrap() < -0.05, "{m}");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("performance regression"), "{err}");
    // The other way round it is an improvement, and that passes.
    let o = compare(&[&b, &a], &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(decisions(&json_out(&o)), ["improvement", "improvement"]);
    // A threshold larger than the change: unchanged.
    let o = compare(&[&a, &b], &["--format", "json", "--threshold", "30%"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(decisions(&json_out(&o)), ["unchanged", "unchanged"]);
}

#[test]
fn noisy_overlap_is_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let a = report(
        "n",
        None,
        vec![bench(
            "copy",
            None,
            "cpu",
            "Test CPU",
            &noisy(0.01, 0.5, 10, 3),
        )],
    );
    let b = report(
        "n",
        None,
        vec![bench(
            "copy",
            None,
            "cpu",
            "Test CPU",
            &noisy(0.0107, 0.5, 10, 4),
        )],
    );
    let (a, b) = (write(d.path(), "a.json", &a), write(d.path(), "b.json", &b));
    let o = compare(&[&a, &b], &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(decisions(&v), ["unchanged"]);
    let m = &v["nodes"][0]["metrics"][0];
    assert!(
        m["ci_high"].as_f64().unwrap() - m["ci_low"].as_f64().unwrap() > 0.1,
        "{m}"
    );
}

#[test]
fn same_seed_same_answer() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.json", &two_kernels("n", 1.0, 0.1, 1));
    let b = write(d.path(), "b.json", &two_kernels("n", 1.03, 0.1, 2));
    let x = compare(&[&a, &b], &["--format", "json", "--seed", "42"]);
    let y = compare(&[&a, &b], &["--format", "json", "--seed", "42"]);
    assert_eq!(x.stdout, y.stdout);
    // Another seed draws other resamples: the intervals move (the output's `seed` field alone
    // would differ even if the seed were ignored).
    let z = compare(&[&a, &b], &["--format", "json", "--seed", "43"]);
    let intervals = |o: &std::process::Output| -> Vec<(f64, f64)> {
        json_out(o)["nodes"][0]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["ci_low"].as_f64().unwrap(),
                    m["ci_high"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(intervals(&x), intervals(&y));
    assert_ne!(intervals(&x), intervals(&z));
}

#[test]
fn missing_metrics_are_listed_and_nothing_comparable_exits_2() {
    let d = tempfile::tempdir().unwrap();
    let s = noisy(0.01, 0.02, 20, 1);
    let a = report(
        "n",
        None,
        vec![
            bench("copy", None, "cpu", "Test CPU", &s),
            bench("gemm", Some("f32"), "cpu", "Test CPU", &s),
        ],
    );
    let b = report(
        "n",
        None,
        vec![
            bench("copy", None, "cpu", "Test CPU", &s),
            bench("gemm", Some("bf16"), "cpu", "Test CPU", &s),
        ],
    );
    let (a, b) = (write(d.path(), "a.json", &a), write(d.path(), "b.json", &b));
    let o = compare(&[&a, &b], &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    let n = &v["nodes"][0];
    assert_eq!(n["metrics"].as_array().unwrap().len(), 1);
    assert!(n["baseline_only"][0]
        .as_str()
        .unwrap()
        .starts_with("gemm/f32/Test CPU/"));
    assert!(n["current_only"][0]
        .as_str()
        .unwrap()
        .starts_with("gemm/bf16/Test CPU/"));
    let table = compare(&[&a, &b], &[]);
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(t.contains("only in baseline: gemm/f32/"), "{t}");
    assert!(t.contains("only in current:  gemm/bf16/"), "{t}");

    // A different device model: nothing in common.
    let c = report("n", None, vec![bench("copy", None, "cpu", "Other CPU", &s)]);
    let c = write(d.path(), "c.json", &c);
    let o = compare(&[&a, &c], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing comparable"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);
    // A --metric that matches nothing.
    let o = compare(&[&a, &b], &["--metric", "inference/*"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn metric_patterns_select() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.json", &two_kernels("n", 1.0, 0.02, 1));
    let b = write(d.path(), "b.json", &two_kernels("n", 1.25, 0.02, 2));
    let o = compare(&[&a, &b], &["--format", "json", "--metric", "copy/*"]);
    let v = json_out(&o);
    let ms = v["nodes"][0]["metrics"].as_array().unwrap();
    assert_eq!(ms.len(), 1);
    assert!(ms[0]["metric"]
        .as_str()
        .unwrap()
        .starts_with("copy/-/Test CPU/bytes="));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn bad_inputs_exit_2_with_one_line() {
    let d = tempfile::tempdir().unwrap();
    let good = write(d.path(), "good.json", &two_kernels("n", 1.0, 0.02, 1));
    let mut newer = two_kernels("n", 1.0, 0.02, 1);
    newer["schema_version"] = json!(99);
    let newer = write(d.path(), "newer.json", &newer);
    let empty = write(d.path(), "empty.json", &report("n", None, vec![]));
    let garbage = d.path().join("garbage.json");
    std::fs::write(&garbage, "{ not json").unwrap();
    let newer_baseline = write(
        d.path(),
        "nb.json",
        &json!({"kind": "accelprobe-baseline", "baseline_version": 7}),
    );
    let missing = d.path().join("missing.json");
    let cases: Vec<(Vec<&Path>, Vec<&str>, &str)> = vec![
        (vec![&good, &newer], vec![], "schema_version 99 is newer"),
        (
            vec![&newer_baseline, &good],
            vec![],
            "baseline_version 7 is newer",
        ),
        (vec![&good, &empty], vec![], "has no benchmarks"),
        (vec![&garbage, &good], vec![], "invalid JSON"),
        (vec![&good, &missing], vec![], "cannot read"),
        (
            vec![&good, &good],
            vec!["--threshold", "abc"],
            "invalid threshold",
        ),
        (
            vec![&good, &good],
            vec!["--format", "xml"],
            "unknown --format",
        ),
        (
            vec![&good, &good],
            vec!["--confidence", "1.5"],
            "--confidence",
        ),
        (vec![&good], vec![], "required"),
    ];
    for (files, extra, want) in cases {
        let o = compare(&files, &extra);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{files:?} {extra:?}: {err}");
        assert!(
            err.contains(want),
            "{files:?} {extra:?}: want '{want}' in {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn markdown_summary() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.json", &two_kernels("n", 1.0, 0.02, 1));
    let mut cur = two_kernels("n", 1.25, 0.02, 2);
    cur["runtimes"][0]["driver_version"] = json!("560.28.03");
    let b = write(d.path(), "b.json", &cur);
    let o = compare(&[&a, &b], &["--format", "markdown"]);
    assert_eq!(o.status.code(), Some(1));
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.starts_with("## accelprobe compare: FAIL"), "{md}");
    assert!(
        md.contains("| metric | baseline | current | unit | change | interval | decision |"),
        "{md}"
    );
    assert!(md.contains("|---|---:|---:|---|---:|---|---|"), "{md}");
    assert!(md.contains("| **regression** |"), "{md}");
    assert!(
        md.contains("`copy/-/Test CPU/bytes=67108864/cpu-stream-copy`"),
        "{md}"
    );
    assert!(md.contains("> [!WARNING]"), "{md}");
    assert!(
        md.contains("driver version differs on n: baseline 550.54.15, current 560.28.03"),
        "{md}"
    );
}

#[test]
fn warnings_name_tool_driver_and_model_differences() {
    let d = tempfile::tempdir().unwrap();
    let base = two_kernels("n", 1.0, 0.02, 1);
    let mut cur = two_kernels("n", 1.0, 0.02, 2);
    cur["tool"]["version"] = json!("9.9.9");
    cur["runtimes"][0]["driver_version"] = json!("560.28.03");
    cur["benchmarks"].as_array_mut().unwrap().push(bench(
        "copy",
        None,
        "cuda:0",
        "NVIDIA L40S",
        &noisy(0.001, 0.01, 20, 5),
    ));
    let (a, b) = (
        write(d.path(), "a.json", &base),
        write(d.path(), "b.json", &cur),
    );
    let o = compare(&[&a, &b], &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let w: Vec<String> = json_out(&o)["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    let all = w.join("\n");
    assert!(
        all.contains("tool version differs on n: baseline accelprobe 0.1.0, current 9.9.9"),
        "{all}"
    );
    assert!(all.contains("driver version differs"), "{all}");
    assert!(
        all.contains("device model differs on n: baseline Test CPU, current NVIDIA L40S, Test CPU"),
        "{all}"
    );
    let t = compare(&[&a, &b], &[]);
    assert!(String::from_utf8_lossy(&t.stdout).contains("warning: tool version differs"));
}

#[test]
fn fleet_outlier_node_is_flagged_per_node_and_overall() {
    let d = tempfile::tempdir().unwrap();
    let base = write(d.path(), "base.json", &two_kernels("golden", 1.0, 0.02, 1));
    let mut files = Vec::new();
    for i in 0..5u64 {
        let slow = 1.0 + 0.003 * i as f64;
        files.push(write(
            d.path(),
            &format!("n{i}.json"),
            &two_kernels(&format!("gpu-node-{i}"), slow, 0.02, 10 + 2 * i),
        ));
    }
    let mut args: Vec<&Path> = vec![&base];
    args.extend(files.iter().map(PathBuf::as_path));
    let o = compare(&args, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 5);
    assert_eq!(v["nodes"][2]["node"], "gpu-node-2");
    assert_eq!(v["overall"].as_array().unwrap().len(), 2);
    assert_eq!(v["fleet_outliers"].as_array().unwrap().len(), 0);

    // A sixth node 30 % slower on copy only.
    let mut bad = two_kernels("gpu-node-bad", 1.0, 0.02, 50);
    bad["benchmarks"][0] = bench("copy", None, "cpu", "Test CPU", &noisy(0.013, 0.02, 40, 51));
    let bad = write(d.path(), "bad.json", &bad);
    args.push(&bad);
    let o = compare(&args, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json_out(&o);
    let out = v["fleet_outliers"].as_array().unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["node"], "gpu-node-bad");
    assert_eq!(out[0]["direction"], "slow");
    assert!(out[0]["metric"].as_str().unwrap().starts_with("copy/"));
    // 13 ms against 10 ms per iteration: about 23 % less throughput than the fleet.
    let dev = out[0]["deviation"].as_f64().unwrap();
    assert!((-0.30..=-0.15).contains(&dev), "{dev}");
    assert_eq!(out[0]["vs_baseline"], "regression");
    assert_eq!(v["summary"]["slow_outliers"], 1);
    let md = compare(&args, &["--format", "markdown"]);
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.contains("### Fleet outliers"), "{md}");
    assert!(md.contains("### Overall (6 nodes pooled)"), "{md}");
    assert!(md.contains("### Node `gpu-node-bad`"), "{md}");
}

#[test]
fn reports_from_the_same_node_are_told_apart() {
    let d = tempfile::tempdir().unwrap();
    let r = two_kernels("same", 1.0, 0.02, 1);
    let (a, b, c) = (
        write(d.path(), "a.json", &r),
        write(d.path(), "b.json", &r),
        write(d.path(), "c.json", &r),
    );
    let v = json_out(&compare(&[&a, &b, &c], &["--format", "json"]));
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1]);
    assert!(names[0].starts_with("same ("), "{names:?}");
}

#[test]
fn baseline_round_trip_through_bench() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("baseline.json");
    let o = accelprobe()
        .args([
            "bench",
            "--device",
            "cpu",
            "--kernel",
            "copy,gemm",
            "--dtype",
            "f32",
        ])
        .args(["--size", "16", "--duration", "5ms", "--format", "json"])
        .arg("--save-baseline")
        .arg(&base)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rep = d.path().join("report.json");
    std::fs::write(&rep, &o.stdout).unwrap();
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    assert_eq!(b["kind"], "accelprobe-baseline");
    assert_eq!(b["baseline_version"], 2);
    assert_eq!(b["tool"]["name"], "accelprobe");
    assert!(b["created_at"].as_str().unwrap().ends_with('Z'));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ms = b["metrics"].as_array().unwrap();
    assert_eq!(ms.len(), 2);
    for m in ms {
        // The CPU runs in 8 rounds, and the baseline keeps them, each round's samples whole.
        let rounds: Vec<u64> = m["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_u64().unwrap())
            .collect();
        let bench = r["benchmarks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["kernel"] == m["kernel"])
            .unwrap();
        let from_report: Vec<u64> = bench["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_u64().unwrap())
            .collect();
        assert_eq!(rounds.len(), 8, "{m}");
        assert_eq!(rounds, from_report, "{m}");
        assert_eq!(
            rounds.iter().sum::<u64>(),
            m["samples_s"].as_array().unwrap().len() as u64
        );
        assert!(!m["samples_s"].as_array().unwrap().is_empty());
        assert!(m["work_per_iteration"].as_f64().unwrap() > 0.0);
        assert!(m["device_model"].is_string());
    }
    // The baseline against the very report it was made from: same samples, no change.
    let o = compare(&[&base, &rep], &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(v["baseline"]["kind"], "baseline");
    assert!(v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| !w.as_str().unwrap().contains("differs")));
    for m in v["nodes"][0]["metrics"].as_array().unwrap() {
        assert_eq!(m["change"].as_f64().unwrap(), 0.0, "{m}");
        assert_eq!(m["decision"], "unchanged");
    }
    assert_eq!(v["nodes"][0]["metrics"].as_array().unwrap().len(), 2);
    // A baseline is also accepted as the current side.
    let o = compare(&[&rep, &base], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn save_baseline_to_an_unwritable_place_exits_2() {
    let d = tempfile::tempdir().unwrap();
    let o = accelprobe()
        .args([
            "bench", "--device", "cpu", "--kernel", "copy", "--size", "1",
        ])
        .args(["--duration", "1ms", "--save-baseline"])
        .arg(d.path().join("no/such/dir/b.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot write baseline"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn injected_slowdown_is_validated() {
    let o = accelprobe()
        .args([
            "bench", "--device", "cpu", "--kernel", "copy", "--size", "1",
        ])
        .args(["--duration", "1ms"])
        .env("ACCELPROBE_INJECT_SLOWDOWN", "copy")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("KERNEL:PERCENT"), "{}", stderr(&o));
    // A kernel that is never slowed must not pass for an injected slowdown.
    let o = accelprobe()
        .args(["bench", "--device", "cpu", "--kernel", "h2d", "--size", "1"])
        .args(["--duration", "1ms"])
        .env("ACCELPROBE_INJECT_SLOWDOWN", "h2d:10")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot slow kernel 'h2d'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn doubtful_inputs_are_not_decided_on_and_say_why() {
    let d = tempfile::tempdir().unwrap();
    let s = noisy(0.01, 0.01, 20, 3);
    let base = report("n", None, vec![bench("copy", None, "cpu", "Test CPU", &s)]);
    let base = write(d.path(), "base.json", &base);

    // Two samples, 60 % slower: a bootstrap of two has no spread, so no verdict from it.
    let few = report(
        "n",
        None,
        vec![bench("copy", None, "cpu", "Test CPU", &[0.016, 0.0161])],
    );
    let few = write(d.path(), "few.json", &few);
    let o = compare(&[&base, &few], &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json_out(&o);
    assert_eq!(decisions(&v), ["unchanged"]);
    assert!(
        v["warnings"]
            .to_string()
            .contains("too few samples to decide"),
        "{v}"
    );

    // The same benchmark twice is used once, and said.
    let twice = report(
        "n",
        None,
        vec![
            bench("copy", None, "cpu", "Test CPU", &s),
            bench("copy", None, "cpu", "Test CPU", &s),
        ],
    );
    let twice = write(d.path(), "twice.json", &twice);
    let v = json_out(&compare(&[&base, &twice], &["--format", "json"]));
    assert_eq!(v["nodes"][0]["metrics"][0]["current"]["samples"], 20, "{v}");
    assert!(
        v["warnings"].to_string().contains("the same benchmark"),
        "{v}"
    );

    // Thread counts that differ are named.
    let mut threaded = bench("copy", None, "cpu", "Test CPU", &s);
    threaded["threads"] = 2.into();
    let two = write(
        d.path(),
        "two.json",
        &report("n", None, vec![threaded.clone()]),
    );
    threaded["threads"] = 1.into();
    let one = write(d.path(), "one.json", &report("n", None, vec![threaded]));
    let v = json_out(&compare(&[&two, &one], &["--format", "json"]));
    assert!(
        v["warnings"]
            .to_string()
            .contains("ran on 2 threads in the baseline and 1 now"),
        "{v}"
    );

    // A bare threshold below 1 is ambiguous; with its sign it is exact, and shown so.
    let o = compare(&[&base, &base], &["--threshold", "0.05"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("write 5% for 5 percent"),
        "{}",
        stderr(&o)
    );
    let o = compare(&[&base, &base], &["--threshold", "0.25%"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("threshold 0.25%"), "{}", stdout(&o));
}
