//! `accelprobe compare`: the performance-regression verdict between a baseline (a report with
//! benchmarks, or a baseline file) and one or more current reports.
//!
//! A metric is one kernel × dtype × device model × problem size × implementation. For every
//! metric on both sides, the ratio current throughput / baseline throughput is estimated as
//! the ratio of the median per-iteration times, with a percentile-bootstrap confidence
//! interval over the per-iteration samples ([`stats::bootstrap_ratio_of_medians`], seeded,
//! so the same inputs and seed give the same answer). The decision:
//!
//! - **regression** when the whole interval lies below `1 − threshold`,
//! - **improvement** when the whole interval lies above `1 + threshold`,
//! - **unchanged** otherwise (including "too noisy to tell").
//!
//! With several current reports (a fleet), each is compared with the baseline on its own
//! (per node), all of them pooled (overall), and the nodes' medians against each other: a
//! node whose robust z-score (median absolute deviation) is beyond 3.5 *and* which is more
//! than the threshold away from the fleet median is an outlier.
//!
//! Pure functions of their inputs: nothing here touches hardware or the clock.

pub mod baseline;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::report::{Dtype, Kernel, ProblemSize, Report};
pub use baseline::{Baseline, BaselineError, BASELINE_KIND, BASELINE_VERSION};

/// `kind` of the JSON that `compare --format json` prints.
pub const COMPARISON_KIND: &str = "accelprobe-comparison";
/// Robust z-score beyond which a node is a fleet outlier (Iglewicz and Hoaglin).
pub const OUTLIER_Z: f64 = 3.5;
/// Fewer samples than this on a side: no decision (unchanged), and a warning.
pub const FEW_SAMPLES: usize = 5;

/// Identity of a metric. Its text form, used by `--metric` patterns and in output, is
/// `kernel/dtype/device model/size/implementation`, e.g.
/// `gemm/bf16/NVIDIA L40S/m=4096,n=4096,k=4096/accelprobe-ptx` (dtype `-` for copies).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MetricKey {
    pub kernel: String,
    pub dtype: Option<String>,
    pub device_model: String,
    pub size: String,
    pub implementation: String,
}

impl fmt::Display for MetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}",
            self.kernel,
            self.dtype.as_deref().unwrap_or("-"),
            self.device_model,
            self.size,
            self.implementation
        )
    }
}

/// The problem size as `name=value` pairs in a fixed order (`m=1024,n=1024,k=1024`,
/// `bytes=67108864`, `tokens=128,hidden=512,heads=8,ffn=2048`).
pub fn size_text(s: &ProblemSize) -> String {
    let fields = [
        ("m", s.m),
        ("n", s.n),
        ("k", s.k),
        ("bytes", s.bytes),
        ("tokens", s.tokens),
        ("hidden", s.hidden),
        ("heads", s.heads),
        ("ffn", s.ffn),
    ];
    let mut parts: Vec<String> = fields
        .iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n}={v}")))
        .collect();
    if let Some(model) = &s.model {
        parts.push(format!("model={model}"));
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

/// One metric of one run: the samples of every device of that model, in the rounds they
/// were taken in (every device's rounds, one after the other).
#[derive(Debug, Clone)]
pub struct Metric {
    pub key: MetricKey,
    pub kernel: Kernel,
    pub dtype: Option<Dtype>,
    pub size: ProblemSize,
    pub unit: String,
    /// Work per iteration: throughput = work / seconds.
    pub work: f64,
    pub devices: Vec<String>,
    /// Host threads it ran on (CPU backend), when recorded.
    pub threads: Option<u32>,
    /// Per-iteration seconds, grouped in rounds (a benchmark without rounds is one).
    pub rounds: Vec<Vec<f64>>,
}

impl Metric {
    /// Every sample, rounds pooled.
    pub fn samples(&self) -> Vec<f64> {
        self.rounds.concat()
    }

    pub fn sample_count(&self) -> usize {
        self.rounds.iter().map(Vec::len).sum()
    }
}

/// Split `samples` into the rounds `sizes` gives; one round when the sizes do not add up.
pub fn split_rounds(samples: &[f64], sizes: &[u32]) -> Vec<Vec<f64>> {
    let total: usize = sizes.iter().map(|&s| s as usize).sum();
    if sizes.len() < 2 || total != samples.len() {
        return vec![samples.to_vec()];
    }
    let mut rest = samples;
    sizes
        .iter()
        .map(|&n| {
            let (round, tail) = rest.split_at(n as usize);
            rest = tail;
            round.to_vec()
        })
        .collect()
}

/// One side of a comparison, read from a report or a baseline file.
#[derive(Debug, Clone)]
pub struct Run {
    /// The path it came from, as given.
    pub source: String,
    /// `report` or `baseline`.
    pub kind: &'static str,
    /// Kubernetes node name, else hostname, else the source path.
    pub node: String,
    pub tool_version: String,
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
    pub created_at: String,
    pub metrics: Vec<Metric>,
    /// Benchmarks left out (failed correctness, no samples), one line each.
    pub skipped: Vec<String>,
}

impl Run {
    /// The metrics of a report's benchmarks.
    pub fn from_report(report: &Report, source: &str) -> Run {
        let node = report
            .host
            .kubernetes
            .as_ref()
            .and_then(|k| k.node_name.clone())
            .or_else(|| report.host.hostname.clone())
            .unwrap_or_else(|| source.to_string());
        let mut metrics: BTreeMap<MetricKey, Metric> = BTreeMap::new();
        let mut skipped = Vec::new();
        for b in &report.benchmarks {
            let dtype = b
                .dtype
                .map(|d| format!(" {}", d.as_str()))
                .unwrap_or_default();
            let what = format!("{}{dtype} on {}", b.kernel.as_str(), b.device);
            let rounds = stats::clean_rounds(&split_rounds(&b.samples_s, &b.rounds));
            let work = b.throughput.value * b.stats.median_s;
            if !b.correctness.passed {
                skipped.push(format!("{what}: failed its correctness check"));
                continue;
            }
            if rounds.is_empty() || !(work.is_finite() && work > 0.0) {
                skipped.push(format!("{what}: no usable samples"));
                continue;
            }
            let key = MetricKey {
                kernel: b.kernel.as_str().to_string(),
                dtype: b.dtype.map(|d| d.as_str().to_string()),
                device_model: b
                    .device_name
                    .clone()
                    .unwrap_or_else(|| "unknown".to_string()),
                size: size_text(&b.size),
                implementation: b.implementation.clone(),
            };
            let m = metrics.entry(key.clone()).or_insert_with(|| Metric {
                key,
                kernel: b.kernel,
                dtype: b.dtype,
                size: b.size.clone(),
                unit: b.throughput.unit.clone(),
                work,
                devices: Vec::new(),
                threads: b.threads,
                rounds: Vec::new(),
            });
            if m.devices.contains(&b.device) {
                // Pooling a benchmark with itself would double its weight and narrow the
                // interval for nothing.
                skipped.push(format!(
                    "{what}: the same benchmark (device, size, implementation) again; only the first is used"
                ));
                continue;
            }
            m.devices.push(b.device.clone());
            m.rounds.extend(rounds);
        }
        Run {
            source: source.to_string(),
            kind: "report",
            node,
            tool_version: report.tool.version.clone(),
            driver_version: report.driver_version().map(str::to_string),
            cuda_version: report.cuda_version().map(str::to_string),
            created_at: report.created_at.clone(),
            metrics: metrics.into_values().collect(),
            skipped,
        }
    }

    /// The metrics of a baseline file.
    pub fn from_baseline(b: &Baseline, source: &str) -> Run {
        let (metrics, empty): (Vec<Metric>, Vec<Metric>) = b
            .metrics
            .iter()
            .map(|m| Metric {
                key: MetricKey {
                    kernel: m.kernel.as_str().to_string(),
                    dtype: m.dtype.map(|d| d.as_str().to_string()),
                    device_model: m.device_model.clone(),
                    size: size_text(&m.size),
                    implementation: m.implementation.clone(),
                },
                kernel: m.kernel,
                dtype: m.dtype,
                size: m.size.clone(),
                unit: m.unit.clone(),
                work: m.work_per_iteration,
                devices: m.devices.clone(),
                threads: m.threads,
                rounds: stats::clean_rounds(&split_rounds(&m.samples_s, &m.rounds)),
            })
            .partition(|m| !m.rounds.is_empty() && m.work.is_finite() && m.work > 0.0);
        Run {
            source: source.to_string(),
            kind: "baseline",
            node: b.node.clone().unwrap_or_else(|| source.to_string()),
            tool_version: b.tool.version.clone(),
            driver_version: b.driver_version.clone(),
            cuda_version: b.cuda_version.clone(),
            created_at: b.report_created_at.clone(),
            metrics,
            skipped: empty
                .iter()
                .map(|m| format!("{}: no usable samples in the baseline", m.key))
                .collect(),
        }
    }

    /// Parse a report or a baseline file (told apart by `kind`). Errors say what the text
    /// is not, and what to do.
    pub fn parse(text: &str, source: &str) -> Result<Run, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "{source}: invalid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            )
        })?;
        if value.get("kind").and_then(|k| k.as_str()) == Some(BASELINE_KIND) {
            let b = Baseline::from_json_value(value).map_err(|e| format!("{source}: {e}"))?;
            return Ok(Run::from_baseline(&b, source));
        }
        let report = Report::from_json_value(value).map_err(|e| format!("{source}: {e}"))?;
        if report.benchmarks.is_empty() {
            return Err(format!(
                "{source}: the report has no benchmarks; make it with 'accelprobe bench --format json' or 'accelprobe bench --save-baseline FILE'"
            ));
        }
        Ok(Run::from_report(&report, source))
    }
}

/// How a comparison is judged.
#[derive(Debug, Clone)]
pub struct Options {
    /// Relative change that matters, e.g. 0.05 for 5 %.
    pub threshold: f64,
    /// Confidence of the interval, e.g. 0.95.
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
    /// `--metric` patterns; empty: every metric.
    pub patterns: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threshold: 0.05,
            confidence: 0.95,
            resamples: 2000,
            seed: 1,
            patterns: Vec::new(),
        }
    }
}

/// Does the metric's text form match a `--metric` pattern? `*` matches any run of
/// characters (slashes included); a pattern without `*` matches when it is a substring.
/// Case-insensitive.
pub fn pattern_matches(pattern: &str, key: &str) -> bool {
    let (p, k) = (pattern.to_lowercase(), key.to_lowercase());
    if !p.contains('*') {
        return k.contains(&p);
    }
    let parts: Vec<&str> = p.split('*').collect();
    let mut rest = k.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

/// The verdict on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Regression,
    Improvement,
    Unchanged,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Regression => "regression",
            Decision::Improvement => "improvement",
            Decision::Unchanged => "unchanged",
        }
    }
}

/// Decide from the interval of the throughput ratio (current / baseline).
pub fn decide(low: f64, high: f64, threshold: f64) -> Decision {
    if high < 1.0 - threshold {
        Decision::Regression
    } else if low > 1.0 + threshold {
        Decision::Improvement
    } else {
        Decision::Unchanged
    }
}

/// One side of a metric comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub median_s: f64,
    /// Throughput at the median time.
    pub throughput: f64,
    pub samples: usize,
    /// Rounds the samples came in (1 for a run without rounds: GPU, Neuron, older reports).
    pub rounds: usize,
}

/// One metric, baseline against current.
#[derive(Debug, Clone, Serialize)]
pub struct MetricComparison {
    /// The metric's text form (see [`MetricKey`]).
    pub metric: String,
    pub key: MetricKey,
    pub unit: String,
    pub baseline: Side,
    pub current: Side,
    /// Relative change of throughput at the medians: current / baseline − 1.
    pub change: f64,
    /// Confidence interval of the change (same scale as `change`).
    pub ci_low: f64,
    pub ci_high: f64,
    pub decision: Decision,
}

/// One current report against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct NodeComparison {
    pub node: String,
    pub source: String,
    pub metrics: Vec<MetricComparison>,
    /// Metrics only the baseline has.
    pub baseline_only: Vec<String>,
    /// Metrics only this report has.
    pub current_only: Vec<String>,
}

/// A node whose median is far from the fleet's.
#[derive(Debug, Clone, Serialize)]
pub struct Outlier {
    pub metric: String,
    pub node: String,
    pub throughput: f64,
    pub fleet_median: f64,
    pub unit: String,
    /// Relative distance from the fleet median.
    pub deviation: f64,
    pub robust_z: f64,
    /// `slow` or `fast`.
    pub direction: String,
    /// The same node's decision against the baseline.
    pub vs_baseline: Decision,
}

/// Where one input came from.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    pub path: String,
    pub kind: String,
    pub node: String,
    pub tool_version: String,
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
    pub created_at: String,
    pub metrics: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl SourceInfo {
    fn of(r: &Run) -> Self {
        SourceInfo {
            path: r.source.clone(),
            kind: r.kind.to_string(),
            node: r.node.clone(),
            tool_version: r.tool_version.clone(),
            driver_version: r.driver_version.clone(),
            cuda_version: r.cuda_version.clone(),
            created_at: r.created_at.clone(),
            metrics: r.metrics.len(),
            skipped: r.skipped.clone(),
        }
    }
}

/// Counts behind the exit code.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub compared: usize,
    pub regressions: usize,
    pub improvements: usize,
    pub unchanged: usize,
    pub baseline_only: usize,
    pub current_only: usize,
    pub slow_outliers: usize,
    pub fast_outliers: usize,
}

/// The whole answer of `compare`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub kind: &'static str,
    /// False when any metric regressed (on any node or overall) or a node is a slow outlier.
    pub passed: bool,
    pub threshold: f64,
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
    pub baseline: SourceInfo,
    pub current: Vec<SourceInfo>,
    /// Differences that make the numbers harder to read: tool, driver, CUDA, device model,
    /// skipped benchmarks, few samples.
    pub warnings: Vec<String>,
    pub nodes: Vec<NodeComparison>,
    /// All current reports pooled, per metric (only with more than one current report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overall: Option<Vec<MetricComparison>>,
    pub fleet_outliers: Vec<Outlier>,
    pub summary: Summary,
}

fn compare_metric(base: &Metric, cur: &[Vec<f64>], opts: &Options) -> MetricComparison {
    let key = base.key.to_string();
    let bm = stats::median(&base.samples());
    let cm = stats::median(&cur.concat());
    let (base_n, cur_n) = (base.sample_count(), cur.iter().map(Vec::len).sum::<usize>());
    let seed = opts.seed ^ stats::hash_str(&key);
    let ci =
        stats::bootstrap_ratio_of_medians(&base.rounds, cur, opts.resamples, opts.confidence, seed)
            .unwrap_or(stats::Interval {
                low: f64::NAN,
                high: f64::NAN,
            });
    let ratio = bm / cm;
    MetricComparison {
        metric: key,
        key: base.key.clone(),
        unit: base.unit.clone(),
        baseline: Side {
            median_s: bm,
            throughput: base.work / bm,
            samples: base_n,
            rounds: base.rounds.len(),
        },
        current: Side {
            median_s: cm,
            throughput: base.work / cm,
            samples: cur_n,
            rounds: cur.len(),
        },
        change: ratio - 1.0,
        ci_low: ci.low - 1.0,
        ci_high: ci.high - 1.0,
        // A bootstrap of one or two samples has no spread to show: its interval is narrow,
        // not wide, and would decide on noise.
        decision: if base_n < FEW_SAMPLES || cur_n < FEW_SAMPLES {
            Decision::Unchanged
        } else {
            decide(ci.low, ci.high, opts.threshold)
        },
    }
}

fn differs(what: &str, base: &Option<String>, cur: &Option<String>, node: &str) -> Option<String> {
    (base != cur).then(|| {
        format!(
            "{what} differs on {node}: baseline {}, current {}",
            base.as_deref().unwrap_or("unknown"),
            cur.as_deref().unwrap_or("unknown")
        )
    })
}

/// Compare `base` with each of `current`. `Err` (bad input, exit 2) when nothing is
/// comparable.
pub fn compare(base: &Run, current: &[Run], opts: &Options) -> Result<Comparison, String> {
    if current.is_empty() {
        return Err("no current report given".to_string());
    }
    let selected = |m: &Metric| {
        opts.patterns.is_empty()
            || opts
                .patterns
                .iter()
                .any(|p| pattern_matches(p, &m.key.to_string()))
    };
    let base_metrics: BTreeMap<&MetricKey, &Metric> = base
        .metrics
        .iter()
        .filter(|m| selected(m))
        .map(|m| (&m.key, m))
        .collect();

    // Node names, made unique by the source path when two reports share one.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in current {
        *seen.entry(r.node.as_str()).or_default() += 1;
    }
    let node_name = |r: &Run| {
        if seen.get(r.node.as_str()).copied().unwrap_or(0) > 1 {
            format!("{} ({})", r.node, r.source)
        } else {
            r.node.clone()
        }
    };

    let mut warnings = Vec::new();
    for s in &base.skipped {
        warnings.push(format!("baseline {}: skipped {s}", base.source));
    }
    let base_models: BTreeSet<&str> = base
        .metrics
        .iter()
        .map(|m| m.key.device_model.as_str())
        .collect();
    let mut nodes = Vec::new();
    for r in current {
        let node = node_name(r);
        for s in &r.skipped {
            warnings.push(format!("{node}: skipped {s}"));
        }
        if r.tool_version != base.tool_version {
            warnings.push(format!(
                "tool version differs on {node}: baseline accelprobe {}, current {}",
                base.tool_version, r.tool_version
            ));
        }
        warnings.extend(differs(
            "driver version",
            &base.driver_version,
            &r.driver_version,
            &node,
        ));
        warnings.extend(differs(
            "CUDA version",
            &base.cuda_version,
            &r.cuda_version,
            &node,
        ));
        let models: BTreeSet<&str> = r
            .metrics
            .iter()
            .map(|m| m.key.device_model.as_str())
            .collect();
        if models != base_models {
            let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
            warnings.push(format!(
                "device model differs on {node}: baseline {}, current {}",
                list(&base_models),
                list(&models)
            ));
        }
        let cur_metrics: BTreeMap<&MetricKey, &Metric> = r
            .metrics
            .iter()
            .filter(|m| selected(m))
            .map(|m| (&m.key, m))
            .collect();
        let mut metrics = Vec::new();
        let mut baseline_only = Vec::new();
        for (k, b) in &base_metrics {
            match cur_metrics.get(k) {
                Some(c) => {
                    if let (Some(bt), Some(ct)) = (b.threads, c.threads) {
                        if bt != ct {
                            warnings.push(format!(
                                "{node}: {k} ran on {bt} threads in the baseline and {ct} now; \
                                 CPU results scale with the threads (RAYON_NUM_THREADS, CPU limits)"
                            ));
                        }
                    }
                    let m = compare_metric(b, &c.rounds, opts);
                    let (base_n, cur_n) = (m.baseline.samples, m.current.samples);
                    if base_n < FEW_SAMPLES || cur_n < FEW_SAMPLES {
                        warnings.push(format!(
                            "{node}: {k} has too few samples to decide (baseline {base_n}, \
                             current {cur_n}, {FEW_SAMPLES} needed on each side): reported as \
                             unchanged"
                        ));
                    }
                    metrics.push(m);
                }
                None => baseline_only.push(k.to_string()),
            }
        }
        let current_only = cur_metrics
            .keys()
            .filter(|k| !base_metrics.contains_key(*k))
            .map(|k| k.to_string())
            .collect();
        nodes.push(NodeComparison {
            node,
            source: r.source.clone(),
            metrics,
            baseline_only,
            current_only,
        });
    }
    if nodes.iter().all(|n| n.metrics.is_empty()) {
        let hint = if opts.patterns.is_empty() {
            String::new()
        } else {
            format!(" matching --metric {}", opts.patterns.join(", "))
        };
        return Err(format!(
            "nothing comparable: no metric{hint} (kernel/dtype/device model/size/implementation) is in both the baseline and the current report; baseline has {}, current has {}",
            base.metrics.len(),
            current.iter().map(|r| r.metrics.len()).sum::<usize>()
        ));
    }

    // Overall: every current report's samples pooled, per metric.
    let overall = (current.len() > 1).then(|| {
        base_metrics
            .iter()
            .filter_map(|(k, b)| {
                let pooled: Vec<Vec<f64>> = current
                    .iter()
                    .flat_map(|r| r.metrics.iter().filter(|m| &m.key == *k))
                    .flat_map(|m| m.rounds.iter().cloned())
                    .collect();
                (!pooled.is_empty()).then(|| compare_metric(b, &pooled, opts))
            })
            .collect::<Vec<_>>()
    });

    // Fleet outliers: per metric, the nodes' current medians against each other.
    let mut fleet_outliers = Vec::new();
    if nodes.len() >= 3 {
        let mut per_metric: BTreeMap<&str, Vec<(&NodeComparison, &MetricComparison)>> =
            BTreeMap::new();
        for n in &nodes {
            for m in &n.metrics {
                per_metric
                    .entry(m.metric.as_str())
                    .or_default()
                    .push((n, m));
            }
        }
        for (metric, rows) in per_metric {
            let values: Vec<f64> = rows.iter().map(|(_, m)| m.current.throughput).collect();
            let fleet_median = stats::median(&values);
            let Some(z) = stats::robust_z(&values, fleet_median.abs() * 1e-9) else {
                continue;
            };
            for ((n, m), z) in rows.iter().zip(z) {
                let deviation = m.current.throughput / fleet_median - 1.0;
                if z.abs() > OUTLIER_Z && deviation.abs() > opts.threshold {
                    fleet_outliers.push(Outlier {
                        metric: metric.to_string(),
                        node: n.node.clone(),
                        throughput: m.current.throughput,
                        fleet_median,
                        unit: m.unit.clone(),
                        deviation,
                        robust_z: z,
                        direction: if z < 0.0 { "slow" } else { "fast" }.to_string(),
                        vs_baseline: m.decision,
                    });
                }
            }
        }
    }

    let mut summary = Summary::default();
    let all = nodes
        .iter()
        .flat_map(|n| n.metrics.iter())
        .chain(overall.iter().flatten());
    for m in all {
        summary.compared += 1;
        match m.decision {
            Decision::Regression => summary.regressions += 1,
            Decision::Improvement => summary.improvements += 1,
            Decision::Unchanged => summary.unchanged += 1,
        }
    }
    summary.baseline_only = nodes.iter().map(|n| n.baseline_only.len()).sum();
    summary.current_only = nodes.iter().map(|n| n.current_only.len()).sum();
    summary.slow_outliers = fleet_outliers
        .iter()
        .filter(|o| o.direction == "slow")
        .count();
    summary.fast_outliers = fleet_outliers.len() - summary.slow_outliers;
    let one_round: BTreeSet<&str> = nodes
        .iter()
        .flat_map(|n| n.metrics.iter())
        .filter(|m| m.baseline.rounds < 2 || m.current.rounds < 2)
        .map(|m| m.metric.as_str())
        .collect();
    if let Some(first) = one_round.first() {
        warnings.push(format!(
            "{} metric(s) have one round of samples on a side (first: {first}): their interval \
             shows the noise within one run only, not between runs (see docs/compare.md)",
            one_round.len()
        ));
    }
    warnings.dedup();

    Ok(Comparison {
        kind: COMPARISON_KIND,
        passed: summary.regressions == 0 && summary.slow_outliers == 0,
        threshold: opts.threshold,
        confidence: opts.confidence,
        resamples: opts.resamples,
        seed: opts.seed,
        baseline: SourceInfo::of(base),
        current: current.iter().map(SourceInfo::of).collect(),
        warnings,
        nodes,
        overall,
        fleet_outliers,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(node: &str, samples: &[(&str, Vec<f64>)]) -> Run {
        Run {
            source: format!("{node}.json"),
            kind: "report",
            node: node.to_string(),
            tool_version: "0.1.0".into(),
            driver_version: Some("550.54.15".into()),
            cuda_version: Some("12.4".into()),
            created_at: "2025-01-01T00:00:00Z".into(),
            metrics: samples
                .iter()
                .map(|(name, s)| Metric {
                    key: MetricKey {
                        kernel: name.to_string(),
                        dtype: None,
                        device_model: "GPU X".into(),
                        size: "bytes=1".into(),
                        implementation: "impl".into(),
                    },
                    kernel: Kernel::Copy,
                    dtype: None,
                    size: ProblemSize::default(),
                    unit: "GB/s".into(),
                    work: 1.0,
                    devices: vec!["cuda:0".into()],
                    threads: None,
                    rounds: vec![s.clone()],
                })
                .collect(),
            skipped: vec![],
        }
    }

    /// `n` samples around `center` with relative spread `spread`, deterministic.
    fn noisy(center: f64, spread: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = stats::SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                center * (1.0 + spread * (2.0 * u - 1.0))
            })
            .collect()
    }

    #[test]
    fn decisions_at_the_edges() {
        assert_eq!(decide(0.90, 0.94, 0.05), Decision::Regression);
        assert_eq!(decide(0.90, 0.96, 0.05), Decision::Unchanged);
        assert_eq!(decide(1.06, 1.2, 0.05), Decision::Improvement);
        assert_eq!(decide(1.04, 1.2, 0.05), Decision::Unchanged);
        assert_eq!(decide(f64::NAN, f64::NAN, 0.05), Decision::Unchanged);
    }

    #[test]
    fn samples_split_into_their_rounds() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(
            split_rounds(&s, &[2, 3]),
            vec![vec![1.0, 2.0], vec![3.0, 4.0, 5.0]]
        );
        // No rounds, one round, or sizes that do not add up: one round of everything.
        for sizes in [&[][..], &[5], &[2, 2], &[4, 4]] {
            assert_eq!(split_rounds(&s, sizes), vec![s.to_vec()], "{sizes:?}");
        }
    }

    #[test]
    fn identical_samples_are_unchanged_with_a_tight_interval() {
        let s = noisy(1e-3, 0.01, 100, 1);
        let c = compare(
            &run("a", &[("copy", s.clone())]),
            &[run("b", &[("copy", s)])],
            &Options::default(),
        )
        .unwrap();
        let m = &c.nodes[0].metrics[0];
        assert_eq!(m.decision, Decision::Unchanged);
        assert_eq!(m.change, 0.0);
        assert!(m.ci_low <= 0.0 && m.ci_high >= 0.0);
        assert!(m.ci_high - m.ci_low < 0.01, "{m:?}");
        assert!(c.passed);
    }

    #[test]
    fn twenty_percent_slower_with_low_noise_is_a_regression() {
        let base = noisy(1e-3, 0.01, 50, 1);
        let cur = noisy(1.25e-3, 0.01, 50, 2);
        let c = compare(
            &run("a", &[("copy", base)]),
            &[run("b", &[("copy", cur)])],
            &Options::default(),
        )
        .unwrap();
        let m = &c.nodes[0].metrics[0];
        assert_eq!(m.decision, Decision::Regression);
        assert!((m.change + 0.2).abs() < 0.01, "{m:?}");
        assert!(!c.passed);
    }

    #[test]
    fn noisy_overlap_is_unchanged() {
        // 6 % slower at the medians, but ±40 % noise on few samples: not provable.
        let base = noisy(1e-3, 0.4, 12, 1);
        let cur = noisy(1.06e-3, 0.4, 12, 2);
        let c = compare(
            &run("a", &[("copy", base)]),
            &[run("b", &[("copy", cur)])],
            &Options::default(),
        )
        .unwrap();
        let m = &c.nodes[0].metrics[0];
        assert_eq!(m.decision, Decision::Unchanged, "{m:?}");
        assert!(m.ci_high - m.ci_low > 0.1, "{m:?}");
    }

    #[test]
    fn missing_metrics_are_listed_and_nothing_comparable_is_an_error() {
        let s = noisy(1e-3, 0.01, 20, 1);
        let c = compare(
            &run("a", &[("copy", s.clone()), ("gemm", s.clone())]),
            &[run("b", &[("copy", s.clone()), ("inference", s.clone())])],
            &Options::default(),
        )
        .unwrap();
        assert_eq!(c.nodes[0].baseline_only.len(), 1);
        assert!(c.nodes[0].baseline_only[0].starts_with("gemm/"));
        assert!(c.nodes[0].current_only[0].starts_with("inference/"));
        let e = compare(
            &run("a", &[("gemm", s.clone())]),
            &[run("b", &[("copy", s)])],
            &Options::default(),
        )
        .unwrap_err();
        assert!(e.contains("nothing comparable"), "{e}");
    }

    #[test]
    fn metric_patterns() {
        let k = "gemm/bf16/NVIDIA L40S/m=4096,n=4096,k=4096/cublas";
        assert!(pattern_matches("gemm/*", k));
        assert!(pattern_matches("*/bf16/*", k));
        assert!(pattern_matches("*cublas", k));
        assert!(pattern_matches("l40s", k));
        assert!(!pattern_matches("copy/*", k));
        assert!(!pattern_matches("*/f16/*", k));
        assert!(pattern_matches("*", k));
    }

    #[test]
    fn fleet_outlier_is_flagged_and_tight_fleet_is_not() {
        let base = run("base", &[("copy", noisy(1e-3, 0.01, 30, 1))]);
        let mut fleet: Vec<Run> = (0..5)
            .map(|i| {
                run(
                    &format!("node-{i}"),
                    &[(
                        "copy",
                        noisy(1e-3 * (1.0 + 0.002 * i as f64), 0.01, 30, 10 + i),
                    )],
                )
            })
            .collect();
        let c = compare(&base, &fleet, &Options::default()).unwrap();
        assert!(c.fleet_outliers.is_empty(), "{:?}", c.fleet_outliers);
        assert_eq!(c.nodes.len(), 5);
        assert!(c.overall.is_some());
        assert!(c.passed);
        // node-5 takes 40 % longer.
        fleet.push(run("node-5", &[("copy", noisy(1.4e-3, 0.01, 30, 99))]));
        let c = compare(&base, &fleet, &Options::default()).unwrap();
        assert_eq!(c.fleet_outliers.len(), 1, "{:?}", c.fleet_outliers);
        let o = &c.fleet_outliers[0];
        assert_eq!((o.node.as_str(), o.direction.as_str()), ("node-5", "slow"));
        assert_eq!(o.vs_baseline, Decision::Regression);
        assert!(!c.passed);
    }

    #[test]
    fn version_differences_are_warned() {
        let s = noisy(1e-3, 0.01, 20, 1);
        let base = run("a", &[("copy", s.clone())]);
        let mut cur = run("b", &[("copy", s)]);
        cur.driver_version = Some("560.28.03".into());
        cur.tool_version = "0.2.0".into();
        let c = compare(&base, &[cur], &Options::default()).unwrap();
        let w = c.warnings.join("\n");
        assert!(w.contains("driver version differs"), "{w}");
        assert!(w.contains("tool version differs"), "{w}");
        assert!(!w.contains("CUDA version"), "{w}");
    }
}
