//! AWS Neuron backend: host-to-device (`h2d`) and device-to-host (`d2h`) copy bandwidth
//! through libnrt tensors, on every visible NeuronCore (`neuron:N` is the runtime's logical
//! NeuronCore N, the id `nrt_tensor_allocate` takes).
//!
//! The library is the one the probe loaded (the report's `runtimes[neuron].library`), opened
//! again through the probe's helpers ([`crate::probe::neuron`]): symbols are looked up just
//! before each call, a missing one or a status other than `NRT_SUCCESS` is a failed benchmark,
//! never a panic. Everything runs on one worker thread, in order: `nrt_init`, then per core
//! and kernel `nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_DEVICE, nc, bytes, …)`, the copies,
//! `nrt_tensor_free`, and `nrt_close` at the end. The worker names every libnrt call in its
//! slot before making it; the caller abandons it when one call runs longer than the per-call
//! limit (the probe's `--timeout` plus the transfer at 0.5 GB/s) or the whole run passes its
//! deadline, and what did not come back becomes failed benchmarks naming the hung call.
//!
//! Timing is the host clock around each `nrt_tensor_write` / `nrt_tensor_read` (both are
//! synchronous). Correctness: for `h2d` the tensor is filled with zeros before the first
//! write and read back after the last one; for `d2h` the data is written once and the host
//! buffer is zeroed before every read; either way the result is compared word by word with
//! the source.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::check::exact_compare;
use super::data::Inputs;
use super::neff::{self, NeffModel};
use super::timing::{self, host_time, Rounds, DEVICE_ROUNDS};
use super::{finish, not_run, BenchOutcome, Injection, Measured, Plan, Progress};
use crate::probe::guard::{spawn_worker, Slot};
use crate::probe::neuron::{
    call_nrt, call_nrt_void, close_runtime, init_runtime, open_library, CallFailure,
};
use crate::report::{
    Benchmark, Correctness, Kernel, ProblemSize, Report, RuntimeKind, RuntimeStatus,
};

/// `NRT_TENSOR_PLACEMENT_DEVICE` of `nrt_tensor_placement_t`.
const NRT_TENSOR_PLACEMENT_DEVICE: c_int = 0;

/// Transfer rate assumed when deriving deadlines, bytes per second (well below any real link).
const PESSIMISTIC_BYTES_PER_S: f64 = 0.5e9;

/// The NeuronCores a run can use.
#[derive(Debug, Clone, PartialEq)]
pub struct Cores {
    /// The libnrt the probe loaded.
    pub library: String,
    /// Visible NeuronCores (`nrt_get_visible_vnc_count`): `neuron:0` to `neuron:count-1`.
    pub count: u32,
    /// The Neuron devices' name from sysfs (`Inferentia2`); every device of an instance is
    /// the same model.
    pub name: Option<String>,
}

/// The visible NeuronCores of `report`. `Err(None)`: the node has no Neuron runtime or
/// device at all; `Err(Some(why))`: it has Neuron hardware or a runtime, but nothing to
/// benchmark on.
pub fn cores(report: &Report) -> Result<Cores, Option<String>> {
    let devices = report.neuron_devices();
    let has_devices = !devices.is_empty();
    let Some(rt) = report.runtime(RuntimeKind::Neuron) else {
        return Err(None);
    };
    let error = rt.error.clone().unwrap_or_else(|| "no detail".into());
    match rt.status {
        RuntimeStatus::Absent if !has_devices => Err(None),
        RuntimeStatus::Absent => Err(Some(format!("libnrt is not loaded: {error}"))),
        RuntimeStatus::Error => Err(Some(format!("the Neuron runtime failed: {error}"))),
        RuntimeStatus::Timeout => Err(Some(format!(
            "the Neuron runtime hung while probed ({error}); not calling it again"
        ))),
        RuntimeStatus::Loaded => {
            let library = rt.library.clone().ok_or_else(|| {
                Some("the report does not say which libnrt was loaded".to_string())
            })?;
            let visible = rt.neuron.as_ref().and_then(|n| n.cores_visible);
            match visible {
                None => Err(Some(
                    "the Neuron runtime did not report its visible NeuronCores \
                     (nrt_get_visible_vnc_count failed; see errors[])"
                        .to_string(),
                )),
                Some(0) => Err(Some(
                    "the Neuron runtime sees no NeuronCore (nrt_get_visible_vnc_count is 0; \
                     check NEURON_RT_VISIBLE_CORES and the aws.amazon.com/neuron request)"
                        .to_string(),
                )),
                Some(count) => Ok(Cores {
                    library,
                    count,
                    name: devices.iter().find_map(|d| d.name.clone()),
                }),
            }
        }
    }
}

/// What one run of the Neuron backend needs besides the cores.
#[derive(Debug, Clone)]
pub struct Job {
    pub plan: Plan,
    pub seed: u64,
    pub injection: Injection,
    /// The probe's deadline for hardware calls (`--timeout`); each libnrt call gets this
    /// plus the time its data needs at 0.5 GB/s.
    pub call_timeout: Duration,
    /// The compiled model `--neff` asked for, run on every selected NeuronCore.
    pub neff: Option<Arc<NeffModel>>,
}

impl Job {
    /// How long one libnrt call may take before the runtime counts as hung.
    pub fn per_call_limit(&self) -> Duration {
        self.call_timeout
            + Duration::from_secs_f64(self.plan.transfer_bytes as f64 / PESSIMISTIC_BYTES_PER_S)
    }

    /// How long the whole run may take: every copy's warm-up and minimum iterations at
    /// 0.5 GB/s, three times its timed budget and the per-call limit for setup, every model
    /// run's load and executions with their allowances, plus init.
    pub fn deadline(&self, work: &[(u32, Kernel)]) -> Duration {
        let b = &self.plan.budget;
        let iters = f64::from(b.warmup + b.min_iterations + 3);
        let per_call = self.per_call_limit().as_secs_f64();
        let per_copy = iters * self.plan.transfer_bytes as f64 / PESSIMISTIC_BYTES_PER_S
            + 3.0 * b.duration.as_secs_f64()
            + per_call;
        let per_model = self.neff.as_ref().map_or(0.0, |m| {
            m.load_allowance(self.call_timeout).as_secs_f64()
                + (iters + 1.0)
                    * (per_call + neff::execute_allowance(self.call_timeout).as_secs_f64())
                + 3.0 * b.duration.as_secs_f64()
        });
        let total: f64 = work
            .iter()
            .map(|(_, k)| {
                if *k == Kernel::Neff {
                    per_model
                } else {
                    per_copy
                }
            })
            .sum::<f64>()
            + 2.0 * per_call;
        Duration::from_secs_f64(total.min(24.0 * 3600.0))
    }
}

/// What the worker published.
#[derive(Debug, Clone, Default)]
pub(super) struct Found {
    benches: Vec<Benchmark>,
    /// Why nothing (more) could run: dlopen or nrt_init failed.
    fatal: Option<String>,
    pub(super) notes: Vec<String>,
}

pub(super) fn device(nc: u32) -> String {
    format!("neuron:{nc}")
}

/// Run `kernels` (h2d and d2h only) on NeuronCores `which` and add the results to `outcome`.
pub fn run(
    cores: &Cores,
    which: &[u32],
    kernels: &[Kernel],
    job: &Job,
    progress: &dyn Progress,
    outcome: &mut BenchOutcome,
) {
    let work: Vec<(u32, Kernel)> = which
        .iter()
        .flat_map(|&nc| kernels.iter().map(move |&k| (nc, k)))
        .collect();
    if work.is_empty() {
        return;
    }
    progress.start(work.len());
    progress.item(&format!(
        "neuron {}",
        kernels
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(",")
    ));
    let started = Instant::now();
    let deadline = started + job.deadline(&work);
    let per_call = job.per_call_limit();
    let slot = {
        let (library, name, work, job) = (
            cores.library.clone(),
            cores.name.clone(),
            work.clone(),
            job.clone(),
        );
        spawn_worker("bench-neuron", Found::default(), move |slot| {
            worker(slot, &library, name, &work, &job)
        })
    };
    let out = slot.wait_until_or_stalled(deadline, Some(per_call));
    let found = out.value;
    let reason = match (&out.stuck_in, &found.fatal) {
        (Some(stuck), _) => {
            let on = stuck
                .device
                .map(|d| format!(" on {}", device(d)))
                .unwrap_or_default();
            let limit = if Instant::now() >= deadline {
                format!(
                    "before the run's deadline ({:.0} s)",
                    deadline.duration_since(started).as_secs_f64()
                )
            } else {
                format!("within {:.1} s", per_call.as_secs_f64())
            };
            format!(
                "{}{on} did not return {limit}: the Neuron runtime hung",
                stuck.call
            )
        }
        (None, Some(fatal)) => fatal.clone(),
        (None, None) => "the benchmark ended without a result".to_string(),
    };
    for &(nc, kernel) in &work {
        let dev = device(nc);
        match found
            .benches
            .iter()
            .find(|b| b.kernel == kernel && b.device == dev)
        {
            Some(b) => outcome.benchmarks.push(b.clone()),
            None => outcome.benchmarks.push(not_run(
                kernel,
                None,
                &dev,
                cores.name.clone(),
                reason.clone(),
            )),
        }
        progress.advance();
    }
    outcome.notes.extend(found.notes);
    progress.finish();
}

fn worker(
    slot: &Slot<Found>,
    library: &str,
    name: Option<String>,
    work: &[(u32, Kernel)],
    job: &Job,
) {
    slot.enter("dlopen", None);
    let lib = match open_library(library) {
        Ok(lib) => lib,
        Err(e) => {
            slot.update(|s| s.fatal = Some(format!("libnrt {library} could not be loaded: {e}")));
            return;
        }
    };
    slot.enter("nrt_init", None);
    if let Err(f) = init_runtime(lib) {
        slot.update(|s| {
            s.fatal = Some(format!(
                "the Neuron runtime did not initialise: {}",
                f.message
            ))
        });
        return;
    }
    for &(nc, kernel) in work {
        let b = match (kernel, &job.neff) {
            (Kernel::Neff, Some(model)) => neff::execute(lib, slot, nc, name.clone(), model, job),
            _ => transfer(lib, slot, nc, name.clone(), kernel, job),
        };
        slot.update(|s| s.benches.push(b));
    }
    slot.enter("nrt_close", None);
    if let Err(f) = close_runtime(lib) {
        slot.update(|s| s.notes.push(f.message));
    }
}

/// A device tensor, freed when dropped.
pub(super) struct Tensor<'a> {
    lib: &'a libloading::Library,
    slot: &'a Slot<Found>,
    nc: u32,
    pub(super) ptr: *mut c_void,
}

impl<'a> Tensor<'a> {
    /// `nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_DEVICE, nc, bytes, name, …)`.
    pub(super) fn allocate(
        lib: &'a libloading::Library,
        slot: &'a Slot<Found>,
        nc: u32,
        bytes: usize,
        name: &CStr,
    ) -> Result<Self, CallFailure> {
        let mut ptr: *mut c_void = std::ptr::null_mut();
        let logical = c_int::try_from(nc).unwrap_or(c_int::MAX);
        slot.enter("nrt_tensor_allocate", Some(nc));
        call_nrt(
            lib,
            "nrt_tensor_allocate",
            |f: unsafe extern "C" fn(
                c_int,
                c_int,
                usize,
                *const c_char,
                *mut *mut c_void,
            ) -> c_int| unsafe {
                f(
                    NRT_TENSOR_PLACEMENT_DEVICE,
                    logical,
                    bytes,
                    name.as_ptr(),
                    &mut ptr,
                )
            },
        )?;
        if ptr.is_null() {
            return Err(CallFailure {
                kind: crate::report::ErrorKind::Error,
                code: None,
                message: "nrt_tensor_allocate returned NRT_SUCCESS and no tensor".into(),
            });
        }
        Ok(Tensor { lib, slot, nc, ptr })
    }

    /// Copy `data` into the tensor. `&self`: the memory written is the runtime's, not this
    /// handle's (as writing through a `&File`).
    pub(super) fn write<T: Copy>(&self, data: &[T]) -> Result<(), CallFailure> {
        self.slot.enter("nrt_tensor_write", Some(self.nc));
        let (t, buf, size) = (
            self.ptr,
            data.as_ptr().cast::<c_void>(),
            std::mem::size_of_val(data),
        );
        call_nrt(
            self.lib,
            "nrt_tensor_write",
            |f: unsafe extern "C" fn(*mut c_void, *const c_void, usize, usize) -> c_int| unsafe {
                f(t, buf, 0, size)
            },
        )
    }

    pub(super) fn read<T: Copy>(&self, out: &mut [T]) -> Result<(), CallFailure> {
        self.slot.enter("nrt_tensor_read", Some(self.nc));
        let (t, buf, size) = (
            self.ptr.cast_const(),
            out.as_mut_ptr().cast::<c_void>(),
            std::mem::size_of_val(out),
        );
        call_nrt(
            self.lib,
            "nrt_tensor_read",
            |f: unsafe extern "C" fn(*const c_void, *mut c_void, usize, usize) -> c_int| unsafe {
                f(t, buf, 0, size)
            },
        )
    }
}

impl Drop for Tensor<'_> {
    fn drop(&mut self) {
        self.slot.enter("nrt_tensor_free", Some(self.nc));
        let mut ptr = self.ptr;
        let freed = call_nrt_void(
            self.lib,
            "nrt_tensor_free",
            |f: unsafe extern "C" fn(*mut *mut c_void)| unsafe { f(&mut ptr) },
        );
        if let Err(e) = freed {
            self.slot
                .update(|s| s.notes.push(format!("neuron:{}: {}", self.nc, e.message)));
        }
    }
}

/// Words between two stamps: one per 4 KiB page.
const STAMP_STRIDE: usize = 1024;

/// Mark `data` as the `n`-th write: one word per page gets a value no other write has (odd,
/// so never the zeros the tensor starts with). A write that stops arriving, or arrives only
/// in part, leaves an older stamp behind.
fn stamp(data: &mut [u32], n: u32) {
    for w in data.iter_mut().step_by(STAMP_STRIDE) {
        *w = n.wrapping_mul(2) | 1;
    }
}

/// One `h2d` or `d2h` benchmark on NeuronCore `nc`.
fn transfer(
    lib: &libloading::Library,
    slot: &Slot<Found>,
    nc: u32,
    name: Option<String>,
    kernel: Kernel,
    job: &Job,
) -> Benchmark {
    let words = (job.plan.transfer_bytes / 4).max(1);
    let bytes = words * 4;
    slot.enter("prepare host buffers", Some(nc));
    let mut inp = Inputs::new(job.seed);
    let mut data: Vec<u32> = (0..words).map(|_| inp.next_f32().to_bits() | 1).collect();
    let mut back = vec![0u32; words];
    let budget = job.plan.budget;
    let mut run = |back: &mut Vec<u32>| -> Result<Rounds, CallFailure> {
        let name = match kernel {
            Kernel::D2h => c"accelprobe-d2h",
            _ => c"accelprobe-h2d",
        };
        let tensor = Tensor::allocate(lib, slot, nc, bytes, name)?;
        if kernel == Kernel::H2d {
            // Zeros first, so data that never arrives fails the check.
            tensor.write(back)?;
            let mut writes = 0u32;
            let samples = timing::consecutive_rounds(&budget, DEVICE_ROUNDS, || {
                writes += 1;
                stamp(&mut data, writes);
                let mut r = Ok(());
                let t = host_time(|| r = tensor.write(&data));
                r.map(|()| t)
            })?;
            tensor.read(back)?;
            Ok(samples)
        } else {
            tensor.write(&data)?;
            timing::consecutive_rounds(&budget, DEVICE_ROUNDS, || {
                slot.enter("zero the host buffer", Some(nc));
                back.fill(0);
                let mut r = Ok(());
                let t = host_time(|| r = tensor.read(back));
                r.map(|()| t)
            })
        }
    };
    let (samples, correctness) = match run(&mut back) {
        Ok(samples) => {
            slot.enter("compare", Some(nc));
            job.injection.corrupt_bits(kernel, &mut back);
            let method = if kernel == Kernel::H2d {
                "tensor filled with zeros before the first write; before each write (untimed) \
                 one word in every 4 KiB is stamped with the write's number, so each write \
                 changes every page; read back after the last and compared word by word with \
                 what it wrote"
            } else {
                "host buffer zeroed before each read, then compared word by word with the data \
                 written"
            };
            (samples, exact_compare(&back, &data, method))
        }
        Err(e) => (Rounds::default(), Correctness::not_run(e.message)),
    };
    let peak = name.as_deref().and_then(|n| {
        crate::verify::catalog::Catalog::builtin()
            .identify_neuron(n)
            .and_then(|m| m.peak_for(kernel, None))
    });
    let mut notes = vec![
        "nrt_tensor_write/nrt_tensor_read of a device tensor from pageable host memory, host \
         clock; GB/s counts bytes moved one way"
            .to_string(),
    ];
    if peak.is_none() {
        notes.push("no peak: the catalog has no host link figure for this Neuron device".into());
    }
    finish(Measured {
        kernel,
        dtype: None,
        device: device(nc),
        device_name: name,
        implementation: "nrt-tensor".into(),
        size: ProblemSize {
            bytes: Some(bytes as u64),
            ..ProblemSize::default()
        },
        warmup: budget.warmup,
        rounds: samples.sizes,
        samples: samples.samples,
        work: bytes as f64 / 1e9,
        unit: "GB/s",
        peak,
        correctness,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{DeviceSel, Profile};

    #[test]
    fn neuron_devices_parse() {
        assert_eq!(DeviceSel::parse("neuron:3"), Ok(DeviceSel::Neuron(3)));
        assert_eq!(DeviceSel::parse("cuda:1"), Ok(DeviceSel::Cuda(1)));
        let e = DeviceSel::parse("neuron:x").unwrap_err();
        assert!(e.contains("neuron:N"), "{e}");
    }

    #[test]
    fn plan_and_limits_follow_the_profile() {
        assert_eq!(Plan::neuron(Profile::Quick).transfer_bytes, 64 << 20);
        assert_eq!(Plan::neuron(Profile::Thorough).transfer_bytes, 1 << 30);
        let job = Job {
            plan: Plan::neuron(Profile::Quick).with_overrides(Some(1), None),
            seed: 1,
            injection: Injection::default(),
            call_timeout: Duration::from_secs(1),
            neff: None,
        };
        assert_eq!(job.plan.transfer_bytes, 1 << 20);
        // 1 s plus 1 MiB at 0.5 GB/s.
        let limit = job.per_call_limit().as_secs_f64();
        assert!((limit - 1.002_097).abs() < 1e-3, "{limit}");
        let work = [
            (0, Kernel::H2d),
            (0, Kernel::D2h),
            (1, Kernel::H2d),
            (1, Kernel::D2h),
        ];
        assert!(job.deadline(&work) > 4 * job.per_call_limit());
    }
}
