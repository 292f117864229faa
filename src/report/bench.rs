//! Benchmark results: what `accelprobe bench` adds to a report (`benchmarks[]`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A micro-kernel.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Kernel {
    /// C = A·B.
    Gemm,
    /// Device (or host) memory copy bandwidth.
    Copy,
    /// Host-to-device copy from pinned memory.
    H2d,
    /// Device-to-host copy into pinned memory.
    D2h,
    /// One transformer decoder block forward pass.
    Inference,
    /// One execution of a compiled Neuron model (a NEFF passed with `bench --neff`).
    Neff,
}

impl Kernel {
    pub const ALL: [Kernel; 5] = [
        Kernel::Gemm,
        Kernel::Copy,
        Kernel::H2d,
        Kernel::D2h,
        Kernel::Inference,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kernel::Gemm => "gemm",
            Kernel::Copy => "copy",
            Kernel::H2d => "h2d",
            Kernel::D2h => "d2h",
            Kernel::Inference => "inference",
            Kernel::Neff => "neff",
        }
    }

    /// Whether the kernel's work depends on a number format.
    pub fn has_dtype(self) -> bool {
        matches!(self, Kernel::Gemm | Kernel::Inference)
    }
}

/// Number format of a kernel's inputs.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    /// f32 storage, inputs rounded to TensorFloat-32 (10-bit mantissa) for the multiply.
    Tf32,
    F16,
    Bf16,
}

impl Dtype {
    pub const ALL: [Dtype; 4] = [Dtype::F32, Dtype::Tf32, Dtype::F16, Dtype::Bf16];

    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Tf32 => "tf32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
}

/// Problem size; only the fields that apply to the kernel are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct ProblemSize {
    /// GEMM rows of A and C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub m: Option<u64>,
    /// GEMM columns of B and C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// GEMM inner dimension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<u64>,
    /// Bytes moved per iteration for copies (each byte read once and written once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Inference: tokens processed per forward pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Inference: model width.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<u64>,
    /// Inference: attention heads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<u64>,
    /// Inference: MLP width.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ffn: Option<u64>,
    /// Compiled model: the NEFF file's name and the first 12 hex digits of its SHA-256
    /// (`model.neff@3f2a9c01d4e5`), so that two different models are never compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Summary of the per-iteration times, in seconds. A benchmark that timed nothing (it could
/// not run) has no statistics: its fields are NaN in memory and `null` in JSON, and `null` is
/// read back as NaN, so such a report stays readable by `verify` and `compare`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Stats {
    #[serde(deserialize_with = "null_as_nan")]
    #[schemars(with = "Option<f64>", required)]
    pub median_s: f64,
    #[serde(deserialize_with = "null_as_nan")]
    #[schemars(with = "Option<f64>", required)]
    pub p10_s: f64,
    #[serde(deserialize_with = "null_as_nan")]
    #[schemars(with = "Option<f64>", required)]
    pub p90_s: f64,
    #[serde(deserialize_with = "null_as_nan")]
    #[schemars(with = "Option<f64>", required)]
    pub mean_s: f64,
    #[serde(deserialize_with = "null_as_nan")]
    #[schemars(with = "Option<f64>", required)]
    pub min_s: f64,
    #[serde(deserialize_with = "null_as_nan")]
    #[schemars(with = "Option<f64>", required)]
    pub max_s: f64,
    /// Coefficient of variation (standard deviation / mean).
    #[serde(deserialize_with = "null_as_nan")]
    #[schemars(with = "Option<f64>", required)]
    pub cv: f64,
}

/// A number, or `null` (what serde_json writes for NaN and infinities) read as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Throughput at the median time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Throughput {
    pub value: f64,
    /// `TFLOP/s`, `GB/s` or `tokens/s`.
    pub unit: String,
}

/// Result of comparing the output with a reference computed in higher precision.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Correctness {
    pub passed: bool,
    /// Largest error found, relative as described in `method`.
    pub max_rel_error: Option<f64>,
    /// The bound the error must stay under for this kernel and dtype.
    pub bound: f64,
    /// How the output was checked.
    pub method: String,
    /// Output elements compared one by one with the reference.
    pub elements_checked: u64,
    /// Why the check failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Correctness {
    /// A benchmark that could not run: failed, with the reason (unknown is never a pass).
    pub fn not_run(reason: String) -> Self {
        Correctness {
            passed: false,
            max_rel_error: None,
            bound: 0.0,
            method: "not run".into(),
            elements_checked: 0,
            failure: Some(reason),
        }
    }
}

/// One measured kernel on one device.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Benchmark {
    pub kernel: Kernel,
    /// Number format; `None` for copies.
    pub dtype: Option<Dtype>,
    /// `cpu`, `cuda:N` or `neuron:N` (logical NeuronCore N).
    pub device: String,
    /// Model of the device (`NVIDIA L40S`, the CPU model).
    pub device_name: Option<String>,
    /// Which code ran: `accelprobe-ptx`, `cublas`, `cpu-gemm`, ...
    pub implementation: String,
    pub size: ProblemSize,
    /// Host threads the kernel ran on (CPU backend; its results scale with them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    pub warmup_iterations: u32,
    pub iterations: u32,
    /// How the timed iterations were grouped: the sizes of consecutive runs of `samples_s`,
    /// one per round. A CPU benchmark runs in rounds, each with freshly allocated buffers and
    /// its own warm-up, so that one run samples the machine's placement and drift noise and
    /// `compare` can see it (it resamples rounds, then iterations); CUDA and Neuron benchmarks
    /// in consecutive rounds on the same buffers. Empty: one round (older reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<u32>,
    /// Every timed iteration, in seconds, in the order they ran.
    pub samples_s: Vec<f64>,
    pub stats: Stats,
    pub throughput: Throughput,
    /// Datasheet peak of the device for this kernel and dtype, in the throughput's unit.
    pub peak: Option<f64>,
    /// Throughput / peak.
    pub fraction_of_peak: Option<f64>,
    pub correctness: Correctness,
    /// Notes on how the numbers should be read (emulated formats, fallbacks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}
