//! A test-only stand-in for the AWS Neuron runtime (`libnrt.so.1`).
//!
//! It exports the functions accelprobe calls, with the signatures of
//! `aws-neuron-sdk/src/libnrt/include/nrt/nrt.h` as summarised in the project's reference
//! (`shared/reference/runtimes.md`, section 3): `nrt_get_total_vnc_count`, `nrt_init`,
//! `nrt_get_visible_vnc_count`, `nrt_get_version`, `nrt_get_instance_info`, `nrt_close`, and
//! host-memory-backed tensors (`nrt_tensor_allocate`, `nrt_tensor_write`, `nrt_tensor_read`,
//! `nrt_tensor_free`) for a copy benchmark.
//!
//! Configuration, read on every call (so one process can change it between calls):
//! - [`CONFIG_ENV`]: a small JSON object, every key optional:
//!   `{"version": "2.22.14.0", "detail": "…", "git_hash": "…", "family": 2, "size": 6,
//!     "total_cores": 32, "visible_cores": 32}`. Defaults: version `2.0.0.0`, family 0
//!   (unknown), size 9 (unknown), 0 cores. An unreadable value makes every call return
//!   `NRT_FAILURE`.
//! - [`ERRORS_ENV`]: `function=code,...` — that function returns `code` without doing anything.
//! - [`HANG_ENV`]: `function=milliseconds,...` — that function sleeps first.
//! - [`CORRUPT_ENV`]: `function,...` — `nrt_tensor_write` / `nrt_tensor_read` flip one bit of
//!   the middle byte of what they copy, so a caller's check must reject the data.
//!
//! Tensors are host memory; `nrt_tensor_allocate` refuses (`NRT_INVALID`) a logical
//! NeuronCore that is not visible (`visible_cores`).
//!
//! Like the real runtime, `nrt_get_visible_vnc_count`, `nrt_get_instance_info` and the tensor
//! functions return `NRT_UNINITIALIZED` (13) before a successful `nrt_init`; the total count
//! and the version work without it. A panic never crosses the FFI boundary.

#![allow(clippy::missing_safety_doc)] // each export has the contract of the nrt.h function

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

/// The fake's configuration (JSON).
pub const CONFIG_ENV: &str = "ACCELPROBE_FAKE_NRT_CONFIG";
/// Errors to inject: `function=code,...`.
pub const ERRORS_ENV: &str = "ACCELPROBE_FAKE_NRT_ERRORS";
/// Hangs to inject: `function=milliseconds,...`.
pub const HANG_ENV: &str = "ACCELPROBE_FAKE_NRT_HANG";
/// Bit flips to inject: `function,...` (`nrt_tensor_write`, `nrt_tensor_read`) — that call
/// copies the data with one bit of its middle byte flipped.
pub const CORRUPT_ENV: &str = "ACCELPROBE_FAKE_NRT_CORRUPT";

type NrtStatus = c_int;
const NRT_SUCCESS: NrtStatus = 0;
const NRT_FAILURE: NrtStatus = 1;
const NRT_INVALID: NrtStatus = 2;
const NRT_UNINITIALIZED: NrtStatus = 13;

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// `nrt_version_t`.
#[repr(C)]
pub struct NrtVersion {
    pub rt_major: u64,
    pub rt_minor: u64,
    pub rt_patch: u64,
    pub rt_maintenance: u64,
    pub rt_detail: [c_char; 128],
    pub git_hash: [c_char; 64],
}

/// `nrt_instance_info_t` (the longer form; the copy is cut to the caller's length).
#[repr(C)]
pub struct NrtInstanceInfo {
    pub family: u32,
    pub size: u32,
    pub arch_name: [c_char; 16],
    pub device_revision: [c_char; 8],
}

fn rule(env: &str, function: &str) -> Option<u64> {
    let spec = std::env::var(env).ok()?;
    spec.split(',').find_map(|item| {
        let (name, value) = item.split_once('=')?;
        (name.trim() == function)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

fn config() -> Result<Value, NrtStatus> {
    match std::env::var(CONFIG_ENV) {
        Err(_) => Ok(Value::Object(Default::default())),
        Ok(text) => serde_json::from_str(&text).map_err(|_| NRT_FAILURE),
    }
}

fn num(cfg: &Value, key: &str, default: u64) -> u64 {
    cfg.get(key).and_then(Value::as_u64).unwrap_or(default)
}

/// Hang and inject for `function`; `Some(code)` when the call must return it.
fn enter(function: &str) -> Option<NrtStatus> {
    if let Some(ms) = rule(HANG_ENV, function) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    rule(ERRORS_ENV, function).map(|c| c as NrtStatus)
}

fn guard(function: &str, needs_init: bool, f: impl FnOnce(&Value) -> NrtStatus) -> NrtStatus {
    catch_unwind(AssertUnwindSafe(|| {
        if let Some(code) = enter(function) {
            return code;
        }
        if needs_init && !INITIALISED.load(Ordering::SeqCst) {
            return NRT_UNINITIALIZED;
        }
        match config() {
            Ok(cfg) => f(&cfg),
            Err(code) => code,
        }
    }))
    .unwrap_or(NRT_FAILURE)
}

/// Flip one bit of the middle byte of `data` when `function` is listed in [`CORRUPT_ENV`].
fn maybe_corrupt(function: &str, data: &mut [u8]) {
    let listed = std::env::var(CORRUPT_ENV)
        .map(|v| v.split(',').any(|f| f.trim() == function))
        .unwrap_or(false);
    if listed && !data.is_empty() {
        let i = data.len() / 2;
        data[i] ^= 0x10;
    }
}

fn copy_str(dst: &mut [c_char], s: &str) {
    let room = dst.len().saturating_sub(1);
    for (d, b) in dst.iter_mut().zip(s.bytes().take(room)) {
        *d = b as c_char;
    }
}

#[no_mangle]
pub unsafe extern "C" fn nrt_get_total_vnc_count(count: *mut u32) -> NrtStatus {
    guard("nrt_get_total_vnc_count", false, |cfg| {
        if count.is_null() {
            return NRT_INVALID;
        }
        *count = num(cfg, "total_cores", 0) as u32;
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_init(
    framework: c_int,
    _fw_version: *const c_char,
    _fal_version: *const c_char,
) -> NrtStatus {
    guard("nrt_init", false, |_| {
        if framework != 1 {
            return NRT_INVALID;
        }
        INITIALISED.store(true, Ordering::SeqCst);
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_get_visible_vnc_count(count: *mut u32) -> NrtStatus {
    guard("nrt_get_visible_vnc_count", true, |cfg| {
        if count.is_null() {
            return NRT_INVALID;
        }
        let total = num(cfg, "total_cores", 0);
        *count = num(cfg, "visible_cores", total) as u32;
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_get_version(ver: *mut NrtVersion, size: usize) -> NrtStatus {
    guard("nrt_get_version", false, |cfg| {
        if ver.is_null() || size < std::mem::size_of::<NrtVersion>() {
            return NRT_INVALID;
        }
        let text = cfg
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("2.0.0.0");
        let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
        let v = &mut *ver;
        v.rt_major = parts.next().unwrap_or(0);
        v.rt_minor = parts.next().unwrap_or(0);
        v.rt_patch = parts.next().unwrap_or(0);
        v.rt_maintenance = parts.next().unwrap_or(0);
        v.rt_detail = [0; 128];
        v.git_hash = [0; 64];
        let detail = cfg
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("fake libnrt");
        copy_str(&mut v.rt_detail, detail);
        let hash = cfg
            .get("git_hash")
            .and_then(Value::as_str)
            .unwrap_or("0000000");
        copy_str(&mut v.git_hash, hash);
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_get_instance_info(
    info: *mut NrtInstanceInfo,
    len: usize,
) -> NrtStatus {
    guard("nrt_get_instance_info", true, |cfg| {
        if info.is_null() || len < 8 {
            return NRT_INVALID;
        }
        let mut full = NrtInstanceInfo {
            family: num(cfg, "family", 0) as u32,
            size: num(cfg, "size", 9) as u32,
            arch_name: [0; 16],
            device_revision: [0; 8],
        };
        copy_str(
            &mut full.arch_name,
            cfg.get("arch_name").and_then(Value::as_str).unwrap_or(""),
        );
        let n = len.min(std::mem::size_of::<NrtInstanceInfo>());
        std::ptr::copy_nonoverlapping(
            (&full as *const NrtInstanceInfo).cast::<u8>(),
            info.cast::<u8>(),
            n,
        );
        NRT_SUCCESS
    })
}

#[no_mangle]
pub extern "C" fn nrt_close() {
    let _ = catch_unwind(|| {
        let _ = enter("nrt_close");
        INITIALISED.store(false, Ordering::SeqCst);
    });
}

/// A fake tensor: host memory.
struct Tensor {
    data: Vec<u8>,
}

#[no_mangle]
pub unsafe extern "C" fn nrt_tensor_allocate(
    _placement: c_int,
    logical_nc_id: c_int,
    size: usize,
    _name: *const c_char,
    out: *mut *mut c_void,
) -> NrtStatus {
    guard("nrt_tensor_allocate", true, |cfg| {
        let total = num(cfg, "total_cores", 0);
        let visible = num(cfg, "visible_cores", total);
        if out.is_null() || logical_nc_id < 0 || logical_nc_id as u64 >= visible {
            return NRT_INVALID;
        }
        let t = Box::new(Tensor {
            data: vec![0; size],
        });
        *out = Box::into_raw(t).cast();
        NRT_SUCCESS
    })
}

fn span(t: &Tensor, offset: usize, size: usize) -> Option<std::ops::Range<usize>> {
    let end = offset.checked_add(size)?;
    (end <= t.data.len()).then_some(offset..end)
}

#[no_mangle]
pub unsafe extern "C" fn nrt_tensor_write(
    tensor: *mut c_void,
    buf: *const c_void,
    offset: usize,
    size: usize,
) -> NrtStatus {
    guard("nrt_tensor_write", true, |_| {
        if tensor.is_null() || (buf.is_null() && size > 0) {
            return NRT_INVALID;
        }
        let t = &mut *tensor.cast::<Tensor>();
        let Some(r) = span(t, offset, size) else {
            return NRT_INVALID;
        };
        if size > 0 {
            let dst = &mut t.data[r];
            dst.copy_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), size));
            maybe_corrupt("nrt_tensor_write", dst);
        }
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_tensor_read(
    tensor: *const c_void,
    buf: *mut c_void,
    offset: usize,
    size: usize,
) -> NrtStatus {
    guard("nrt_tensor_read", true, |_| {
        if tensor.is_null() || (buf.is_null() && size > 0) {
            return NRT_INVALID;
        }
        let t = &*tensor.cast::<Tensor>();
        let Some(r) = span(t, offset, size) else {
            return NRT_INVALID;
        };
        if size > 0 {
            let dst = std::slice::from_raw_parts_mut(buf.cast::<u8>(), size);
            dst.copy_from_slice(&t.data[r]);
            maybe_corrupt("nrt_tensor_read", dst);
        }
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_tensor_free(tensor: *mut *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _ = enter("nrt_tensor_free");
        if tensor.is_null() || (*tensor).is_null() {
            return;
        }
        drop(Box::from_raw((*tensor).cast::<Tensor>()));
        *tensor = std::ptr::null_mut();
    }));
}
