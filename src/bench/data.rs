//! Seeded random inputs and the number formats the kernels use.
//!
//! Inputs are uniform in [-1, 1), never all zero, and reproducible from the seed (PCG-64),
//! so a failing run can be replayed exactly.

use half::{bf16, f16};
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::report::Dtype;

/// A seeded generator of uniform values in [-1, 1).
pub struct Inputs {
    rng: Pcg64Mcg,
}

impl Inputs {
    pub fn new(seed: u64) -> Self {
        Inputs {
            rng: Pcg64Mcg::seed_from_u64(seed),
        }
    }

    /// One value in [-1, 1) with 24 random bits (exact in f32).
    pub fn next_f32(&mut self) -> f32 {
        let bits = (self.rng.next_u64() >> 40) as u32; // 24 bits
        (bits as f32 / (1u32 << 23) as f32) - 1.0
    }

    /// `n` values in [-1, 1), each already representable in `dtype` (so the reference and
    /// the kernel see exactly the same numbers), times `scale`.
    pub fn vec(&mut self, n: usize, dtype: Dtype, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| round_to(dtype, self.next_f32() * scale))
            .collect()
    }
}

/// The A (m×k) and B (k×n) of a GEMM benchmark at `dtype`: representable in the dtype, except
/// for tf32, whose kernels get plain f32 and do the rounding themselves.
pub fn gemm_inputs(
    seed: u64,
    dtype: Dtype,
    (m, n, k): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    let storage = if dtype == Dtype::Tf32 {
        Dtype::F32
    } else {
        dtype
    };
    let mut inp = Inputs::new(seed);
    let a = inp.vec(m * k, storage, 1.0);
    let b = inp.vec(k * n, storage, 1.0);
    (a, b)
}

/// Round an f32 to TensorFloat-32 (10 explicit mantissa bits), to nearest, ties away from
/// zero, as the GPU's `cvt.rna.tf32.f32` does. Non-finite values pass unchanged.
pub fn round_tf32(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x1000) & !0x1fff;
    f32::from_bits(rounded)
}

/// Round an f32 to the nearest value of `dtype` (returned as f32). For `Tf32` this is the
/// input rounding tensor cores apply; f32 is unchanged.
pub fn round_to(dtype: Dtype, x: f32) -> f32 {
    match dtype {
        Dtype::F32 => x,
        Dtype::Tf32 => round_tf32(x),
        Dtype::F16 => f16::from_f32(x).to_f32(),
        Dtype::Bf16 => bf16::from_f32(x).to_f32(),
    }
}

/// Unit roundoff of the format inputs are rounded to.
pub fn unit_roundoff(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F32 => f64::from(f32::EPSILON) / 2.0,
        Dtype::Tf32 => 2f64.powi(-11),
        Dtype::F16 => 2f64.powi(-11),
        Dtype::Bf16 => 2f64.powi(-8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_seeded_bounded_and_not_zero() {
        let a = Inputs::new(7).vec(1000, Dtype::F32, 1.0);
        let b = Inputs::new(7).vec(1000, Dtype::F32, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, Inputs::new(8).vec(1000, Dtype::F32, 1.0));
        assert!(a.iter().all(|x| (-1.0..1.0).contains(x)));
        assert!(a.iter().filter(|x| **x != 0.0).count() > 990);
        let mean: f32 = a.iter().sum::<f32>() / 1000.0;
        assert!(mean.abs() < 0.1);
    }

    #[test]
    fn tf32_rounding_keeps_10_mantissa_bits() {
        assert_eq!(round_tf32(1.0), 1.0);
        // 1 + 2^-11 is a tie: rounds away from zero to 1 + 2^-10.
        assert_eq!(round_tf32(1.0 + 2f32.powi(-11)), 1.0 + 2f32.powi(-10));
        assert_eq!(round_tf32(1.0 + 2f32.powi(-12)), 1.0);
        assert_eq!(round_tf32(-1.0 - 2f32.powi(-11)), -1.0 - 2f32.powi(-10));
        assert_eq!(round_tf32(f32::INFINITY), f32::INFINITY);
        for x in Inputs::new(1).vec(1000, Dtype::F32, 3.0) {
            let r = round_tf32(x);
            assert_eq!(r.to_bits() & 0x1fff, 0);
            assert!(((r - x) / x).abs() <= 2f32.powi(-11) + 1e-9);
        }
    }

    #[test]
    fn values_are_representable_in_their_dtype() {
        for dtype in Dtype::ALL {
            for x in Inputs::new(3).vec(100, dtype, 1.0) {
                assert_eq!(round_to(dtype, x), x, "{dtype:?}");
            }
        }
    }
}
