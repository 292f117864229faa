//! CPU backend: the same micro-kernels on the host's cores, for CPU-only nodes, for CI, and
//! as the yardstick the GPU numbers are read against.
//!
//! f32 GEMM runs on the `gemm` crate (run-time dispatched AVX-512/AVX2/NEON kernels, rayon
//! threads). CPUs here have no tf32/f16/bf16 matrix units, so those formats are emulated
//! honestly and inside the timed region: tf32 inputs are rounded to 10 mantissa bits, f16 and
//! bf16 inputs are stored in their format (the `half` crate) and widened to f32, then the f32
//! GEMM runs. The copy is STREAM's: every byte read once and written once, by all threads.
//!
//! Every benchmark runs in [`ROUNDS`] rounds ([`timing::run_rounds`]); copy and GEMM get fresh
//! copies of their buffers for each, so one run measures more than one placement in memory and
//! `compare` can see how far the result moves with it.

use half::slice::HalfFloatSliceExt;
use std::time::Duration;

use half::{bf16, f16};
use rayon::prelude::*;

use super::block::{self, At, Ops};
use super::check::{check_gemm, exact_compare, Gemm};
use super::data::{gemm_inputs, round_tf32, round_to, Inputs};
use super::inference::{
    deviation, inference_bound, matmul, reference, Block, BlockShape, WORST_ELEMENT_FACTOR,
};
use super::timing::{self, host_time, Budget, Rounds};
use super::{finish, Injection, Measured};
use crate::report::{Benchmark, Correctness, Dtype, Kernel, ProblemSize};

/// Rounds per CPU benchmark: each gets freshly allocated buffers (see
/// [`timing::run_rounds`]). Eight rounds of a quick run still hold 6 (GEMM) to 12 (copy)
/// iterations each on two cores.
pub const ROUNDS: u32 = 8;

/// Untimed iterations before each copy round run at least this long: on the 2-core CI VM the
/// first ~10 ms of copies after fresh buffers were allocated ran up to 1.8 times slower than
/// the rest, and the first round after the inputs were generated up to 3 times slower
/// (measured in the rounds of `bench --kernel copy`).
const COPY_SETTLE: Duration = Duration::from_millis(30);
/// The same for GEMM: compute-bound, its buffers are small; two quick-profile iterations.
const GEMM_SETTLE: Duration = Duration::from_millis(10);

/// Replace every buffer of a round's state by a fresh copy (new allocations, same values).
fn fresh<S: Clone>(s: &mut S) {
    *s = s.clone();
}

/// Time a GEMM whose inputs are stored as `a_in`, `b_in` and converted to f32 by `convert`
/// inside the timed region of each iteration (tf32 rounding, f16/bf16 widening); returns the
/// rounds and the output of the last one.
fn converted_gemm<T: Clone + Send + Sync>(
    inputs: (Vec<T>, Vec<T>),
    convert: impl Fn(&[T], &mut [f32]) + Sync + Copy,
    budget: &Budget,
    c: Vec<f32>,
    gemm: impl Fn(&[f32], &[f32], &mut [f32]),
) -> (Result<Rounds, ()>, Vec<f32>) {
    let (aw, bw) = (vec![0.0f32; inputs.0.len()], vec![0.0f32; inputs.1.len()]);
    let mut state = (inputs.0, inputs.1, aw, bw, c);
    let r = timing::run_rounds(
        budget,
        ROUNDS,
        GEMM_SETTLE,
        &mut state,
        fresh,
        |(a_in, b_in, aw, bw, c)| {
            c.fill(f32::NAN);
            Ok(host_time(|| {
                widen(a_in, aw, convert);
                widen(b_in, bw, convert);
                gemm(aw, bw, c);
            }))
        },
    );
    (r, state.4)
}

/// [`converted_gemm`] with inputs stored as f16 or bf16 and widened to f32.
fn half_gemm<T: Copy + Send + Sync>(
    a: &[f32],
    b: &[f32],
    narrow: fn(f32) -> T,
    budget: &Budget,
    c: Vec<f32>,
    gemm: impl Fn(&[f32], &[f32], &mut [f32]),
) -> (Result<Rounds, ()>, Vec<f32>)
where
    [T]: HalfFloatSliceExt,
{
    let a16: Vec<T> = a.iter().map(|&x| narrow(x)).collect();
    let b16: Vec<T> = b.iter().map(|&x| narrow(x)).collect();
    converted_gemm(
        (a16, b16),
        |s: &[T], d: &mut [f32]| s.convert_to_f32_slice(d),
        budget,
        c,
        gemm,
    )
}

/// What every CPU benchmark shares.
pub struct Cpu<'a> {
    pub name: Option<String>,
    pub seed: u64,
    pub injection: &'a Injection,
}

const CHUNK: usize = 1 << 16;

/// Widen f16/bf16 (or round to tf32) into `dst`, in parallel.
fn widen<T: Sync>(src: &[T], dst: &mut [f32], f: impl Fn(&[T], &mut [f32]) + Sync) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| f(s, d));
}

impl Cpu<'_> {
    fn threads() -> usize {
        rayon::current_num_threads()
    }

    /// C = A·B at `dtype`, m = n = k = `size` unless given otherwise.
    pub fn gemm(
        &self,
        dtype: Dtype,
        (m, n, k): (usize, usize, usize),
        budget: &Budget,
    ) -> Benchmark {
        let (a, b) = gemm_inputs(self.seed, dtype, (m, n, k));
        let c = vec![f32::NAN; m * n];
        let threads = Self::threads();
        let gemm = |a: &[f32], b: &[f32], c: &mut [f32]| matmul(m, n, k, a, b, false, c, threads);
        let (rounds, mut c) = match dtype {
            Dtype::F32 => {
                let mut state = (a.clone(), b.clone(), c);
                let r = timing::run_rounds(
                    budget,
                    ROUNDS,
                    GEMM_SETTLE,
                    &mut state,
                    fresh,
                    |(a, b, c)| {
                        c.fill(f32::NAN);
                        Ok(host_time(|| {
                            let t = std::time::Instant::now();
                            gemm(a, b, c);
                            self.injection.stall(Kernel::Gemm, t);
                        }))
                    },
                );
                (r, state.2)
            }
            Dtype::Tf32 => {
                let round = |s: &[f32], d: &mut [f32]| {
                    for (x, y) in s.iter().zip(d) {
                        *y = round_tf32(*x);
                    }
                };
                converted_gemm((a.clone(), b.clone()), round, budget, c, gemm)
            }
            Dtype::F16 => half_gemm(&a, &b, f16::from_f32, budget, c, gemm),
            Dtype::Bf16 => half_gemm(&a, &b, bf16::from_f32, budget, c, gemm),
        };
        let rounds = rounds.unwrap_or_default();
        self.injection.corrupt_f32(Kernel::Gemm, &mut c);
        let correctness = check_gemm(&Gemm::f32_output((m, n, k), &a, &b, &c, dtype), self.seed);
        let mut notes = Vec::new();
        if dtype != Dtype::F32 {
            notes.push(format!(
                "{} emulated on the CPU: inputs {} inside the timed region, then an f32 GEMM",
                dtype.as_str(),
                if dtype == Dtype::Tf32 {
                    "rounded to tf32"
                } else {
                    "widened to f32"
                }
            ));
        }
        finish(Measured {
            kernel: Kernel::Gemm,
            dtype: Some(dtype),
            device: "cpu".to_string(),
            device_name: self.name.clone(),
            implementation: "cpu-gemm-crate".to_string(),
            size: ProblemSize {
                m: Some(m as u64),
                n: Some(n as u64),
                k: Some(k as u64),
                ..ProblemSize::default()
            },
            warmup: budget.warmup,
            rounds: rounds.sizes,
            samples: rounds.samples,
            work: 2.0 * (m * n * k) as f64 / 1e12,
            unit: "TFLOP/s",
            peak: None,
            correctness,
            notes,
        })
    }

    /// STREAM-style copy of `bytes` (rounded down to whole 8-byte words).
    pub fn copy(&self, bytes: usize, budget: &Budget) -> Benchmark {
        let words = (bytes / 8).max(1);
        let mut inp = Inputs::new(self.seed);
        let src: Vec<u64> = (0..words)
            .map(|_| {
                u64::from(inp.next_f32().to_bits()) << 32 | u64::from(inp.next_f32().to_bits())
            })
            .collect();
        let mut state = (src, vec![u64::MAX; words]);
        let rounds = timing::run_rounds::<_, ()>(
            budget,
            ROUNDS,
            COPY_SETTLE,
            &mut state,
            fresh,
            |(src, dst)| {
                dst.par_chunks_mut(CHUNK).for_each(|d| d.fill(u64::MAX));
                Ok(host_time(|| {
                    let t = std::time::Instant::now();
                    dst.par_chunks_mut(CHUNK)
                        .zip(src.par_chunks(CHUNK))
                        .for_each(|(d, s)| d.copy_from_slice(s));
                    self.injection.stall(Kernel::Copy, t);
                }))
            },
        )
        .unwrap_or_default();
        let (src, mut dst) = state;
        self.injection.corrupt_bits(Kernel::Copy, &mut dst);
        let correctness = exact_compare(
            &dst,
            &src,
            "destination poisoned before each run, then compared word by word with the source",
        );
        let moved = (words * 8) as u64;
        finish(Measured {
            kernel: Kernel::Copy,
            dtype: None,
            device: "cpu".to_string(),
            device_name: self.name.clone(),
            implementation: "cpu-stream-copy".to_string(),
            size: ProblemSize {
                bytes: Some(moved),
                ..ProblemSize::default()
            },
            warmup: budget.warmup,
            rounds: rounds.sizes,
            samples: rounds.samples,
            work: 2.0 * moved as f64 / 1e9,
            unit: "GB/s",
            peak: None,
            correctness,
            notes: vec!["GB/s counts each byte read and written (STREAM convention)".into()],
        })
    }

    /// One decoder block forward pass at `dtype`.
    pub fn inference(&self, shape: BlockShape, dtype: Dtype, budget: &Budget) -> Benchmark {
        let blk = Block::random(shape, dtype, self.seed);
        let threads = Self::threads();
        let mut ops = HostOps::new(dtype, threads);
        let Ok(weights) = block::upload(&mut ops, &blk);
        let Ok(mut scratch) = block::scratch(&mut ops, &blk);
        let mut out = Vec::new();
        // Rounds without fresh buffers: the block's weights live in `ops`; the rounds still
        // spread the run over time.
        let rounds = timing::consecutive_rounds::<()>(budget, ROUNDS, || {
            scratch.y.fill(f32::NAN);
            Ok(host_time(|| {
                let Ok(y) = block::forward(&mut ops, &blk, &weights, &mut scratch);
                out.clone_from(y);
            }))
        })
        .unwrap_or_default();
        self.injection.corrupt_f32(Kernel::Inference, &mut out);
        let correctness = check_inference(&blk, &out, threads);
        finish(Measured {
            kernel: Kernel::Inference,
            dtype: Some(dtype),
            device: "cpu".to_string(),
            device_name: self.name.clone(),
            implementation: "cpu-gemm-crate".to_string(),
            size: shape.size(),
            warmup: budget.warmup,
            rounds: rounds.sizes,
            samples: rounds.samples,
            work: shape.tokens as f64,
            unit: "tokens/s",
            peak: None,
            correctness,
            notes: vec![format!(
                "inference: {:.3} GFLOP per pass; matmul inputs rounded to the dtype, f32 accumulation, \
                 layer norm and softmax in f32",
                shape.flops() / 1e9
            )],
        })
    }
}

/// Compare a block's output with the f64 reference.
pub fn check_inference(blk: &Block, out: &[f32], threads: usize) -> Correctness {
    let bound = inference_bound(blk.dtype);
    let want = reference(blk, threads);
    let dev = deviation(out, &want);
    let passed = dev.within(bound);
    let worst_bound = bound * WORST_ELEMENT_FACTOR;
    Correctness {
        passed,
        max_rel_error: dev.rms.is_finite().then_some(dev.rms),
        bound,
        method: format!(
            "whole output vs an f64 forward pass of the same weights; RMS error relative to the \
             reference's RMS, and no element off by more than {WORST_ELEMENT_FACTOR} times the bound"
        ),
        elements_checked: want.len() as u64,
        failure: (!passed).then(|| {
            if out.len() != want.len() {
                format!("output has {} elements, expected {}", out.len(), want.len())
            } else if !dev.rms.is_finite() {
                format!("output element {} is NaN or infinite", dev.at)
            } else if dev.rms > bound {
                format!(
                    "relative RMS error {:.3e} > bound {bound:.0e}; largest deviation at element {}",
                    dev.rms, dev.at
                )
            } else {
                format!(
                    "element {} is off by {:.3e} of the output's RMS > {worst_bound:.0e} \
                     (relative RMS error {:.3e} is within {bound:.0e})",
                    dev.at, dev.worst, dev.rms
                )
            }
        }),
    }
}

/// One forward pass of `blk` on the CPU, through the same [`block`] program the GPU runs.
pub fn block_forward(blk: &Block, threads: usize) -> Vec<f32> {
    let mut ops = HostOps::new(blk.dtype, threads);
    let Ok(weights) = block::upload(&mut ops, blk);
    let Ok(mut scratch) = block::scratch(&mut ops, blk);
    let Ok(y) = block::forward(&mut ops, blk, &weights, &mut scratch);
    y.clone()
}

/// [`Ops`] on host vectors: the CPU backend's transformer block.
pub struct HostOps {
    pub dtype: Dtype,
    pub threads: usize,
    /// Addresses of constant buffers (weights): their values are already representable in the
    /// dtype ([`Block::random`] makes them so), so they need no rounding pass.
    constants: std::collections::HashSet<usize>,
}

impl HostOps {
    pub fn new(dtype: Dtype, threads: usize) -> Self {
        HostOps {
            dtype,
            threads,
            constants: Default::default(),
        }
    }

    fn rounded<'a>(
        &self,
        buf: &'a [f32],
        offset: usize,
        n: usize,
        scratch: &'a mut Vec<f32>,
    ) -> &'a [f32] {
        let src = &buf[offset..];
        if self.dtype == Dtype::F32 || self.constants.contains(&(buf.as_ptr() as usize)) {
            return &src[..n];
        }
        scratch.clear();
        scratch.extend(src[..n].iter().map(|&x| round_to(self.dtype, x)));
        scratch
    }
}

impl Ops for HostOps {
    type Buf = Vec<f32>;
    type Error = std::convert::Infallible;

    fn upload(&mut self, data: &[f32]) -> Result<Vec<f32>, Self::Error> {
        Ok(data.to_vec())
    }

    fn constant(&mut self, buf: &Vec<f32>) -> Result<(), Self::Error> {
        self.constants.insert(buf.as_ptr() as usize);
        Ok(())
    }

    fn zeros(&mut self, n: usize) -> Result<Vec<f32>, Self::Error> {
        Ok(vec![0.0; n])
    }

    fn download(&mut self, buf: &Vec<f32>) -> Result<Vec<f32>, Self::Error> {
        Ok(buf.clone())
    }

    fn matmul(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        a: At<'_, Vec<f32>>,
        b: At<'_, Vec<f32>>,
        c: &mut Vec<f32>,
    ) -> Result<(), Self::Error> {
        let (mut sa, mut sb) = (Vec::new(), Vec::new());
        let a = self.rounded(a.0, a.1, m * k, &mut sa);
        let b = self.rounded(b.0, b.1, k * n, &mut sb);
        matmul(m, n, k, a, b, false, c, self.threads);
        Ok(())
    }

    fn layernorm(
        &mut self,
        rows: usize,
        cols: usize,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<(), Self::Error> {
        for (xr, yr) in x[..rows * cols].chunks(cols).zip(y.chunks_mut(cols)) {
            let mean = xr.iter().sum::<f32>() / cols as f32;
            let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / cols as f32;
            let inv = 1.0 / (var + 1e-5).sqrt();
            for (j, (xv, yv)) in xr.iter().zip(yr.iter_mut()).enumerate() {
                *yv = (xv - mean) * inv * gamma[j] + beta[j];
            }
        }
        Ok(())
    }

    fn add_bias(
        &mut self,
        rows: usize,
        cols: usize,
        x: &mut Vec<f32>,
        bias: &Vec<f32>,
    ) -> Result<(), Self::Error> {
        for row in x[..rows * cols].chunks_mut(cols) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
        Ok(())
    }

    fn add(
        &mut self,
        n: usize,
        a: &Vec<f32>,
        b: &Vec<f32>,
        out: &mut Vec<f32>,
    ) -> Result<(), Self::Error> {
        for ((o, x), y) in out[..n].iter_mut().zip(a).zip(b) {
            *o = x + y;
        }
        Ok(())
    }

    fn gelu(&mut self, n: usize, x: &mut Vec<f32>) -> Result<(), Self::Error> {
        let c = (2.0f32 / std::f32::consts::PI).sqrt();
        for v in &mut x[..n] {
            *v = 0.5 * *v * (1.0 + (c * (*v + 0.044715 * *v * *v * *v)).tanh());
        }
        Ok(())
    }

    fn softmax_causal(
        &mut self,
        rows: usize,
        cols: usize,
        s: &mut Vec<f32>,
        scale: f32,
    ) -> Result<(), Self::Error> {
        for (r, row) in s[..rows * cols].chunks_mut(cols).enumerate() {
            // Query position r mod cols: the same mask as the GPU kernel's.
            let live = (r % cols.max(1)) + 1;
            let max = row[..live]
                .iter()
                .map(|v| v * scale)
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in &mut row[..live] {
                *v = (*v * scale - max).exp();
                sum += *v;
            }
            for v in &mut row[..live] {
                *v /= sum;
            }
            row[live..].fill(0.0);
        }
        Ok(())
    }

    fn transpose(
        &mut self,
        rows: usize,
        cols: usize,
        src: At<'_, Vec<f32>>,
        out: (&mut Vec<f32>, usize),
    ) -> Result<(), Self::Error> {
        let (src, so) = src;
        let (dst, doff) = out;
        for r in 0..rows {
            for c in 0..cols {
                dst[doff + c * rows + r] = src[so + r * cols + c];
            }
        }
        Ok(())
    }
}
