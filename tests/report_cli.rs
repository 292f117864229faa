//! `accelprobe report` end to end: the built binary, loading the fake NVML and fake CUDA
//! driver through the real dynamic-loading code, against the fixtures in tests/fixtures/nvml.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{accelprobe, fakes};
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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
        let report = json_report(name, &[]);
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
    let t = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "timeout")
        .expect("timeout error");
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
        .filter(|c| c != "nvmlShutdown" && c != "nvmlErrorString")
        .collect();
    calls.sort();
    calls.dedup();
    assert!(
        calls.len() >= 35,
        "only {} functions called: {calls:?}",
        calls.len()
    );

    let jobs: Vec<(String, u32)> = calls
        .iter()
        .flat_map(|c| NVML_CODES.iter().map(move |&k| (c.clone(), k)))
        .collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let failures_ref = &failures;
    std::thread::scope(|s| {
        for chunk in jobs.chunks(jobs.len().div_ceil(4)) {
            s.spawn(move || {
                for (call, code) in chunk {
                    if let Err(e) = check_injection(call, *code) {
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

fn check_injection(call: &str, code: u32) -> Result<(), String> {
    let per_device = call.starts_with("nvmlDevice") && call != "nvmlDeviceGetCount_v2";
    // Codes that are part of a call's protocol rather than failures: NVLink answers
    // INVALID_ARGUMENT for a link the device does not have, and the count queries of
    // processes and retired pages answer INSUFFICIENT_SIZE to mean "there are more".
    let protocol = matches!(
        (call, code),
        ("nvmlDeviceGetNvLinkState", 2)
            | ("nvmlDeviceGetComputeRunningProcesses_v3", 7)
            | ("nvmlDeviceGetRetiredPages", 7)
    );
    let spec = if per_device {
        format!("{call}:2={code}")
    } else {
        format!("{call}={code}")
    };
    let o = report_with(
        "a10gx4-ecc",
        &["--format", "json"],
        &[("ACCELPROBE_FAKE_NVML_ERRORS", &spec)],
    );
    let err = stderr(&o);
    if o.status.code() != Some(0) || !err.is_empty() {
        return Err(format!("exit {:?}, stderr {err}", o.status.code()));
    }
    let r: Value = serde_json::from_slice(&o.stdout).map_err(|e| format!("bad JSON: {e}"))?;
    let errors = r["errors"].as_array().unwrap();
    let recorded = errors.iter().find(|e| e["call"] == call);
    let runtime = &r["runtimes"][0];
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
        _ if protocol => {
            if !err.is_empty() {
                return Err(err);
            }
        }
        "nvmlDeviceGetHandleByIndex_v2" => {
            let d = &r["devices"][2];
            if recorded.is_none()
                || !d["name"].is_null()
                || !d["unavailable"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no handle")
            {
                return Err(format!("handle failure not recorded: {d}"));
            }
        }
        _ if code == 3 && per_device => {
            // NOT_SUPPORTED is nvidia-smi's N/A: a reason, not an error.
            if recorded.is_some() {
                return Err("NOT_SUPPORTED recorded as an error".into());
            }
            let d = &r["devices"][2];
            let na = d["unavailable"]
                .as_object()
                .unwrap()
                .values()
                .any(|v| v == "not supported");
            if !na && call != "nvmlDeviceGetNvLinkState" {
                return Err("no 'not supported' reason".into());
            }
        }
        _ => {
            let Some(e) = recorded else {
                return Err(format!("error not recorded; errors: {errors:?}"));
            };
            if per_device && e["device"] != 2 {
                return Err(format!("wrong device: {e}"));
            }
            if let Some(field) = e["field"].as_str() {
                let d = &r["devices"][2];
                if !at(d, field).is_null() {
                    return Err(format!("{field} not null: {}", at(d, field)));
                }
                if !d["unavailable"][field].is_string() {
                    return Err(format!("{field} has no reason"));
                }
            }
            if call.starts_with("nvmlSystemGet") && call != "nvmlSystemGetProcessName" {
                let key = match call {
                    "nvmlSystemGetDriverVersion" => "driver_version",
                    "nvmlSystemGetNVMLVersion" => "version",
                    _ => "cuda_version",
                };
                if !runtime[key].is_null() {
                    return Err(format!("runtime {key} not null"));
                }
            }
        }
    }
    Ok(())
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
    let e = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["runtime"] == "cuda")
        .unwrap();
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
