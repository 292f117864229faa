//! NVML backend: everything nvidia-smi shows, read through `nvml-wrapper` from a library
//! found at run time.
//!
//! Library lookup order: an explicit path (`--nvml-lib` / `ACCELPROBE_NVML_LIB`), else the
//! soname `libnvidia-ml.so.1` through the dynamic loader, else [`WELL_KNOWN_PATHS`], the places
//! where the NVIDIA container toolkit, the GPU operator's driver container and the managed
//! Kubernetes distributions put it. Each device is probed on its own thread so that one GPU
//! that hangs NVML costs only its own fields; see [`super::guard`].

use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use nvml_wrapper::enum_wrappers::device::{
    Clock, ComputeMode, EccCounter, MemoryError, PerformanceState, RetirementCause,
    TemperatureSensor,
};
use nvml_wrapper::error::{nvml_sym, nvml_try, nvml_try_count, NvmlError};
use nvml_wrapper::Nvml;

use super::guard::{guarded, spawn_worker, Slot};
use super::util::{fill_missing_reasons, mib_from_bytes};
use crate::report::{
    decode_clock_event_reasons, Device, ErrorKind, LibraryAttempt, NvLink, ProbeError, Process,
    Runtime, RuntimeKind, RuntimeStatus, Vendor,
};

/// The soname the NVIDIA driver installs and the container toolkit injects.
pub const NVML_SONAME: &str = "libnvidia-ml.so.1";

/// Places tried after the dynamic loader, in order (see the README).
pub const WELL_KNOWN_PATHS: &[&str] = &[
    // Debian/Ubuntu hosts and images; where the NVIDIA container toolkit injects it.
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    "/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
    // RHEL, Amazon Linux 2023, Bottlerocket.
    "/usr/lib64/libnvidia-ml.so.1",
    "/usr/lib/libnvidia-ml.so.1",
    // NVIDIA GPU operator: driver container root mounted on the host.
    "/run/nvidia/driver/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    "/run/nvidia/driver/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
    "/run/nvidia/driver/usr/lib64/libnvidia-ml.so.1",
    // GKE and other device plugins that mount the driver under /usr/local/nvidia.
    "/usr/local/nvidia/lib64/libnvidia-ml.so.1",
    "/home/kubernetes/bin/nvidia/lib64/libnvidia-ml.so.1",
];

/// NVLink links NVML can address per device.
const MAX_NVLINKS: u32 = 18;

/// What the NVML backend found.
#[derive(Debug, Clone)]
pub struct NvmlResult {
    pub runtime: Runtime,
    pub devices: Vec<Device>,
    pub errors: Vec<ProbeError>,
}

/// The NVML handle shared by the device workers. `ManuallyDrop` because dropping an `Nvml`
/// calls `nvmlShutdown` unguarded (a panic when the symbol is missing, a hang when the driver
/// hangs, on whatever thread drops it last): it is shut down only explicitly, on a worker
/// under the deadline, and otherwise leaked.
type SharedNvml = Arc<ManuallyDrop<Nvml>>;

/// State published by the init worker.
#[derive(Clone)]
struct InitState {
    runtime: Runtime,
    errors: Vec<ProbeError>,
    nvml: Option<SharedNvml>,
}

/// State published by a device worker.
#[derive(Clone)]
struct DeviceState {
    device: Device,
    errors: Vec<ProbeError>,
}

/// The candidate libraries, in the order they are tried.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => std::iter::once(NVML_SONAME)
            .chain(
                WELL_KNOWN_PATHS
                    .iter()
                    .copied()
                    .filter(|p| for_this_arch(p)),
            )
            .map(PathBuf::from)
            .collect(),
    }
}

/// Multiarch directories of another architecture are not worth trying.
fn for_this_arch(path: &str) -> bool {
    let other = match std::env::consts::ARCH {
        "x86_64" => "aarch64-linux-gnu",
        "aarch64" => "x86_64-linux-gnu",
        _ => return true,
    };
    !path.contains(other)
}

/// Probe NVML and every device it lists, finishing by `deadline`.
pub fn probe(explicit_lib: Option<&Path>, deadline: Instant) -> NvmlResult {
    let cands = candidates(explicit_lib);
    let init = spawn_worker(
        "nvml-init",
        InitState {
            runtime: Runtime::new(RuntimeKind::Nvml, RuntimeStatus::Absent),
            errors: Vec::new(),
            nvml: None,
        },
        move |slot| init_worker(&cands, slot),
    );
    let out = init.wait_until(deadline);
    // Take the handle out of the slot itself, not the clone in `out`, so that the device
    // workers' clones are the only others and the explicit shutdown below can own it.
    let nvml = init.update(|s| s.nvml.take());
    let mut state = out.value;
    state.nvml = None;
    if let Some(stuck) = out.stuck_in {
        stuck.time_out(&mut state.runtime, &mut state.errors);
        return NvmlResult {
            runtime: state.runtime,
            devices: Vec::new(),
            errors: state.errors,
        };
    }
    let Some(nvml) = nvml else {
        return NvmlResult {
            runtime: state.runtime,
            devices: Vec::new(),
            errors: state.errors,
        };
    };

    let count = state.runtime.device_count.unwrap_or(0);
    let slots: Vec<Slot<DeviceState>> = (0..count)
        .map(|index| {
            let nvml = Arc::clone(&nvml);
            spawn_worker(
                &format!("nvml-gpu{index}"),
                DeviceState {
                    device: Device {
                        index,
                        vendor: Some(Vendor::Nvidia),
                        ..Device::default()
                    },
                    errors: Vec::new(),
                },
                move |slot| probe_device(&nvml, index, slot),
            )
        })
        .collect();

    let mut devices = Vec::new();
    let mut errors = state.errors;
    let mut timed_out = Vec::new();
    for slot in slots {
        let out = slot.wait_until(deadline);
        let mut ds = out.value;
        if let Some(stuck) = out.stuck_in {
            let e = stuck.timeout_error(RuntimeKind::Nvml);
            fill_missing_reasons(&mut ds.device, &format!("not read: {}", e.message));
            ds.errors.push(e);
            timed_out.push(stuck.to_string());
        } else {
            fill_missing_reasons(&mut ds.device, "not reported by NVML");
        }
        devices.push(ds.device);
        errors.extend(ds.errors);
    }

    let mut runtime = state.runtime;
    if timed_out.is_empty() {
        shutdown(nvml, deadline, &mut errors);
    } else {
        // A worker is still inside NVML: never shut it down under it.
        runtime.status = RuntimeStatus::Timeout;
        runtime.error = Some(format!("timed out in {}", timed_out.join(", ")));
    }
    NvmlResult {
        runtime,
        devices,
        errors,
    }
}

/// Shut NVML down on a worker under the deadline, unless that cannot be done safely: when
/// another reference is still alive or `nvmlShutdown` is missing, the handle is leaked (the
/// process is about to exit anyway).
fn shutdown(nvml: SharedNvml, deadline: Instant, errors: &mut Vec<ProbeError>) {
    let Ok(nvml) = Arc::try_unwrap(nvml) else {
        return;
    };
    if nvml.lib().nvmlShutdown.is_err() {
        return;
    }
    let slot = spawn_worker(
        "nvml-shutdown",
        None,
        move |slot: &Slot<Option<ProbeError>>| {
            slot.enter("nvmlShutdown", None);
            let nvml = ManuallyDrop::into_inner(nvml);
            let err = match guarded(|| nvml.shutdown()) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(nvml_error(None, "nvmlShutdown", None, &e)),
                Err(panic) => Some(panic_error(None, "nvmlShutdown", &panic)),
            };
            slot.update(|s| *s = err);
        },
    );
    let out = slot.wait_until(deadline);
    if let Some(stuck) = out.stuck_in {
        errors.push(stuck.timeout_error(RuntimeKind::Nvml));
    } else if let Some(e) = out.value {
        errors.push(e);
    }
}

fn init_worker(cands: &[PathBuf], slot: &Slot<InitState>) {
    for path in cands {
        let shown = path.display().to_string();
        // A well-known absolute path that does not exist is not worth a dlopen.
        if path.is_absolute() && !path.exists() {
            slot.update(|s| {
                s.runtime
                    .tried
                    .push(attempt(&shown, Some("no such file".into())))
            });
            continue;
        }
        slot.enter("nvmlInit_v2", None);
        let result = guarded(|| Nvml::builder().lib_path(path.as_os_str()).init());
        match result {
            Ok(Ok(nvml)) => {
                slot.update(|s| {
                    s.runtime.tried.push(attempt(&shown, None));
                    s.runtime.library = Some(shown.clone());
                    s.runtime.status = RuntimeStatus::Loaded;
                });
                let nvml = Arc::new(ManuallyDrop::new(nvml));
                read_system(&nvml, slot);
                slot.update(|s| s.nvml = Some(nvml));
                return;
            }
            Ok(Err(NvmlError::LibloadingError(e))) => {
                slot.update(|s| s.runtime.tried.push(attempt(&shown, Some(e.to_string()))));
            }
            Ok(Err(e)) => {
                let err = nvml_error(None, "nvmlInit_v2", None, &e);
                slot.update(|s| {
                    s.runtime
                        .tried
                        .push(attempt(&shown, Some(err.message.clone())));
                    s.runtime.library = Some(shown.clone());
                    s.runtime.status = RuntimeStatus::Error;
                    s.runtime.error = Some(format!(
                        "{shown} loaded but nvmlInit_v2 failed: {}",
                        err.message
                    ));
                    s.errors.push(err);
                });
                return;
            }
            Err(panic) => {
                slot.update(|s| {
                    s.runtime.tried.push(attempt(&shown, Some(panic.clone())));
                    s.runtime.status = RuntimeStatus::Error;
                    s.runtime.error = Some(format!("{shown}: {panic}"));
                    s.errors.push(panic_error(None, "nvmlInit_v2", &panic));
                });
                return;
            }
        }
    }
    slot.update(|s| {
        s.runtime.error = Some(format!(
            "{NVML_SONAME} not found (no NVIDIA driver on this machine, or not mounted into the container); tried {} paths",
            s.runtime.tried.len()
        ))
    });
}

fn attempt(path: &str, error: Option<String>) -> LibraryAttempt {
    LibraryAttempt {
        path: path.to_string(),
        error,
    }
}

/// Driver, NVML and CUDA versions, and the device count.
fn read_system(nvml: &Nvml, slot: &Slot<InitState>) {
    let call = |name: &str| slot.enter(name, None);
    call("nvmlSystemGetDriverVersion");
    let driver = guarded(|| nvml.sys_driver_version());
    call("nvmlSystemGetNVMLVersion");
    let version = guarded(|| nvml.sys_nvml_version());
    call("nvmlSystemGetCudaDriverVersion_v2");
    let cuda = guarded(|| nvml.sys_cuda_driver_version());
    call("nvmlDeviceGetCount_v2");
    let count = guarded(|| nvml.device_count());
    slot.update(|s| {
        let errors = &mut s.errors;
        s.runtime.driver_version = take(errors, "nvmlSystemGetDriverVersion", driver);
        s.runtime.version = take(errors, "nvmlSystemGetNVMLVersion", version);
        s.runtime.cuda_version =
            take(errors, "nvmlSystemGetCudaDriverVersion_v2", cuda).map(cuda_version_string);
        s.runtime.device_count = take(errors, "nvmlDeviceGetCount_v2", count);
        if s.runtime.device_count.is_none() {
            s.runtime.status = RuntimeStatus::Error;
            s.runtime.error = Some("NVML loaded but could not count the GPUs".to_string());
        }
    });
}

/// The value of a guarded system-level call, or an error entry.
fn take<T>(
    errors: &mut Vec<ProbeError>,
    call: &str,
    r: Result<Result<T, NvmlError>, String>,
) -> Option<T> {
    match r {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            errors.push(nvml_error(None, call, None, &e));
            None
        }
        Err(p) => {
            errors.push(panic_error(None, call, &p));
            None
        }
    }
}

/// `12020` → `12.2` (the encoding of cuDriverGetVersion and NVML).
pub fn cuda_version_string(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// Reads one device's fields, recording why each unreadable one is missing.
struct Reader<'a> {
    slot: &'a Slot<DeviceState>,
    index: u32,
}

impl Reader<'_> {
    /// Make one NVML call for `fields`; on failure mark them unavailable and, unless the
    /// feature is simply not supported, record the error.
    fn read<T>(
        &self,
        call: &str,
        fields: &[&str],
        f: impl FnOnce() -> Result<T, NvmlError>,
    ) -> Option<T> {
        self.slot.enter(call, Some(self.index));
        match guarded(f) {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                let err = nvml_error(Some(self.index), call, fields.first().copied(), &e);
                self.slot.update(|s| {
                    for f in fields {
                        s.device.mark_unavailable(f, err.message.clone());
                    }
                    if !matches!(e, NvmlError::NotSupported) {
                        s.errors.push(err);
                    }
                });
                None
            }
            Err(panic) => {
                self.slot.update(|s| {
                    for f in fields {
                        s.device
                            .mark_unavailable(f, format!("{call} aborted: {panic}"));
                    }
                    s.errors.push(panic_error(Some(self.index), call, &panic));
                });
                None
            }
        }
    }

    /// Record a failure found by accelprobe itself (an implausible answer).
    fn fail(&self, call: &str, fields: &[&str], code: Option<&str>, message: String) {
        self.slot.update(|s| {
            for f in fields {
                s.device.mark_unavailable(f, message.clone());
            }
            s.errors.push(ProbeError {
                runtime: RuntimeKind::Nvml,
                kind: ErrorKind::Error,
                call: call.to_string(),
                device: Some(self.index),
                field: fields.first().map(|f| f.to_string()),
                code: code.map(str::to_string),
                message,
            });
        });
    }

    fn set(&self, f: impl FnOnce(&mut Device)) {
        self.slot.update(|s| f(&mut s.device));
    }
}

fn probe_device(nvml: &Nvml, index: u32, slot: &Slot<DeviceState>) {
    let r = Reader { slot, index };
    slot.enter("nvmlDeviceGetHandleByIndex_v2", Some(index));
    let dev = match guarded(|| nvml.device_by_index(index)) {
        Ok(Ok(dev)) => dev,
        failed => {
            // Without a handle nothing about the device can be read; even NOT_SUPPORTED
            // here is a real failure, since NVML itself counted the device.
            let err = match failed {
                Ok(Err(e)) => nvml_error(Some(index), "nvmlDeviceGetHandleByIndex_v2", None, &e),
                Err(panic) => panic_error(Some(index), "nvmlDeviceGetHandleByIndex_v2", &panic),
                Ok(Ok(_)) => return,
            };
            slot.update(|s| {
                let reason = format!("no handle for the device: {}", err.message);
                fill_missing_reasons(&mut s.device, &reason);
                s.errors.push(err);
            });
            return;
        }
    };

    read_identity(&r, &dev);
    read_thermal_power(&r, &dev);
    read_memory(&r, &dev);
    read_ecc(&r, nvml, &dev);
    read_modes_and_clocks(&r, nvml, &dev);
    read_processes(&r, nvml, &dev);
    read_nvlink(&r, &dev);
}

fn read_identity(r: &Reader<'_>, dev: &nvml_wrapper::Device<'_>) {
    let name = r.read("nvmlDeviceGetName", &["name"], || dev.name());
    let uuid = r.read("nvmlDeviceGetUUID", &["uuid"], || dev.uuid());
    let serial = r.read("nvmlDeviceGetSerial", &["serial"], || dev.serial());
    let bus = r.read("nvmlDeviceGetPciInfo_v3", &["pci_bus_id"], || {
        dev.pci_info()
    });
    let cc = r.read(
        "nvmlDeviceGetCudaComputeCapability",
        &["compute_capability"],
        || dev.cuda_compute_capability(),
    );
    r.set(|d| {
        d.name = name;
        d.uuid = uuid;
        d.serial = serial;
        d.pci_bus_id = bus.map(|p| p.bus_id);
        d.compute_capability = cc.map(|c| format!("{}.{}", c.major, c.minor));
    });
    let persistence = r.read(
        "nvmlDeviceGetPersistenceMode",
        &["persistence_mode"],
        || dev.is_in_persistent_mode(),
    );
    let display = r.read("nvmlDeviceGetDisplayActive", &["display_active"], || {
        dev.is_display_active()
    });
    r.set(|d| {
        d.persistence_mode = persistence;
        d.display_active = display;
    });
}

fn read_thermal_power(r: &Reader<'_>, dev: &nvml_wrapper::Device<'_>) {
    let temp = r.read("nvmlDeviceGetTemperature", &["temperature_c"], || {
        dev.temperature(TemperatureSensor::Gpu)
    });
    r.set(|d| d.temperature_c = temp);
    match r.read("nvmlDeviceGetNumFans", &["fan_speed_percent"], || {
        dev.num_fans()
    }) {
        Some(0) => r.set(|d| d.mark_unavailable("fan_speed_percent", "the device has no fan")),
        Some(_) => {
            let fan = r.read("nvmlDeviceGetFanSpeed_v2", &["fan_speed_percent"], || {
                dev.fan_speed(0)
            });
            r.set(|d| d.fan_speed_percent = fan);
        }
        None => {}
    }
    let pstate = r.read(
        "nvmlDeviceGetPerformanceState",
        &["performance_state"],
        || dev.performance_state(),
    );
    r.set(|d| match pstate.and_then(pstate_number) {
        Some(n) => d.performance_state = Some(format!("P{n}")),
        None if pstate.is_some() => {
            d.mark_unavailable("performance_state", "NVML reports an unknown state")
        }
        None => {}
    });
    let draw = r.read("nvmlDeviceGetPowerUsage", &["power_draw_w"], || {
        dev.power_usage()
    });
    let limit = r.read(
        "nvmlDeviceGetEnforcedPowerLimit",
        &["power_limit_w"],
        || dev.enforced_power_limit(),
    );
    let default = r.read(
        "nvmlDeviceGetPowerManagementDefaultLimit",
        &["power_default_limit_w"],
        || dev.power_management_limit_default(),
    );
    let management = r.read(
        "nvmlDeviceGetPowerManagementLimit",
        &["power_management_limit_w"],
        || dev.power_management_limit(),
    );
    r.set(|d| {
        d.power_draw_w = draw.map(watts);
        d.power_limit_w = limit.map(watts);
        d.power_management_limit_w = management.map(watts);
        d.power_default_limit_w = default.map(watts);
    });
}

fn watts(milliwatts: u32) -> f64 {
    f64::from(milliwatts) / 1000.0
}

fn pstate_number(p: PerformanceState) -> Option<u8> {
    use PerformanceState::*;
    Some(match p {
        Zero => 0,
        One => 1,
        Two => 2,
        Three => 3,
        Four => 4,
        Five => 5,
        Six => 6,
        Seven => 7,
        Eight => 8,
        Nine => 9,
        Ten => 10,
        Eleven => 11,
        Twelve => 12,
        Thirteen => 13,
        Fourteen => 14,
        Fifteen => 15,
        Unknown => return None,
    })
}

fn read_memory(r: &Reader<'_>, dev: &nvml_wrapper::Device<'_>) {
    const FIELDS: &[&str] = &[
        "memory_total_mib",
        "memory_used_mib",
        "memory_free_mib",
        "memory_reserved_mib",
    ];
    let mem = r.read("nvmlDeviceGetMemoryInfo_v2", FIELDS, || dev.memory_info());
    let util = r.read(
        "nvmlDeviceGetUtilizationRates",
        &["utilization_gpu_percent", "utilization_memory_percent"],
        || dev.utilization_rates(),
    );
    r.set(|d| {
        if let Some(m) = mem {
            d.memory_total_mib = Some(mib_from_bytes(m.total));
            d.memory_used_mib = Some(mib_from_bytes(m.used));
            d.memory_free_mib = Some(mib_from_bytes(m.free));
            d.memory_reserved_mib = Some(mib_from_bytes(m.reserved));
        }
        if let Some(u) = util {
            d.utilization_gpu_percent = Some(u.gpu);
            d.utilization_memory_percent = Some(u.memory);
        }
    });
}

fn read_ecc(r: &Reader<'_>, nvml: &Nvml, dev: &nvml_wrapper::Device<'_>) {
    let mode = r.read(
        "nvmlDeviceGetEccMode",
        &["ecc.mode_current", "ecc.mode_pending"],
        || dev.is_ecc_enabled(),
    );
    r.set(|d| {
        d.ecc.mode_current = mode.as_ref().map(|m| m.currently_enabled);
        d.ecc.mode_pending = mode.as_ref().map(|m| m.pending_enabled);
    });
    let counts = [
        (
            "ecc.volatile_corrected",
            MemoryError::Corrected,
            EccCounter::Volatile,
        ),
        (
            "ecc.volatile_uncorrected",
            MemoryError::Uncorrected,
            EccCounter::Volatile,
        ),
        (
            "ecc.aggregate_corrected",
            MemoryError::Corrected,
            EccCounter::Aggregate,
        ),
        (
            "ecc.aggregate_uncorrected",
            MemoryError::Uncorrected,
            EccCounter::Aggregate,
        ),
    ];
    for (field, kind, counter) in counts {
        let v = r.read("nvmlDeviceGetTotalEccErrors", &[field], || {
            dev.total_ecc_errors(kind, counter)
        });
        r.set(|d| match field {
            "ecc.volatile_corrected" => d.ecc.volatile_corrected = v,
            "ecc.volatile_uncorrected" => d.ecc.volatile_uncorrected = v,
            "ecc.aggregate_corrected" => d.ecc.aggregate_corrected = v,
            _ => d.ecc.aggregate_uncorrected = v,
        });
    }

    // SAFETY (all raw calls below): the handle comes from nvml-wrapper and is valid while
    // `nvml` lives; every out-pointer points at a live local.
    let handle = unsafe { dev.handle() };
    for (field, cause) in [
        (
            "retired_pages.single_bit_ecc",
            RetirementCause::MultipleSingleBitEccErrors,
        ),
        (
            "retired_pages.double_bit_ecc",
            RetirementCause::DoubleBitEccError,
        ),
    ] {
        let v = r.read("nvmlDeviceGetRetiredPages", &[field], || {
            let sym = nvml_sym(nvml.lib().nvmlDeviceGetRetiredPages.as_ref())?;
            let mut count: u32 = 0;
            let mut addr: u64 = 0;
            nvml_try_count(unsafe { sym(handle, cause.as_c(), &mut count, &mut addr) })?;
            Ok(u64::from(count))
        });
        r.set(|d| match field {
            "retired_pages.single_bit_ecc" => d.retired_pages.single_bit_ecc = v,
            _ => d.retired_pages.double_bit_ecc = v,
        });
    }
    let pending = r.read(
        "nvmlDeviceGetRetiredPagesPendingStatus",
        &["retired_pages.pending"],
        || dev.are_pages_pending_retired(),
    );
    r.set(|d| d.retired_pages.pending = pending);

    const REMAP: &[&str] = &[
        "remapped_rows.correctable",
        "remapped_rows.uncorrectable",
        "remapped_rows.pending",
        "remapped_rows.failure",
    ];
    let rows = r.read("nvmlDeviceGetRemappedRows", REMAP, || {
        let sym = nvml_sym(nvml.lib().nvmlDeviceGetRemappedRows.as_ref())?;
        let (mut corr, mut unc, mut pend, mut fail) = (0u32, 0u32, 0u32, 0u32);
        nvml_try(unsafe { sym(handle, &mut corr, &mut unc, &mut pend, &mut fail) })?;
        Ok((corr, unc, pend != 0, fail != 0))
    });
    r.set(|d| {
        if let Some((c, u, p, f)) = rows {
            d.remapped_rows.correctable = Some(c);
            d.remapped_rows.uncorrectable = Some(u);
            d.remapped_rows.pending = Some(p);
            d.remapped_rows.failure = Some(f);
        }
    });
}

fn read_modes_and_clocks(r: &Reader<'_>, nvml: &Nvml, dev: &nvml_wrapper::Device<'_>) {
    let cm = r.read("nvmlDeviceGetComputeMode", &["compute_mode"], || {
        dev.compute_mode()
    });
    let mig = r.read(
        "nvmlDeviceGetMigMode",
        &["mig.mode_current", "mig.mode_pending"],
        || dev.mig_mode(),
    );
    r.set(|d| {
        d.compute_mode = cm.map(|m| compute_mode_name(m).to_string());
        d.mig.mode_current = mig.as_ref().map(|m| m.current != 0);
        d.mig.mode_pending = mig.as_ref().map(|m| m.pending != 0);
    });

    for (field, clock, max) in [
        ("clocks.graphics_mhz", Clock::Graphics, false),
        ("clocks.sm_mhz", Clock::SM, false),
        ("clocks.memory_mhz", Clock::Memory, false),
        ("clocks.max_graphics_mhz", Clock::Graphics, true),
        ("clocks.max_sm_mhz", Clock::SM, true),
        ("clocks.max_memory_mhz", Clock::Memory, true),
    ] {
        let v = if max {
            r.read("nvmlDeviceGetMaxClockInfo", &[field], || {
                dev.max_clock_info(clock)
            })
        } else {
            r.read("nvmlDeviceGetClockInfo", &[field], || dev.clock_info(clock))
        };
        r.set(|d| {
            let slot = match field {
                "clocks.graphics_mhz" => &mut d.clocks.graphics_mhz,
                "clocks.sm_mhz" => &mut d.clocks.sm_mhz,
                "clocks.memory_mhz" => &mut d.clocks.memory_mhz,
                "clocks.max_graphics_mhz" => &mut d.clocks.max_graphics_mhz,
                "clocks.max_sm_mhz" => &mut d.clocks.max_sm_mhz,
                _ => &mut d.clocks.max_memory_mhz,
            };
            *slot = v;
        });
    }

    let gen_cur = r.read(
        "nvmlDeviceGetCurrPcieLinkGeneration",
        &["pcie.gen_current"],
        || dev.current_pcie_link_gen(),
    );
    let gen_max = r.read(
        "nvmlDeviceGetMaxPcieLinkGeneration",
        &["pcie.gen_max"],
        || dev.max_pcie_link_gen(),
    );
    let w_cur = r.read(
        "nvmlDeviceGetCurrPcieLinkWidth",
        &["pcie.width_current"],
        || dev.current_pcie_link_width(),
    );
    let w_max = r.read("nvmlDeviceGetMaxPcieLinkWidth", &["pcie.width_max"], || {
        dev.max_pcie_link_width()
    });
    r.set(|d| {
        d.pcie.gen_current = gen_cur;
        d.pcie.gen_max = gen_max;
        d.pcie.width_current = w_cur;
        d.pcie.width_max = w_max;
    });

    let handle = unsafe { dev.handle() };
    let active = r.read(
        "nvmlDeviceGetCurrentClocksThrottleReasons",
        &[
            "clock_event_reasons.active_mask",
            "clock_event_reasons.active",
        ],
        || {
            let sym = nvml_sym(
                nvml.lib()
                    .nvmlDeviceGetCurrentClocksThrottleReasons
                    .as_ref(),
            )?;
            let mut mask: u64 = 0;
            nvml_try(unsafe { sym(handle, &mut mask) })?;
            Ok(mask)
        },
    );
    let supported = r.read(
        "nvmlDeviceGetSupportedClocksThrottleReasons",
        &["clock_event_reasons.supported_mask"],
        || {
            let sym = nvml_sym(
                nvml.lib()
                    .nvmlDeviceGetSupportedClocksThrottleReasons
                    .as_ref(),
            )?;
            let mut mask: u64 = 0;
            nvml_try(unsafe { sym(handle, &mut mask) })?;
            Ok(mask)
        },
    );
    r.set(|d| {
        d.clock_event_reasons.active_mask = active;
        d.clock_event_reasons.active = active.map(decode_clock_event_reasons);
        d.clock_event_reasons.supported_mask = supported;
    });
}

fn compute_mode_name(m: ComputeMode) -> &'static str {
    match m {
        ComputeMode::Default => "Default",
        ComputeMode::ExclusiveThread => "Exclusive_Thread",
        ComputeMode::Prohibited => "Prohibited",
        ComputeMode::ExclusiveProcess => "Exclusive_Process",
    }
}

/// More processes than this on one GPU is a driver answer not worth allocating for
/// (nvml-wrapper would allocate `count + 5` entries and abort on failure).
const MAX_PROCESSES: u32 = 65_536;

/// One process list: its count first, refusing implausible ones (nvml-wrapper allocates
/// `count + 5` entries and aborts if that fails), then the list. The compute list fills the
/// `processes` field; the graphics list is optional and fills none.
fn read_process_list(
    r: &Reader<'_>,
    nvml: &Nvml,
    dev: &nvml_wrapper::Device<'_>,
    graphics: bool,
) -> Option<Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>> {
    let (call, fields): (&str, &[&str]) = if graphics {
        ("nvmlDeviceGetGraphicsRunningProcesses_v3", &[])
    } else {
        ("nvmlDeviceGetComputeRunningProcesses_v3", &["processes"])
    };
    // SAFETY: a valid handle, a live out-pointer, and a null array with count 0, which NVML
    // documents as the way to ask for the count.
    let handle = unsafe { dev.handle() };
    let count = r.read(call, fields, || {
        let lib = nvml.lib();
        let sym = if graphics {
            nvml_sym(lib.nvmlDeviceGetGraphicsRunningProcesses_v3.as_ref())?
        } else {
            nvml_sym(lib.nvmlDeviceGetComputeRunningProcesses_v3.as_ref())?
        };
        let mut count: u32 = 0;
        nvml_try_count(unsafe { sym(handle, &mut count, std::ptr::null_mut()) })?;
        Ok(count)
    })?;
    if count > MAX_PROCESSES {
        r.fail(
            call,
            fields,
            None,
            format!("NVML reports {count} processes, more than {MAX_PROCESSES}; not read"),
        );
        return None;
    }
    r.read(call, fields, || {
        if graphics {
            dev.running_graphics_processes()
        } else {
            dev.running_compute_processes()
        }
    })
}

/// Compute and graphics processes, merged by PID (`C`, `G` or `C+G`, as nvidia-smi shows).
fn read_processes(r: &Reader<'_>, nvml: &Nvml, dev: &nvml_wrapper::Device<'_>) {
    let Some(compute) = read_process_list(r, nvml, dev, false) else {
        return;
    };
    // Graphics processes are optional: data-centre GPUs often do not support the query (a
    // NOT_SUPPORTED answer is no error, see `Reader::read`).
    let graphics = read_process_list(r, nvml, dev, true).unwrap_or_default();

    let mut merged: Vec<(nvml_wrapper::struct_wrappers::device::ProcessInfo, &str)> = Vec::new();
    for p in compute {
        merged.push((p, "C"));
    }
    for p in graphics {
        match merged.iter_mut().find(|(q, _)| q.pid == p.pid) {
            Some(entry) => entry.1 = "C+G",
            None => merged.push((p, "G")),
        }
    }
    let mut processes = Vec::with_capacity(merged.len());
    for (i, (p, kind)) in merged.into_iter().enumerate() {
        let name_field = format!("processes.{i}.name");
        let name = r.read("nvmlSystemGetProcessName", &[name_field.as_str()], || {
            nvml.sys_process_name(p.pid, 256)
        });
        let name = match name {
            Some(n) if n.is_empty() => {
                r.set(|d| d.mark_unavailable(&name_field, "NVML returned an empty name"));
                None
            }
            other => other,
        };
        let used = match p.used_gpu_memory {
            nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(mib_from_bytes(b)),
            nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => {
                r.set(|d| {
                    d.mark_unavailable(
                        &format!("processes.{i}.used_memory_mib"),
                        "NVML reports the value as not available",
                    )
                });
                None
            }
        };
        if p.gpu_instance_id.is_none() {
            r.set(|d| {
                d.mark_unavailable(
                    &format!("processes.{i}.gpu_instance_id"),
                    "not in a MIG instance",
                );
                d.mark_unavailable(
                    &format!("processes.{i}.compute_instance_id"),
                    "not in a MIG instance",
                );
            });
        }
        processes.push(Process {
            pid: p.pid,
            name,
            used_memory_mib: used,
            kind: kind.to_string(),
            gpu_instance_id: p.gpu_instance_id,
            compute_instance_id: p.compute_instance_id,
        });
    }
    r.set(|d| d.processes = Some(processes));
}

fn read_nvlink(r: &Reader<'_>, dev: &nvml_wrapper::Device<'_>) {
    let mut links = Vec::new();
    for link in 0..MAX_NVLINKS {
        r.slot.enter("nvmlDeviceGetNvLinkState", Some(r.index));
        match guarded(|| dev.link_wrapper_for(link).is_active()) {
            Ok(Ok(active)) => links.push(NvLink { link, active }),
            // Links past the last one, or no NVLink at all.
            Ok(Err(NvmlError::NotSupported | NvmlError::InvalidArg)) => {}
            Ok(Err(e)) => {
                let err = nvml_error(
                    Some(r.index),
                    "nvmlDeviceGetNvLinkState",
                    Some("nvlink"),
                    &e,
                );
                r.slot.update(|s| {
                    s.device.mark_unavailable("nvlink", err.message.clone());
                    s.errors.push(err);
                });
                return;
            }
            Err(panic) => {
                r.slot.update(|s| {
                    s.device.mark_unavailable("nvlink", panic.clone());
                    s.errors.push(panic_error(
                        Some(r.index),
                        "nvmlDeviceGetNvLinkState",
                        &panic,
                    ));
                });
                return;
            }
        }
    }
    r.set(|d| {
        if links.is_empty() {
            d.mark_unavailable("nvlink", "not supported");
        } else {
            d.nvlink = Some(links);
        }
    });
}

fn panic_error(device: Option<u32>, call: &str, panic: &str) -> ProbeError {
    ProbeError {
        runtime: RuntimeKind::Nvml,
        kind: ErrorKind::Panic,
        call: call.to_string(),
        device,
        field: None,
        code: None,
        message: format!("{call} aborted: {panic}"),
    }
}

/// An error entry for a failed NVML call, with NVML's code name and a readable message.
fn nvml_error(device: Option<u32>, call: &str, field: Option<&str>, e: &NvmlError) -> ProbeError {
    let (code, text) = describe(e);
    ProbeError {
        runtime: RuntimeKind::Nvml,
        kind: ErrorKind::Error,
        call: call.to_string(),
        device,
        field: field.map(str::to_string),
        code: code.map(str::to_string),
        message: text,
    }
}

/// NVML's code name and a message for an error.
pub fn describe(e: &NvmlError) -> (Option<&'static str>, String) {
    use NvmlError::*;
    let (code, text): (Option<&'static str>, &str) = match e {
        Uninitialized => (Some("NVML_ERROR_UNINITIALIZED"), "NVML was not initialised"),
        InvalidArg => (Some("NVML_ERROR_INVALID_ARGUMENT"), "invalid argument"),
        NotSupported => (Some("NVML_ERROR_NOT_SUPPORTED"), "not supported"),
        NoPermission => (
            Some("NVML_ERROR_NO_PERMISSION"),
            "no permission (run as root or grant access)",
        ),
        NotFound => (Some("NVML_ERROR_NOT_FOUND"), "not found"),
        InsufficientSize(_) => (Some("NVML_ERROR_INSUFFICIENT_SIZE"), "buffer too small"),
        InsufficientPower => (
            Some("NVML_ERROR_INSUFFICIENT_POWER"),
            "external power cables not connected",
        ),
        DriverNotLoaded => (
            Some("NVML_ERROR_DRIVER_NOT_LOADED"),
            "the NVIDIA kernel driver is not loaded",
        ),
        Timeout => (Some("NVML_ERROR_TIMEOUT"), "timed out inside NVML"),
        IrqIssue => (
            Some("NVML_ERROR_IRQ_ISSUE"),
            "interrupt problem between driver and GPU",
        ),
        LibraryNotFound => (
            Some("NVML_ERROR_LIBRARY_NOT_FOUND"),
            "a library NVML needs was not found",
        ),
        FunctionNotFound => (
            Some("NVML_ERROR_FUNCTION_NOT_FOUND"),
            "function not implemented by this driver",
        ),
        CorruptedInfoROM => (
            Some("NVML_ERROR_CORRUPTED_INFOROM"),
            "the GPU's infoROM is corrupted",
        ),
        GpuLost => (
            Some("NVML_ERROR_GPU_IS_LOST"),
            "the GPU has fallen off the bus or is otherwise inaccessible",
        ),
        ResetRequired => (Some("NVML_ERROR_RESET_REQUIRED"), "the GPU needs a reset"),
        OperatingSystem => (
            Some("NVML_ERROR_OPERATING_SYSTEM"),
            "the operating system blocked the call",
        ),
        LibRmVersionMismatch => (
            Some("NVML_ERROR_LIB_RM_VERSION_MISMATCH"),
            "NVML and the kernel driver versions differ (driver upgraded without reboot?)",
        ),
        InUse => (Some("NVML_ERROR_IN_USE"), "the GPU is in use"),
        InsufficientMemory => (Some("NVML_ERROR_MEMORY"), "out of memory"),
        NoData => (Some("NVML_ERROR_NO_DATA"), "no data"),
        VgpuEccNotSupported => (
            Some("NVML_ERROR_VGPU_ECC_NOT_SUPPORTED"),
            "ECC not supported with vGPU",
        ),
        Unknown => (Some("NVML_ERROR_UNKNOWN"), "unknown NVML error"),
        UnexpectedVariant(v) => return (None, format!("unexpected NVML return code {v}")),
        FailedToLoadSymbol(s) => return (None, format!("not in this driver's NVML: {s}")),
        other => return (None, other.to_string()),
    };
    (code, text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_is_the_only_candidate() {
        assert_eq!(
            candidates(Some(Path::new("/x/libnvidia-ml.so.1"))),
            vec![PathBuf::from("/x/libnvidia-ml.so.1")]
        );
        let all = candidates(None);
        assert_eq!(all[0], PathBuf::from(NVML_SONAME));
        assert!(all.len() > 4);
        assert!(
            !all.iter().any(|p| p.to_string_lossy().contains("aarch64"))
                || std::env::consts::ARCH == "aarch64"
        );
    }

    #[test]
    fn cuda_versions() {
        assert_eq!(cuda_version_string(12020), "12.2");
        assert_eq!(cuda_version_string(13000), "13.0");
        assert_eq!(cuda_version_string(11080), "11.8");
    }

    #[test]
    fn every_error_has_a_message() {
        let (code, text) = describe(&NvmlError::GpuLost);
        assert_eq!(code, Some("NVML_ERROR_GPU_IS_LOST"));
        assert!(text.contains("fallen off the bus"));
        let (code, text) = describe(&NvmlError::UnexpectedVariant(12345));
        assert_eq!(code, None);
        assert!(text.contains("12345"));
    }
}
