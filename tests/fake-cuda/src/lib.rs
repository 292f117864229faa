//! A test-only stand-in for the CUDA driver (`libcuda.so`) that serves GPUs from the same
//! accelprobe report as the fake NVML.
//!
//! `cuInit` reads the report named by [`FIXTURE_ENV`] (the fake NVML's variable). Every
//! `devices[]` entry whose `vendor` is `nvidia` (or missing) is one CUDA device; its values
//! come from the entry's `cuda` object (`ordinal`, `name`, `compute_capability`,
//! `multiprocessor_count`, `total_memory_mib`, `pci_bus_id`) and, field by field where that
//! is absent or null, from the device itself (`name`, `compute_capability`,
//! `memory_total_mib`, `pci_bus_id`; the multiprocessor count has no such fallback). Devices
//! are numbered by `cuda.ordinal`, else by position. A value that is still unknown makes its
//! call return `CUDA_ERROR_NOT_SUPPORTED`. `cuDriverGetVersion` comes from the `cuda`
//! runtime's `version` (`"12.2"` → 12020), else the `nvml` runtime's `cuda_version`.
//!
//! `cuInit` without [`FIXTURE_ENV`] returns `CUDA_ERROR_NO_DEVICE`, as it does with a report
//! that lists no NVIDIA device; an unreadable or malformed report or injection rule gives
//! `CUDA_ERROR_UNKNOWN`. Other calls before a successful `cuInit` return
//! `CUDA_ERROR_NOT_INITIALIZED` (except `cuDriverGetVersion`, `cuGetErrorString` and
//! `cuGetErrorName`, which work without it, as in the real driver).
//!
//! Faults: [`ERRORS_ENV`] and [`HANG_ENV`] (`function[:ordinal]=code-or-ms,...`) and the
//! report's optional [`FIXTURE_SECTION`] object (`errors`, `hangs`), with the fake NVML's
//! syntax. cudarc decodes `CUresult` into a Rust enum, so an injected code that CUDA 12.0
//! does not define is replaced by `CUDA_ERROR_UNKNOWN` (999). Each call first appends its
//! name (and `:ordinal`) to the file named by [`CALL_LOG_ENV`] when set, then hangs, then
//! fails, as the rules say.
//!
//! Safety: every export is an `unsafe extern "C" fn` with the contract of the CUDA function
//! of the same name; null out-pointers give `CUDA_ERROR_INVALID_VALUE` and a panic never
//! crosses the FFI boundary (it becomes `CUDA_ERROR_UNKNOWN`).

#![allow(non_snake_case)] // the exported names are CUDA's
#![allow(clippy::missing_safety_doc)] // see "Safety" above: each export has CUDA's contract

#[path = "../../fake-nvml/src/shared.rs"]
#[allow(dead_code)] // lost devices are an NVML-only fault
mod shared;

use std::ffi::{c_char, c_int, c_uint, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use shared::{FixtureError, Rules};

/// Path of the report to serve (shared with the fake NVML).
pub const FIXTURE_ENV: &str = "ACCELPROBE_FAKE_NVML_FIXTURE";
/// Errors to inject: `function[:ordinal]=code,...`.
pub const ERRORS_ENV: &str = "ACCELPROBE_FAKE_CUDA_ERRORS";
/// Hangs to inject: `function[:ordinal]=milliseconds,...`.
pub const HANG_ENV: &str = "ACCELPROBE_FAKE_CUDA_HANG";
/// File to which every call appends `function` or `function:ordinal`, one per line.
pub const CALL_LOG_ENV: &str = "ACCELPROBE_FAKE_CUDA_CALL_LOG";
/// Key of the report's optional injection object.
pub const FIXTURE_SECTION: &str = "fake_cuda";

/// `CUresult`.
type CuResult = c_int;
/// `CUdevice`: the ordinal.
type CuDevice = c_int;
type R<T = ()> = Result<T, CuResult>;

const CUDA_SUCCESS: CuResult = 0;
const CUDA_ERROR_INVALID_VALUE: CuResult = 1;
const CUDA_ERROR_NOT_INITIALIZED: CuResult = 3;
const CUDA_ERROR_NO_DEVICE: CuResult = 100;
const CUDA_ERROR_INVALID_DEVICE: CuResult = 101;
const CUDA_ERROR_NOT_SUPPORTED: CuResult = 801;
const CUDA_ERROR_UNKNOWN: CuResult = 999;

const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: c_int = 16;
const CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: c_int = 33;
const CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: c_int = 34;
const CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: c_int = 50;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: c_int = 75;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: c_int = 76;

/// Every `CUresult` of CUDA 12.0 (cudarc's `cuda-12000` enum) with its name.
const ERROR_NAMES: &[(CuResult, &CStr)] = &[
    (0, c"CUDA_SUCCESS"),
    (1, c"CUDA_ERROR_INVALID_VALUE"),
    (2, c"CUDA_ERROR_OUT_OF_MEMORY"),
    (3, c"CUDA_ERROR_NOT_INITIALIZED"),
    (4, c"CUDA_ERROR_DEINITIALIZED"),
    (5, c"CUDA_ERROR_PROFILER_DISABLED"),
    (6, c"CUDA_ERROR_PROFILER_NOT_INITIALIZED"),
    (7, c"CUDA_ERROR_PROFILER_ALREADY_STARTED"),
    (8, c"CUDA_ERROR_PROFILER_ALREADY_STOPPED"),
    (34, c"CUDA_ERROR_STUB_LIBRARY"),
    (46, c"CUDA_ERROR_DEVICE_UNAVAILABLE"),
    (100, c"CUDA_ERROR_NO_DEVICE"),
    (101, c"CUDA_ERROR_INVALID_DEVICE"),
    (102, c"CUDA_ERROR_DEVICE_NOT_LICENSED"),
    (200, c"CUDA_ERROR_INVALID_IMAGE"),
    (201, c"CUDA_ERROR_INVALID_CONTEXT"),
    (202, c"CUDA_ERROR_CONTEXT_ALREADY_CURRENT"),
    (205, c"CUDA_ERROR_MAP_FAILED"),
    (206, c"CUDA_ERROR_UNMAP_FAILED"),
    (207, c"CUDA_ERROR_ARRAY_IS_MAPPED"),
    (208, c"CUDA_ERROR_ALREADY_MAPPED"),
    (209, c"CUDA_ERROR_NO_BINARY_FOR_GPU"),
    (210, c"CUDA_ERROR_ALREADY_ACQUIRED"),
    (211, c"CUDA_ERROR_NOT_MAPPED"),
    (212, c"CUDA_ERROR_NOT_MAPPED_AS_ARRAY"),
    (213, c"CUDA_ERROR_NOT_MAPPED_AS_POINTER"),
    (214, c"CUDA_ERROR_ECC_UNCORRECTABLE"),
    (215, c"CUDA_ERROR_UNSUPPORTED_LIMIT"),
    (216, c"CUDA_ERROR_CONTEXT_ALREADY_IN_USE"),
    (217, c"CUDA_ERROR_PEER_ACCESS_UNSUPPORTED"),
    (218, c"CUDA_ERROR_INVALID_PTX"),
    (219, c"CUDA_ERROR_INVALID_GRAPHICS_CONTEXT"),
    (220, c"CUDA_ERROR_NVLINK_UNCORRECTABLE"),
    (221, c"CUDA_ERROR_JIT_COMPILER_NOT_FOUND"),
    (222, c"CUDA_ERROR_UNSUPPORTED_PTX_VERSION"),
    (223, c"CUDA_ERROR_JIT_COMPILATION_DISABLED"),
    (224, c"CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY"),
    (300, c"CUDA_ERROR_INVALID_SOURCE"),
    (301, c"CUDA_ERROR_FILE_NOT_FOUND"),
    (302, c"CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND"),
    (303, c"CUDA_ERROR_SHARED_OBJECT_INIT_FAILED"),
    (304, c"CUDA_ERROR_OPERATING_SYSTEM"),
    (400, c"CUDA_ERROR_INVALID_HANDLE"),
    (401, c"CUDA_ERROR_ILLEGAL_STATE"),
    (500, c"CUDA_ERROR_NOT_FOUND"),
    (600, c"CUDA_ERROR_NOT_READY"),
    (700, c"CUDA_ERROR_ILLEGAL_ADDRESS"),
    (701, c"CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"),
    (702, c"CUDA_ERROR_LAUNCH_TIMEOUT"),
    (703, c"CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING"),
    (704, c"CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED"),
    (705, c"CUDA_ERROR_PEER_ACCESS_NOT_ENABLED"),
    (708, c"CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE"),
    (709, c"CUDA_ERROR_CONTEXT_IS_DESTROYED"),
    (710, c"CUDA_ERROR_ASSERT"),
    (711, c"CUDA_ERROR_TOO_MANY_PEERS"),
    (712, c"CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED"),
    (713, c"CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED"),
    (714, c"CUDA_ERROR_HARDWARE_STACK_ERROR"),
    (715, c"CUDA_ERROR_ILLEGAL_INSTRUCTION"),
    (716, c"CUDA_ERROR_MISALIGNED_ADDRESS"),
    (717, c"CUDA_ERROR_INVALID_ADDRESS_SPACE"),
    (718, c"CUDA_ERROR_INVALID_PC"),
    (719, c"CUDA_ERROR_LAUNCH_FAILED"),
    (720, c"CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE"),
    (800, c"CUDA_ERROR_NOT_PERMITTED"),
    (801, c"CUDA_ERROR_NOT_SUPPORTED"),
    (802, c"CUDA_ERROR_SYSTEM_NOT_READY"),
    (803, c"CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"),
    (804, c"CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"),
    (805, c"CUDA_ERROR_MPS_CONNECTION_FAILED"),
    (806, c"CUDA_ERROR_MPS_RPC_FAILURE"),
    (807, c"CUDA_ERROR_MPS_SERVER_NOT_READY"),
    (808, c"CUDA_ERROR_MPS_MAX_CLIENTS_REACHED"),
    (809, c"CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED"),
    (810, c"CUDA_ERROR_MPS_CLIENT_TERMINATED"),
    (811, c"CUDA_ERROR_CDP_NOT_SUPPORTED"),
    (812, c"CUDA_ERROR_CDP_VERSION_MISMATCH"),
    (900, c"CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"),
    (901, c"CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"),
    (902, c"CUDA_ERROR_STREAM_CAPTURE_MERGE"),
    (903, c"CUDA_ERROR_STREAM_CAPTURE_UNMATCHED"),
    (904, c"CUDA_ERROR_STREAM_CAPTURE_UNJOINED"),
    (905, c"CUDA_ERROR_STREAM_CAPTURE_ISOLATION"),
    (906, c"CUDA_ERROR_STREAM_CAPTURE_IMPLICIT"),
    (907, c"CUDA_ERROR_CAPTURED_EVENT"),
    (908, c"CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD"),
    (909, c"CUDA_ERROR_TIMEOUT"),
    (910, c"CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE"),
    (911, c"CUDA_ERROR_EXTERNAL_DEVICE"),
    (912, c"CUDA_ERROR_INVALID_CLUSTER_SIZE"),
    (999, c"CUDA_ERROR_UNKNOWN"),
];

/// `cuGetErrorString`'s text for the codes the fake is likely to return; the others get
/// their name.
fn error_description(code: CuResult) -> Option<&'static CStr> {
    Some(match code {
        0 => c"no error",
        1 => c"invalid argument",
        2 => c"out of memory",
        3 => c"initialization error",
        4 => c"driver shutting down",
        34 => c"CUDA driver is a stub library",
        46 => c"CUDA-capable device(s) is/are busy or unavailable",
        100 => c"no CUDA-capable device is detected",
        101 => c"invalid device ordinal",
        214 => c"uncorrectable ECC error encountered",
        801 => c"operation not supported",
        803 => c"system has unsupported display driver / cuda driver combination",
        909 => c"the operation timed out",
        999 => c"unknown error",
        _ => return None,
    })
}

fn error_name(code: CuResult) -> Option<&'static CStr> {
    ERROR_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

// ---------------------------------------------------------------------------------------
// State

/// One CUDA device as the fixture describes it; `None` = not known.
struct Device {
    name: Option<String>,
    compute_capability: Option<(c_int, c_int)>,
    multiprocessor_count: Option<c_int>,
    total_bytes: Option<usize>,
    pci: Option<(u32, u32, u32)>,
}

struct State {
    driver_version: Option<c_int>,
    /// In ordinal order.
    devices: Vec<Device>,
    rules: Rules,
}

impl State {
    fn load() -> Result<State, FixtureError> {
        let fixture = shared::read_fixture(FIXTURE_ENV)?;
        let mut devices = Vec::new();
        for (position, d) in shared::nvidia_devices(&fixture)?.iter().enumerate() {
            devices.push(parse_device(position, d).ok_or(FixtureError::Bad)?);
        }
        devices.sort_by_key(|(ordinal, _)| *ordinal);
        let version = |runtime: &str, key: &str| {
            shared::runtime(&fixture, runtime)
                .get(key)
                .and_then(Value::as_str)
                .and_then(shared::cuda_version_number)
        };
        Ok(State {
            driver_version: version("cuda", "version").or_else(|| version("nvml", "cuda_version")),
            devices: devices.into_iter().map(|(_, d)| d).collect(),
            rules: Rules::load(fixture.get(FIXTURE_SECTION), ERRORS_ENV, HANG_ENV, None)?,
        })
    }

    /// Hang and/or fail as the rules say for this call.
    fn inject(&self, function: &str, device: Option<usize>) -> R {
        if let Some(delay) = self.rules.hang_for(function, device) {
            std::thread::sleep(delay);
        }
        match self.rules.error_for(function, device) {
            Some(code) => Err(CuResult::try_from(code)
                .ok()
                .filter(|&c| error_name(c).is_some())
                .unwrap_or(CUDA_ERROR_UNKNOWN)),
            None => Ok(()),
        }
    }

    fn device(&self, dev: CuDevice) -> R<&Device> {
        usize::try_from(dev)
            .ok()
            .and_then(|i| self.devices.get(i))
            .ok_or(CUDA_ERROR_INVALID_DEVICE)
    }
}

/// `(ordinal, device)` from one fixture entry; `None` when a value has the wrong type.
fn parse_device(position: usize, d: &Value) -> Option<(usize, Device)> {
    let cuda = d.get("cuda").filter(|c| !c.is_null());
    // `cuda.<key>`, else the device's `<fallback>`; null counts as absent, a wrong type is
    // an error (outer `None`).
    let pick = |key: &str, fallback: Option<&str>| -> Option<Option<&Value>> {
        let found = cuda
            .and_then(|c| c.get(key))
            .filter(|v| !v.is_null())
            .or_else(|| fallback.and_then(|f| d.get(f)).filter(|v| !v.is_null()));
        Some(found)
    };
    let ordinal = match pick("ordinal", None)? {
        None => position,
        Some(v) => usize::try_from(v.as_u64()?).ok()?,
    };
    let name = match pick("name", Some("name"))? {
        None => None,
        Some(v) => Some(v.as_str()?.to_string()),
    };
    let compute_capability = match pick("compute_capability", Some("compute_capability"))? {
        None => None,
        Some(v) => {
            let (major, minor) = v.as_str()?.split_once('.')?;
            Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
        }
    };
    let multiprocessor_count = match pick("multiprocessor_count", None)? {
        None => None,
        Some(v) => Some(c_int::try_from(v.as_u64()?).ok()?),
    };
    let total_bytes = match pick("total_memory_mib", Some("memory_total_mib"))? {
        None => None,
        Some(v) => Some(usize::try_from(v.as_u64()?.checked_mul(1024 * 1024)?).ok()?),
    };
    let pci = match pick("pci_bus_id", Some("pci_bus_id"))? {
        None => None,
        Some(v) => Some(shared::parse_pci_bus_id(v.as_str()?)?),
    };
    Some((
        ordinal,
        Device {
            name,
            compute_capability,
            multiprocessor_count,
            total_bytes,
            pci,
        },
    ))
}

static STATE: Mutex<Option<Arc<State>>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Arc<State>>> {
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn current() -> R<Arc<State>> {
    lock().clone().ok_or(CUDA_ERROR_NOT_INITIALIZED)
}

/// Run `body` with panics turned into `CUDA_ERROR_UNKNOWN`.
fn ffi(body: impl FnOnce() -> R) -> CuResult {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CUDA_SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => CUDA_ERROR_UNKNOWN,
    }
}

/// A call that needs `cuInit` first; `device` is the ordinal it is about, if any.
fn call(function: &str, device: Option<CuDevice>, body: impl FnOnce(&State) -> R) -> CuResult {
    ffi(|| {
        let index = device.and_then(|d| usize::try_from(d).ok());
        shared::log_call(CALL_LOG_ENV, function, index);
        let state = current()?;
        if let Some(d) = device {
            state.device(d)?;
        }
        state.inject(function, index)?;
        body(&state)
    })
}

/// The out-pointer as a reference; null is an invalid value.
///
/// # Safety
/// `p` must be null or valid for writes of a `T`.
unsafe fn out<'a, T>(p: *mut T) -> R<&'a mut T> {
    // SAFETY: caller's contract.
    unsafe { p.as_mut() }.ok_or(CUDA_ERROR_INVALID_VALUE)
}

// ---------------------------------------------------------------------------------------
// Exports

/// Loads (or reloads) the fixture.
#[no_mangle]
pub extern "C" fn cuInit(flags: c_uint) -> CuResult {
    ffi(|| {
        shared::log_call(CALL_LOG_ENV, "cuInit", None);
        if flags != 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let state = State::load().map_err(|e| match e {
            FixtureError::Missing => CUDA_ERROR_NO_DEVICE,
            FixtureError::Bad => CUDA_ERROR_UNKNOWN,
        })?;
        state.inject("cuInit", None)?;
        if state.devices.is_empty() {
            return Err(CUDA_ERROR_NO_DEVICE);
        }
        *lock() = Some(Arc::new(state));
        Ok(())
    })
}

/// Works before `cuInit` (reading the fixture then); not supported when the fixture has no
/// CUDA version.
#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> CuResult {
    ffi(|| {
        shared::log_call(CALL_LOG_ENV, "cuDriverGetVersion", None);
        // SAFETY: the export's contract.
        let slot = unsafe { out(version) }?;
        let state = match current() {
            Ok(state) => state,
            Err(_) => Arc::new(State::load().map_err(|_| CUDA_ERROR_NOT_INITIALIZED)?),
        };
        state.inject("cuDriverGetVersion", None)?;
        *slot = state.driver_version.ok_or(CUDA_ERROR_NOT_SUPPORTED)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CuResult {
    call("cuDeviceGetCount", None, |s| {
        // SAFETY: the export's contract.
        *unsafe { out(count) }? =
            c_int::try_from(s.devices.len()).map_err(|_| CUDA_ERROR_UNKNOWN)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(device: *mut CuDevice, ordinal: c_int) -> CuResult {
    call("cuDeviceGet", Some(ordinal), |_| {
        // SAFETY: the export's contract.
        *unsafe { out(device) }? = ordinal;
        Ok(())
    })
}

/// Crops the name to the buffer, like the real driver.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CuDevice) -> CuResult {
    call("cuDeviceGetName", Some(dev), |s| {
        let len = usize::try_from(len).ok().filter(|&n| n > 0);
        let (Some(len), false) = (len, name.is_null()) else {
            return Err(CUDA_ERROR_INVALID_VALUE);
        };
        let text = s
            .device(dev)?
            .name
            .as_deref()
            .ok_or(CUDA_ERROR_NOT_SUPPORTED)?;
        let mut end = text.len().min(len - 1);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // SAFETY: the export's contract; the cropped text and its NUL fit in `len` bytes.
        unsafe { shared::copy_c_string(name, len, &text[..end]) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CuDevice) -> CuResult {
    call("cuDeviceTotalMem_v2", Some(dev), |s| {
        // SAFETY: the export's contract.
        let slot = unsafe { out(bytes) }?;
        *slot = s.device(dev)?.total_bytes.ok_or(CUDA_ERROR_NOT_SUPPORTED)?;
        Ok(())
    })
}

/// Compute capability, multiprocessor count and PCI location; other attributes are
/// `CUDA_ERROR_INVALID_VALUE`.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    value: *mut c_int,
    attrib: c_int,
    dev: CuDevice,
) -> CuResult {
    call("cuDeviceGetAttribute", Some(dev), |s| {
        // SAFETY: the export's contract.
        let slot = unsafe { out(value) }?;
        let d = s.device(dev)?;
        let cc = d.compute_capability;
        let pci = |pick: fn((u32, u32, u32)) -> u32| d.pci.map(|p| pick(p) as c_int);
        let found = match attrib {
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR => cc.map(|c| c.0),
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR => cc.map(|c| c.1),
            CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT => d.multiprocessor_count,
            CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID => pci(|p| p.0),
            CU_DEVICE_ATTRIBUTE_PCI_BUS_ID => pci(|p| p.1),
            CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID => pci(|p| p.2),
            _ => return Err(CUDA_ERROR_INVALID_VALUE),
        };
        *slot = found.ok_or(CUDA_ERROR_NOT_SUPPORTED)?;
        Ok(())
    })
}

/// Shared body of `cuGetErrorString` / `cuGetErrorName`: an unknown code sets `*text` to
/// null and returns `CUDA_ERROR_INVALID_VALUE`.
fn error_text(
    function: &str,
    code: CuResult,
    text: *mut *const c_char,
    describe: bool,
) -> CuResult {
    ffi(|| {
        shared::log_call(CALL_LOG_ENV, function, None);
        // SAFETY: the exports' contract.
        let slot = unsafe { out(text) }?;
        let found = error_name(code).map(|name| {
            if describe {
                error_description(code).unwrap_or(name)
            } else {
                name
            }
        });
        *slot = found.map_or(std::ptr::null(), CStr::as_ptr);
        found.map(|_| ()).ok_or(CUDA_ERROR_INVALID_VALUE)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(error: CuResult, text: *mut *const c_char) -> CuResult {
    error_text("cuGetErrorString", error, text, true)
}

#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(error: CuResult, text: *mut *const c_char) -> CuResult {
    error_text("cuGetErrorName", error, text, false)
}

#[cfg(test)]
mod tests;
