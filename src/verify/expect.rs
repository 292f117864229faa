//! `--expect KEY=VALUE`: requirements given on the command line, the highest-precedence source.

use crate::report::{Dtype, Vendor};

use super::requirements::parse_memory_mib;

/// One parsed `--expect`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// `gpu=l40s` or `gpu=l40s,l4`: accelerator names as the catalog knows them (label
    /// names like `l40s`, model keys, or NVML names).
    Gpu(Vec<String>),
    /// `vendor=nvidia|neuron`.
    Vendor(Vendor),
    /// `count=N`: exactly N accelerators.
    Count(u32),
    /// `min-memory=45GiB`: per accelerator.
    MinMemoryMib(u64),
    /// `min-driver=535.104`.
    MinDriver(String),
    /// `min-cuda=12.2`.
    MinCuda(String),
    /// `min-tflops.bf16=300`.
    MinTflops(Dtype, f64),
    /// `min-copy-gbps=700`.
    MinCopyGbps(f64),
    /// `min-h2d-gbps=20` (also applies to device-to-host).
    MinTransferGbps(f64),
}

/// The keys `--expect` understands, for error messages and docs.
pub const KEYS: &str = "gpu (or accelerator), vendor, count, min-memory, min-driver, min-cuda, min-tflops.<f32|tf32|f16|bf16>, min-copy-gbps, min-h2d-gbps";

fn positive(key: &str, v: &str) -> Result<f64, String> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x > 0.0)
        .ok_or_else(|| format!("--expect {key}={v}: need a positive number"))
}

fn version(key: &str, v: &str) -> Result<String, String> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "--expect {key}={v}: need a dotted version such as 535.104 or 12.2"
        ))
    }
}

/// Parse one `KEY=VALUE`.
pub fn parse(text: &str) -> Result<Expect, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--expect '{text}' is not KEY=VALUE; keys: {KEYS}"))?;
    let (key, value) = (key.trim(), value.trim());
    if value.is_empty() {
        return Err(format!("--expect {key}= has no value"));
    }
    Ok(match key {
        "gpu" | "accelerator" => {
            let models: Vec<String> = value
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if models.is_empty() {
                return Err(format!(
                    "--expect {key}={value} names no model; e.g. {key}=l40s"
                ));
            }
            Expect::Gpu(models)
        }
        "vendor" => Expect::Vendor(match value.to_ascii_lowercase().as_str() {
            "nvidia" => Vendor::Nvidia,
            "neuron" | "aws" => Vendor::Neuron,
            other => return Err(format!("--expect vendor={other}: use nvidia or neuron")),
        }),
        "count" => Expect::Count(
            value
                .parse()
                .map_err(|_| format!("--expect count={value}: need a whole number"))?,
        ),
        "min-memory" => Expect::MinMemoryMib(
            parse_memory_mib(value).map_err(|e| format!("--expect min-memory: {e}"))?,
        ),
        "min-driver" => Expect::MinDriver(version(key, value)?),
        "min-cuda" => Expect::MinCuda(version(key, value)?),
        "min-copy-gbps" => Expect::MinCopyGbps(positive(key, value)?),
        "min-h2d-gbps" => Expect::MinTransferGbps(positive(key, value)?),
        k => match k.strip_prefix("min-tflops.") {
            Some(d) => {
                let dtype = Dtype::ALL
                    .into_iter()
                    .find(|x| x.as_str() == d)
                    .ok_or_else(|| {
                        format!("--expect {k}: unknown dtype '{d}'; use f32, tf32, f16 or bf16")
                    })?;
                Expect::MinTflops(dtype, positive(k, value)?)
            }
            None => return Err(format!("--expect: unknown key '{k}'; keys: {KEYS}")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses() {
        assert_eq!(parse("gpu=l40s"), Ok(Expect::Gpu(vec!["l40s".into()])));
        assert_eq!(
            parse("gpu = l40s, l4"),
            Ok(Expect::Gpu(vec!["l40s".into(), "l4".into()]))
        );
        assert_eq!(parse("vendor=NVIDIA"), Ok(Expect::Vendor(Vendor::Nvidia)));
        assert_eq!(parse("count=8"), Ok(Expect::Count(8)));
        assert_eq!(parse("min-memory=45GiB"), Ok(Expect::MinMemoryMib(46080)));
        assert_eq!(
            parse("min-driver=535.104"),
            Ok(Expect::MinDriver("535.104".into()))
        );
        assert_eq!(parse("min-cuda=12.2"), Ok(Expect::MinCuda("12.2".into())));
        assert_eq!(
            parse("min-tflops.bf16=300"),
            Ok(Expect::MinTflops(Dtype::Bf16, 300.0))
        );
        assert_eq!(parse("min-copy-gbps=700"), Ok(Expect::MinCopyGbps(700.0)));
        assert_eq!(
            parse("min-h2d-gbps=20.5"),
            Ok(Expect::MinTransferGbps(20.5))
        );
    }

    #[test]
    fn bad_values_say_what_to_do() {
        for bad in [
            "gpu",
            "count=eight",
            "count=-1",
            "min-memory=lots",
            "min-driver=latest",
            "min-cuda=12..2",
            "min-tflops.fp8=1",
            "min-tflops.bf16=-3",
            "colour=blue",
            "vendor=amd",
            "gpu=",
            "gpu=,",
            "gpu= , ",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.starts_with("--expect"), "{bad}: {e}");
        }
        assert!(parse("colour=blue").unwrap_err().contains("min-tflops"));
    }
}
