//! A compiled Neuron model (`bench --neff FILE`): load it on each selected NeuronCore with
//! `nrt_load`, execute it with `nrt_execute`, and report the execution latency (the samples)
//! and throughput (executions per second at the median latency, one request at a time).
//!
//! Why a NEFF and not a built-in kernel: a NeuronCore runs only what `neuronx-cc` compiled, and
//! accelprobe does not ship a compiler. The operator brings the model their node will serve,
//! which is also the most honest benchmark of that node.
//!
//! Calls, in the order of the libnrt header (aws-neuron/aws-neuron-sdk
//! `src/libnrt/include/nrt/nrt.h` and `nrt_experimental.h`): `nrt_load(bytes, size, nc, -1,
//! &model)`, `nrt_get_model_tensor_info` / `nrt_free_model_tensor_info` to learn the input and
//! output tensors, `nrt_tensor_allocate` on the core for each, `nrt_tensor_write` of every
//! input (the bytes of its `--neff-input NAME=FILE`, or zeros), `nrt_allocate_tensor_set` /
//! `nrt_add_tensor_to_tensor_set` for the inputs and the outputs, then `nrt_execute` (once,
//! untimed; then warm-up and timed runs), `nrt_tensor_read` of the outputs, and on the way
//! out `nrt_destroy_tensor_set`, `nrt_tensor_free`, `nrt_unload`.
//!
//! Correctness: without the model's expected outputs the only honest check is that the core
//! computes the same thing every time. The outputs of the first execution are read back and
//! compared byte for byte with those after the last timed one; a difference fails the check.
//!
//! Every call runs on the Neuron benchmark worker under its per-call limit (`--timeout`);
//! `nrt_load` may take [`NeffModel::load_allowance`] more (12 × `--timeout`, plus the model at
//! 0.1 GB/s) and each `nrt_execute` [`execute_allowance`] more (3 × `--timeout`), since loading
//! and running a large model legitimately take longer than a tensor copy. Both scale with
//! `--timeout`, so an operator with a slow model raises one number.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::exact_compare;
use super::neuron::{device, Found, Job, Tensor};
use super::timing::{self, host_time, Rounds};
use super::{finish, Measured};
use crate::probe::guard::Slot;
use crate::probe::neuron::{call_nrt, call_nrt_void, CallFailure};
use crate::report::{Benchmark, Correctness, Kernel, ProblemSize};

/// Time one `nrt_execute` may take beyond the per-call limit: 3 × `--timeout`.
pub fn execute_allowance(timeout: Duration) -> Duration {
    timeout.saturating_mul(3)
}
/// Load rate assumed for the allowance, bytes per second (far below a real load).
const LOAD_BYTES_PER_S: f64 = 0.1e9;
/// More tensors than this in `nrt_get_model_tensor_info` means the answer is not what the
/// header describes.
const MAX_TENSORS: u64 = 4096;
/// `NRT_TENSOR_NAME_MAX` of `nrt_experimental.h`.
const NRT_TENSOR_NAME_MAX: usize = 256;
/// `NRT_TENSOR_USAGE_INPUT` of `nrt_tensor_usage_t`.
const NRT_TENSOR_USAGE_INPUT: c_int = 0;
/// `NRT_TENSOR_USAGE_OUTPUT`.
const NRT_TENSOR_USAGE_OUTPUT: c_int = 1;

/// `nrt_tensor_info_t` of `nrt_experimental.h`.
#[repr(C)]
struct NrtTensorInfo {
    name: [c_char; NRT_TENSOR_NAME_MAX],
    usage: c_int,
    size: usize,
    dtype: c_int,
    shape: *mut u32,
    ndim: u32,
}

/// `nrt_tensor_info_array_t`: a count followed by that many entries.
#[repr(C)]
struct NrtTensorInfoArray {
    tensor_count: u64,
    tensor_array: [NrtTensorInfo; 0],
}

/// The model file and its inputs, read before anything runs.
#[derive(Debug, Clone)]
pub struct NeffModel {
    pub path: PathBuf,
    /// `file-name@sha256-prefix`, the metric key's `model`.
    pub label: String,
    pub bytes: Vec<u8>,
    pub inputs: Vec<InputFile>,
}

/// The bytes for one input tensor (`--neff-input NAME=FILE`).
#[derive(Debug, Clone)]
pub struct InputFile {
    pub name: String,
    pub path: PathBuf,
    pub data: Vec<u8>,
}

/// Parse `NAME=FILE` of `--neff-input`.
pub fn parse_input(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, file)) if !name.trim().is_empty() && !file.is_empty() => {
            Ok((name.trim().to_string(), PathBuf::from(file)))
        }
        _ => Err(format!(
            "'{text}' is not NAME=FILE (the model's input tensor name, then the file with its bytes)"
        )),
    }
}

impl NeffModel {
    /// Read the model and the input files; every problem is one line naming the file.
    pub fn open(path: &Path, inputs: &[(String, PathBuf)]) -> Result<NeffModel, String> {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read --neff {}: {e}; pass the compiled model (.neff) neuronx-cc wrote",
                path.display()
            )
        })?;
        if bytes.is_empty() {
            return Err(format!(
                "--neff {} is empty; pass the compiled model (.neff) neuronx-cc wrote",
                path.display()
            ));
        }
        let mut files: Vec<InputFile> = Vec::new();
        for (name, file) in inputs {
            if files.iter().any(|f| &f.name == name) {
                return Err(format!(
                    "--neff-input {name} is given twice; give each input tensor once"
                ));
            }
            let data = std::fs::read(file).map_err(|e| {
                format!(
                    "cannot read --neff-input {name}={}: {e}; check the path",
                    file.display()
                )
            })?;
            files.push(InputFile {
                name: name.clone(),
                path: file.clone(),
                data,
            });
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let hex: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let file_name = path
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        Ok(NeffModel {
            path: path.to_path_buf(),
            label: format!("{file_name}@{hex}"),
            bytes,
            inputs: files,
        })
    }

    /// How much longer than the per-call limit `nrt_load` may take: 12 × `--timeout`, plus
    /// the model's bytes at 0.1 GB/s.
    pub fn load_allowance(&self, timeout: Duration) -> Duration {
        timeout.saturating_mul(12)
            + Duration::from_secs_f64(self.bytes.len() as f64 / LOAD_BYTES_PER_S)
    }

    /// Host memory a run needs besides what is already read: the input files written from
    /// and two copies of the outputs (assumed no larger than four times the inputs).
    pub fn host_bytes(&self) -> u128 {
        let inputs: u128 = self.inputs.iter().map(|i| i.data.len() as u128).sum();
        inputs * 9 + self.bytes.len() as u128
    }
}

/// One tensor of the loaded model.
#[derive(Debug, Clone, PartialEq)]
struct TensorInfo {
    name: String,
    input: bool,
    size: usize,
}

/// A loaded model, unloaded when dropped.
struct Loaded<'a> {
    lib: &'a libloading::Library,
    slot: &'a Slot<Found>,
    nc: u32,
    ptr: *mut c_void,
}

impl Drop for Loaded<'_> {
    fn drop(&mut self) {
        self.slot.enter("nrt_unload", Some(self.nc));
        let model = self.ptr;
        // SAFETY: `NRT_STATUS nrt_unload(nrt_model_t *)` in nrt.h.
        let r = call_nrt(
            self.lib,
            "nrt_unload",
            |f: unsafe extern "C" fn(*mut c_void) -> c_int| unsafe { f(model) },
        );
        note_failure(self.slot, self.nc, r);
    }
}

/// A tensor set, destroyed when dropped (before the tensors it names are freed).
struct TensorSet<'a> {
    lib: &'a libloading::Library,
    slot: &'a Slot<Found>,
    nc: u32,
    ptr: *mut c_void,
}

impl<'a> TensorSet<'a> {
    fn allocate(
        lib: &'a libloading::Library,
        slot: &'a Slot<Found>,
        nc: u32,
    ) -> Result<Self, CallFailure> {
        let mut ptr: *mut c_void = std::ptr::null_mut();
        slot.enter("nrt_allocate_tensor_set", Some(nc));
        // SAFETY: `NRT_STATUS nrt_allocate_tensor_set(nrt_tensor_set_t **)` in nrt.h.
        call_nrt(
            lib,
            "nrt_allocate_tensor_set",
            |f: unsafe extern "C" fn(*mut *mut c_void) -> c_int| unsafe { f(&mut ptr) },
        )?;
        if ptr.is_null() {
            return Err(failure(
                "nrt_allocate_tensor_set returned NRT_SUCCESS and no set",
            ));
        }
        Ok(TensorSet { lib, slot, nc, ptr })
    }

    fn add(&mut self, name: &str, tensor: &Tensor) -> Result<(), CallFailure> {
        let cname = c_name(name)?;
        self.slot
            .enter("nrt_add_tensor_to_tensor_set", Some(self.nc));
        let (set, t) = (self.ptr, tensor.ptr);
        // SAFETY: `NRT_STATUS nrt_add_tensor_to_tensor_set(nrt_tensor_set_t *, const char *,
        // nrt_tensor_t *)` in nrt.h; the tensor outlives the set (dropped after it).
        call_nrt(
            self.lib,
            "nrt_add_tensor_to_tensor_set",
            |f: unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_void) -> c_int| unsafe {
                f(set, cname.as_ptr(), t)
            },
        )
    }
}

impl Drop for TensorSet<'_> {
    fn drop(&mut self) {
        self.slot.enter("nrt_destroy_tensor_set", Some(self.nc));
        let mut ptr = self.ptr;
        // SAFETY: `void nrt_destroy_tensor_set(nrt_tensor_set_t **)` in nrt.h.
        let r = call_nrt_void(
            self.lib,
            "nrt_destroy_tensor_set",
            |f: unsafe extern "C" fn(*mut *mut c_void)| unsafe { f(&mut ptr) },
        );
        note_failure(self.slot, self.nc, r);
    }
}

fn note_failure(slot: &Slot<Found>, nc: u32, r: Result<(), CallFailure>) {
    if let Err(e) = r {
        slot.update(|s| s.notes.push(format!("{}: {}", device(nc), e.message)));
    }
}

fn failure(message: impl Into<String>) -> CallFailure {
    CallFailure {
        kind: crate::report::ErrorKind::Error,
        code: None,
        message: message.into(),
    }
}

fn c_name(name: &str) -> Result<CString, CallFailure> {
    CString::new(name).map_err(|_| failure(format!("tensor name {name:?} contains a NUL byte")))
}

/// `nrt_load` on core `nc`.
fn load<'a>(
    lib: &'a libloading::Library,
    slot: &'a Slot<Found>,
    nc: u32,
    model: &NeffModel,
    timeout: Duration,
) -> Result<Loaded<'a>, CallFailure> {
    let mut ptr: *mut c_void = std::ptr::null_mut();
    let (bytes, size) = (model.bytes.as_ptr().cast::<c_void>(), model.bytes.len());
    let vnc = i32::try_from(nc).unwrap_or(i32::MAX);
    slot.enter_allowing("nrt_load", Some(nc), model.load_allowance(timeout));
    // SAFETY: `NRT_STATUS nrt_load(const void *neff_bytes, size_t size, int32_t vnc,
    // int32_t vnc_count, nrt_model_t **model)` in nrt.h; vnc_count is deprecated, always -1.
    call_nrt(
        lib,
        "nrt_load",
        |f: unsafe extern "C" fn(*const c_void, usize, i32, i32, *mut *mut c_void) -> c_int| unsafe {
            f(bytes, size, vnc, -1, &mut ptr)
        },
    )?;
    if ptr.is_null() {
        return Err(failure("nrt_load returned NRT_SUCCESS and no model"));
    }
    Ok(Loaded { lib, slot, nc, ptr })
}

/// The model's tensors, from `nrt_get_model_tensor_info` (freed again at once).
fn tensor_info(loaded: &Loaded) -> Result<Vec<TensorInfo>, CallFailure> {
    let mut arr: *mut NrtTensorInfoArray = std::ptr::null_mut();
    let model = loaded.ptr;
    loaded
        .slot
        .enter("nrt_get_model_tensor_info", Some(loaded.nc));
    // SAFETY: `NRT_STATUS nrt_get_model_tensor_info(nrt_model_t *, nrt_tensor_info_array_t **)`
    // in nrt_experimental.h.
    call_nrt(
        loaded.lib,
        "nrt_get_model_tensor_info",
        |f: unsafe extern "C" fn(*mut c_void, *mut *mut NrtTensorInfoArray) -> c_int| unsafe {
            f(model, &mut arr)
        },
    )?;
    if arr.is_null() {
        return Err(failure(
            "nrt_get_model_tensor_info returned NRT_SUCCESS and no tensor list",
        ));
    }
    // SAFETY: the runtime returned a valid array of `tensor_count` entries.
    let parsed = unsafe { read_tensor_info(arr) };
    loaded
        .slot
        .enter("nrt_free_model_tensor_info", Some(loaded.nc));
    // SAFETY: `NRT_STATUS nrt_free_model_tensor_info(nrt_tensor_info_array_t *)`.
    let freed = call_nrt(
        loaded.lib,
        "nrt_free_model_tensor_info",
        |f: unsafe extern "C" fn(*mut NrtTensorInfoArray) -> c_int| unsafe { f(arr) },
    );
    note_failure(loaded.slot, loaded.nc, freed);
    parsed
}

/// Copy the entries out of the runtime's array.
///
/// # Safety
/// `arr` points to an `nrt_tensor_info_array_t` with `tensor_count` entries.
unsafe fn read_tensor_info(arr: *const NrtTensorInfoArray) -> Result<Vec<TensorInfo>, CallFailure> {
    let count = (*arr).tensor_count;
    if count > MAX_TENSORS {
        return Err(failure(format!(
            "nrt_get_model_tensor_info reported {count} tensors; more than {MAX_TENSORS} means \
             the runtime's structure differs from the header accelprobe was built against"
        )));
    }
    let first = std::ptr::addr_of!((*arr).tensor_array).cast::<NrtTensorInfo>();
    let mut out = Vec::new();
    for i in 0..count as usize {
        let t = &*first.add(i);
        let bytes: Vec<u8> = t
            .name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        let input = match t.usage {
            NRT_TENSOR_USAGE_INPUT => true,
            NRT_TENSOR_USAGE_OUTPUT => false,
            other => {
                return Err(failure(format!(
                    "nrt_get_model_tensor_info: tensor {i} has usage {other}, neither input (0) \
                     nor output (1)"
                )))
            }
        };
        out.push(TensorInfo {
            name: String::from_utf8_lossy(&bytes).into_owned(),
            input,
            size: t.size,
        });
    }
    Ok(out)
}

/// Check the `--neff-input` files against the model's inputs: every name must be an input,
/// every file exactly the tensor's size.
fn match_inputs(tensors: &[TensorInfo], model: &NeffModel) -> Result<(), String> {
    let inputs: Vec<&TensorInfo> = tensors.iter().filter(|t| t.input).collect();
    for file in &model.inputs {
        let Some(t) = inputs.iter().find(|t| t.name == file.name) else {
            let names: Vec<String> = inputs
                .iter()
                .map(|t| format!("{} ({} B)", t.name, t.size))
                .collect();
            return Err(format!(
                "--neff-input {}: the model has no input tensor of that name; its inputs are {}",
                file.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ));
        };
        if file.data.len() != t.size {
            return Err(format!(
                "--neff-input {}={}: the file has {} bytes, the tensor takes {}",
                file.name,
                file.path.display(),
                file.data.len(),
                t.size
            ));
        }
    }
    if !tensors.iter().any(|t| !t.input) {
        return Err("the model has no output tensor; nothing to execute and check".into());
    }
    Ok(())
}

/// What one model run produced.
struct Run {
    samples: Rounds,
    correctness: Correctness,
    io_bytes: u64,
    notes: Vec<String>,
}

/// Load, set up, execute and check `model` on core `nc`; every resource is released on the
/// way out, in reverse order, whatever failed.
fn run_model(
    lib: &libloading::Library,
    slot: &Slot<Found>,
    nc: u32,
    model: &NeffModel,
    job: &Job,
) -> Result<Run, String> {
    let call = |e: CallFailure| e.message;
    let loaded = load(lib, slot, nc, model, job.call_timeout).map_err(call)?;
    let tensors = tensor_info(&loaded).map_err(call)?;
    match_inputs(&tensors, model)?;
    // Allocate and fill every tensor before any set refers to them (sets are dropped first).
    let mut allocated: Vec<(TensorInfo, Tensor)> = Vec::new();
    let mut zero_filled = Vec::new();
    for t in &tensors {
        let cname = c_name(&t.name).map_err(call)?;
        let tensor = Tensor::allocate(lib, slot, nc, t.size, &cname).map_err(call)?;
        if t.input {
            match model.inputs.iter().find(|f| f.name == t.name) {
                Some(file) => tensor.write(&file.data).map_err(call)?,
                None => {
                    tensor.write(&vec![0u8; t.size]).map_err(call)?;
                    zero_filled.push(t.name.clone());
                }
            }
        }
        allocated.push((t.clone(), tensor));
    }
    let mut inputs = TensorSet::allocate(lib, slot, nc).map_err(call)?;
    let mut outputs = TensorSet::allocate(lib, slot, nc).map_err(call)?;
    for (info, tensor) in &allocated {
        let set = if info.input {
            &mut inputs
        } else {
            &mut outputs
        };
        set.add(&info.name, tensor).map_err(call)?;
    }
    let execute = || -> Result<(), CallFailure> {
        let (m, i, o) = (loaded.ptr, inputs.ptr.cast_const(), outputs.ptr);
        slot.enter_allowing("nrt_execute", Some(nc), execute_allowance(job.call_timeout));
        // SAFETY: `NRT_STATUS nrt_execute(nrt_model_t *, const nrt_tensor_set_t *,
        // nrt_tensor_set_t *)` in nrt.h; synchronous.
        call_nrt(
            lib,
            "nrt_execute",
            |f: unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void) -> c_int| unsafe {
                f(m, i, o)
            },
        )
    };
    let read_outputs = || -> Result<Vec<u8>, CallFailure> {
        let mut all = Vec::new();
        for (info, tensor) in allocated.iter().filter(|(i, _)| !i.input) {
            let mut buf = vec![0u8; info.size];
            tensor.read(&mut buf)?;
            all.extend_from_slice(&buf);
        }
        Ok(all)
    };
    // Outputs are filled with a pattern before the first and the final execution, so an
    // execution that returns success without writing them cannot match.
    let poison_outputs = |pattern: u8| -> Result<(), CallFailure> {
        for (info, tensor) in allocated.iter().filter(|(i, _)| !i.input) {
            tensor.write(&vec![pattern; info.size])?;
        }
        Ok(())
    };
    poison_outputs(POISON[0]).map_err(call)?;
    execute().map_err(call)?;
    let first = read_outputs().map_err(call)?;
    let samples = timing::consecutive_rounds(&job.plan.budget, timing::DEVICE_ROUNDS, || {
        let mut r = Ok(());
        let t = host_time(|| r = execute());
        r.map(|()| t)
    })
    .map_err(call)?;
    // Another pattern: executions that never write leave different bytes behind.
    poison_outputs(POISON[1]).map_err(call)?;
    execute().map_err(call)?;
    let last = read_outputs().map_err(call)?;
    slot.enter("compare", Some(nc));
    let out_tensors: Vec<&TensorInfo> = tensors.iter().filter(|t| !t.input).collect();
    let correctness = determinism(&first, &last, &out_tensors);
    let io_bytes = tensors.iter().map(|t| t.size as u64).sum();
    let mut notes = vec![format!(
        "model {}: {} input(s), {} output(s); latency is the host clock around one synchronous \
         nrt_execute, throughput one request at a time",
        model.path.display(),
        tensors.iter().filter(|t| t.input).count(),
        out_tensors.len()
    )];
    if !zero_filled.is_empty() {
        notes.push(format!(
            "inputs without --neff-input were filled with zeros: {}",
            zero_filled.join(", ")
        ));
    }
    drop(outputs);
    drop(inputs);
    drop(allocated);
    drop(loaded);
    Ok(Run {
        samples,
        correctness,
        io_bytes,
        notes,
    })
}

/// What output tensors hold before the first and before the final checked execution.
const POISON: [u8; 2] = [0xA5, 0x5A];

/// The outputs after the last execution must equal those after the first, byte for byte.
fn determinism(first: &[u8], last: &[u8], outputs: &[&TensorInfo]) -> Correctness {
    let method = "outputs filled with a pattern, then the first execution's read back and \
                  compared byte for byte with those of one more execution after the timed ones, \
                  its outputs filled again first (same inputs, so they must not change)";
    let mut c = exact_compare(last, first, method);
    // Name the output tensor and byte instead of the word index.
    if let Some(at) = first.iter().zip(last).position(|(a, b)| a != b) {
        let differing = first.iter().zip(last).filter(|(a, b)| a != b).count();
        let (mut offset, mut tensor) = (at, "?");
        for t in outputs {
            if offset < t.size {
                tensor = &t.name;
                break;
            }
            offset -= t.size;
        }
        c.failure = Some(format!(
            "{differing} of {} output bytes changed between the first and the last execution, \
             first at byte {offset} of output {tensor}: the NeuronCore does not compute the \
             same result twice",
            first.len()
        ));
    } else if !c.passed {
        c.failure = Some(format!(
            "{} output bytes after the first execution, {} after the last",
            first.len(),
            last.len()
        ));
    }
    c
}

/// One `neff` benchmark on NeuronCore `nc`.
pub(super) fn execute(
    lib: &libloading::Library,
    slot: &Slot<Found>,
    nc: u32,
    name: Option<String>,
    model: &NeffModel,
    job: &Job,
) -> Benchmark {
    let (samples, correctness, io_bytes, notes) = match run_model(lib, slot, nc, model, job) {
        Ok(r) => (r.samples, r.correctness, Some(r.io_bytes), r.notes),
        Err(why) => (
            Rounds::default(),
            Correctness::not_run(why),
            None,
            vec![format!("model {}", model.path.display())],
        ),
    };
    finish(Measured {
        kernel: Kernel::Neff,
        dtype: None,
        device: device(nc),
        device_name: name,
        implementation: "nrt-execute".into(),
        size: ProblemSize {
            bytes: io_bytes,
            model: Some(model.label.clone()),
            ..ProblemSize::default()
        },
        warmup: job.plan.budget.warmup,
        rounds: samples.sizes,
        samples: samples.samples,
        work: 1.0,
        unit: "exec/s",
        peak: None,
        correctness,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, input: bool, size: usize) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            input,
            size,
        }
    }

    #[test]
    fn the_tensor_info_layout_is_the_headers() {
        // name[256], int usage, size_t size, int dtype, uint32_t *shape, uint32_t ndim.
        assert_eq!(std::mem::offset_of!(NrtTensorInfo, usage), 256);
        assert_eq!(std::mem::offset_of!(NrtTensorInfo, size), 264);
        assert_eq!(std::mem::offset_of!(NrtTensorInfo, shape), 280);
        assert_eq!(std::mem::size_of::<NrtTensorInfo>(), 296);
        assert_eq!(std::mem::offset_of!(NrtTensorInfoArray, tensor_array), 8);
    }

    #[test]
    fn inputs_parse_and_are_refused_when_malformed() {
        assert_eq!(
            parse_input("x=/tmp/a.bin"),
            Ok(("x".into(), PathBuf::from("/tmp/a.bin")))
        );
        assert_eq!(parse_input("a=b=c"), Ok(("a".into(), PathBuf::from("b=c"))));
        for bad in ["x", "=f", "x=", ""] {
            assert!(parse_input(bad).unwrap_err().contains("NAME=FILE"), "{bad}");
        }
    }

    #[test]
    fn input_files_are_matched_by_name_and_size() {
        let model = |inputs: Vec<(&str, usize)>| NeffModel {
            path: "m.neff".into(),
            label: "m.neff@000000000000".into(),
            bytes: vec![1],
            inputs: inputs
                .into_iter()
                .map(|(n, len)| InputFile {
                    name: n.into(),
                    path: format!("{n}.bin").into(),
                    data: vec![0; len],
                })
                .collect(),
        };
        let tensors = [info("x", true, 8), info("y", false, 4)];
        assert_eq!(match_inputs(&tensors, &model(vec![("x", 8)])), Ok(()));
        assert_eq!(match_inputs(&tensors, &model(vec![])), Ok(()));
        assert_eq!(
            match_inputs(&tensors, &model(vec![("z", 8)])).unwrap_err(),
            "--neff-input z: the model has no input tensor of that name; its inputs are x (8 B)"
        );
        assert_eq!(
            match_inputs(&tensors, &model(vec![("x", 3)])).unwrap_err(),
            "--neff-input x=x.bin: the file has 3 bytes, the tensor takes 8"
        );
        let no_out = [info("x", true, 8)];
        assert!(match_inputs(&no_out, &model(vec![]))
            .unwrap_err()
            .contains("no output tensor"));
    }

    #[test]
    fn determinism_names_the_output_that_changed() {
        let outs = [info("a", false, 4), info("b", false, 4)];
        let refs: Vec<&TensorInfo> = outs.iter().collect();
        let same = determinism(&[1, 2, 3, 4, 5, 6, 7, 8], &[1, 2, 3, 4, 5, 6, 7, 8], &refs);
        assert!(same.passed && same.failure.is_none());
        let changed = determinism(&[1, 2, 3, 4, 5, 6, 7, 8], &[1, 2, 3, 4, 5, 0, 7, 8], &refs);
        assert!(!changed.passed);
        let why = changed.failure.unwrap();
        assert!(why.starts_with("1 of 8 output bytes changed"), "{why}");
        assert!(why.contains("byte 1 of output b"), "{why}");
        let shorter = determinism(&[1, 2], &[1], &refs);
        assert!(!shorter.passed);
    }

    #[test]
    fn a_model_is_labelled_by_name_and_digest() {
        let dir = std::env::temp_dir().join(format!("accelprobe-neff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.neff");
        std::fs::write(&path, b"abc").unwrap();
        let m = NeffModel::open(&path, &[]).unwrap();
        // SHA-256("abc") begins ba7816bf8f01.
        assert_eq!(m.label, "tiny.neff@ba7816bf8f01");
        let t = Duration::from_secs(10);
        assert!(m.load_allowance(t) >= Duration::from_secs(120));
        assert_eq!(execute_allowance(t), Duration::from_secs(30));
        let missing = NeffModel::open(&dir.join("none.neff"), &[]).unwrap_err();
        assert!(missing.starts_with("cannot read --neff"), "{missing}");
        std::fs::write(dir.join("empty.neff"), b"").unwrap();
        let empty = NeffModel::open(&dir.join("empty.neff"), &[]).unwrap_err();
        assert!(empty.contains("is empty"), "{empty}");
        let twice = NeffModel::open(
            &path,
            &[("x".into(), path.clone()), ("x".into(), path.clone())],
        )
        .unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
