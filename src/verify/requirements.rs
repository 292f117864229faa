//! Requirements: what the node must be, merged from every source, each value remembering who
//! asked for it. Merging narrows: two sources that cannot both hold become a conflict, which
//! the verdict reports ("no instance can satisfy this combination") instead of picking one.

use std::collections::{BTreeMap, BTreeSet};

use super::kubernetes::Requirement;
use super::source::Source;
use super::verdict::AppliedRequirement;
use crate::report::{Dtype, Vendor};

/// A value and every source that demanded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub sources: Vec<Source>,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Source) -> Self {
        Sourced {
            value,
            sources: vec![source],
        }
    }

    /// Whether only the catalog demands it (a default policy, not anyone's explicit demand).
    pub fn catalog_only(&self) -> bool {
        self.sources.iter().all(Source::is_catalog)
    }
}

/// Everything the verdict checks against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    pub vendor: Option<Sourced<Vendor>>,
    /// Allowed catalog model keys (`l40s`, `h100`, ...).
    pub models: Option<Sourced<BTreeSet<String>>>,
    /// The models bind only the accelerators found: a node without any satisfies them too
    /// (every source of them also admits nodes without a supported accelerator).
    pub models_optional: bool,
    /// The node has exactly this many accelerators (instance type, count labels, `--expect`).
    pub count: Option<Sourced<u32>>,
    /// The workload needs at least this many (resource requests).
    pub min_count: Option<Sourced<u32>>,
    /// Each accelerator has at least this much memory, as NVML reports it, in MiB.
    pub min_memory_mib: Option<Sourced<u64>>,
    pub min_driver: Option<Sourced<String>>,
    pub min_cuda: Option<Sourced<String>>,
    /// GEMM floors per dtype, TFLOP/s per GPU.
    pub min_tflops: BTreeMap<Dtype, Sourced<f64>>,
    /// Device copy floor, GB/s.
    pub min_copy_gbps: Option<Sourced<f64>>,
    /// Host-to-device and device-to-host floor, GB/s.
    pub min_transfer_gbps: Option<Sourced<f64>>,
    /// PCIe generation the accelerators' links must reach at their maximum.
    pub pcie_gen: Option<Sourced<u32>>,
    /// NeuronCores the workload needs in all (`aws.amazon.com/neuroncore` requests).
    pub min_neuron_cores: Option<Sourced<u32>>,
    /// Selectors on the device-count label that neither an exact nor a minimum count
    /// expresses: the node's count must satisfy each.
    pub count_selectors: Vec<CountSelector>,
    /// Combinations that cannot all hold.
    pub conflicts: Vec<String>,
    /// Exact demands replaced by a higher-precedence source.
    pub overridden: Vec<String>,
}

/// A selector on the device-count label (`instance-gpu-count Lt 2`, `In [1, 2]`, `NotIn`,
/// alternatives with different counts) that an exact or minimum count cannot express.
#[derive(Debug, Clone, PartialEq)]
pub struct CountSelector {
    /// On `instance-accelerator-count` (Neuron devices), else on `instance-gpu-count` (GPUs).
    pub neuron: bool,
    /// Per alternative (ORed), its requirements on the count label (ANDed).
    pub alternatives: Vec<Vec<Requirement>>,
}

impl CountSelector {
    /// Whether a node with `count` devices satisfies it (with none, the label is absent).
    pub fn admits(&self, count: u32) -> bool {
        let value = (count > 0).then(|| count.to_string());
        self.alternatives
            .iter()
            .any(|a| a.iter().all(|r| r.matches(value.as_deref())))
    }

    /// `karpenter.k8s.aws/instance-gpu-count Lt 2`, alternatives joined with "or".
    pub fn text(&self) -> String {
        self.alternatives
            .iter()
            .map(|a| {
                a.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" and ")
            })
            .collect::<Vec<_>>()
            .join(" or ")
    }

    pub fn sources(&self) -> Vec<Source> {
        self.alternatives
            .iter()
            .flatten()
            .map(|r| r.source.clone())
            .collect()
    }
}

pub(super) fn sources_text(s: &[Source]) -> String {
    s.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Requirements {
    /// Require the vendor.
    pub fn require_vendor(&mut self, vendor: Vendor, source: Source) {
        match &mut self.vendor {
            None => self.vendor = Some(Sourced::new(vendor, source)),
            Some(v) if v.value == vendor => v.sources.push(source),
            Some(v) => {
                self.conflicts.push(format!(
                    "{source} requires {vendor:?} accelerators but {} requires {:?}",
                    sources_text(&v.sources),
                    v.value
                ));
                // The higher-precedence demand is what the checks hold the node to.
                *v = Sourced::new(vendor, source);
            }
        }
    }

    /// Narrow the allowed models to `allowed` (intersection with what others allowed).
    pub fn allow_models(&mut self, allowed: BTreeSet<String>, source: Source) {
        self.models_optional = false;
        match &mut self.models {
            None => self.models = Some(Sourced::new(allowed, source)),
            Some(m) => {
                let both: BTreeSet<String> = m.value.intersection(&allowed).cloned().collect();
                if both.is_empty() {
                    self.conflicts.push(format!(
                        "no accelerator satisfies both {source} (allows {}) and {} (allows {})",
                        join(&allowed),
                        sources_text(&m.sources),
                        join(&m.value)
                    ));
                    // The higher-precedence demand is what the checks hold the node to.
                    *m = Sourced::new(allowed, source);
                } else {
                    m.value = both;
                    m.sources.push(source);
                }
            }
        }
    }

    /// Narrow the allowed models for the accelerators a node has, when the sources also admit
    /// a node without any (a selector with a CPU alternative): the models stay optional
    /// unless a source that requires an accelerator narrowed them too.
    pub fn allow_models_if_any(&mut self, allowed: BTreeSet<String>, sources: Vec<Source>) {
        if self.models_optional || self.models.is_none() {
            // Two optional sets: their intersection, and none is still fine (a CPU node two
            // such selectors admit is no conflict, even when no accelerator satisfies both).
            if sources.is_empty() {
                return;
            }
            match &mut self.models {
                None => {
                    self.models = Some(Sourced {
                        value: allowed,
                        sources,
                    })
                }
                Some(m) => {
                    m.value = m.value.intersection(&allowed).cloned().collect();
                    m.sources.extend(sources);
                }
            }
            self.models_optional = true;
        } else {
            // Already required: narrowed as any other source does.
            self.allow_models_from(allowed, sources);
        }
    }

    /// Narrow the allowed models on behalf of several sources at once.
    pub fn allow_models_from(&mut self, allowed: BTreeSet<String>, sources: Vec<Source>) {
        let mut it = sources.into_iter();
        let Some(first) = it.next() else {
            return;
        };
        self.allow_models(allowed, first);
        if let Some(m) = &mut self.models {
            m.sources.extend(it);
        }
    }

    /// Require exactly `n` accelerators. Sources are applied in rising precedence, so a
    /// later, different demand replaces an earlier one (its sources are kept in `overridden`).
    pub fn require_count(&mut self, n: u32, source: Source) {
        match &mut self.count {
            None => self.count = Some(Sourced::new(n, source)),
            Some(c) if c.value == n => c.sources.push(source),
            Some(c) => {
                self.overridden.push(format!(
                    "{source} expects {n} accelerators, overriding {} ({})",
                    c.value,
                    sources_text(&c.sources)
                ));
                *c = Sourced::new(n, source);
            }
        }
    }

    /// An explicit count (`--expect count=N`) replaces the count selectors of manifests, as it
    /// replaces an exact count (a Job sees the GPUs it was given, not the node's).
    pub fn override_count_selectors(&mut self, source: &Source) {
        for sel in self.count_selectors.drain(..) {
            self.overridden.push(format!(
                "{source} overrides the count selector {} ({})",
                sel.text(),
                sources_text(&sel.sources())
            ));
        }
    }

    /// Require at least `n` accelerators (the largest of such demands wins).
    pub fn require_min_count(&mut self, n: u32, source: Source) {
        raise(&mut self.min_count, n, source);
    }

    /// Require at least `n` NeuronCores on the node in all.
    pub fn require_min_neuron_cores(&mut self, n: u32, source: Source) {
        raise(&mut self.min_neuron_cores, n, source);
    }

    pub fn require_min_memory(&mut self, mib: u64, source: Source) {
        raise(&mut self.min_memory_mib, mib, source);
    }

    pub fn require_min_driver(&mut self, version: String, source: Source) {
        raise_version(&mut self.min_driver, version, source);
    }

    pub fn require_min_cuda(&mut self, version: String, source: Source) {
        raise_version(&mut self.min_cuda, version, source);
    }

    pub fn require_min_tflops(&mut self, dtype: Dtype, tflops: f64, source: Source) {
        let mut slot = self.min_tflops.remove(&dtype);
        let what = format!("the {} GEMM floor", dtype.as_str());
        raise_floor(
            &mut slot,
            tflops,
            source,
            (&what, "TFLOP/s"),
            &mut self.overridden,
        );
        if let Some(s) = slot {
            self.min_tflops.insert(dtype, s);
        }
    }

    pub fn require_min_copy(&mut self, gbps: f64, source: Source) {
        let what = ("the copy floor", "GB/s");
        raise_floor(
            &mut self.min_copy_gbps,
            gbps,
            source,
            what,
            &mut self.overridden,
        );
    }

    pub fn require_min_transfer(&mut self, gbps: f64, source: Source) {
        let what = ("the transfer floor", "GB/s");
        raise_floor(
            &mut self.min_transfer_gbps,
            gbps,
            source,
            what,
            &mut self.overridden,
        );
    }

    pub fn require_pcie_gen(&mut self, gen: u32, source: Source) {
        raise(&mut self.pcie_gen, gen, source);
    }

    /// Whether anything at all is required of the accelerators.
    pub fn wants_accelerators(&self) -> bool {
        self.vendor.is_some()
            || (self.models.is_some() && !self.models_optional)
            || self.count.as_ref().is_some_and(|c| c.value > 0)
            || self.min_count.as_ref().is_some_and(|c| c.value > 0)
    }

    /// The requirements as the verdict records them.
    pub fn applied(&self) -> Vec<AppliedRequirement> {
        let mut out = Vec::new();
        let mut push = |key: &str, value: String, sources: &[Source]| {
            out.push(AppliedRequirement {
                key: key.to_string(),
                value,
                sources: sources.to_vec(),
                optional: false,
            })
        };
        if let Some(v) = &self.vendor {
            push(
                "gpu.vendor",
                format!("{:?}", v.value).to_lowercase(),
                &v.sources,
            );
        }
        if let Some(m) = &self.models {
            let value = if self.models_optional {
                let allowed = if m.value.is_empty() {
                    "no accelerator".to_string()
                } else {
                    join(&m.value)
                };
                format!("{allowed} (or no accelerator)")
            } else {
                join(&m.value)
            };
            push("gpu.model", value, &m.sources);
        }
        if let Some(c) = &self.count {
            push("gpu.count", format!("exactly {}", c.value), &c.sources);
        }
        if let Some(c) = &self.min_count {
            push("gpu.count", format!("at least {}", c.value), &c.sources);
        }
        for c in &self.count_selectors {
            push("gpu.count", format!("satisfies {}", c.text()), &c.sources());
        }
        if let Some(m) = &self.min_memory_mib {
            push("gpu.memory", format!(">= {} MiB", m.value), &m.sources);
        }
        if let Some(v) = &self.min_driver {
            push("driver.version", format!(">= {}", v.value), &v.sources);
        }
        if let Some(v) = &self.min_cuda {
            push("cuda.version", format!(">= {}", v.value), &v.sources);
        }
        for (d, t) in &self.min_tflops {
            push(
                &format!("perf.gemm.{}", d.as_str()),
                format!(">= {:.1} TFLOP/s", t.value),
                &t.sources,
            );
        }
        if let Some(v) = &self.min_copy_gbps {
            push("perf.copy", format!(">= {:.0} GB/s", v.value), &v.sources);
        }
        if let Some(v) = &self.min_transfer_gbps {
            push("perf.h2d", format!(">= {:.1} GB/s", v.value), &v.sources);
        }
        if let Some(v) = &self.min_neuron_cores {
            push("neuron.cores", format!("at least {}", v.value), &v.sources);
        }
        if let Some(v) = &self.pcie_gen {
            push(
                "health.pcie_link",
                format!("gen >= {}", v.value),
                &v.sources,
            );
        }
        if self.models_optional {
            for r in out.iter_mut().filter(|r| r.key == "gpu.model") {
                r.optional = true;
            }
        }
        out
    }
}

fn join(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "nothing".to_string()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Keep the larger demand; equal demands add their sources.
fn raise<T: PartialOrd>(slot: &mut Option<Sourced<T>>, value: T, source: Source) {
    match slot {
        Some(s) if s.value == value => s.sources.push(source),
        Some(s) if s.value > value => {}
        _ => *slot = Some(Sourced::new(value, source)),
    }
}

/// Performance floors: the catalog's are a default policy, which a floor given explicitly
/// (`--expect`) replaces, higher or lower (an operator may know their clocks better), and
/// which never replaces an explicit one; among floors of one kind the larger wins. A
/// replaced catalog floor is noted in `overridden`.
fn raise_floor(
    slot: &mut Option<Sourced<f64>>,
    value: f64,
    source: Source,
    (what, unit): (&str, &str),
    overridden: &mut Vec<String>,
) {
    if !value.is_finite() {
        return;
    }
    let explicit = !source.is_catalog();
    match slot {
        Some(s) if explicit && s.catalog_only() => {
            if s.value != value {
                overridden.push(format!(
                    "{source} sets {what} to {value:.1} {unit}, replacing {:.1} ({})",
                    s.value,
                    sources_text(&s.sources)
                ));
            }
            *slot = Some(Sourced::new(value, source));
        }
        Some(s) if !explicit && !s.catalog_only() => {}
        _ => raise(slot, value, source),
    }
}

fn raise_version(slot: &mut Option<Sourced<String>>, value: String, source: Source) {
    match slot {
        Some(s) if compare_versions(&s.value, &value) == std::cmp::Ordering::Equal => {
            s.sources.push(source)
        }
        Some(s) if compare_versions(&s.value, &value) == std::cmp::Ordering::Greater => {}
        _ => *slot = Some(Sourced::new(value, source)),
    }
}

/// Compare dotted versions numerically (`535.230.02` > `535.104.12`, `12.10` > `12.2`);
/// missing parts count as 0, non-numeric parts compare as text.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| s.trim().split('.').map(str::to_string).collect::<Vec<_>>();
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).map(String::as_str).unwrap_or("0");
        let y = pb.get(i).map(String::as_str).unwrap_or("0");
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

/// Parse a memory size: `45GiB`, `46068MiB`, `48GB`, `45 Gi`, or plain MiB.
pub fn parse_memory_mib(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a memory size; use e.g. 45GiB or 46068MiB"))?;
    let mib = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "mib" | "mi" => value,
        "gib" | "gi" => value * 1024.0,
        "tib" | "ti" => value * 1024.0 * 1024.0,
        "mb" | "m" => value * 1e6 / 1048576.0,
        "gb" | "g" => value * 1e9 / 1048576.0,
        other => {
            return Err(format!(
                "unknown memory unit '{other}' in '{text}'; use MiB, GiB, MB or GB"
            ))
        }
    };
    if !mib.is_finite() || !(0.0..=1e12).contains(&mib) {
        return Err(format!("'{text}' is out of range"));
    }
    Ok(mib.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    fn flag(t: &str) -> Source {
        Source::Flag { text: t.into() }
    }

    fn catalog(t: &str) -> Source {
        Source::Catalog { entry: t.into() }
    }

    #[test]
    fn an_explicit_floor_replaces_the_catalogs_higher_or_lower() {
        let mut r = Requirements::default();
        r.require_min_tflops(Dtype::F32, 32.1, catalog("g6e.2xlarge (report)"));
        r.require_min_tflops(Dtype::F32, 10.0, flag("min-tflops.f32=10"));
        let f = &r.min_tflops[&Dtype::F32];
        assert_eq!(
            (f.value, f.sources.clone()),
            (10.0, vec![flag("min-tflops.f32=10")])
        );
        assert_eq!(r.overridden.len(), 1);
        assert!(
            r.overridden[0].contains("replacing 32.1"),
            "{:?}",
            r.overridden
        );
        // A catalog floor arriving later does not undo it; explicit floors keep the larger.
        r.require_min_tflops(Dtype::F32, 40.0, catalog("g6e.2xlarge (label)"));
        r.require_min_tflops(Dtype::F32, 12.0, flag("b"));
        assert_eq!(r.min_tflops[&Dtype::F32].value, 12.0);
        // Catalog floors among themselves: the larger, equal ones adding their sources.
        r.require_min_copy(500.0, catalog("a"));
        r.require_min_copy(500.0, catalog("b"));
        r.require_min_copy(400.0, catalog("c"));
        let c = r.min_copy_gbps.as_ref().unwrap();
        assert_eq!((c.value, c.sources.len()), (500.0, 2));
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("535.230.02", "535.104.12"), Greater);
        assert_eq!(compare_versions("12.10", "12.2"), Greater);
        assert_eq!(compare_versions("12.2", "12.2.0"), Equal);
        assert_eq!(compare_versions("550", "535.230.02"), Greater);
        assert_eq!(compare_versions("12.0", "12.4"), Less);
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory_mib("45GiB"), Ok(46080));
        assert_eq!(parse_memory_mib("46068MiB"), Ok(46068));
        assert_eq!(parse_memory_mib("46068"), Ok(46068));
        assert_eq!(parse_memory_mib("48GB"), Ok(45776));
        assert_eq!(parse_memory_mib("0.5 GiB"), Ok(512));
        assert!(parse_memory_mib("lots").is_err());
        assert!(parse_memory_mib("5 parsecs").is_err());
        assert!(parse_memory_mib("1e300GiB").is_err());
    }

    #[test]
    fn model_sets_narrow_and_conflict() {
        let mut r = Requirements::default();
        r.allow_models(["l40s", "l4"].map(String::from).into(), flag("a"));
        r.allow_models(["l40s"].map(String::from).into(), flag("b"));
        assert_eq!(r.models.as_ref().unwrap().value.len(), 1);
        assert!(r.conflicts.is_empty());
        r.allow_models(["l4"].map(String::from).into(), flag("c"));
        assert_eq!(r.conflicts.len(), 1);
        assert!(r.conflicts[0].contains("--expect c") && r.conflicts[0].contains("l40s"));
    }

    #[test]
    fn counts_conflict_and_minimums_raise() {
        let mut r = Requirements::default();
        r.require_count(4, flag("a"));
        r.require_count(4, flag("b"));
        assert_eq!(r.count.as_ref().unwrap().sources.len(), 2);
        r.require_count(8, flag("c"));
        assert_eq!(
            r.count.as_ref().unwrap().value,
            8,
            "the later, higher-precedence source wins"
        );
        assert_eq!(r.overridden.len(), 1);
        r.require_min_memory(100, flag("x"));
        r.require_min_memory(50, flag("y"));
        assert_eq!(r.min_memory_mib.as_ref().unwrap().value, 100);
        r.require_min_driver("535.104".into(), flag("d1"));
        r.require_min_driver("550.54".into(), flag("d2"));
        assert_eq!(r.min_driver.as_ref().unwrap().value, "550.54");
        assert!(r.wants_accelerators());
        assert!(r.applied().iter().any(|a| a.key == "driver.version"));
    }
}
