//! The checks of AWS Neuron nodes (Inferentia, Trainium): device count, NeuronCores, memory,
//! the runtime, hardware errors and host-device bandwidth. They run when the requirements
//! want Neuron accelerators; on other nodes they are skipped, as the GPU checks are skipped
//! (or left to these) on Neuron nodes.

use super::checks::{cannot_run, check, count_selector_check, Inputs};
use super::requirements::Sourced;
use super::verdict::{Check, Status};
use crate::report::{Device, Report, RuntimeKind, RuntimeStatus, Vendor};

/// Whether the requirements want Neuron accelerators.
pub(super) fn wanted(i: &Inputs<'_>) -> bool {
    i.req.vendor.as_ref().map(|v| v.value) == Some(Vendor::Neuron)
}

pub(super) fn skip(id: &str, why: &str) -> Vec<Check> {
    vec![check(id, Status::Skip, None, None, why.to_string(), &[])]
}

const NOT_NEURON: &str = "no Neuron accelerator required";

/// Why Neuron devices cannot be listed from this report, if they cannot.
fn not_probed(report: &Report) -> Option<&'static str> {
    report.runtime(RuntimeKind::Neuron).is_none().then_some(
        "the report has no Neuron probe (written by an older accelprobe, or with --no-neuron)",
    )
}

/// The device indices below `expected` that the report lacks (`neuron7`).
fn missing(found: &[&Device], expected: u32) -> Vec<String> {
    (0..expected)
        .filter(|ix| !found.iter().any(|d| d.index == *ix))
        .map(|ix| format!("neuron{ix}"))
        .collect()
}

fn count_check(found: &[&Device], want: &Sourced<u32>, exact: bool) -> Check {
    let n = found.len() as u32;
    let ok = if exact {
        n == want.value
    } else {
        n >= want.value
    };
    let absent = missing(found, want.value);
    let mut message = if exact {
        format!("{} Neuron device(s) expected, {n} found", want.value)
    } else {
        format!(
            "the workload requests {} Neuron device(s), {n} found",
            want.value
        )
    };
    if !ok && !absent.is_empty() {
        message.push_str(&format!("; missing: {}", absent.join(", ")));
    }
    check(
        "neuron.count",
        if ok { Status::Pass } else { Status::Fail },
        Some(if exact {
            want.value.to_string()
        } else {
            format!("at least {}", want.value)
        }),
        Some(n.to_string()),
        message,
        &want.sources,
    )
}

pub(super) fn neuron_count(i: &Inputs<'_>) -> Vec<Check> {
    if !wanted(i) {
        return skip("neuron.count", NOT_NEURON);
    }
    if let Some(why) = not_probed(i.report) {
        let req = i.req.count.as_ref().or(i.req.min_count.as_ref());
        return cannot_run("neuron.count", req, None, why);
    }
    let found = i.report.neuron_devices();
    let mut out = Vec::new();
    if let Some(c) = &i.req.count {
        out.push(count_check(&found, c, true));
    }
    if let Some(c) = &i.req.min_count {
        out.push(count_check(&found, c, false));
    }
    for sel in i.req.count_selectors.iter().filter(|s| s.neuron) {
        let n = found.len() as u32;
        out.push(count_selector_check(
            "neuron.count",
            sel,
            n,
            "Neuron device",
        ));
    }
    if out.is_empty() {
        out.push(check(
            "neuron.count",
            Status::Skip,
            None,
            Some(found.len().to_string()),
            "no count required".into(),
            &[],
        ));
    }
    out
}

/// The NeuronCores per device every allowed model has, when they agree.
fn cores_per_device<'a>(
    i: &Inputs<'a>,
) -> Option<(u32, &'a Sourced<std::collections::BTreeSet<String>>)> {
    let models = i.req.models.as_ref()?;
    let mut counts = models.value.iter().map(|k| i.models.neuron_cores(k));
    let first = counts.next()??;
    counts.all(|c| c == Some(first)).then_some((first, models))
}

/// A device's NeuronCore count: its `core_count` file, else (that file is readable by root
/// only, and validation pods are not root) the number of `neuron_core<i>` directories the
/// driver made for it, which anyone may list.
fn core_count(d: &Device) -> Option<u32> {
    let n = d.neuron.as_ref()?;
    n.core_count.or_else(|| {
        (!n.cores.is_empty())
            .then(|| u32::try_from(n.cores.len()).ok())
            .flatten()
    })
}

pub(super) fn neuron_cores(i: &Inputs<'_>) -> Vec<Check> {
    if !wanted(i) {
        return skip("neuron.cores", NOT_NEURON);
    }
    let found = i.report.neuron_devices();
    let mut out = Vec::new();
    if let Some((per, models)) = cores_per_device(i) {
        let mut bad = Vec::new();
        for d in &found {
            match core_count(d) {
                Some(c) if c == per => {}
                Some(c) => bad.push(format!("neuron{} has {c}", d.index)),
                None => bad.push(format!(
                    "neuron{} unknown ({})",
                    d.index,
                    d.unavailable
                        .get("neuron.core_count")
                        .map(String::as_str)
                        .unwrap_or("not read")
                )),
            }
        }
        let status = if found.is_empty() || !bad.is_empty() {
            Status::Fail
        } else {
            Status::Pass
        };
        out.push(check(
            "neuron.cores",
            status,
            Some(format!("{per} per device")),
            Some(if bad.is_empty() {
                format!("{per} on each of {} device(s)", found.len())
            } else {
                bad.join("; ")
            }),
            if found.is_empty() {
                "no Neuron device found".to_string()
            } else if bad.is_empty() {
                format!("every device has {per} NeuronCores")
            } else {
                format!("{per} NeuronCores per device expected: {}", bad.join("; "))
            },
            &models.sources,
        ));
    }
    if let Some(want) = &i.req.min_neuron_cores {
        let total: Option<u32> = found.iter().map(|d| core_count(d)).sum();
        let visible = i
            .report
            .runtime(RuntimeKind::Neuron)
            .and_then(|r| r.neuron.as_ref())
            .and_then(|n| n.cores_visible);
        let have = total.or(visible);
        out.push(match have {
            Some(n) => check(
                "neuron.cores",
                if n >= want.value {
                    Status::Pass
                } else {
                    Status::Fail
                },
                Some(format!("at least {}", want.value)),
                Some(n.to_string()),
                format!(
                    "the workload requests {} NeuronCore(s), the node has {n}",
                    want.value
                ),
                &want.sources,
            ),
            None => cannot_run(
                "neuron.cores",
                Some(want),
                Some(format!("at least {}", want.value)),
                "the NeuronCore count could not be read",
            )
            .remove(0),
        });
    }
    if out.is_empty() {
        return skip("neuron.cores", "no NeuronCore count required");
    }
    out
}

pub(super) fn neuron_memory(i: &Inputs<'_>) -> Vec<Check> {
    if !wanted(i) {
        return skip("neuron.memory", NOT_NEURON);
    }
    let Some(req) = &i.req.min_memory_mib else {
        return skip("neuron.memory", "no memory size required");
    };
    let found = i.report.neuron_devices();
    let known: Vec<(&Device, u64)> = found
        .iter()
        .filter_map(|d| d.memory_total_mib.map(|m| (*d, m)))
        .collect();
    if known.is_empty() {
        // The driver's sysfs tree does not publish device memory: not known is not a pass,
        // and not the node's fault either.
        return vec![check(
            "neuron.memory",
            Status::Skip,
            Some(format!(">= {} MiB", req.value)),
            None,
            "device memory is not exposed to accelprobe on this node (sysfs has no size); \
             not checked"
                .into(),
            &req.sources,
        )];
    }
    let bad: Vec<String> = known
        .iter()
        .filter(|(_, m)| *m < req.value)
        .map(|(d, m)| format!("neuron{} has {m} MiB", d.index))
        .collect();
    vec![check(
        "neuron.memory",
        if bad.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        Some(format!(">= {} MiB", req.value)),
        Some(if bad.is_empty() {
            format!("{} device(s) large enough", known.len())
        } else {
            bad.join("; ")
        }),
        if bad.is_empty() {
            format!("every device has at least {} MiB", req.value)
        } else {
            format!("at least {} MiB required: {}", req.value, bad.join("; "))
        },
        &req.sources,
    )]
}

pub(super) fn neuron_runtime(i: &Inputs<'_>) -> Vec<Check> {
    if !wanted(i) {
        return skip("neuron.runtime", NOT_NEURON);
    }
    let sources = i
        .req
        .vendor
        .as_ref()
        .map(|v| v.sources.clone())
        .unwrap_or_default();
    let Some(rt) = i.report.runtime(RuntimeKind::Neuron) else {
        return vec![check(
            "neuron.runtime",
            Status::Fail,
            Some("loaded".into()),
            None,
            not_probed(i.report).unwrap_or("not probed").to_string(),
            &sources,
        )];
    };
    let cores = rt.neuron.as_ref().map(|n| {
        format!(
            "{}/{} NeuronCores visible",
            n.cores_visible.map_or("?".into(), |c| c.to_string()),
            n.cores_total.map_or("?".into(), |c| c.to_string())
        )
    });
    let (status, message) = match rt.status {
        RuntimeStatus::Loaded => (
            Status::Pass,
            format!(
                "libnrt {} loaded{}",
                rt.version.as_deref().unwrap_or("(version unknown)"),
                cores.map(|c| format!(", {c}")).unwrap_or_default()
            ),
        ),
        // The runtime ships in the workload's image, not with the driver: an image without
        // it can still take the inventory from sysfs.
        RuntimeStatus::Absent => (
            Status::Warn,
            rt.error
                .clone()
                .unwrap_or_else(|| "libnrt not found; devices were read from sysfs only".into()),
        ),
        RuntimeStatus::Error | RuntimeStatus::Timeout => (
            Status::Fail,
            format!(
                "the Neuron runtime failed: {}",
                rt.error.as_deref().unwrap_or("no detail")
            ),
        ),
    };
    vec![check(
        "neuron.runtime",
        status,
        Some("loaded".into()),
        Some(rt.status.as_str().to_string()),
        message,
        &sources,
    )]
}

pub(super) fn health_neuron_errors(i: &Inputs<'_>) -> Vec<Check> {
    let found = i.report.neuron_devices();
    if found.is_empty() {
        return skip("health.neuron_errors", "no Neuron device to check");
    }
    let mut out = Vec::new();
    let mut clean = Vec::new();
    for d in found {
        let n = d.neuron.clone().unwrap_or_default();
        let fatal = [
            ("memory ECC uncorrected", n.mem_ecc_uncorrected),
            ("SRAM ECC uncorrected", n.sram_ecc_uncorrected),
        ];
        let (status, message) = if fatal.iter().all(|(_, v)| v.is_none()) {
            (
                Status::Skip,
                format!(
                    "neuron{}: hardware error counters not read ({})",
                    d.index,
                    d.unavailable
                        .get("neuron.mem_ecc_uncorrected")
                        .map(String::as_str)
                        .unwrap_or("not in the report")
                ),
            )
        } else if let Some((what, v)) = fatal.iter().find(|(_, v)| v.unwrap_or(0) > 0) {
            (
                Status::Fail,
                format!(
                    "neuron{}: {} {what} error(s) since the driver loaded",
                    d.index,
                    v.unwrap_or(0)
                ),
            )
        } else if n.mem_ecc_repairable_uncorrected.unwrap_or(0) > 0 {
            (
                Status::Warn,
                format!(
                    "neuron{}: {} repairable memory ECC error(s)",
                    d.index,
                    n.mem_ecc_repairable_uncorrected.unwrap_or(0)
                ),
            )
        } else {
            clean.push(d.index);
            continue;
        };
        let mut c = check(
            "health.neuron_errors",
            status,
            Some("0".into()),
            None,
            message,
            &[],
        );
        c.device = Some(d.index.to_string());
        out.push(c);
    }
    // Clean devices in one line, so the problems stand out.
    if !clean.is_empty() {
        out.insert(
            0,
            check(
                "health.neuron_errors",
                Status::Pass,
                Some("0".into()),
                Some("0".into()),
                format!(
                    "no hardware errors on {} device(s): {}",
                    clean.len(),
                    clean
                        .iter()
                        .map(|i| format!("neuron{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[],
            ),
        );
    }
    out
}

pub(super) fn perf_neuron_h2d(i: &Inputs<'_>) -> Vec<Check> {
    if !wanted(i) {
        return skip("perf.neuron.h2d", NOT_NEURON);
    }
    super::checks::perf_transfer(i, "perf.neuron.h2d", super::checks::NEURON_CORES)
}
