//! The collector's fleet page in a real browser: headless Chromium (Debian's `chromium`
//! package, installed by this test when missing) loads the page from a collector holding a
//! passing and a failing node, and the test reads what Chromium rendered.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{accelprobe, fakes, Collector};

/// A Chromium binary, installing Debian's package when none is present and we may.
fn chromium() -> PathBuf {
    let find = || {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| {
                std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join(name))
                        .find(|p| p.is_file())
                })
            })
    };
    if let Some(p) = find() {
        return p;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let install = ["install", "-y", "-q", "--no-install-recommends", "chromium"];
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && !apt(&install) {
        apt(&["update", "-q"]);
        apt(&install);
    }
    find().unwrap_or_else(|| {
        panic!(
            "this test needs Chromium and could not install it; run \
             'apt-get install chromium' (as root) and test again"
        )
    })
}

/// Render `url` in headless Chromium: the DOM after layout, and a screenshot for people.
fn render(url: &str, work: &Path) -> String {
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-page.png");
    let base = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--window-size=1400,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.join("profile").display()
        ));
    };
    let mut dump = Command::new(chromium());
    base(&mut dump);
    let o = dump
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        o.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut snap = Command::new(chromium());
    base(&mut snap);
    let s = snap
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(s.status.success());
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real page was drawn"
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The text a person reads in an HTML fragment: tags dropped, entities of ours decoded.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The row of `node` in the rendered page.
fn row<'a>(dom: &'a str, node: &str) -> &'a str {
    let start = dom
        .find(&format!("data-node=\"{node}\""))
        .unwrap_or_else(|| panic!("no row for {node} in {dom}"));
    let rest = &dom[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

#[test]
fn a_person_sees_the_failing_node_and_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("requirements");
    std::fs::create_dir_all(&req).unwrap();
    std::fs::copy(
        common::fixture("k8s/seed-pod.yaml"),
        req.join("seed-pod.yaml"),
    )
    .unwrap();
    let labels = dir.path().join("labels.json");
    std::fs::write(
        &labels,
        r#"{"eks.amazonaws.com/instance-gpu-name": "l40s", "eks.amazonaws.com/compute-type": "auto"}"#,
    )
    .unwrap();
    let collector = Collector::start(&[
        "--db".as_ref(),
        dir.path().join("c.db").as_os_str(),
        "--requirements".as_ref(),
        req.as_os_str(),
    ]);
    for (node, fixture) in [("node-good", "seed-l40s"), ("node-bad", "l4")] {
        let mut cmd = accelprobe();
        fakes().serve(&mut cmd, fixture);
        let o = cmd
            .args(["run", "--no-bench", "--node-labels"])
            .arg(&labels)
            .arg("--termination-log")
            .arg(dir.path().join("term"))
            .arg("--post")
            .arg(format!("{}/v1/reports", collector.url))
            .env("NODE_NAME", node)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("delivered"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    let dom = render(&format!("{}/", collector.url), dir.path());
    assert!(!dom.contains("<script"), "the page needs no JavaScript");
    let page = text(&dom);
    assert!(page.contains("accelprobe fleet"), "{page}");
    assert!(page.contains("2 nodes: 1 passing, 1 failing"), "{page}");
    // Failing nodes come first.
    assert!(
        page.find("node-bad").unwrap() < page.find("node-good").unwrap(),
        "{page}"
    );
    let bad = text(row(&dom, "node-bad"));
    assert!(bad.contains("FAIL"), "{bad}");
    assert!(bad.contains("1 × NVIDIA L4"), "{bad}");
    assert!(bad.contains("gpu.model"), "{bad}");
    assert!(bad.contains("l40s was requested"), "{bad}");
    let good = text(row(&dom, "node-good"));
    assert!(good.contains("PASS") && !good.contains("FAIL"), "{good}");
    assert!(good.contains("1 × NVIDIA L40S"), "{good}");
    assert!(
        !row(&dom, "node-good").contains("class=\"check\""),
        "no failing checks: {good}"
    );
}
