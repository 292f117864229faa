//! One transformer decoder block, forward pass: the inference micro-kernel.
//!
//! `y = x2 + MLP(LN2(x2))`, `x2 = x + Attn(LN1(x))`, with causal multi-head attention and a
//! GELU (tanh) MLP, as in GPT-style models. This module holds the block's shape and
//! parameters and the f64 reference every backend is checked against; the backends run the
//! block as the device program in [`super::block`].

use crate::report::{Dtype, ProblemSize};

use super::data::{round_to, Inputs};

/// Shape of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    pub tokens: usize,
    pub hidden: usize,
    pub heads: usize,
    pub ffn: usize,
}

impl BlockShape {
    pub fn size(&self) -> ProblemSize {
        ProblemSize {
            tokens: Some(self.tokens as u64),
            hidden: Some(self.hidden as u64),
            heads: Some(self.heads as u64),
            ffn: Some(self.ffn as u64),
            ..ProblemSize::default()
        }
    }

    /// Floating-point operations of one forward pass (matmuls only).
    pub fn flops(&self) -> f64 {
        let (t, d, f) = (self.tokens as f64, self.hidden as f64, self.ffn as f64);
        2.0 * t * d * 3.0 * d + 2.0 * 2.0 * t * t * d + 2.0 * t * d * d + 2.0 * 2.0 * t * d * f
    }

    /// Whether the shape is usable: heads divide the width, nothing is zero.
    pub fn validate(&self) -> Result<(), String> {
        if self.tokens == 0 || self.hidden == 0 || self.heads == 0 || self.ffn == 0 {
            return Err("inference shape has a zero dimension".into());
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return Err(format!(
                "hidden {} is not a multiple of heads {}",
                self.hidden, self.heads
            ));
        }
        Ok(())
    }
}

/// Parameters of the block, and its input, as f32 values exactly representable in the
/// benchmark's dtype.
#[derive(Debug, Clone)]
pub struct Block {
    pub shape: BlockShape,
    pub dtype: Dtype,
    pub x: Vec<f32>,
    pub ln1: (Vec<f32>, Vec<f32>),
    pub w_qkv: Vec<f32>,
    pub b_qkv: Vec<f32>,
    pub w_o: Vec<f32>,
    pub b_o: Vec<f32>,
    pub ln2: (Vec<f32>, Vec<f32>),
    pub w_1: Vec<f32>,
    pub b_1: Vec<f32>,
    pub w_2: Vec<f32>,
    pub b_2: Vec<f32>,
}

impl Block {
    /// Random weights (scaled by 1/√fan-in so activations stay near unit size) and input.
    pub fn random(shape: BlockShape, dtype: Dtype, seed: u64) -> Block {
        let mut inp = Inputs::new(seed);
        let (t, d, f) = (shape.tokens, shape.hidden, shape.ffn);
        let s_d = 1.0 / (d as f32).sqrt();
        let s_f = 1.0 / (f as f32).sqrt();
        let mut affine = |n: usize| {
            let g = inp
                .vec(n, dtype, 0.1)
                .into_iter()
                .map(|v| round_to(dtype, 1.0 + v))
                .collect();
            let b = inp.vec(n, dtype, 0.1);
            (g, b)
        };
        let ln1 = affine(d);
        let ln2 = affine(d);
        Block {
            shape,
            dtype,
            x: inp.vec(t * d, dtype, 1.0),
            ln1,
            w_qkv: inp.vec(d * 3 * d, dtype, s_d),
            b_qkv: inp.vec(3 * d, dtype, 0.1),
            w_o: inp.vec(d * d, dtype, s_d),
            b_o: inp.vec(d, dtype, 0.1),
            ln2,
            w_1: inp.vec(d * f, dtype, s_d),
            b_1: inp.vec(f, dtype, 0.1),
            w_2: inp.vec(f * d, dtype, s_f),
            b_2: inp.vec(d, dtype, 0.1),
        }
    }
}

/// Arithmetic the block needs, for f32 (the CPU backend) and f64 (the reference).
pub trait Real:
    Copy + Send + Sync + 'static + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    fn from_f32(x: f32) -> Self;
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
}

impl Real for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

impl Real for f64 {
    fn from_f32(x: f32) -> Self {
        f64::from(x)
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(x: f64) -> Self {
        x
    }
}

/// C (m×n) = A (m×k) · B, row-major; `b_t` means B is given as its transpose (n×k).
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    b: &[T],
    b_t: bool,
    c: &mut [T],
    threads: usize,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "matmul buffer sizes"
    );
    let (b_cs, b_rs) = if b_t {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    // SAFETY: the asserts above keep every index gemm computes from these strides inside the
    // three buffers; c does not alias a or b (it is a distinct &mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::from_f32(0.0),
            T::from_f32(1.0),
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        );
    }
}

fn layer_norm<T: Real>(x: &[T], cols: usize, gamma: &[f32], beta: &[f32]) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let mean = row.iter().map(|v| v.to_f64()).sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / cols as f64;
        let inv = 1.0 / (var + 1e-5).sqrt();
        for (j, v) in row.iter().enumerate() {
            let y = (v.to_f64() - mean) * inv * f64::from(gamma[j]) + f64::from(beta[j]);
            out.push(T::from_f64(y));
        }
    }
    out
}

fn gelu(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

/// Forward pass in `T` with no intermediate rounding (the reference uses f64).
pub fn forward<T: Real>(blk: &Block, threads: usize) -> Vec<T> {
    let BlockShape {
        tokens: t,
        hidden: d,
        heads: h,
        ffn: f,
    } = blk.shape;
    let hd = d / h;
    let conv = |v: &[f32]| -> Vec<T> { v.iter().map(|&x| T::from_f32(x)).collect() };
    let add_bias = |v: &mut [T], bias: &[f32]| {
        for row in v.chunks_mut(bias.len()) {
            for (x, b) in row.iter_mut().zip(bias) {
                *x = *x + T::from_f32(*b);
            }
        }
    };
    let x = conv(&blk.x);

    // Attention.
    let h1 = layer_norm(&x, d, &blk.ln1.0, &blk.ln1.1);
    let mut qkv = vec![T::from_f32(0.0); t * 3 * d];
    matmul(
        t,
        3 * d,
        d,
        &h1,
        &conv(&blk.w_qkv),
        false,
        &mut qkv,
        threads,
    );
    add_bias(&mut qkv, &blk.b_qkv);
    let mut attn = vec![T::from_f32(0.0); t * d];
    let scale = 1.0 / (hd as f64).sqrt();
    for head in 0..h {
        let take = |part: usize| -> Vec<T> {
            (0..t)
                .flat_map(|r| qkv[r * 3 * d + part * d + head * hd..][..hd].to_vec())
                .collect()
        };
        let (q, k, v) = (take(0), take(1), take(2));
        let mut s = vec![T::from_f32(0.0); t * t];
        matmul(t, t, hd, &q, &k, true, &mut s, threads);
        let mut p = Vec::with_capacity(t * t);
        for (r, row) in s.chunks(t).enumerate() {
            let max = row[..=r]
                .iter()
                .map(|v| v.to_f64() * scale)
                .fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = (0..t)
                .map(|c| {
                    if c <= r {
                        (row[c].to_f64() * scale - max).exp()
                    } else {
                        0.0
                    }
                })
                .collect();
            let sum: f64 = e.iter().sum();
            p.extend(e.into_iter().map(|v| T::from_f64(v / sum)));
        }
        let mut o = vec![T::from_f32(0.0); t * hd];
        matmul(t, hd, t, &p, &v, false, &mut o, threads);
        for r in 0..t {
            attn[r * d + head * hd..][..hd].copy_from_slice(&o[r * hd..][..hd]);
        }
    }
    let mut a = vec![T::from_f32(0.0); t * d];
    matmul(t, d, d, &attn, &conv(&blk.w_o), false, &mut a, threads);
    add_bias(&mut a, &blk.b_o);
    let x2: Vec<T> = x.iter().zip(&a).map(|(&u, &v)| u + v).collect();

    // MLP.
    let h2 = layer_norm(&x2, d, &blk.ln2.0, &blk.ln2.1);
    let mut m = vec![T::from_f32(0.0); t * f];
    matmul(t, f, d, &h2, &conv(&blk.w_1), false, &mut m, threads);
    add_bias(&mut m, &blk.b_1);
    let m: Vec<T> = m
        .into_iter()
        .map(|v| T::from_f64(gelu(v.to_f64())))
        .collect();
    let mut y = vec![T::from_f32(0.0); t * d];
    matmul(t, d, f, &m, &conv(&blk.w_2), false, &mut y, threads);
    add_bias(&mut y, &blk.b_2);
    x2.iter().zip(&y).map(|(&u, &v)| u + v).collect()
}

/// The f64 reference output of the block.
pub fn reference(blk: &Block, threads: usize) -> Vec<f64> {
    forward::<f64>(blk, threads)
}

/// Bound on the RMS error relative to the reference's RMS, per dtype.
pub fn inference_bound(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F32 => 1e-4,
        Dtype::Tf32 => 3e-3,
        Dtype::F16 => 5e-3,
        Dtype::Bf16 => 2e-2,
    }
}

/// How far a largest single-element deviation (relative to the reference's RMS) may go, in
/// multiples of the dtype's RMS bound. An RMS over the whole output dilutes one wrong element
/// by the square root of the element count; this catches it. Correct outputs measured
/// 3 to 8 times their own RMS error at their worst element (19×48 to 128×512 blocks, every
/// dtype), and their RMS error is 5 to 500 times under the bound, so 10 leaves a wide margin.
pub const WORST_ELEMENT_FACTOR: f64 = 10.0;

/// An output's deviation from the reference, relative to the reference's RMS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviation {
    /// RMS of (got − reference) / RMS of the reference; NaN when anything is not finite.
    pub rms: f64,
    /// Largest |got − reference| / RMS of the reference.
    pub worst: f64,
    /// Where the largest deviation (or the first non-finite value) is.
    pub at: usize,
}

impl Deviation {
    /// Whether both the RMS and the worst element are within `bound` (the dtype's RMS bound).
    pub fn within(&self, bound: f64) -> bool {
        self.rms <= bound && self.worst <= bound * WORST_ELEMENT_FACTOR
    }
}

/// How far `got` is from `reference`.
pub fn deviation(got: &[f32], reference: &[f64]) -> Deviation {
    let nan = |at| Deviation {
        rms: f64::NAN,
        worst: f64::NAN,
        at,
    };
    if got.len() != reference.len() || got.is_empty() {
        return nan(0);
    }
    let mut num = 0.0;
    let mut den = 0.0;
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &r)) in got.iter().zip(reference).enumerate() {
        let d = f64::from(g) - r;
        if !d.is_finite() {
            return nan(i);
        }
        num += d * d;
        den += r * r;
        if d.abs() > worst.0 {
            worst = (d.abs(), i);
        }
    }
    let rms_ref = (den / got.len() as f64).sqrt();
    Deviation {
        rms: (num / den).sqrt(),
        worst: worst.0 / rms_ref,
        at: worst.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::cpu::block_forward as forward_cpu;

    const SMALL: BlockShape = BlockShape {
        tokens: 19,
        hidden: 48,
        heads: 3,
        ffn: 96,
    };

    #[test]
    fn every_dtype_is_within_its_bound_and_far_from_zero() {
        for dtype in Dtype::ALL {
            let blk = Block::random(SMALL, dtype, 5);
            let got = forward_cpu(&blk, 1);
            let want = reference(&blk, 1);
            let dev = deviation(&got, &want);
            assert!(dev.within(inference_bound(dtype)), "{dtype:?}: {dev:?}");
            // Far inside the worst-element allowance too.
            assert!(
                dev.worst < inference_bound(dtype) * WORST_ELEMENT_FACTOR / 3.0,
                "{dtype:?}: {dev:?}"
            );
            assert!(
                want.iter().map(|v| v * v).sum::<f64>() > 1.0,
                "output not trivial"
            );
        }
    }

    #[test]
    fn attention_is_causal() {
        // Changing the last token must not change earlier outputs.
        let blk = Block::random(SMALL, Dtype::F32, 5);
        let mut changed = blk.clone();
        let d = SMALL.hidden;
        for v in &mut changed.x[(SMALL.tokens - 1) * d..] {
            *v = -*v;
        }
        let a = reference(&blk, 1);
        let b = reference(&changed, 1);
        assert_eq!(a[..(SMALL.tokens - 1) * d], b[..(SMALL.tokens - 1) * d]);
        assert_ne!(a[(SMALL.tokens - 1) * d..], b[(SMALL.tokens - 1) * d..]);
    }

    #[test]
    fn wrong_output_is_detected() {
        let blk = Block::random(SMALL, Dtype::Bf16, 5);
        let want = reference(&blk, 1);
        let mut got = forward_cpu(&blk, 1);
        got[7] += 1.0;
        assert!(deviation(&got, &want).rms > inference_bound(Dtype::Bf16));
        got[7] = f32::NAN;
        let nan = deviation(&got, &want);
        assert!(nan.rms.is_nan() && nan.at == 7 && !nan.within(1.0));
        let zeros = vec![0.0f32; want.len()];
        assert!(deviation(&zeros, &want).rms > 0.5);
    }

    #[test]
    fn one_wrong_element_in_a_large_output_is_caught() {
        // 128 × 512: one element off by its own size plus one passes the RMS bound of every
        // dtype but f32, diluted by the square root of 65536 elements.
        let shape = BlockShape {
            tokens: 128,
            hidden: 512,
            heads: 8,
            ffn: 2048,
        };
        for dtype in Dtype::ALL {
            let blk = Block::random(shape, dtype, 3);
            let want = reference(&blk, 2);
            let mut got = forward_cpu(&blk, 2);
            assert!(deviation(&got, &want).within(inference_bound(dtype)));
            let i = got.len() / 2 + 1;
            got[i] = got[i] * 1.5 + 1.0;
            let dev = deviation(&got, &want);
            assert!(!dev.within(inference_bound(dtype)), "{dtype:?}: {dev:?}");
            assert_eq!(dev.at, i);
        }
    }

    #[test]
    fn shapes_are_validated() {
        assert!(SMALL.validate().is_ok());
        assert!(BlockShape { heads: 5, ..SMALL }.validate().is_err());
        assert!(BlockShape { tokens: 0, ..SMALL }.validate().is_err());
        assert!(SMALL.flops() > 0.0);
    }
}
