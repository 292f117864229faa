//! What only AWS Neuron devices and the Neuron runtime report: the parts of `neuron-ls` and of
//! the driver's sysfs tree that have no NVIDIA counterpart. Common fields (name, serial, PCI
//! address, memory) stay in [`super::device::Device`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Neuron device's own fields (`devices[].neuron`). `None` means "could not be read"; the
/// reason is in the device's `unavailable` under `neuron.<field>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct NeuronDevice {
    /// Device architecture as the driver names it (`NDv2`).
    pub arch_type: Option<String>,
    /// Instance type as the driver reports it (`Trn1`, `Inf2`).
    pub instance_type: Option<String>,
    /// NeuronCores on this device.
    pub core_count: Option<u32>,
    /// Indices of the Neuron devices this one is linked to.
    pub connected_devices: Option<Vec<u32>>,
    /// Uncorrected device-memory ECC errors since the driver loaded.
    pub mem_ecc_uncorrected: Option<u64>,
    /// Uncorrected but repairable device-memory ECC errors.
    pub mem_ecc_repairable_uncorrected: Option<u64>,
    /// Uncorrected on-chip SRAM ECC errors.
    pub sram_ecc_uncorrected: Option<u64>,
    /// One entry per NeuronCore, device-local index order.
    pub cores: Vec<NeuronCore>,
    /// Which sysfs layout the values came from: `legacy` (before driver 2.31) or `2.31`.
    pub sysfs_layout: Option<String>,
}

impl NeuronDevice {
    /// The hardware error counters, by their sysfs (and field) names.
    pub fn hardware_errors(&self) -> [(&'static str, Option<u64>); 3] {
        [
            ("mem_ecc_uncorrected", self.mem_ecc_uncorrected),
            (
                "mem_ecc_repairable_uncorrected",
                self.mem_ecc_repairable_uncorrected,
            ),
            ("sram_ecc_uncorrected", self.sram_ecc_uncorrected),
        ]
    }
}

/// One NeuronCore.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct NeuronCore {
    /// Device-local index.
    pub index: u32,
    /// NeuronCore generation (`NCv2`).
    pub arch_type: Option<String>,
    /// Device memory in use by this core, bytes (sum over the driver's categories).
    pub memory_used_bytes: Option<u64>,
}

/// What the Neuron runtime (`libnrt`) says (`runtimes[].neuron`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct NeuronRuntime {
    /// All NeuronCores of the instance (`nrt_get_total_vnc_count`).
    pub cores_total: Option<u32>,
    /// NeuronCores this process may use (`nrt_get_visible_vnc_count`, honours
    /// `NEURON_RT_VISIBLE_CORES`).
    pub cores_visible: Option<u32>,
    /// Instance family as the runtime names it (`TRN1`, `INF2`).
    pub instance_family: Option<String>,
    /// Instance size as the runtime reports it (`32xlarge`).
    pub instance_size: Option<String>,
}
