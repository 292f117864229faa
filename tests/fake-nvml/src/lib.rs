//! A test-only stand-in for `libnvidia-ml.so.1` that serves GPUs from an accelprobe report.
//!
//! `nvmlInit_v2` (and `nvmlInit`, `nvmlInitWithFlags`) reads the report named by
//! [`FIXTURE_ENV`]: the `runtimes[]` entry named `nvml` gives the system values and every
//! `devices[]` entry whose `vendor` is `nvidia` (or missing) becomes one GPU, numbered by its
//! position in that list. Each exported function reads the report field it stands for; a
//! field that is `null` or absent makes it return `NVML_ERROR_NOT_SUPPORTED`, a field of the
//! wrong type `NVML_ERROR_UNKNOWN`. Init without [`FIXTURE_ENV`] returns
//! `NVML_ERROR_DRIVER_NOT_LOADED`; an unreadable or malformed fixture or injection rule
//! returns `NVML_ERROR_UNKNOWN`. The fake never prints.
//!
//! Faults come from the fixture's [`FIXTURE_SECTION`] object and from [`ERRORS_ENV`],
//! [`HANG_ENV`] and [`LOST_ENV`] (syntax in `shared.rs` and `README.md`). Every call first
//! appends its name to the file named by [`CALL_LOG_ENV`] (when set), then hangs if a rule
//! says so, then returns an injected error if one matches, then returns
//! `NVML_ERROR_GPU_IS_LOST` for a lost device, and only then does its work.
//!
//! Device handles are `position + 1` cast to a pointer. Each init re-reads the fixture and
//! the environment (the latest wins) and counts one reference; the last `nvmlShutdown`
//! forgets the state, after which calls return `NVML_ERROR_UNINITIALIZED`.
//!
//! Safety: every export is an `unsafe extern "C" fn` with the contract of the NVML function
//! of the same name (out-pointers null or valid, string buffers valid for their length).
//! Null out-pointers give `NVML_ERROR_INVALID_ARGUMENT`, and a panic never crosses the FFI
//! boundary (it becomes `NVML_ERROR_UNKNOWN`).

#![allow(non_snake_case)] // the exported names are NVML's
#![allow(clippy::missing_safety_doc)] // see "Safety" above: each export has NVML's contract

mod shared;

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr};
use std::mem::size_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use shared::{FixtureError, Rules};

/// Path of the report to serve.
pub const FIXTURE_ENV: &str = "ACCELPROBE_FAKE_NVML_FIXTURE";
/// Errors to inject: `function[:device]=code,...`.
pub const ERRORS_ENV: &str = "ACCELPROBE_FAKE_NVML_ERRORS";
/// Hangs to inject: `function[:device]=milliseconds,...`.
pub const HANG_ENV: &str = "ACCELPROBE_FAKE_NVML_HANG";
/// Lost devices: `index,...`.
pub const LOST_ENV: &str = "ACCELPROBE_FAKE_NVML_LOST";
/// File to which every call appends `function` or `function:device`, one per line.
pub const CALL_LOG_ENV: &str = "ACCELPROBE_FAKE_NVML_CALL_LOG";
/// Key of the fixture's optional injection object.
pub const FIXTURE_SECTION: &str = "fake_nvml";

/// `nvmlReturn_t`.
type Ret = c_uint;
/// `nvmlDevice_t`: position + 1.
type Handle = *mut c_void;
type R<T = ()> = Result<T, Ret>;

const NVML_SUCCESS: Ret = 0;
const NVML_ERROR_UNINITIALIZED: Ret = 1;
const NVML_ERROR_INVALID_ARGUMENT: Ret = 2;
const NVML_ERROR_NOT_SUPPORTED: Ret = 3;
const NVML_ERROR_NOT_FOUND: Ret = 6;
const NVML_ERROR_INSUFFICIENT_SIZE: Ret = 7;
const NVML_ERROR_DRIVER_NOT_LOADED: Ret = 9;
const NVML_ERROR_GPU_IS_LOST: Ret = 15;
const NVML_ERROR_ARGUMENT_VERSION_MISMATCH: Ret = 25;
const NVML_ERROR_UNKNOWN: Ret = 999;

/// `NVML_VALUE_NOT_AVAILABLE` as an unsigned long long (process memory not readable).
const VALUE_NOT_AVAILABLE: c_ulonglong = c_ulonglong::MAX;
/// `gpuInstanceId` / `computeInstanceId` of a process outside any MIG instance.
const NO_INSTANCE: c_uint = c_uint::MAX;
const MIB: u64 = 1024 * 1024;

/// Layout of `nvmlPciInfo_t` (`nvmlDeviceGetPciInfo_v3`).
#[repr(C)]
pub struct PciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

/// Layout of `nvmlMemory_t`.
#[repr(C)]
pub struct Memory {
    total: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// Layout of `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// `NVML_STRUCT_VERSION(Memory, 2)`, which the caller must put in `MemoryV2::version`.
const MEMORY_V2_VERSION: c_uint = size_of::<MemoryV2>() as c_uint | (2 << 24);

/// Layout of `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

/// Layout of `nvmlProcessInfo_t` (v2, used by the `_v3` process queries).
#[repr(C)]
pub struct ProcessInfo {
    pid: c_uint,
    used_gpu_memory: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

// ---------------------------------------------------------------------------------------
// State and the call wrappers

struct State {
    /// The fixture's `runtimes[]` entry named `nvml` (or null).
    runtime: Value,
    devices: Vec<Value>,
    rules: Rules,
}

impl State {
    fn load() -> R<State> {
        let code = |e: FixtureError| match e {
            FixtureError::Missing => NVML_ERROR_DRIVER_NOT_LOADED,
            FixtureError::Bad => NVML_ERROR_UNKNOWN,
        };
        let fixture = shared::read_fixture(FIXTURE_ENV).map_err(code)?;
        let devices = shared::nvidia_devices(&fixture).map_err(code)?;
        let rules = Rules::load(
            fixture.get(FIXTURE_SECTION),
            ERRORS_ENV,
            HANG_ENV,
            Some(LOST_ENV),
        )
        .map_err(code)?;
        Ok(State {
            runtime: shared::runtime(&fixture, "nvml").clone(),
            devices,
            rules,
        })
    }

    /// Hang and/or fail as the rules say for this call.
    fn inject(&self, function: &str, device: Option<usize>) -> R {
        if let Some(delay) = self.rules.hang_for(function, device) {
            std::thread::sleep(delay);
        }
        match self.rules.error_for(function, device) {
            Some(code) => Err(Ret::try_from(code).unwrap_or(NVML_ERROR_UNKNOWN)),
            None => Ok(()),
        }
    }
}

/// Init reference count and the state it serves.
static STATE: Mutex<Option<(u32, Arc<State>)>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<(u32, Arc<State>)>> {
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn current() -> R<Arc<State>> {
    lock()
        .as_ref()
        .map(|(_, state)| Arc::clone(state))
        .ok_or(NVML_ERROR_UNINITIALIZED)
}

/// Run `body` with panics turned into `NVML_ERROR_UNKNOWN`.
fn ffi(body: impl FnOnce() -> R) -> Ret {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => NVML_SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => NVML_ERROR_UNKNOWN,
    }
}

/// A call about no device.
fn system_call(function: &str, body: impl FnOnce(&State) -> R) -> Ret {
    ffi(|| {
        shared::log_call(CALL_LOG_ENV, function, None);
        let state = current()?;
        state.inject(function, None)?;
        body(&state)
    })
}

/// A call about the device behind `handle`; `body` gets its position and fixture entry.
fn device_call(function: &str, handle: Handle, body: impl FnOnce(usize, &Value) -> R) -> Ret {
    ffi(|| {
        let index = (handle as usize).checked_sub(1);
        shared::log_call(CALL_LOG_ENV, function, index);
        let state = current()?;
        let index = index
            .filter(|&i| i < state.devices.len())
            .ok_or(NVML_ERROR_INVALID_ARGUMENT)?;
        state.inject(function, Some(index))?;
        if state.rules.is_lost(index) {
            return Err(NVML_ERROR_GPU_IS_LOST);
        }
        body(index, &state.devices[index])
    })
}

// ---------------------------------------------------------------------------------------
// Reading the fixture and writing results

/// The value at JSON `pointer`; null or absent is "not supported".
fn field<'a>(value: &'a Value, pointer: &str) -> R<&'a Value> {
    match value.pointer(pointer) {
        None | Some(Value::Null) => Err(NVML_ERROR_NOT_SUPPORTED),
        Some(v) => Ok(v),
    }
}

fn u64_at(value: &Value, pointer: &str) -> R<u64> {
    field(value, pointer)?.as_u64().ok_or(NVML_ERROR_UNKNOWN)
}

fn u32_at(value: &Value, pointer: &str) -> R<u32> {
    u32::try_from(u64_at(value, pointer)?).map_err(|_| NVML_ERROR_UNKNOWN)
}

fn bool_at(value: &Value, pointer: &str) -> R<bool> {
    field(value, pointer)?.as_bool().ok_or(NVML_ERROR_UNKNOWN)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> R<&'a str> {
    field(value, pointer)?.as_str().ok_or(NVML_ERROR_UNKNOWN)
}

/// Watts at `pointer` as NVML's milliwatts.
fn milliwatts_at(value: &Value, pointer: &str) -> R<c_uint> {
    let watts = field(value, pointer)?.as_f64().ok_or(NVML_ERROR_UNKNOWN)?;
    if !(0.0..=4_000_000.0).contains(&watts) {
        return Err(NVML_ERROR_UNKNOWN);
    }
    Ok((watts * 1000.0).round() as c_uint)
}

/// "Not supported" (a null field) as `None`; other errors stay errors.
fn optional<T>(result: R<T>) -> R<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(NVML_ERROR_NOT_SUPPORTED) => Ok(None),
        Err(code) => Err(code),
    }
}

fn mib_to_bytes(mib: u64) -> c_ulonglong {
    mib.saturating_mul(MIB)
}

/// The out-pointer as a reference; null is an invalid argument.
///
/// # Safety
/// `p` must be null or valid for reads and writes of a `T`.
unsafe fn out<'a, T>(p: *mut T) -> R<&'a mut T> {
    // SAFETY: caller's contract.
    unsafe { p.as_mut() }.ok_or(NVML_ERROR_INVALID_ARGUMENT)
}

/// Write `text` into a caller's buffer, or report that it is too small.
///
/// # Safety
/// `buf` must be null or valid for `len` bytes.
unsafe fn out_str(buf: *mut c_char, len: c_uint, text: &str) -> R {
    if buf.is_null() {
        return Err(NVML_ERROR_INVALID_ARGUMENT);
    }
    // SAFETY: caller's contract.
    if unsafe { shared::copy_c_string(buf, len as usize, text) } {
        Ok(())
    } else {
        Err(NVML_ERROR_INSUFFICIENT_SIZE)
    }
}

/// A NUL-terminated fixed-size C string (cut to fit).
fn c_array<const N: usize>(text: &str) -> [c_char; N] {
    let mut array = [0; N];
    for (slot, byte) in array.iter_mut().zip(text.bytes().take(N - 1)) {
        *slot = byte as c_char;
    }
    array
}

/// `(total, reserved, used, free)` in MiB; reserved and used default to 0, free to the rest.
fn memory_mib(d: &Value) -> R<(u64, u64, u64, u64)> {
    let total = u64_at(d, "/memory_total_mib")?;
    let reserved = optional(u64_at(d, "/memory_reserved_mib"))?.unwrap_or(0);
    let used = optional(u64_at(d, "/memory_used_mib"))?.unwrap_or(0);
    let free = optional(u64_at(d, "/memory_free_mib"))?
        .unwrap_or_else(|| total.saturating_sub(used.saturating_add(reserved)));
    Ok((total, reserved, used, free))
}

/// `"8.9"` → `(8, 9)`.
fn compute_capability(d: &Value) -> R<(c_int, c_int)> {
    let text = str_at(d, "/compute_capability")?;
    let (major, minor) = text.split_once('.').ok_or(NVML_ERROR_UNKNOWN)?;
    let parse = |s: &str| s.trim().parse::<c_int>().map_err(|_| NVML_ERROR_UNKNOWN);
    Ok((parse(major)?, parse(minor)?))
}

/// Fill a process list the NVML way: too small (or a null array) → the count and
/// `NVML_ERROR_INSUFFICIENT_SIZE`, unless there are none (then `SUCCESS` with 0).
///
/// # Safety
/// `count` null or valid; `infos` null or valid for `*count` entries.
unsafe fn write_processes(
    d: &Value,
    graphics: bool,
    count: *mut c_uint,
    infos: *mut ProcessInfo,
) -> R {
    // SAFETY (whole body): caller's contract; writes stay below `*count` entries.
    unsafe {
        let count = out(count)?;
        let all = field(d, "/processes")?
            .as_array()
            .ok_or(NVML_ERROR_UNKNOWN)?;
        let wanted = if graphics { 'G' } else { 'C' };
        let list: Vec<&Value> = all
            .iter()
            .filter(|p| match p.get("kind").and_then(Value::as_str) {
                None | Some("") => !graphics,
                Some(kind) => kind.contains(wanted),
            })
            .collect();
        let n = c_uint::try_from(list.len()).map_err(|_| NVML_ERROR_UNKNOWN)?;
        if infos.is_null() || *count < n {
            *count = n;
            return if n == 0 {
                Ok(())
            } else {
                Err(NVML_ERROR_INSUFFICIENT_SIZE)
            };
        }
        for (i, p) in list.iter().enumerate() {
            let used = optional(u64_at(p, "/used_memory_mib"))?;
            infos.add(i).write(ProcessInfo {
                pid: u32_at(p, "/pid")?,
                used_gpu_memory: used.map_or(VALUE_NOT_AVAILABLE, mib_to_bytes),
                gpu_instance_id: NO_INSTANCE,
                compute_instance_id: NO_INSTANCE,
            });
        }
        *count = n;
        Ok(())
    }
}

/// Retired pages the NVML way (`*count == 0` asks for the number).
///
/// # Safety
/// `count` null or valid; `addresses` and `timestamps` null or valid for `*count` entries.
unsafe fn write_retired_pages(
    d: &Value,
    cause: c_uint,
    count: *mut c_uint,
    addresses: *mut c_ulonglong,
    timestamps: *mut c_ulonglong,
) -> R {
    let pointer = match cause {
        0 => "/retired_pages/single_bit_ecc",
        1 => "/retired_pages/double_bit_ecc",
        _ => return Err(NVML_ERROR_INVALID_ARGUMENT),
    };
    // SAFETY (whole body): caller's contract; writes stay below `*count` entries.
    unsafe {
        let count = out(count)?;
        let pages = u32_at(d, pointer)?;
        if *count < pages {
            *count = pages;
            return Err(NVML_ERROR_INSUFFICIENT_SIZE);
        }
        if pages > 0 && addresses.is_null() {
            return Err(NVML_ERROR_INVALID_ARGUMENT);
        }
        for i in 0..pages as usize {
            let i64 = i as u64;
            *addresses.add(i) = 0x10_0000 * (u64::from(cause) + 1) + 0x1000 * i64;
            if !timestamps.is_null() {
                *timestamps.add(i) = 1_764_288_000 + i64; // 2025-11-28, seconds
            }
        }
        *count = pages;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Exports: init, shutdown, errors, system

fn init(function: &str) -> Ret {
    ffi(|| {
        shared::log_call(CALL_LOG_ENV, function, None);
        let state = State::load()?;
        state.inject(function, None)?;
        let mut slot = lock();
        let refs = slot.as_ref().map_or(0, |(n, _)| *n);
        *slot = Some((refs.saturating_add(1), Arc::new(state)));
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn nvmlInit_v2() -> Ret {
    init("nvmlInit_v2")
}

#[no_mangle]
pub extern "C" fn nvmlInit() -> Ret {
    init("nvmlInit")
}

/// Flags are ignored.
#[no_mangle]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> Ret {
    init("nvmlInitWithFlags")
}

#[no_mangle]
pub extern "C" fn nvmlShutdown() -> Ret {
    system_call("nvmlShutdown", |_| {
        let mut slot = lock();
        match slot.as_mut() {
            Some((refs, _)) if *refs > 1 => *refs -= 1,
            _ => *slot = None,
        }
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn nvmlErrorString(result: Ret) -> *const c_char {
    shared::log_call(CALL_LOG_ENV, "nvmlErrorString", None);
    let text: &'static CStr = match result {
        0 => c"Success",
        1 => c"Uninitialized",
        2 => c"Invalid Argument",
        3 => c"Not Supported",
        4 => c"Insufficient Permissions",
        5 => c"Already Initialized",
        6 => c"Not Found",
        7 => c"Insufficient Size",
        8 => c"Insufficient External Power",
        9 => c"Driver Not Loaded",
        10 => c"Timeout",
        11 => c"Interrupt request issue",
        12 => c"NVML Shared Library Not Found",
        13 => c"Function Not Found",
        14 => c"Corrupted infoROM",
        15 => c"GPU is lost",
        16 => c"GPU requires restart",
        17 => c"The operating system has blocked the request.",
        18 => c"RM has detected an NVML/RM version mismatch.",
        19 => c"In use by another client",
        20 => c"Insufficient Memory",
        21 => c"No data",
        25 => c"Argument version mismatch",
        27 => c"Not Ready",
        28 => c"GPU not found",
        _ => c"Unknown Error",
    };
    text.as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) -> Ret {
    system_call("nvmlSystemGetDriverVersion", |s| unsafe {
        out_str(version, length, str_at(&s.runtime, "/driver_version")?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(version: *mut c_char, length: c_uint) -> Ret {
    system_call("nvmlSystemGetNVMLVersion", |s| unsafe {
        out_str(version, length, str_at(&s.runtime, "/version")?)
    })
}

fn cuda_driver_version(function: &str, version: *mut c_int) -> Ret {
    system_call(function, |s| {
        let text = str_at(&s.runtime, "/cuda_version")?;
        // SAFETY: the exports' contract.
        *unsafe { out(version) }? = shared::cuda_version_number(text).ok_or(NVML_ERROR_UNKNOWN)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion(version: *mut c_int) -> Ret {
    cuda_driver_version("nvmlSystemGetCudaDriverVersion", version)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(version: *mut c_int) -> Ret {
    cuda_driver_version("nvmlSystemGetCudaDriverVersion_v2", version)
}

/// Looks the pid up in every device's `processes`; crops the name to the buffer like NVML.
#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetProcessName(
    pid: c_uint,
    name: *mut c_char,
    length: c_uint,
) -> Ret {
    system_call("nvmlSystemGetProcessName", |s| {
        if name.is_null() || length == 0 {
            return Err(NVML_ERROR_INVALID_ARGUMENT);
        }
        let text = s
            .devices
            .iter()
            .filter_map(|d| d.get("processes")?.as_array())
            .flatten()
            .find(|p| p.get("pid").and_then(Value::as_u64) == Some(u64::from(pid)))
            .and_then(|p| p.get("name")?.as_str())
            .ok_or(NVML_ERROR_NOT_FOUND)?;
        let mut end = text.len().min(length as usize - 1);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // SAFETY: the export's contract; the cropped text fits.
        unsafe { out_str(name, length, &text[..end]) }
    })
}

fn device_count(function: &str, count: *mut c_uint) -> Ret {
    system_call(function, |s| {
        // SAFETY: the exports' contract.
        *unsafe { out(count) }? =
            c_uint::try_from(s.devices.len()).map_err(|_| NVML_ERROR_UNKNOWN)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> Ret {
    device_count("nvmlDeviceGetCount_v2", count)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount(count: *mut c_uint) -> Ret {
    device_count("nvmlDeviceGetCount", count)
}

/// Logged and matched as a per-device call (`:index`), but a lost device still gets a handle.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(index: c_uint, device: *mut Handle) -> Ret {
    const NAME: &str = "nvmlDeviceGetHandleByIndex_v2";
    ffi(|| {
        let index = index as usize;
        shared::log_call(CALL_LOG_ENV, NAME, Some(index));
        let state = current()?;
        if index >= state.devices.len() {
            return Err(NVML_ERROR_INVALID_ARGUMENT);
        }
        state.inject(NAME, Some(index))?;
        // SAFETY: the export's contract.
        *unsafe { out(device) }? = (index + 1) as Handle;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Exports: per-device getters

/// An export `fn name(device, *mut T) -> nvmlReturn_t` that stores `value` (an expression
/// over the device's fixture entry `d`, which may use `?`).
macro_rules! getter {
    ($(#[$doc:meta])* $name:ident -> $ty:ty, |$d:ident| $value:expr) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(device: Handle, value: *mut $ty) -> Ret {
            device_call(stringify!($name), device, |_, $d| {
                // SAFETY: the export's contract.
                let slot = unsafe { out(value) }?;
                *slot = $value;
                Ok(())
            })
        }
    };
}

/// An export `fn name(device, char *buf, unsigned len)` for a string field.
macro_rules! string_getter {
    ($name:ident, $pointer:literal) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(device: Handle, buf: *mut c_char, length: c_uint) -> Ret {
            device_call(stringify!($name), device, |_, d| {
                // SAFETY: the export's contract.
                unsafe { out_str(buf, length, str_at(d, $pointer)?) }
            })
        }
    };
}

string_getter!(nvmlDeviceGetName, "/name");
string_getter!(nvmlDeviceGetUUID, "/uuid");
string_getter!(nvmlDeviceGetSerial, "/serial");

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetIndex(device: Handle, index: *mut c_uint) -> Ret {
    device_call("nvmlDeviceGetIndex", device, |position, _| {
        // SAFETY: the export's contract.
        *unsafe { out(index) }? = c_uint::try_from(position).map_err(|_| NVML_ERROR_UNKNOWN)?;
        Ok(())
    })
}

getter!(
    /// From `pci_bus_id`; `pciDeviceId` / `pciSubSystemId` from the optional device fields
    /// `pci_device_id` / `pci_subsystem_id` (numbers), else 0.
    nvmlDeviceGetPciInfo_v3 -> PciInfo,
    |d| {
        let (domain, bus, dev) =
            shared::parse_pci_bus_id(str_at(d, "/pci_bus_id")?).ok_or(NVML_ERROR_UNKNOWN)?;
        PciInfo {
            bus_id_legacy: c_array(&format!("{domain:04X}:{bus:02X}:{dev:02X}.0")),
            domain,
            bus,
            device: dev,
            pci_device_id: optional(u32_at(d, "/pci_device_id"))?.unwrap_or(0),
            pci_sub_system_id: optional(u32_at(d, "/pci_subsystem_id"))?.unwrap_or(0),
            bus_id: c_array(&format!("{domain:08X}:{bus:02X}:{dev:02X}.0")),
        }
    }
);

getter!(nvmlDeviceGetPersistenceMode -> c_uint, |d| bool_at(d, "/persistence_mode")?.into());
getter!(nvmlDeviceGetDisplayActive -> c_uint, |d| bool_at(d, "/display_active")?.into());

/// Only sensor 0 (`NVML_TEMPERATURE_GPU`) exists.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: Handle,
    sensor: c_uint,
    temp: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetTemperature", device, |_, d| {
        // SAFETY: the export's contract.
        let slot = unsafe { out(temp) }?;
        if sensor != 0 {
            return Err(NVML_ERROR_INVALID_ARGUMENT);
        }
        *slot = u32_at(d, "/temperature_c")?;
        Ok(())
    })
}

getter!(
    /// One fan when `fan_speed_percent` is set, else not supported.
    nvmlDeviceGetNumFans -> c_uint,
    |d| field(d, "/fan_speed_percent").map(|_| 1)?
);

/// Only fan 0 exists.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed_v2(
    device: Handle,
    fan: c_uint,
    speed: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetFanSpeed_v2", device, |_, d| {
        // SAFETY: the export's contract.
        let slot = unsafe { out(speed) }?;
        let value = u32_at(d, "/fan_speed_percent")?;
        if fan != 0 {
            return Err(NVML_ERROR_INVALID_ARGUMENT);
        }
        *slot = value;
        Ok(())
    })
}

getter!(nvmlDeviceGetFanSpeed -> c_uint, |d| u32_at(d, "/fan_speed_percent")?);

getter!(
    /// `"P8"` → 8.
    nvmlDeviceGetPerformanceState -> c_uint,
    |d| str_at(d, "/performance_state")?
        .strip_prefix('P')
        .and_then(|n| n.parse::<c_uint>().ok())
        .filter(|&n| n <= 15)
        .ok_or(NVML_ERROR_UNKNOWN)?
);

getter!(nvmlDeviceGetPowerUsage -> c_uint, |d| milliwatts_at(d, "/power_draw_w")?);
getter!(nvmlDeviceGetEnforcedPowerLimit -> c_uint, |d| milliwatts_at(d, "/power_limit_w")?);
getter!(
    nvmlDeviceGetPowerManagementLimit -> c_uint,
    |d| milliwatts_at(d, "/power_management_limit_w")?
);
getter!(
    nvmlDeviceGetPowerManagementDefaultLimit -> c_uint,
    |d| milliwatts_at(d, "/power_default_limit_w")?
);

/// Not supported when `memory_total_mib` is null; the caller must set `version`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(device: Handle, memory: *mut MemoryV2) -> Ret {
    device_call("nvmlDeviceGetMemoryInfo_v2", device, |_, d| {
        // SAFETY: the export's contract.
        let slot = unsafe { out(memory) }?;
        if slot.version != MEMORY_V2_VERSION {
            return Err(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
        }
        let (total, reserved, used, free) = memory_mib(d)?;
        slot.total = mib_to_bytes(total);
        slot.reserved = mib_to_bytes(reserved);
        slot.free = mib_to_bytes(free);
        slot.used = mib_to_bytes(used);
        Ok(())
    })
}

getter!(
    /// The v1 struct counts reserved memory as used.
    nvmlDeviceGetMemoryInfo -> Memory,
    |d| {
        let (total, reserved, used, free) = memory_mib(d)?;
        Memory {
            total: mib_to_bytes(total),
            free: mib_to_bytes(free),
            used: mib_to_bytes(used.saturating_add(reserved)),
        }
    }
);

getter!(
    /// Not supported when `utilization_gpu_percent` is null; memory defaults to 0.
    nvmlDeviceGetUtilizationRates -> Utilization,
    |d| Utilization {
        gpu: u32_at(d, "/utilization_gpu_percent")?,
        memory: optional(u32_at(d, "/utilization_memory_percent"))?.unwrap_or(0),
    }
);

/// Not supported when `ecc.mode_current` is null; pending defaults to current.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetEccMode(
    device: Handle,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetEccMode", device, |_, d| {
        // SAFETY: the export's contract.
        let (current, pending) = unsafe { (out(current)?, out(pending)?) };
        let now = bool_at(d, "/ecc/mode_current")?;
        *pending = optional(bool_at(d, "/ecc/mode_pending"))?
            .unwrap_or(now)
            .into();
        *current = now.into();
        Ok(())
    })
}

/// `errorType` 0 corrected / 1 uncorrected × `counterType` 0 volatile / 1 aggregate.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: Handle,
    error_type: c_uint,
    counter_type: c_uint,
    count: *mut c_ulonglong,
) -> Ret {
    device_call("nvmlDeviceGetTotalEccErrors", device, |_, d| {
        // SAFETY: the export's contract.
        let slot = unsafe { out(count) }?;
        let pointer = match (error_type, counter_type) {
            (0, 0) => "/ecc/volatile_corrected",
            (1, 0) => "/ecc/volatile_uncorrected",
            (0, 1) => "/ecc/aggregate_corrected",
            (1, 1) => "/ecc/aggregate_uncorrected",
            _ => return Err(NVML_ERROR_INVALID_ARGUMENT),
        };
        *slot = u64_at(d, pointer)?;
        Ok(())
    })
}

/// `cause` 0 = multiple single-bit ECC errors (`single_bit_ecc` pages), 1 = double-bit
/// (`double_bit_ecc` pages); addresses are made up.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPages(
    device: Handle,
    cause: c_uint,
    count: *mut c_uint,
    addresses: *mut c_ulonglong,
) -> Ret {
    device_call("nvmlDeviceGetRetiredPages", device, |_, d| {
        // SAFETY: the export's contract.
        unsafe { write_retired_pages(d, cause, count, addresses, std::ptr::null_mut()) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPages_v2(
    device: Handle,
    cause: c_uint,
    count: *mut c_uint,
    addresses: *mut c_ulonglong,
    timestamps: *mut c_ulonglong,
) -> Ret {
    device_call("nvmlDeviceGetRetiredPages_v2", device, |_, d| {
        // SAFETY: the export's contract.
        unsafe { write_retired_pages(d, cause, count, addresses, timestamps) }
    })
}

getter!(
    nvmlDeviceGetRetiredPagesPendingStatus -> c_uint,
    |d| bool_at(d, "/retired_pages/pending")?.into()
);

/// Not supported when both `remapped_rows.correctable` and `.uncorrectable` are null; a
/// null count is 0, a null flag false.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetRemappedRows(
    device: Handle,
    correctable: *mut c_uint,
    uncorrectable: *mut c_uint,
    pending: *mut c_uint,
    failure: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetRemappedRows", device, |_, d| {
        // SAFETY: the export's contract.
        let slots = unsafe {
            (
                out(correctable)?,
                out(uncorrectable)?,
                out(pending)?,
                out(failure)?,
            )
        };
        let corr = optional(u32_at(d, "/remapped_rows/correctable"))?;
        let unc = optional(u32_at(d, "/remapped_rows/uncorrectable"))?;
        if corr.is_none() && unc.is_none() {
            return Err(NVML_ERROR_NOT_SUPPORTED);
        }
        let flag = |p| optional(bool_at(d, p)).map(|b| c_uint::from(b.unwrap_or(false)));
        *slots.2 = flag("/remapped_rows/pending")?;
        *slots.3 = flag("/remapped_rows/failure")?;
        *slots.0 = corr.unwrap_or(0);
        *slots.1 = unc.unwrap_or(0);
        Ok(())
    })
}

getter!(
    /// `Default` 0, `Exclusive_Thread` 1, `Prohibited` 2, `Exclusive_Process` 3.
    nvmlDeviceGetComputeMode -> c_uint,
    |d| match str_at(d, "/compute_mode")? {
        "Default" => 0,
        "Exclusive_Thread" => 1,
        "Prohibited" => 2,
        "Exclusive_Process" => 3,
        _ => return Err(NVML_ERROR_UNKNOWN),
    }
);

/// Not supported when `mig.mode_current` is null; pending defaults to current.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: Handle,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetMigMode", device, |_, d| {
        // SAFETY: the export's contract.
        let (current, pending) = unsafe { (out(current)?, out(pending)?) };
        let now = bool_at(d, "/mig/mode_current")?;
        *pending = optional(bool_at(d, "/mig/mode_pending"))?
            .unwrap_or(now)
            .into();
        *current = now.into();
        Ok(())
    })
}

/// `clocks.<kind>_mhz` or `clocks.max_<kind>_mhz` for clock type 0 graphics, 1 SM, 2 memory;
/// 3 (video) is not supported.
fn clock(function: &str, device: Handle, clock_type: c_uint, max: bool, mhz: *mut c_uint) -> Ret {
    device_call(function, device, |_, d| {
        // SAFETY: the exports' contract.
        let slot = unsafe { out(mhz) }?;
        let kind = match clock_type {
            0 => "graphics",
            1 => "sm",
            2 => "memory",
            3 => return Err(NVML_ERROR_NOT_SUPPORTED),
            _ => return Err(NVML_ERROR_INVALID_ARGUMENT),
        };
        let prefix = if max { "max_" } else { "" };
        *slot = u32_at(d, &format!("/clocks/{prefix}{kind}_mhz"))?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: Handle,
    clock_type: c_uint,
    mhz: *mut c_uint,
) -> Ret {
    clock("nvmlDeviceGetClockInfo", device, clock_type, false, mhz)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMaxClockInfo(
    device: Handle,
    clock_type: c_uint,
    mhz: *mut c_uint,
) -> Ret {
    clock("nvmlDeviceGetMaxClockInfo", device, clock_type, true, mhz)
}

getter!(nvmlDeviceGetCurrPcieLinkGeneration -> c_uint, |d| u32_at(d, "/pcie/gen_current")?);
getter!(nvmlDeviceGetMaxPcieLinkGeneration -> c_uint, |d| u32_at(d, "/pcie/gen_max")?);
getter!(nvmlDeviceGetCurrPcieLinkWidth -> c_uint, |d| u32_at(d, "/pcie/width_current")?);
getter!(nvmlDeviceGetMaxPcieLinkWidth -> c_uint, |d| u32_at(d, "/pcie/width_max")?);

getter!(
    nvmlDeviceGetCurrentClocksThrottleReasons -> c_ulonglong,
    |d| u64_at(d, "/clock_event_reasons/active_mask")?
);
getter!(
    nvmlDeviceGetSupportedClocksThrottleReasons -> c_ulonglong,
    |d| u64_at(d, "/clock_event_reasons/supported_mask")?
);

/// `processes` whose `kind` contains `C` (or has no kind).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: Handle,
    count: *mut c_uint,
    infos: *mut ProcessInfo,
) -> Ret {
    device_call("nvmlDeviceGetComputeRunningProcesses_v3", device, |_, d| {
        // SAFETY: the export's contract.
        unsafe { write_processes(d, false, count, infos) }
    })
}

/// `processes` whose `kind` contains `G`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v3(
    device: Handle,
    count: *mut c_uint,
    infos: *mut ProcessInfo,
) -> Ret {
    device_call(
        "nvmlDeviceGetGraphicsRunningProcesses_v3",
        device,
        |_, d| {
            // SAFETY: the export's contract.
            unsafe { write_processes(d, true, count, infos) }
        },
    )
}

/// `"8.9"` → 8, 9.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCudaComputeCapability(
    device: Handle,
    major: *mut c_int,
    minor: *mut c_int,
) -> Ret {
    device_call("nvmlDeviceGetCudaComputeCapability", device, |_, d| {
        // SAFETY: the export's contract.
        let (major, minor) = unsafe { (out(major)?, out(minor)?) };
        (*major, *minor) = compute_capability(d)?;
        Ok(())
    })
}

/// Not supported when `nvlink` is null; a link not listed is an invalid argument.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkState(
    device: Handle,
    link: c_uint,
    is_active: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetNvLinkState", device, |_, d| {
        // SAFETY: the export's contract.
        let slot = unsafe { out(is_active) }?;
        let entry = field(d, "/nvlink")?
            .as_array()
            .ok_or(NVML_ERROR_UNKNOWN)?
            .iter()
            .find(|l| l.get("link").and_then(Value::as_u64) == Some(u64::from(link)))
            .ok_or(NVML_ERROR_INVALID_ARGUMENT)?;
        *slot = bool_at(entry, "/active")?.into();
        Ok(())
    })
}

#[cfg(test)]
mod tests;
