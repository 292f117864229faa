//! The built-in accelerator and instance catalog.
//!
//! It answers the questions the provisioning side asks before it can judge a node: which
//! accelerator and how many devices an instance type carries (`g6e.12xlarge` → 4 × L40S), which
//! model an NVML name or an EKS/Karpenter label value means, how much memory nvidia-smi should
//! show, and what a healthy device must reach in accelprobe's benchmarks.
//!
//! The facts live in `data/catalog.json` (compiled in with `include_str!`, parsed once), not in
//! code, so a reviewer can check them against the project's accelerator reference line by line.
//! Values the reference could not verify are absent, never guessed: a check that needs one is
//! skipped with a reason instead of passing or failing on an invented number.
//!
//! Floors (see [`Policy`]) are stored as absolute values next to the peaks they derive from; a
//! unit test proves every floor follows the documented policy.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::report::{Dtype, Kernel};

/// The catalog data compiled into the binary.
const BUILTIN_JSON: &str = include_str!("../../data/catalog.json");

/// Why a catalog document was refused. The built-in data never produces one (a unit test
/// parses it); the type exists so that parsing is total: no input panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Not JSON, or JSON of the wrong shape (unknown field, wrong type, duplicate size).
    #[error("catalog JSON, line {line}, column {column}: {message}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed, but entries contradict each other (every problem found, joined by `; `).
    #[error("catalog is inconsistent: {0}")]
    Invalid(String),
}

/// Who makes the accelerator; decides how accelprobe reaches it and which Kubernetes resource
/// and label key carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Nvidia,
    /// AWS Inferentia and Trainium (EKS/Karpenter label manufacturer `aws`).
    Neuron,
    /// AMD GPUs (g4ad): listed so that requirements naming them are understood, not probed.
    Amd,
}

impl Vendor {
    /// The lower-case name used in the catalog and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvidia",
            Vendor::Neuron => "neuron",
            Vendor::Amd => "amd",
        }
    }

    /// The extended resource a pod requests whole devices with (`nvidia.com/gpu`,
    /// `aws.amazon.com/neuron`, `amd.com/gpu`).
    pub fn resource_name(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvidia.com/gpu",
            Vendor::Neuron => "aws.amazon.com/neuron",
            Vendor::Amd => "amd.com/gpu",
        }
    }

    /// The label suffix (under `eks.amazonaws.com/` or `karpenter.k8s.aws/`) whose value is a
    /// model's [`Model::label_name`]: GPUs use `instance-gpu-name`, Neuron chips
    /// `instance-accelerator-name`.
    pub fn label_key_suffix(self) -> &'static str {
        match self {
            Vendor::Nvidia | Vendor::Amd => "instance-gpu-name",
            Vendor::Neuron => "instance-accelerator-name",
        }
    }

    /// The report's vendor, for the vendors accelprobe can probe (`None` for AMD).
    pub fn report_vendor(self) -> Option<crate::report::Vendor> {
        match self {
            Vendor::Nvidia => Some(crate::report::Vendor::Nvidia),
            Vendor::Neuron => Some(crate::report::Vendor::Neuron),
            Vendor::Amd => None,
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CPU architecture of the instance's host, as `kubernetes.io/arch` spells it: a NodePool
/// restricted to `amd64` can never get an `arm64` family (g5g, p6e-gb200).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuArch {
    Amd64,
    Arm64,
}

impl CpuArch {
    /// The `kubernetes.io/arch` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CpuArch::Amd64 => "amd64",
            CpuArch::Arm64 => "arm64",
        }
    }
}

impl fmt::Display for CpuArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CUDA compute capability (`8.9`), written as a string in the data so it reads as NVIDIA
/// writes it; typed here so checks compare numbers, not text (`10.0` > `9.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ComputeCapability {
    pub major: u32,
    pub minor: u32,
}

impl ComputeCapability {
    /// Parse `MAJOR.MINOR` (`"8.9"`, `"10.0"`); anything else is `None`.
    pub fn parse(text: &str) -> Option<ComputeCapability> {
        let (major, minor) = text.trim().split_once('.')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return None;
        }
        Some(ComputeCapability {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for ComputeCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl TryFrom<String> for ComputeCapability {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ComputeCapability::parse(&s)
            .ok_or_else(|| format!("compute capability '{s}' is not MAJOR.MINOR"))
    }
}

impl From<ComputeCapability> for String {
    fn from(c: ComputeCapability) -> String {
        c.to_string()
    }
}

/// A number format that a datasheet quotes a peak for. A superset of the benchmark's
/// [`Dtype`]: fp8 and int8 peaks are recorded for completeness even though no accelprobe
/// kernel measures them yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberFormat {
    F32,
    Tf32,
    F16,
    Bf16,
    Fp8,
    Int8,
}

impl NumberFormat {
    /// Every format, in the order tables show them.
    pub const ALL: [NumberFormat; 6] = [
        NumberFormat::F32,
        NumberFormat::Tf32,
        NumberFormat::F16,
        NumberFormat::Bf16,
        NumberFormat::Fp8,
        NumberFormat::Int8,
    ];

    /// The lower-case name used in the data.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberFormat::F32 => "f32",
            NumberFormat::Tf32 => "tf32",
            NumberFormat::F16 => "f16",
            NumberFormat::Bf16 => "bf16",
            NumberFormat::Fp8 => "fp8",
            NumberFormat::Int8 => "int8",
        }
    }
}

impl From<Dtype> for NumberFormat {
    fn from(d: Dtype) -> NumberFormat {
        match d {
            Dtype::F32 => NumberFormat::F32,
            Dtype::Tf32 => NumberFormat::Tf32,
            Dtype::F16 => NumberFormat::F16,
            Dtype::Bf16 => NumberFormat::Bf16,
        }
    }
}

/// Dense (non-sparse) datasheet peaks of one accelerator, TFLOPS (`int8_tops`: TOPS).
///
/// `None` means unknown *or* not supported; [`Peaks::not_supported`] tells the two apart, so a
/// check can say "T4 has no bf16" rather than "bf16 peak unknown".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peaks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f32: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tf32: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f16: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp8: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_tops: Option<f64>,
    /// Formats the hardware does not support (the reference's "–"); their peaks are absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_supported: Vec<NumberFormat>,
}

impl Peaks {
    /// The peak for a number format.
    pub fn get(&self, format: NumberFormat) -> Option<f64> {
        match format {
            NumberFormat::F32 => self.f32,
            NumberFormat::Tf32 => self.tf32,
            NumberFormat::F16 => self.f16,
            NumberFormat::Bf16 => self.bf16,
            NumberFormat::Fp8 => self.fp8,
            NumberFormat::Int8 => self.int8_tops,
        }
    }

    /// `Some(true)` when a peak is known, `Some(false)` when the hardware lacks the format,
    /// `None` when the reference does not know.
    pub fn supports(&self, format: NumberFormat) -> Option<bool> {
        if self.get(format).is_some() {
            Some(true)
        } else if self.not_supported.contains(&format) {
            Some(false)
        } else {
            None
        }
    }
}

/// GEMM floors per benchmark dtype, TFLOPS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GemmFloors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f32: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tf32: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f16: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16: Option<f64>,
}

impl GemmFloors {
    /// The floor for a benchmark dtype.
    pub fn get(&self, dtype: Dtype) -> Option<f64> {
        match dtype {
            Dtype::F32 => self.f32,
            Dtype::Tf32 => self.tf32,
            Dtype::F16 => self.f16,
            Dtype::Bf16 => self.bf16,
        }
    }
}

/// What a healthy device of the model must reach in accelprobe's benchmarks, in the
/// benchmark's units. Absent where the peak it derives from is unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floors {
    /// Best of accelprobe's PTX GEMM and cuBLAS, TFLOPS.
    #[serde(default)]
    pub gemm_tflops: GemmFloors,
    /// Device copy, GB/s counting bytes read and written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_gbps: Option<f64>,
    /// Pinned host-to-device copy, GB/s one way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2d_gbps: Option<f64>,
    /// Pinned device-to-host copy, GB/s one way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d2h_gbps: Option<f64>,
}

impl Floors {
    /// The floor for a benchmark, in its unit (TFLOP/s or GB/s); `None` for kernels without a
    /// floor (inference) or when the peak is unknown. A GEMM without a dtype has no floor.
    pub fn for_kernel(&self, kernel: Kernel, dtype: Option<Dtype>) -> Option<f64> {
        match kernel {
            Kernel::Gemm => dtype.and_then(|d| self.gemm_tflops.get(d)),
            Kernel::Copy => self.copy_gbps,
            Kernel::H2d => self.h2d_gbps,
            Kernel::D2h => self.d2h_gbps,
            Kernel::Inference | Kernel::Neff => None,
        }
    }
}

/// Usable one-way bandwidth of a PCIe link, GB/s: the line rate after encoding (8b/10b up to
/// gen 2, 128b/130b for gen 3–5), x16 = 4, 8, 15.75, 31.5, 63 GB/s, scaled by the lane count.
/// This is physics, not policy, so it lives in code; `None` for an unknown generation or a
/// width of zero or above 32.
pub fn pcie_one_way_gbps(gen: u32, width: u32) -> Option<f64> {
    let x16 = match gen {
        1 => 4.0,
        2 => 8.0,
        3 => 15.75,
        4 => 31.5,
        5 => 63.0,
        _ => return None,
    };
    if width == 0 || width > 32 {
        return None;
    }
    Some(x16 * f64::from(width) / 16.0)
}

/// Round to 0.01, the precision the data stores floors at.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The floor and tolerance policy, kept in the data beside the numbers it produced.
///
/// Floors are fractions of the datasheet figure: GEMM 35% of the dense peak per dtype, copy
/// 60% of the memory bandwidth, h2d/d2h 60% of the one-way PCIe bandwidth of the model's
/// link. The GEMM fraction follows DCGM's rule (floor ≈ 0.71 × a healthy measurement) applied
/// to the weakest healthy measurements in the project's anchors (L4 bf16 ≈ 49%, L4/L40S f32 ≈
/// 51% of the datasheet); `description` in the data gives the full reasoning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Memory tolerance where only EC2's label figure is known or the tool's figure varies.
    pub memory_tolerance_pct_default: f64,
    /// Memory tolerance around a confirmed nvidia-smi total.
    pub memory_tolerance_pct_exact: f64,
    pub gemm_fraction_of_peak: f64,
    pub copy_fraction_of_bandwidth: f64,
    pub transfer_fraction_of_pcie: f64,
    pub description: String,
    #[serde(default)]
    pub source: Vec<String>,
}

impl Policy {
    /// GEMM floor for a dense peak, TFLOPS.
    pub fn gemm_floor(&self, peak_tflops: f64) -> f64 {
        round2(self.gemm_fraction_of_peak * peak_tflops)
    }

    /// Copy floor for a memory bandwidth, GB/s.
    pub fn copy_floor(&self, bandwidth_gbps: f64) -> f64 {
        round2(self.copy_fraction_of_bandwidth * bandwidth_gbps)
    }

    /// h2d/d2h floor for a PCIe link. The catalog stores it for the model's nominal link; the
    /// verify side can call this with the link a device reports as its maximum instead, so a
    /// board wired narrower than x16 is judged by its own link (and `health.pcie_link` says
    /// whether that link is right).
    pub fn transfer_floor(&self, gen: u32, width: u32) -> Option<f64> {
        pcie_one_way_gbps(gen, width).map(|bw| round2(self.transfer_fraction_of_pcie * bw))
    }
}

/// One instance size and its accelerator device count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size {
    /// The part after the dot in the instance type (`12xlarge`, `metal`).
    pub name: String,
    /// GPUs, or Neuron devices for inf/trn.
    pub devices: u32,
}

/// A family's sizes in the order the data lists them (smallest first), written as a JSON
/// object `{"xlarge": 1, ...}`; duplicate sizes are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sizes(pub Vec<Size>);

impl Sizes {
    /// The size named `size` (ASCII case-insensitive).
    pub fn get(&self, size: &str) -> Option<&Size> {
        self.0.iter().find(|s| s.name.eq_ignore_ascii_case(size))
    }

    /// Iterate in data order.
    pub fn iter(&self) -> std::slice::Iter<'_, Size> {
        self.0.iter()
    }

    /// How many sizes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the family lists no size (refused by validation).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Sizes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for s in &self.0 {
            map.serialize_entry(&s.name, &s.devices)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Sizes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sizes, D::Error> {
        struct SizesVisitor;
        impl<'de> Visitor<'de> for SizesVisitor {
            type Value = Sizes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of instance size to device count")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sizes, A::Error> {
                let mut out: Vec<Size> = Vec::new();
                while let Some((name, devices)) = map.next_entry::<String, u32>()? {
                    if out.iter().any(|s| s.name == name) {
                        return Err(serde::de::Error::custom(format!("duplicate size '{name}'")));
                    }
                    out.push(Size { name, devices });
                }
                Ok(Sizes(out))
            }
        }
        deserializer.deserialize_map(SizesVisitor)
    }
}

/// An EC2 instance family (`g6e`): one accelerator model, several sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// `instance-family` label value and the part before the dot (`p6-b200`).
    pub name: String,
    pub vendor: Vendor,
    /// Key of the family's [`Model`].
    pub model: String,
    pub cpu_arch: CpuArch,
    /// Whether EKS Auto Mode can provision it; absent when the reference does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_mode: Option<bool>,
    /// Whether accelprobe can probe and benchmark it (false for AMD).
    #[serde(default = "yes")]
    pub supported: bool,
    /// Why not, when `supported` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported_reason: Option<String>,
    pub sizes: Sizes,
    /// Ids in [`Catalog::sources`].
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

fn yes() -> bool {
    true
}

impl Family {
    /// Devices on `size` (`12xlarge`), if the family has that size.
    pub fn devices(&self, size: &str) -> Option<u32> {
        self.sizes.get(size).map(|s| s.devices)
    }
}

/// One accelerator model: how to recognise it and what it must deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Unique catalog key (`l40s`, `a100-80gb`); also what `--expect gpu=` names.
    pub key: String,
    /// Human name (`L40S 48GB`).
    pub name: String,
    pub vendor: Vendor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Names exactly as NVML (and nvidia-smi `--query-gpu=name`) report them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nvml_names: Vec<String>,
    /// `instance-gpu-name` (GPUs) or `instance-accelerator-name` (Neuron) value; several models
    /// may share one (`a100`, `v100`): tell them apart by `label_memory_mib`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_name: Option<String>,
    /// `instance-gpu-manufacturer` / `instance-accelerator-manufacturer` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_manufacturer: Option<String>,
    /// `instance-gpu-memory`: EC2's per-GPU MiB, which is not what nvidia-smi shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_memory_mib: Option<u64>,
    /// Memory as the vendor tool reports it (nvidia-smi `memory.total`), MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// How far an observed total may be from the expected one, percent.
    pub memory_tolerance_pct: f64,
    /// NeuronCores per Neuron device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neuron_cores: Option<u32>,
    /// NeuronCore generation (`v1`, `v2`, `v3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neuron_core_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<ComputeCapability>,
    #[serde(default)]
    pub peaks_tflops: Peaks,
    /// Datasheet device memory bandwidth, GB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bandwidth_gbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_gen: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_width: Option<u32>,
    /// Board power limit (TDP, or the cap nvidia-smi shows on EC2), W.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_w: Option<u32>,
    #[serde(default)]
    pub floors: Floors,
    /// Ids in [`Catalog::sources`].
    #[serde(default)]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl Model {
    /// The total a device of this model should report: the tool's figure when known, else
    /// EC2's label figure.
    pub fn expected_memory_mib(&self) -> Option<u64> {
        self.memory_mib.or(self.label_memory_mib)
    }

    /// Inclusive range of accepted totals, MiB (rounded inwards).
    pub fn memory_range_mib(&self) -> Option<(u64, u64)> {
        let expected = self.expected_memory_mib()? as f64;
        let slack = expected * self.memory_tolerance_pct.max(0.0) / 100.0;
        Some((
            (expected - slack).max(0.0).ceil() as u64,
            (expected + slack).floor() as u64,
        ))
    }

    /// Whether an observed total is within tolerance; `None` when the model's memory is
    /// unknown (the memory check then cannot run).
    pub fn memory_matches(&self, observed_mib: u64) -> Option<bool> {
        let (lo, hi) = self.memory_range_mib()?;
        Some((lo..=hi).contains(&observed_mib))
    }

    /// The datasheet figure a benchmark result is a fraction of, in the benchmark's unit:
    /// TFLOP/s for GEMM, memory bandwidth for copy (which counts bytes read and written), the
    /// one-way PCIe bandwidth of the model's link for h2d/d2h. `None` when unknown.
    pub fn peak_for(&self, kernel: Kernel, dtype: Option<Dtype>) -> Option<f64> {
        match kernel {
            Kernel::Gemm => dtype.and_then(|d| self.peaks_tflops.get(d.into())),
            Kernel::Copy => self.memory_bandwidth_gbps,
            Kernel::H2d | Kernel::D2h => pcie_one_way_gbps(self.pcie_gen?, self.pcie_width?),
            Kernel::Inference | Kernel::Neff => None,
        }
    }

    /// The floor for a benchmark (see [`Floors::for_kernel`]).
    pub fn floor_for(&self, kernel: Kernel, dtype: Option<Dtype>) -> Option<f64> {
        self.floors.for_kernel(kernel, dtype)
    }

    /// True when `name` is one of this model's NVML names (exact, surrounding blanks ignored).
    pub fn has_nvml_name(&self, name: &str) -> bool {
        let name = name.trim();
        self.nvml_names.iter().any(|n| n == name)
    }
}

/// One entry of the catalog's source list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// `S1`…`S25` as in the project's accelerator reference, or a named anchor (`DCGM`).
    pub id: String,
    pub text: String,
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub catalog_version: u32,
    /// What each field means, for a reader of the JSON.
    #[serde(default)]
    pub conventions: BTreeMap<String, String>,
    pub policy: Policy,
    pub sources: Vec<Reference>,
    pub families: Vec<Family>,
    pub models: Vec<Model>,
}

/// An instance type resolved through the catalog (`g6e.12xlarge` → 4 × L40S).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Instance<'a> {
    pub family: &'a Family,
    pub model: &'a Model,
    /// The size as the catalog spells it.
    pub size: &'a str,
    /// Accelerator devices (GPUs or Neuron devices).
    pub devices: u32,
}

impl Instance<'_> {
    /// `family.size`, as `node.kubernetes.io/instance-type` spells it.
    pub fn instance_type(&self) -> String {
        format!("{}.{}", self.family.name, self.size)
    }

    /// NeuronCores on the instance (devices × cores per device); `None` for GPUs. On trn2 this
    /// counts physical cores (Karpenter's 128); with LNC=2 the runtime sees half.
    pub fn neuron_cores(&self) -> Option<u32> {
        self.model.neuron_cores?.checked_mul(self.devices)
    }
}

/// How an NVML name was matched to a model ([`Catalog::identify_gpu`]).
#[derive(Debug, Clone, PartialEq)]
pub enum GpuMatch<'a> {
    /// The name is one of the model's NVML names.
    Exact(&'a Model),
    /// Found by [`normalize_gpu_name`]; when several models share the normalized name, the
    /// reported memory picked this one.
    Normalized(&'a Model),
    /// Several models share the normalized name and the memory did not single one out.
    Ambiguous(Vec<&'a Model>),
    /// Not in the catalog.
    Unknown,
}

impl<'a> GpuMatch<'a> {
    /// The model, when one was identified.
    pub fn model(&self) -> Option<&'a Model> {
        match self {
            GpuMatch::Exact(m) | GpuMatch::Normalized(m) => Some(m),
            GpuMatch::Ambiguous(_) | GpuMatch::Unknown => None,
        }
    }

    /// Every model the name could be.
    pub fn candidates(&self) -> Vec<&'a Model> {
        match self {
            GpuMatch::Exact(m) | GpuMatch::Normalized(m) => vec![*m],
            GpuMatch::Ambiguous(v) => v.clone(),
            GpuMatch::Unknown => Vec::new(),
        }
    }
}

/// The reference's name mapping rule: lower-case the NVML name, strip `nvidia ` / `tesla `,
/// and keep the first word (up to a space or `-`): `NVIDIA H100 80GB HBM3` → `h100`,
/// `NVIDIA A100-SXM4-80GB` → `a100`, `Tesla V100-SXM2-32GB` → `v100`, `Tesla T4` → `t4`.
///
/// It is the fallback for names the catalog does not list verbatim (another board of a known
/// chip, nvidia-smi's truncated `NVIDIA A100-SXM...`); for the catalog's GPUs the result is
/// the label name. Total: any input gives a (possibly empty) string.
pub fn normalize_gpu_name(nvml_name: &str) -> String {
    let mut s = nvml_name.trim().to_lowercase();
    loop {
        let stripped = ["nvidia ", "tesla "]
            .iter()
            .find_map(|p| s.strip_prefix(p).map(|rest| rest.trim_start().to_string()));
        match stripped {
            Some(rest) => s = rest,
            None => break,
        }
    }
    s.split([' ', '-']).next().unwrap_or_default().to_string()
}

static BUILTIN: OnceLock<Result<Catalog, CatalogError>> = OnceLock::new();
static EMPTY: OnceLock<Catalog> = OnceLock::new();

impl Catalog {
    /// The catalog compiled into the binary, parsed on first use.
    ///
    /// The embedded data is proven valid by a unit test; should it ever fail to parse, this
    /// returns an empty catalog (every lookup `None`, so checks that need it fail as
    /// "unknown", never pass) and [`Catalog::builtin_error`] says why, instead of panicking.
    pub fn builtin() -> &'static Catalog {
        match BUILTIN.get_or_init(|| Catalog::parse(BUILTIN_JSON)) {
            Ok(c) => c,
            Err(_) => EMPTY.get_or_init(Catalog::empty),
        }
    }

    /// Why the built-in catalog could not be loaded (never, unless the data file is broken).
    pub fn builtin_error() -> Option<&'static CatalogError> {
        BUILTIN
            .get_or_init(|| Catalog::parse(BUILTIN_JSON))
            .as_ref()
            .err()
    }

    /// A catalog with nothing in it.
    pub fn empty() -> Catalog {
        Catalog {
            catalog_version: 1,
            conventions: BTreeMap::new(),
            policy: Policy {
                memory_tolerance_pct_default: 7.0,
                memory_tolerance_pct_exact: 2.0,
                gemm_fraction_of_peak: 0.35,
                copy_fraction_of_bandwidth: 0.6,
                transfer_fraction_of_pcie: 0.6,
                description: String::new(),
                source: Vec::new(),
            },
            sources: Vec::new(),
            families: Vec::new(),
            models: Vec::new(),
        }
    }

    /// Parse and validate a catalog document.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let catalog: Catalog = serde_json::from_str(text).map_err(|e| CatalogError::Parse {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// Check that entries agree with each other: unique keys and names, references that
    /// resolve, positive counts and figures, vendors that match. Returns every problem found.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let mut problems: Vec<String> = Vec::new();
        let mut p = |s: String| problems.push(s);

        let mut ids: Vec<&str> = Vec::new();
        for r in &self.sources {
            if r.id.trim().is_empty() || r.text.trim().is_empty() {
                p(format!("source '{}' has an empty id or text", r.id));
            }
            if ids.contains(&r.id.as_str()) {
                p(format!("duplicate source id '{}'", r.id));
            }
            ids.push(&r.id);
        }
        let check_sources = |what: &str, list: &[String], p: &mut dyn FnMut(String)| {
            for id in list {
                if !ids.contains(&id.as_str()) {
                    p(format!("{what} cites unknown source '{id}'"));
                }
            }
        };

        let pol = &self.policy;
        for (name, v) in [
            ("gemm_fraction_of_peak", pol.gemm_fraction_of_peak),
            ("copy_fraction_of_bandwidth", pol.copy_fraction_of_bandwidth),
            ("transfer_fraction_of_pcie", pol.transfer_fraction_of_pcie),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                p(format!("policy {name} = {v} is not in (0, 1]"));
            }
        }
        for (name, v) in [
            (
                "memory_tolerance_pct_default",
                pol.memory_tolerance_pct_default,
            ),
            ("memory_tolerance_pct_exact", pol.memory_tolerance_pct_exact),
        ] {
            if !valid_tolerance(v) {
                p(format!("policy {name} = {v} is not in (0, 50]"));
            }
        }
        check_sources("policy", &pol.source, &mut p);

        let mut keys: Vec<&str> = Vec::new();
        let mut nvml: Vec<&str> = Vec::new();
        let mut labels: Vec<(String, Option<u64>, &str)> = Vec::new();
        for m in &self.models {
            let who = format!("model '{}'", m.key);
            if !is_key(&m.key) {
                p(format!(
                    "{who}: key must be lower-case letters, digits and '-'"
                ));
            }
            if keys.contains(&m.key.as_str()) {
                p(format!("duplicate model key '{}'", m.key));
            }
            keys.push(&m.key);
            if m.name.trim().is_empty() {
                p(format!("{who}: empty name"));
            }
            match (m.vendor, m.nvml_names.is_empty()) {
                (Vendor::Nvidia, true) => p(format!("{who}: an NVIDIA model needs an NVML name")),
                (Vendor::Neuron | Vendor::Amd, false) => {
                    p(format!("{who}: only NVIDIA models have NVML names"))
                }
                _ => {}
            }
            for n in &m.nvml_names {
                if n.trim().is_empty() || n.trim() != n {
                    p(format!(
                        "{who}: NVML name '{n}' is empty or has surrounding blanks"
                    ));
                }
                if nvml.contains(&n.as_str()) {
                    p(format!("NVML name '{n}' belongs to two models"));
                }
                nvml.push(n);
            }
            if let Some(label) = &m.label_name {
                if !is_key(label) {
                    p(format!(
                        "{who}: label name '{label}' must be lower-case kebab case"
                    ));
                }
                let lower = label.to_ascii_lowercase();
                for (other, mem, other_key) in &labels {
                    if *other == lower && (mem.is_none() || *mem == m.label_memory_mib) {
                        p(format!(
                            "{who}: label '{label}' is shared with model '{other_key}' and \
                             label memory does not tell them apart"
                        ));
                    }
                }
                labels.push((lower, m.label_memory_mib, &m.key));
            }
            if m.label_memory_mib == Some(0) || m.memory_mib == Some(0) {
                p(format!("{who}: memory of 0 MiB"));
            }
            if !valid_tolerance(m.memory_tolerance_pct) {
                p(format!(
                    "{who}: memory_tolerance_pct {} is not in (0, 50]",
                    m.memory_tolerance_pct
                ));
            }
            match (m.vendor, m.neuron_cores) {
                (Vendor::Neuron, None | Some(0)) => {
                    p(format!("{who}: a Neuron model needs neuron_cores > 0"))
                }
                (Vendor::Nvidia | Vendor::Amd, Some(_)) => {
                    p(format!("{who}: only Neuron models have neuron_cores"))
                }
                _ => {}
            }
            if m.compute_capability.is_some() && m.vendor != Vendor::Nvidia {
                p(format!(
                    "{who}: only NVIDIA models have a compute capability"
                ));
            }
            for f in NumberFormat::ALL {
                if let Some(v) = m.peaks_tflops.get(f) {
                    if !positive(v) {
                        p(format!("{who}: {} peak {v} is not positive", f.as_str()));
                    }
                    if m.peaks_tflops.not_supported.contains(&f) {
                        p(format!(
                            "{who}: {} has a peak but is listed as not supported",
                            f.as_str()
                        ));
                    }
                }
            }
            let figures = [
                ("memory_bandwidth_gbps", m.memory_bandwidth_gbps),
                ("floors.gemm_tflops.f32", m.floors.gemm_tflops.f32),
                ("floors.gemm_tflops.tf32", m.floors.gemm_tflops.tf32),
                ("floors.gemm_tflops.f16", m.floors.gemm_tflops.f16),
                ("floors.gemm_tflops.bf16", m.floors.gemm_tflops.bf16),
                ("floors.copy_gbps", m.floors.copy_gbps),
                ("floors.h2d_gbps", m.floors.h2d_gbps),
                ("floors.d2h_gbps", m.floors.d2h_gbps),
            ];
            for (name, v) in figures {
                if let Some(v) = v {
                    if !positive(v) {
                        p(format!("{who}: {name} {v} is not positive"));
                    }
                }
            }
            for d in Dtype::ALL {
                if m.floors.gemm_tflops.get(d).is_some() && m.peaks_tflops.get(d.into()).is_none() {
                    p(format!("{who}: gemm {} floor without a peak", d.as_str()));
                }
            }
            if m.floors.copy_gbps.is_some() && m.memory_bandwidth_gbps.is_none() {
                p(format!("{who}: copy floor without a memory bandwidth"));
            }
            let link = match (m.pcie_gen, m.pcie_width) {
                (Some(g), Some(w)) => pcie_one_way_gbps(g, w),
                _ => None,
            };
            if (m.pcie_gen.is_some() || m.pcie_width.is_some()) && link.is_none() {
                p(format!(
                    "{who}: PCIe gen/width must both be given and valid"
                ));
            }
            if (m.floors.h2d_gbps.is_some() || m.floors.d2h_gbps.is_some()) && link.is_none() {
                p(format!("{who}: transfer floor without a PCIe link"));
            }
            check_sources(&who, &m.source, &mut p);
        }

        let mut names: Vec<&str> = Vec::new();
        for f in &self.families {
            let who = format!("family '{}'", f.name);
            if !is_key(&f.name) {
                p(format!(
                    "{who}: name must be lower-case letters, digits and '-'"
                ));
            }
            if names.contains(&f.name.as_str()) {
                p(format!("duplicate family '{}'", f.name));
            }
            names.push(&f.name);
            match self.models.iter().find(|m| m.key == f.model) {
                None => p(format!("{who}: unknown model '{}'", f.model)),
                Some(m) if m.vendor != f.vendor => p(format!(
                    "{who}: vendor {} but model '{}' is {}",
                    f.vendor, m.key, m.vendor
                )),
                Some(_) => {}
            }
            if f.sizes.is_empty() {
                p(format!("{who}: no sizes"));
            }
            for s in f.sizes.iter() {
                if !is_key(&s.name) {
                    p(format!("{who}: size '{}' is not a valid size name", s.name));
                }
                if s.devices == 0 {
                    p(format!("{who}: size '{}' has 0 devices", s.name));
                }
            }
            match (f.supported, &f.unsupported_reason) {
                (false, None) => p(format!("{who}: unsupported without a reason")),
                (true, Some(_)) => p(format!("{who}: supported but has an unsupported_reason")),
                _ => {}
            }
            check_sources(&who, &f.source, &mut p);
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Invalid(problems.join("; ")))
        }
    }

    /// The family named `name` (`g6e`; ASCII case-insensitive, blanks ignored).
    pub fn family(&self, name: &str) -> Option<&Family> {
        let name = name.trim();
        self.families
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The model with catalog key `key` (`l40s`, `a100-80gb`; ASCII case-insensitive).
    pub fn model(&self, key: &str) -> Option<&Model> {
        let key = key.trim();
        self.models.iter().find(|m| m.key.eq_ignore_ascii_case(key))
    }

    /// Resolve an instance type (`g6e.12xlarge`, `p6-b200.48xlarge`) to its family, model and
    /// device count. The family is everything before the first `.`, the size everything after;
    /// an unknown family or size is `None`. ASCII case-insensitive, surrounding blanks ignored.
    pub fn instance(&self, instance_type: &str) -> Option<Instance<'_>> {
        let (family, size) = instance_type.trim().split_once('.')?;
        let family = self.family(family)?;
        let size = family.sizes.get(size)?;
        let model = self.model(&family.model)?;
        Some(Instance {
            family,
            model,
            size: &size.name,
            devices: size.devices,
        })
    }

    /// The model whose NVML names include `name` exactly (surrounding blanks ignored).
    pub fn model_by_nvml_name(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.has_nvml_name(name))
    }

    /// Models whose label name (`instance-gpu-name` / `instance-accelerator-name` value) is
    /// `label`, ASCII case-insensitive. `a100` and `v100` give two models each; use
    /// [`Catalog::model_by_label_memory`] or the reported memory to pick one.
    pub fn models_by_label(&self, label: &str) -> Vec<&Model> {
        let label = label.trim();
        if label.is_empty() {
            return Vec::new();
        }
        self.models
            .iter()
            .filter(|m| {
                m.label_name
                    .as_deref()
                    .is_some_and(|l| l.eq_ignore_ascii_case(label))
            })
            .collect()
    }

    /// The model a label name and `instance-gpu-memory` value select together
    /// (`a100` + `81920` → `a100-80gb`).
    pub fn model_by_label_memory(&self, label: &str, label_memory_mib: u64) -> Option<&Model> {
        self.models_by_label(label)
            .into_iter()
            .find(|m| m.label_memory_mib == Some(label_memory_mib))
    }

    /// Models whose NVML names normalize ([`normalize_gpu_name`]) to the same word as `name`.
    pub fn models_by_normalized_name(&self, name: &str) -> Vec<&Model> {
        let word = normalize_gpu_name(name);
        if word.is_empty() {
            return Vec::new();
        }
        self.models
            .iter()
            .filter(|m| m.nvml_names.iter().any(|n| normalize_gpu_name(n) == word))
            .collect()
    }

    /// Identify a GPU from what NVML reports: the exact name first; otherwise the normalized
    /// name, and when that fits several models (`a100`), the one whose memory range holds
    /// `memory_mib`. A single normalized candidate is returned whatever the memory says: the
    /// memory check judges that separately.
    pub fn identify_gpu(&self, nvml_name: &str, memory_mib: Option<u64>) -> GpuMatch<'_> {
        if let Some(m) = self.model_by_nvml_name(nvml_name) {
            return GpuMatch::Exact(m);
        }
        let candidates = self.models_by_normalized_name(nvml_name);
        match candidates.as_slice() {
            [] => GpuMatch::Unknown,
            [one] => GpuMatch::Normalized(one),
            several => {
                if let Some(mib) = memory_mib {
                    let fitting: Vec<&Model> = several
                        .iter()
                        .copied()
                        .filter(|m| m.memory_matches(mib) == Some(true))
                        .collect();
                    if let [one] = fitting.as_slice() {
                        return GpuMatch::Normalized(one);
                    }
                }
                GpuMatch::Ambiguous(candidates)
            }
        }
    }

    /// The Neuron model a device name from the driver means (`Trainium1`, `Inferentia2`,
    /// `trainium`): matched on the model's key or name, ignoring case, spaces and a trailing
    /// generation `1`.
    pub fn identify_neuron(&self, device_name: &str) -> Option<&Model> {
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let want = norm(device_name);
        let want = match want.strip_suffix('1') {
            // "Trainium1" is the first Trainium; "Inferentia1" the first Inferentia.
            Some(base) if !base.ends_with(char::is_numeric) => base.to_string(),
            _ => want,
        };
        self.models
            .iter()
            .filter(|m| m.vendor == Vendor::Neuron)
            .find(|m| norm(&m.key) == want || norm(&m.name) == want)
    }

    /// The families that carry model `key` (`h200` → p5e, p5en), in catalog order.
    pub fn families_for_model(&self, key: &str) -> Vec<&Family> {
        let key = key.trim();
        self.families
            .iter()
            .filter(|f| f.model.eq_ignore_ascii_case(key))
            .collect()
    }

    /// The source entry with id `id`.
    pub fn reference(&self, id: &str) -> Option<&Reference> {
        self.sources.iter().find(|r| r.id == id)
    }
}

fn valid_tolerance(v: f64) -> bool {
    v > 0.0 && v <= 50.0
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// Lower-case ASCII letters, digits and inner `-`: keys, label names, families, sizes.
fn is_key(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> &'static Catalog {
        Catalog::builtin()
    }

    /// Family, model key, and (size, devices) as the reference lists them.
    type FamilySizes = (&'static str, &'static str, &'static [(&'static str, u32)]);

    /// The reference's per-size table (accelerators.md section 4), written out independently
    /// of the data file so a typo in either shows up.
    #[rustfmt::skip]
    const EXPECTED_SIZES: &[FamilySizes] = &[
        ("g4dn", "t4", &[("xlarge", 1), ("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 1), ("12xlarge", 4), ("16xlarge", 1), ("metal", 8)]),
        ("g4ad", "radeon-pro-v520", &[("xlarge", 1), ("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 2), ("16xlarge", 4)]),
        ("g5", "a10g", &[("xlarge", 1), ("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 1), ("16xlarge", 1), ("12xlarge", 4), ("24xlarge", 4), ("48xlarge", 8)]),
        ("g5g", "t4g", &[("xlarge", 1), ("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 1), ("16xlarge", 2), ("metal", 2)]),
        ("g6", "l4", &[("xlarge", 1), ("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 1), ("16xlarge", 1), ("12xlarge", 4), ("24xlarge", 4), ("48xlarge", 8)]),
        ("gr6", "l4", &[("4xlarge", 1), ("8xlarge", 1)]),
        ("g6e", "l40s", &[("xlarge", 1), ("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 1), ("16xlarge", 1), ("12xlarge", 4), ("24xlarge", 4), ("48xlarge", 8)]),
        ("p3", "v100-16gb", &[("2xlarge", 1), ("8xlarge", 4), ("16xlarge", 8)]),
        ("p3dn", "v100-32gb", &[("24xlarge", 8)]),
        ("p4d", "a100-40gb", &[("24xlarge", 8)]),
        ("p4de", "a100-80gb", &[("24xlarge", 8)]),
        ("p5", "h100", &[("4xlarge", 1), ("48xlarge", 8)]),
        ("p5e", "h200", &[("48xlarge", 8)]),
        ("p5en", "h200", &[("48xlarge", 8)]),
        ("p6-b200", "b200", &[("48xlarge", 8)]),
        ("p6e-gb200", "gb200", &[("36xlarge", 4)]),
        ("inf1", "inferentia", &[("xlarge", 1), ("2xlarge", 1), ("6xlarge", 4), ("24xlarge", 16)]),
        ("inf2", "inferentia2", &[("xlarge", 1), ("8xlarge", 1), ("24xlarge", 6), ("48xlarge", 12)]),
        ("trn1", "trainium", &[("2xlarge", 1), ("32xlarge", 16)]),
        ("trn1n", "trainium", &[("32xlarge", 16)]),
        ("trn2", "trainium2", &[("48xlarge", 16)]),
    ];

    #[test]
    fn builtin_parses_and_validates() {
        assert_eq!(Catalog::builtin_error(), None);
        let parsed = Catalog::parse(BUILTIN_JSON).expect("built-in catalog parses");
        assert_eq!(&parsed, cat());
        assert_eq!(cat().families.len(), EXPECTED_SIZES.len());
        assert_eq!(cat().models.len(), 18);
        cat().validate().unwrap();
    }

    #[test]
    fn every_family_and_size_resolves() {
        for (family, model, sizes) in EXPECTED_SIZES {
            let f = cat()
                .family(family)
                .unwrap_or_else(|| panic!("family {family}"));
            assert_eq!(f.model, *model, "{family}");
            assert_eq!(f.sizes.len(), sizes.len(), "{family}: size count");
            for (size, devices) in *sizes {
                let t = format!("{family}.{size}");
                let i = cat().instance(&t).unwrap_or_else(|| panic!("{t}"));
                assert_eq!(i.family.name, *family, "{t}");
                assert_eq!(i.model.key, *model, "{t}");
                assert_eq!(i.devices, *devices, "{t}");
                assert_eq!(i.size, *size, "{t}");
                assert_eq!(i.instance_type(), t);
                assert_eq!(f.devices(size), Some(*devices));
            }
        }
    }

    #[test]
    fn g6e_counts_are_not_monotonic() {
        let d = |s: &str| cat().instance(&format!("g6e.{s}")).map(|i| i.devices);
        assert_eq!(d("8xlarge"), Some(1));
        assert_eq!(d("12xlarge"), Some(4));
        assert_eq!(d("16xlarge"), Some(1));
        assert_eq!(d("24xlarge"), Some(4));
        assert_eq!(d("48xlarge"), Some(8));
        let seed = cat().instance("g6e.2xlarge").unwrap();
        assert_eq!((seed.model.key.as_str(), seed.devices), ("l40s", 1));
        assert_eq!(seed.model.label_name.as_deref(), Some("l40s"));
        assert_eq!(seed.model.label_memory_mib, Some(45776));
        assert_eq!(seed.model.memory_matches(46068), Some(true));
    }

    #[test]
    fn hyphenated_family_and_neuron_cores() {
        let b = cat().instance("p6-b200.48xlarge").unwrap();
        assert_eq!(b.family.name, "p6-b200");
        assert_eq!(b.model.nvml_names, ["NVIDIA B200"]);
        assert_eq!(b.devices, 8);
        assert_eq!(b.neuron_cores(), None);
        let cores = |t: &str| cat().instance(t).and_then(|i| i.neuron_cores());
        assert_eq!(cores("inf1.24xlarge"), Some(64));
        assert_eq!(cores("inf2.48xlarge"), Some(24));
        assert_eq!(cores("trn1.32xlarge"), Some(32));
        assert_eq!(cores("trn2.48xlarge"), Some(128));
    }

    #[test]
    fn unknown_or_malformed_instance_types_are_none() {
        for t in [
            "",
            ".",
            "g6e",
            "g6e.",
            ".12xlarge",
            "g6e12xlarge",
            "g6e.3xlarge",
            "g6e.12xlarge.x",
            "x1.large",
            "m5.xlarge",
            "g6e..12xlarge",
            "g6é.xlarge",
            "g6e.12xlarge\0",
            "p6-b200",
            "p6.b200.48xlarge",
            "\u{1F600}.\u{1F600}",
        ] {
            assert!(cat().instance(t).is_none(), "{t:?}");
        }
        let long = "g".repeat(100_000) + ".xlarge";
        assert!(cat().instance(&long).is_none());
        // Case and blanks do not matter; the catalog's spelling is returned.
        let i = cat().instance("  G6E.12XLarge \n").unwrap();
        assert_eq!(
            (i.family.name.as_str(), i.size, i.devices),
            ("g6e", "12xlarge", 4)
        );
    }

    #[test]
    fn families_flags() {
        let g4ad = cat().family("g4ad").unwrap();
        assert_eq!(g4ad.vendor, Vendor::Amd);
        assert!(!g4ad.supported);
        assert!(g4ad.unsupported_reason.as_deref().unwrap().contains("AMD"));
        assert!(cat()
            .families
            .iter()
            .filter(|f| f.name != "g4ad")
            .all(|f| f.supported && f.unsupported_reason.is_none()));
        for (f, auto) in [
            ("p3", false),
            ("p6e-gb200", false),
            ("p3dn", true),
            ("g6e", true),
            ("trn2", true),
        ] {
            assert_eq!(cat().family(f).unwrap().auto_mode, Some(auto), "{f}");
        }
        for f in ["g5g", "p6e-gb200"] {
            assert_eq!(cat().family(f).unwrap().cpu_arch, CpuArch::Arm64, "{f}");
        }
        assert_eq!(
            cat()
                .families
                .iter()
                .filter(|f| f.cpu_arch == CpuArch::Arm64)
                .count(),
            2
        );
        for f in ["inf1", "inf2", "trn1", "trn1n", "trn2"] {
            let fam = cat().family(f).unwrap();
            assert_eq!(fam.vendor, Vendor::Neuron, "{f}");
            assert_eq!(fam.vendor.resource_name(), "aws.amazon.com/neuron");
        }
        assert_eq!(Vendor::Nvidia.resource_name(), "nvidia.com/gpu");
        assert_eq!(Vendor::Amd.resource_name(), "amd.com/gpu");
        assert_eq!(
            Vendor::Neuron.label_key_suffix(),
            "instance-accelerator-name"
        );
        assert_eq!(Vendor::Nvidia.label_key_suffix(), "instance-gpu-name");
        assert_eq!(Vendor::Amd.report_vendor(), None);
        assert_eq!(cat().family(" G6E "), cat().family("g6e"));
        assert!(cat().family("g7").is_none());
        assert!(cat().family("").is_none());
    }

    #[test]
    fn nvml_names_of_every_model() {
        let expected: &[(&str, &[&str])] = &[
            ("t4", &["Tesla T4"]),
            ("t4g", &["NVIDIA T4G"]),
            ("a10g", &["NVIDIA A10G"]),
            ("l4", &["NVIDIA L4"]),
            ("l40s", &["NVIDIA L40S"]),
            ("v100-16gb", &["Tesla V100-SXM2-16GB"]),
            ("v100-32gb", &["Tesla V100-SXM2-32GB"]),
            ("a100-40gb", &["NVIDIA A100-SXM4-40GB"]),
            ("a100-80gb", &["NVIDIA A100-SXM4-80GB"]),
            ("h100", &["NVIDIA H100 80GB HBM3"]),
            ("h200", &["NVIDIA H200"]),
            ("b200", &["NVIDIA B200"]),
            ("gb200", &["NVIDIA GB200"]),
            ("radeon-pro-v520", &[]),
            ("inferentia", &[]),
            ("inferentia2", &[]),
            ("trainium", &[]),
            ("trainium2", &[]),
        ];
        assert_eq!(expected.len(), cat().models.len());
        for (key, names) in expected {
            let m = cat().model(key).unwrap_or_else(|| panic!("model {key}"));
            assert_eq!(m.nvml_names, *names, "{key}");
            for n in *names {
                assert_eq!(
                    cat().model_by_nvml_name(n).map(|m| m.key.as_str()),
                    Some(*key)
                );
                assert_eq!(cat().identify_gpu(n, None), GpuMatch::Exact(m));
                assert_eq!(
                    cat()
                        .model_by_nvml_name(&format!(" {n}\n"))
                        .map(|m| m.key.as_str()),
                    Some(*key)
                );
            }
        }
        assert!(cat().model_by_nvml_name("NVIDIA L40").is_none());
        assert!(
            cat().model_by_nvml_name("nvidia l40s").is_none(),
            "exact means exact"
        );
        assert!(cat().model_by_nvml_name("").is_none());
    }

    #[test]
    fn label_lookups() {
        let keys = |label: &str| -> Vec<&str> {
            cat()
                .models_by_label(label)
                .iter()
                .map(|m| m.key.as_str())
                .collect()
        };
        assert_eq!(keys("a100"), ["a100-40gb", "a100-80gb"]);
        assert_eq!(keys("v100"), ["v100-16gb", "v100-32gb"]);
        assert_eq!(keys("l40s"), ["l40s"]);
        assert_eq!(keys("L40S"), ["l40s"]);
        assert_eq!(keys(" l4 "), ["l4"]);
        assert_eq!(keys("t4"), ["t4"]);
        assert_eq!(keys("t4g"), ["t4g"]);
        assert_eq!(keys("a10g"), ["a10g"]);
        assert_eq!(keys("h100"), ["h100"]);
        assert_eq!(keys("h200"), ["h200"]);
        assert_eq!(keys("b200"), ["b200"]);
        assert_eq!(keys("radeon-pro-v520"), ["radeon-pro-v520"]);
        assert_eq!(keys("inferentia"), ["inferentia"]);
        assert_eq!(keys("inferentia2"), ["inferentia2"]);
        assert_eq!(keys("trainium"), ["trainium"]);
        assert_eq!(keys("trainium2"), ["trainium2"]);
        assert!(keys("gb200").is_empty(), "GB200's label is unverified");
        assert!(keys("").is_empty());
        assert!(keys("a100-80gb").is_empty(), "keys are not labels");
        let by_mem =
            |l: &str, mib: u64| cat().model_by_label_memory(l, mib).map(|m| m.key.as_str());
        assert_eq!(by_mem("a100", 40960), Some("a100-40gb"));
        assert_eq!(by_mem("A100", 81920), Some("a100-80gb"));
        assert_eq!(by_mem("v100", 16384), Some("v100-16gb"));
        assert_eq!(by_mem("v100", 32768), Some("v100-32gb"));
        assert_eq!(by_mem("l40s", 45776), Some("l40s"));
        assert_eq!(by_mem("a100", 46068), None);
        // Every label name appears under exactly one memory figure per model.
        for m in &cat().models {
            if let (Some(l), Some(mib)) = (&m.label_name, m.label_memory_mib) {
                assert_eq!(by_mem(l, mib), Some(m.key.as_str()));
            }
        }
    }

    #[test]
    fn normalization_rule() {
        for (name, word) in [
            ("NVIDIA H100 80GB HBM3", "h100"),
            ("NVIDIA A100-SXM4-80GB", "a100"),
            ("Tesla V100-SXM2-32GB", "v100"),
            ("Tesla T4", "t4"),
            ("NVIDIA L40S", "l40s"),
            ("NVIDIA A10G", "a10g"),
            ("NVIDIA T4G", "t4g"),
            ("NVIDIA A100-SXM...", "a100"),
            ("  nvidia   tesla T4 ", "t4"),
            ("NVIDIA", "nvidia"),
            ("nvidia ", "nvidia"),
            ("nvidia tesla ", "tesla"),
            ("", ""),
            ("-", ""),
            ("NVIDIA GeForce RTX 4090", "geforce"),
            ("ÑVIDIA X", "ñvidia"),
        ] {
            assert_eq!(normalize_gpu_name(name), word, "{name:?}");
        }
        // For every catalog GPU with a label, the rule gives the label name.
        for m in &cat().models {
            if let Some(label) = &m.label_name {
                for n in &m.nvml_names {
                    assert_eq!(&normalize_gpu_name(n), label, "{n}");
                }
            }
        }
    }

    #[test]
    fn identify_by_normalized_name_and_memory() {
        let key = |name: &str, mib: Option<u64>| {
            cat().identify_gpu(name, mib).model().map(|m| m.key.clone())
        };
        assert_eq!(
            key("NVIDIA A100 80GB PCIe", Some(81920)),
            Some("a100-80gb".into())
        );
        assert_eq!(
            key("NVIDIA A100-PCIE-40GB", Some(40536)),
            Some("a100-40gb".into())
        );
        assert_eq!(
            key("NVIDIA A100-SXM...", Some(81920)),
            Some("a100-80gb".into())
        );
        assert_eq!(
            key("Tesla V100-PCIE-16GB", Some(16160)),
            Some("v100-16gb".into())
        );
        assert_eq!(
            key("Tesla V100-SXM2-32GB-LS", Some(32510)),
            Some("v100-32gb".into())
        );
        assert_eq!(key("NVIDIA H100 PCIe", Some(81559)), Some("h100".into()));
        assert_eq!(
            key("NVIDIA H100 NVL", Some(95830)),
            Some("h100".into()),
            "one candidate: memory is the memory check's job"
        );
        match cat().identify_gpu("NVIDIA A100-SXM...", None) {
            GpuMatch::Ambiguous(v) => assert_eq!(v.len(), 2),
            other => panic!("{other:?}"),
        }
        match cat().identify_gpu("NVIDIA A100 PCIe", Some(60000)) {
            GpuMatch::Ambiguous(v) => assert_eq!(v.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            cat().identify_gpu("NVIDIA L4", Some(23034)),
            GpuMatch::Exact(_)
        ));
        assert!(
            matches!(cat().identify_gpu("nvidia l40s", None), GpuMatch::Normalized(m) if m.key == "l40s")
        );
        for unknown in [
            "NVIDIA GeForce RTX 4090",
            "NVIDIA L40",
            "",
            "   ",
            "NVIDIA",
            "\0",
        ] {
            assert_eq!(
                cat().identify_gpu(unknown, Some(1)),
                GpuMatch::Unknown,
                "{unknown:?}"
            );
            assert!(cat().identify_gpu(unknown, None).candidates().is_empty());
        }
    }

    #[test]
    fn families_for_models() {
        let names = |k: &str| -> Vec<&str> {
            cat()
                .families_for_model(k)
                .iter()
                .map(|f| f.name.as_str())
                .collect()
        };
        assert_eq!(names("h200"), ["p5e", "p5en"]);
        assert_eq!(names("l4"), ["g6", "gr6"]);
        assert_eq!(names("trainium"), ["trn1", "trn1n"]);
        assert_eq!(names("l40s"), ["g6e"]);
        assert_eq!(names("b200"), ["p6-b200"]);
        assert!(names("nope").is_empty());
        assert!(names("").is_empty());
        // Every model is carried by at least one family.
        for m in &cat().models {
            assert!(!names(&m.key).is_empty(), "{} has no family", m.key);
        }
    }

    #[test]
    fn memory_expectations() {
        let m = |k: &str| cat().model(k).unwrap();
        assert_eq!(m("l40s").memory_matches(46068), Some(true));
        assert_eq!(m("l40s").memory_matches(23034), Some(false));
        assert_eq!(m("t4").memory_matches(15109), Some(true), "older drivers");
        assert_eq!(m("t4").memory_matches(15360), Some(true));
        assert_eq!(m("h100").memory_matches(81559), Some(true));
        assert_eq!(m("a100-40gb").memory_matches(81920), Some(false));
        assert_eq!(m("a100-80gb").memory_matches(40960), Some(false));
        assert_eq!(m("v100-16gb").memory_matches(32768), Some(false));
        assert_eq!(m("inferentia2").memory_matches(32768), Some(true));
        assert_eq!(m("l40s").memory_range_mib(), Some((45147, 46989)));
        assert_eq!(m("l40s").memory_matches(u64::MAX), Some(false));
        assert_eq!(m("l40s").memory_matches(0), Some(false));
        for model in &cat().models {
            // A node that shows EC2's label figure passes too (the reference: ±7% covers
            // label vs nvidia-smi for every model), and the tool's own figure passes.
            if let Some(l) = model.label_memory_mib {
                assert_eq!(model.memory_matches(l), Some(true), "{} label", model.key);
            }
            if let Some(s) = model.memory_mib {
                assert_eq!(model.memory_matches(s), Some(true), "{} smi", model.key);
            }
            assert!(model.expected_memory_mib().is_some(), "{}", model.key);
            let tol = model.memory_tolerance_pct;
            assert!(
                tol == cat().policy.memory_tolerance_pct_default
                    || tol == cat().policy.memory_tolerance_pct_exact,
                "{}: tolerance {tol} is neither policy value",
                model.key
            );
        }
    }

    #[test]
    fn floors_follow_the_policy() {
        let pol = &cat().policy;
        for m in &cat().models {
            for d in Dtype::ALL {
                let want = m.peaks_tflops.get(d.into()).map(|p| pol.gemm_floor(p));
                let got = m.floors.gemm_tflops.get(d);
                assert!(
                    close(got, want),
                    "{} gemm {}: data {got:?}, policy {want:?}",
                    m.key,
                    d.as_str()
                );
            }
            let want = m.memory_bandwidth_gbps.map(|b| pol.copy_floor(b));
            assert!(
                close(m.floors.copy_gbps, want),
                "{} copy: data {:?}, policy {want:?}",
                m.key,
                m.floors.copy_gbps
            );
            let want = match (m.pcie_gen, m.pcie_width) {
                (Some(g), Some(w)) => pol.transfer_floor(g, w),
                _ => None,
            };
            assert!(
                close(m.floors.h2d_gbps, want),
                "{} h2d: data {:?}, policy {want:?}",
                m.key,
                m.floors.h2d_gbps
            );
            assert!(
                close(m.floors.d2h_gbps, want),
                "{} d2h: data {:?}, policy {want:?}",
                m.key,
                m.floors.d2h_gbps
            );
            for k in [Kernel::Gemm, Kernel::Copy, Kernel::H2d, Kernel::D2h] {
                for d in Dtype::ALL {
                    if let (Some(f), Some(p)) = (m.floor_for(k, Some(d)), m.peak_for(k, Some(d))) {
                        assert!(f < p, "{} {k:?} {d:?}: floor {f} not below peak {p}", m.key);
                    }
                }
            }
        }
        // The faulty A100 of DCGM issue #122 (6.7 TFLOPS f32) fails the floor.
        assert!(
            cat()
                .model("a100-40gb")
                .unwrap()
                .floors
                .gemm_tflops
                .f32
                .unwrap()
                > 6.7
        );
    }

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => (a - b).abs() < 0.006,
            _ => false,
        }
    }

    #[test]
    fn peaks_and_floors_by_kernel() {
        let l40s = cat().model("l40s").unwrap();
        assert_eq!(l40s.peak_for(Kernel::Gemm, Some(Dtype::Bf16)), Some(362.05));
        assert_eq!(l40s.peak_for(Kernel::Gemm, None), None);
        assert_eq!(l40s.peak_for(Kernel::Copy, None), Some(864.0));
        assert_eq!(l40s.peak_for(Kernel::H2d, None), Some(31.5));
        assert_eq!(l40s.peak_for(Kernel::Inference, Some(Dtype::F16)), None);
        assert_eq!(l40s.floor_for(Kernel::Copy, None), Some(518.4));
        assert_eq!(l40s.floor_for(Kernel::D2h, None), Some(18.9));
        assert_eq!(l40s.floor_for(Kernel::Inference, Some(Dtype::Bf16)), None);
        assert_eq!(l40s.compute_capability, ComputeCapability::parse("8.9"));
        assert_eq!(l40s.power_limit_w, Some(350));
        let a10g = cat().model("a10g").unwrap();
        for d in Dtype::ALL {
            assert_eq!(
                a10g.peak_for(Kernel::Gemm, Some(d)),
                None,
                "A10G peaks are unverified"
            );
            assert_eq!(a10g.floor_for(Kernel::Gemm, Some(d)), None);
        }
        assert_eq!(a10g.peak_for(Kernel::Copy, None), Some(600.0));
        let t4 = cat().model("t4").unwrap();
        assert_eq!(t4.peaks_tflops.supports(NumberFormat::Bf16), Some(false));
        assert_eq!(t4.peaks_tflops.supports(NumberFormat::F16), Some(true));
        assert_eq!(t4.peak_for(Kernel::H2d, None), Some(15.75));
        assert_eq!(a10g.peaks_tflops.supports(NumberFormat::F32), None);
        let b200 = cat().model("b200").unwrap();
        assert_eq!(
            b200.compute_capability,
            Some(ComputeCapability {
                major: 10,
                minor: 0
            })
        );
        assert!(b200.compute_capability > cat().model("h100").unwrap().compute_capability);
        assert_eq!(b200.peak_for(Kernel::H2d, None), Some(63.0));
        let trn2 = cat().model("trainium2").unwrap();
        assert_eq!(trn2.neuron_cores, Some(8));
        assert_eq!(trn2.compute_capability, None);
        assert_eq!(trn2.peak_for(Kernel::H2d, None), None);
        // Every NVIDIA model with a known link is x16.
        for m in cat().models.iter().filter(|m| m.pcie_width.is_some()) {
            assert_eq!(m.pcie_width, Some(16), "{}", m.key);
        }
    }

    #[test]
    fn pcie_rates() {
        assert_eq!(pcie_one_way_gbps(3, 16), Some(15.75));
        assert_eq!(pcie_one_way_gbps(4, 16), Some(31.5));
        assert_eq!(pcie_one_way_gbps(5, 16), Some(63.0));
        assert_eq!(pcie_one_way_gbps(4, 8), Some(15.75));
        assert_eq!(pcie_one_way_gbps(0, 16), None);
        assert_eq!(pcie_one_way_gbps(7, 16), None);
        assert_eq!(pcie_one_way_gbps(4, 0), None);
        assert_eq!(pcie_one_way_gbps(4, u32::MAX), None);
        assert_eq!(cat().policy.transfer_floor(4, 8), Some(9.45));
    }

    #[test]
    fn compute_capability_parsing() {
        assert_eq!(
            ComputeCapability::parse("8.9"),
            Some(ComputeCapability { major: 8, minor: 9 })
        );
        assert_eq!(
            ComputeCapability::parse(" 10.0 "),
            Some(ComputeCapability {
                major: 10,
                minor: 0
            })
        );
        for bad in [
            "",
            "8",
            "8.",
            ".9",
            "8.9.1",
            "x.y",
            "-1.0",
            "+8.9",
            "99999999999.0",
            "8 .9",
        ] {
            assert_eq!(ComputeCapability::parse(bad), None, "{bad:?}");
        }
        assert_eq!(ComputeCapability { major: 7, minor: 5 }.to_string(), "7.5");
    }

    #[test]
    fn sources_resolve() {
        for m in &cat().models {
            assert!(!m.source.is_empty(), "{} cites no source", m.key);
            for id in &m.source {
                assert!(cat().reference(id).is_some(), "{} cites {id}", m.key);
            }
        }
        for f in &cat().families {
            assert!(!f.source.is_empty(), "{} cites no source", f.name);
        }
        assert!(cat().reference("S99").is_none());
        // Every listed source is cited somewhere.
        for r in &cat().sources {
            let cited = cat().models.iter().any(|m| m.source.contains(&r.id))
                || cat().families.iter().any(|f| f.source.contains(&r.id))
                || cat().policy.source.contains(&r.id);
            assert!(cited, "source {} is never cited", r.id);
        }
    }

    #[test]
    fn serialization_round_trips() {
        let text = serde_json::to_string(cat()).unwrap();
        let back = Catalog::parse(&text).unwrap();
        assert_eq!(&back, cat());
        // Sizes keep their order through a round trip.
        let g6e = back.family("g6e").unwrap();
        let order: Vec<&str> = g6e.sizes.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
                "48xlarge"
            ]
        );
    }

    /// Apply `edit` to the built-in catalog as JSON and parse the result.
    fn mutated(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Catalog, CatalogError> {
        let mut v: serde_json::Value = serde_json::from_str(BUILTIN_JSON).unwrap();
        edit(&mut v);
        Catalog::parse(&v.to_string())
    }

    fn invalid(edit: impl FnOnce(&mut serde_json::Value), needle: &str) {
        match mutated(edit) {
            Err(CatalogError::Invalid(msg)) => {
                assert!(msg.contains(needle), "{needle:?} not in {msg}")
            }
            other => panic!("expected Invalid containing {needle:?}, got {other:?}"),
        }
    }

    fn family_mut<'v>(v: &'v mut serde_json::Value, name: &str) -> &'v mut serde_json::Value {
        v["families"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|f| f["name"] == name)
            .unwrap()
    }

    fn model_mut<'v>(v: &'v mut serde_json::Value, key: &str) -> &'v mut serde_json::Value {
        v["models"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|m| m["key"] == key)
            .unwrap()
    }

    #[test]
    fn inconsistencies_are_refused() {
        invalid(
            |v| family_mut(v, "g6")["model"] = "l5".into(),
            "unknown model 'l5'",
        );
        invalid(
            |v| family_mut(v, "g6")["vendor"] = "neuron".into(),
            "vendor neuron",
        );
        invalid(
            |v| family_mut(v, "p5")["name"] = "p5e".into(),
            "duplicate family 'p5e'",
        );
        invalid(
            |v| family_mut(v, "g6e")["sizes"]["12xlarge"] = 0.into(),
            "0 devices",
        );
        invalid(
            |v| family_mut(v, "g6e")["sizes"] = serde_json::json!({}),
            "no sizes",
        );
        invalid(
            |v| family_mut(v, "g6e")["sizes"] = serde_json::json!({"X L": 1}),
            "not a valid size",
        );
        invalid(
            |v| family_mut(v, "g6e")["supported"] = false.into(),
            "without a reason",
        );
        invalid(
            |v| family_mut(v, "g6e")["source"] = serde_json::json!(["S99"]),
            "unknown source 'S99'",
        );
        invalid(
            |v| model_mut(v, "l4")["key"] = "l40s".into(),
            "duplicate model key 'l40s'",
        );
        invalid(
            |v| model_mut(v, "l4")["nvml_names"] = serde_json::json!(["NVIDIA L40S"]),
            "belongs to two models",
        );
        invalid(
            |v| model_mut(v, "l4")["nvml_names"] = serde_json::json!([]),
            "needs an NVML name",
        );
        invalid(
            |v| model_mut(v, "trainium")["nvml_names"] = serde_json::json!(["X"]),
            "only NVIDIA",
        );
        invalid(
            |v| model_mut(v, "a100-80gb")["label_memory_mib"] = 40960.into(),
            "does not tell them apart",
        );
        invalid(|v| model_mut(v, "l4")["label_name"] = "L 4".into(), "kebab");
        invalid(
            |v| model_mut(v, "l4")["memory_tolerance_pct"] = 0.into(),
            "memory_tolerance_pct",
        );
        invalid(
            |v| model_mut(v, "l4")["peaks_tflops"]["f32"] = (-1.0).into(),
            "not positive",
        );
        invalid(
            |v| model_mut(v, "t4")["peaks_tflops"]["bf16"] = 1.0.into(),
            "not supported",
        );
        invalid(
            |v| model_mut(v, "a10g")["floors"]["gemm_tflops"]["f32"] = 1.0.into(),
            "floor without a peak",
        );
        invalid(
            |v| model_mut(v, "trainium")["neuron_cores"] = 0.into(),
            "neuron_cores",
        );
        invalid(|v| model_mut(v, "l4")["pcie_gen"] = 9.into(), "PCIe");
        invalid(
            |v| v["policy"]["gemm_fraction_of_peak"] = 1.5.into(),
            "gemm_fraction_of_peak",
        );
        invalid(
            |v| v["sources"][1]["id"] = "S1".into(),
            "duplicate source id 'S1'",
        );
        // Several problems are all reported.
        match mutated(|v| {
            family_mut(v, "g6")["model"] = "nope".into();
            model_mut(v, "l4")["memory_mib"] = 0.into();
        }) {
            Err(CatalogError::Invalid(msg)) => {
                assert!(msg.contains("nope") && msg.contains("0 MiB"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_documents_are_errors_not_panics() {
        for text in [
            "",
            "{",
            "[]",
            "null",
            "1",
            "{\"families\": 3}",
            "\u{feff}{}",
            "{\"catalog_version\": -1}",
        ] {
            assert!(
                matches!(Catalog::parse(text), Err(CatalogError::Parse { .. })),
                "{text:?}"
            );
        }
        let deep = "[".repeat(100_000);
        assert!(Catalog::parse(&deep).is_err());
        // Unknown fields and duplicate sizes are shape errors with a position.
        assert!(matches!(
            mutated(|v| model_mut(v, "l4")["colour"] = "green".into()),
            Err(CatalogError::Parse { .. })
        ));
        assert!(matches!(
            mutated(|v| model_mut(v, "l4")["compute_capability"] = "eight".into()),
            Err(CatalogError::Parse { .. })
        ));
        let dup = BUILTIN_JSON.replacen("\"12xlarge\": 4,", "\"12xlarge\": 4, \"12xlarge\": 4,", 1);
        assert_ne!(dup, BUILTIN_JSON);
        match Catalog::parse(&dup) {
            Err(CatalogError::Parse { message, line, .. }) => {
                assert!(message.contains("duplicate size '12xlarge'"), "{message}");
                assert!(line > 1);
            }
            other => panic!("{other:?}"),
        }
        let e = Catalog::parse("{").unwrap_err();
        assert!(e.to_string().starts_with("catalog JSON, line 1"), "{e}");
    }

    #[test]
    fn empty_catalog_answers_nothing() {
        let c = Catalog::empty();
        c.validate().unwrap();
        assert!(c.instance("g6e.xlarge").is_none());
        assert!(c.models_by_label("l40s").is_empty());
        assert_eq!(
            c.identify_gpu("NVIDIA L40S", Some(46068)),
            GpuMatch::Unknown
        );
    }
}
