//! `accelprobe compare` output: a table for people, JSON for scripts, Markdown for pull
//! requests and CI job summaries.

use std::fmt::Write;

use crate::compare::{Comparison, MetricComparison};

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", x * 100.0)
    } else {
        "n/a".to_string()
    }
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".to_string()
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

fn interval(m: &MetricComparison) -> String {
    format!("[{}, {}]", pct(m.ci_low), pct(m.ci_high))
}

fn verdict_line(c: &Comparison) -> String {
    let s = &c.summary;
    format!(
        "{}: {} compared, {} regression(s), {} improvement(s), {} unchanged; threshold {}%, {}% confidence",
        if c.passed { "PASS" } else { "FAIL" },
        s.compared,
        s.regressions,
        s.improvements,
        s.unchanged,
        exact_percent(c.threshold),
        exact_percent(c.confidence)
    )
}

/// A fraction as the percentage it was given as (`0.05` → `5`, `0.0025` → `0.25`,
/// `0.999` → `99.9`): up to four decimals, no trailing zeros, never rounded to a whole.
fn exact_percent(x: f64) -> String {
    let s = format!("{:.4}", x * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Pretty JSON with a trailing newline.
pub fn json(c: &Comparison) -> String {
    super::pretty_json(c)
}

fn table_rows(out: &mut String, rows: &[MetricComparison]) {
    let w = rows
        .iter()
        .map(|m| m.metric.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "{:<w$}  {:>10}  {:>10}  {:<8}  {:>7}  {:<18}  DECISION",
        "METRIC", "BASELINE", "CURRENT", "UNIT", "CHANGE", "INTERVAL"
    );
    for m in rows {
        let _ = writeln!(
            out,
            "{:<w$}  {:>10}  {:>10}  {:<8}  {:>7}  {:<18}  {}",
            m.metric,
            num(m.baseline.throughput),
            num(m.current.throughput),
            m.unit,
            pct(m.change),
            interval(m),
            m.decision.as_str().to_uppercase()
        );
    }
}

/// The human-readable table.
pub fn table(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "baseline: {} ({} {}, accelprobe {})",
        c.baseline.path, c.baseline.kind, c.baseline.node, c.baseline.tool_version
    );
    for w in &c.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for n in &c.nodes {
        let _ = writeln!(out, "\nnode {} ({})", n.node, n.source);
        if !n.metrics.is_empty() {
            table_rows(&mut out, &n.metrics);
        }
        for m in &n.baseline_only {
            let _ = writeln!(out, "only in baseline: {m}");
        }
        for m in &n.current_only {
            let _ = writeln!(out, "only in current:  {m}");
        }
    }
    if let Some(overall) = &c.overall {
        let _ = writeln!(out, "\noverall ({} nodes pooled)", c.nodes.len());
        table_rows(&mut out, overall);
    }
    if !c.fleet_outliers.is_empty() {
        let _ = writeln!(
            out,
            "\nfleet outliers (robust z beyond 3.5 and beyond the threshold):"
        );
        for o in &c.fleet_outliers {
            let _ = writeln!(
                out,
                "  {} {}: {} {} against fleet median {} ({}, z {:.1}; vs baseline: {})",
                o.node,
                o.metric,
                num(o.throughput),
                o.unit,
                num(o.fleet_median),
                pct(o.deviation),
                o.robust_z,
                o.vs_baseline.as_str()
            );
        }
    }
    let _ = writeln!(out, "\n{}", verdict_line(c));
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn md_rows(out: &mut String, rows: &[MetricComparison]) {
    let _ = writeln!(
        out,
        "| metric | baseline | current | unit | change | interval | decision |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---:|---|---|");
    for m in rows {
        let decision = match m.decision {
            crate::compare::Decision::Regression => "**regression**",
            crate::compare::Decision::Improvement => "improvement",
            crate::compare::Decision::Unchanged => "unchanged",
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            md_escape(&m.metric),
            num(m.baseline.throughput),
            num(m.current.throughput),
            m.unit,
            pct(m.change),
            interval(m),
            decision
        );
    }
}

/// Markdown for a pull request comment or `$GITHUB_STEP_SUMMARY`.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## accelprobe compare: {}\n", verdict_line(c));
    let _ = writeln!(
        out,
        "Baseline `{}` ({}, node {}, accelprobe {}, driver {}, CUDA {}).\n",
        md_escape(&c.baseline.path),
        c.baseline.kind,
        md_escape(&c.baseline.node),
        c.baseline.tool_version,
        c.baseline.driver_version.as_deref().unwrap_or("n/a"),
        c.baseline.cuda_version.as_deref().unwrap_or("n/a")
    );
    if !c.warnings.is_empty() {
        let _ = writeln!(out, "> [!WARNING]");
        for w in &c.warnings {
            let _ = writeln!(out, "> - {}", md_escape(w));
        }
        let _ = writeln!(out);
    }
    for n in &c.nodes {
        let _ = writeln!(out, "### Node `{}`\n", md_escape(&n.node));
        if !n.metrics.is_empty() {
            md_rows(&mut out, &n.metrics);
            let _ = writeln!(out);
        }
        if !n.baseline_only.is_empty() || !n.current_only.is_empty() {
            for m in &n.baseline_only {
                let _ = writeln!(out, "- only in baseline: `{}`", md_escape(m));
            }
            for m in &n.current_only {
                let _ = writeln!(out, "- only in current: `{}`", md_escape(m));
            }
            let _ = writeln!(out);
        }
    }
    if let Some(overall) = &c.overall {
        let _ = writeln!(out, "### Overall ({} nodes pooled)\n", c.nodes.len());
        md_rows(&mut out, overall);
        let _ = writeln!(out);
    }
    if !c.fleet_outliers.is_empty() {
        let _ = writeln!(out, "### Fleet outliers\n");
        let _ = writeln!(
            out,
            "| node | metric | throughput | fleet median | deviation | robust z | vs baseline |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---|");
        for o in &c.fleet_outliers {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} {} | {} | {} | {:.1} | {} |",
                md_escape(&o.node),
                md_escape(&o.metric),
                num(o.throughput),
                o.unit,
                num(o.fleet_median),
                pct(o.deviation),
                o.robust_z,
                o.vs_baseline.as_str()
            );
        }
        let _ = writeln!(out);
    }
    out
}
