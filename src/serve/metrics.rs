//! `/metrics` in the Prometheus text format (through the `prometheus-client` crate, which does
//! the escaping and the exposition rules). Per-node gauges are built from the latest summaries
//! at scrape time; the request counters live for the life of the process, as Prometheus
//! counters do.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::store::NodeSummary;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Why a report was refused, as the `reason` label spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Unauthorized,
    TooLarge,
    Invalid,
    Conflict,
    Unavailable,
}

impl Rejection {
    const ALL: [Rejection; 5] = [
        Rejection::Unauthorized,
        Rejection::TooLarge,
        Rejection::Invalid,
        Rejection::Conflict,
        Rejection::Unavailable,
    ];

    fn labels(self) -> Labels {
        vec![("reason".to_string(), self.as_str().to_string())]
    }

    fn as_str(self) -> &'static str {
        match self {
            Rejection::Unauthorized => "unauthorized",
            Rejection::TooLarge => "too_large",
            Rejection::Invalid => "invalid",
            Rejection::Conflict => "conflict",
            Rejection::Unavailable => "unavailable",
        }
    }
}

/// Counters of the report endpoint.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Every POST to /v1/reports.
    pub received: Counter,
    /// New reports stored.
    pub stored: Counter,
    /// Repeats of a stored report.
    pub repeats: Counter,
    rejected: Family<Labels, Counter>,
    /// Gate actions that failed (Kubernetes API errors).
    pub gate_errors: Counter,
}

impl Default for Counters {
    /// Every rejection reason starts at 0, so `rate()` works before the first one.
    fn default() -> Self {
        let c = Counters {
            received: Counter::default(),
            stored: Counter::default(),
            repeats: Counter::default(),
            rejected: Family::default(),
            gate_errors: Counter::default(),
        };
        for why in Rejection::ALL {
            let _ = c.rejected.get_or_create(&why.labels());
        }
        c
    }
}

impl Counters {
    pub fn reject(&self, why: Rejection) {
        self.rejected.get_or_create(&why.labels()).inc();
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The exposition text for the current state.
pub fn render(latest: &[NodeSummary], counters: &Counters) -> String {
    let mut registry = Registry::with_prefix("accelprobe");
    let node_passed = Family::<Labels, Gauge>::default();
    let check_failed = Family::<Labels, Gauge>::default();
    let failing_nodes = Family::<Labels, Gauge>::default();
    let nodes = Family::<Labels, Gauge>::default();
    let gemm = Family::<Labels, FloatGauge>::default();
    let copy = Family::<Labels, FloatGauge>::default();
    let accelerators = Family::<Labels, Gauge>::default();

    let (mut pass, mut fail) = (0, 0);
    for s in latest {
        let it = s.instance_type.as_deref().unwrap_or("");
        let pool = s.node_pool.as_deref().unwrap_or("");
        node_passed
            .get_or_create(&labels(&[
                ("node", &s.node),
                ("instance_type", it),
                ("nodepool", pool),
            ]))
            .set(i64::from(s.passed));
        accelerators
            .get_or_create(&labels(&[
                ("node", &s.node),
                ("model", s.accelerator.as_deref().unwrap_or("")),
            ]))
            .set(i64::try_from(s.accelerator_count).unwrap_or(i64::MAX));
        if s.passed {
            pass += 1;
        } else {
            fail += 1;
        }
        let mut ids: Vec<&str> = s.failing.iter().map(|f| f.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            check_failed
                .get_or_create(&labels(&[("node", &s.node), ("check", id)]))
                .set(1);
            failing_nodes.get_or_create(&labels(&[("check", id)])).inc();
        }
        for f in &s.figures {
            let model = f.device_name.as_deref().unwrap_or("");
            match (f.kernel.as_str(), f.unit.as_str()) {
                ("gemm", "TFLOP/s") => {
                    gemm.get_or_create(&labels(&[
                        ("node", &s.node),
                        ("device", &f.device),
                        ("model", model),
                        ("dtype", f.dtype.as_deref().unwrap_or("")),
                    ]))
                    .set(f.value);
                }
                ("copy" | "h2d" | "d2h", "GB/s") => {
                    copy.get_or_create(&labels(&[
                        ("node", &s.node),
                        ("device", &f.device),
                        ("model", model),
                        ("kernel", &f.kernel),
                    ]))
                    .set(f.value);
                }
                _ => {}
            }
        }
    }
    nodes
        .get_or_create(&labels(&[("verdict", "pass")]))
        .set(pass);
    nodes
        .get_or_create(&labels(&[("verdict", "fail")]))
        .set(fail);

    registry.register(
        "node_passed",
        "1 when the node's latest verdict passed, 0 when it failed",
        node_passed,
    );
    registry.register(
        "node_check_failed",
        "1 for each check that failed in the node's latest verdict",
        check_failed,
    );
    registry.register(
        "check_failing_nodes",
        "Nodes whose latest verdict fails the check",
        failing_nodes,
    );
    registry.register("nodes", "Nodes by latest verdict", nodes);
    registry.register(
        "node_accelerators",
        "Accelerators the node's latest report lists",
        accelerators,
    );
    registry.register(
        "gemm_tflops",
        "Achieved GEMM TFLOP/s in the node's latest report",
        gemm,
    );
    registry.register(
        "copy_gbps",
        "Achieved copy bandwidth in GB/s (device copy, host to device, device to host)",
        copy,
    );
    registry.register(
        "reports_received",
        "Reports posted to /v1/reports, whatever became of them",
        counters.received.clone(),
    );
    registry.register(
        "reports_stored",
        "New reports committed to the store",
        counters.stored.clone(),
    );
    registry.register(
        "reports_repeated",
        "Reports received again after they were stored (answered 200, stored once)",
        counters.repeats.clone(),
    );
    registry.register(
        "reports_rejected",
        "Reports refused, by reason",
        counters.rejected.clone(),
    );
    registry.register(
        "gate_errors",
        "Kubernetes API calls of the node gate that failed",
        counters.gate_errors.clone(),
    );
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::store::{FailingCheck, Figure};

    #[test]
    fn exposition_holds_verdicts_checks_and_figures() {
        let s = NodeSummary {
            node: "gpu-\"1\"".into(),
            report_id: "r".into(),
            received_at: String::new(),
            created_at: String::new(),
            passed: false,
            probe_passed: Some(true),
            instance_type: Some("g6e.xlarge".into()),
            node_pool: Some("gpu".into()),
            accelerator: Some("NVIDIA L40S".into()),
            accelerator_count: 1,
            checks: 2,
            failing: vec![FailingCheck {
                id: "health.ecc".into(),
                device: Some("0".into()),
                message: "m".into(),
            }],
            warned: vec![],
            perf: vec![],
            figures: vec![Figure {
                kernel: "gemm".into(),
                dtype: Some("bf16".into()),
                device: "cuda:0".into(),
                device_name: Some("NVIDIA L40S".into()),
                value: 181.5,
                unit: "TFLOP/s".into(),
            }],
            labels_from: "report".into(),
        };
        let c = Counters::default();
        c.stored.inc();
        c.reject(Rejection::TooLarge);
        let text = render(&[s], &c);
        for want in [
            "accelprobe_node_passed{node=\"gpu-\\\"1\\\"\",instance_type=\"g6e.xlarge\",nodepool=\"gpu\"} 0",
            "accelprobe_node_check_failed{node=\"gpu-\\\"1\\\"\",check=\"health.ecc\"} 1",
            "accelprobe_check_failing_nodes{check=\"health.ecc\"} 1",
            "accelprobe_gemm_tflops{node=\"gpu-\\\"1\\\"\",device=\"cuda:0\",model=\"NVIDIA L40S\",dtype=\"bf16\"} 181.5",
            "accelprobe_nodes{verdict=\"fail\"} 1",
            "accelprobe_reports_stored_total 1",
            "accelprobe_reports_rejected_total{reason=\"too_large\"} 1",
            "accelprobe_reports_rejected_total{reason=\"conflict\"} 0",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
