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
/// Version of the baseline format; readers refuse newer ones. Version 2 added `rounds`;
/// version 1 files are read as one round.
pub const BASELINE_VERSION: u32 = 2;
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
    /// Sizes of the rounds `samples_s` is made of, in order (version 2; empty: one round).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<u32>,
    /// Host threads it ran on (CPU backend), when the report recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Per-iteration seconds, round after round, each round sorted; at most [`MAX_SAMPLES`]
    /// in all.
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

/// Thin every round in proportion to its size so that at most about `max` samples remain
/// (at least two per round, or all of a smaller round).
pub fn thin_rounds(rounds: &[Vec<f64>], max: usize) -> Vec<Vec<f64>> {
    let total: usize = rounds.iter().map(Vec::len).sum();
    rounds
        .iter()
        .map(|r| {
            let share = if total <= max {
                r.len()
            } else {
                (r.len() * max / total).max(2)
            };
            thin(r, share)
        })
        .collect()
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
                .map(|m| {
                    let samples = m.samples();
                    let kept = thin_rounds(&m.rounds, MAX_SAMPLES);
                    BaselineMetric {
                        kernel: m.kernel,
                        dtype: m.dtype,
                        device_model: m.key.device_model.clone(),
                        devices: m.devices,
                        threads: m.threads,
                        implementation: m.key.implementation.clone(),
                        size: m.size,
                        unit: m.unit,
                        work_per_iteration: m.work,
                        iterations: samples.len() as u64,
                        median_s: super::stats::median(&samples),
                        rounds: if kept.len() > 1 {
                            kept.iter().map(|r| r.len() as u32).collect()
                        } else {
                            Vec::new()
                        },
                        samples_s: kept.concat(),
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_thinned_in_proportion_and_kept_whole() {
        let rounds: Vec<Vec<f64>> = vec![
            (0..3000).map(f64::from).collect(),
            (0..1000).map(f64::from).collect(),
            vec![1.0],
        ];
        let t = thin_rounds(&rounds, 1000);
        let sizes: Vec<usize> = t.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![749, 249, 1]);
        // Small enough: untouched (sorted within each round).
        let small = vec![vec![3.0, 1.0], vec![2.0]];
        assert_eq!(thin_rounds(&small, 1000), vec![vec![1.0, 3.0], vec![2.0]]);
    }

    #[test]
    fn a_version_1_baseline_is_one_round_and_newer_ones_are_refused() {
        let v1 = serde_json::json!({
            "kind": "accelprobe-baseline", "baseline_version": 1,
            "tool": {"name": "accelprobe", "version": "0.1.0"},
            "created_at": "2026-01-01T00:00:00Z", "report_id": "r",
            "report_created_at": "2026-01-01T00:00:00Z", "node": "n",
            "driver_version": null, "cuda_version": null,
            "metrics": [{"kernel": "copy", "dtype": null, "device_model": "cpu",
                "devices": ["cpu"], "implementation": "cpu-stream-copy", "size": {"bytes": 8},
                "unit": "GB/s", "work_per_iteration": 1.0, "iterations": 3,
                "median_s": 2.0, "samples_s": [1.0, 2.0, 3.0]}]
        });
        let b = Baseline::from_json_value(v1).unwrap();
        assert!(b.metrics[0].rounds.is_empty());
        let run = crate::compare::Run::from_baseline(&b, "v1.json");
        assert_eq!(run.metrics[0].rounds, vec![vec![1.0, 2.0, 3.0]]);
        // A metric without one usable sample is left out and named, as for reports.
        let mut bad = b.clone();
        bad.metrics[0].samples_s = vec![0.0, f64::NAN];
        let run = crate::compare::Run::from_baseline(&bad, "bad.json");
        assert!(run.metrics.is_empty());
        assert_eq!(run.skipped.len(), 1);
        assert!(
            run.skipped[0].ends_with("no usable samples in the baseline"),
            "{:?}",
            run.skipped
        );
        let newer = serde_json::json!({"kind": "accelprobe-baseline", "baseline_version": 3});
        assert!(matches!(
            Baseline::from_json_value(newer),
            Err(BaselineError::Newer { found: 3, .. })
        ));
    }
}
