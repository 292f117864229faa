//! Probing: the only part of accelprobe that touches hardware. It returns a
//! [`Report`](crate::report::Report) and prints nothing.
//!
//! NVML and the CUDA driver are probed concurrently on worker threads under one deadline
//! ([`guard`]); the host section is read from procfs/sysfs. The CUDA view of each GPU is
//! attached to the NVML device with the same PCI bus id.

pub mod cuda;
pub mod guard;
pub mod host;
pub mod neuron;
pub mod nvml;
pub mod util;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::report::{
    CudaDevice, Device, ErrorKind, ProbeError, Report, Runtime, RuntimeKind, RuntimeStatus, Tool,
    Vendor, SCHEMA_VERSION,
};

/// Default total deadline for all hardware calls.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Explicit NVML library (`--nvml-lib` / `ACCELPROBE_NVML_LIB`).
    pub nvml_lib: Option<PathBuf>,
    /// Deadline for all hardware calls together.
    pub timeout: Duration,
    /// Skip the CUDA driver probe.
    pub skip_cuda: bool,
    /// Root under which the Neuron sysfs tree is read (`--sysfs-root`, `/` by default).
    pub sysfs_root: PathBuf,
    /// Explicit Neuron runtime library (`--neuron-lib` / `ACCELPROBE_NRT_LIB`).
    pub neuron_lib: Option<PathBuf>,
    /// Skip the Neuron probe (sysfs and libnrt).
    pub skip_neuron: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            nvml_lib: None,
            timeout: DEFAULT_TIMEOUT,
            skip_cuda: false,
            sysfs_root: PathBuf::from("/"),
            neuron_lib: None,
            skip_neuron: false,
        }
    }
}

/// Probe this machine.
pub fn probe(opts: &ProbeOptions) -> Report {
    let started = Instant::now();
    let deadline = started + opts.timeout;
    let created_at = now_rfc3339();
    let cuda_slot = (!opts.skip_cuda).then(cuda::start);
    let neuron_slot = (!opts.skip_neuron).then(|| {
        (
            neuron::start(opts.neuron_lib.clone()),
            neuron::start_inventory(opts.sysfs_root.clone()),
        )
    });
    let env = |k: &str| std::env::var(k).ok();
    let host = host::probe_host(&host::HostSources {
        root: std::path::Path::new("/"),
        env: &env,
    });
    let nv = nvml::probe(opts.nvml_lib.as_deref(), deadline);
    let cu = cuda_slot.map(|s| cuda::collect(&s, deadline));
    let ne = neuron_slot.map(|(runtime, sysfs)| {
        let inventory = neuron::collect_inventory(&sysfs, deadline);
        neuron::collect(&runtime, inventory, deadline)
    });

    let mut errors = nv.errors;
    let mut devices = nv.devices;
    let mut runtimes = vec![nv.runtime];
    match cu {
        Some(cu) => {
            errors.extend(cu.errors);
            attach_cuda(&mut devices, cu.devices, &cu.runtime, &mut errors);
            runtimes.push(cu.runtime);
        }
        None => {
            for d in &mut devices {
                d.mark_unavailable("cuda", "the CUDA driver was not probed (--no-cuda)");
            }
        }
    }
    if let Some(ne) = ne {
        errors.extend(ne.errors);
        devices.extend(ne.devices);
        runtimes.push(ne.runtime);
    }
    Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool::current(),
        id: uuid::Uuid::new_v4().to_string(),
        created_at,
        host,
        runtimes,
        devices,
        benchmarks: Vec::new(),
        errors,
    }
}

/// Current time in RFC 3339, UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Parse a PCI bus id (`00000000:30:00.0` or `0000:30:00.0`) into (domain, bus, device).
fn pci_key(id: &str) -> Option<(u32, u32, u32)> {
    let mut parts = id.trim().split(':');
    let domain = u32::from_str_radix(parts.next()?, 16).ok()?;
    let bus = u32::from_str_radix(parts.next()?, 16).ok()?;
    let dev = parts.next()?.split('.').next()?;
    Some((domain, bus, u32::from_str_radix(dev, 16).ok()?))
}

/// Attach each CUDA device to the NVML device on the same PCI bus id. Without NVML devices,
/// the CUDA devices become the device list.
fn attach_cuda(
    devices: &mut Vec<Device>,
    cuda: Vec<CudaDevice>,
    runtime: &Runtime,
    errors: &mut Vec<ProbeError>,
) {
    if devices.is_empty() {
        for c in cuda {
            let c_total = c.total_memory_mib;
            let mut d = Device {
                index: c.ordinal,
                vendor: Some(Vendor::Nvidia),
                name: c.name.clone(),
                pci_bus_id: c.pci_bus_id.clone(),
                compute_capability: c.compute_capability.clone(),
                cuda: Some(c),
                ..Device::default()
            };
            if let Some(usable) = c_total {
                // CUDA's total excludes memory the driver reserves; it is not nvidia-smi's.
                d.mark_unavailable(
                    "memory_total_mib",
                    format!(
                        "NVML not available; the CUDA driver reports {usable} MiB usable \
                         (cuda.total_memory_mib)"
                    ),
                );
            }
            util::fill_missing_reasons(
                &mut d,
                "NVML not available; only the CUDA driver's view is known",
            );
            devices.push(d);
        }
        return;
    }
    let runtime_problem = (runtime.status != RuntimeStatus::Loaded).then(|| {
        format!(
            "CUDA driver {}: {}",
            runtime.status.as_str(),
            runtime.error.clone().unwrap_or_default()
        )
    });
    for d in devices.iter_mut() {
        let reason = match (&runtime_problem, &d.pci_bus_id) {
            (Some(p), _) => p.clone(),
            (None, None) => {
                "cannot match the CUDA driver's devices: the PCI bus id was not read".to_string()
            }
            (None, Some(_)) => "the CUDA driver does not list this device".to_string(),
        };
        d.mark_unavailable("cuda", reason);
    }
    let all_ids_known = devices.iter().all(|d| d.pci_bus_id.is_some());
    for c in cuda {
        let key = c.pci_bus_id.as_deref().and_then(pci_key);
        let target = key.and_then(|k| {
            devices
                .iter_mut()
                .find(|d| d.pci_bus_id.as_deref().and_then(pci_key) == Some(k))
        });
        let bus = c
            .pci_bus_id
            .as_deref()
            .unwrap_or("bus id unknown")
            .to_string();
        let message = match target {
            Some(d) if d.cuda.is_some() => {
                // Two CUDA devices on one bus id (MIG or vGPU instances of one GPU): keep the
                // first, and say so rather than let the second replace it unseen.
                let kept = d.cuda.as_ref().map_or(0, |k| k.ordinal);
                format!(
                    "CUDA devices {kept} and {} are both on {bus} (MIG or vGPU instances of one GPU?); GPU {} shows CUDA device {kept}",
                    c.ordinal, d.index
                )
            }
            Some(d) => {
                d.unavailable.remove("cuda");
                d.cuda = Some(c);
                continue;
            }
            None if all_ids_known => format!(
                "CUDA device {} ({bus}) has no NVML device on the same PCI bus id",
                c.ordinal
            ),
            None => format!(
                "CUDA device {} ({bus}) could not be matched: NVML did not give every GPU's PCI bus id",
                c.ordinal
            ),
        };
        errors.push(ProbeError {
            runtime: RuntimeKind::Cuda,
            kind: ErrorKind::Error,
            call: "match by PCI bus id".to_string(),
            device: Some(c.ordinal),
            field: None,
            code: None,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_keys_match_across_spellings() {
        assert_eq!(pci_key("00000000:30:00.0"), Some((0, 0x30, 0)));
        assert_eq!(pci_key("0000:30:00.0"), pci_key("00000000:30:00.0"));
        assert_eq!(pci_key("garbage"), None);
    }

    #[test]
    fn cuda_attaches_by_bus_id_and_strays_are_reported() {
        let mut devices = vec![Device {
            index: 0,
            pci_bus_id: Some("00000000:30:00.0".into()),
            ..Device::default()
        }];
        let cuda = vec![
            CudaDevice {
                ordinal: 0,
                pci_bus_id: Some("00000000:30:00.0".into()),
                ..CudaDevice::default()
            },
            CudaDevice {
                ordinal: 1,
                pci_bus_id: Some("00000000:31:00.0".into()),
                ..CudaDevice::default()
            },
        ];
        let rt = Runtime::new(RuntimeKind::Cuda, RuntimeStatus::Loaded);
        let mut errors = Vec::new();
        attach_cuda(&mut devices, cuda, &rt, &mut errors);
        assert!(devices[0].cuda.is_some());
        assert!(!devices[0].unavailable.contains_key("cuda"));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("00000000:31:00.0"));
    }

    #[test]
    fn two_cuda_devices_on_one_bus_id_keep_the_first_and_say_so() {
        let mut devices = vec![Device {
            index: 0,
            pci_bus_id: Some("00000000:30:00.0".into()),
            ..Device::default()
        }];
        let on_30 = |ordinal| CudaDevice {
            ordinal,
            pci_bus_id: Some("0000:30:00.0".into()),
            ..CudaDevice::default()
        };
        let rt = Runtime::new(RuntimeKind::Cuda, RuntimeStatus::Loaded);
        let mut errors = Vec::new();
        attach_cuda(&mut devices, vec![on_30(0), on_30(1)], &rt, &mut errors);
        assert_eq!(devices[0].cuda.as_ref().map(|c| c.ordinal), Some(0));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0]
            .message
            .contains("CUDA devices 0 and 1 are both on"));
    }
}
