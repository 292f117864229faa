//! Helpers shared by the integration tests (`mod common;`): the fake NVML and fake CUDA
//! driver libraries, the fixtures they serve, and the `accelprobe` binary with a clean
//! environment.
//!
//! [`fakes`] builds both fake crates once per test process with
//! `cargo build --release -p accelprobe-fake-nvml -p accelprobe-fake-cuda --target-dir <target>/fakes`.
//! The separate target directory keeps the inner cargo off the lock the outer `cargo test`
//! holds; test binaries that run at the same time queue on cargo's own lock of
//! `<target>/fakes`. The libraries are then copied under their sonames into
//! `<target>/fakes/libs-<pid>/` (a directory per test process, so no process overwrites a
//! library another one has loaded; directories of processes that have exited are removed).

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The report the fake NVML and the fake CUDA driver serve.
pub const FIXTURE_ENV: &str = "ACCELPROBE_FAKE_NVML_FIXTURE";
/// Fake NVML errors: `function[:device]=code,...`.
pub const NVML_ERRORS_ENV: &str = "ACCELPROBE_FAKE_NVML_ERRORS";
/// Fake NVML hangs: `function[:device]=milliseconds,...`.
pub const NVML_HANG_ENV: &str = "ACCELPROBE_FAKE_NVML_HANG";
/// Fake NVML lost devices: `index,...`.
pub const NVML_LOST_ENV: &str = "ACCELPROBE_FAKE_NVML_LOST";
/// File the fake NVML appends each call to (`function` or `function:device`).
pub const NVML_CALL_LOG_ENV: &str = "ACCELPROBE_FAKE_NVML_CALL_LOG";
/// Fake CUDA errors: `function[:ordinal]=code,...`.
pub const CUDA_ERRORS_ENV: &str = "ACCELPROBE_FAKE_CUDA_ERRORS";
/// Fake CUDA hangs: `function[:ordinal]=milliseconds,...`.
pub const CUDA_HANG_ENV: &str = "ACCELPROBE_FAKE_CUDA_HANG";
/// File the fake CUDA driver appends each call to.
pub const CUDA_CALL_LOG_ENV: &str = "ACCELPROBE_FAKE_CUDA_CALL_LOG";

/// The built fakes.
#[derive(Debug)]
pub struct Fakes {
    /// Full path of the fake `libnvidia-ml.so.1`.
    pub nvml_lib: PathBuf,
    /// Directory holding only the fake NVML.
    pub nvml_dir: PathBuf,
    /// Full path of the fake `libcuda.so` (`libcuda.so.1` sits beside it).
    pub cuda_lib: PathBuf,
    /// Directory holding only the fake CUDA driver: put it on `LD_LIBRARY_PATH`.
    pub cuda_dir: PathBuf,
}

impl Fakes {
    /// `tests/fixtures/nvml/<name>.json`.
    pub fn fixture(&self, name: &str) -> PathBuf {
        fixture(&format!("nvml/{name}.json"))
    }

    /// Point `cmd` at both fakes serving the fixture `name`: `ACCELPROBE_NVML_LIB`, the
    /// fixture variable, and `LD_LIBRARY_PATH` with the fake CUDA driver.
    pub fn serve<'a>(&self, cmd: &'a mut Command, name: &str) -> &'a mut Command {
        cmd.env("ACCELPROBE_NVML_LIB", &self.nvml_lib)
            .env(FIXTURE_ENV, self.fixture(name))
            .env("LD_LIBRARY_PATH", &self.cuda_dir)
    }
}

/// The fakes, built on first use in this process.
pub fn fakes() -> &'static Fakes {
    static FAKES: OnceLock<Fakes> = OnceLock::new();
    FAKES.get_or_init(build_fakes)
}

/// The `accelprobe` binary (or `$ACCELPROBE_BIN`) with no `ACCELPROBE_*` variable, no
/// `LD_LIBRARY_PATH` and no downward-API variables (`NODE_NAME`, `POD_NAME`, `POD_NAMESPACE`)
/// from the test's environment. On a GPU machine the driver or cuBLAS may only be found
/// through `LD_LIBRARY_PATH`: `ACCELPROBE_KEEP_LD_LIBRARY_PATH=1` keeps it.
pub fn accelprobe() -> Command {
    let keep_ld = std::env::var_os("ACCELPROBE_KEEP_LD_LIBRARY_PATH").is_some();
    // ACCELPROBE_BIN lets prebuilt test executables run on another machine (the GPU check).
    let bin = std::env::var_os("ACCELPROBE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_accelprobe")));
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("ACCELPROBE_")) {
            cmd.env_remove(&key);
        }
    }
    for key in ["NODE_NAME", "POD_NAME", "POD_NAMESPACE"] {
        cmd.env_remove(key);
    }
    match (keep_ld, std::env::var_os("LD_LIBRARY_PATH")) {
        (true, Some(v)) => {
            cmd.env("LD_LIBRARY_PATH", v);
        }
        _ => {
            cmd.env_remove("LD_LIBRARY_PATH");
        }
    }
    cmd
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>/fakes`, where `<target>` is the target directory this test was built in.
fn fakes_target() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`, whatever configured the target directory.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("fakes")
}

/// Build `packages` of the workspace into `<target>/fakes` (optimised, so that benchmarks
/// through the fakes measure accelprobe, not the fake's fixture parsing), and remove the
/// copies left by test processes that are gone. Returns `<target>/fakes`.
fn build_release(packages: &[&str], what: &str) -> PathBuf {
    let target = fakes_target();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace()).args(["build", "--release"]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let output = cmd
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap_or_else(|e| panic!("could not run {cargo:?} to build {what}: {e}"));
    if !output.status.success() {
        panic!(
            "building {what} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    remove_stale_lib_dirs(&target);
    target
}

fn build_fakes() -> Fakes {
    let target = build_release(
        &["accelprobe-fake-nvml", "accelprobe-fake-cuda"],
        "the fake NVML and CUDA libraries",
    );
    let libs = target.join(format!("libs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&libs);
    let built = target.join("release");
    let nvml_dir = libs.join("nvml");
    let cuda_dir = libs.join("cuda");
    let nvml_lib = nvml_dir.join("libnvidia-ml.so.1");
    let cuda_lib = cuda_dir.join("libcuda.so");
    copy(&built.join("libnvidia_ml.so"), &nvml_lib);
    copy(&built.join("libcuda.so"), &cuda_lib);
    copy(&built.join("libcuda.so"), &cuda_dir.join("libcuda.so.1"));
    Fakes {
        nvml_lib,
        nvml_dir,
        cuda_lib,
        cuda_dir,
    }
}

fn copy(from: &Path, to: &Path) {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("could not create {}: {e}", dir.display()));
    }
    std::fs::copy(from, to).unwrap_or_else(|e| {
        panic!(
            "could not copy the fake library {} to {}: {e}",
            from.display(),
            to.display()
        )
    });
}

/// Remove `libs-<pid>` and `nrt-<pid>` directories whose process no longer runs.
fn remove_stale_lib_dirs(target: &Path) {
    let Ok(entries) = std::fs::read_dir(target) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("libs-").or_else(|| n.strip_prefix("nrt-")))
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A copy of the shared library `lib`, written as `out`, whose export `symbol` is renamed
/// (its last letter becomes `X`), as an older or broken build of that library would lack it.
pub fn with_symbol_renamed(lib: &Path, symbol: &str, out: &Path) -> PathBuf {
    let mut bytes = std::fs::read(lib).unwrap();
    let needle = format!("{symbol}\0");
    let needle = needle.as_bytes();
    let mut renamed = 0;
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i + needle.len() - 2] = b'X';
            renamed += 1;
        }
        i += 1;
    }
    assert!(renamed > 0, "{symbol} not found in {}", lib.display());
    std::fs::write(out, bytes).unwrap();
    out.to_path_buf()
}

/// A test fixture: `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(rel)
}

/// A finished command's stdout as text.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A finished command's stderr as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running `accelprobe serve`, killed when dropped.
pub struct Collector {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Everything the collector wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

/// An HTTP agent that returns 4xx and 5xx answers instead of errors.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

impl Collector {
    /// Start `accelprobe serve --listen 127.0.0.1:0 ARGS` and wait for its "listening on" line.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Collector {
        Collector::start_with_env(args, &[])
    }

    /// [`Collector::start`] with extra environment variables.
    pub fn start_with_env<S: AsRef<std::ffi::OsStr>>(
        args: &[S],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Collector {
        use std::io::BufRead;
        let mut cmd = accelprobe();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start accelprobe serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on ".len()..];
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(url);
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let url = match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the collector did not start: {}", log.lock().unwrap());
            }
        };
        Collector { child, url, log }
    }

    /// GET a path: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut r = http()
            .get(&format!("{}{path}", self.url))
            .call()
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// POST bytes to a path with an optional bearer token: (status, body).
    pub fn post(&self, path: &str, body: &[u8], token: Option<&str>) -> (u16, String) {
        let mut req = http()
            .post(&format!("{}{path}", self.url))
            .header("Content-Type", "application/json");
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut r = req.send(body).expect("POST");
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// Stop with SIGTERM and wait; the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().expect("wait for the collector")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fake libnrt configuration (JSON: version, family, size, total_cores, visible_cores).
pub const NRT_CONFIG_ENV: &str = "ACCELPROBE_FAKE_NRT_CONFIG";
/// Fake libnrt errors: `function=code,...`.
pub const NRT_ERRORS_ENV: &str = "ACCELPROBE_FAKE_NRT_ERRORS";
/// Fake libnrt hangs: `function=milliseconds,...`.
pub const NRT_HANG_ENV: &str = "ACCELPROBE_FAKE_NRT_HANG";
/// Fake libnrt bit flips: `nrt_tensor_write,nrt_tensor_read`.
pub const NRT_CORRUPT_ENV: &str = "ACCELPROBE_FAKE_NRT_CORRUPT";
pub const NRT_STALE_ENV: &str = "ACCELPROBE_FAKE_NRT_STALE";

/// `accelprobe bench --no-cuda --format json` on the sysfs tree `root` with the fake libnrt
/// configured by `config` (NVML kept out), plus `args` and `env`.
pub fn neuron_bench(
    root: &Path,
    config: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    neuron_bench_with(root, fake_nrt(), config, args, env)
}

/// [`neuron_bench`] with the Neuron runtime library `lib` instead of the fake.
pub fn neuron_bench_with(
    root: &Path,
    lib: &Path,
    config: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = accelprobe();
    cmd.args([
        "bench",
        "--no-cuda",
        "--nvml-lib",
        "/nonexistent/libnvidia-ml.so.1",
        "--format",
        "json",
    ])
    .arg("--sysfs-root")
    .arg(root)
    .arg("--neuron-lib")
    .arg(lib)
    .args(args)
    .env(NRT_CONFIG_ENV, config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run accelprobe bench")
}

/// The `benchmarks[]` of a bench report on stdout, after checking nothing panicked.
pub fn bench_benchmarks(o: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(!stderr(o).contains("panicked"), "stderr: {}", stderr(o));
    let r: serde_json::Value = serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)));
    r["benchmarks"].as_array().cloned().unwrap_or_default()
}

/// The fake Neuron runtime, built on first use in this process (like [`fakes`]): the full
/// path of a copy named `libnrt.so.1` in `<target>/fakes/nrt-<pid>/` (not under `libs-<pid>`,
/// which [`fakes`] recreates).
pub fn fake_nrt() -> &'static Path {
    static NRT: OnceLock<PathBuf> = OnceLock::new();
    NRT.get_or_init(|| {
        let target = build_release(&["accelprobe-fake-nrt"], "the fake libnrt");
        let lib = target
            .join(format!("nrt-{}", std::process::id()))
            .join("libnrt.so.1");
        copy(&target.join("release/libnrt.so"), &lib);
        lib
    })
    .as_path()
}
