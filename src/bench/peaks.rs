//! Datasheet peaks, so a result can be read as a fraction of what the device is sold as.
//!
//! A minimal table keyed by the NVML name; the catalog of the verify issue supersedes it.
//! Dense (non-sparse) figures; `None` where the datasheet gives none or the format is not
//! supported. Sources: NVIDIA datasheets as collected in the project's accelerator reference.

use crate::report::{Dtype, Kernel};

/// Peaks of one GPU model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peaks {
    /// NVML names that map to this model (exact match).
    pub names: &'static [&'static str],
    pub f32_tflops: Option<f64>,
    pub tf32_tflops: Option<f64>,
    pub f16_tflops: Option<f64>,
    pub bf16_tflops: Option<f64>,
    /// Device memory bandwidth, GB/s.
    pub memory_gbps: Option<f64>,
    /// PCIe generation (per-direction bandwidth of x16 follows from it).
    pub pcie_gen: Option<u32>,
}

/// The known models.
#[rustfmt::skip]
pub static PEAKS: &[Peaks] = &[
    Peaks { names: &["Tesla T4"], f32_tflops: Some(8.1), tf32_tflops: None, f16_tflops: Some(65.0), bf16_tflops: None, memory_gbps: Some(320.0), pcie_gen: Some(3) },
    Peaks { names: &["NVIDIA A10"], f32_tflops: Some(31.2), tf32_tflops: Some(62.5), f16_tflops: Some(125.0), bf16_tflops: Some(125.0), memory_gbps: Some(600.0), pcie_gen: Some(4) },
    // No public A10G datasheet: only the memory bandwidth is known.
    Peaks { names: &["NVIDIA A10G"], f32_tflops: None, tf32_tflops: None, f16_tflops: None, bf16_tflops: None, memory_gbps: Some(600.0), pcie_gen: Some(4) },
    Peaks { names: &["NVIDIA L4"], f32_tflops: Some(30.3), tf32_tflops: Some(60.0), f16_tflops: Some(121.0), bf16_tflops: Some(121.0), memory_gbps: Some(300.0), pcie_gen: Some(4) },
    Peaks { names: &["NVIDIA L40S"], f32_tflops: Some(91.6), tf32_tflops: Some(183.0), f16_tflops: Some(362.0), bf16_tflops: Some(362.0), memory_gbps: Some(864.0), pcie_gen: Some(4) },
    Peaks { names: &["Tesla V100-SXM2-16GB", "Tesla V100-SXM2-32GB"], f32_tflops: Some(15.7), tf32_tflops: None, f16_tflops: Some(125.0), bf16_tflops: None, memory_gbps: Some(900.0), pcie_gen: Some(3) },
    Peaks { names: &["NVIDIA A100-SXM4-40GB"], f32_tflops: Some(19.5), tf32_tflops: Some(156.0), f16_tflops: Some(312.0), bf16_tflops: Some(312.0), memory_gbps: Some(1555.0), pcie_gen: Some(4) },
    Peaks { names: &["NVIDIA A100-SXM4-80GB"], f32_tflops: Some(19.5), tf32_tflops: Some(156.0), f16_tflops: Some(312.0), bf16_tflops: Some(312.0), memory_gbps: Some(2039.0), pcie_gen: Some(4) },
    Peaks { names: &["NVIDIA H100 80GB HBM3"], f32_tflops: Some(67.0), tf32_tflops: Some(494.7), f16_tflops: Some(989.4), bf16_tflops: Some(989.4), memory_gbps: Some(3350.0), pcie_gen: Some(5) },
    Peaks { names: &["NVIDIA H200"], f32_tflops: Some(67.0), tf32_tflops: Some(494.7), f16_tflops: Some(989.4), bf16_tflops: Some(989.4), memory_gbps: Some(4800.0), pcie_gen: Some(5) },
    Peaks { names: &["NVIDIA B200"], f32_tflops: Some(75.0), tf32_tflops: Some(1100.0), f16_tflops: Some(2250.0), bf16_tflops: Some(2250.0), memory_gbps: Some(7700.0), pcie_gen: None },
];

/// Peaks of a GPU by its NVML name.
pub fn lookup(name: &str) -> Option<&'static Peaks> {
    PEAKS.iter().find(|p| p.names.contains(&name))
}

/// Usable per-direction bandwidth of a PCIe x16 link, GB/s (after 128b/130b encoding).
fn pcie_x16_gbps(gen: u32) -> Option<f64> {
    Some(match gen {
        3 => 15.75,
        4 => 31.5,
        5 => 63.0,
        6 => 126.0,
        _ => return None,
    })
}

/// The peak for a kernel and dtype, in the benchmark's unit (TFLOP/s or GB/s).
pub fn peak_for(p: &Peaks, kernel: Kernel, dtype: Option<Dtype>) -> Option<f64> {
    match (kernel, dtype) {
        (Kernel::Gemm, Some(Dtype::F32)) => p.f32_tflops,
        (Kernel::Gemm, Some(Dtype::Tf32)) => p.tf32_tflops,
        (Kernel::Gemm, Some(Dtype::F16)) => p.f16_tflops,
        (Kernel::Gemm, Some(Dtype::Bf16)) => p.bf16_tflops,
        // A device copy reads and writes every byte: its bound is the memory bandwidth.
        (Kernel::Copy, _) => p.memory_gbps,
        (Kernel::H2d | Kernel::D2h, _) => p.pcie_gen.and_then(pcie_x16_gbps),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models_and_units() {
        let l40s = lookup("NVIDIA L40S").unwrap();
        assert_eq!(peak_for(l40s, Kernel::Gemm, Some(Dtype::Bf16)), Some(362.0));
        assert_eq!(peak_for(l40s, Kernel::Copy, None), Some(864.0));
        assert_eq!(peak_for(l40s, Kernel::H2d, None), Some(31.5));
        assert_eq!(peak_for(l40s, Kernel::Inference, Some(Dtype::F16)), None);
        assert_eq!(
            peak_for(
                lookup("NVIDIA A10G").unwrap(),
                Kernel::Gemm,
                Some(Dtype::F16)
            ),
            None
        );
        assert!(lookup("NVIDIA GeForce RTX 4090").is_none());
    }

    #[test]
    fn names_are_unique() {
        let mut all: Vec<&str> = PEAKS.iter().flat_map(|p| p.names.iter().copied()).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(n, all.len());
    }
}
