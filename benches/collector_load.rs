//! Load, crash and hostile-body benchmark of the collector (`accelprobe serve`).
//!
//! Run: `cargo bench --bench collector_load`. Two phases, each on a fresh database:
//!
//! 1. steady: `C` clients post `R` reports each, no interference: the throughput figure;
//! 2. crash: the same load, the server SIGKILLed once half of the reports are acknowledged and
//!    restarted on the same database; then every acknowledged report must still be stored,
//!    nothing twice; then the hostile bodies (each must get a 4xx, `/healthz` must answer
//!    after each).
//!
//! It prints a table per phase and exits 1 when a promise is broken (an acknowledged report
//! lost, a duplicate, an inconsistent answer, a hostile body not refused). Timing figures are
//! printed, never checked.
//!
//! Settings (environment): `ACCELPROBE_LOAD_CLIENTS` (default 32), `ACCELPROBE_LOAD_REPORTS`
//! per client (default 200), `ACCELPROBE_LOAD_NODES` (50), `ACCELPROBE_LOAD_DOWN_MS` (how long
//! the server stays down, 300), `ACCELPROBE_LOAD_RETRY` (`even`: even clients post a failed
//! report again and odd ones give it up, `always`, `never`).
//!
//! The binary: Cargo sets `CARGO_BIN_EXE_accelprobe` for benches as for integration tests, and
//! `cargo bench` builds it with the bench profile (which inherits `release`), so this measures
//! `target/release/accelprobe`. `ACCELPROBE_BIN` overrides it (e.g. a binary built elsewhere).
//! Under `cargo test --benches` (no `--bench` argument) it runs a small smoke version
//! (4 x 10) against the debug binary.

#[path = "../tests/common/load.rs"]
mod load;

use std::time::Duration;

use load::{LoadConfig, Retry, Server, Template};

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let (dc, dr) = if benching { (32, 200) } else { (4, 10) };
    let clients = env_usize("ACCELPROBE_LOAD_CLIENTS", dc).max(1);
    let reports = env_usize("ACCELPROBE_LOAD_REPORTS", dr).max(1);
    let nodes = env_usize("ACCELPROBE_LOAD_NODES", 50).max(1);
    let down = Duration::from_millis(env_usize("ACCELPROBE_LOAD_DOWN_MS", 300) as u64);
    let retry = match std::env::var("ACCELPROBE_LOAD_RETRY").as_deref() {
        Ok("always") => Retry::Always,
        Ok("never") => Retry::Never,
        Ok("even") | Err(_) => Retry::EvenClients,
        Ok(other) => panic!("ACCELPROBE_LOAD_RETRY={other:?}: use even, always or never"),
    };
    let bin = load::binary(env!("CARGO_BIN_EXE_accelprobe"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!("collector_load: {}", bin.display());
    println!(
        "  {clients} clients x {reports} reports over {nodes} nodes, retry {retry:?}, \
         {} CPU(s), database in {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir.path().display()
    );
    let template = Template::from_binary(&bin);
    println!(
        "  report body about {} bytes\n",
        template.body("load-c000-r00000", "node-000").len()
    );
    let mut broken = Vec::new();

    // Phase 1: steady load.
    let steady_dir = dir.path().join("steady");
    std::fs::create_dir_all(&steady_dir).expect("mkdir");
    let mut server = Server::start(&bin, &steady_dir.join("collector.db"), &steady_dir, &[]);
    let mut cfg = LoadConfig::new(clients, reports);
    cfg.nodes = nodes;
    cfg.retry = retry;
    cfg.id_prefix = "steady".into();
    let run = load::run_load(&mut server, &template, &cfg);
    let v = load::verify(&server.base_url(), &run, 0);
    println!("{}", load::run_table("phase 1: steady load", &run, &v));
    broken.extend(v.failures().into_iter().map(|f| format!("steady: {f}")));
    if !server.stop(Duration::from_secs(10)) {
        broken.push("steady: the server did not stop cleanly on SIGTERM".into());
    }

    // Phase 2: the same load with a SIGKILL in the middle, then the hostile bodies.
    let crash_dir = dir.path().join("crash");
    std::fs::create_dir_all(&crash_dir).expect("mkdir");
    let mut server = Server::start(&bin, &crash_dir.join("collector.db"), &crash_dir, &[]);
    cfg.id_prefix = "crash".into();
    cfg.kill_after_acks = Some(cfg.total() / 2);
    cfg.down_for = down;
    let run = load::run_load(&mut server, &template, &cfg);
    let v = load::verify(&server.base_url(), &run, 0);
    println!(
        "{}",
        load::run_table("phase 2: SIGKILL + restart under load", &run, &v)
    );
    if run.kill.is_none() {
        broken.push("crash: the server was never killed".into());
    }
    broken.extend(v.failures().into_iter().map(|f| format!("crash: {f}")));

    let hostile = load::hostile_bodies(server.addr(), &template, 8 << 20);
    println!("{}", load::hostile_table(&hostile));
    broken.extend(hostile.iter().filter_map(|r| r.failure()));
    if !server.stop(Duration::from_secs(10)) {
        broken.push("crash: the server did not stop cleanly on SIGTERM".into());
    }

    if broken.is_empty() {
        println!("collector_load: every acknowledged report stored once; hostile bodies refused");
    } else {
        println!("collector_load: BROKEN");
        for b in &broken {
            println!("  {b}");
        }
        println!("{}", server.logs());
        std::process::exit(1);
    }
}
