//! The baseline file: a compact, versioned record of one benchmark run that `compare` reads
//! in place of a full report (`accelprobe bench --save-baseline FILE` writes it).
//!
//! Per metric it keeps the per-iteration samples (at most [`MAX_SAMPLES`], thinned to evenly
//! spaced ranks, which keeps the distribution and only widens intervals), the device model,
//! the unit and the work per iteration; per file the tool version, the driver and CUDA
//! versions from the report's runtimes, the node and when it was made.

use serde::{Deserialize, Serialize};

use super::stats::thin;
use crate::report::{Dtype, Kernel, ProblemSize, Report, Tool};

/// `kind` of a baseline file.
pub const BASELINE_KIND: &str = "accelprobe-baseline";
/// Version of the baseline format; readers refuse newer ones.
pub const BASELINE_VERSION: u32 = 1;
/// Most samples kept per metric.
pub const MAX_SAMPLES: usize = 1000;

/// A stored baseline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    /// Always `accelprobe-baseline`.
    pub kind: String,
    pub baseline_version: u32,
    /// The accelprobe that ran the benchmarks.
    pub tool: Tool,
    /// When the baseline file was written (RFC 3339, UTC).
    pub created_at: String,
    /// The report the baseline was taken from.
    pub report_id: String,
    pub report_created_at: String,
    /// Kubernetes node name, else hostname.
    pub node: Option<String>,
    /// NVIDIA driver version (NVML), when known.
    pub driver_version: Option<String>,
    /// CUDA version the driver supports, when known.
    pub cuda_version: Option<String>,
    /// CPU model of the host (the CPU backend's device model).
    #[serde(default)]
    pub cpu_model: Option<String>,
    pub metrics: Vec<BaselineMetric>,
}

/// One benchmark in a baseline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineMetric {
    pub kernel: Kernel,
    pub dtype: Option<Dtype>,
    /// The device model (`device_name` of the benchmark; `unknown` when it had none).
    pub device_model: String,
    /// Devices of that model the samples came from (`cuda:0`, `cuda:1`, ...).
    pub devices: Vec<String>,
    pub implementation: String,
    pub size: ProblemSize,
    /// Throughput unit (`TFLOP/s`, `GB/s`, `tokens/s`).
    pub unit: String,
    /// Work of one iteration in the unit's numerator (throughput = work / seconds).
    pub work_per_iteration: f64,
    /// Timed iterations that ran (may exceed `samples_s.len()` after thinning).
    pub iterations: u64,
    /// Median per-iteration time of all iterations, in seconds.
    pub median_s: f64,
    /// Per-iteration seconds, sorted, at most [`MAX_SAMPLES`].
    pub samples_s: Vec<f64>,
}

/// Why a baseline could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("baseline_version {found} is newer than this accelprobe supports ({supported}); upgrade accelprobe")]
    Newer { found: u64, supported: u32 },
    #[error("not an accelprobe baseline: {0}")]
    Shape(String),
}

impl Baseline {
    /// The baseline of a report's benchmarks. Benchmarks that failed their correctness
    /// check or have no samples are left out: a wrong result is no yardstick.
    pub fn from_report(report: &Report, created_at: String) -> Baseline {
        let run = super::Run::from_report(report, "report");
        Baseline {
            kind: BASELINE_KIND.to_string(),
            baseline_version: BASELINE_VERSION,
            tool: report.tool.clone(),
            created_at,
            report_id: report.id.clone(),
            report_created_at: report.created_at.clone(),
            node: Some(run.node.clone()),
            driver_version: report.driver_version().map(str::to_string),
            cuda_version: report.cuda_version().map(str::to_string),
            cpu_model: report.host.cpu_model.clone(),
            metrics: run
                .metrics
                .into_iter()
                .map(|m| BaselineMetric {
                    kernel: m.kernel,
                    dtype: m.dtype,
                    device_model: m.key.device_model.clone(),
                    devices: m.devices,
                    implementation: m.key.implementation.clone(),
                    size: m.size,
                    unit: m.unit,
                    work_per_iteration: m.work,
                    iterations: m.samples_s.len() as u64,
                    median_s: super::stats::median(&m.samples_s),
                    samples_s: thin(&m.samples_s, MAX_SAMPLES),
                })
                .collect(),
        }
    }

    /// Parse a baseline from JSON, refusing a newer format first.
    pub fn from_json_value(value: serde_json::Value) -> Result<Baseline, BaselineError> {
        if let Some(v) = value.get("baseline_version").and_then(|v| v.as_u64()) {
            if v > u64::from(BASELINE_VERSION) {
                return Err(BaselineError::Newer {
                    found: v,
                    supported: BASELINE_VERSION,
                });
            }
        }
        let b: Baseline =
            serde_json::from_value(value).map_err(|e| BaselineError::Shape(e.to_string()))?;
        if b.kind != BASELINE_KIND {
            return Err(BaselineError::Shape(format!(
                "kind is '{}', expected '{BASELINE_KIND}'",
                b.kind
            )));
        }
        Ok(b)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        crate::render::pretty_json(self)
    }
}
