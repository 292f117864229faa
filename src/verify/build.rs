//! Building the requirements from every source, in rising precedence: the catalog entry of
//! the node's instance type, the NodePool, the Pod, node labels, and `--expect`.

use std::collections::BTreeSet;

use super::catalog::{Catalog, Instance, Model, Vendor as CatalogVendor};
use super::expect::Expect;
use super::kubernetes::{
    parse_int, Manifests, NodeLabels, Operator, Requirement, ResourceName, WellKnown,
};
use super::requirements::{sources_text, CountSelector, Requirements};
use super::source::Source;
use crate::report::{Dtype, Kernel, Vendor};

/// Why the requirements could not be built (bad input, exit 2).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("unknown accelerator '{name}' in {origin}; known: {known}")]
    UnknownAccelerator {
        name: String,
        origin: Source,
        known: String,
    },
}

/// Without a memory requirement, the allowed models give one: at least the smallest memory
/// (within tolerance) among them.
pub fn memory_from_models(req: &mut Requirements, catalog: &Catalog) {
    if req.min_memory_mib.is_some() {
        return;
    }
    let Some(models) = &req.models else { return };
    if req.models_optional {
        // A node without an accelerator satisfies optional models: no memory to demand.
        return;
    }
    let los: Vec<u64> = models
        .value
        .iter()
        .filter_map(|k| catalog.model(k))
        .filter_map(|m| m.memory_range_mib().map(|(lo, _)| lo))
        .collect();
    if !los.is_empty() && los.len() == models.value.len() {
        if let (Some(lo), Some(source)) = (los.into_iter().min(), models.sources.first().cloned()) {
            req.require_min_memory(lo, source);
        }
    }
}

/// Everything the catalog says a node of `instance_type` must be.
pub fn from_instance_type(
    req: &mut Requirements,
    catalog: &Catalog,
    instance_type: &str,
    source: Source,
    warnings: &mut Vec<String>,
) {
    let Some(inst) = catalog.instance(instance_type) else {
        warnings.push(format!("instance type {instance_type} ({source}) is not in the catalog; its accelerators are not known"));
        return;
    };
    let model = inst.model;
    if let Some(v) = inst.family.vendor.report_vendor() {
        req.require_vendor(v, source.clone());
    } else {
        req.conflicts.push(format!(
            "{instance_type} ({source}) carries {} accelerators, which accelprobe cannot verify",
            model.name
        ));
    }
    req.allow_models(BTreeSet::from([model.key.clone()]), source.clone());
    req.require_count(inst.devices, source.clone());
    from_model(req, model, source);
}

/// The per-model facts: memory (with the catalog's tolerance), PCIe generation and floors.
pub fn from_model(req: &mut Requirements, model: &Model, source: Source) {
    if let Some((lo, _)) = model.memory_range_mib() {
        req.require_min_memory(lo, source.clone());
    }
    if let Some(g) = model.pcie_gen {
        req.require_pcie_gen(g, source.clone());
    }
    for d in Dtype::ALL {
        if let Some(f) = model.floor_for(Kernel::Gemm, Some(d)) {
            req.require_min_tflops(d, f, source.clone());
        }
    }
    if let Some(f) = model.floor_for(Kernel::Copy, None) {
        req.require_min_copy(f, source.clone());
    }
    if let Some(f) = model.floor_for(Kernel::H2d, None) {
        req.require_min_transfer(f, source);
    }
}

/// Catalog models an accelerator name can mean: a model key, an EKS/Karpenter label name
/// (`l40s`, `a100` → both A100s), an NVML name, or a normalised NVML name.
pub fn resolve_models<'c>(catalog: &'c Catalog, name: &str) -> Vec<&'c Model> {
    if let Some(m) = catalog.model(name) {
        return vec![m];
    }
    let by_label = catalog.models_by_label(name);
    if !by_label.is_empty() {
        return by_label;
    }
    catalog.identify_gpu(name, None).candidates()
}

fn known_names(catalog: &Catalog) -> String {
    let mut names: Vec<String> = catalog
        .models
        .iter()
        .filter_map(|m| m.label_name.clone())
        .collect();
    names.sort();
    names.dedup();
    names.join(", ")
}

/// Allow the models `names` mean; an unknown name is bad input.
pub fn allow_names(
    req: &mut Requirements,
    catalog: &Catalog,
    names: &[String],
    source: Source,
) -> Result<(), BuildError> {
    let mut set = BTreeSet::new();
    let mut vendors = Vec::new();
    for n in names {
        let models = resolve_models(catalog, n);
        if models.is_empty() {
            return Err(BuildError::UnknownAccelerator {
                name: n.clone(),
                origin: source,
                known: known_names(catalog),
            });
        }
        for m in models {
            set.insert(m.key.clone());
            vendors.extend(m.vendor.report_vendor());
        }
    }
    if let Some(v) = single_vendor(vendors) {
        req.require_vendor(v, source.clone());
    }
    req.allow_models(set, source);
    Ok(())
}

/// Apply `--expect` flags (the highest precedence).
pub fn from_expects(
    req: &mut Requirements,
    catalog: &Catalog,
    expects: &[(Expect, String)],
) -> Result<(), BuildError> {
    for (e, text) in expects {
        let source = Source::Flag { text: text.clone() };
        match e {
            Expect::Gpu(names) => allow_names(req, catalog, names, source)?,
            Expect::Vendor(v) => req.require_vendor(*v, source),
            Expect::Count(n) => {
                req.override_count_selectors(&source);
                req.require_count(*n, source)
            }
            // Drivers report totals just under round sizes (an L40S shows 46068 MiB, 44.99 GiB):
            // a 1 % allowance lets `min-memory=45GiB` mean what people mean by it.
            Expect::MinMemoryMib(m) => req.require_min_memory(m.saturating_mul(99) / 100, source),
            Expect::MinDriver(v) => req.require_min_driver(v.clone(), source),
            Expect::MinCuda(v) => req.require_min_cuda(v.clone(), source),
            Expect::MinTflops(d, t) => req.require_min_tflops(*d, *t, source),
            Expect::MinCopyGbps(g) => req.require_min_copy(*g, source),
            Expect::MinTransferGbps(g) => req.require_min_transfer(*g, source),
        }
    }
    Ok(())
}

/// Every instance type the catalog knows, with a supported accelerator.
fn all_instances(catalog: &Catalog) -> Vec<Instance<'_>> {
    catalog
        .families
        .iter()
        .filter(|f| f.supported)
        .flat_map(|f| {
            f.sizes
                .iter()
                .filter_map(move |s| catalog.instance(&format!("{}.{}", f.name, s.name)))
        })
        .collect()
}

/// Leading letters of a family (`g6e` → `g`, `trn1n` → `trn`), Karpenter's instance-category.
fn category(family: &str) -> String {
    family
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect()
}

/// First digits of a family (`p6-b200` → `6`), Karpenter's instance-generation.
fn generation(family: &str) -> String {
    family
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect()
}

/// Whether the catalog can tell a label's value for an instance type (zone, capacity type and
/// custom labels it cannot: requirements on them never narrow the models).
fn catalog_judges(wk: WellKnown) -> bool {
    matches!(
        wk,
        WellKnown::InstanceType
            | WellKnown::InstanceFamily
            | WellKnown::InstanceSize
            | WellKnown::InstanceCategory
            | WellKnown::InstanceGeneration
            | WellKnown::Arch
            | WellKnown::InstanceGpuName
            | WellKnown::InstanceGpuCount
            | WellKnown::InstanceGpuMemory
            | WellKnown::InstanceGpuManufacturer
            | WellKnown::InstanceAcceleratorName
            | WellKnown::InstanceAcceleratorCount
            | WellKnown::InstanceAcceleratorManufacturer
    )
}

/// The value the label `wk` (one [`catalog_judges`]) has on a node of this instance type;
/// `None` when such a node does not carry it (no GPU labels on a Neuron instance).
fn instance_label(inst: &Instance<'_>, wk: WellKnown) -> Option<String> {
    let m = inst.model;
    let gpu = matches!(
        inst.family.vendor,
        CatalogVendor::Nvidia | CatalogVendor::Amd
    );
    let neuron = inst.family.vendor == CatalogVendor::Neuron;
    let manufacturer = match inst.family.vendor {
        CatalogVendor::Nvidia => "nvidia",
        CatalogVendor::Amd => "amd",
        CatalogVendor::Neuron => "aws",
    };
    match wk {
        WellKnown::InstanceType => Some(inst.instance_type()),
        WellKnown::InstanceFamily => Some(inst.family.name.clone()),
        WellKnown::InstanceSize => Some(inst.size.to_string()),
        WellKnown::InstanceCategory => Some(category(&inst.family.name)),
        WellKnown::InstanceGeneration => Some(generation(&inst.family.name)),
        WellKnown::Arch => Some(inst.family.cpu_arch.as_str().to_string()),
        WellKnown::InstanceGpuName => gpu.then(|| m.label_name.clone()).flatten(),
        WellKnown::InstanceGpuCount => gpu.then(|| inst.devices.to_string()),
        WellKnown::InstanceGpuMemory => gpu
            .then(|| m.label_memory_mib.map(|v| v.to_string()))
            .flatten(),
        WellKnown::InstanceGpuManufacturer => gpu.then(|| manufacturer.to_string()),
        WellKnown::InstanceAcceleratorName => neuron.then(|| m.label_name.clone()).flatten(),
        WellKnown::InstanceAcceleratorCount => neuron.then(|| inst.devices.to_string()),
        WellKnown::InstanceAcceleratorManufacturer => neuron.then(|| manufacturer.to_string()),
        _ => None,
    }
}

/// The label a requirement is about, when the catalog can judge it.
fn judged_label(r: &Requirement) -> Option<WellKnown> {
    r.label().well_known().filter(|wk| catalog_judges(*wk))
}

/// Whether a node of this instance type can satisfy every requirement the catalog can judge.
fn instance_satisfies(inst: &Instance<'_>, reqs: &[Requirement]) -> bool {
    reqs.iter().all(|r| match judged_label(r) {
        Some(wk) => r.matches(instance_label(inst, wk).as_deref()),
        None => true,
    })
}

/// Whether a node outside the catalog's supported instance types (a CPU-only node, or one
/// whose accelerators accelprobe cannot verify) could satisfy every requirement the catalog
/// judges. Such a node carries no GPU or accelerator labels; its type and family are none of
/// the catalog's; its category is none of the supported families' categories; its size,
/// generation and architecture can be anything.
fn outsider_satisfies(instances: &[Instance<'_>], reqs: &[Requirement]) -> bool {
    reqs.iter().all(|r| {
        let Some(wk) = judged_label(r) else {
            return true;
        };
        match wk {
            WellKnown::InstanceType | WellKnown::InstanceFamily | WellKnown::InstanceCategory => {
                match r.op {
                    // Some listed value is a plausible name (EC2 spells them in lower case)
                    // that none of the catalog's instance types carries.
                    Operator::In => r.values.iter().any(|v| {
                        plausible_ec2_name(v)
                            && !instances
                                .iter()
                                .any(|i| instance_label(i, wk).as_deref() == Some(v))
                    }),
                    Operator::NotIn | Operator::Exists => true,
                    _ => false,
                }
            }
            WellKnown::InstanceSize | WellKnown::InstanceGeneration | WellKnown::Arch => {
                r.op != Operator::DoesNotExist
            }
            // Accelerator labels: absent on such a node.
            _ => r.matches(None),
        }
    })
}

/// Whether `v` could be an EC2 instance type, family or category: lower-case letters, digits,
/// `-` and `.` (`c7i`, `m6a.xlarge`). `G6E` matches no node at all, so it is no way out.
fn plausible_ec2_name(v: &str) -> bool {
    !v.is_empty()
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// Whether an instance type outside the catalog may satisfy every requirement: those on its
/// type, family, size, category and generation are judged by its name (`c7i.2xlarge`); the
/// others (architecture, accelerator labels) cannot be known and are given the benefit.
fn name_may_satisfy(instance_type: &str, reqs: &[Requirement]) -> bool {
    let (family, size) = instance_type.split_once('.').unwrap_or((instance_type, ""));
    reqs.iter().all(|r| {
        let value = match judged_label(r) {
            Some(WellKnown::InstanceType) => instance_type.to_string(),
            Some(WellKnown::InstanceFamily) => family.to_string(),
            Some(WellKnown::InstanceSize) => size.to_string(),
            Some(WellKnown::InstanceCategory) => category(family),
            Some(WellKnown::InstanceGeneration) => generation(family),
            _ => return true,
        };
        r.matches(Some(&value))
    })
}

/// The one vendor of `vendors`, when they are all the same.
fn single_vendor(vendors: impl IntoIterator<Item = Vendor>) -> Option<Vendor> {
    let mut it = vendors.into_iter();
    let first = it.next()?;
    it.all(|v| v == first).then_some(first)
}

/// Narrow the models to those of the instance types satisfying one of `alternatives`.
fn narrow(
    req: &mut Requirements,
    catalog: &Catalog,
    alternatives: &[Vec<Requirement>],
    what: &str,
) {
    let judged: Vec<&Requirement> = alternatives
        .iter()
        .flatten()
        .filter(|r| judged_label(r).is_some())
        .collect();
    let sources: Vec<Source> = judged.iter().map(|r| r.source.clone()).collect();
    if sources.is_empty() {
        return;
    }
    let instances = all_instances(catalog);
    let candidates: Vec<Instance<'_>> = instances
        .iter()
        .filter(|inst| alternatives.iter().any(|a| instance_satisfies(inst, a)))
        .cloned()
        .collect();
    let models: BTreeSet<String> = candidates.iter().map(|i| i.model.key.clone()).collect();
    // A selector an alternative of which admits nodes without a supported accelerator (a CPU
    // pool beside a GPU one, `instance-gpu-count DoesNotExist`, `arch In [arm64]`, a family
    // list with a CPU family in it) binds only the accelerators a node has.
    // Such a node may have no accelerator; if it has any, they must still be among the
    // models of the catalog instance types the selector admits (an empty set then means: no
    // accelerator at all).
    if alternatives
        .iter()
        .any(|a| outsider_satisfies(&instances, a))
    {
        req.allow_models_if_any(models, sources);
        return;
    }
    if models.is_empty() {
        req.conflicts.push(format!(
            "no instance type in the catalog satisfies {what} ({})",
            sources_text(&sources)
        ));
    }
    // Credit the vendor to a requirement that can decide it (name, family, type, maker).
    let deciding = judged
        .iter()
        .find(|r| {
            matches!(
                judged_label(r),
                Some(
                    WellKnown::InstanceGpuName
                        | WellKnown::InstanceGpuManufacturer
                        | WellKnown::InstanceAcceleratorName
                        | WellKnown::InstanceAcceleratorManufacturer
                        | WellKnown::InstanceFamily
                        | WellKnown::InstanceType
                        | WellKnown::InstanceCategory
                )
            )
        })
        .map(|r| r.source.clone());
    let vendor = single_vendor(
        candidates
            .iter()
            .filter_map(|i| i.family.vendor.report_vendor()),
    );
    if let Some(v) = vendor {
        req.require_vendor(v, deciding.unwrap_or_else(|| sources[0].clone()));
    }
    req.allow_models_from(models, sources);
}

/// The node being judged, as far as the inputs tell: its instance type and NodePool name.
#[derive(Debug, Default, Clone)]
pub struct NodeIdentity {
    pub instance_type: Option<(String, Source)>,
    pub node_pool: Option<String>,
}

/// If the node's own instance type is known, every selector must hold for it: record a
/// conflict naming the requirement that does not.
fn check_node(
    req: &mut Requirements,
    catalog: &Catalog,
    node: &NodeIdentity,
    alternatives: &[Vec<Requirement>],
    what: &str,
) {
    let Some((it, it_source)) = &node.instance_type else {
        return;
    };
    let Some(inst) = catalog.instance(it) else {
        // Not in the catalog (a CPU type, or an accelerator type the catalog lacks): what its
        // name tells (type, family, size, category, generation) must still be allowed.
        if !alternatives.iter().any(|a| name_may_satisfy(it, a)) {
            req.conflicts.push(format!(
                "the node is a {it} ({it_source}), which {what} does not allow: no alternative admits that instance type"
            ));
        }
        return;
    };
    if alternatives.iter().any(|a| instance_satisfies(&inst, a)) {
        return;
    }
    let failing: Vec<String> = alternatives
        .iter()
        .flat_map(|a| {
            a.iter()
                .filter(|r| !instance_satisfies(&inst, std::slice::from_ref(*r)))
        })
        .map(|r| {
            format!(
                "{} {} {} ({})",
                r.key,
                r.op.as_str(),
                r.values.join(","),
                r.source
            )
        })
        .collect();
    req.conflicts.push(format!(
        "the node is a {it} ({it_source}), which {what} does not allow: {}",
        failing.join("; ")
    ));
}

/// Count and memory selectors become count and memory requirements.
fn selectors_to_requirements(req: &mut Requirements, reqs: &[Requirement]) {
    for r in reqs {
        let count_key = is_count_key(r);
        // The same integer reading as the selector's own matching.
        let n = r
            .values
            .first()
            .and_then(|v| parse_int(v))
            .and_then(|n| u32::try_from(n).ok());
        let (true, Some(n)) = (count_key, n) else {
            continue;
        };
        match r.op {
            Operator::In if r.values.len() == 1 => req.require_count(n, r.source.clone()),
            Operator::Gt => req.require_min_count(n.saturating_add(1), r.source.clone()),
            Operator::Gte => req.require_min_count(n, r.source.clone()),
            _ => {}
        }
    }
}

/// Everything a selector (a NodePool's requirements, or a Pod's alternatives) implies: the
/// models it allows, whether the node itself satisfies it, and a count it pins down.
fn apply_selector(
    req: &mut Requirements,
    catalog: &Catalog,
    node: &NodeIdentity,
    alternatives: &[Vec<Requirement>],
    what: &str,
) {
    narrow(req, catalog, alternatives, what);
    check_node(req, catalog, node, alternatives, what);
    if let [only] = alternatives {
        selectors_to_requirements(req, only);
    }
    count_selector(req, alternatives);
}

fn is_count_key(r: &Requirement) -> bool {
    matches!(
        r.label().well_known(),
        Some(WellKnown::InstanceGpuCount | WellKnown::InstanceAcceleratorCount)
    )
}

/// Keep the selector's requirements on a count label as a [`CountSelector`] when
/// [`selectors_to_requirements`] could not express them (`Lt`, `Lte`, `NotIn`, `In` with
/// several values, `Exists`/`DoesNotExist`, alternatives), one per label: GPU counts are
/// judged against the GPUs found, accelerator counts against the Neuron devices. An
/// alternative that says nothing about a count admits any, and so does the selector then.
fn count_selector(req: &mut Requirements, alternatives: &[Vec<Requirement>]) {
    for label in [
        WellKnown::InstanceGpuCount,
        WellKnown::InstanceAcceleratorCount,
    ] {
        let per_alt: Vec<Vec<Requirement>> = alternatives
            .iter()
            .map(|a| {
                a.iter()
                    .filter(|r| r.label().well_known() == Some(label))
                    .cloned()
                    .collect()
            })
            .collect();
        if per_alt.is_empty() || per_alt.iter().any(Vec::is_empty) {
            continue;
        }
        let alternatives = match per_alt.as_slice() {
            // One alternative: only what the exact and minimum counts did not take.
            [only] => {
                let rest: Vec<Requirement> =
                    only.iter().filter(|r| !expressed(r)).cloned().collect();
                if rest.is_empty() {
                    continue;
                }
                vec![rest]
            }
            _ => per_alt,
        };
        req.count_selectors.push(CountSelector {
            neuron: label == WellKnown::InstanceAcceleratorCount,
            alternatives,
        });
    }
}

/// Whether [`selectors_to_requirements`] turns `r` into an exact or minimum count.
fn expressed(r: &Requirement) -> bool {
    let n = r.values.first().and_then(|v| parse_int(v));
    n.is_some_and(|n| u32::try_from(n).is_ok())
        && match r.op {
            Operator::In => r.values.len() == 1,
            Operator::Gt | Operator::Gte => true,
            _ => false,
        }
}

/// NodePools and Pods (and workloads' pod templates).
pub fn from_manifests(
    req: &mut Requirements,
    catalog: &Catalog,
    m: &Manifests,
    node: &NodeIdentity,
    warnings: &mut Vec<String>,
) {
    warnings.extend(m.warnings.iter().map(ToString::to_string));
    // A pod lands on one NodePool: the pools are alternatives, unless the node says which.
    let pools: Vec<_> = m
        .node_pools
        .iter()
        .filter(|np| {
            node.node_pool
                .as_ref()
                .is_none_or(|want| np.object.name.as_ref() == Some(want))
        })
        .collect();
    if let Some(want) = &node.node_pool {
        // Said, not dropped silently: a pool given but not the node's own is ignored.
        for np in m
            .node_pools
            .iter()
            .filter(|np| np.object.name.as_ref() != Some(want))
        {
            warnings.push(format!(
                "{} ({}) is ignored: the node belongs to NodePool {want} (label karpenter.sh/nodepool)",
                np.object, np.object.source
            ));
        }
    }
    if !pools.is_empty() {
        let alternatives: Vec<Vec<Requirement>> = pools
            .iter()
            .map(|np| {
                // Template labels act as `In` requirements, as Karpenter treats them.
                let mut reqs = np.requirements.clone();
                reqs.extend(np.labels.iter().map(|l| l.requirement()));
                reqs
            })
            .collect();
        let names: Vec<String> = pools
            .iter()
            .map(|np| np.object.name.clone().unwrap_or_else(|| "unnamed".into()))
            .collect();
        let what = format!("NodePool {}", names.join(" or "));
        apply_selector(req, catalog, node, &alternatives, &what);
    }
    for pod in &m.pods {
        let name = format!(
            "{} {}",
            pod.object.kind,
            pod.object.name.clone().unwrap_or_else(|| "unnamed".into())
        );
        let alternatives = pod.alternatives();
        if alternatives.is_empty() {
            req.conflicts.push(format!(
                "{name} ({}): its required node affinity matches no node",
                pod.source
            ));
        } else {
            apply_selector(req, catalog, node, &alternatives, &name);
        }
        for (resource, vendor) in [
            (ResourceName::NvidiaGpu, Vendor::Nvidia),
            (ResourceName::AwsNeuron, Vendor::Neuron),
        ] {
            if let Some(total) = pod.accelerator_request(resource) {
                let Some(source) = total.sources.first().cloned() else {
                    continue;
                };
                if total.count > 0 {
                    req.require_vendor(vendor, source.clone());
                    req.require_min_count(u32::try_from(total.count).unwrap_or(u32::MAX), source);
                }
            }
        }
        if let Some(total) = pod.accelerator_request(ResourceName::AwsNeuronCore) {
            if let Some(source) = total.sources.first().cloned() {
                req.require_vendor(Vendor::Neuron, source.clone());
                if total.count > 0 {
                    req.require_min_neuron_cores(
                        u32::try_from(total.count).unwrap_or(u32::MAX),
                        source,
                    );
                }
            }
        }
    }
}

/// Node labels: the instance type through the catalog, then every label as `key In [value]`.
pub fn from_node_labels(
    req: &mut Requirements,
    catalog: &Catalog,
    labels: &NodeLabels,
    warnings: &mut Vec<String>,
) {
    warnings.extend(labels.warnings.iter().map(ToString::to_string));
    if let Some(it) = labels.well_known(WellKnown::InstanceType) {
        // The label picks the catalog entry; what follows from it (floors included) is the
        // catalog's word, not an explicit demand, so a floor still waits for benchmarks.
        let src = Source::Catalog {
            entry: format!("{} ({})", it.value, it.source),
        };
        from_instance_type(req, catalog, &it.value, src, warnings);
    }
    let as_reqs: Vec<Requirement> = labels
        .iter()
        .map(|l| Requirement::equals(&l.key, &l.value, l.source.clone()))
        .collect();
    narrow(
        req,
        catalog,
        std::slice::from_ref(&as_reqs),
        &format!("the node labels of {}", labels.path),
    );
    for (wk, what) in [
        (WellKnown::InstanceGpuCount, "GPU"),
        (WellKnown::InstanceAcceleratorCount, "accelerator"),
    ] {
        if let Some(l) = labels.well_known(wk) {
            match l.value.parse::<u32>() {
                Ok(n) => req.require_count(n, l.source.clone()),
                Err(_) => warnings.push(format!(
                    "{}: {what} count '{}' is not a number",
                    l.source, l.value
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_types_give_model_count_memory_and_floors() {
        let c = Catalog::builtin();
        let mut r = Requirements::default();
        let mut w = Vec::new();
        let src = Source::Catalog {
            entry: "g6e.12xlarge".into(),
        };
        from_instance_type(&mut r, c, "g6e.12xlarge", src.clone(), &mut w);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(r.count.as_ref().unwrap().value, 4);
        assert_eq!(
            r.models.as_ref().unwrap().value,
            BTreeSet::from(["l40s".to_string()])
        );
        assert_eq!(r.vendor.as_ref().unwrap().value, Vendor::Nvidia);
        let mem = r.min_memory_mib.as_ref().unwrap().value;
        assert!(mem <= 46068 && mem > 44000, "{mem}");
        assert!(r.min_tflops.contains_key(&Dtype::Bf16));
        from_instance_type(&mut r, c, "zz9.huge", src, &mut w);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn names_resolve_through_labels_keys_and_nvml_names() {
        let c = Catalog::builtin();
        for (name, key) in [
            ("l40s", "l40s"),
            ("NVIDIA L40S", "l40s"),
            ("h100", "h100"),
            ("NVIDIA H100 80GB HBM3", "h100"),
        ] {
            let got: Vec<&str> = resolve_models(c, name)
                .iter()
                .map(|m| m.key.as_str())
                .collect();
            assert!(got.contains(&key), "{name}: {got:?}");
        }
        assert_eq!(resolve_models(c, "a100").len(), 2);
        let mut r = Requirements::default();
        let e = allow_names(
            &mut r,
            c,
            &["rtx9999".into()],
            Source::Flag {
                text: "gpu=rtx9999".into(),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("l40s"), "{e}");
    }
}
