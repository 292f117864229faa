//! `accelprobe report` end to end: the built binary, loading the fake NVML and fake CUDA
//! driver through the real dynamic-loading code, against the fixtures in tests/fixtures/nvml.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{accelprobe, fakes, stderr, stdout};
use serde_json::Value;

const FIXTURES: &[&str] = &["seed-l40s", "h100x8", "a10gx4-ecc", "l4"];

/// Run `accelprobe report ARGS` against a fixture through the fake NVML (no CUDA).
fn report_with(fixture: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let f = fakes();
    let mut cmd = accelprobe();
    cmd.arg("report")
        .arg("--nvml-lib")
        .arg(&f.nvml_lib)
        .arg("--no-cuda")
        .args(args)
        .env("ACCELPROBE_FAKE_NVML_FIXTURE", f.fixture(fixture));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run accelprobe")
}

fn json_report(fixture: &str, env: &[(&str, &str)]) -> Value {
    let o = report_with(fixture, &["--format", "json"], env);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "stderr: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("report is JSON")
}

fn fixture_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fakes().fixture(name)).expect("read fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The first error entry whose `key` equals `value`; fails the test when there is none.
fn error_where<'a>(r: &'a Value, key: &str, value: &str) -> &'a Value {
    r["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e[key] == value))
        .unwrap_or_else(|| panic!("no error with {key} = {value}: {}", r["errors"]))
}

/// Look up a dotted path (`ecc.volatile_uncorrected`) in a JSON object.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// A device without the parts that are not NVML's to reproduce.
fn comparable(device: &Value) -> Value {
    let mut d = device.clone();
    if let Some(obj) = d.as_object_mut() {
        obj.remove("unavailable");
        obj.remove("cuda");
    }
    d
}

#[test]
fn every_fixture_round_trips_through_the_fake_nvml() {
    for name in FIXTURES {
        let fixture = fixture_json(name);
        let report = json_report(name, &[]);
        let nvml = &report["runtimes"][0];
        assert_eq!(nvml["name"], "nvml");
        assert_eq!(nvml["status"], "loaded", "{name}");
        let fx_nvml = fixture["runtimes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "nvml")
            .unwrap();
        for key in ["driver_version", "cuda_version", "version"] {
            assert_eq!(nvml[key], fx_nvml[key], "{name}: runtime {key}");
        }
        let got = report["devices"].as_array().unwrap();
        let want = fixture["devices"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}: device count");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                comparable(g),
                comparable(w),
                "{name}: device {}",
                w["index"]
            );
        }
        assert_eq!(report["errors"], Value::Array(vec![]), "{name}: errors");
    }
}

#[test]
fn every_null_field_has_a_reason() {
    for name in FIXTURES {
        // With the fake CUDA driver too, so that the CUDA view is part of the check.
        let mut cmd = accelprobe();
        fakes().serve(&mut cmd, name);
        let o = cmd.args(["report", "--format", "json"]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["runtimes"][1]["status"], "loaded");
        for d in report["devices"].as_array().unwrap() {
            let mut nulls = Vec::new();
            collect_nulls(d, "", &mut nulls);
            for path in nulls {
                let why = &d["unavailable"];
                let explained = why
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|k| path == *k || path.starts_with(&format!("{k}.")));
                assert!(
                    explained,
                    "{name}: device {} field {path} is null without a reason",
                    d["index"]
                );
            }
        }
    }
}

fn collect_nulls(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = v {
        for (k, v) in map {
            if k == "unavailable" {
                continue;
            }
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Null => out.push(p),
                Value::Object(_) => collect_nulls(v, &p, out),
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match item {
                            Value::Null => out.push(format!("{p}.{i}")),
                            _ => collect_nulls(item, &format!("{p}.{i}"), out),
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn seed_table_shows_the_seed_screen() {
    let o = report_with("seed-l40s", &[], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let seed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvml/seed-l40s.nvidia-smi.txt"),
    )
    .unwrap();
    let tool = format!("accelprobe {}", env!("CARGO_PKG_VERSION"));
    let expected: Vec<String> = seed
        .lines()
        .map(|l| l.replace("NVIDIA-SMI 535.230.02", &format!("{tool:<21}")))
        .collect();
    let got: Vec<&str> = out.lines().take(expected.len()).collect();
    assert_eq!(got, expected, "full output:\n{out}");
}

#[test]
fn tables_keep_nvidia_smi_geometry() {
    for name in FIXTURES {
        let o = report_with(name, &[], &[]);
        let out = stdout(&o);
        let boxed: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with('|') || l.starts_with('+'))
            .collect();
        assert!(boxed.len() > 10, "{name}");
        for l in boxed {
            assert_eq!(l.chars().count(), 89, "{name}: line {l:?}");
        }
    }
    let h100 = stdout(&report_with("h100x8", &[], &[]));
    assert_eq!(h100.matches("NVIDIA H100 80GB HBM3").count(), 8);
    assert!(h100.contains("81559MiB"));
    assert!(!h100.contains("No running processes found"));
    let a10g = stdout(&report_with("a10gx4-ecc", &[], &[]));
    let ecc_cells: Vec<&str> = a10g
        .lines()
        .filter(|l| l.contains("NVIDIA A10G"))
        .map(|l| l.rsplit('|').nth(1).unwrap().trim())
        .collect();
    assert_eq!(ecc_cells, ["0", "0", "2", "0"]);
}

/// The L4 fixture changed into every unusual state the table has a cell for.
fn odd_fixture(dir: &Path) -> std::path::PathBuf {
    let mut r = fixture_json("l4");
    let d = &mut r["devices"][0];
    d["name"] = "NVIDIA RTX PRO 6000 Blackwell Server Edition".into();
    d["fan_speed_percent"] = 100.into();
    d["performance_state"] = "P12".into();
    d["persistence_mode"] = false.into();
    d["display_active"] = true.into();
    d["ecc"]["mode_current"] = false.into();
    d["mig"]["mode_current"] = true.into();
    d["compute_mode"] = "Exclusive_Process".into();
    d["temperature_c"] = 104.into();
    d["power_draw_w"] = 1234.5.into();
    d["processes"] = serde_json::json!([
        {"pid": 4242, "name": "/opt/conda/envs/train/bin/python3.11 -m torch.distributed.run", "used_memory_mib": 20480, "kind": "C"},
        {"pid": 77, "name": "Xorg", "used_memory_mib": 12, "kind": "G"}
    ]);
    let path = dir.join("odd.json");
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    path
}

#[test]
fn unusual_values_keep_the_geometry_and_read_like_nvidia_smi() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = odd_fixture(dir.path());
    let o = accelprobe()
        .args(["report", "--no-cuda", "--nvml-lib"])
        .arg(&fakes().nvml_lib)
        .env("ACCELPROBE_FAKE_NVML_FIXTURE", &fixture)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for l in out
        .lines()
        .filter(|l| l.starts_with('|') || l.starts_with('+'))
    {
        assert_eq!(l.chars().count(), 89, "line {l:?}\n{out}");
    }
    let rows: Vec<&str> = out.lines().collect();
    let first = rows
        .iter()
        .position(|l| l.contains("NVIDIA RTX PRO"))
        .expect("GPU row");
    assert!(
        rows[first].contains("NVIDIA RTX PRO 6000 Blackwe..."),
        "{}",
        rows[first]
    );
    assert!(
        rows[first].contains("Off |") && rows[first].ends_with("|                  Off |"),
        "{}",
        rows[first]
    );
    assert!(
        rows[first + 1].starts_with("|100%  104C    P12"),
        "{}",
        rows[first + 1]
    );
    assert!(
        // 1234.5 W: Rust's formatting rounds the tie to even.
        rows[first + 1].contains("1234W /  72W"),
        "{}",
        rows[first + 1]
    );
    assert!(
        rows[first + 1].ends_with("E. Process |"),
        "{}",
        rows[first + 1]
    );
    assert!(
        rows[first + 2].ends_with("Enabled |"),
        "{}",
        rows[first + 2]
    );
    let proc_rows: Vec<&&str> = rows
        .iter()
        .filter(|l| l.contains(" 4242 ") || l.contains("  77 "))
        .collect();
    assert_eq!(proc_rows.len(), 2, "{out}");
    assert!(
        proc_rows[0].contains("...")
            && proc_rows[0].contains("distributed.run")
            && proc_rows[0].contains("20480MiB")
    );
    assert!(proc_rows[1].contains("G   Xorg"), "{}", proc_rows[1]);

    let csv = accelprobe()
        .args(["report", "--no-cuda", "--format=csv,noheader", "--query-gpu=persistence_mode,ecc.mode.current,mig.mode.current,compute_mode,fan.speed,pstate", "--nvml-lib"])
        .arg(&fakes().nvml_lib)
        .env("ACCELPROBE_FAKE_NVML_FIXTURE", &fixture)
        .output()
        .unwrap();
    assert_eq!(
        stdout(&csv),
        "Disabled, Disabled, Enabled, Exclusive_Process, 100 %, P12\n"
    );
}

#[test]
fn query_values_of_the_other_fixtures() {
    let q = |fixture: &str, fields: &str| {
        stdout(&report_with(
            fixture,
            &[
                &format!("--query-gpu={fields}"),
                "--format=csv,noheader,nounits",
            ],
            &[],
        ))
    };
    assert_eq!(
        q("a10gx4-ecc", "index,ecc.errors.uncorrected.volatile.total,remapped_rows.uncorrectable,remapped_rows.pending,mig.mode.current"),
        "0, 0, 0, No, [N/A]\n1, 0, 0, No, [N/A]\n2, 2, 1, Yes, [N/A]\n3, 0, 0, No, [N/A]\n"
    );
    let h100 = q("h100x8", "name,memory.total,power.limit,enforced.power.limit,mig.mode.current,pcie.link.gen.max,compute_cap");
    assert_eq!(h100.lines().count(), 8);
    assert!(
        h100.lines()
            .all(|l| l == "NVIDIA H100 80GB HBM3, 81559, 700.00, 700.00, Disabled, 5, 9.0"),
        "{h100}"
    );
    assert_eq!(
        q("l4", "name,memory.total,power.limit,compute_cap"),
        "NVIDIA L4, 23034, 72.00, 8.9\n"
    );
    let header = stdout(&report_with(
        "l4",
        &[
            "--query-gpu=enforced.power.limit,clocks_throttle_reasons.active,clocks.sm",
            "--format=csv",
        ],
        &[],
    ));
    assert!(
        header.starts_with(
            "enforced.power.limit [W], clocks_throttle_reasons.active, clocks.current.sm [MHz]\n"
        ),
        "{header}"
    );
    // The PCI parts, the time and the reason flags, as nvidia-smi spells them (the A10Gs of
    // this fixture are idle: reason bit 0x1).
    let a10g = q(
        "a10gx4-ecc",
        "pci.bus_id,pci.domain,pci.bus,pci.device,clocks_event_reasons.gpu_idle,clocks_throttle_reasons.sw_power_cap",
    );
    assert_eq!(
        a10g.lines().next(),
        Some("00000000:00:1B.0, 0x0000, 0x00, 0x1B, Active, Not Active"),
        "{a10g}"
    );
    let t = q("l4", "timestamp");
    let t = t.trim();
    assert!(
        t.len() == 23
            && t.as_bytes()[4] == b'/'
            && t.as_bytes()[10] == b' '
            && t.as_bytes()[19] == b'.',
        "{t}"
    );
}

#[test]
fn seed_query_gpu_matches_nvidia_smi() {
    let o = report_with(
        "seed-l40s",
        &[
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "NVIDIA L40S, 46068\n");

    let o = report_with(
        "seed-l40s",
        &[
            "--query-gpu=index,name,pci.bus_id,driver_version,persistence_mode,pstate,temperature.gpu,fan.speed,power.draw,power.limit,memory.total,memory.used,utilization.gpu,ecc.errors.uncorrected.volatile.total,compute_mode,mig.mode.current,compute_cap",
            "--format=csv",
        ],
        &[],
    );
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "index, name, pci.bus_id, driver_version, persistence_mode, pstate, temperature.gpu, fan.speed [%], power.draw [W], power.limit [W], memory.total [MiB], memory.used [MiB], utilization.gpu [%], ecc.errors.uncorrected.volatile.total, compute_mode, mig.mode.current, compute_cap"
    );
    assert_eq!(
        lines.next().unwrap(),
        "0, NVIDIA L40S, 00000000:30:00.0, 535.230.02, Enabled, P8, 27, [N/A], 23.00 W, 350.00 W, 46068 MiB, 0 MiB, 0 %, 0, Default, [N/A], 8.9"
    );
}

#[test]
fn every_supported_query_field_renders_for_every_fixture() {
    let all = accelprobe::render::query::FIELDS
        .iter()
        .map(|f| f.names[0])
        .collect::<Vec<_>>()
        .join(",");
    for name in FIXTURES {
        let o = report_with(
            name,
            &[&format!("--query-gpu={all}"), "--format=csv,noheader"],
            &[],
        );
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let out = stdout(&o);
        let n = fixture_json(name)["devices"].as_array().unwrap().len();
        assert_eq!(out.lines().count(), n, "{name}");
        for line in out.lines() {
            assert_eq!(
                line.split(", ").count(),
                accelprobe::render::query::FIELDS.len(),
                "{name}: {line}"
            );
        }
    }
    let h = stdout(&report_with(
        "h100x8",
        &[
            "--query-gpu=clocks_event_reasons.active,pcie.link.gen.max",
            "--format=csv,noheader",
        ],
        &[],
    ));
    assert!(
        h.lines()
            .all(|l| l.starts_with("0x") && l.len() == "0x0000000000000000, 5".len()),
        "{h}"
    );
}

#[test]
fn no_library_is_absent_with_every_path_tried() {
    let o = accelprobe()
        .args(["report", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let nvml = &r["runtimes"][0];
    assert_eq!(nvml["status"], "absent");
    let tried: Vec<&str> = nvml["tried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].as_str().unwrap())
        .collect();
    assert_eq!(tried[0], "libnvidia-ml.so.1");
    assert!(tried.contains(&"/usr/lib64/libnvidia-ml.so.1"), "{tried:?}");
    assert!(nvml["tried"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["error"].is_string()));
    assert_eq!(r["devices"], Value::Array(vec![]));
    let cuda = &r["runtimes"][1];
    assert_eq!(cuda["name"], "cuda");
    assert_eq!(cuda["status"], "absent");
    assert!(cuda["tried"].as_array().unwrap().len() > 1);

    let table = accelprobe().arg("report").output().unwrap();
    assert_eq!(table.status.code(), Some(0));
    let t = stdout(&table);
    assert!(t.contains("No accelerator found"), "{t}");
    assert!(t.contains("tried: libnvidia-ml.so.1"), "{t}");
}

#[test]
fn require_accelerator_fails_when_none_found() {
    let o = accelprobe()
        .args(["report", "--require-accelerator"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("no accelerator found"), "{e}");
    let ok = report_with("l4", &["--require-accelerator"], &[]);
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let cases: &[&[&str]] = &[
        &["report", "--format", "xml"],
        &["report", "--bogus"],
        &["report", "--query-gpu=name,nope", "--format=csv"],
        &["report", "--timeout", "soon"],
        &["report", "--format", "csv"],
        &["report", "--query-gpu=name", "--format", "json"],
        &["frobnicate"],
    ];
    for args in cases {
        let o = accelprobe().args(*args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.starts_with("accelprobe: "), "{args:?}: {e}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    let o = accelprobe()
        .args(["report", "--query-gpu=nope", "--format=csv"])
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(
        e.contains("'nope'") && e.contains("memory.total") && e.contains("compute_cap"),
        "{e}"
    );
    let none = accelprobe().output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    let empty = accelprobe()
        .arg("report")
        .env("ACCELPROBE_NVML_LIB", "")
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(2));
    assert!(stderr(&empty).contains("ACCELPROBE_NVML_LIB is set but empty"));
    // Every option variable is covered, not just the report's.
    let empty = accelprobe()
        .arg("bench")
        .env("ACCELPROBE_PROFILE", "")
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(2));
    assert!(stderr(&empty).contains("ACCELPROBE_PROFILE is set but empty"));
}

#[test]
fn lost_gpu_leaves_its_fields_null_and_others_intact() {
    let r = json_report("a10gx4-ecc", &[("ACCELPROBE_FAKE_NVML_LOST", "1")]);
    let lost = &r["devices"][1];
    assert!(lost["name"].is_null());
    assert!(lost["memory_total_mib"].is_null());
    assert!(lost["unavailable"]["name"]
        .as_str()
        .unwrap()
        .contains("fallen off the bus"));
    assert_eq!(r["devices"][0]["name"], "NVIDIA A10G");
    assert_eq!(r["devices"][2]["ecc"]["volatile_uncorrected"], 2);
    let errors = r["errors"].as_array().unwrap();
    assert!(errors
        .iter()
        .all(|e| e["device"] == 1 && e["code"] == "NVML_ERROR_GPU_IS_LOST"));
    assert!(errors.len() > 20);
}

#[test]
fn hung_device_call_times_out_and_the_rest_is_reported() {
    let start = Instant::now();
    let o = report_with(
        "h100x8",
        &["--format", "json", "--timeout", "1s"],
        &[(
            "ACCELPROBE_FAKE_NVML_HANG",
            "nvmlDeviceGetTemperature:3=60000",
        )],
    );
    let took = start.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        took < Duration::from_secs(2),
        "took {took:?}: must exit within the deadline plus one second"
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["runtimes"][0]["status"], "timeout");
    let t = error_where(&r, "kind", "timeout");
    assert_eq!(t["call"], "nvmlDeviceGetTemperature");
    assert_eq!(t["device"], 3);
    let d3 = &r["devices"][3];
    assert_eq!(
        d3["name"], "NVIDIA H100 80GB HBM3",
        "fields read before the hang are kept"
    );
    assert!(d3["temperature_c"].is_null());
    assert!(d3["unavailable"]["memory_total_mib"]
        .as_str()
        .unwrap()
        .contains("nvmlDeviceGetTemperature (device 3)"));
    for i in [0, 1, 2, 4, 5, 6, 7] {
        assert_eq!(
            r["devices"][i]["memory_total_mib"], 81559,
            "device {i} fully read"
        );
    }
}

#[test]
fn hung_init_times_out() {
    let start = Instant::now();
    let o = report_with(
        "l4",
        &["--format", "json", "--timeout", "500ms"],
        &[("ACCELPROBE_FAKE_NVML_HANG", "nvmlInit_v2=60000")],
    );
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert_eq!(o.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["runtimes"][0]["status"], "timeout");
    assert!(r["runtimes"][0]["error"]
        .as_str()
        .unwrap()
        .contains("nvmlInit_v2"));
    let table = report_with(
        "l4",
        &["--timeout", "500ms"],
        &[("ACCELPROBE_FAKE_NVML_HANG", "nvmlInit_v2=60000")],
    );
    assert!(
        stdout(&table).contains("nvml   timeout"),
        "{}",
        stdout(&table)
    );
}

/// NVML return codes to inject (nvml.h), plus one no NVML defines.
const NVML_CODES: &[u32] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 999, 4242,
];

/// Run the A10G fixture with `code` injected into `call` (on GPU 2 for per-device calls).
fn inject(call: &str, code: u32) -> Output {
    let spec = if is_per_device(call) {
        format!("{call}:2={code}")
    } else {
        format!("{call}={code}")
    };
    report_with(
        "a10gx4-ecc",
        &["--format", "json"],
        &[("ACCELPROBE_FAKE_NVML_ERRORS", &spec)],
    )
}

fn is_per_device(call: &str) -> bool {
    call.starts_with("nvmlDevice") && call != "nvmlDeviceGetCount_v2"
}

#[test]
fn every_error_code_on_every_called_function_is_survived_and_recorded() {
    // Discover the functions the probe really calls.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    json_report(
        "a10gx4-ecc",
        &[("ACCELPROBE_FAKE_NVML_CALL_LOG", log.to_str().unwrap())],
    );
    let mut calls: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect();
    calls.sort();
    calls.dedup();
    assert!(
        calls.len() >= 38,
        "only {} functions called: {calls:?}",
        calls.len()
    );
    // The report field each call fills, learnt from an unmistakable failure (999).
    let fields: std::collections::HashMap<String, Option<String>> = calls
        .iter()
        .map(|c| {
            let r: Value = serde_json::from_slice(&inject(c, 999).stdout).unwrap();
            let field = r["errors"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["call"] == c.as_str())
                .and_then(|e| e["field"].as_str().map(str::to_string));
            (c.clone(), field)
        })
        .collect();

    let jobs: Vec<(String, u32)> = calls
        .iter()
        .flat_map(|c| NVML_CODES.iter().map(move |&k| (c.clone(), k)))
        .collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let (failures_ref, fields_ref) = (&failures, &fields);
    std::thread::scope(|s| {
        for chunk in jobs.chunks(jobs.len().div_ceil(4)) {
            s.spawn(move || {
                for (call, code) in chunk {
                    let field = fields_ref[call].as_deref();
                    if let Err(e) = check_injection(call, *code, field) {
                        failures_ref
                            .lock()
                            .unwrap()
                            .push(format!("{call}={code}: {e}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Check one injection; `field` is the report field the call fills, when it fills one.
fn check_injection(call: &str, code: u32, field: Option<&str>) -> Result<(), String> {
    // Codes that are part of a call's protocol rather than failures: NVLink answers
    // INVALID_ARGUMENT for a link the device does not have, and the count queries of
    // processes and retired pages answer INSUFFICIENT_SIZE to mean "there are more".
    let protocol = matches!(
        (call, code),
        ("nvmlDeviceGetNvLinkState", 2)
            | ("nvmlDeviceGetComputeRunningProcesses_v3", 7)
            | ("nvmlDeviceGetGraphicsRunningProcesses_v3", 7)
            | ("nvmlDeviceGetRetiredPages", 7)
    );
    let o = inject(call, code);
    let err = stderr(&o);
    if o.status.code() != Some(0) || !err.is_empty() {
        return Err(format!("exit {:?}, stderr {err}", o.status.code()));
    }
    let r: Value = serde_json::from_slice(&o.stdout).map_err(|e| format!("bad JSON: {e}"))?;
    let errors = r["errors"].as_array().unwrap();
    let recorded = errors.iter().find(|e| e["call"] == call);
    let runtime = &r["runtimes"][0];
    let d = &r["devices"][2];
    let field_reason = |f: &str| d["unavailable"][f].as_str().unwrap_or("").to_string();
    match call {
        "nvmlInit_v2" => {
            if runtime["status"] != "error" || recorded.is_none() {
                return Err(format!("init failure not recorded: {runtime}"));
            }
        }
        "nvmlDeviceGetCount_v2" => {
            if runtime["status"] != "error"
                || recorded.is_none()
                || !r["devices"].as_array().unwrap().is_empty()
            {
                return Err(format!("count failure not recorded: {runtime}"));
            }
        }
        "nvmlDeviceGetHandleByIndex_v2" => {
            if recorded.is_none()
                || !d["name"].is_null()
                || !field_reason("name").contains("no handle")
            {
                return Err(format!("handle failure not recorded: {d}"));
            }
        }
        _ if protocol => {
            if recorded.is_some() {
                return Err(format!(
                    "protocol answer recorded as an error: {recorded:?}"
                ));
            }
        }
        _ if code == 3 && is_per_device(call) => {
            // NOT_SUPPORTED is nvidia-smi's N/A: a reason, not an error.
            if recorded.is_some() {
                return Err("NOT_SUPPORTED recorded as an error".into());
            }
            if let Some(f) = field {
                if !at(d, f).is_null() || field_reason(f) != "not supported" {
                    return Err(format!("{f}: {} / reason {:?}", at(d, f), field_reason(f)));
                }
            }
        }
        _ => {
            let Some(e) = recorded else {
                return Err(format!("error not recorded; errors: {errors:?}"));
            };
            if is_per_device(call) && e["device"] != 2 {
                return Err(format!("wrong device: {e}"));
            }
            if let Some(f) = e["field"].as_str() {
                if !at(d, f).is_null() {
                    return Err(format!("{f} not null: {}", at(d, f)));
                }
                if field_reason(f).is_empty() {
                    return Err(format!("{f} has no reason"));
                }
            }
            let runtime_key = match call {
                "nvmlSystemGetDriverVersion" => Some("driver_version"),
                "nvmlSystemGetNVMLVersion" => Some("version"),
                "nvmlSystemGetCudaDriverVersion_v2" => Some("cuda_version"),
                _ => None,
            };
            if let Some(key) = runtime_key {
                if !runtime[key].is_null() {
                    return Err(format!("runtime {key} not null"));
                }
            }
            // Other GPUs are untouched by a per-device failure.
            if is_per_device(call) && r["devices"][0]["name"] != "NVIDIA A10G" {
                return Err("GPU 0 affected".into());
            }
        }
    }
    Ok(())
}

/// The fake NVML with its `nvmlShutdown` export renamed, as an older or broken library
/// would be (nvml-wrapper panics when it drops a handle without that symbol).
fn nvml_without_shutdown(dir: &Path) -> std::path::PathBuf {
    common::with_symbol_renamed(
        &fakes().nvml_lib,
        "nvmlShutdown",
        &dir.join("libnvidia-ml.so.1"),
    )
}

#[test]
fn library_without_shutdown_is_reported_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let lib = nvml_without_shutdown(dir.path());
    for _ in 0..3 {
        let o = accelprobe()
            .args(["report", "--format", "json", "--no-cuda", "--nvml-lib"])
            .arg(&lib)
            .env("ACCELPROBE_FAKE_NVML_FIXTURE", fakes().fixture("l4"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["devices"][0]["name"], "NVIDIA L4");
    }
}

#[test]
fn shutdown_errors_and_hangs_are_recorded_within_the_deadline() {
    let r = json_report("l4", &[("ACCELPROBE_FAKE_NVML_ERRORS", "nvmlShutdown=999")]);
    let e = r["errors"].as_array().unwrap();
    assert!(e.iter().any(|e| e["call"] == "nvmlShutdown"), "{e:?}");

    let start = Instant::now();
    let o = report_with(
        "l4",
        &["--format", "json", "--timeout", "700ms"],
        &[("ACCELPROBE_FAKE_NVML_HANG", "nvmlShutdown=60000")],
    );
    assert!(
        start.elapsed() < Duration::from_millis(1700),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(o.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["devices"][0]["name"], "NVIDIA L4");
    let t = error_where(&r, "kind", "timeout");
    assert_eq!(t["call"], "nvmlShutdown");
}

#[test]
fn hung_system_calls_time_out() {
    for call in ["nvmlDeviceGetCount_v2", "nvmlSystemGetNVMLVersion"] {
        let start = Instant::now();
        let o = report_with(
            "l4",
            &["--format", "json", "--timeout", "500ms"],
            &[("ACCELPROBE_FAKE_NVML_HANG", &format!("{call}=60000"))],
        );
        assert!(start.elapsed() < Duration::from_millis(1500), "{call}");
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["runtimes"][0]["status"], "timeout", "{call}");
        assert!(r["runtimes"][0]["error"].as_str().unwrap().contains(call));
    }
}

#[test]
fn cuda_view_is_attached_by_bus_id() {
    let f = fakes();
    let o = accelprobe()
        .args(["report", "--format", "json", "--nvml-lib"])
        .arg(&f.nvml_lib)
        .env("ACCELPROBE_FAKE_NVML_FIXTURE", f.fixture("h100x8"))
        .env("LD_LIBRARY_PATH", &f.cuda_dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cuda = &r["runtimes"][1];
    assert_eq!(cuda["status"], "loaded", "{cuda}");
    assert_eq!(cuda["device_count"], 8);
    for d in r["devices"].as_array().unwrap() {
        assert_eq!(d["cuda"]["compute_capability"], "9.0", "{d}");
        assert_eq!(d["cuda"]["pci_bus_id"], d["pci_bus_id"]);
        assert_eq!(d["cuda"]["name"], "NVIDIA H100 80GB HBM3");
    }
}

#[test]
fn cuda_without_nvml_still_lists_devices() {
    let f = fakes();
    let o = accelprobe()
        .args([
            "report",
            "--format",
            "json",
            "--nvml-lib",
            "/nonexistent/libnvidia-ml.so.1",
        ])
        .env("ACCELPROBE_FAKE_NVML_FIXTURE", f.fixture("l4"))
        .env("LD_LIBRARY_PATH", &f.cuda_dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["runtimes"][0]["status"], "absent");
    assert_eq!(r["devices"][0]["name"], "NVIDIA L4");
    assert!(
        r["devices"][0]["memory_total_mib"].is_null(),
        "CUDA's usable memory is not nvidia-smi's total"
    );
    assert_eq!(r["devices"][0]["cuda"]["total_memory_mib"], 22725);
    assert!(r["devices"][0]["unavailable"]["memory_total_mib"]
        .as_str()
        .unwrap()
        .contains("22725 MiB usable"));
    assert!(r["devices"][0]["unavailable"]["temperature_c"]
        .as_str()
        .unwrap()
        .contains("NVML not available"));
}

#[test]
fn cuda_library_without_symbols_is_an_error_not_a_panic() {
    let f = fakes();
    let dir = tempfile::tempdir().unwrap();
    // A library that loads but exports none of the CUDA driver API.
    std::fs::copy(&f.nvml_lib, dir.path().join("libcuda.so")).unwrap();
    let o = accelprobe()
        .args(["report", "--format", "json", "--nvml-lib"])
        .arg(&f.nvml_lib)
        .env("ACCELPROBE_FAKE_NVML_FIXTURE", f.fixture("l4"))
        .env("LD_LIBRARY_PATH", dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["runtimes"][1]["status"], "error");
    let e = error_where(&r, "runtime", "cuda");
    assert_eq!(e["kind"], "panic");
    assert_eq!(e["call"], "cuInit");
    assert_eq!(r["devices"][0]["name"], "NVIDIA L4");
}

#[test]
fn cuda_errors_and_hangs_are_recorded() {
    let f = fakes();
    let run = |env: (&str, &str), timeout: &str| {
        let o = accelprobe()
            .args([
                "report",
                "--format",
                "json",
                "--timeout",
                timeout,
                "--nvml-lib",
            ])
            .arg(&f.nvml_lib)
            .env("ACCELPROBE_FAKE_NVML_FIXTURE", f.fixture("l4"))
            .env("LD_LIBRARY_PATH", &f.cuda_dir)
            .env(env.0, env.1)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let r = run(("ACCELPROBE_FAKE_CUDA_ERRORS", "cuInit=100"), "5s");
    assert_eq!(r["runtimes"][1]["status"], "error");
    assert!(r["runtimes"][1]["error"]
        .as_str()
        .unwrap()
        .contains("cuInit"));
    let r = run(
        ("ACCELPROBE_FAKE_CUDA_ERRORS", "cuDeviceGetName:0=999"),
        "5s",
    );
    assert_eq!(r["runtimes"][1]["status"], "loaded");
    assert!(r["devices"][0]["cuda"]["name"].is_null());
    let start = Instant::now();
    let r = run(
        ("ACCELPROBE_FAKE_CUDA_HANG", "cuDeviceGetCount=60000"),
        "700ms",
    );
    assert!(start.elapsed() < Duration::from_millis(1700));
    assert_eq!(r["runtimes"][1]["status"], "timeout");
    assert_eq!(r["runtimes"][0]["status"], "loaded");
    assert_eq!(r["devices"][0]["name"], "NVIDIA L4");
}
