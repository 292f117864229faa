//! What the collector keeps about a node from one report and its verdict: the row of the fleet
//! page, of `/v1/nodes` and of the metrics.

use std::collections::BTreeMap;

use super::store::{FailingCheck, Figure, NodeSummary, PerfCheck};
use crate::report::Report;
use crate::verify::verdict::{Status, Verdict};

/// Everything [`summarize`] needs besides the report and the verdict.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub node: &'a str,
    pub node_pool: Option<String>,
    /// The instance type from the node's labels, when they name one.
    pub instance_type: Option<String>,
    pub labels_from: &'a str,
    pub probe_passed: Option<bool>,
    pub received_at: String,
}

/// The most common device name, and how many devices the report lists.
fn accelerator(report: &Report) -> (Option<String>, usize) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &report.devices {
        if let Some(n) = d.name.as_deref() {
            *counts.entry(n).or_default() += 1;
        }
    }
    let name = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(name, _)| name.to_string());
    (name, report.devices.len())
}

pub fn summarize(report: &Report, verdict: &Verdict, ctx: Context<'_>) -> NodeSummary {
    let (accelerator, accelerator_count) = accelerator(report);
    NodeSummary {
        node: ctx.node.to_string(),
        report_id: report.id.clone(),
        received_at: ctx.received_at,
        created_at: report.created_at.clone(),
        passed: verdict.passed,
        probe_passed: ctx.probe_passed,
        instance_type: ctx
            .instance_type
            .or_else(|| report.host.instance_type.clone()),
        node_pool: ctx.node_pool,
        accelerator,
        accelerator_count,
        checks: verdict.checks.len(),
        failing: verdict
            .failures()
            .map(|c| FailingCheck {
                id: c.id.clone(),
                device: c.device.clone(),
                message: c.message.clone(),
            })
            .collect(),
        warned: verdict
            .checks
            .iter()
            .filter(|c| c.status == Status::Warn)
            .map(|c| c.id.clone())
            .collect(),
        perf: verdict
            .checks
            .iter()
            .filter(|c| c.id.starts_with("perf.") && c.status != Status::Skip)
            .map(|c| PerfCheck {
                id: c.id.clone(),
                status: c.status,
                device: c.device.clone(),
                expected: c.expected.clone(),
                observed: c.observed.clone(),
            })
            .collect(),
        figures: figures(&report.benchmarks),
        labels_from: ctx.labels_from.to_string(),
    }
}

/// Most figures kept per report: a trn2.48xlarge's 128 NeuronCores with two copies each,
/// twice over. The figures become metric series, so a report must not make thousands.
const MAX_FIGURES: usize = 512;

/// Whether `device` is one accelprobe names (`cpu`, `cuda:N`, `neuron:N`): only those become
/// metric labels.
fn is_device_name(device: &str) -> bool {
    let index = |rest: &str| {
        !rest.is_empty() && rest.len() <= 4 && rest.bytes().all(|b| b.is_ascii_digit())
    };
    device == "cpu"
        || device.strip_prefix("cuda:").is_some_and(index)
        || device.strip_prefix("neuron:").is_some_and(index)
}

/// The best throughput per kernel, dtype and device (implementations and sizes collapse into
/// their best), for devices named as accelprobe names them, at most [`MAX_FIGURES`].
fn figures(benchmarks: &[crate::report::Benchmark]) -> Vec<Figure> {
    let mut best: BTreeMap<(&str, Option<&str>, &str), &crate::report::Benchmark> = BTreeMap::new();
    for b in benchmarks {
        if !b.throughput.value.is_finite() || !is_device_name(&b.device) {
            continue;
        }
        let key = (
            b.kernel.as_str(),
            b.dtype.map(|d| d.as_str()),
            b.device.as_str(),
        );
        let slot = best.entry(key).or_insert(b);
        if b.throughput.value > slot.throughput.value {
            *slot = b;
        }
    }
    best.into_values()
        .take(MAX_FIGURES)
        .map(|b| Figure {
            kernel: b.kernel.as_str().to_string(),
            dtype: b.dtype.map(|d| d.as_str().to_string()),
            device: b.device.clone(),
            device_name: b.device_name.clone(),
            value: b.throughput.value,
            unit: b.throughput.unit.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Benchmark, Kernel};

    fn bench(device: &str, implementation: &str, value: f64) -> Benchmark {
        let mut b: Benchmark = serde_json::from_value(serde_json::json!({
            "kernel": "copy", "dtype": null, "device": device, "device_name": "X",
            "implementation": implementation, "size": {}, "warmup_iterations": 0,
            "iterations": 1, "samples_s": [1.0],
            "stats": {"median_s": 1.0, "p10_s": 1.0, "p90_s": 1.0, "mean_s": 1.0,
                      "min_s": 1.0, "max_s": 1.0, "cv": 0.0},
            "throughput": {"value": 1.0, "unit": "GB/s"},
            "correctness": {"passed": true, "bound": 0.0, "method": "m", "elements_checked": 1}
        }))
        .unwrap();
        b.throughput.value = value;
        b.kernel = Kernel::Copy;
        b
    }

    #[test]
    fn figures_are_the_best_per_device_for_real_device_names_only() {
        let benchmarks = vec![
            bench("cuda:0", "a", 100.0),
            bench("cuda:0", "b", 300.0),
            bench("cuda:1", "a", 200.0),
            bench("d\"; drop", "a", 1.0),
            bench("cuda:", "a", 1.0),
            bench("neuron:12345", "a", 1.0),
            bench("cpu", "a", f64::NAN),
        ];
        let got: Vec<(String, f64)> = figures(&benchmarks)
            .into_iter()
            .map(|f| (f.device, f.value))
            .collect();
        assert_eq!(got, [("cuda:0".into(), 300.0), ("cuda:1".into(), 200.0)]);
    }

    #[test]
    fn a_report_cannot_make_thousands_of_series() {
        let benchmarks: Vec<Benchmark> = (0..3000)
            .map(|i| bench(&format!("neuron:{i}"), "a", 1.0))
            .collect();
        assert_eq!(figures(&benchmarks).len(), MAX_FIGURES);
    }
}
