//! `accelprobe bench` end to end on the CPU backend (and its refusals without a GPU).

mod common;

use std::process::Output;

use common::{accelprobe, fakes, stderr};
use serde_json::Value;

fn bench(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = accelprobe();
    cmd.arg("bench").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run accelprobe bench")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stderr(o)))
}

const FAST: &[&str] = &["--device", "cpu", "--duration", "5ms", "--format", "json"];

#[test]
fn every_kernel_and_dtype_is_correct_at_odd_sizes() {
    for size in ["1", "17", "67"] {
        let o = bench(&[FAST, &["--size", size]].concat(), &[]);
        assert_eq!(o.status.code(), Some(0), "size {size}: {}", stderr(&o));
        let r = json(&o);
        let b = r["benchmarks"].as_array().unwrap();
        // 4 GEMMs, 1 copy, 4 inference passes; h2d/d2h are not CPU kernels.
        assert_eq!(b.len(), 9, "size {size}");
        for x in b {
            assert_eq!(x["correctness"]["passed"], true, "{x}");
            assert!(x["throughput"]["value"].as_f64().unwrap() > 0.0);
            assert!(x["iterations"].as_u64().unwrap() >= 3);
            assert_eq!(
                x["samples_s"].as_array().unwrap().len() as u64,
                x["iterations"].as_u64().unwrap()
            );
            let s = &x["stats"];
            let (p10, med, p90) = (
                s["p10_s"].as_f64().unwrap(),
                s["median_s"].as_f64().unwrap(),
                s["p90_s"].as_f64().unwrap(),
            );
            assert!(0.0 < p10 && p10 <= med && med <= p90, "{s}");
        }
        let gemm = b.iter().find(|x| x["kernel"] == "gemm").unwrap();
        assert_eq!(gemm["size"]["m"].as_u64().unwrap().to_string(), size);
    }
}

#[test]
fn the_report_carries_the_benchmarks() {
    let o = bench(
        &[
            FAST,
            &["--kernel", "gemm", "--dtype", "bf16", "--size", "64"],
        ]
        .concat(),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["schema_version"], 1);
    assert!(r["runtimes"].as_array().unwrap().len() >= 2);
    let b = &r["benchmarks"][0];
    assert_eq!(
        (
            b["kernel"].as_str(),
            b["dtype"].as_str(),
            b["device"].as_str()
        ),
        (Some("gemm"), Some("bf16"), Some("cpu"))
    );
    assert_eq!(b["throughput"]["unit"], "TFLOP/s");
    // The report parses back with the library's own reader.
    accelprobe::report::Report::parse_json(&String::from_utf8_lossy(&o.stdout)).unwrap();
}

#[test]
fn corrupted_results_are_caught_and_exit_1() {
    for (kernel, dtype) in [
        ("gemm", "f32"),
        ("gemm", "bf16"),
        ("copy", "f32"),
        ("inference", "f16"),
    ] {
        let o = bench(
            &[
                FAST,
                &["--kernel", kernel, "--dtype", dtype, "--size", "48"],
            ]
            .concat(),
            &[("ACCELPROBE_INJECT_CORRUPTION", kernel)],
        );
        assert_eq!(o.status.code(), Some(1), "{kernel} {dtype}: {}", stderr(&o));
        let r = json(&o);
        let b = &r["benchmarks"][0];
        assert_eq!(b["correctness"]["passed"], false, "{b}");
        assert!(b["correctness"]["failure"].is_string());
        assert!(stderr(&o).contains("wrong results"), "{}", stderr(&o));
    }
}

#[test]
fn table_output_lists_each_benchmark() {
    let o = bench(
        &[
            "--device",
            "cpu",
            "--duration",
            "5ms",
            "--size",
            "32",
            "--kernel",
            "gemm,copy",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("cpu ")).count(),
        5,
        "{out}"
    );
    assert!(out.contains("TFLOP/s") && out.contains("GB/s"));
    assert!(!out.contains("FAIL"));
}

#[test]
fn auto_falls_back_to_the_cpu_and_says_so() {
    let o = bench(
        &[
            "--duration",
            "5ms",
            "--size",
            "16",
            "--kernel",
            "gemm",
            "--dtype",
            "f32",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("fell back to the CPU"), "{out}");
    let o = bench(
        &[
            "--duration",
            "5ms",
            "--size",
            "16",
            "--kernel",
            "gemm",
            "--dtype",
            "f32",
            "--format",
            "json",
        ],
        &[],
    );
    assert!(
        stderr(&o).contains("fell back to the CPU"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let cases: &[&[&str]] = &[
        &["--device", "cuda:0"],
        &["--device", "gpu"],
        &["--kernel", "fft"],
        &["--dtype", "fp8"],
        &["--size", "0"],
        &["--profile", "slow"],
        &["--format", "csv"],
        &["--duration", "forever"],
        &["--device", "cpu", "--kernel", "gemm", "--size", "65536"],
    ];
    for args in cases {
        let o = bench(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    let o = bench(&["--device", "cuda:0"], &[]);
    assert!(stderr(&o).contains("no CUDA device"), "{}", stderr(&o));
    let o = bench(
        &["--device", "cpu"],
        &[("ACCELPROBE_INJECT_CORRUPTION", "everything")],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_cuda_ordinal_beyond_the_node_is_refused() {
    let f = fakes();
    let mut cmd = accelprobe();
    f.serve(&mut cmd, "l4");
    let o = cmd.args(["bench", "--device", "cuda:3"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cuda:0 to cuda:0"), "{}", stderr(&o));
}

#[test]
fn a_broken_cuda_driver_fails_the_gpu_without_a_panic() {
    // The fake CUDA driver answers device queries but has no context API: cudarc panics on
    // the missing symbol, which must become a failed benchmark, exit 1.
    let f = fakes();
    let mut cmd = accelprobe();
    f.serve(&mut cmd, "l4");
    let o = cmd
        .args([
            "bench",
            "--device",
            "cuda:0",
            "--kernel",
            "gemm,copy",
            "--dtype",
            "f32",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("could not run") && e.contains("cuDevicePrimaryCtxRetain"),
        "{e}"
    );
    assert!(!e.contains("panicked"));
    let r = json(&o);
    let b = r["benchmarks"].as_array().unwrap();
    assert_eq!(b.len(), 2);
    assert!(b
        .iter()
        .all(|x| x["device"] == "cuda:0" && x["correctness"]["passed"] == false));
    // auto picks the GPU when CUDA lists one.
    let mut cmd = accelprobe();
    f.serve(&mut cmd, "l4");
    let o = cmd
        .args(["bench", "--kernel", "copy", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(json(&o)["benchmarks"][0]["device"], "cuda:0");
}
