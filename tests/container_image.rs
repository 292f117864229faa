//! The container image (`containers/`).
//!
//! - `dockerfile_*` read `containers/Dockerfile` and its ignore file: a glibc non-root runtime
//!   with no CUDA, the entrypoint and command the README documents, and a build context that
//!   carries everything the build needs (workspace members, benches, every file the sources
//!   `include_str!`). No tools needed.
//! - `daemonless_image_builds_and_runs` runs `containers/build-image.sh` (buildah, FROM scratch,
//!   no daemon) with this test's `accelprobe` (a debug build: the script strips a copy), the
//!   fake NVML and CUDA libraries and the seed's L40S fixture. The script checks the image by
//!   running it; this test reads the OCI archive it exports on its own and compares the image
//!   configuration with the Dockerfile. It needs root (CI runs as root): buildah's storage and
//!   the chroot need it, and the script installs buildah with apt-get when it is missing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// One Dockerfile instruction: keyword (upper case) and the rest of the line.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The Dockerfile's stages (instructions after each `FROM`, the `FROM` itself first), with
/// comments dropped and continuation lines joined.
fn stages() -> Vec<Vec<Instruction>> {
    let text = read("containers/Dockerfile");
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (pending.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let line = std::mem::take(&mut pending);
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let ins = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        };
        if ins.keyword == "FROM" {
            stages.push(vec![ins]);
        } else if let Some(stage) = stages.last_mut() {
            stage.push(ins);
        }
    }
    stages
}

fn last<'a>(stage: &'a [Instruction], keyword: &str) -> Option<&'a str> {
    stage
        .iter()
        .rev()
        .find(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
}

/// The value of a global `ARG NAME=default` (before the first stage).
fn global_arg(name: &str) -> Option<String> {
    let text = read("containers/Dockerfile");
    text.lines()
        .take_while(|l| !l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .filter_map(|l| l.trim().strip_prefix("ARG "))
        .find_map(|a| a.strip_prefix(&format!("{name}=")).map(str::to_string))
}

/// The image the final stage starts from, with a global ARG default resolved.
fn runtime_base(final_stage: &[Instruction]) -> String {
    let from = final_stage[0].args.split_whitespace().next().unwrap_or("");
    match from.strip_prefix("${").and_then(|s| s.strip_suffix('}')) {
        Some(arg) => global_arg(arg).unwrap_or_else(|| panic!("ARG {arg} has no default")),
        None => from.to_string(),
    }
}

fn json_array(text: &str) -> Vec<String> {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("not an exec-form JSON array: {text}: {e}"))
}

#[test]
fn dockerfile_runtime_is_glibc_nonroot_without_cuda() {
    let stages = stages();
    assert!(stages.len() >= 2, "the Dockerfile should be multi-stage");
    let build = &stages[0];
    assert!(
        build
            .iter()
            .any(|i| i.keyword == "RUN" && i.args.contains("cargo build --release --locked")),
        "the build stage should run `cargo build --release --locked`"
    );
    let runtime = stages.last().unwrap();
    let base = runtime_base(runtime);
    for bad in [
        "alpine",
        "musl",
        "scratch",
        "busybox",
        "nvidia/cuda",
        "cuda",
    ] {
        assert!(
            !base.contains(bad),
            "runtime base {base} should be glibc-based without CUDA (found {bad})"
        );
    }
    assert!(
        base.contains("distroless/cc") || base.contains("debian") || base.contains("ubuntu"),
        "runtime base {base} should be a glibc image (distroless cc or Debian)"
    );

    let user = last(runtime, "USER").expect("the final stage should set USER");
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} should be numeric (runAsNonRoot checks it)"));
    assert!(uid != 0 && gid != "0", "USER {user} should not be root");
    assert_eq!(
        json_array(last(runtime, "ENTRYPOINT").expect("ENTRYPOINT")),
        ["/usr/local/bin/accelprobe"]
    );
    assert_eq!(json_array(last(runtime, "CMD").expect("CMD")), ["run"]);
    assert!(
        runtime
            .iter()
            .all(|i| i.keyword != "RUN" && i.keyword != "ADD"),
        "the final stage should not RUN or ADD: the daemonless build reproduces everything else"
    );
    let labels: String = runtime
        .iter()
        .filter(|i| i.keyword == "LABEL")
        .map(|i| i.args.as_str())
        .collect();
    for key in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.licenses",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
    ] {
        assert!(
            labels.contains(key),
            "the image should carry the label {key}"
        );
    }
    assert!(
        runtime
            .iter()
            .any(|i| i.keyword == "COPY" && i.args.ends_with(" /usr/local/bin/accelprobe")),
        "the final stage should copy the binary to /usr/local/bin/accelprobe"
    );
}

/// Sources of the build stage's `COPY` instructions (not `--from`).
fn build_context_sources() -> Vec<String> {
    let mut sources = Vec::new();
    for stage in stages() {
        for ins in stage.iter().filter(|i| i.keyword == "COPY") {
            if ins.args.contains("--from=") {
                continue;
            }
            let words: Vec<&str> = ins
                .args
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            sources.extend(
                words[..words.len() - 1]
                    .iter()
                    .map(|s| s.trim_end_matches('/').to_string()),
            );
        }
    }
    sources
}

fn covered(path: &str, sources: &[String]) -> bool {
    sources
        .iter()
        .any(|s| path == s || path.starts_with(&format!("{s}/")))
}

#[test]
fn dockerfile_build_context_has_what_cargo_needs() {
    let sources = build_context_sources();
    let ignore = read("containers/Dockerfile.dockerignore");
    let included: Vec<String> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|s| s.trim_end_matches('/').to_string())
        .collect();
    for src in &sources {
        assert!(
            repo().join(src).exists(),
            "the Dockerfile copies {src}, which does not exist"
        );
        assert!(
            covered(src, &included),
            "containers/Dockerfile.dockerignore excludes {src}, which the Dockerfile copies"
        );
    }

    // Every workspace member, every bench target and every file the sources compile in.
    let manifest = read("Cargo.toml");
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members"))
        .expect("a [workspace] members line");
    needed.extend(
        members
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|m| *m != ".")
            .map(str::to_string),
    );
    if manifest.contains("[[bench]]") {
        needed.push("benches".into());
    }
    let mut files = vec![repo().join("src")];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap().flatten() {
                files.push(entry.path());
            }
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for part in text
            .split("include_str!(\"")
            .skip(1)
            .chain(text.split("include_bytes!(\"").skip(1))
        {
            let rel = part.split('"').next().unwrap();
            let mut abs = path.parent().unwrap().to_path_buf();
            for comp in Path::new(rel).components() {
                match comp {
                    std::path::Component::ParentDir => {
                        abs.pop();
                    }
                    std::path::Component::Normal(c) => abs.push(c),
                    _ => {}
                }
            }
            let rel = abs.strip_prefix(repo()).unwrap_or(&abs);
            needed.push(rel.to_string_lossy().into_owned());
        }
    }
    for path in needed {
        assert!(
            covered(&path, &sources),
            "the Docker build needs {path}, but containers/Dockerfile does not copy it"
        );
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// `tar ARGS` and its stdout; panics on failure.
fn tar(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = Command::new("tar").args(args).output().expect("run tar");
    assert!(
        out.status.success(),
        "tar {args:?} failed: {}",
        common::stderr(&out)
    );
    out.stdout
}

fn digest_path(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    dir.join("blobs/sha256").join(hex)
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn daemonless_image_builds_and_runs() {
    if !is_root() {
        if !on_path("buildah") {
            panic!(
                "this test needs buildah, and containers/build-image.sh can only install it as \
                 root: run the tests as root (CI does), or apt-get install buildah and run as root"
            );
        }
        panic!(
            "this test needs root: containers/build-image.sh uses buildah's vfs storage and a \
             chroot (CI runs as root)"
        );
    }
    let fakes = common::fakes();
    let out = tempfile::tempdir().expect("temp dir");
    let tmp = tempfile::tempdir().expect("temp dir");
    let shared_before: Vec<bool> = ["/var/lib/containers", "/run/containers"]
        .iter()
        .map(|d| Path::new(d).exists())
        .collect();

    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("containers/build-image.sh"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_accelprobe"))
        .arg("--fake-nvml")
        .arg(&fakes.nvml_lib)
        .arg("--fake-cuda")
        .arg(fakes.cuda_dir.join("libcuda.so.1"))
        .arg("--fixture")
        .arg(fakes.fixture("seed-l40s"))
        .arg("--out")
        .arg(out.path())
        .args(["--runs", "3"])
        .env("TMPDIR", tmp.path());
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("ACCELPROBE_")) {
            cmd.env_remove(&key);
        }
    }
    let output = cmd.output().expect("run containers/build-image.sh");
    let stdout = common::stdout(&output);
    let stderr = common::stderr(&output);
    assert!(
        output.status.success(),
        "containers/build-image.sh failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for expected in [
        "check report: ok, NVML loaded from /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1, 1 GPU(s): NVIDIA L40S",
        "check run --no-bench: ok, one JSON line with a verdict, passed=true (exit 0)",
        "written by uid 65532",
        "start-to-verdict (run --no-bench, median of 3):",
        "image size (buildah images):",
        "binary stripped copy of",
    ] {
        let expected = if cfg!(target_arch = "aarch64") {
            expected.replace("x86_64", "aarch64")
        } else {
            expected.to_string()
        };
        assert!(
            stdout.contains(&expected),
            "the script's output lacks {expected:?}:\n{stdout}\n{stderr}"
        );
    }

    // It cleaned up: its work directory (storage, rootfs) and what buildah creates outside it.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "the script left {left:?} in TMPDIR");
    for (dir, existed) in ["/var/lib/containers", "/run/containers"]
        .iter()
        .zip(shared_before)
    {
        assert!(
            existed || !Path::new(dir).exists(),
            "the script left {dir} behind"
        );
    }

    // The archive, read independently: index -> manifest -> config and the one layer.
    let archive = out.path().join("accelprobe.oci.tar");
    let oci = out.path().join("oci");
    std::fs::create_dir_all(&oci).unwrap();
    tar(&[
        "-xf".as_ref(),
        archive.as_os_str(),
        "-C".as_ref(),
        oci.as_os_str(),
    ]);
    let index = read_json(&oci.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("a manifest");
    let manifest = read_json(&digest_path(&oci, manifest_digest));
    let config = read_json(&digest_path(
        &oci,
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest"),
    ));
    let runtime = stages().pop().unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], last(&runtime, "USER").unwrap());
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(json_array(last(&runtime, "ENTRYPOINT").unwrap()))
    );
    assert_eq!(
        c["Cmd"],
        serde_json::json!(json_array(last(&runtime, "CMD").unwrap()))
    );
    assert_eq!(c["WorkingDir"], last(&runtime, "WORKDIR").unwrap());
    assert_eq!(config["os"], "linux");
    let labels: BTreeMap<String, String> =
        serde_json::from_value(c["Labels"].clone()).expect("labels");
    assert_eq!(labels["org.opencontainers.image.title"], "accelprobe");
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let env: Vec<&str> = c["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        env.iter()
            .any(|e| e.starts_with("PATH=") && e.contains("/usr/local/bin")),
        "PATH should reach /usr/local/bin: {env:?}"
    );

    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    let layer = digest_path(&oci, layers[0]["digest"].as_str().unwrap());
    let listing = String::from_utf8(tar(&[
        "-tvf".as_ref(),
        layer.as_os_str(),
        "--numeric-owner".as_ref(),
    ]))
    .unwrap();
    // `tar -tv` lines: mode owner size date time name [-> target]; names may start with
    // "./", directories end with "/".
    let entries: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| Some((l.split_whitespace().nth(5)?, l)))
        .collect();
    let member = |name: &str| {
        entries
            .iter()
            .find(|(n, _)| n.trim_start_matches("./").trim_end_matches('/') == name)
            .copied()
    };
    let entry = |name: &str| member(name).map(|(_, line)| line);
    let binary = entry("usr/local/bin/accelprobe").expect("the binary in the layer");
    let size: u64 = binary.split_whitespace().nth(2).unwrap().parse().unwrap();
    let original = std::fs::metadata(env!("CARGO_BIN_EXE_accelprobe"))
        .unwrap()
        .len();
    assert!(
        size < original,
        "the image's binary ({size} bytes) should be a stripped copy of {original} bytes"
    );
    assert!(binary.starts_with("-rwxr-xr-x 0/0 "), "{binary}");
    for name in [
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "usr/lib/x86_64-linux-gnu/libm.so.6",
        "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "lib64",
        "lib",
        "etc/passwd",
        "etc/group",
        "tmp",
        "home/nonroot",
    ] {
        if cfg!(target_arch = "x86_64") || !name.contains("x86") {
            assert!(entry(name).is_some(), "the layer lacks {name}:\n{listing}");
        }
    }
    assert!(entry("tmp").unwrap().starts_with("drwxrwxrwt 0/0 "));
    assert!(entry("home/nonroot").unwrap().contains(" 65532/65532 "));
    for forbidden in ["libcuda", "libnvidia", "libcudart", "libcublas", "libnvrtc"] {
        assert!(
            !listing.contains(forbidden),
            "the image should not ship {forbidden}:\n{listing}"
        );
    }
    let passwd = String::from_utf8(tar(&[
        "-xOf".as_ref(),
        layer.as_os_str(),
        member("etc/passwd").unwrap().0.as_ref(),
    ]))
    .unwrap();
    assert!(
        passwd.contains("nonroot:x:65532:65532:"),
        "/etc/passwd: {passwd}"
    );
}
