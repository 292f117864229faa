//! The Kubernetes manifests: the files under `containers/k8s/` and what `accelprobe manifests`
//! generates for every catalog accelerator. They must parse, validate against the Kubernetes
//! schemas (PyPI `kubernetes-validate`, strict) and the Karpenter NodePool CRD schema kept in
//! `tests/fixtures/k8s/crd/`, and mean to `accelprobe verify` what the seed's files mean.
//!
//! Needs python3 with venv and pip and, on first run, PyPI: `kubernetes-validate` (~110 MB
//! installed, with `jsonschema` and `PyYAML`) goes into `<target>/k8s-venv`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{accelprobe, fakes, fixture, stdout};
use serde_json::Value;

const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, created and filled on first use.
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let venv = tmp.parent().unwrap_or(tmp).join("k8s-venv");
        let py = venv.join("bin/python");
        let ready = venv.join(".installed");
        if std::fs::read_to_string(&ready).ok().as_deref() == Some(KUBERNETES_VALIDATE) {
            return py;
        }
        let run = |cmd: &mut Command, what: &str| {
            let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                o.status.success(),
                "{what} failed; this test needs python3 with venv and pip, and PyPI:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(&py).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                KUBERNETES_VALIDATE,
            ]),
            "pip install kubernetes-validate",
        );
        std::fs::write(&ready, KUBERNETES_VALIDATE).unwrap();
        py
    })
}

/// Run the checker on `paths`: (passed, output).
fn check(paths: &[&Path]) -> (bool, String) {
    let o = Command::new(python())
        .arg(root().join("containers/check-manifests.py"))
        .arg("--crd")
        .arg(fixture("k8s/crd/karpenter.sh_nodepools.yaml"))
        .args(paths)
        .output()
        .expect("run check-manifests.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

fn manifests(args: &[&str]) -> std::process::Output {
    accelprobe().arg("manifests").args(args).output().unwrap()
}

/// Every accelerator the catalog can generate manifests for: (flag, label).
fn catalog_accelerators() -> Vec<(&'static str, String)> {
    let o = accelprobe()
        .args(["catalog", "--format", "json"])
        .output()
        .unwrap();
    let c: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let supported_models: Vec<&str> = c["families"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["supported"] != false)
        .filter_map(|f| f["model"].as_str())
        .collect();
    let mut out: Vec<(&'static str, String)> = c["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| supported_models.contains(&m["key"].as_str().unwrap_or("")))
        .filter_map(|m| {
            let flag = if m["vendor"] == "neuron" {
                "--neuron"
            } else {
                "--gpu"
            };
            Some((flag, m["label_name"].as_str()?.to_string()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn shipped_and_generated_manifests_validate_against_the_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let accelerators = catalog_accelerators();
    assert!(accelerators.len() >= 12, "{accelerators:?}");
    for (flag, label) in &accelerators {
        for extra in [
            vec![],
            vec![
                "--collector",
                "http://accelprobe-collector.accelprobe:8080/v1/reports",
            ],
            // Values that break YAML unless quoted: a double quote, and " #" (a comment).
            vec![
                "--collector",
                "http://c.example/v1/reports?tag=\"a\"",
                "--image",
                "registry.example/accelprobe:1 #x",
            ],
        ] {
            let o = manifests(&[&[*flag, label.as_str()][..], &extra].concat());
            assert_eq!(o.status.code(), Some(0), "{flag} {label}");
            if extra.len() > 2 {
                let text = stdout(&o);
                assert!(
                    text.contains(r#"value: "http://c.example/v1/reports?tag=\"a\"""#)
                        && text.contains(r#"image: "registry.example/accelprobe:1 #x""#),
                    "{text}"
                );
            }
            let file = dir.path().join(format!("{label}-{}.yaml", extra.len()));
            std::fs::write(&file, stdout(&o)).unwrap();
        }
    }
    let (ok, out) = check(&[&root().join("containers/k8s"), dir.path()]);
    assert!(ok, "{out}");
    let docs = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(docs >= 4 * accelerators.len() + 20, "{out}");

    // The checker itself can fail: a misspelt field, a wrong enum, a wrong type.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let generated = stdout(&manifests(&["--gpu", "l40s"]));
    std::fs::write(
        bad.join("typo.yaml"),
        generated
            .replace("startupTaints:", "startupTaint:")
            .replace("backoffLimit: 0", "backoffLimit: none"),
    )
    .unwrap();
    let (ok, out) = check(&[&bad]);
    assert!(!ok, "{out}");
    assert!(out.contains("'startupTaint' was unexpected"), "{out}");
    assert!(out.contains("backoffLimit"), "{out}");
}

/// `accelprobe verify --format json` of the seed's L40S report against `files`: the applied
/// requirements as (key, value) pairs.
fn requirements(files: &[PathBuf]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut cmd = accelprobe();
    fakes().serve(&mut cmd, "seed-l40s");
    let o = cmd.args(["report", "--format", "json"]).output().unwrap();
    std::fs::write(&report, stdout(&o)).unwrap();
    let mut cmd = accelprobe();
    cmd.args(["verify", "--format", "json", "--report"])
        .arg(&report);
    for f in files {
        cmd.arg("--nodepool").arg(f);
    }
    let o = cmd.output().unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "verify refused {files:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        v["warnings"].as_array().unwrap().is_empty(),
        "{files:?}: {}",
        v["warnings"]
    );
    v["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn generated_and_shipped_manifests_mean_what_the_seed_means() {
    let seed = requirements(&[
        fixture("k8s/seed-nodepool-gpu.yaml"),
        fixture("k8s/seed-pod.yaml"),
    ]);
    assert!(
        seed.contains(&("gpu.model".to_string(), "l40s".to_string())),
        "{seed:?}"
    );
    let shipped = requirements(&[
        root().join("containers/k8s/gpu/nodepool.yaml"),
        root().join("containers/k8s/gpu/job.yaml"),
    ]);
    assert_eq!(shipped, seed);
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("l40s.yaml");
    std::fs::write(&generated, stdout(&manifests(&["--gpu", "l40s"]))).unwrap();
    assert_eq!(requirements(&[generated]), seed);

    // With --count the NodePool pins the size and the Job asks for every GPU.
    let four = dir.path().join("l40s-4.yaml");
    std::fs::write(
        &four,
        stdout(&manifests(&["--gpu", "l40s", "--count", "4"])),
    )
    .unwrap();
    let r = requirements(&[four]);
    assert!(
        r.contains(&("gpu.count".to_string(), "exactly 4".to_string())),
        "{r:?}"
    );
}

#[test]
fn generated_job_matches_the_shipped_one_where_it_should() {
    let generated = stdout(&manifests(&["--gpu", "l40s"]));
    let shipped = std::fs::read_to_string(root().join("containers/k8s/gpu/job.yaml")).unwrap();
    // The same placement, tolerations, identity variables, image and security settings.
    for line in [
        "        eks.amazonaws.com/instance-gpu-name: l40s",
        "        eks.amazonaws.com/compute-type: auto",
        "        - key: accelprobe.io/unverified",
        "          image: \"accelprobe:0.1.0\"",
        "          args: [\"run\"]",
        "              value: \"gpu=l40s;count=1\"",
        "              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}",
        "            readOnlyRootFilesystem: true",
        "        runAsUser: 65532",
    ] {
        assert!(generated.contains(line), "generated lacks {line:?}");
        assert!(shipped.contains(line), "shipped lacks {line:?}");
    }
    let pool = std::fs::read_to_string(root().join("containers/k8s/gpu/nodepool.yaml")).unwrap();
    for text in [&generated, &pool] {
        assert!(text.contains(
            "startupTaints:\n        - key: accelprobe.io/unverified\n          effect: NoSchedule"
        ));
    }
}

/// Every image tag and version the shipped files name is this crate's version, so a release
/// that bumps `Cargo.toml` cannot leave a manifest pointing at the previous image.
#[test]
fn shipped_files_name_this_version_of_the_image() {
    let version = env!("CARGO_PKG_VERSION");
    let files = [
        "containers/Dockerfile",
        "containers/README.md",
        "containers/k8s/collector/deployment.yaml",
        "containers/k8s/gpu/job.yaml",
        "containers/k8s/fleet/daemonset.yaml",
        "containers/k8s/neuron/job.yaml",
        "README.md",
    ];
    let mut seen = 0;
    for file in files {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let tags = text.match_indices("accelprobe:").filter_map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                .unwrap_or(rest.len());
            let tag = &rest[..end];
            // Only version-like tags: `accelprobe:1` in prose or `accelprobe: error` are not.
            (tag.matches('.').count() == 2 && tag.starts_with(|c: char| c.is_ascii_digit()))
                .then_some(tag)
        });
        let args = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ARG VERSION="));
        for tag in tags.chain(args) {
            assert_eq!(tag, version, "{file} names version {tag}");
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} version mentions found");
}

#[test]
fn unknown_accelerators_and_impossible_counts_are_refused() {
    let o = manifests(&["--gpu", "voodoo5"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown GPU 'voodoo5'") && err.contains("l40s") && err.contains("h100"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let o = manifests(&["--neuron", "l40s"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inferentia2"));
    let o = manifests(&["--gpu", "l40s", "--count", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--count 3"));
    let o = manifests(&["--gpu", "l40s", "--neuron", "inferentia2"]);
    assert_eq!(o.status.code(), Some(2));
    let o = manifests(&[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--gpu") && err.contains("--neuron"),
        "names what is missing: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // In the catalog but not selectable by a NodePool: said so, not "unknown".
    let o = manifests(&["--gpu", "gb200"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is in the catalog") && !err.contains("unknown"),
        "{err}"
    );
    let o = manifests(&["--gpu", "l40s", "--collector", "ftp://x"]);
    assert_eq!(o.status.code(), Some(2));
}

/// The generated Neuron Job's expectation, run against a whole inf2.48xlarge (12 devices in
/// sysfs, whatever the pod was given), passes; with a count of the pod's one device it could
/// not.
#[test]
fn a_generated_neuron_job_expects_the_nodes_devices_not_the_pods() {
    let job = stdout(&manifests(&["--neuron", "inferentia2"]));
    let expect = job
        .lines()
        .skip_while(|l| !l.contains("ACCELPROBE_EXPECT"))
        .nth(1)
        .and_then(|l| l.split('"').nth(1))
        .expect("the Job sets ACCELPROBE_EXPECT")
        .to_string();
    assert_eq!(expect, "accelerator=inferentia2");
    let gpu_job = stdout(&manifests(&["--gpu", "l40s", "--count", "4"]));
    assert!(gpu_job.contains("value: \"gpu=l40s;count=4\""), "{gpu_job}");

    let o = accelprobe()
        .args(["report", "--format", "json", "--no-cuda"])
        .args(["--nvml-lib", "/nonexistent/libnvidia-ml.so.1"])
        .args(["--neuron-lib", "/nonexistent/libnrt.so.1", "--sysfs-root"])
        .arg(fixture("neuron/inf2.48xlarge"))
        .output()
        .unwrap();
    let mut report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    report["host"]["instance_type"] = "inf2.48xlarge".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    std::fs::write(&path, report.to_string()).unwrap();
    let verify = |expect: &str| {
        accelprobe()
            .args(["verify", "--format", "json", "--report"])
            .arg(&path)
            .args(["--expect", expect])
            .output()
            .unwrap()
    };
    let o = verify(&expect);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("12 Neuron device(s) expected, 12 found"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        verify("accelerator=inferentia2;count=1").status.code(),
        Some(1)
    );
}

/// The default install must be able to lift the startup taint: the shipped validation Jobs post
/// to the collector's Service with the token, and no applied file resets that token.
#[test]
fn shipped_jobs_report_to_the_shipped_collector() {
    let read = |rel: &str| std::fs::read_to_string(root().join(rel)).unwrap();
    let service = read("containers/k8s/collector/service.yaml");
    assert!(service.contains("name: accelprobe-collector") && service.contains("port: 8080"));
    for job in [
        "containers/k8s/gpu/job.yaml",
        "containers/k8s/neuron/job.yaml",
    ] {
        let text = read(job);
        for line in [
            "value: \"http://accelprobe-collector.accelprobe:8080/v1/reports\"",
            "value: /var/run/accelprobe/token",
            "secretName: accelprobe-token",
        ] {
            assert!(text.contains(line), "{job} lacks {line:?}");
        }
    }
    let kustomization = read("containers/k8s/collector/kustomization.yaml");
    for entry in kustomization
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
    {
        assert!(
            root().join("containers/k8s/collector").join(entry).exists(),
            "{entry} is listed but missing"
        );
        assert_ne!(entry, "secret.yaml", "re-applying would reset the token");
    }
    assert!(read("containers/k8s/collector/pvc.yaml").contains("storageClassName: accelprobe-ebs"));
}
