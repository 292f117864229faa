//! Feedback from the validation pod: the termination message Kubernetes shows in
//! `kubectl describe pod` and in the pod status, kept under its 4096-byte limit.

pub mod post;

use serde_json::{json, Value};

use crate::verify::verdict::{Status, Verdict};

/// Kubernetes truncates termination messages at 4096 bytes.
pub const TERMINATION_LIMIT: usize = 4096;

/// The verdict, compact, failing checks first, as many as fit in `limit` bytes; `truncated`
/// says how many failing checks were left out.
pub fn termination_message(v: &Verdict, limit: usize) -> String {
    let failed: Vec<Value> = v
        .failures()
        .map(|c| json!({"id": c.id, "device": c.device, "message": c.message}))
        .collect();
    let warned: Vec<&str> = v
        .checks
        .iter()
        .filter(|c| c.status == Status::Warn)
        .map(|c| c.id.as_str())
        .collect();
    let build = |n: usize, messages: bool| -> String {
        let shown: Vec<Value> = failed
            .iter()
            .take(n)
            .map(|f| {
                if messages {
                    f.clone()
                } else {
                    json!({"id": f["id"], "device": f["device"]})
                }
            })
            .collect();
        let mut doc = json!({
            "passed": v.passed,
            "node": v.node,
            "report_id": v.report_id,
            "checks": v.checks.len(),
            "failed": shown,
            "warned": warned,
        });
        if n < failed.len() {
            doc["truncated"] = json!(failed.len() - n);
        }
        doc.to_string()
    };
    // Prefer every failure with its message, then ids only; within each, as many failures as
    // fit (the length grows with the count, so a binary search finds it).
    for messages in [true, false] {
        if build(0, messages).len() > limit {
            continue;
        }
        let (mut lo, mut hi) = (0, failed.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if build(mid, messages).len() <= limit {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return build(lo, messages);
    }
    // Smaller than any summary: still valid JSON, never a cut one.
    json!({"passed": v.passed}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::verdict::{Check, VERDICT_SCHEMA_VERSION};

    fn verdict(failing: usize) -> Verdict {
        let mut checks = vec![Check {
            id: "gpu.count".into(),
            status: Status::Pass,
            expected: None,
            observed: None,
            message: "ok".into(),
            sources: vec![],
            device: None,
        }];
        for i in 0..failing {
            checks.push(Check {
                id: format!("health.ecc.{i}"),
                status: Status::Fail,
                expected: None,
                observed: None,
                message: "x".repeat(120),
                sources: vec![],
                device: Some(format!("GPU {i}")),
            });
        }
        Verdict {
            schema_version: VERDICT_SCHEMA_VERSION,
            passed: failing == 0,
            report_id: "r".into(),
            node: Some("n".into()),
            requirements: vec![],
            conflicts: vec![],
            warnings: vec![],
            checks,
        }
    }

    #[test]
    fn fits_and_keeps_failures_first() {
        let small = termination_message(&verdict(2), TERMINATION_LIMIT);
        let v: Value = serde_json::from_str(&small).unwrap();
        assert_eq!(v["failed"].as_array().unwrap().len(), 2);
        assert!(v.get("truncated").is_none());
        let big = termination_message(&verdict(500), TERMINATION_LIMIT);
        assert!(big.len() <= TERMINATION_LIMIT, "{}", big.len());
        let v: Value = serde_json::from_str(&big).unwrap();
        let shown = v["failed"].as_array().unwrap().len();
        assert!(shown > 0 && shown < 500);
        assert_eq!(v["truncated"].as_u64().unwrap() as usize, 500 - shown);
        assert_eq!(v["passed"], false);
        let tiny = termination_message(&verdict(5), 40);
        assert!(tiny.len() <= 40);
        let t: Value = serde_json::from_str(&tiny).expect("still valid JSON");
        assert_eq!(t["passed"], false);
    }
}
