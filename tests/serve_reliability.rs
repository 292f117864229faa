//! The collector under load and under SIGKILL: what it acknowledged it still holds after a
//! crash, it holds nothing twice, and hostile bodies get a 4xx without hurting it. Runs the
//! real `accelprobe serve` as a child process (see `tests/common/load.rs`); no timing is
//! asserted. The bigger version with figures is `cargo bench --bench collector_load`.

#[path = "common/load.rs"]
mod load;

use std::time::Duration;

use load::{LoadConfig, Retry, Server, Template};

fn bin() -> std::path::PathBuf {
    load::binary(env!("CARGO_BIN_EXE_accelprobe"))
}

/// 8 clients x 40 reports over 50 nodes; SIGKILL after half of them are acknowledged, restart
/// on the same database 300 ms later. Even clients post a failed report again (same id, same
/// body), odd ones give it up. Then the hostile bodies, a second SIGKILL, and a clean SIGTERM.
#[test]
fn acknowledged_reports_survive_sigkill_and_hostile_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bin = bin();
    let template = Template::from_binary(&bin);
    let db = dir.path().join("collector.db");
    let mut server = Server::start(&bin, &db, dir.path(), &[]);

    let mut cfg = LoadConfig::new(8, 40);
    cfg.id_prefix = "crash".into();
    cfg.retry = Retry::EvenClients;
    cfg.kill_after_acks = Some(cfg.total() / 2);
    cfg.down_for = Duration::from_millis(300);
    let run = load::run_load(&mut server, &template, &cfg);
    let v = load::verify(&server.base_url(), &run, 0);
    let table = load::run_table("SIGKILL under load", &run, &v);
    eprintln!("{table}");
    let kill = run.kill.as_ref().unwrap_or_else(|| {
        panic!(
            "the server was never killed: fewer than {:?} acknowledgements\n{table}\n{}",
            cfg.kill_after_acks,
            server.logs()
        )
    });
    assert!(kill.acks_before >= cfg.total() / 2);
    let failures = v.failures();
    assert!(
        failures.is_empty(),
        "the collector broke its promises:\n{}\n{table}\n{}",
        failures.join("\n"),
        server.logs()
    );
    // Every report of a retrying client ends acknowledged (the server was down 300 ms, they
    // retry for 30 s); the others lose at most what they posted while it was down.
    let unacked_retrying: Vec<&str> = run
        .outcomes
        .iter()
        .filter(|o| o.client % 2 == 0 && !o.acked())
        .map(|o| o.id.as_str())
        .collect();
    assert!(
        unacked_retrying.is_empty(),
        "retrying clients gave up on {unacked_retrying:?}\n{table}"
    );
    assert!(v.acked >= cfg.total() / 2 && v.stored >= v.acked, "{table}");
    assert!(v.stored <= v.attempted, "{table}");

    // The hostile bodies: each a 4xx, and the collector answers /healthz after each.
    let hostile = load::hostile_bodies(server.addr(), &template, 8 << 20);
    let hostile_table = load::hostile_table(&hostile);
    eprintln!("{hostile_table}");
    let wrong: Vec<String> = hostile.iter().filter_map(|r| r.failure()).collect();
    assert!(
        wrong.is_empty(),
        "hostile bodies:\n{}\n{hostile_table}\n{}",
        wrong.join("\n"),
        server.logs()
    );
    for r in &hostile {
        if let Some(s) = r.answer.status {
            assert!((400..500).contains(&s), "{}: {s}", r.name);
        }
    }

    // A SIGKILL at rest changes nothing either: the same reports, once each.
    let before = load::healthz_count(&server.base_url()).unwrap();
    server.restart().unwrap();
    assert_eq!(load::healthz_count(&server.base_url()).unwrap(), before);
    let again = load::verify(&server.base_url(), &run, 0);
    // `hostile-valid` is the one report stored beyond the run.
    assert_eq!(again.lost, Vec::<String>::new());
    assert_eq!(again.stored, v.stored);
    assert_eq!(again.extra_rows, 1, "only hostile-valid beyond the run");
    assert!(
        server.stop(Duration::from_secs(10)),
        "SIGTERM: {}",
        server.logs()
    );
}

/// The check is not vacuous: a collector that comes back without its reports (here: restarted
/// on an empty database) is caught losing every acknowledged one.
#[test]
fn the_check_notices_lost_reports() {
    let dir = tempfile::tempdir().unwrap();
    let bin = bin();
    let template = Template::from_binary(&bin);
    let mut server = Server::start(&bin, &dir.path().join("first.db"), dir.path(), &[]);
    let mut cfg = LoadConfig::new(2, 5);
    cfg.id_prefix = "lost".into();
    cfg.retry = Retry::Always;
    let run = load::run_load(&mut server, &template, &cfg);
    assert_eq!(run.acked(), 10, "{:?}", run.outcomes);
    let v = load::verify(&server.base_url(), &run, 0);
    assert!(v.failures().is_empty(), "{:?}", v.failures());
    assert_eq!(v.stored, 10);

    server
        .restart_with_db(&dir.path().join("empty.db"))
        .unwrap();
    let v = load::verify(&server.base_url(), &run, 0);
    assert_eq!(v.lost.len(), 10, "{v:?}");
    assert!(!v.failures().is_empty());
}
