//! Calls the exports directly, the way nvml-wrapper does, against the shared fixtures.

use super::*;
use std::path::PathBuf;
use std::ptr::{null_mut, NonNull};
use std::time::{Duration, Instant};

/// The exports read process-wide environment variables and state: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../fixtures/nvml/{name}.json"))
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "accelprobe-fake-nvml-{}-{name}",
        std::process::id()
    ))
}

/// Run `body` with exactly `vars` set among the fake's variables and no NVML state.
fn with_env(vars: &[(&str, &str)], body: impl FnOnce()) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for name in [FIXTURE_ENV, ERRORS_ENV, HANG_ENV, LOST_ENV, CALL_LOG_ENV] {
        std::env::remove_var(name);
    }
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
    *lock() = None;
    body();
    *lock() = None;
}

fn seed() -> String {
    fixture("seed-l40s").display().to_string()
}

fn handle(index: c_uint) -> Handle {
    let mut h: Handle = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByIndex_v2(index, &mut h) },
        NVML_SUCCESS
    );
    h
}

fn string(f: unsafe extern "C" fn(Handle, *mut c_char, c_uint) -> Ret, h: Handle) -> String {
    let mut buf = [0 as c_char; 96];
    assert_eq!(unsafe { f(h, buf.as_mut_ptr(), 96) }, NVML_SUCCESS);
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_string()
}

fn u32_of(f: unsafe extern "C" fn(Handle, *mut c_uint) -> Ret, h: Handle) -> (Ret, c_uint) {
    let mut v = 0;
    let code = unsafe { f(h, &mut v) };
    (code, v)
}

#[test]
fn serves_the_seed_l40s() {
    with_env(&[(FIXTURE_ENV, &seed())], || unsafe {
        assert_eq!(nvmlInit_v2(), NVML_SUCCESS);
        let mut buf = [0 as c_char; 80];
        assert_eq!(
            nvmlSystemGetDriverVersion(buf.as_mut_ptr(), 80),
            NVML_SUCCESS
        );
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str(), Ok("535.230.02"));
        assert_eq!(
            nvmlSystemGetDriverVersion(buf.as_mut_ptr(), 5),
            NVML_ERROR_INSUFFICIENT_SIZE
        );
        let mut cuda = 0;
        assert_eq!(nvmlSystemGetCudaDriverVersion_v2(&mut cuda), NVML_SUCCESS);
        assert_eq!(cuda, 12020);
        let mut count = 0;
        assert_eq!(nvmlDeviceGetCount_v2(&mut count), NVML_SUCCESS);
        assert_eq!(count, 1);
        let mut h: Handle = null_mut();
        assert_eq!(
            nvmlDeviceGetHandleByIndex_v2(1, &mut h),
            NVML_ERROR_INVALID_ARGUMENT
        );
        let h = handle(0);

        assert_eq!(string(nvmlDeviceGetName, h), "NVIDIA L40S");
        let mut pci: PciInfo = std::mem::zeroed();
        assert_eq!(nvmlDeviceGetPciInfo_v3(h, &mut pci), NVML_SUCCESS);
        assert_eq!(
            CStr::from_ptr(pci.bus_id.as_ptr()).to_str(),
            Ok("00000000:30:00.0")
        );
        assert_eq!(
            CStr::from_ptr(pci.bus_id_legacy.as_ptr()).to_str(),
            Ok("0000:30:00.0")
        );
        assert_eq!((pci.domain, pci.bus, pci.device), (0, 0x30, 0));

        let mut mem: MemoryV2 = std::mem::zeroed();
        assert_eq!(
            nvmlDeviceGetMemoryInfo_v2(h, &mut mem),
            NVML_ERROR_ARGUMENT_VERSION_MISMATCH
        );
        mem.version = MEMORY_V2_VERSION;
        assert_eq!(nvmlDeviceGetMemoryInfo_v2(h, &mut mem), NVML_SUCCESS);
        assert_eq!(mem.total, 46068 * MIB);
        assert_eq!(mem.used, 0);
        assert_eq!(mem.total, mem.reserved + mem.used + mem.free);

        let mut temp = 0;
        assert_eq!(nvmlDeviceGetTemperature(h, 0, &mut temp), NVML_SUCCESS);
        assert_eq!(temp, 27);
        assert_eq!(u32_of(nvmlDeviceGetPowerUsage, h), (NVML_SUCCESS, 23_000));
        assert_eq!(
            u32_of(nvmlDeviceGetEnforcedPowerLimit, h),
            (NVML_SUCCESS, 350_000)
        );
        assert_eq!(u32_of(nvmlDeviceGetPerformanceState, h), (NVML_SUCCESS, 8));
        assert_eq!(u32_of(nvmlDeviceGetPersistenceMode, h), (NVML_SUCCESS, 1));
        assert_eq!(u32_of(nvmlDeviceGetNumFans, h).0, NVML_ERROR_NOT_SUPPORTED);
        assert_eq!(u32_of(nvmlDeviceGetComputeMode, h), (NVML_SUCCESS, 0));
        let (mut cur, mut pend) = (9, 9);
        assert_eq!(
            nvmlDeviceGetMigMode(h, &mut cur, &mut pend),
            NVML_ERROR_NOT_SUPPORTED
        );
        assert_eq!(nvmlDeviceGetEccMode(h, &mut cur, &mut pend), NVML_SUCCESS);
        assert_eq!((cur, pend), (1, 1));
        let mut n = 0;
        assert_eq!(
            nvmlDeviceGetRetiredPages(h, 0, &mut n, &mut 0),
            NVML_ERROR_NOT_SUPPORTED
        );
        assert_eq!(
            nvmlDeviceGetComputeRunningProcesses_v3(h, &mut n, null_mut()),
            NVML_SUCCESS
        );
        assert_eq!(n, 0);
        let mut active = 0;
        assert_eq!(
            nvmlDeviceGetNvLinkState(h, 0, &mut active),
            NVML_ERROR_NOT_SUPPORTED
        );
        let (mut major, mut minor) = (0, 0);
        assert_eq!(
            nvmlDeviceGetCudaComputeCapability(h, &mut major, &mut minor),
            NVML_SUCCESS
        );
        assert_eq!((major, minor), (8, 9));

        assert_eq!(
            nvmlDeviceGetName(h, null_mut(), 96),
            NVML_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            nvmlDeviceGetTemperature(h, 0, null_mut()),
            NVML_ERROR_INVALID_ARGUMENT
        );
        let bogus = NonNull::<c_void>::dangling().as_ptr().wrapping_add(1000);
        assert_eq!(
            u32_of(nvmlDeviceGetPowerUsage, bogus).0,
            NVML_ERROR_INVALID_ARGUMENT
        );

        assert_eq!(nvmlShutdown(), NVML_SUCCESS);
        assert_eq!(
            u32_of(nvmlDeviceGetPowerUsage, h).0,
            NVML_ERROR_UNINITIALIZED
        );
        assert_eq!(nvmlShutdown(), NVML_ERROR_UNINITIALIZED);
    });
}

#[test]
fn init_fails_without_a_usable_fixture() {
    with_env(&[], || {
        assert_eq!(nvmlInit_v2(), NVML_ERROR_DRIVER_NOT_LOADED);
    });
    let bad = scratch("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    with_env(&[(FIXTURE_ENV, bad.to_str().unwrap())], || {
        assert_eq!(nvmlInit_v2(), NVML_ERROR_UNKNOWN);
    });
    with_env(&[(FIXTURE_ENV, "/nonexistent/fixture.json")], || {
        assert_eq!(nvmlInit(), NVML_ERROR_UNKNOWN);
    });
    with_env(
        &[(FIXTURE_ENV, &seed()), (ERRORS_ENV, "nvmlInit_v2:x=1")],
        || {
            assert_eq!(
                nvmlInit_v2(),
                NVML_ERROR_UNKNOWN,
                "a malformed rule fails init"
            );
        },
    );
    let _ = std::fs::remove_file(bad);
}

#[test]
fn injects_errors_from_the_environment() {
    let vars = [
        (FIXTURE_ENV, seed()),
        (
            ERRORS_ENV,
            "nvmlDeviceGetTemperature:0=15,nvmlSystemGetDriverVersion=999".into(),
        ),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    with_env(&vars, || unsafe {
        assert_eq!(nvmlInit_v2(), NVML_SUCCESS);
        let h = handle(0);
        let mut temp = 0;
        assert_eq!(
            nvmlDeviceGetTemperature(h, 0, &mut temp),
            NVML_ERROR_GPU_IS_LOST
        );
        let mut buf = [0 as c_char; 80];
        assert_eq!(
            nvmlSystemGetDriverVersion(buf.as_mut_ptr(), 80),
            NVML_ERROR_UNKNOWN
        );
        assert_eq!(u32_of(nvmlDeviceGetPowerUsage, h), (NVML_SUCCESS, 23_000));
        assert_eq!(nvmlShutdown(), NVML_SUCCESS);
    });
    with_env(
        &[(FIXTURE_ENV, &seed()), (ERRORS_ENV, "nvmlInit_v2=9")],
        || {
            assert_eq!(nvmlInit_v2(), NVML_ERROR_DRIVER_NOT_LOADED);
            let mut count = 0;
            assert_eq!(
                unsafe { nvmlDeviceGetCount_v2(&mut count) },
                NVML_ERROR_UNINITIALIZED
            );
        },
    );
}

#[test]
fn injects_faults_from_the_fixture_and_logs_calls() {
    let mut report: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("a10gx4-ecc")).unwrap()).unwrap();
    report["fake_nvml"] = serde_json::json!({
        "errors": [{"function": "nvmlDeviceGetName", "device": 1, "code": 14}],
        "hangs": [{"function": "nvmlDeviceGetUUID", "device": 3, "ms": 600}],
        "lost_devices": [2]
    });
    let path = scratch("a10g-faults.json");
    std::fs::write(&path, report.to_string()).unwrap();
    let log = scratch("calls.log");
    let _ = std::fs::remove_file(&log);
    let vars = [
        (FIXTURE_ENV, path.to_str().unwrap()),
        (LOST_ENV, "0"),
        (CALL_LOG_ENV, log.to_str().unwrap()),
    ];
    with_env(&vars, || unsafe {
        assert_eq!(nvmlInit_v2(), NVML_SUCCESS);
        let handles: Vec<Handle> = (0..4).map(handle).collect();
        let mut buf = [0 as c_char; 96];
        assert_eq!(
            nvmlDeviceGetName(handles[0], buf.as_mut_ptr(), 96),
            NVML_ERROR_GPU_IS_LOST
        );
        assert_eq!(nvmlDeviceGetName(handles[1], buf.as_mut_ptr(), 96), 14);
        assert_eq!(
            nvmlDeviceGetName(handles[2], buf.as_mut_ptr(), 96),
            NVML_ERROR_GPU_IS_LOST
        );
        assert_eq!(string(nvmlDeviceGetName, handles[3]), "NVIDIA A10G");
        let start = Instant::now();
        assert_eq!(
            nvmlDeviceGetUUID(handles[3], buf.as_mut_ptr(), 96),
            NVML_SUCCESS
        );
        assert!(start.elapsed() >= Duration::from_millis(600));
        let start = Instant::now();
        assert_eq!(
            nvmlDeviceGetUUID(handles[1], buf.as_mut_ptr(), 96),
            NVML_SUCCESS
        );
        // Only device 3 hangs: a call that takes a few microseconds stays far under 600 ms
        // even on a loaded machine.
        assert!(start.elapsed() < Duration::from_millis(600));
        assert_eq!(nvmlShutdown(), NVML_SUCCESS);
    });
    let lines = std::fs::read_to_string(&log).unwrap();
    // nvmlErrorString is stateless and another test may call it concurrently.
    let lines: Vec<&str> = lines
        .lines()
        .filter(|l| !l.starts_with("nvmlErrorString"))
        .collect();
    assert_eq!(
        lines,
        [
            "nvmlInit_v2",
            "nvmlDeviceGetHandleByIndex_v2:0",
            "nvmlDeviceGetHandleByIndex_v2:1",
            "nvmlDeviceGetHandleByIndex_v2:2",
            "nvmlDeviceGetHandleByIndex_v2:3",
            "nvmlDeviceGetName:0",
            "nvmlDeviceGetName:1",
            "nvmlDeviceGetName:2",
            "nvmlDeviceGetName:3",
            "nvmlDeviceGetUUID:3",
            "nvmlDeviceGetUUID:1",
            "nvmlShutdown",
        ]
    );
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(log);
}

#[test]
fn serves_lists_the_way_nvml_wrapper_asks_for_them() {
    let h100 = fixture("h100x8").display().to_string();
    with_env(&[(FIXTURE_ENV, &h100)], || unsafe {
        assert_eq!(nvmlInit_v2(), NVML_SUCCESS);
        let h = handle(0);
        // Count first (0 and null), then the list with headroom.
        let mut count = 0;
        assert_eq!(
            nvmlDeviceGetComputeRunningProcesses_v3(h, &mut count, null_mut()),
            NVML_ERROR_INSUFFICIENT_SIZE
        );
        assert_eq!(count, 2);
        count += 5;
        let mut infos: Vec<ProcessInfo> = (0..count).map(|_| std::mem::zeroed()).collect();
        assert_eq!(
            nvmlDeviceGetComputeRunningProcesses_v3(h, &mut count, infos.as_mut_ptr()),
            NVML_SUCCESS
        );
        assert_eq!(count, 2);
        assert_eq!(
            (infos[0].pid, infos[0].used_gpu_memory),
            (41207, 40960 * MIB)
        );
        assert_eq!(infos[1].compute_instance_id, NO_INSTANCE);
        let mut graphics = 0;
        assert_eq!(
            nvmlDeviceGetGraphicsRunningProcesses_v3(h, &mut graphics, null_mut()),
            NVML_SUCCESS
        );
        assert_eq!(graphics, 0);

        let mut name = [0 as c_char; 256];
        assert_eq!(
            nvmlSystemGetProcessName(41207, name.as_mut_ptr(), 256),
            NVML_SUCCESS
        );
        assert_eq!(
            CStr::from_ptr(name.as_ptr()).to_str(),
            Ok("/usr/bin/python3")
        );
        assert_eq!(
            nvmlSystemGetProcessName(41207, name.as_mut_ptr(), 5),
            NVML_SUCCESS
        );
        assert_eq!(CStr::from_ptr(name.as_ptr()).to_str(), Ok("/usr"));
        assert_eq!(
            nvmlSystemGetProcessName(1, name.as_mut_ptr(), 256),
            NVML_ERROR_NOT_FOUND
        );

        let mut active = 0;
        for link in 0..18 {
            assert_eq!(
                nvmlDeviceGetNvLinkState(handle(7), link, &mut active),
                NVML_SUCCESS
            );
            assert_eq!(active, 1);
        }
        assert_eq!(
            nvmlDeviceGetNvLinkState(h, 18, &mut active),
            NVML_ERROR_INVALID_ARGUMENT
        );
        let (mut cur, mut pend) = (9, 9);
        assert_eq!(nvmlDeviceGetMigMode(h, &mut cur, &mut pend), NVML_SUCCESS);
        assert_eq!((cur, pend), (0, 0));
        assert_eq!(nvmlShutdown(), NVML_SUCCESS);
    });

    let a10g = fixture("a10gx4-ecc").display().to_string();
    with_env(&[(FIXTURE_ENV, &a10g)], || unsafe {
        assert_eq!(nvmlInit_v2(), NVML_SUCCESS);
        let h = handle(2);
        let mut errors = 0;
        assert_eq!(
            nvmlDeviceGetTotalEccErrors(h, 1, 0, &mut errors),
            NVML_SUCCESS
        );
        assert_eq!(errors, 2);
        assert_eq!(
            nvmlDeviceGetTotalEccErrors(h, 0, 1, &mut errors),
            NVML_SUCCESS
        );
        assert_eq!(errors, 0);
        let (mut c, mut u, mut p, mut f) = (9, 9, 9, 9);
        assert_eq!(
            nvmlDeviceGetRemappedRows(h, &mut c, &mut u, &mut p, &mut f),
            NVML_SUCCESS
        );
        assert_eq!((c, u, p, f), (0, 1, 1, 0));
        let mut pages = 0;
        assert_eq!(
            nvmlDeviceGetRetiredPages(h, 1, &mut pages, &mut 0),
            NVML_ERROR_NOT_SUPPORTED
        );
        assert_eq!(nvmlShutdown(), NVML_SUCCESS);
    });
}

#[test]
fn counts_retired_pages_like_nvml() {
    let mut report: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("l4")).unwrap()).unwrap();
    report["devices"][0]["retired_pages"] =
        serde_json::json!({"single_bit_ecc": 0, "double_bit_ecc": 3, "pending": true});
    let path = scratch("l4-retired.json");
    std::fs::write(&path, report.to_string()).unwrap();
    with_env(&[(FIXTURE_ENV, path.to_str().unwrap())], || unsafe {
        assert_eq!(nvmlInit_v2(), NVML_SUCCESS);
        let h = handle(0);
        let mut count = 0;
        assert_eq!(
            nvmlDeviceGetRetiredPages(h, 0, &mut count, &mut 0),
            NVML_SUCCESS
        );
        assert_eq!(count, 0);
        assert_eq!(
            nvmlDeviceGetRetiredPages(h, 1, &mut count, &mut 0),
            NVML_ERROR_INSUFFICIENT_SIZE
        );
        assert_eq!(count, 3);
        let (mut addresses, mut times) = ([0u64; 3], [0u64; 3]);
        assert_eq!(
            nvmlDeviceGetRetiredPages_v2(
                h,
                1,
                &mut count,
                addresses.as_mut_ptr(),
                times.as_mut_ptr()
            ),
            NVML_SUCCESS
        );
        assert!(addresses.iter().all(|&a| a != 0) && times.iter().all(|&t| t != 0));
        assert_eq!(
            u32_of(nvmlDeviceGetRetiredPagesPendingStatus, h),
            (NVML_SUCCESS, 1)
        );
        assert_eq!(nvmlShutdown(), NVML_SUCCESS);
    });
    let _ = std::fs::remove_file(path);
}

#[test]
fn describes_error_codes() {
    let text = |code| {
        unsafe { CStr::from_ptr(nvmlErrorString(code)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(text(NVML_ERROR_GPU_IS_LOST), "GPU is lost");
    assert_eq!(text(12345), "Unknown Error");
}
