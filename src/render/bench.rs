//! The `bench` table: one line per benchmark, then notes.

use std::fmt::Write;

use crate::report::{Benchmark, Report};

/// Seconds in the most readable unit.
fn duration(s: f64) -> String {
    if !s.is_finite() {
        "-".to_string()
    } else if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} us", s * 1e6)
    }
}

fn size(b: &Benchmark) -> String {
    let s = &b.size;
    if let Some(model) = &s.model {
        // The file name without its digest; the JSON keeps both.
        return model.split('@').next().unwrap_or(model).to_string();
    }
    if let (Some(m), Some(n), Some(k)) = (s.m, s.n, s.k) {
        return format!("{m}x{n}x{k}");
    }
    if let Some(bytes) = s.bytes {
        return format!("{} MiB", bytes / (1 << 20));
    }
    if let (Some(t), Some(d)) = (s.tokens, s.hidden) {
        return format!("{t} tok, d={d}");
    }
    "-".to_string()
}

fn throughput(b: &Benchmark) -> String {
    if b.iterations == 0 {
        return "-".to_string();
    }
    let v = b.throughput.value;
    let text = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    format!("{text} {}", b.throughput.unit)
}

fn check(b: &Benchmark) -> String {
    let c = &b.correctness;
    match (c.passed, c.max_rel_error) {
        (true, Some(e)) if c.bound == 0.0 && e == 0.0 => "ok exact".to_string(),
        (true, Some(e)) => format!("ok {e:.1e} <= {:.0e}", c.bound),
        (true, None) => "ok".to_string(),
        (false, _) => format!("FAIL: {}", c.failure.as_deref().unwrap_or("wrong result")),
    }
}

/// The table of a report's benchmarks, with `notes` below it.
pub fn table(report: &Report, notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<10} {:<5} {:<16} {:>11} {:>23} {:>6} {:>17} {:>7}  check",
        "device", "kernel", "dtype", "size", "median", "p10 .. p90", "cv", "throughput", "% peak",
    );
    for b in &report.benchmarks {
        let ran = b.iterations > 0;
        let spread = if ran {
            format!("{} .. {}", duration(b.stats.p10_s), duration(b.stats.p90_s))
        } else {
            "-".to_string()
        };
        let cv = if ran && b.stats.cv.is_finite() {
            format!("{:.1}%", b.stats.cv * 100.0)
        } else {
            "-".to_string()
        };
        let peak = b
            .fraction_of_peak
            .map_or_else(|| "-".to_string(), |f| format!("{:.1}%", f * 100.0));
        let _ = writeln!(
            out,
            "{:<8} {:<10} {:<5} {:<16} {:>11} {:>23} {:>6} {:>17} {:>7}  {}",
            b.device,
            b.kernel.as_str(),
            b.dtype.map_or("-", |d| d.as_str()),
            size(b),
            duration(b.stats.median_s),
            spread,
            cv,
            throughput(b),
            peak,
            check(b),
        );
    }
    if report.benchmarks.is_empty() {
        let _ = writeln!(out, "(no benchmark ran)");
    }
    let mut names: Vec<String> = report
        .benchmarks
        .iter()
        .filter_map(|b| b.device_name.as_ref().map(|n| format!("{}: {n}", b.device)))
        .collect();
    names.dedup();
    for n in names {
        let _ = writeln!(out, "{n}");
    }
    let mut seen = Vec::new();
    for n in notes
        .iter()
        .chain(report.benchmarks.iter().flat_map(|b| b.notes.iter()))
    {
        if !seen.contains(&n) {
            seen.push(n);
            let _ = writeln!(out, "note: {n}");
        }
    }
    out
}
