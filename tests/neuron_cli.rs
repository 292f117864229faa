//! `accelprobe report` on AWS Neuron nodes, end to end: the built binary reading the fixture
//! sysfs trees in tests/fixtures/neuron (`--sysfs-root`) and loading the fake libnrt
//! (tests/fake-nrt) through the real dynamic-loading code.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{accelprobe, fake_nrt, fixture, stderr, stdout, NRT_CONFIG_ENV, NRT_ERRORS_ENV};
use serde_json::Value;

/// (fixture, devices present, cores per device, device name, fake libnrt configuration)
const FIXTURES: &[(&str, usize, u64, &str, &str)] = &[
    (
        "inf2.xlarge",
        1,
        2,
        "Inferentia2",
        r#"{"version":"2.22.14.0","family":4,"size":0,"total_cores":2}"#,
    ),
    (
        "inf2.48xlarge",
        12,
        2,
        "Inferentia2",
        r#"{"version":"2.22.14.0","family":4,"size":7,"total_cores":24}"#,
    ),
    (
        "trn1.32xlarge",
        16,
        2,
        "Trainium1",
        r#"{"version":"2.22.14.0","family":2,"size":6,"total_cores":32,"visible_cores":8}"#,
    ),
    (
        "trn1-faulty",
        15,
        2,
        "Trainium1",
        r#"{"version":"2.22.14.0","family":2,"size":6,"total_cores":30}"#,
    ),
];

const TRN1: &str = r#"{"version":"2.22.14.0","family":2,"size":6,"total_cores":32}"#;

fn root(name: &str) -> PathBuf {
    fixture(&format!("neuron/{name}"))
}

/// `accelprobe report --no-cuda --nvml-lib <nothing> --sysfs-root ROOT ARGS`.
fn report(sysfs: &Path, lib: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = accelprobe();
    cmd.args([
        "report",
        "--no-cuda",
        "--nvml-lib",
        "/nonexistent/libnvidia-ml.so.1",
    ])
    .arg("--sysfs-root")
    .arg(sysfs);
    if let Some(lib) = lib {
        cmd.arg("--neuron-lib").arg(lib);
    }
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run accelprobe")
}

fn json(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    assert!(!stderr(o).contains("panicked"), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("report is JSON")
}

fn neuron_runtime(r: &Value) -> &Value {
    r["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rt| rt["name"] == "neuron")
        .unwrap_or_else(|| panic!("no neuron runtime: {}", r["runtimes"]))
}

fn errors_of<'a>(r: &'a Value, call: &str) -> Vec<&'a Value> {
    r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["call"] == call)
        .collect()
}

#[test]
fn every_fixture_is_inventoried_from_sysfs_without_the_runtime() {
    for &(name, count, cores, dev_name, _) in FIXTURES {
        let r = json(&report(
            &root(name),
            Some(Path::new("/nonexistent/libnrt.so.1")),
            &["--format", "json"],
            &[],
        ));
        let devices = r["devices"].as_array().unwrap();
        assert_eq!(devices.len(), count, "{name}");
        for d in devices {
            assert_eq!(d["vendor"], "neuron", "{name}");
            assert_eq!(d["name"], dev_name, "{name}");
            assert!(
                d["serial"].as_str().is_some_and(|s| s.len() == 16),
                "{name}"
            );
            let n = &d["neuron"];
            assert_eq!(n["core_count"], cores, "{name}");
            assert_eq!(n["cores"].as_array().unwrap().len() as u64, cores, "{name}");
            assert_eq!(n["cores"][0]["arch_type"], "NCv2", "{name}");
            assert_eq!(n["sysfs_layout"], "legacy", "{name}");
            assert_eq!(
                n["instance_type"],
                if dev_name == "Trainium1" {
                    "Trn1"
                } else {
                    "Inf2"
                }
            );
            // Memory size is not in sysfs: null with the reason, never 0.
            assert!(d["memory_total_mib"].is_null(), "{name}");
            assert!(d["unavailable"]["memory_total_mib"]
                .as_str()
                .unwrap()
                .contains("not exposed in sysfs"));
            assert!(d["memory_used_mib"].as_u64().is_some(), "{name}");
            every_null_is_explained(d, name);
        }
        let rt = neuron_runtime(&r);
        assert_eq!(rt["status"], "absent", "{name}");
        assert_eq!(rt["driver_version"], "2.24.7.0", "{name}");
        assert_eq!(rt["device_count"], count as u64, "{name}");
        assert_eq!(rt["tried"][0]["path"], "/nonexistent/libnrt.so.1");
        assert!(rt["tried"][0]["error"].is_string());
        assert!(
            rt["error"].as_str().unwrap().contains("sysfs only"),
            "{name}"
        );
        let errs: Vec<&Value> = r["errors"].as_array().unwrap().iter().collect();
        assert!(errs.is_empty(), "{name}: {errs:?}");
    }
}

fn every_null_is_explained(d: &Value, name: &str) {
    fn walk(v: &Value, path: String, out: &mut Vec<String>) {
        match v {
            Value::Null => out.push(path),
            Value::Object(m) => {
                for (k, v) in m {
                    if k != "unavailable" {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        walk(v, p, out);
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, format!("{path}.{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut nulls = Vec::new();
    walk(d, String::new(), &mut nulls);
    let why = d["unavailable"].as_object().unwrap();
    for p in nulls {
        assert!(
            why.keys()
                .any(|k| p == *k || p.starts_with(&format!("{k}."))),
            "{name}: device {} field {p} is null without a reason",
            d["index"]
        );
    }
}

#[test]
fn every_fixture_with_the_fake_runtime() {
    let lib = fake_nrt();
    for &(name, count, _, _, config) in FIXTURES {
        let r = json(&report(
            &root(name),
            Some(lib),
            &["--format", "json"],
            &[(NRT_CONFIG_ENV, config)],
        ));
        assert_eq!(r["devices"].as_array().unwrap().len(), count, "{name}");
        let rt = neuron_runtime(&r);
        assert_eq!(rt["status"], "loaded", "{name}: {rt}");
        assert_eq!(rt["library"], lib.to_str().unwrap());
        assert_eq!(rt["version"], "2.22.14.0");
        assert_eq!(rt["driver_version"], "2.24.7.0");
        let cfg: Value = serde_json::from_str(config).unwrap();
        let n = &rt["neuron"];
        assert_eq!(n["cores_total"], cfg["total_cores"], "{name}");
        let visible = cfg.get("visible_cores").unwrap_or(&cfg["total_cores"]);
        assert_eq!(&n["cores_visible"], visible, "{name}");
        let family = if name.starts_with("trn1") {
            "TRN1"
        } else {
            "INF2"
        };
        assert_eq!(n["instance_family"], family, "{name}");
        let size = name.split_once('.').map_or("32xlarge", |(_, s)| s);
        assert_eq!(n["instance_size"], size, "{name}");
        assert_eq!(r["errors"], Value::Array(vec![]), "{name}");

        let table = report(&root(name), Some(lib), &[], &[(NRT_CONFIG_ENV, config)]);
        assert_eq!(table.status.code(), Some(0));
        let t = stdout(&table);
        assert!(t.contains("| NEURON | NAME"), "{t}");
        assert!(t.contains("Neuron Runtime: 2.22.14.0"), "{t}");
        assert!(!t.contains("No accelerator found"), "{t}");
        assert!(t.contains(&format!("{family} {size}")), "{t}");
        let boxed: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with('|') || l.starts_with('+'))
            .collect();
        assert_eq!(boxed.len(), 7 + count, "{t}");
        for l in boxed {
            assert_eq!(l.chars().count(), 89, "{name}: {l:?}");
        }
    }
}

#[test]
fn topology_and_pci_addresses() {
    let r = json(&report(
        &root("trn1.32xlarge"),
        None,
        &["--format", "json"],
        &[],
    ));
    assert_eq!(r["devices"].as_array().unwrap().len(), 16);
    for d in r["devices"].as_array().unwrap() {
        let i = d["index"].as_u64().unwrap();
        let c: Vec<u64> = d["neuron"]["connected_devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(c.len(), 4, "trn1 torus: device {i} {c:?}");
        assert!(!c.contains(&i));
        assert_eq!(d["pci_bus_id"], format!("0000:{:02x}:1e.0", 0x10 + i));
    }
    let r = json(&report(
        &root("inf2.48xlarge"),
        None,
        &["--format", "json"],
        &[],
    ));
    assert_eq!(r["devices"].as_array().unwrap().len(), 12);
    for d in r["devices"].as_array().unwrap() {
        let i = d["index"].as_u64().unwrap();
        let c = &d["neuron"]["connected_devices"];
        assert_eq!(
            c,
            &serde_json::json!([(i + 11) % 12, (i + 1) % 12]
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<u64>>())
        );
        // No device link in this fixture: null with the reason.
        assert!(d["pci_bus_id"].is_null());
        assert!(d["unavailable"]["pci_bus_id"]
            .as_str()
            .unwrap()
            .contains("no device link"));
    }
    let r = json(&report(
        &root("inf2.xlarge"),
        None,
        &["--format", "json"],
        &[],
    ));
    assert_eq!(
        r["devices"][0]["neuron"]["connected_devices"],
        serde_json::json!([])
    );
    assert_eq!(
        r["devices"][0]["neuron"]["cores"][0]["memory_used_bytes"],
        1124 * 1024 * 1024u64
    );
    assert_eq!(r["devices"][0]["memory_used_mib"], 1128);
}

#[test]
fn faulty_trn1_reports_the_missing_device_and_hardware_errors() {
    let r = json(&report(
        &root("trn1-faulty"),
        Some(fake_nrt()),
        &["--format", "json"],
        &[(NRT_CONFIG_ENV, TRN1)],
    ));
    let idx: Vec<u64> = r["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx.len(), 15);
    assert!(!idx.contains(&7));
    assert_eq!(neuron_runtime(&r)["device_count"], 15);
    let dev = |i: u64| {
        r["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["index"] == i)
            .unwrap()
    };
    assert_eq!(dev(3)["neuron"]["mem_ecc_uncorrected"], 3);
    assert_eq!(dev(3)["neuron"]["sram_ecc_uncorrected"], 0);
    assert_eq!(dev(12)["neuron"]["sram_ecc_uncorrected"], 1);
    assert_eq!(dev(12)["neuron"]["mem_ecc_uncorrected"], 0);
    assert_eq!(dev(0)["neuron"]["mem_ecc_repairable_uncorrected"], 0);
    let t = stdout(&report(&root("trn1-faulty"), None, &[], &[]));
    assert!(
        t.contains("Neuron hardware errors: device 3 mem_ecc_uncorrected 3; device 12 sram_ecc_uncorrected 1"),
        "{t}"
    );
    assert!(!t.contains("| 7      |"), "{t}");
}

#[test]
fn no_driver_and_no_library_is_absent_and_the_report_works() {
    let empty = tempfile::tempdir().unwrap();
    let o = report(empty.path(), None, &["--format", "json"], &[]);
    let r = json(&o);
    let rt = neuron_runtime(&r);
    assert_eq!(rt["status"], "absent");
    let tried: Vec<&str> = rt["tried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].as_str().unwrap())
        .collect();
    assert_eq!(tried, ["libnrt.so.1", "/opt/aws/neuron/lib/libnrt.so.1"]);
    assert!(rt["device_count"].is_null());
    assert!(rt["error"].as_str().unwrap().contains("no Neuron driver"));
    assert_eq!(r["devices"], Value::Array(vec![]));
    let t = report(empty.path(), None, &[], &[]);
    assert_eq!(t.status.code(), Some(0));
    assert!(stdout(&t).contains("No accelerator found"));
    assert!(stdout(&t).contains("tried: libnrt.so.1, /opt/aws/neuron/lib/libnrt.so.1"));
    // --no-neuron leaves the entry out entirely.
    let r = json(&report(
        &root("inf2.xlarge"),
        None,
        &["--format", "json", "--no-neuron"],
        &[],
    ));
    assert_eq!(r["devices"], Value::Array(vec![]));
    assert!(r["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|rt| rt["name"] != "neuron"));
}

/// A copy of the fake libnrt with the export `symbol` renamed.
fn nrt_without(dir: &Path, symbol: &str) -> PathBuf {
    common::with_symbol_renamed(fake_nrt(), symbol, &dir.join("libnrt.so.1"))
}

#[test]
fn missing_symbols_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let lib = nrt_without(dir.path(), "nrt_get_instance_info");
    let r = json(&report(
        &root("inf2.xlarge"),
        Some(&lib),
        &["--format", "json"],
        &[(NRT_CONFIG_ENV, TRN1)],
    ));
    let rt = neuron_runtime(&r);
    assert_eq!(rt["status"], "loaded");
    assert_eq!(rt["neuron"]["cores_total"], 32);
    assert!(rt["neuron"]["instance_family"].is_null());
    let e = errors_of(&r, "nrt_get_instance_info");
    assert_eq!(e.len(), 1, "{}", r["errors"]);
    assert!(e[0]["message"].as_str().unwrap().contains("no such symbol"));

    let dir = tempfile::tempdir().unwrap();
    let lib = nrt_without(dir.path(), "nrt_init");
    let r = json(&report(
        &root("inf2.xlarge"),
        Some(&lib),
        &["--format", "json"],
        &[(NRT_CONFIG_ENV, TRN1)],
    ));
    let rt = neuron_runtime(&r);
    assert_eq!(rt["status"], "error");
    assert!(rt["error"].as_str().unwrap().contains("nrt_init"), "{rt}");
    assert_eq!(rt["version"], "2.22.14.0", "the version needs no init");
    assert_eq!(r["devices"].as_array().unwrap().len(), 1);
}

#[test]
fn a_hung_call_times_out_and_keeps_what_was_read() {
    let started = Instant::now();
    let o = report(
        &root("trn1.32xlarge"),
        Some(fake_nrt()),
        &["--format", "json", "--timeout", "1s"],
        &[
            (NRT_CONFIG_ENV, TRN1),
            (common::NRT_HANG_ENV, "nrt_get_instance_info=30000"),
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let r = json(&o);
    let rt = neuron_runtime(&r);
    assert_eq!(rt["status"], "timeout");
    assert_eq!(rt["neuron"]["cores_total"], 32);
    assert_eq!(rt["neuron"]["cores_visible"], 32);
    assert_eq!(rt["version"], "2.22.14.0");
    let e = errors_of(&r, "nrt_get_instance_info");
    assert_eq!(e[0]["kind"], "timeout");
    assert_eq!(
        r["devices"].as_array().unwrap().len(),
        16,
        "sysfs inventory is kept"
    );

    // Only the release hangs: everything was read, the runtime stays loaded, one error says it.
    let o = report(
        &root("trn1.32xlarge"),
        Some(fake_nrt()),
        &["--format", "json", "--timeout", "1s"],
        &[
            (NRT_CONFIG_ENV, TRN1),
            (common::NRT_HANG_ENV, "nrt_close=30000"),
        ],
    );
    let r = json(&o);
    let rt = neuron_runtime(&r);
    assert_eq!(rt["status"], "loaded", "{rt}");
    assert_eq!(rt["neuron"]["instance_family"], "TRN1", "{rt}");
    let e = errors_of(&r, "nrt_close");
    assert_eq!(e.len(), 1, "{}", r["errors"]);
    assert_eq!(e[0]["kind"], "timeout");
}

#[test]
fn every_error_code_from_every_call_is_recorded() {
    let calls = [
        "nrt_get_total_vnc_count",
        "nrt_init",
        "nrt_get_visible_vnc_count",
        "nrt_get_version",
        "nrt_get_instance_info",
    ];
    for call in calls {
        for (code, name) in [
            (1, "NRT_FAILURE"),
            (6, "NRT_HW_ERROR"),
            (13, "NRT_UNINITIALIZED"),
        ] {
            let spec = format!("{call}={code}");
            let r = json(&report(
                &root("inf2.xlarge"),
                Some(fake_nrt()),
                &["--format", "json"],
                &[(NRT_CONFIG_ENV, TRN1), (NRT_ERRORS_ENV, &spec)],
            ));
            let e = errors_of(&r, call);
            assert_eq!(e.len(), 1, "{spec}: {}", r["errors"]);
            assert_eq!(e[0]["code"], name, "{spec}");
            assert_eq!(e[0]["runtime"], "neuron");
            let rt = neuron_runtime(&r);
            let expect = if call == "nrt_init" {
                "error"
            } else {
                "loaded"
            };
            assert_eq!(rt["status"], expect, "{spec}");
            let field = match call {
                "nrt_get_total_vnc_count" => &rt["neuron"]["cores_total"],
                "nrt_get_visible_vnc_count" => &rt["neuron"]["cores_visible"],
                "nrt_get_version" => &rt["version"],
                "nrt_get_instance_info" => &rt["neuron"]["instance_family"],
                _ => &rt["neuron"]["cores_visible"],
            };
            assert!(field.is_null(), "{spec}: never a stand-in value: {rt}");
            assert_eq!(r["devices"].as_array().unwrap().len(), 1);
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &t).unwrap();
        } else if ft.is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// As a non-root container sees the real tree: `core_count` and `connected_devices` are 0400
/// root. The test runs as root (which reads anything), so the probe runs as `nobody`.
#[test]
fn root_only_files_are_unreadable_not_zero() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to start the probe as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    copy_tree(&root("inf2.xlarge"), tmp.path());
    let dev = tmp.path().join("sys/devices/virtual/neuron_device/neuron0");
    for f in ["core_count", "connected_devices"] {
        std::fs::set_permissions(dev.join(f), std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    // An entry that is not a file at all reads as unreadable too.
    let sram = dev.join("stats/hardware/sram_ecc_uncorrected");
    std::fs::remove_file(&sram).unwrap();
    std::fs::create_dir(&sram).unwrap();
    // The other user must be able to reach the binary: a checkout under a private (0700)
    // directory is not, so run a copy from the world-readable temporary directory.
    let bin = tmp.path().join("accelprobe");
    std::fs::copy(env!("CARGO_BIN_EXE_accelprobe"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = std::process::Command::new(&bin)
        .env_clear()
        .args([
            "report",
            "--format",
            "json",
            "--no-cuda",
            "--neuron-lib",
            "/nonexistent/libnrt.so.1",
        ])
        .arg("--sysfs-root")
        .arg(tmp.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let r = json(&o);
    let d = &r["devices"][0];
    assert!(d["neuron"]["core_count"].is_null(), "{d}");
    assert!(d["neuron"]["connected_devices"].is_null());
    assert_eq!(
        d["unavailable"]["neuron.core_count"],
        "permission denied: core_count is readable by root only (0400)"
    );
    assert_eq!(
        d["unavailable"]["neuron.connected_devices"],
        "permission denied: connected_devices is readable by root only (0400)"
    );
    assert!(d["neuron"]["sram_ecc_uncorrected"].is_null());
    assert!(d["unavailable"]["neuron.sram_ecc_uncorrected"]
        .as_str()
        .unwrap()
        .starts_with("unreadable: stats/hardware/sram_ecc_uncorrected"));
    // The cores are still listed from their directories; the table says where the count came from.
    assert_eq!(d["neuron"]["cores"].as_array().unwrap().len(), 2);
    let t = std::process::Command::new(&bin)
        .env_clear()
        .args(["report", "--no-cuda", "--sysfs-root"])
        .arg(tmp.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(stdout(&t).contains("| 2*     |"), "{}", stdout(&t));
}

#[test]
fn an_unknown_layout_is_said_not_guessed() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = tmp.path().join("sys/devices/virtual/neuron_device/neuron0");
    std::fs::create_dir_all(dev.join("something_new")).unwrap();
    let r = json(&report(tmp.path(), None, &["--format", "json"], &[]));
    let d = &r["devices"][0];
    assert_eq!(d["vendor"], "neuron");
    assert!(d["neuron"]["sysfs_layout"].is_null());
    assert!(d["unavailable"]["neuron.sysfs_layout"]
        .as_str()
        .unwrap()
        .contains("2.31"));
    assert!(errors_of(&r, "sysfs")[0]["message"]
        .as_str()
        .unwrap()
        .contains("unrecognised"));
}

#[test]
fn query_gpu_fields_that_apply_work_for_neuron_devices() {
    let o = report(
        &root("inf2.xlarge"),
        None,
        &[
            "--query-gpu=index,name,serial,pci.bus_id,memory.total,temperature.gpu",
            "--format=csv,noheader",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "0, Inferentia2, 5a17000000000000, 0000:10:1e.0, [N/A], [N/A]\n"
    );
}

/// A sysfs read that never returns (a FIFO stands in for a wedged driver file) costs the
/// deadline, not the probe: the report comes out, says which read hung, and exits 0.
#[test]
fn a_hung_sysfs_read_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&root("inf2.xlarge"), tmp.path());
    let serial = tmp
        .path()
        .join("sys/devices/virtual/neuron_device/neuron0/info/serial_number");
    std::fs::remove_file(&serial).unwrap();
    let path = std::ffi::CString::new(serial.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    let started = std::time::Instant::now();
    let o = accelprobe()
        .args(["report", "--format", "json", "--no-cuda", "--timeout", "1s"])
        .arg("--sysfs-root")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(0));
    let r = json(&o);
    let errors = r["errors"].to_string();
    assert!(
        errors.contains("reading the Neuron sysfs tree did not return before the deadline"),
        "{errors}"
    );
}
