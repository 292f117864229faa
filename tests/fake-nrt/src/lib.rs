//! A test-only stand-in for the AWS Neuron runtime (`libnrt.so.1`).
//!
//! It exports the functions accelprobe calls, with the signatures of
//! `aws-neuron-sdk/src/libnrt/include/nrt/nrt.h` as summarised in the project's reference
//! (`shared/reference/runtimes.md`, section 3): `nrt_get_total_vnc_count`, `nrt_init`,
//! `nrt_get_visible_vnc_count`, `nrt_get_version`, `nrt_get_instance_info`, `nrt_close`, and
//! host-memory-backed tensors (`nrt_tensor_allocate`, `nrt_tensor_write`, `nrt_tensor_read`,
//! `nrt_tensor_free`) for a copy benchmark, and compiled models (`nrt_load`, `nrt_execute`
//! and the tensor-set and tensor-info calls around them) whose "NEFF" is a JSON document; see
//! the section on compiled models below.
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
//!   the middle byte of what they copy, so a caller's check must reject the data;
//!   `nrt_execute` does so to its first output on every execution after a model's first.
//! - [`STALE_ENV`]: `function=N,...` — `nrt_tensor_write` after a tensor's first N writes,
//!   and `nrt_execute` after a model's first N executions, return success having written
//!   nothing.
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
/// Work that silently stops: `function=N,...` — `nrt_tensor_write` copies nothing after a
/// tensor's first N writes, `nrt_execute` writes no output after a model's first N
/// executions; both still return `NRT_SUCCESS`.
pub const STALE_ENV: &str = "ACCELPROBE_FAKE_NRT_STALE";

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

/// Whether `function` is listed in the environment variable `var` (`function,...`).
fn listed(var: &str, function: &str) -> bool {
    std::env::var(var)
        .map(|v| v.split(',').any(|f| f.trim() == function))
        .unwrap_or(false)
}

/// Flip one bit of the middle byte of `data` when `function` is listed in [`CORRUPT_ENV`].
fn maybe_corrupt(function: &str, data: &mut [u8]) {
    if listed(CORRUPT_ENV, function) && !data.is_empty() {
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
    /// Successful `nrt_tensor_write` calls so far.
    writes: u64,
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
            writes: 0,
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
        t.writes += 1;
        if rule(STALE_ENV, "nrt_tensor_write").is_some_and(|n| t.writes > n) {
            return NRT_SUCCESS;
        }
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

// ---------------------------------------------------------------------------------------------
// Compiled models. The fake does not read real NEFF files: its "NEFF" is a JSON document
//   {"fake_neff": {"inputs": [{"name": "x", "size": 64}], "outputs": [{"name": "y", "size": 16}],
//                  "exec_us": 200}}
// Executing it sleeps `exec_us` and writes output j, byte i = (sum over inputs k of
// input_k[i % size_k]) + j + 1 (wrapping), so the result depends on every input. With
// `nrt_execute` in CORRUPT_ENV, executions after the first of a model flip one bit of the
// middle byte of the first output (a core that does not compute the same thing twice).
// Anything else passed to nrt_load returns NRT_INVALID, as a file the runtime cannot parse.

const NRT_TENSOR_NAME_MAX: usize = 256;

/// `nrt_tensor_info_t` of `nrt_experimental.h`.
#[repr(C)]
pub struct NrtTensorInfo {
    pub name: [c_char; NRT_TENSOR_NAME_MAX],
    pub usage: c_int,
    pub size: usize,
    pub dtype: c_int,
    pub shape: *mut u32,
    pub ndim: u32,
}

struct FakeModel {
    inputs: Vec<(String, usize)>,
    outputs: Vec<(String, usize)>,
    exec_us: u64,
    executions: u64,
}

type TensorSet = Vec<(String, *mut Tensor)>;

fn tensors_of(v: &Value, key: &str) -> Option<Vec<(String, usize)>> {
    v.get(key)?
        .as_array()?
        .iter()
        .map(|t| {
            let name = t.get("name")?.as_str()?;
            let size = t.get("size")?.as_u64()?;
            (!name.is_empty() && name.len() < NRT_TENSOR_NAME_MAX)
                .then(|| (name.to_string(), size as usize))
        })
        .collect()
}

#[no_mangle]
pub unsafe extern "C" fn nrt_load(
    neff: *const c_void,
    size: usize,
    vnc: i32,
    _vnc_count: i32,
    model: *mut *mut c_void,
) -> NrtStatus {
    guard("nrt_load", true, |cfg| {
        let total = num(cfg, "total_cores", 0);
        let visible = num(cfg, "visible_cores", total);
        if neff.is_null() || model.is_null() || vnc < 0 || vnc as u64 >= visible {
            return NRT_INVALID;
        }
        let bytes = std::slice::from_raw_parts(neff.cast::<u8>(), size);
        let Some(spec) = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v.get("fake_neff").cloned())
        else {
            return NRT_INVALID;
        };
        let (Some(inputs), Some(outputs)) =
            (tensors_of(&spec, "inputs"), tensors_of(&spec, "outputs"))
        else {
            return NRT_INVALID;
        };
        let m = Box::new(FakeModel {
            inputs,
            outputs,
            exec_us: num(&spec, "exec_us", 0),
            executions: 0,
        });
        *model = Box::into_raw(m).cast();
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_unload(model: *mut c_void) -> NrtStatus {
    guard("nrt_unload", true, |_| {
        if model.is_null() {
            return NRT_INVALID;
        }
        drop(Box::from_raw(model.cast::<FakeModel>()));
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_get_model_tensor_info(
    model: *mut c_void,
    info: *mut *mut c_void,
) -> NrtStatus {
    guard("nrt_get_model_tensor_info", true, |_| {
        if model.is_null() || info.is_null() {
            return NRT_INVALID;
        }
        let m = &*model.cast::<FakeModel>();
        let all: Vec<(&(String, usize), c_int)> = m
            .inputs
            .iter()
            .map(|t| (t, 0))
            .chain(m.outputs.iter().map(|t| (t, 1)))
            .collect();
        // u64 count, then the entries (8-byte aligned), as nrt_tensor_info_array_t.
        let entry = std::mem::size_of::<NrtTensorInfo>();
        let words = (8 + entry * all.len()).div_ceil(8);
        let buf: &mut [u64] = Box::leak(vec![0u64; words + 1].into_boxed_slice());
        buf[0] = words as u64 + 1; // remembered for the free
        let base = buf.as_mut_ptr().add(1);
        *base = all.len() as u64;
        let first = base.add(1).cast::<NrtTensorInfo>();
        for (i, ((name, size), usage)) in all.into_iter().enumerate() {
            let mut t = NrtTensorInfo {
                name: [0; NRT_TENSOR_NAME_MAX],
                usage,
                size: *size,
                dtype: 0x3, // NRT_DTYPE_UINT8
                shape: std::ptr::null_mut(),
                ndim: 0,
            };
            copy_str(&mut t.name, name);
            first.add(i).write(t);
        }
        *info = base.cast();
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_free_model_tensor_info(info: *mut c_void) -> NrtStatus {
    guard("nrt_free_model_tensor_info", true, |_| {
        if info.is_null() {
            return NRT_INVALID;
        }
        let start = info.cast::<u64>().sub(1);
        let words = *start as usize;
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            start, words,
        )));
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_allocate_tensor_set(result: *mut *mut c_void) -> NrtStatus {
    guard("nrt_allocate_tensor_set", true, |_| {
        if result.is_null() {
            return NRT_INVALID;
        }
        *result = Box::into_raw(Box::new(TensorSet::new())).cast();
        NRT_SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nrt_destroy_tensor_set(set: *mut *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _ = enter("nrt_destroy_tensor_set");
        if set.is_null() || (*set).is_null() {
            return;
        }
        drop(Box::from_raw((*set).cast::<TensorSet>()));
        *set = std::ptr::null_mut();
    }));
}

#[no_mangle]
pub unsafe extern "C" fn nrt_add_tensor_to_tensor_set(
    set: *mut c_void,
    name: *const c_char,
    tensor: *mut c_void,
) -> NrtStatus {
    guard("nrt_add_tensor_to_tensor_set", true, |_| {
        if set.is_null() || name.is_null() || tensor.is_null() {
            return NRT_INVALID;
        }
        let set = &mut *set.cast::<TensorSet>();
        let name = std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned();
        set.retain(|(n, _)| *n != name);
        set.push((name, tensor.cast()));
        NRT_SUCCESS
    })
}

/// The tensor named `name` in `set`, if it has `size` bytes (a pointer the caller's set
/// lent it; tensors outlive their sets).
unsafe fn find(set: &TensorSet, name: &str, size: usize) -> Option<*mut Tensor> {
    let &(_, t) = set.iter().find(|(n, _)| n == name)?;
    ((*t).data.len() == size).then_some(t)
}

#[no_mangle]
pub unsafe extern "C" fn nrt_execute(
    model: *mut c_void,
    input_set: *const c_void,
    output_set: *mut c_void,
) -> NrtStatus {
    guard("nrt_execute", true, |_| {
        if model.is_null() || input_set.is_null() || output_set.is_null() {
            return NRT_INVALID;
        }
        let m = &mut *model.cast::<FakeModel>();
        let ins = &*input_set.cast::<TensorSet>();
        let outs = &*output_set.cast::<TensorSet>();
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for (name, size) in &m.inputs {
            let Some(t) = find(ins, name, *size) else {
                return NRT_INVALID;
            };
            inputs.push((*t).data.clone());
        }
        std::thread::sleep(Duration::from_micros(m.exec_us));
        m.executions += 1;
        if rule(STALE_ENV, "nrt_execute").is_some_and(|n| m.executions > n) {
            return NRT_SUCCESS;
        }
        for (j, (name, size)) in m.outputs.iter().enumerate() {
            let Some(t) = find(outs, name, *size) else {
                return NRT_INVALID;
            };
            let t = &mut *t;
            for (i, byte) in t.data.iter_mut().enumerate() {
                let sum = inputs
                    .iter()
                    .filter(|x| !x.is_empty())
                    .fold(0u8, |acc, x| acc.wrapping_add(x[i % x.len()]));
                *byte = sum.wrapping_add(j as u8).wrapping_add(1);
            }
            if j == 0 && m.executions > 1 {
                maybe_corrupt("nrt_execute", &mut t.data);
            }
        }
        NRT_SUCCESS
    })
}
