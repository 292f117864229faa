//! `accelprobe manifests`: what a NodePool and a validation Job for one catalog accelerator
//! must say. This module decides (from the built-in catalog); `render::manifests` writes the
//! YAML. The files under `containers/k8s/` follow the same shapes.

use crate::verify::build::resolve_models;
use crate::verify::catalog::{Catalog, Family, Model, Vendor};

/// Where Jobs and the collector live.
pub const NAMESPACE: &str = "accelprobe";
/// The Secret holding the collector's bearer token (key `token`).
pub const TOKEN_SECRET: &str = "accelprobe-token";

/// What was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// `--gpu NAME` or `--neuron NAME`.
    pub name: String,
    pub vendor: Vendor,
    /// Accelerators per node (and requested by the Job); default: the smallest size's.
    pub count: Option<u32>,
    /// The collector's report URL.
    pub collector: Option<String>,
    pub image: String,
}

/// Everything the manifests say, decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub vendor: Vendor,
    /// The label value (`l40s`, `inferentia2`).
    pub label: String,
    /// Model keys behind the label (`a100` → both A100s).
    pub models: Vec<String>,
    /// `instance-family` values that carry the accelerator, in catalog order.
    pub families: Vec<String>,
    pub archs: Vec<&'static str>,
    /// Devices the Job requests.
    pub count: u32,
    /// Whether the NodePool pins the count (only when `--count` was given).
    pub pin_count: bool,
    pub collector: Option<String>,
    pub image: String,
}

/// Why no manifests can be made.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unknown {what} '{name}'; known: {known}")]
    Unknown {
        what: &'static str,
        name: String,
        known: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The label names of every supported model of `vendor`, for error messages.
pub fn known(catalog: &Catalog, vendor: Vendor) -> String {
    let mut names: Vec<String> = catalog
        .models
        .iter()
        .filter(|m| m.vendor == vendor && !supported_families(catalog, m).is_empty())
        .filter_map(|m| m.label_name.clone())
        .collect();
    names.sort();
    names.dedup();
    names.join(", ")
}

fn supported_families<'c>(catalog: &'c Catalog, m: &Model) -> Vec<&'c Family> {
    catalog
        .families_for_model(&m.key)
        .into_iter()
        .filter(|f| f.supported)
        .collect()
}

/// Decide the manifests for `req` from the catalog.
pub fn plan(catalog: &Catalog, req: &Request) -> Result<Plan, ManifestError> {
    let what = match req.vendor {
        Vendor::Neuron => "Neuron accelerator",
        _ => "GPU",
    };
    let unknown = || ManifestError::Unknown {
        what,
        name: req.name.clone(),
        known: known(catalog, req.vendor),
    };
    let models: Vec<&Model> = resolve_models(catalog, req.name.trim())
        .into_iter()
        .filter(|m| m.vendor == req.vendor)
        .collect();
    // In the catalog, but nothing a NodePool can select, or no family Auto Mode provisions.
    let unprovisionable = |m: &Model| {
        ManifestError::Invalid(format!(
            "{what} '{}' ({}) is in the catalog, but no EKS Auto Mode or Karpenter NodePool can \
             provision it by label ({}); manifests can be made for: {}",
            req.name.trim(),
            m.key,
            if m.label_name.is_none() {
                "the catalog holds no instance-gpu-name label for it"
            } else {
                "none of its instance families is provisionable"
            },
            known(catalog, req.vendor)
        ))
    };
    let label = match models.first() {
        None => return Err(unknown()),
        Some(m) => m.label_name.clone().ok_or_else(|| unprovisionable(m))?,
    };
    // Every model behind the label: `a100` selects both A100s on the node label.
    let models: Vec<&Model> = catalog
        .models_by_label(&label)
        .into_iter()
        .filter(|m| m.vendor == req.vendor)
        .collect();
    let families: Vec<&Family> = models
        .iter()
        .flat_map(|m| supported_families(catalog, m))
        .collect();
    if families.is_empty() {
        return Err(models.first().map_or_else(unknown, |m| unprovisionable(m)));
    }
    let mut counts: Vec<u32> = families
        .iter()
        .flat_map(|f| f.sizes.iter().map(|s| s.devices))
        .collect();
    counts.sort_unstable();
    counts.dedup();
    let count = match req.count {
        None => counts[0],
        Some(n) if counts.contains(&n) => n,
        Some(n) => {
            return Err(ManifestError::Invalid(format!(
                "--count {n}: no {label} instance has {n}; sizes have {}",
                counts
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    if let Some(url) = &req.collector {
        crate::feedback::check_url("--collector", url).map_err(ManifestError::Invalid)?;
    }
    let mut archs: Vec<&'static str> = families.iter().map(|f| f.cpu_arch.as_str()).collect();
    archs.sort_unstable();
    archs.dedup();
    // Once each, in catalog order (two models behind one label may share a family).
    let mut family_names: Vec<String> = Vec::new();
    for f in &families {
        if !family_names.contains(&f.name) {
            family_names.push(f.name.clone());
        }
    }
    Ok(Plan {
        vendor: req.vendor,
        label,
        models: models.iter().map(|m| m.key.clone()).collect(),
        families: family_names,
        archs,
        count,
        pin_count: req.count.is_some(),
        collector: req.collector.clone(),
        image: req.image.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, vendor: Vendor, count: Option<u32>) -> Request {
        Request {
            name: name.into(),
            vendor,
            count,
            collector: None,
            image: "img".into(),
        }
    }

    #[test]
    fn plans_follow_the_catalog() {
        let c = Catalog::builtin();
        let p = plan(c, &req("l40s", Vendor::Nvidia, None)).unwrap();
        assert_eq!(p.families, ["g6e"]);
        assert_eq!((p.count, p.pin_count), (1, false));
        assert_eq!(p.archs, ["amd64"]);
        let p = plan(c, &req("NVIDIA H100 80GB HBM3", Vendor::Nvidia, Some(8))).unwrap();
        assert_eq!(p.label, "h100");
        assert_eq!(p.count, 8);
        let p = plan(c, &req("inferentia2", Vendor::Neuron, None)).unwrap();
        assert_eq!(p.families, ["inf2"]);
        let e = plan(c, &req("l40s", Vendor::Nvidia, Some(3))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--count 3: no l40s instance has 3; sizes have 1, 4, 8"
        );
        let e = plan(c, &req("voodoo5", Vendor::Nvidia, None)).unwrap_err();
        assert!(
            e.to_string().contains("known: ") && e.to_string().contains("l40s"),
            "{e}"
        );
        let e = plan(c, &req("l40s", Vendor::Neuron, None)).unwrap_err();
        assert!(e.to_string().contains("inferentia2"), "{e}");
    }
}
