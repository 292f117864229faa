//! Calls the exports directly, the way cudarc does, against the shared fixtures.

use super::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The exports read process-wide environment variables and state: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../fixtures/nvml/{name}.json"))
        .display()
        .to_string()
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "accelprobe-fake-cuda-{}-{name}",
        std::process::id()
    ))
}

/// Run `body` with exactly `vars` set among the fake's variables and no CUDA state.
fn with_env(vars: &[(&str, &str)], body: impl FnOnce()) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for name in [FIXTURE_ENV, ERRORS_ENV, HANG_ENV, CALL_LOG_ENV] {
        std::env::remove_var(name);
    }
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
    *lock() = None;
    body();
    *lock() = None;
}

fn attribute(attrib: c_int, dev: CuDevice) -> (CuResult, c_int) {
    let mut value = -1;
    let code = unsafe { cuDeviceGetAttribute(&mut value, attrib, dev) };
    (code, value)
}

fn name_of(dev: CuDevice) -> String {
    let mut buf = [0 as c_char; 128];
    assert_eq!(
        unsafe { cuDeviceGetName(buf.as_mut_ptr(), 128, dev) },
        CUDA_SUCCESS
    );
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn serves_the_seed_l40s() {
    with_env(&[(FIXTURE_ENV, &fixture("seed-l40s"))], || unsafe {
        let mut count = 0;
        assert_eq!(cuDeviceGetCount(&mut count), CUDA_ERROR_NOT_INITIALIZED);
        let mut version = 0;
        assert_eq!(
            cuDriverGetVersion(&mut version),
            CUDA_SUCCESS,
            "works before cuInit"
        );
        assert_eq!(version, 12020);
        assert_eq!(cuInit(0), CUDA_SUCCESS);
        assert_eq!(cuDeviceGetCount(&mut count), CUDA_SUCCESS);
        assert_eq!(count, 1);
        let mut dev = -1;
        assert_eq!(cuDeviceGet(&mut dev, 0), CUDA_SUCCESS);
        assert_eq!(dev, 0);
        assert_eq!(cuDeviceGet(&mut dev, 1), CUDA_ERROR_INVALID_DEVICE);
        assert_eq!(name_of(0), "NVIDIA L40S");
        let mut bytes = 0usize;
        assert_eq!(cuDeviceTotalMem_v2(&mut bytes, 0), CUDA_SUCCESS);
        assert_eq!(bytes, 45488 * 1024 * 1024, "cuda.total_memory_mib");
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0),
            (CUDA_SUCCESS, 8)
        );
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0),
            (CUDA_SUCCESS, 9)
        );
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0),
            (CUDA_SUCCESS, 142)
        );
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, 0),
            (CUDA_SUCCESS, 0x30)
        );
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, 0),
            (CUDA_SUCCESS, 0)
        );
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, 0),
            (CUDA_SUCCESS, 0)
        );
        assert_eq!(attribute(1, 0).0, CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            cuDeviceTotalMem_v2(std::ptr::null_mut(), 0),
            CUDA_ERROR_INVALID_VALUE
        );
    });
}

#[test]
fn derives_values_without_a_cuda_object_and_orders_by_ordinal() {
    let mut report: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("a10gx4-ecc")).unwrap()).unwrap();
    let devices = report["devices"].as_array_mut().unwrap();
    devices[3]["cuda"]["ordinal"] = 0.into();
    devices[0]["cuda"] = serde_json::json!({"ordinal": 3});
    devices.push(serde_json::json!({"index": 0, "vendor": "neuron", "name": "Trainium"}));
    let path = scratch("reordered.json");
    std::fs::write(&path, report.to_string()).unwrap();
    with_env(&[(FIXTURE_ENV, path.to_str().unwrap())], || unsafe {
        assert_eq!(cuInit(0), CUDA_SUCCESS);
        let mut count = 0;
        assert_eq!(cuDeviceGetCount(&mut count), CUDA_SUCCESS);
        assert_eq!(count, 4, "the Neuron device is not a CUDA device");
        // Ordinal 0 is NVML device 3 (bus 1E); ordinal 3 is NVML device 0 (bus 1B).
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, 0),
            (CUDA_SUCCESS, 0x1e)
        );
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, 3),
            (CUDA_SUCCESS, 0x1b)
        );
        // Device 0's `cuda` has only an ordinal: the rest comes from the device.
        assert_eq!(name_of(3), "NVIDIA A10G");
        let mut bytes = 0usize;
        assert_eq!(cuDeviceTotalMem_v2(&mut bytes, 3), CUDA_SUCCESS);
        assert_eq!(bytes, 23028 * 1024 * 1024, "memory_total_mib");
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 3),
            (CUDA_SUCCESS, 6)
        );
        assert_eq!(
            attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 3).0,
            CUDA_ERROR_NOT_SUPPORTED
        );
    });
    let _ = std::fs::remove_file(path);
}

#[test]
fn init_fails_without_a_usable_fixture() {
    with_env(&[], || {
        assert_eq!(cuInit(0), CUDA_ERROR_NO_DEVICE);
    });
    let bad = scratch("bad.json");
    std::fs::write(&bad, "[1, 2").unwrap();
    with_env(&[(FIXTURE_ENV, bad.to_str().unwrap())], || {
        assert_eq!(cuInit(0), CUDA_ERROR_UNKNOWN);
    });
    std::fs::write(&bad, r#"{"devices": []}"#).unwrap();
    with_env(&[(FIXTURE_ENV, bad.to_str().unwrap())], || {
        assert_eq!(cuInit(0), CUDA_ERROR_NO_DEVICE);
    });
    let _ = std::fs::remove_file(bad);
}

#[test]
fn injects_errors_and_hangs_and_logs_calls() {
    let log = scratch("calls.log");
    let _ = std::fs::remove_file(&log);
    let l4 = fixture("l4");
    let vars = [
        (FIXTURE_ENV, l4.as_str()),
        (
            ERRORS_ENV,
            "cuDeviceGetName:0=999,cuDeviceTotalMem_v2=12345",
        ),
        (HANG_ENV, "cuDeviceGetCount=120"),
        (CALL_LOG_ENV, log.to_str().unwrap()),
    ];
    with_env(&vars, || unsafe {
        assert_eq!(cuInit(0), CUDA_SUCCESS);
        let start = Instant::now();
        let mut count = 0;
        assert_eq!(cuDeviceGetCount(&mut count), CUDA_SUCCESS);
        assert!(start.elapsed() >= Duration::from_millis(120));
        assert_eq!(count, 1);
        let mut buf = [0 as c_char; 128];
        assert_eq!(
            cuDeviceGetName(buf.as_mut_ptr(), 128, 0),
            CUDA_ERROR_UNKNOWN
        );
        let mut bytes = 0usize;
        assert_eq!(
            cuDeviceTotalMem_v2(&mut bytes, 0),
            CUDA_ERROR_UNKNOWN,
            "a code CUDA does not define becomes CUDA_ERROR_UNKNOWN"
        );
    });
    with_env(&[(FIXTURE_ENV, &l4), (ERRORS_ENV, "cuInit=100")], || {
        assert_eq!(cuInit(0), CUDA_ERROR_NO_DEVICE);
    });
    let lines = std::fs::read_to_string(&log).unwrap();
    // Error-string lookups are stateless and another test may make them concurrently.
    assert_eq!(
        lines
            .lines()
            .filter(|l| !l.starts_with("cuGetError"))
            .collect::<Vec<_>>(),
        [
            "cuInit",
            "cuDeviceGetCount",
            "cuDeviceGetName:0",
            "cuDeviceTotalMem_v2:0"
        ]
    );
    let _ = std::fs::remove_file(log);
}

#[test]
fn names_and_describes_errors() {
    let text = |f: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult, code| {
        let mut p = std::ptr::null();
        let rc = unsafe { f(code, &mut p) };
        (
            rc,
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap()),
        )
    };
    assert_eq!(
        text(cuGetErrorName, 100),
        (CUDA_SUCCESS, Some("CUDA_ERROR_NO_DEVICE"))
    );
    assert_eq!(
        text(cuGetErrorString, 100),
        (CUDA_SUCCESS, Some("no CUDA-capable device is detected"))
    );
    assert_eq!(
        text(cuGetErrorString, 912),
        (CUDA_SUCCESS, Some("CUDA_ERROR_INVALID_CLUSTER_SIZE"))
    );
    assert_eq!(text(cuGetErrorName, 4242), (CUDA_ERROR_INVALID_VALUE, None));
}
