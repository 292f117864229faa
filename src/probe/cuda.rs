//! CUDA driver backend: what the CUDA driver API says about each device, through `cudarc`
//! with dynamic loading (nothing linked at build time).
//!
//! cudarc is built for CUDA 12.0 (`cuda-12000`), the CUDA release of driver branch R525, so
//! it resolves only symbols that exist in every driver from R525 on. cudarc panics when the
//! library or a symbol is missing, so the library is looked for first (listing each
//! candidate) and every call runs inside [`guarded`] on a probe thread under the deadline.
//! Only device attributes are read: no context is created, so the probe costs no GPU memory.

use std::time::Instant;

use cudarc::driver::result::{self, DriverError};
use cudarc::driver::sys::{self, CUdevice_attribute};

use super::guard::{guarded, spawn_worker, Slot};
use super::nvml::cuda_version_string;
use super::util::mib_from_bytes;
use crate::report::{
    CudaDevice, ErrorKind, LibraryAttempt, ProbeError, Runtime, RuntimeKind, RuntimeStatus,
};

/// What the CUDA backend found.
#[derive(Debug, Clone)]
pub struct CudaResult {
    pub runtime: Runtime,
    pub devices: Vec<CudaDevice>,
    pub errors: Vec<ProbeError>,
}

/// Start probing on a worker thread; collect with [`collect`].
pub fn start() -> Slot<CudaResult> {
    spawn_worker(
        "cuda",
        CudaResult {
            runtime: Runtime::new(RuntimeKind::Cuda, RuntimeStatus::Absent),
            devices: Vec::new(),
            errors: Vec::new(),
        },
        worker,
    )
}

/// Wait for the worker until `deadline`; a worker still busy is reported as `timeout`.
pub fn collect(slot: &Slot<CudaResult>, deadline: Instant) -> CudaResult {
    let out = slot.wait_until(deadline);
    let mut r = out.value;
    if let Some(stuck) = out.stuck_in {
        stuck.time_out(&mut r.runtime, &mut r.errors);
    }
    r
}

fn worker(slot: &Slot<CudaResult>) {
    let Some(lib) = find_library(slot) else {
        slot.update(|s| {
            s.runtime.error = Some(
                "libcuda not found (no NVIDIA driver, or not mounted into the container)"
                    .to_string(),
            )
        });
        return;
    };
    slot.update(|s| {
        s.runtime.library = Some(lib);
        s.runtime.status = RuntimeStatus::Loaded;
    });

    if call(slot, "cuInit", None, result::init).is_none() {
        slot.update(|s| {
            s.runtime.status = RuntimeStatus::Error;
            let why = s
                .errors
                .last()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            s.runtime.error = Some(format!("cuInit failed: {why}"));
        });
        return;
    }
    let version = call(slot, "cuDriverGetVersion", None, || {
        let mut v = 0i32;
        unsafe { sys::cuDriverGetVersion(&mut v) }
            .result()
            .map(|_| v)
    });
    let count = call(slot, "cuDeviceGetCount", None, result::device::get_count);
    slot.update(|s| {
        s.runtime.version = version.map(cuda_version_string);
        s.runtime.cuda_version = s.runtime.version.clone();
        s.runtime.device_count = count.and_then(|c| u32::try_from(c).ok());
        if let Some(c) = count.filter(|&c| c < 0) {
            s.errors.push(ProbeError {
                runtime: RuntimeKind::Cuda,
                kind: ErrorKind::Error,
                call: "cuDeviceGetCount".to_string(),
                device: None,
                field: None,
                code: None,
                message: format!("cuDeviceGetCount: the driver reports a negative count ({c})"),
            });
        }
        if s.runtime.device_count.is_none() {
            s.runtime.status = RuntimeStatus::Error;
            s.runtime.error = Some("CUDA loaded but could not count the devices".to_string());
        }
    });
    for ordinal in 0..count.unwrap_or(0).max(0) {
        let dev = probe_device(slot, ordinal);
        slot.update(|s| s.devices.push(dev));
    }
}

/// Try each library name cudarc will try, in its order; record each attempt.
fn find_library(slot: &Slot<CudaResult>) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let names = cudarc::get_lib_name_candidates("cuda");
    for name in names.into_iter().filter(|n| seen.insert(n.clone())) {
        slot.enter("dlopen", None);
        // SAFETY: loading the CUDA driver runs its initialisers, which is what cudarc will do
        // with the same name right after.
        match unsafe { libloading::Library::new(&name) } {
            Ok(_) => {
                slot.update(|s| {
                    s.runtime.tried.push(LibraryAttempt {
                        path: name.clone(),
                        error: None,
                    })
                });
                return Some(name);
            }
            Err(e) => slot.update(|s| {
                s.runtime.tried.push(LibraryAttempt {
                    path: name.clone(),
                    error: Some(e.to_string()),
                })
            }),
        }
    }
    None
}

fn probe_device(slot: &Slot<CudaResult>, ordinal: i32) -> CudaDevice {
    let index = u32::try_from(ordinal).unwrap_or_default();
    let mut d = CudaDevice {
        ordinal: index,
        ..CudaDevice::default()
    };
    let Some(dev) = call(slot, "cuDeviceGet", Some(index), || {
        result::device::get(ordinal)
    }) else {
        return d;
    };
    d.name = call(slot, "cuDeviceGetName", Some(index), || {
        result::device::get_name(dev)
    });
    d.total_memory_mib = call(slot, "cuDeviceTotalMem_v2", Some(index), || unsafe {
        result::device::total_mem(dev)
    })
    .map(|b| mib_from_bytes(b as u64));
    let attr = |a: CUdevice_attribute| {
        call(slot, "cuDeviceGetAttribute", Some(index), || unsafe {
            result::device::get_attribute(dev, a)
        })
    };
    let major = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    let minor = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    d.compute_capability = major.zip(minor).map(|(a, b)| format!("{a}.{b}"));
    d.multiprocessor_count = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .and_then(|v| u32::try_from(v).ok());
    let domain = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID);
    let bus = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID);
    let device = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID);
    if let (Some(dom), Some(b), Some(dv)) = (domain, bus, device) {
        d.pci_bus_id = Some(format!("{dom:08X}:{b:02X}:{dv:02X}.0"));
    }
    d
}

/// One guarded driver call; failures become error entries.
fn call<T>(
    slot: &Slot<CudaResult>,
    name: &str,
    device: Option<u32>,
    f: impl FnOnce() -> Result<T, DriverError>,
) -> Option<T> {
    slot.enter(name, device);
    let (kind, code, message) = match guarded(f) {
        Ok(Ok(v)) => return Some(v),
        Ok(Err(e)) => {
            let code = format!("{:?}", e.0);
            let text = guarded(|| e.error_string().map(|s| s.to_string_lossy().into_owned()))
                .ok()
                .and_then(Result::ok)
                .unwrap_or_else(|| code.clone());
            let hint = if e.0 == sys::CUresult::CUDA_ERROR_STUB_LIBRARY {
                " (the loaded libcuda is the CUDA toolkit's stub: remove the stubs directory from LD_LIBRARY_PATH)"
            } else {
                ""
            };
            (
                ErrorKind::Error,
                Some(code),
                format!("{name}: {text}{hint}"),
            )
        }
        Err(panic) => (ErrorKind::Panic, None, format!("{name} aborted: {panic}")),
    };
    slot.update(|s| {
        s.errors.push(ProbeError {
            runtime: RuntimeKind::Cuda,
            kind,
            call: name.to_string(),
            device,
            field: None,
            code,
            message,
        })
    });
    None
}
