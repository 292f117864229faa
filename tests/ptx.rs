//! The embedded PTX is what its CUDA sources compile to, it assembles for every GPU
//! architecture it claims, and the kernels compute the right results.
//!
//! - `ptx_is_fresh_and_assembles`: `python3 kernels/gen-ptx.py --check` (NVRTC 12.0 from the
//!   PyPI wheel recompiles every `kernels/*.cu` and compares with `kernels/ptx/`), then
//!   `python3 kernels/check-ptxas.py` (ptxas 12.0 from the PyPI wheel assembles every PTX for
//!   every architecture in `kernels/manifest.json`, with no spills).
//! - `kernels_match_reference_in_cpu_emulator`: `python3 kernels/emu/run.py` builds the
//!   kernels' own CUDA C++ against a CPU emulator of the few PTX instructions they use (g++,
//!   AddressSanitizer) and checks every kernel against a double-precision reference at
//!   sizes that are not multiples of the tiles.
//!
//! Needs python3 with pip and, on first run, PyPI (two wheels, ~43 MB download, cached in
//! `$ACCELPROBE_CUDA_TOOLS` or `target/cuda-tools`), and g++. Missing tools fail the test
//! with a message; they never make it pass silently.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require_python() {
    let ok = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with pip is required to check the PTX (kernels/gen-ptx.py, kernels/check-ptxas.py \
         install NVRTC and ptxas from PyPI): `python3 -m pip --version` failed. Install python3 and \
         python3-pip; this test does not skip."
    );
}

/// Runs `python3 <script> <args>` in the repository root; panics with its whole output on failure.
fn run_script(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("could not start python3 {script}: {e}"));
    let text = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`python3 {script} {}` failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    text
}

#[test]
fn ptx_is_fresh_and_assembles() {
    require_python();
    let fresh = run_script("kernels/gen-ptx.py", &["--check"]);
    println!("{fresh}");
    let ptxas = run_script("kernels/check-ptxas.py", &[]);
    println!("{ptxas}");
    assert!(
        ptxas.contains("with no spills"),
        "unexpected check-ptxas output:\n{ptxas}"
    );
}

#[test]
fn kernels_match_reference_in_cpu_emulator() {
    let gxx = Command::new(std::env::var("CXX").unwrap_or_else(|_| "g++".into()))
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(gxx, "g++ (12 or newer) is required to run the kernel emulator (kernels/emu/run.py); this test does not skip");
    let out = run_script("kernels/emu/run.py", &[]);
    println!("{out}");
    assert!(
        out.contains(" 0 failed"),
        "unexpected emulator output:\n{out}"
    );
}
