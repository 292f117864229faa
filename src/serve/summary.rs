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
        figures: report
            .benchmarks
            .iter()
            .filter(|b| b.throughput.value.is_finite())
            .map(|b| Figure {
                kernel: b.kernel.as_str().to_string(),
                dtype: b.dtype.map(|d| d.as_str().to_string()),
                device: b.device.clone(),
                device_name: b.device_name.clone(),
                value: b.throughput.value,
                unit: b.throughput.unit.clone(),
            })
            .collect(),
        labels_from: ctx.labels_from.to_string(),
    }
}
