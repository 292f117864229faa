//! The check registry: every named check, its id, and the function that judges a report
//! against the requirements. Ids are unique (tested) and stable: other tools match on them.

use std::collections::BTreeMap;

use super::checks_neuron as neuron;
use super::requirements::{compare_versions, CountSelector, Requirements, Sourced};
use super::source::Source;
use super::verdict::{Check, Status};
use crate::report::{Benchmark, Device, Dtype, Kernel, Report, RuntimeKind, RuntimeStatus, Vendor};

/// What the checks need to know about accelerator models.
pub trait ModelNames {
    /// The catalog key of the model an NVML name (and, to tell same-named models apart,
    /// its memory) belongs to (`NVIDIA L40S` → `l40s`).
    fn model_key(&self, nvml_name: &str, memory_mib: Option<u64>) -> Option<String>;

    /// NeuronCores per device of a Neuron model (`trainium` → 2).
    fn neuron_cores(&self, key: &str) -> Option<u32> {
        let _ = key;
        None
    }
}

impl ModelNames for super::catalog::Catalog {
    fn model_key(&self, nvml_name: &str, memory_mib: Option<u64>) -> Option<String> {
        self.identify_gpu(nvml_name, memory_mib)
            .model()
            .or_else(|| self.identify_neuron(nvml_name))
            .map(|m| m.key.clone())
    }

    fn neuron_cores(&self, key: &str) -> Option<u32> {
        self.model(key).and_then(|m| m.neuron_cores)
    }
}

/// Everything a check looks at.
pub struct Inputs<'a> {
    pub report: &'a Report,
    pub req: &'a Requirements,
    pub models: &'a dyn ModelNames,
}

type CheckFn = fn(&Inputs<'_>) -> Vec<Check>;

/// The registry, in the order the verdict lists checks.
pub static REGISTRY: &[(&str, CheckFn)] = &[
    ("gpu.vendor", gpu_vendor),
    ("gpu.model", gpu_model),
    ("gpu.count", gpu_count),
    ("gpu.memory", gpu_memory),
    ("runtime.nvml", runtime_nvml),
    ("runtime.cuda", runtime_cuda),
    ("driver.version", driver_version),
    ("cuda.version", cuda_version),
    ("health.ecc", health_ecc),
    ("health.remapped_rows", health_remapped_rows),
    ("health.retired_pages", health_retired_pages),
    ("health.xid", health_xid),
    ("health.throttle", health_throttle),
    ("health.pcie_link", health_pcie_link),
    ("perf.gemm.f32", |i| perf_gemm(i, Dtype::F32)),
    ("perf.gemm.tf32", |i| perf_gemm(i, Dtype::Tf32)),
    ("perf.gemm.f16", |i| perf_gemm(i, Dtype::F16)),
    ("perf.gemm.bf16", |i| perf_gemm(i, Dtype::Bf16)),
    ("perf.copy", perf_copy),
    ("perf.h2d", perf_h2d),
    ("perf.peer_spread", perf_peer_spread),
    ("neuron.count", neuron::neuron_count),
    ("neuron.cores", neuron::neuron_cores),
    ("neuron.memory", neuron::neuron_memory),
    ("neuron.runtime", neuron::neuron_runtime),
    ("health.neuron_errors", neuron::health_neuron_errors),
    ("perf.neuron.h2d", neuron::perf_neuron_h2d),
];

/// Run every check.
pub fn run_all(inputs: &Inputs<'_>) -> Vec<Check> {
    REGISTRY.iter().flat_map(|(_, f)| f(inputs)).collect()
}

pub(super) fn check(
    id: &str,
    status: Status,
    expected: Option<String>,
    observed: Option<String>,
    message: String,
    sources: &[Source],
) -> Check {
    Check {
        id: id.to_string(),
        status,
        expected,
        observed,
        message,
        sources: sources.to_vec(),
        device: None,
    }
}

fn nvidia(report: &Report) -> Vec<&Device> {
    report.devices.iter().filter(|d| !d.is_neuron()).collect()
}

/// The accelerators the identity checks count: those of the required vendor (NVIDIA when
/// none is required).
fn accelerators<'r>(i: &Inputs<'r>) -> Vec<&'r Device> {
    let want = i.req.vendor.as_ref().map(|v| v.value);
    i.report
        .devices
        .iter()
        .filter(|d| match want {
            Some(v) => d.vendor == Some(v),
            None => !d.is_neuron(),
        })
        .collect()
}

/// Whether the report could list accelerators of the required vendor at all, and why not.
fn listing_problem(i: &Inputs<'_>) -> Option<&'static str> {
    let loaded = |k| {
        i.report
            .runtime(k)
            .is_some_and(|r| r.status == RuntimeStatus::Loaded)
    };
    match i.req.vendor.as_ref().map(|v| v.value) {
        _ if !loaded(RuntimeKind::Nvml) && !loaded(RuntimeKind::Cuda) => {
            Some("neither NVML nor CUDA could list the GPUs")
        }
        _ => None,
    }
}

/// Skip when nothing requires the check, fail when a requirement exists but the check
/// cannot run: unknown is never a pass.
pub(super) fn cannot_run<T>(
    id: &str,
    req: Option<&Sourced<T>>,
    expected: Option<String>,
    why: &str,
) -> Vec<Check> {
    match req {
        Some(r) => vec![check(
            id,
            Status::Fail,
            expected,
            None,
            format!("required but cannot be checked: {why}"),
            &r.sources,
        )],
        None => vec![check(id, Status::Skip, None, None, why.to_string(), &[])],
    }
}

fn gpu_vendor(i: &Inputs<'_>) -> Vec<Check> {
    let Some(req) = &i.req.vendor else {
        return vec![check(
            "gpu.vendor",
            Status::Skip,
            None,
            None,
            "no vendor required".into(),
            &[],
        )];
    };
    let want = req.value;
    let found: Vec<Vendor> = i.report.devices.iter().filter_map(|d| d.vendor).collect();
    let ok = !found.is_empty() && found.iter().all(|v| *v == want);
    let mut kinds: Vec<String> = found
        .iter()
        .map(|v| format!("{v:?}").to_lowercase())
        .collect();
    kinds.dedup();
    let observed = if found.is_empty() {
        "no accelerator".to_string()
    } else {
        kinds.join(", ")
    };
    let msg = if ok {
        format!("all {} accelerator(s) are {want:?}", found.len()).to_lowercase()
    } else {
        format!("{want:?} accelerators required, found {observed}").to_lowercase()
    };
    vec![check(
        "gpu.vendor",
        if ok { Status::Pass } else { Status::Fail },
        Some(format!("{want:?}").to_lowercase()),
        Some(observed),
        msg,
        &req.sources,
    )]
}

fn gpu_model(i: &Inputs<'_>) -> Vec<Check> {
    let Some(req) = &i.req.models else {
        return vec![check(
            "gpu.model",
            Status::Skip,
            None,
            None,
            "no model required".into(),
            &[],
        )];
    };
    // With a vendor required, its devices; without one, every accelerator, Neuron devices
    // included (a Trainium must not pass for "no GPU" under models that exclude it).
    let devices: Vec<&Device> = if i.req.vendor.is_some() {
        accelerators(i)
    } else {
        i.report.devices.iter().collect()
    };
    let allowed = if req.value.is_empty() {
        "no model (the requirements allow none)".to_string()
    } else {
        req.value.iter().cloned().collect::<Vec<_>>().join(" or ")
    };
    if devices.is_empty() && i.req.models_optional {
        return vec![check(
            "gpu.model",
            Status::Pass,
            Some(format!("{allowed}, or no accelerator")),
            Some("no GPU".into()),
            "no accelerator, which the selectors also admit (they allow nodes without one)".into(),
            &req.sources,
        )];
    }
    if devices.is_empty() {
        return vec![check(
            "gpu.model",
            Status::Fail,
            Some(allowed.clone()),
            Some("no GPU".into()),
            format!("{allowed} was requested and no GPU was found"),
            &req.sources,
        )];
    }
    let mut wrong = Vec::new();
    let mut names = Vec::new();
    for d in &devices {
        let name = d.name.clone().unwrap_or_else(|| "unknown".into());
        let key = d
            .name
            .as_deref()
            .and_then(|n| i.models.model_key(n, d.memory_total_mib));
        if !key.as_ref().is_some_and(|k| req.value.contains(k)) {
            wrong.push(format!("GPU {} {name}", d.index));
        }
        names.push(name);
    }
    names.dedup();
    let observed = names.join(", ");
    if wrong.is_empty() {
        vec![check(
            "gpu.model",
            Status::Pass,
            Some(allowed.clone()),
            Some(observed.clone()),
            format!("{allowed} was requested and {observed} was found"),
            &req.sources,
        )]
    } else {
        vec![check(
            "gpu.model",
            Status::Fail,
            Some(allowed.clone()),
            Some(observed.clone()),
            format!("{allowed} was requested and {} found", wrong.join(", ")),
            &req.sources,
        )]
    }
}

fn gpu_count(i: &Inputs<'_>) -> Vec<Check> {
    if neuron::wanted(i) {
        return neuron::skip("gpu.count", "a Neuron node: see neuron.count");
    }
    let n = accelerators(i).len() as u32;
    let problem = listing_problem(i);
    let mut out = Vec::new();
    if let Some(c) = &i.req.count {
        if let (Some(why), true) = (problem, c.value > 0) {
            out.extend(cannot_run(
                "gpu.count",
                Some(c),
                Some(c.value.to_string()),
                why,
            ));
        } else {
            let ok = n == c.value;
            out.push(check(
                "gpu.count",
                if ok { Status::Pass } else { Status::Fail },
                Some(c.value.to_string()),
                Some(n.to_string()),
                format!("{} GPU(s) expected, {n} found", c.value),
                &c.sources,
            ));
        }
    }
    for sel in i.req.count_selectors.iter().filter(|s| !s.neuron) {
        match problem {
            // As for an exact count of 0: a selector that admits no GPU needs no listing.
            Some(why) if !sel.admits(0) => out.push(check(
                "gpu.count",
                Status::Fail,
                Some(format!("satisfies {}", sel.text())),
                None,
                format!("required but cannot be checked: {why}"),
                &sel.sources(),
            )),
            _ => out.push(count_selector_check("gpu.count", sel, n, "GPU")),
        }
    }
    if let Some(c) = &i.req.min_count {
        let ok = n >= c.value;
        out.push(check(
            "gpu.count",
            if ok { Status::Pass } else { Status::Fail },
            Some(format!("at least {}", c.value)),
            Some(n.to_string()),
            format!(
                "the workload requests {} accelerator(s), {n} found",
                c.value
            ),
            &c.sources,
        ));
    }
    if out.is_empty() {
        out.push(check(
            "gpu.count",
            Status::Skip,
            None,
            Some(n.to_string()),
            "no count required".into(),
            &[],
        ));
    }
    out
}

/// A selector on the device-count label against the `n` devices found.
pub(super) fn count_selector_check(id: &str, sel: &CountSelector, n: u32, noun: &str) -> Check {
    let ok = sel.admits(n);
    check(
        id,
        if ok { Status::Pass } else { Status::Fail },
        Some(format!("satisfies {}", sel.text())),
        Some(n.to_string()),
        format!(
            "{n} {noun}(s) found, which {} {}",
            sel.text(),
            if ok { "allows" } else { "does not allow" }
        ),
        &sel.sources(),
    )
}

fn gpu_memory(i: &Inputs<'_>) -> Vec<Check> {
    if neuron::wanted(i) {
        return neuron::skip("gpu.memory", "a Neuron node: see neuron.memory");
    }
    let Some(req) = &i.req.min_memory_mib else {
        return vec![check(
            "gpu.memory",
            Status::Skip,
            None,
            None,
            "no memory size required".into(),
            &[],
        )];
    };
    let devices = accelerators(i);
    if devices.is_empty() {
        return cannot_run(
            "gpu.memory",
            Some(req),
            Some(format!(">= {} MiB", req.value)),
            "no GPU found",
        );
    }
    let mut bad = Vec::new();
    let mut seen = Vec::new();
    for d in &devices {
        match d.memory_total_mib {
            Some(m) => {
                seen.push(m);
                if m < req.value {
                    bad.push(format!("GPU {} has {m} MiB", d.index));
                }
            }
            None => bad.push(format!(
                "GPU {} memory unknown ({})",
                d.index,
                d.unavailable
                    .get("memory_total_mib")
                    .map_or("no reason", String::as_str)
            )),
        }
    }
    seen.sort_unstable();
    seen.dedup();
    let observed = seen
        .iter()
        .map(|m| format!("{m} MiB"))
        .collect::<Vec<_>>()
        .join(", ");
    let expected = format!(">= {} MiB", req.value);
    if bad.is_empty() {
        vec![check(
            "gpu.memory",
            Status::Pass,
            Some(expected),
            Some(observed.clone()),
            format!(
                "every GPU has {observed}, at least {} MiB required",
                req.value
            ),
            &req.sources,
        )]
    } else {
        vec![check(
            "gpu.memory",
            Status::Fail,
            Some(expected),
            Some(observed),
            format!("at least {} MiB required: {}", req.value, bad.join("; ")),
            &req.sources,
        )]
    }
}

fn runtime_check(i: &Inputs<'_>, id: &str, kind: RuntimeKind) -> Vec<Check> {
    let rt = i.report.runtime(kind);
    let status = rt.map(|r| r.status);
    let needed = i.req.wants_accelerators()
        && i.req
            .vendor
            .as_ref()
            .is_none_or(|v| v.value == Vendor::Nvidia);
    let sources: Vec<Source> = i
        .req
        .models
        .iter()
        .flat_map(|m| m.sources.clone())
        .chain(i.req.vendor.iter().flat_map(|v| v.sources.clone()))
        .chain(i.req.min_count.iter().flat_map(|c| c.sources.clone()))
        .collect();
    let observed = rt.map(|r| match &r.error {
        Some(e) if r.status != RuntimeStatus::Loaded => format!("{}: {e}", r.status.as_str()),
        _ => r.status.as_str().to_string(),
    });
    let name = kind.as_str();
    match (status, needed) {
        (Some(RuntimeStatus::Loaded), _) => vec![check(
            id,
            Status::Pass,
            Some("loaded".into()),
            observed,
            format!(
                "{name} loaded from {}",
                rt.and_then(|r| r.library.clone()).unwrap_or_default()
            ),
            &sources,
        )],
        (_, true) => vec![check(
            id,
            Status::Fail,
            Some("loaded".into()),
            observed.clone(),
            format!(
                "an NVIDIA GPU is required but {name} is {}",
                observed.unwrap_or_else(|| "not probed".into())
            ),
            &sources,
        )],
        (_, false) => vec![check(
            id,
            Status::Skip,
            None,
            observed,
            format!("{name} not loaded and no NVIDIA GPU required"),
            &[],
        )],
    }
}

fn runtime_nvml(i: &Inputs<'_>) -> Vec<Check> {
    runtime_check(i, "runtime.nvml", RuntimeKind::Nvml)
}

fn runtime_cuda(i: &Inputs<'_>) -> Vec<Check> {
    runtime_check(i, "runtime.cuda", RuntimeKind::Cuda)
}

fn version_check(
    id: &str,
    what: &str,
    observed: Option<&str>,
    req: Option<&Sourced<String>>,
) -> Vec<Check> {
    match (req, observed) {
        (None, Some(v)) => vec![check(
            id,
            Status::Pass,
            None,
            Some(v.to_string()),
            format!("{what} {v}; no minimum required"),
            &[],
        )],
        (None, None) => vec![check(
            id,
            Status::Skip,
            None,
            None,
            format!("{what} unknown; no minimum required"),
            &[],
        )],
        (Some(r), None) => cannot_run(
            id,
            Some(r),
            Some(format!(">= {}", r.value)),
            &format!("{what} unknown"),
        ),
        (Some(r), Some(v)) => {
            let ok = compare_versions(v, &r.value) != std::cmp::Ordering::Less;
            vec![check(
                id,
                if ok { Status::Pass } else { Status::Fail },
                Some(format!(">= {}", r.value)),
                Some(v.to_string()),
                format!("{what} {v}, at least {} required", r.value),
                &r.sources,
            )]
        }
    }
}

fn driver_version(i: &Inputs<'_>) -> Vec<Check> {
    version_check(
        "driver.version",
        "driver",
        i.report.driver_version(),
        i.req.min_driver.as_ref(),
    )
}

fn cuda_version(i: &Inputs<'_>) -> Vec<Check> {
    version_check(
        "cuda.version",
        "CUDA",
        i.report.cuda_version(),
        i.req.min_cuda.as_ref(),
    )
}

/// A health check over every GPU: `judge` returns (status, observation) per device, `None`
/// when the device cannot tell.
///
/// A device whose NVML says `unsupported` (the feature's field) is "not supported" has
/// nothing to judge and passes; any other unreadable value is unknown (warn), never healthy.
fn per_device(
    i: &Inputs<'_>,
    id: &str,
    what: &str,
    unsupported: Option<&str>,
    judge: impl Fn(&Device) -> Option<(Status, String)>,
) -> Vec<Check> {
    let devices = nvidia(i.report);
    if devices.is_empty() {
        return vec![check(
            id,
            Status::Skip,
            None,
            None,
            "no GPU to check".into(),
            &[],
        )];
    }
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for d in devices {
        let not_supported =
            unsupported.is_some_and(|f| d.unavailable.get(f).is_some_and(|w| w == "not supported"));
        let verdict = if not_supported {
            Some((Status::Pass, String::new()))
        } else {
            judge(d)
        };
        match verdict {
            Some((Status::Pass, _)) => {}
            Some((status, obs)) => out.push(Check {
                device: Some(format!("GPU {}", d.index)),
                ..check(
                    id,
                    status,
                    None,
                    Some(obs.clone()),
                    format!("GPU {}: {obs}", d.index),
                    &[],
                )
            }),
            None => unknown.push(d.index.to_string()),
        }
    }
    if out.is_empty() {
        let msg = if unknown.is_empty() {
            format!("{what}: all GPUs healthy")
        } else {
            format!(
                "{what}: healthy where known; not reported by GPU {}",
                unknown.join(", ")
            )
        };
        out.push(check(
            id,
            if unknown.is_empty() {
                Status::Pass
            } else {
                Status::Warn
            },
            None,
            None,
            msg,
            &[],
        ));
    }
    out
}

fn health_ecc(i: &Inputs<'_>) -> Vec<Check> {
    per_device(i, "health.ecc", "ECC", Some("ecc.mode_current"), |d| {
        if d.ecc.mode_current == Some(false) {
            return Some((Status::Warn, "ECC is disabled".into()));
        }
        match (d.ecc.volatile_uncorrected, d.ecc.aggregate_uncorrected) {
            (Some(v), _) if v > 0 => Some((
                Status::Fail,
                format!("{v} uncorrectable ECC errors since the driver loaded"),
            )),
            (_, Some(a)) if a > 0 => Some((
                Status::Warn,
                format!("{a} uncorrectable ECC errors over the GPU's life"),
            )),
            (Some(_), _) | (_, Some(_)) => Some((Status::Pass, String::new())),
            (None, None) => None,
        }
    })
}

fn health_remapped_rows(i: &Inputs<'_>) -> Vec<Check> {
    per_device(
        i,
        "health.remapped_rows",
        "row remapping",
        Some("remapped_rows.pending"),
        |d| {
            let r = &d.remapped_rows;
            match (r.failure, r.pending) {
                (Some(true), _) => Some((
                    Status::Fail,
                    "a row remap failed: the GPU needs service".into(),
                )),
                (_, Some(true)) => Some((
                    Status::Fail,
                    format!(
                        "{} uncorrectable row remap(s) pending a GPU reset",
                        r.uncorrectable.unwrap_or(0)
                    ),
                )),
                (Some(false), Some(false)) => Some((Status::Pass, String::new())),
                _ => None,
            }
        },
    )
}

fn health_retired_pages(i: &Inputs<'_>) -> Vec<Check> {
    per_device(
        i,
        "health.retired_pages",
        "page retirement",
        Some("retired_pages.pending"),
        |d| {
            let r = &d.retired_pages;
            match (r.pending, r.double_bit_ecc) {
                (Some(true), _) => Some((
                    Status::Fail,
                    "page retirement pending a driver reload".into(),
                )),
                (_, Some(n)) if n > 0 => Some((
                    Status::Warn,
                    format!("{n} pages retired for double-bit errors"),
                )),
                (Some(false), _) => Some((Status::Pass, String::new())),
                _ => None,
            }
        },
    )
}

fn health_xid(_: &Inputs<'_>) -> Vec<Check> {
    vec![check(
        "health.xid",
        Status::Skip,
        None,
        None,
        "XID events are not collected by this version of the report".into(),
        &[],
    )]
}

/// Reasons that mean the hardware is holding clocks back.
const BAD_REASONS: &[&str] = &[
    "hw_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "sw_thermal_slowdown",
];

fn health_throttle(i: &Inputs<'_>) -> Vec<Check> {
    per_device(i, "health.throttle", "clock throttling", None, |d| {
        let active = d.clock_event_reasons.active.as_ref()?;
        let bad: Vec<&str> = active
            .iter()
            .map(String::as_str)
            .filter(|r| BAD_REASONS.contains(r))
            .collect();
        if bad.is_empty() {
            Some((Status::Pass, String::new()))
        } else {
            Some((
                Status::Fail,
                format!("clocks held back by {}", bad.join(", ")),
            ))
        }
    })
}

fn health_pcie_link(i: &Inputs<'_>) -> Vec<Check> {
    let want_gen = i.req.pcie_gen.as_ref();
    let mut out = per_device(i, "health.pcie_link", "PCIe link", None, |d| {
        let p = &d.pcie;
        let (Some(wc), Some(wm)) = (p.width_current, p.width_max) else {
            return want_gen.map(|w| {
                (
                    Status::Fail,
                    format!("PCIe link width unknown; gen {} required", w.value),
                )
            });
        };
        if let (None, Some(w)) = (p.gen_max, want_gen) {
            return Some((
                Status::Fail,
                format!("PCIe generation unknown; gen {} required", w.value),
            ));
        }
        if wc < wm {
            return Some((Status::Fail, format!("PCIe link runs x{wc} of x{wm}")));
        }
        if let (Some(g), Some(w)) = (p.gen_max, want_gen) {
            if g < w.value {
                return Some((
                    Status::Fail,
                    format!("PCIe gen {g} at most, gen {} expected", w.value),
                ));
            }
        }
        Some((Status::Pass, String::new()))
    });
    if let Some(w) = want_gen {
        for c in &mut out {
            c.sources = w.sources.clone();
            c.expected = Some(format!("gen {}", w.value));
        }
    }
    out
}

/// Which devices a performance check looks at: their id prefix and what to call them.
#[derive(Clone, Copy)]
pub(super) struct Devices {
    prefix: &'static str,
    noun: &'static str,
}

const GPUS: Devices = Devices {
    prefix: "cuda:",
    noun: "GPU",
};
pub(super) const NEURON_CORES: Devices = Devices {
    prefix: "neuron:",
    noun: "Neuron",
};

/// The best throughput per device for a kernel and dtype (own kernels and libraries alike).
fn best_per_device(
    benches: &[Benchmark],
    kernel: Kernel,
    dtype: Option<Dtype>,
    devices: Devices,
) -> BTreeMap<&str, &Benchmark> {
    let mut best: BTreeMap<&str, &Benchmark> = BTreeMap::new();
    for b in benches
        .iter()
        .filter(|b| b.kernel == kernel && b.dtype == dtype && b.device.starts_with(devices.prefix))
    {
        let e = best.entry(b.device.as_str()).or_insert(b);
        if b.throughput.value > e.throughput.value {
            *e = b;
        }
    }
    best
}

/// A host-to-device or device-to-host floor that only the catalog set: it is derived from
/// the device's PCIe link, but what a transfer reaches also depends on the host (a CPU whose
/// PCIe generation is older than the GPU's, as reported for p5 and p4d; GPUs sharing a switch
/// uplink), which the catalog does not hold. Falling short of it warns; an explicit floor still fails.
fn host_linked(kernel: Kernel, floor: &Sourced<f64>) -> bool {
    matches!(kernel, Kernel::H2d | Kernel::D2h) && floor.catalog_only()
}

fn perf_floor(
    i: &Inputs<'_>,
    id: &str,
    (kernel, dtype, devices): (Kernel, Option<Dtype>, Devices),
    floor: Option<&Sourced<f64>>,
    unit: &str,
) -> Vec<Check> {
    let noun = devices.noun;
    let best = best_per_device(&i.report.benchmarks, kernel, dtype, devices);
    if best.is_empty() {
        // The catalog's floors apply when the report carries benchmarks; a floor someone
        // asked for explicitly must be measured.
        let explicit = floor.filter(|f| !f.catalog_only());
        let why = match floor {
            Some(f) if explicit.is_none() => format!(
                "the report has no {noun} benchmark; the catalog floor {:.1} {unit} applies when it has one (accelprobe bench)",
                f.value
            ),
            _ => format!("the report has no {noun} benchmark for it (run accelprobe bench)"),
        };
        return cannot_run(
            id,
            explicit,
            floor.map(|f| format!(">= {:.1} {unit}", f.value)),
            &why,
        );
    }
    let mut out = Vec::new();
    for (dev, b) in best {
        let v = b.throughput.value;
        let wrong = !b.correctness.passed;
        let (status, msg) = match floor {
            _ if wrong => (
                Status::Fail,
                format!(
                    "{dev}: wrong results ({})",
                    b.correctness.failure.as_deref().unwrap_or("check failed")
                ),
            ),
            Some(f) if v < f.value && host_linked(kernel, f) => (
                Status::Warn,
                format!(
                    "{dev}: {v:.1} {unit}, below the catalog floor of {:.1} {unit} ({}); a \
                     warning: the floor follows the GPU's link, and the host's side (its CPU's \
                     PCIe generation, a switch shared by GPUs) is not in the catalog; \
                     --expect min-h2d-gbps makes it a requirement",
                    f.value, b.implementation
                ),
            ),
            Some(f) if v < f.value => (
                Status::Fail,
                format!(
                    "{dev}: {v:.1} {unit}, below the floor of {:.1} {unit} ({})",
                    f.value, b.implementation
                ),
            ),
            Some(f) => (
                Status::Pass,
                format!(
                    "{dev}: {v:.1} {unit}, floor {:.1} {unit} ({})",
                    f.value, b.implementation
                ),
            ),
            None => (
                Status::Pass,
                format!(
                    "{dev}: {v:.1} {unit} ({}); no floor known",
                    b.implementation
                ),
            ),
        };
        out.push(Check {
            device: Some(dev.to_string()),
            ..check(
                id,
                status,
                floor.map(|f| format!(">= {:.1} {unit}", f.value)),
                Some(format!("{v:.1} {unit}")),
                msg,
                floor.map(|f| f.sources.as_slice()).unwrap_or(&[]),
            )
        });
    }
    out
}

fn perf_gemm(i: &Inputs<'_>, dtype: Dtype) -> Vec<Check> {
    let id = format!("perf.gemm.{}", dtype.as_str());
    perf_floor(
        i,
        &id,
        (Kernel::Gemm, Some(dtype), GPUS),
        i.req.min_tflops.get(&dtype),
        "TFLOP/s",
    )
}

fn perf_copy(i: &Inputs<'_>) -> Vec<Check> {
    perf_floor(
        i,
        "perf.copy",
        (Kernel::Copy, None, GPUS),
        i.req.min_copy_gbps.as_ref(),
        "GB/s",
    )
}

fn perf_h2d(i: &Inputs<'_>) -> Vec<Check> {
    if neuron::wanted(i) {
        return neuron::skip("perf.h2d", "a Neuron node: see perf.neuron.h2d");
    }
    perf_transfer(i, "perf.h2d", GPUS)
}

/// Host-to-device copies against the transfer floor, and device-to-host ones when the
/// report has them, per device of `devices`.
pub(super) fn perf_transfer(i: &Inputs<'_>, id: &str, devices: Devices) -> Vec<Check> {
    let floor = i.req.min_transfer_gbps.as_ref();
    let mut out = perf_floor(i, id, (Kernel::H2d, None, devices), floor, "GB/s");
    if !best_per_device(&i.report.benchmarks, Kernel::D2h, None, devices).is_empty() {
        let d2h = perf_floor(i, id, (Kernel::D2h, None, devices), floor, "GB/s");
        out.extend(d2h.into_iter().map(|mut c| {
            c.message = format!("device-to-host {}", c.message);
            c
        }));
    }
    out
}

/// Largest shortfall of a GPU against its best peer that is still accepted.
pub const PEER_SPREAD: f64 = 0.10;

fn perf_peer_spread(i: &Inputs<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    let mut groups: BTreeMap<(Kernel, Option<Dtype>, String), Vec<&Benchmark>> = BTreeMap::new();
    for b in i
        .report
        .benchmarks
        .iter()
        .filter(|b| b.device.starts_with("cuda:") && b.correctness.passed)
    {
        groups
            .entry((b.kernel, b.dtype, b.implementation.clone()))
            .or_default()
            .push(b);
    }
    for ((kernel, dtype, imp), benches) in groups {
        if benches.len() < 2 {
            continue;
        }
        let best = benches
            .iter()
            .map(|b| b.throughput.value)
            .fold(0.0, f64::max);
        for b in benches {
            let ratio = if best > 0.0 {
                b.throughput.value / best
            } else {
                0.0
            };
            if ratio < 1.0 - PEER_SPREAD {
                out.push(Check {
                    device: Some(b.device.clone()),
                    ..check(
                        "perf.peer_spread",
                        Status::Fail,
                        Some(format!(
                            ">= {:.0}% of the best peer",
                            (1.0 - PEER_SPREAD) * 100.0
                        )),
                        Some(format!("{:.0}%", ratio * 100.0)),
                        format!(
                            "{}: {} {} ({imp}) at {:.0}% of the best GPU",
                            b.device,
                            kernel.as_str(),
                            dtype.map_or("", Dtype::as_str),
                            ratio * 100.0
                        ),
                        &[],
                    )
                });
            }
        }
    }
    if out.is_empty() {
        let gpus = i
            .report
            .benchmarks
            .iter()
            .filter(|b| b.device.starts_with("cuda:"))
            .map(|b| b.device.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        out.push(if gpus < 2 {
            check(
                "perf.peer_spread",
                Status::Skip,
                None,
                None,
                "fewer than two GPUs benchmarked".into(),
                &[],
            )
        } else {
            check(
                "perf.peer_spread",
                Status::Pass,
                None,
                None,
                format!(
                    "every GPU within {:.0}% of its best peer",
                    PEER_SPREAD * 100.0
                ),
                &[],
            )
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_dotted() {
        let mut ids: Vec<&str> = REGISTRY.iter().map(|(id, _)| *id).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate check ids");
        assert!(ids.iter().all(|id| id.contains('.')
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')));
    }
}
