//! GPU integration tests. They need a CUDA GPU, so they are `#[ignore]`d: a machine without
//! one compiles and skips them; `scripts/gpu-check.sh` runs them with `--ignored` on a GPU
//! machine (with `ACCELPROBE_BIN` pointing at the release binary).

mod common;

use common::accelprobe;
use serde_json::Value;

/// Run `bench` on cuda:0 and return the parsed report, asserting the exit code.
fn bench(args: &[&str], expect_exit: i32) -> Value {
    let o = accelprobe()
        .args([
            "bench",
            "--device",
            "cuda:0",
            "--format",
            "json",
            "--duration",
            "20ms",
        ])
        .args(args)
        .output()
        .expect("run accelprobe");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(expect_exit), "{args:?}: {err}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: bad JSON {e}: {err}"))
}

fn all_passed(r: &Value, what: &str) -> usize {
    let b = r["benchmarks"].as_array().expect("benchmarks");
    for x in b {
        assert_eq!(x["correctness"]["passed"], true, "{what}: {x}");
        assert!(
            x["throughput"]["value"].as_f64().unwrap() > 0.0,
            "{what}: {x}"
        );
    }
    b.len()
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_is_correct_for_every_dtype_and_awkward_sizes() {
    for size in ["1", "17", "127", "128", "129", "1000", "2050", "4097"] {
        for dtype in ["f32", "tf32", "f16", "bf16"] {
            let r = bench(&["--kernel", "gemm", "--dtype", dtype, "--size", size], 0);
            let n = all_passed(&r, &format!("gemm {dtype} {size}"));
            assert!(
                n >= 1,
                "gemm {dtype} {size}: nothing ran: {}",
                r["benchmarks"]
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn copies_are_exact_at_odd_sizes() {
    for size in ["1", "3", "257"] {
        let r = bench(&["--kernel", "copy,h2d,d2h", "--size", size], 0);
        assert_eq!(all_passed(&r, &format!("copies {size} MiB")), 3);
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn the_transformer_block_matches_the_reference() {
    for tokens in ["1", "17", "64", "300"] {
        let r = bench(&["--kernel", "inference", "--size", tokens], 0);
        assert!(all_passed(&r, &format!("inference {tokens} tokens")) >= 1);
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn corrupted_gpu_results_are_caught() {
    let o = accelprobe()
        .args([
            "bench",
            "--device",
            "cuda:0",
            "--format",
            "json",
            "--duration",
            "10ms",
            "--kernel",
            "gemm",
            "--dtype",
            "bf16",
            "--size",
            "512",
        ])
        .env("ACCELPROBE_INJECT_CORRUPTION", "gemm")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn every_gpu_runs_at_once_in_auto_mode() {
    let o = accelprobe()
        .args([
            "bench",
            "--format",
            "json",
            "--duration",
            "10ms",
            "--kernel",
            "gemm",
            "--dtype",
            "f32",
            "--size",
            "1024",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let gpus = r["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "cuda")
        .unwrap()["device_count"]
        .as_u64()
        .unwrap();
    let devices: std::collections::BTreeSet<&str> = r["benchmarks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices.len() as u64, gpus);
}
