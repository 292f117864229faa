//! The verdict as a table for people (JSON is the verdict document itself).

use std::fmt::Write;

use super::{fit, fit_tail};
use crate::verify::verdict::{Status, Verdict};

/// One line per check (failures first within the registry order kept), then requirements,
/// conflicts and warnings.
pub fn table(v: &Verdict) -> String {
    let mut out = String::new();
    let node = v
        .node
        .as_deref()
        .map(|n| format!(" node {n},"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "accelprobe verify: {} ({} checks: {} failed, {} warned, {} skipped;{node} report {})",
        if v.passed { "PASS" } else { "FAIL" },
        v.checks.len(),
        v.failures().count(),
        v.checks.iter().filter(|c| c.status == Status::Warn).count(),
        v.checks.iter().filter(|c| c.status == Status::Skip).count(),
        v.report_id
    );
    let _ = writeln!(
        out,
        "{:<24} {:<5} {:<18} {:<22} {:<36} message",
        "check", "state", "expected", "observed", "source"
    );
    for c in &v.checks {
        let source = c
            .sources
            .first()
            .map(ToString::to_string)
            .unwrap_or_else(|| "-".into());
        let source = if c.sources.len() > 1 {
            format!("{source} +{}", c.sources.len() - 1)
        } else {
            source
        };
        let _ = writeln!(
            out,
            "{:<24} {:<5} {:<18} {:<22} {:<36} {}",
            c.id,
            c.status.as_str(),
            fit(c.expected.as_deref().unwrap_or("-"), 18),
            fit(c.observed.as_deref().unwrap_or("-"), 22),
            fit_tail(&source, 36),
            c.message
        );
    }
    if !v.requirements.is_empty() {
        let _ = writeln!(out, "\nRequirements:");
        for r in &v.requirements {
            let sources: Vec<String> = r.sources.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "  {:<18} {:<28} from {}",
                r.key,
                r.value,
                sources.join(", ")
            );
        }
    }
    for (title, items) in [("Conflicts", &v.conflicts), ("Warnings", &v.warnings)] {
        if !items.is_empty() {
            let _ = writeln!(out, "\n{title}:");
            for i in items {
                let _ = writeln!(out, "  {i}");
            }
        }
    }
    out
}

/// The verdict as pretty JSON with a trailing newline.
pub fn json(v: &Verdict) -> String {
    super::pretty_json(v)
}
