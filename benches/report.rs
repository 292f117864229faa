//! Cost of building and rendering the report for an 8-GPU node.
//!
//! `probe/h100x8` runs the real probe (NVML loaded at run time, one thread per GPU) against
//! the fake NVML serving the 8 × H100 fixture, so it measures accelprobe's own overhead with
//! a driver that answers instantly. The render benches measure each output format.
//! Run: `cargo bench --bench report`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use accelprobe::probe::{probe, ProbeOptions};
use accelprobe::render::{self, query};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench_report(c: &mut Criterion) {
    let fakes = common::fakes();
    std::env::set_var("ACCELPROBE_FAKE_NVML_FIXTURE", fakes.fixture("h100x8"));
    let opts = ProbeOptions {
        nvml_lib: Some(fakes.nvml_lib.clone()),
        timeout: Duration::from_secs(10),
        skip_cuda: true,
        ..ProbeOptions::default()
    };
    let report = probe(&opts);
    assert_eq!(report.devices.len(), 8, "fixture must give 8 GPUs");

    c.bench_function("probe/h100x8", |b| b.iter(|| black_box(probe(&opts))));
    c.bench_function("render/table/h100x8", |b| {
        b.iter(|| black_box(render::table::render(&report)))
    });
    c.bench_function("render/json/h100x8", |b| {
        b.iter(|| black_box(render::json(&report)))
    });
    let fields = query::parse_fields(
        &query::FIELDS
            .iter()
            .map(|f| f.names[0])
            .collect::<Vec<_>>()
            .join(","),
    )
    .expect("all fields are valid");
    c.bench_function("render/csv-all-fields/h100x8", |b| {
        b.iter(|| black_box(query::csv(&report, &fields, true, true)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3));
    targets = bench_report
}
criterion_main!(benches);
