//! Per-accelerator part of the report: every field nvidia-smi shows, each optional.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Accelerator vendor.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Nvidia,
    Neuron,
}

/// One accelerator. For NVIDIA GPUs the fields follow nvidia-smi's `--query-gpu` set.
/// `None` means "could not be read"; the reason is in `unavailable` under the field's name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct Device {
    /// Index as the vendor library numbers it (NVML index = nvidia-smi's GPU number).
    pub index: u32,
    pub vendor: Option<Vendor>,
    /// Name exactly as the vendor library reports it, e.g. `NVIDIA L40S`.
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub serial: Option<String>,
    /// PCI bus id in nvidia-smi's spelling, e.g. `00000000:30:00.0`.
    pub pci_bus_id: Option<String>,
    pub persistence_mode: Option<bool>,
    /// Whether a display is attached and active (nvidia-smi's `Disp.A`).
    pub display_active: Option<bool>,
    pub temperature_c: Option<u32>,
    pub fan_speed_percent: Option<u32>,
    /// Performance state, `P0` (maximum) to `P15` (minimum).
    pub performance_state: Option<String>,
    pub power_draw_w: Option<f64>,
    /// Enforced power limit (the cap nvidia-smi's table shows; `enforced.power.limit`).
    pub power_limit_w: Option<f64>,
    /// Power management limit (`power.limit`); normally equal to the enforced limit.
    pub power_management_limit_w: Option<f64>,
    pub power_default_limit_w: Option<f64>,
    pub memory_total_mib: Option<u64>,
    pub memory_reserved_mib: Option<u64>,
    pub memory_used_mib: Option<u64>,
    pub memory_free_mib: Option<u64>,
    pub utilization_gpu_percent: Option<u32>,
    pub utilization_memory_percent: Option<u32>,
    pub ecc: Ecc,
    pub retired_pages: RetiredPages,
    pub remapped_rows: RemappedRows,
    /// `Default`, `Exclusive_Thread`, `Prohibited` or `Exclusive_Process`.
    pub compute_mode: Option<String>,
    pub mig: Mig,
    pub clocks: Clocks,
    pub pcie: Pcie,
    pub clock_event_reasons: ClockEventReasons,
    /// Compute processes on the device; `None` when the list could not be read.
    pub processes: Option<Vec<Process>>,
    /// NVLink links that exist on the device; `None` when NVLink is not supported.
    pub nvlink: Option<Vec<NvLink>>,
    /// CUDA compute capability, `major.minor`, e.g. `8.9`.
    pub compute_capability: Option<String>,
    /// What the CUDA driver API says about the same device, when it was reached.
    pub cuda: Option<CudaDevice>,
    /// Neuron-only fields (`vendor: neuron`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neuron: Option<super::NeuronDevice>,
    /// Field name → why its value is `null` (for example `not supported`, `GPU is lost`).
    pub unavailable: BTreeMap<String, String>,
}

impl Device {
    /// Whether this is an AWS Neuron device (everything else is a GPU).
    pub fn is_neuron(&self) -> bool {
        self.vendor == Some(Vendor::Neuron)
    }
}

/// ECC mode and error counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct Ecc {
    pub mode_current: Option<bool>,
    pub mode_pending: Option<bool>,
    pub volatile_corrected: Option<u64>,
    pub volatile_uncorrected: Option<u64>,
    pub aggregate_corrected: Option<u64>,
    pub aggregate_uncorrected: Option<u64>,
}

/// Pages retired by the driver (pre-Ampere memory repair).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct RetiredPages {
    /// Pages retired for multiple single-bit ECC errors.
    pub single_bit_ecc: Option<u64>,
    /// Pages retired for a double-bit ECC error.
    pub double_bit_ecc: Option<u64>,
    /// Whether retirements wait for the next driver reload.
    pub pending: Option<bool>,
}

/// Row remapping (Ampere and later memory repair).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct RemappedRows {
    pub correctable: Option<u32>,
    pub uncorrectable: Option<u32>,
    /// A remap waits for a GPU reset.
    pub pending: Option<bool>,
    /// A remap failed: the GPU needs service.
    pub failure: Option<bool>,
}

/// Multi-Instance GPU mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct Mig {
    pub mode_current: Option<bool>,
    pub mode_pending: Option<bool>,
}

/// Current and maximum clocks in MHz.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct Clocks {
    pub graphics_mhz: Option<u32>,
    pub sm_mhz: Option<u32>,
    pub memory_mhz: Option<u32>,
    pub max_graphics_mhz: Option<u32>,
    pub max_sm_mhz: Option<u32>,
    pub max_memory_mhz: Option<u32>,
}

/// PCIe link state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct Pcie {
    pub gen_current: Option<u32>,
    pub gen_max: Option<u32>,
    pub width_current: Option<u32>,
    pub width_max: Option<u32>,
}

/// Why clocks are held below their maximum (NVML's clocks event / throttle reasons).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct ClockEventReasons {
    /// Raw bit mask of the active reasons.
    pub active_mask: Option<u64>,
    /// The active reasons by name (`gpu_idle`, `sw_power_cap`, `hw_slowdown`, ...).
    pub active: Option<Vec<String>>,
    /// Raw bit mask of the reasons this device can report.
    pub supported_mask: Option<u64>,
}

/// One process using the device.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct Process {
    pub pid: u32,
    /// Executable name; `None` when it could not be read (another PID namespace).
    pub name: Option<String>,
    pub used_memory_mib: Option<u64>,
    /// `C` compute, `G` graphics, `C+G` both.
    pub kind: String,
    /// MIG GPU instance the process runs in (MIG mode only).
    pub gpu_instance_id: Option<u32>,
    /// MIG compute instance the process runs in (MIG mode only).
    pub compute_instance_id: Option<u32>,
}

/// One NVLink link.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct NvLink {
    pub link: u32,
    pub active: bool,
}

/// The same device as the CUDA driver API sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct CudaDevice {
    /// CUDA device ordinal (CUDA may order devices differently from NVML).
    pub ordinal: u32,
    pub name: Option<String>,
    pub compute_capability: Option<String>,
    pub multiprocessor_count: Option<u32>,
    pub total_memory_mib: Option<u64>,
    /// PCI bus id in nvidia-smi's spelling, used to match NVML devices.
    pub pci_bus_id: Option<String>,
}

/// Clock event reason bits, as NVML defines them, with accelprobe's names for them.
pub const CLOCK_EVENT_REASONS: &[(u64, &str)] = &[
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// Names of the reason bits set in `mask`; unknown bits are named `unknown_0x...`.
pub fn decode_clock_event_reasons(mask: u64) -> Vec<String> {
    let mut names = Vec::new();
    let mut known = 0u64;
    for &(bit, name) in CLOCK_EVENT_REASONS {
        known |= bit;
        if mask & bit != 0 {
            names.push(name.to_string());
        }
    }
    let rest = mask & !known;
    if rest != 0 {
        names.push(format!("unknown_{rest:#x}"));
    }
    names
}

impl Device {
    /// Record why `field` is null.
    pub fn mark_unavailable(&mut self, field: &str, reason: impl Into<String>) {
        self.unavailable.insert(field.to_string(), reason.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_and_unknown_reason_bits() {
        assert_eq!(decode_clock_event_reasons(0), Vec::<String>::new());
        assert_eq!(decode_clock_event_reasons(0x1), vec!["gpu_idle"]);
        assert_eq!(
            decode_clock_event_reasons(0x4 | 0x40 | 0x1000),
            vec!["sw_power_cap", "hw_thermal_slowdown", "unknown_0x1000"]
        );
    }
}
