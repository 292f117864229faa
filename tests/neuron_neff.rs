//! `accelprobe bench --neff FILE`: a compiled model loaded and executed on NeuronCores through
//! the fake libnrt (tests/fake-nrt), whose "NEFF" is a small JSON document naming the input
//! and output tensors (see the fake's README). Latency is only asserted to be positive.

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{
    accelprobe, bench_benchmarks, fixture, neuron_bench, stderr, stdout, NRT_CORRUPT_ENV,
    NRT_ERRORS_ENV, NRT_HANG_ENV, NRT_STALE_ENV,
};
use serde_json::Value;

const INF2_XLARGE: &str = r#"{"version":"2.22.14.0","family":4,"size":0,"total_cores":2}"#;
const SMALL: &[&str] = &["--size", "1", "--duration", "10ms"];
/// Two inputs (16 and 4 bytes) and two outputs.
const MODEL: &str = r#"{"fake_neff":{"inputs":[{"name":"x","size":16},{"name":"mask","size":4}],
  "outputs":[{"name":"y","size":16},{"name":"score","size":8}],"exec_us":200}}"#;

struct Model {
    _dir: tempfile::TempDir,
    neff: PathBuf,
    x: PathBuf,
}

fn model() -> Model {
    let dir = tempfile::tempdir().unwrap();
    let neff = dir.path().join("tiny.neff");
    std::fs::write(&neff, MODEL).unwrap();
    let x = dir.path().join("x.bin");
    std::fs::write(&x, (1u8..=16).collect::<Vec<u8>>()).unwrap();
    Model { _dir: dir, neff, x }
}

fn bench(args: &[&str], env: &[(&str, &str)]) -> Output {
    neuron_bench(&fixture("neuron/inf2.xlarge"), INF2_XLARGE, args, env)
}

fn neff_benchmarks(o: &Output) -> Vec<Value> {
    bench_benchmarks(o)
        .into_iter()
        .filter(|b| b["kernel"] == "neff")
        .collect()
}

fn with_model<'a>(m: &'a Model, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--neff", m.neff.to_str().unwrap()];
    args.extend_from_slice(rest);
    args.extend_from_slice(SMALL);
    args
}

#[test]
fn a_model_runs_on_every_core_with_latency_throughput_and_a_determinism_check() {
    let m = model();
    let input = format!("x={}", m.x.display());
    let o = bench(
        &with_model(
            &m,
            &[
                "--device",
                "all",
                "--kernel",
                "h2d,d2h",
                "--neff-input",
                &input,
            ],
        ),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let benches = neff_benchmarks(&o);
    let devices: Vec<&str> = benches
        .iter()
        .map(|b| b["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["neuron:0", "neuron:1"]);
    for b in &benches {
        assert_eq!(b["correctness"]["passed"], true, "{b}");
        assert_eq!(b["correctness"]["elements_checked"], 24, "{b}");
        assert!(b["correctness"]["method"]
            .as_str()
            .unwrap()
            .contains("first execution"));
        assert_eq!(b["implementation"], "nrt-execute");
        assert_eq!(b["throughput"]["unit"], "exec/s");
        // The fake sleeps 200 µs per execution: latency at least that, throughput at most 5000/s.
        let median = b["stats"]["median_s"].as_f64().unwrap();
        let rate = b["throughput"]["value"].as_f64().unwrap();
        assert!(median >= 200e-6, "{b}");
        assert!(rate > 0.0 && (rate * median - 1.0).abs() < 1e-9, "{b}");
        assert!(b["iterations"].as_u64().unwrap() >= 8);
        assert_eq!(b["rounds"].as_array().unwrap().len(), 8, "{b}");
        // Every tensor's bytes, and the model named by file and digest.
        assert_eq!(b["size"]["bytes"], 16 + 4 + 16 + 8);
        let label = b["size"]["model"].as_str().unwrap();
        assert!(
            label.starts_with("tiny.neff@") && label.len() == 10 + 12,
            "{label}"
        );
        let notes: Vec<&str> = b["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert!(notes[0].contains("2 input(s), 2 output(s)"), "{notes:?}");
        assert!(
            notes.contains(&"inputs without --neff-input were filled with zeros: mask"),
            "{notes:?}"
        );
    }
    // The copies still ran alongside.
    let all: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(all["benchmarks"].as_array().unwrap().len(), 2 + 4);
}

#[test]
fn model_and_input_mistakes_are_named() {
    let m = model();
    let d = tempfile::tempdir().unwrap();
    let short = d.path().join("short.bin");
    std::fs::write(&short, [0u8; 3]).unwrap();
    let garbage = d.path().join("garbage.neff");
    std::fs::write(&garbage, b"\x7fNEFF-not-really").unwrap();
    // Problems found when the model is loaded: a failed benchmark naming why, exit 1.
    let short_input = format!("x={}", short.display());
    let unknown_input = format!("nope={}", m.x.display());
    let at_run: &[(Vec<&str>, &str)] = &[
        (
            with_model(&m, &["--device", "neuron:0", "--neff-input", &short_input]),
            "--neff-input x=",
        ),
        (
            with_model(&m, &["--device", "neuron:0", "--neff-input", &unknown_input]),
            "--neff-input nope: the model has no input tensor of that name; its inputs are x (16 B), mask (4 B)",
        ),
        (
            vec![
                "--neff",
                garbage.to_str().unwrap(),
                "--device",
                "neuron:0",
                "--size",
                "1",
                "--duration",
                "10ms",
            ],
            "nrt_load returned NRT_INVALID (2)",
        ),
    ];
    for (args, want) in at_run {
        let o = bench(args, &[]);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let b = &neff_benchmarks(&o)[0];
        let failure = b["correctness"]["failure"].as_str().unwrap();
        assert!(failure.contains(want), "{args:?}: {failure}");
        assert_eq!(b["iterations"], 0, "{b}");
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    }
    assert!(
        neff_benchmarks(&bench(&at_run[0].0, &[]))[0]["correctness"]["failure"]
            .as_str()
            .unwrap()
            .ends_with("the file has 3 bytes, the tensor takes 16")
    );
    // Problems found before anything runs: exit 2 and one line.
    let missing = d.path().join("missing.neff");
    let before: &[(Vec<&str>, &str)] = &[
        (
            vec!["--neff", missing.to_str().unwrap()],
            "cannot read --neff",
        ),
        (with_model(&m, &["--neff-input", "x"]), "is not NAME=FILE"),
        (
            with_model(&m, &["--neff-input", "x=/nonexistent/x.bin"]),
            "cannot read --neff-input x=/nonexistent/x.bin",
        ),
        (
            with_model(&m, &["--device", "cpu"]),
            "runs on NeuronCores and none was selected (--device cpu)",
        ),
    ];
    for (args, want) in before {
        let o = bench(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
    let o = accelprobe()
        .args(["bench", "--neff-input", "x=y"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "--neff-input needs --neff");
}

#[test]
fn runtime_faults_fail_the_model_benchmark() {
    let m = model();
    for (rule, want) in [
        ("nrt_execute=6", "nrt_execute returned NRT_HW_ERROR (6)"),
        (
            "nrt_load=10",
            "nrt_load returned NRT_UNSUPPORTED_NEFF_VERSION (10)",
        ),
        (
            "nrt_get_model_tensor_info=1",
            "nrt_get_model_tensor_info returned NRT_FAILURE (1)",
        ),
        (
            "nrt_add_tensor_to_tensor_set=4",
            "nrt_add_tensor_to_tensor_set returned NRT_RESOURCE (4)",
        ),
    ] {
        let o = bench(
            &with_model(&m, &["--device", "neuron:0", "--kernel", "h2d"]),
            &[(NRT_ERRORS_ENV, rule)],
        );
        assert_eq!(o.status.code(), Some(1), "{rule}: {}", stderr(&o));
        let b = &neff_benchmarks(&o)[0];
        assert_eq!(b["correctness"]["failure"], want, "{rule}: {b}");
        assert!(stderr(&o).contains(want), "{rule}: {}", stderr(&o));
    }
    // A core that does not compute the same thing twice fails the check, naming the output.
    let o = bench(
        &with_model(&m, &["--device", "neuron:1", "--kernel", "h2d"]),
        &[(NRT_CORRUPT_ENV, "nrt_execute")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = &neff_benchmarks(&o)[0];
    let f = b["correctness"]["failure"].as_str().unwrap();
    assert!(
        f.starts_with("1 of 24 output bytes changed between the first and the last execution")
            && f.contains("byte 8 of output y"),
        "{f}"
    );
    assert!(
        b["iterations"].as_u64().unwrap() > 0,
        "timed, then rejected"
    );
    // Executions that stop writing their outputs after the first, or never write them, still
    // returning success.
    for stale in ["nrt_execute=1", "nrt_execute=0"] {
        let o = bench(
            &with_model(&m, &["--device", "neuron:0", "--kernel", "h2d"]),
            &[(NRT_STALE_ENV, stale)],
        );
        assert_eq!(o.status.code(), Some(1), "{stale}: {}", stderr(&o));
        let b = &neff_benchmarks(&o)[0];
        assert_eq!(b["correctness"]["passed"], false, "{stale}: {b}");
    }
}

#[test]
fn a_hung_execution_is_abandoned_and_named() {
    let m = model();
    let started = Instant::now();
    let o = bench(
        &with_model(
            &m,
            &["--device", "neuron:0", "--kernel", "h2d", "--timeout", "1s"],
        ),
        &[(NRT_HANG_ENV, "nrt_execute=60000")],
    );
    // 1 s per call plus 3 × 1 s for an execution, not the minute the fake sleeps.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = &neff_benchmarks(&o)[0];
    let f = b["correctness"]["failure"].as_str().unwrap();
    assert!(
        f.starts_with("nrt_execute on neuron:0 did not return within") && f.contains("hung"),
        "{f}"
    );
}
