//! `accelprobe catalog`: the built-in accelerator and instance catalog for people (`table`)
//! and for scripts (`json`).
//!
//! The table has two parts: instance families with their sizes and device counts, then
//! accelerator models (identity, then peaks and floors). Unknown values show as `-`; a number
//! format the hardware lacks shows as `n/s`, so "nobody knows" and "does not exist" stay apart.

use std::fmt::Write;

use crate::verify::catalog::{Catalog, Model, NumberFormat};

/// The catalog as aligned text tables, ending in a newline.
pub fn table(c: &Catalog) -> String {
    let mut out = String::new();

    let _ = writeln!(out, "Instance families ({})", c.families.len());
    let mut rows = vec![cells(&[
        "FAMILY",
        "VENDOR",
        "ACCELERATOR",
        "ARCH",
        "AUTO MODE",
        "SIZES (devices)",
    ])];
    for f in &c.families {
        let sizes: Vec<String> = f
            .sizes
            .iter()
            .map(|s| format!("{}={}", s.name, s.devices))
            .collect();
        rows.push(vec![
            f.name.clone(),
            f.vendor.to_string(),
            f.model.clone(),
            f.cpu_arch.to_string(),
            f.auto_mode
                .map_or("-", |a| if a { "yes" } else { "no" })
                .to_string(),
            sizes.join(" "),
        ]);
    }
    push_table(&mut out, &rows);
    for f in c.families.iter().filter(|f| !f.supported) {
        let _ = writeln!(
            out,
            "  {}: not supported: {}",
            f.name,
            f.unsupported_reason.as_deref().unwrap_or("-")
        );
    }

    let _ = writeln!(out);
    let _ = writeln!(out, "Accelerator models ({})", c.models.len());
    let mut rows = vec![cells(&[
        "MODEL",
        "NAME",
        "VENDOR",
        "NVML NAME",
        "LABEL",
        "LABEL MiB",
        "MEMORY MiB",
        "TOL %",
        "CC",
        "CORES",
        "PCIE",
        "POWER W",
    ])];
    for m in &c.models {
        rows.push(vec![
            m.key.clone(),
            m.name.clone(),
            m.vendor.to_string(),
            if m.nvml_names.is_empty() {
                "-".to_string()
            } else {
                m.nvml_names.join(", ")
            },
            opt(m.label_name.as_ref()),
            opt(m.label_memory_mib),
            opt(m.memory_mib),
            num(m.memory_tolerance_pct),
            opt(m.compute_capability),
            opt(m.neuron_cores),
            match (m.pcie_gen, m.pcie_width) {
                (Some(g), Some(w)) => format!("gen{g} x{w}"),
                (Some(g), None) => format!("gen{g}"),
                _ => "-".to_string(),
            },
            opt(m.power_limit_w),
        ]);
    }
    push_table(&mut out, &rows);

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Peaks (dense TFLOPS, memory GB/s) and floors (GEMM TFLOPS, copy/h2d/d2h GB/s)"
    );
    let mut rows = vec![cells(&[
        "MODEL", "F32", "TF32", "F16", "BF16", "FP8", "MEM BW", "|", "F32", "TF32", "F16", "BF16",
        "COPY", "H2D", "D2H",
    ])];
    for m in &c.models {
        let mut row = vec![m.key.clone()];
        for f in [
            NumberFormat::F32,
            NumberFormat::Tf32,
            NumberFormat::F16,
            NumberFormat::Bf16,
            NumberFormat::Fp8,
        ] {
            row.push(peak(m, f));
        }
        row.push(opt_num(m.memory_bandwidth_gbps));
        row.push("|".to_string());
        let g = &m.floors.gemm_tflops;
        for v in [g.f32, g.tf32, g.f16, g.bf16] {
            row.push(opt_num(v));
        }
        row.push(opt_num(m.floors.copy_gbps));
        row.push(opt_num(m.floors.h2d_gbps));
        row.push(opt_num(m.floors.d2h_gbps));
        rows.push(row);
    }
    push_table(&mut out, &rows);

    let p = &c.policy;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Floors: GEMM {}% of the dense peak, copy {}% of memory bandwidth, h2d/d2h {}% of the \
         PCIe link. Memory tolerance: {}% around a confirmed nvidia-smi total, else {}%.",
        num(p.gemm_fraction_of_peak * 100.0),
        num(p.copy_fraction_of_bandwidth * 100.0),
        num(p.transfer_fraction_of_pcie * 100.0),
        num(p.memory_tolerance_pct_exact),
        num(p.memory_tolerance_pct_default),
    );
    let _ = writeln!(
        out,
        "'-' = unknown or unverified; 'n/s' = not supported by the hardware. \
         Sources: accelprobe catalog --format json."
    );
    out
}

/// The catalog as pretty-printed JSON (the data file's shape), ending in a newline.
pub fn json(c: &Catalog) -> String {
    super::pretty_json(c)
}

fn cells(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A number without trailing zeros, at most two decimals (`183`, `362.05`, `0.6`).
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), num)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn peak(m: &Model, f: NumberFormat) -> String {
    match m.peaks_tflops.supports(f) {
        Some(true) => opt_num(m.peaks_tflops.get(f)),
        Some(false) => "n/s".to_string(),
        None => "-".to_string(),
    }
}

/// Append rows as columns padded to their widest cell, two spaces apart, no trailing blanks.
fn push_table(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_families_models_and_unknowns() {
        let t = table(Catalog::builtin());
        assert!(t.starts_with("Instance families (21)\n"), "{t}");
        assert!(t.contains("Accelerator models (18)"));
        let line = |start: &str| {
            t.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no line starting {start:?} in\n{t}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            line("g6e "),
            "g6e nvidia l40s amd64 yes xlarge=1 2xlarge=1 4xlarge=1 8xlarge=1 12xlarge=4 \
             16xlarge=1 24xlarge=4 48xlarge=8"
        );
        assert_eq!(line("p6-b200 "), "p6-b200 nvidia b200 amd64 yes 48xlarge=8");
        assert!(line("p3 ").contains(" no "));
        assert!(t.contains("g4ad: not supported: AMD"));
        assert_eq!(
            line("l40s "),
            "l40s L40S 48GB nvidia NVIDIA L40S l40s 45776 46068 2 8.9 - gen4 x16 350"
        );
        // A10G: peaks unknown ("-"), fp8 not supported, bandwidth known.
        let perf: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with("a10g "))
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            perf,
            [
                "a10g", "-", "-", "-", "-", "n/s", "600", "|", "-", "-", "-", "-", "360", "18.9",
                "18.9"
            ]
        );
        assert!(t.lines().all(|l| l == l.trim_end()), "no trailing blanks");
        assert!(t.ends_with('\n'));
    }

    #[test]
    fn json_round_trips() {
        let j = json(Catalog::builtin());
        assert!(j.ends_with("}\n"));
        let back = Catalog::parse(&j).unwrap();
        assert_eq!(&back, Catalog::builtin());
    }

    #[test]
    fn numbers() {
        assert_eq!(num(183.0), "183");
        assert_eq!(num(362.05), "362.05");
        assert_eq!(num(0.6), "0.6");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(35.0), "35");
        assert_eq!(opt_num(None), "-");
    }

    #[test]
    fn empty_catalog_renders() {
        let c = Catalog::empty();
        assert!(table(&c).contains("Instance families (0)"));
        assert!(Catalog::parse(&json(&c)).is_ok());
    }
}
