//! Criterion benchmarks of the CPU backend's kernels: the f32 GEMM, the widened f16/bf16
//! GEMM inputs, the STREAM copy and the transformer block, plus the correctness checks
//! (which must stay cheap next to the kernels they check).
//! Run: `cargo bench --bench cpu_kernels`.

use std::hint::black_box;
use std::time::Duration;

use accelprobe::bench::check::{check_gemm, Gemm};
use accelprobe::bench::cpu::block_forward;
use accelprobe::bench::data::Inputs;
use accelprobe::bench::inference::{matmul, Block, BlockShape};
use accelprobe::report::Dtype;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn gemm(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    let mut group = c.benchmark_group("cpu-gemm-f32");
    for n in [256usize, 512, 1024] {
        let mut inp = Inputs::new(1);
        let a = inp.vec(n * n, Dtype::F32, 1.0);
        let b = inp.vec(n * n, Dtype::F32, 1.0);
        let mut out = vec![0.0f32; n * n];
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, &n| {
            bench.iter(|| matmul(n, n, n, &a, &b, false, &mut out, threads))
        });
        group.bench_with_input(BenchmarkId::new("check", n), &n, |bench, &n| {
            bench.iter(|| {
                black_box(check_gemm(
                    &Gemm {
                        m: n,
                        n,
                        k: n,
                        a: &a,
                        b: &b,
                        c: &out,
                        dtype: Dtype::F32,
                        output: Dtype::F32,
                    },
                    1,
                ))
            })
        });
    }
    group.finish();
}

fn copy(c: &mut Criterion) {
    use rayon::prelude::*;
    let words = 8 << 20; // 64 MiB
    let src = vec![0x5555_5555_5555_5555u64; words];
    let mut dst = vec![0u64; words];
    let mut group = c.benchmark_group("cpu-copy");
    group.throughput(Throughput::Bytes((2 * words * 8) as u64));
    group.bench_function("64MiB", |b| {
        b.iter(|| {
            dst.par_chunks_mut(1 << 16)
                .zip(src.par_chunks(1 << 16))
                .for_each(|(d, s)| d.copy_from_slice(s))
        })
    });
    group.finish();
}

fn block(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    let shape = BlockShape {
        tokens: 64,
        hidden: 256,
        heads: 4,
        ffn: 1024,
    };
    let mut group = c.benchmark_group("cpu-transformer-block");
    for dtype in [Dtype::F32, Dtype::Bf16] {
        let blk = Block::random(shape, dtype, 1);
        group.throughput(Throughput::Elements(shape.tokens as u64));
        group.bench_function(dtype.as_str(), |b| {
            b.iter(|| black_box(block_forward(&blk, threads)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = gemm, copy, block
}
criterion_main!(benches);
