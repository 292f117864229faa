//! Feedback from the validation pod: the termination message Kubernetes shows in
//! `kubectl describe pod` and in the pod status, kept under its 4096-byte limit.

pub mod post;

use serde_json::{json, Value};

use crate::verify::verdict::{Status, Verdict};

/// Bearer tokens in a file, one per line (blank lines and `#` comments skipped): what
/// `run --token-file` sends (the first) and what `serve --token-file` accepts (all, so a token
/// can be rotated by listing the old and the new one for a while).
pub fn read_tokens(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--token-file {}: cannot read it: {e}", path.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err(format!(
            "--token-file {}: holds no token (one per line)",
            path.display()
        ));
    }
    Ok(tokens)
}

/// A collector URL must be http:// or https://; `flag` names the option in the message.
pub fn check_url(flag: &str, url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("{flag} {url}: use an http:// or https:// URL"))
    }
}

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

    #[test]
    fn token_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "# rotation\nold\n\n new \n").unwrap();
        assert_eq!(read_tokens(&p).unwrap(), ["old", "new"]);
        std::fs::write(&p, "\n# none\n").unwrap();
        assert!(read_tokens(&p).is_err());
    }

    #[test]
    fn collector_urls() {
        assert!(check_url("--post", "https://c:8080/v1/reports").is_ok());
        let e = check_url("--collector", "ftp://x").unwrap_err();
        assert_eq!(e, "--collector ftp://x: use an http:// or https:// URL");
    }
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
