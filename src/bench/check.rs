//! Correctness of kernel outputs against references computed in f64.
//!
//! A GEMM result is accepted only when all three hold:
//! 1. every output element is finite: outputs are poisoned with NaN before the run, so an
//!    element the kernel never wrote fails here;
//! 2. sampled elements (random positions plus the corners and the last row and column, where
//!    tile-boundary bugs show) match an f64 dot product of the same inputs within the dtype's
//!    bound, the error measured relative to Σ|a·b| (the scale of the rounding the sum can
//!    legitimately suffer, which a plain |ref| cannot give when the sum cancels to near 0);
//! 3. every row passes a Freivalds checksum: C·r against A·(B·r) for a random ±1 vector r, with
//!    a tolerance from a random-walk rounding model, so one wrong element anywhere is caught
//!    when it is larger than the rounding noise.

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::data::unit_roundoff;
use crate::report::{Correctness, Dtype};

/// Bound on the sampled GEMM error (relative to Σ|a·b|) for each input format.
pub fn gemm_bound(dtype: Dtype, k: usize) -> f64 {
    match dtype {
        // Exact inputs, f32 accumulation: far under 1e-3.
        Dtype::F32 => 1e-5,
        // Inputs rounded to 10 mantissa bits inside the kernel: each product can be off by
        // 2·2^-11 of its size. Over a long sum the errors average out and 3e-4 holds with a
        // wide margin; for short sums (K < 256) only the worst case, 1e-3, is safe.
        Dtype::Tf32 if k < TF32_SHORT_K => 1e-3,
        Dtype::Tf32 => 3e-4,
        // Inputs exact in the format, f32 accumulation, output rounding on some paths.
        Dtype::F16 => 5e-3,
        Dtype::Bf16 => 1e-2,
    }
}

/// Below this inner dimension the tf32 bound is the worst case of input rounding.
pub const TF32_SHORT_K: usize = 256;

/// Multiple of the random-walk rounding estimate a Freivalds row may deviate by.
const FREIVALDS_SIGMAS: f64 = 10.0;

/// Number of output elements compared one by one (besides the edge elements).
const SAMPLED_ELEMENTS: usize = 512;

/// A GEMM to check: C (m×n) = A (m×k) · B (k×n), all row-major, holding the values the
/// kernel was given (for tf32: the unrounded f32 inputs, as rounding is the kernel's job).
pub struct Gemm<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: &'a [f32],
    pub b: &'a [f32],
    pub c: &'a [f32],
    pub dtype: Dtype,
    /// Format the kernel wrote C in before it was widened to f32 here (f32 for accelprobe's
    /// own kernels; f16/bf16 for library paths that write half-precision outputs).
    pub output: Dtype,
}

impl<'a> Gemm<'a> {
    /// A GEMM whose kernel wrote C in f32 (every accelprobe kernel does).
    pub fn f32_output(
        (m, n, k): (usize, usize, usize),
        a: &'a [f32],
        b: &'a [f32],
        c: &'a [f32],
        dtype: Dtype,
    ) -> Self {
        Gemm {
            m,
            n,
            k,
            a,
            b,
            c,
            dtype,
            output: Dtype::F32,
        }
    }
}

/// Check a GEMM result; `seed` picks the sampled elements and the checksum vector.
pub fn check_gemm(g: &Gemm<'_>, seed: u64) -> Correctness {
    let bound = gemm_bound(g.dtype, g.k);
    let method = format!(
        "every element finite (outputs NaN-poisoned before the run); {SAMPLED_ELEMENTS} sampled \
         elements plus edges vs an f64 reference, error relative to sum|a*b|; Freivalds checksum \
         of all {} rows",
        g.m
    );
    let mut result = Correctness {
        passed: false,
        max_rel_error: None,
        bound,
        method,
        elements_checked: 0,
        failure: None,
    };
    if g.a.len() != g.m * g.k || g.b.len() != g.k * g.n || g.c.len() != g.m * g.n {
        result.failure = Some("buffer sizes do not match m, n, k".to_string());
        return result;
    }
    if g.m == 0 || g.n == 0 || g.k == 0 {
        result.failure = Some("empty problem: no work was done".to_string());
        return result;
    }
    if let Some(f) = non_finite(g.c, g.n) {
        result.failure = Some(f);
        return result;
    }
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0x5eed_c0de);
    let (max_err, count, worst) = sampled_error(g, &mut rng);
    result.max_rel_error = Some(max_err);
    result.elements_checked = count;
    if max_err.is_nan() || max_err > bound {
        let (i, j) = worst;
        result.failure = Some(format!(
            "element ({i}, {j}) is off by {max_err:.3e} relative to sum|a*b|, bound {bound:.0e}"
        ));
        return result;
    }
    if let Some(f) = freivalds(g, &mut rng) {
        result.failure = Some(f);
        return result;
    }
    result.passed = true;
    result
}

/// The first non-finite element, described; `None` when all are finite.
fn non_finite(c: &[f32], n: usize) -> Option<String> {
    let bad = c.iter().filter(|x| !x.is_finite()).count();
    let first = c.iter().position(|x| !x.is_finite())?;
    Some(format!(
        "{bad} output element(s) are NaN or infinite, first at ({}, {}): unwritten or overflowed",
        first / n,
        first % n
    ))
}

/// Largest relative error over sampled and edge elements: (error, count, worst position).
fn sampled_error(g: &Gemm<'_>, rng: &mut Pcg64Mcg) -> (f64, u64, (usize, usize)) {
    let mut positions: Vec<(usize, usize)> = vec![
        (0, 0),
        (0, g.n - 1),
        (g.m - 1, 0),
        (g.m - 1, g.n - 1),
        (g.m / 2, g.n - 1),
        (g.m - 1, g.n / 2),
    ];
    for _ in 0..SAMPLED_ELEMENTS.min(g.m * g.n) {
        let i = (rng.next_u64() % g.m as u64) as usize;
        let j = (rng.next_u64() % g.n as u64) as usize;
        positions.push((i, j));
    }
    let mut worst = (0.0f64, (0, 0));
    for &(i, j) in &positions {
        let (mut exact, mut scale) = (0.0f64, 0.0f64);
        for p in 0..g.k {
            let prod = f64::from(g.a[i * g.k + p]) * f64::from(g.b[p * g.n + j]);
            exact += prod;
            scale += prod.abs();
        }
        let got = f64::from(g.c[i * g.n + j]);
        let err = if scale > 0.0 {
            (got - exact).abs() / scale
        } else if got == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        if err > worst.0 || err.is_nan() {
            worst = (err, (i, j));
        }
    }
    (worst.0, positions.len() as u64, worst.1)
}

/// Freivalds' check of every row: `None` when all rows pass.
fn freivalds(g: &Gemm<'_>, rng: &mut Pcg64Mcg) -> Option<String> {
    let r: Vec<f64> = (0..g.n)
        .map(|_| if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 })
        .collect();
    // y = B·r and, for the tolerance, the squared row norms of B.
    let mut y = vec![0.0f64; g.k];
    let mut b_sq = vec![0.0f64; g.k];
    for p in 0..g.k {
        let row = &g.b[p * g.n..(p + 1) * g.n];
        for (j, &v) in row.iter().enumerate() {
            let v = f64::from(v);
            y[p] += v * r[j];
            b_sq[p] += v * v;
        }
    }
    // Rounding the kernel legitimately does: f32 accumulation, tf32 input rounding (f16 and
    // bf16 inputs are exact), and the rounding of its output format.
    let u_acc = match g.dtype {
        Dtype::Tf32 => unit_roundoff(Dtype::Tf32),
        _ => unit_roundoff(Dtype::F32),
    };
    let u_out = unit_roundoff(g.output);
    for i in 0..g.m {
        let a_row = &g.a[i * g.k..(i + 1) * g.k];
        let (mut expect, mut spread) = (0.0f64, 0.0f64);
        for (p, &a) in a_row.iter().enumerate() {
            let a = f64::from(a);
            expect += a * y[p];
            spread += a * a * b_sq[p];
        }
        let c_row = &g.c[i * g.n..(i + 1) * g.n];
        let got: f64 = c_row.iter().zip(&r).map(|(&c, &s)| f64::from(c) * s).sum();
        let c_norm = c_row
            .iter()
            .map(|&c| f64::from(c).powi(2))
            .sum::<f64>()
            .sqrt();
        // Each element carries ~u·√k·|a_i|·|b_j| of accumulation noise; summed over a row
        // with random signs that is u·√k·sqrt(Σ_p a_ip² Σ_j b_pj²). Output rounding adds
        // about u_out·|c_ij| per element, u_out·‖c_i‖ over the row.
        let tol = FREIVALDS_SIGMAS * (u_acc * (g.k as f64).sqrt() * spread.sqrt() + u_out * c_norm)
            + 1e-30;
        let dev = (got - expect).abs();
        if dev.is_nan() || dev > tol {
            return Some(format!(
                "row {i} fails the checksum: C·r = {got:.6e}, A·(B·r) = {expect:.6e}, deviation \
                 {dev:.3e} > tolerance {tol:.3e}"
            ));
        }
    }
    None
}

/// Word-by-word comparison of a copy's destination with its source.
pub fn exact_compare<T: PartialEq>(got: &[T], want: &[T], method: &str) -> Correctness {
    let mismatched = if got.len() == want.len() {
        got.iter().zip(want).filter(|(a, b)| a != b).count()
    } else {
        want.len().max(1)
    };
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    Correctness {
        passed: mismatched == 0,
        max_rel_error: Some(if mismatched == 0 { 0.0 } else { 1.0 }),
        bound: 0.0,
        method: method.to_string(),
        elements_checked: want.len() as u64,
        failure: (mismatched > 0).then(|| match first {
            Some(i) => format!(
                "{mismatched} of {} words differ from the source, first at word {i}",
                want.len()
            ),
            None => format!("{} words came back, {} expected", got.len(), want.len()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::data::{round_tf32, Inputs};

    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        round: fn(f32) -> f32,
    ) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f32;
                for p in 0..k {
                    acc += round(a[i * k + p]) * round(b[p * n + j]);
                }
                c[i * n + j] = acc;
            }
        }
        c
    }

    fn case(m: usize, n: usize, k: usize, dtype: Dtype) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut inp = Inputs::new(42);
        let a = inp.vec(m * k, dtype, 1.0);
        let b = inp.vec(k * n, dtype, 1.0);
        let round = if dtype == Dtype::Tf32 {
            round_tf32
        } else {
            |x| x
        };
        let c = reference(m, n, k, &a, &b, round);
        (a, b, c)
    }

    fn run(
        m: usize,
        n: usize,
        k: usize,
        dtype: Dtype,
        c: &[f32],
        a: &[f32],
        b: &[f32],
    ) -> Correctness {
        check_gemm(
            &Gemm {
                m,
                n,
                k,
                a,
                b,
                c,
                dtype,
                output: Dtype::F32,
            },
            9,
        )
    }

    #[test]
    fn correct_results_pass_for_every_dtype_and_odd_sizes() {
        for dtype in Dtype::ALL {
            for (m, n, k) in [(1, 1, 1), (17, 33, 65), (64, 48, 257)] {
                let (a, b, c) = case(m, n, k, dtype);
                let r = run(m, n, k, dtype, &c, &a, &b);
                assert!(r.passed, "{dtype:?} {m}x{n}x{k}: {:?}", r.failure);
                assert!(r.max_rel_error.unwrap() <= gemm_bound(dtype, k));
            }
        }
    }

    #[test]
    fn one_corrupted_element_anywhere_is_caught() {
        let (m, n, k) = (96, 80, 128);
        let (a, b, c) = case(m, n, k, Dtype::F32);
        for pos in [0, 1234, m * n - 1, 4321] {
            let mut bad = c.clone();
            bad[pos] += 0.05;
            let r = run(m, n, k, Dtype::F32, &bad, &a, &b);
            assert!(!r.passed, "corruption at {pos} missed");
            let mut zeroed = c.clone();
            zeroed[pos] = 0.0;
            assert!(!run(m, n, k, Dtype::F32, &zeroed, &a, &b).passed || c[pos].abs() < 1e-3);
        }
    }

    #[test]
    fn unwritten_poison_and_zero_work_fail() {
        let (m, n, k) = (16, 16, 16);
        let (a, b, mut c) = case(m, n, k, Dtype::Bf16);
        c[200] = f32::NAN;
        let r = run(m, n, k, Dtype::Bf16, &c, &a, &b);
        assert!(!r.passed);
        assert!(r.failure.unwrap().contains("(12, 8)"));
        let zeros = vec![0.0f32; m * n];
        assert!(!run(m, n, k, Dtype::Bf16, &zeros, &a, &b).passed);
        assert!(!run(0, 0, 0, Dtype::F32, &[], &[], &[]).passed);
    }

    #[test]
    fn tf32_rounding_at_short_k_is_within_the_bound_for_many_seeds() {
        // The worst case of correctly rounded tf32 inputs must never fail the check.
        for seed in 0..200u64 {
            for k in [1usize, 2, 17, 255, 256, 300] {
                let (m, n) = (3, 5);
                let mut inp = Inputs::new(seed);
                let a = inp.vec(m * k, Dtype::F32, 1.0);
                let b = inp.vec(k * n, Dtype::F32, 1.0);
                let c = reference(m, n, k, &a, &b, round_tf32);
                let r = run(m, n, k, Dtype::Tf32, &c, &a, &b);
                assert!(r.passed, "seed {seed} k {k}: {:?}", r.failure);
            }
        }
    }

    #[test]
    fn half_precision_outputs_are_allowed_their_rounding_but_not_more() {
        let (m, n, k) = (40, 24, 96);
        for dtype in [Dtype::F16, Dtype::Bf16] {
            let (a, b, c) = case(m, n, k, dtype);
            let rounded: Vec<f32> = c
                .iter()
                .map(|&x| crate::bench::data::round_to(dtype, x))
                .collect();
            let g = |c: &[f32]| {
                check_gemm(
                    &Gemm {
                        m,
                        n,
                        k,
                        a: &a,
                        b: &b,
                        c,
                        dtype,
                        output: dtype,
                    },
                    3,
                )
            };
            assert!(g(&rounded).passed, "{dtype:?}: {:?}", g(&rounded).failure);
            let mut bad = rounded.clone();
            bad[77] += 2.0;
            assert!(!g(&bad).passed, "{dtype:?}");
        }
    }

    #[test]
    fn transposed_or_truncated_results_fail() {
        let (m, n, k) = (32, 32, 64);
        let (a, b, c) = case(m, n, k, Dtype::F16);
        let mut t = c.clone();
        for i in 0..m {
            for j in 0..n {
                t[j * m + i] = c[i * n + j];
            }
        }
        assert!(!run(m, n, k, Dtype::F16, &t, &a, &b).passed);
        // Skipping the last k-tile of 16.
        let short = reference(
            m,
            n,
            k - 16,
            &a.chunks(k)
                .flat_map(|r| r[..k - 16].to_vec())
                .collect::<Vec<_>>(),
            &b[..(k - 16) * n],
            |x| x,
        );
        assert!(!run(m, n, k, Dtype::F16, &short, &a, &b).passed);
    }
}
