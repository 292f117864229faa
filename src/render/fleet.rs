//! The collector's fleet page: one self-contained HTML document (inline CSS, no scripts), so it
//! works in any browser, behind any proxy, with nothing fetched from the internet. It refreshes
//! itself every 30 seconds.

use crate::serve::store::NodeSummary;

/// Escape text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a path segment (report ids and node names are plain, but never trust).
fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2430}\
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}\
th,td{border-bottom:1px solid #d6dbe3;padding:.4rem .6rem;text-align:left;vertical-align:top}\
th{background:#f1f4f8}.pass{color:#11703a;font-weight:600}.fail{color:#b3261e;font-weight:600}.warn{color:#8a5a00;font-weight:600}\
tr.failing{background:#fdf0ef}ul{margin:0;padding-left:1rem}.muted{color:#5f6b7a}\
code{font-size:.9em}.nowrap{white-space:nowrap}";

/// `2026-11-29T02:06:55.262918072Z` → `2026-11-29 02:06:55Z`.
fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..19)) {
        (Some(date), Some(time)) if rfc3339.len() > 19 => format!("{date} {time}Z"),
        _ => rfc3339.to_string(),
    }
}

fn accelerators(s: &NodeSummary) -> String {
    match (&s.accelerator, s.accelerator_count) {
        (_, 0) => "none".to_string(),
        (Some(name), n) => format!("{n} × {}", esc(name)),
        (None, n) => format!("{n} × unknown"),
    }
}

/// A bulleted list of already-escaped items, or a muted word when there are none.
fn list(items: Vec<String>, empty: &str) -> String {
    if items.is_empty() {
        format!("<span class=\"muted\">{empty}</span>")
    } else {
        format!("<ul>{}</ul>", items.join(""))
    }
}

/// ` (device 3)` for a check about one device.
fn device_suffix(device: Option<&str>) -> String {
    device
        .map(|d| format!(" (device {})", esc(d)))
        .unwrap_or_default()
}

fn failing(s: &NodeSummary) -> String {
    let items = s
        .failing
        .iter()
        .map(|f| {
            format!(
                "<li><code class=\"check\">{}</code>{}: {}</li>",
                esc(&f.id),
                device_suffix(f.device.as_deref()),
                esc(&f.message)
            )
        })
        .collect();
    list(items, "none")
}

fn performance(s: &NodeSummary) -> String {
    let items = s
        .perf
        .iter()
        .map(|p| {
            let device = device_suffix(p.device.as_deref());
            format!(
                "<li><code>{}</code>{device}: {} (floor {}) <span class=\"{}\">{}</span></li>",
                esc(&p.id),
                esc(p.observed.as_deref().unwrap_or("?")),
                esc(p.expected.as_deref().unwrap_or("?")),
                p.status.as_str(),
                p.status.as_str()
            )
        })
        .collect();
    list(items, "no benchmarks judged")
}

fn row(s: &NodeSummary) -> String {
    let (class, verdict) = if s.passed {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    };
    format!(
        "<tr class=\"node{}\" data-node=\"{}\"><td class=\"nowrap\"><a href=\"/v1/nodes/{}\">{}</a></td>\
         <td class=\"verdict {class}\">{verdict}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td><a href=\"/v1/reports/{}\">{}</a><br><span class=\"muted\">{}</span></td></tr>",
        if s.passed { "" } else { " failing" },
        esc(&s.node),
        url_segment(&s.node),
        esc(&s.node),
        esc(s.instance_type.as_deref().unwrap_or("unknown")),
        esc(s.node_pool.as_deref().unwrap_or("none")),
        accelerators(s),
        failing(s),
        performance(s),
        url_segment(&s.report_id),
        esc(&s.report_id),
        esc(&short_time(&s.received_at)),
    )
}

/// The page for the latest summary of every node: failing nodes first, then by name.
pub fn page(latest: &[NodeSummary]) -> String {
    let mut nodes: Vec<&NodeSummary> = latest.iter().collect();
    nodes.sort_by(|a, b| a.passed.cmp(&b.passed).then_with(|| a.node.cmp(&b.node)));
    let failing = nodes.iter().filter(|s| !s.passed).count();
    let rows: Vec<String> = nodes.iter().map(|s| row(s)).collect();
    let body = if rows.is_empty() {
        "<p class=\"muted\">No reports yet. Point <code>accelprobe run --post</code> at this \
         collector.</p>"
            .to_string()
    } else {
        format!(
            "<table><thead><tr><th>Node</th><th>Verdict</th><th>Instance type</th>\
             <th>NodePool</th><th>Accelerators</th><th>Failing checks</th>\
             <th>Performance against the catalog floor</th><th>Report</th></tr></thead>\
             <tbody>{}</tbody></table>",
            rows.join("")
        )
    };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"30\">\
         <title>accelprobe fleet</title><style>{STYLE}</style></head><body>\
         <h1>accelprobe fleet</h1><p id=\"summary\">{} nodes: {} passing, {} failing</p>{body}\
         <p class=\"muted\">accelprobe {} · <a href=\"/v1/nodes\">/v1/nodes</a> · \
         <a href=\"/metrics\">/metrics</a></p></body></html>\n",
        nodes.len(),
        nodes.len() - failing,
        failing,
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_a_report_controls() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(url_segment("a b/../c"), "a%20b%2F..%2Fc");
    }

    #[test]
    fn each_performance_result_is_shown_in_its_own_style() {
        use crate::serve::store::PerfCheck;
        use crate::verify::verdict::Status;
        let perf = |status| PerfCheck {
            id: "perf.copy".into(),
            status,
            device: None,
            expected: Some(">= 1.0 GB/s".into()),
            observed: Some("0.9 GB/s".into()),
        };
        let node = NodeSummary {
            perf: vec![perf(Status::Warn), perf(Status::Fail), perf(Status::Pass)],
            ..serde_json::from_value(serde_json::json!({
                "node": "n", "report_id": "r", "received_at": "t", "created_at": "t",
                "passed": true, "instance_type": null, "node_pool": null, "accelerator": null,
                "accelerator_count": 0, "checks": 3, "failing": [], "warned": [], "perf": [],
                "figures": [], "labels_from": "report"
            }))
            .unwrap()
        };
        let html = performance(&node);
        // A warning is not dressed as a pass.
        assert!(html.contains("<span class=\"warn\">warn</span>"), "{html}");
        assert!(html.contains("<span class=\"fail\">fail</span>"), "{html}");
        assert!(html.contains("<span class=\"pass\">pass</span>"), "{html}");
    }

    #[test]
    fn empty_fleet_says_so() {
        let p = page(&[]);
        assert!(p.contains("0 nodes: 0 passing, 0 failing"));
        assert!(p.contains("No reports yet"));
        assert!(!p.contains("<script"));
    }
}
