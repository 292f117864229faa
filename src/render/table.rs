//! The default `report` screen: nvidia-smi's default view, then runtimes, host and errors.
//!
//! The GPU boxes follow nvidia-smi 535's layout column for column (89 characters wide), so an
//! operator who knows that screen reads this one without thinking; only the first header
//! cell names accelprobe instead of NVIDIA-SMI.

use std::fmt::Write;

use super::{fit, fit_tail};
use crate::report::{Device, Report, Runtime, RuntimeStatus};

const WIDTH: usize = 89;

fn na<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "N/A".to_string(), |v| v.to_string())
}

fn on_off(v: Option<bool>) -> String {
    v.map_or_else(
        || "N/A".to_string(),
        |b| if b { "On" } else { "Off" }.to_string(),
    )
}

fn enabled(v: Option<bool>) -> String {
    v.map_or_else(
        || "N/A".to_string(),
        |b| if b { "Enabled" } else { "Disabled" }.to_string(),
    )
}

/// The whole screen.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let gpus: Vec<&Device> = report.devices.iter().filter(|d| !d.is_neuron()).collect();
    let neurons = report.neuron_devices();
    if !gpus.is_empty() || neurons.is_empty() {
        gpu_box(&mut out, report, &gpus);
        if !gpus.is_empty() {
            out.push('\n');
            processes_box(&mut out, &gpus);
        }
    }
    if !neurons.is_empty() {
        if !gpus.is_empty() {
            out.push('\n');
        }
        neuron_box(&mut out, report, &neurons);
    }
    out.push('\n');
    runtimes_section(&mut out, report);
    host_section(&mut out, report);
    errors_section(&mut out, report);
    out
}

fn rule(out: &mut String, edge: char) {
    let _ = writeln!(out, "{edge}{}{edge}", "-".repeat(WIDTH - 2));
}

fn gpu_box(out: &mut String, report: &Report, devices: &[&Device]) {
    rule(out, '+');
    let tool = format!("{} {}", report.tool.name, report.tool.version);
    let _ = writeln!(
        out,
        "| {:<34}Driver Version: {:<13}CUDA Version: {:<9}|",
        fit(&tool, 33),
        fit(&na(report.driver_version()), 12),
        fit(&na(report.cuda_version()), 8),
    );
    if devices.is_empty() {
        rule(out, '+');
        let _ = writeln!(
            out,
            "No accelerator found. See the runtimes below for the libraries tried."
        );
        return;
    }
    let _ = writeln!(
        out,
        "|-----------------------------------------+----------------------+----------------------+"
    );
    let _ = writeln!(
        out,
        "| GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC |"
    );
    let _ = writeln!(
        out,
        "| Fan  Temp   Perf          Pwr:Usage/Cap |         Memory-Usage | GPU-Util  Compute M. |"
    );
    let _ = writeln!(
        out,
        "|                                         |                      |               MIG M. |"
    );
    let _ = writeln!(
        out,
        "|=========================================+======================+======================|"
    );
    for d in devices {
        gpu_rows(out, d);
        let _ = writeln!(out, "+-----------------------------------------+----------------------+----------------------+");
    }
}

fn gpu_rows(out: &mut String, d: &Device) {
    // nvidia-smi: "Off" when ECC is supported but disabled, "N/A" when unknown.
    let ecc = match d.ecc.mode_current {
        Some(false) => "Off".to_string(),
        _ => na(d.ecc.volatile_uncorrected),
    };
    let _ = writeln!(
        out,
        "| {:>3}  {:<30} {:<3} | {:<16} {:>3} | {:>20} |",
        d.index,
        fit(&na(d.name.as_deref()), 30),
        on_off(d.persistence_mode),
        fit(&na(d.pci_bus_id.as_deref()), 16),
        on_off(d.display_active),
        fit(&ecc, 20),
    );
    let fan = d
        .fan_speed_percent
        .map_or_else(|| "N/A".to_string(), |f| format!("{f}%"));
    let temp = d
        .temperature_c
        .map_or_else(|| "N/A".to_string(), |t| format!("{t}C"));
    let w = |v: Option<f64>| v.map_or_else(|| "N/A".to_string(), |w| format!("{w:.0}W"));
    let power = format!("{} / {:>4}", w(d.power_draw_w), w(d.power_limit_w));
    let memory = memory_cell(d.memory_used_mib, d.memory_total_mib);
    let util = d
        .utilization_gpu_percent
        .map_or_else(|| "N/A".to_string(), |u| format!("{u}%"));
    let _ = writeln!(
        out,
        "|{:>4}  {:>4}    {:<3}{:>23} | {:>20} | {:>7}{:>13} |",
        fit(&fan, 4),
        fit(&temp, 4),
        fit(&na(d.performance_state.as_deref()), 3),
        fit(&power, 23),
        fit(&memory, 20),
        fit(&util, 7),
        compute_mode_cell(d.compute_mode.as_deref()),
    );
    let mig = match d.mig.mode_current {
        None => "N/A".to_string(),
        some => enabled(some),
    };
    let _ = writeln!(out, "|{:41}|{:22}| {:>20} |", "", "", mig);
}

/// `used / total` in MiB, in the 20 characters of nvidia-smi's column: on GPUs with 100 GiB
/// and more (H200, B200) the spaces around the slash go, so neither number is cut.
fn memory_cell(used: Option<u64>, total: Option<u64>) -> String {
    let mib = |v: Option<u64>| v.map_or_else(|| "N/A".to_string(), |m| format!("{m}MiB"));
    let spaced = format!("{} / {}", mib(used), mib(total));
    if spaced.len() <= 20 {
        spaced
    } else {
        format!("{}/{}", mib(used), mib(total))
    }
}

/// Compute mode as nvidia-smi's table abbreviates it.
fn compute_mode_cell(mode: Option<&str>) -> String {
    match mode {
        None => "N/A".to_string(),
        Some("Exclusive_Thread") => "E. Thread".to_string(),
        Some("Exclusive_Process") => "E. Process".to_string(),
        Some(other) => fit(other, 12),
    }
}

fn processes_box(out: &mut String, devices: &[&Device]) {
    rule(out, '+');
    let _ = writeln!(out, "| {:<85} |", "Processes:");
    let _ = writeln!(
        out,
        "|  GPU   GI   CI        PID   Type   Process name                            GPU Memory |"
    );
    let _ = writeln!(
        out,
        "|        ID   ID                                                             Usage      |"
    );
    let _ = writeln!(out, "|{}|", "=".repeat(WIDTH - 2));
    let mut any = false;
    let mut unknown = Vec::new();
    for d in devices {
        match &d.processes {
            Some(list) => {
                for p in list {
                    any = true;
                    let mem = p
                        .used_memory_mib
                        .map_or_else(|| "N/A".to_string(), |m| format!("{m}MiB"));
                    let _ = writeln!(
                        out,
                        "|  {:>3}   {:>3}  {:>3}{:>10}{:>7}   {:<38}{:>12} |",
                        d.index,
                        na(p.gpu_instance_id),
                        na(p.compute_instance_id),
                        p.pid,
                        fit(&p.kind, 6),
                        fit_tail(&na(p.name.as_deref()), 38),
                        fit(&mem, 11),
                    );
                }
            }
            None => unknown.push(d.index.to_string()),
        }
    }
    if !any {
        let _ = writeln!(out, "| {:<85} |", " No running processes found");
    }
    if !unknown.is_empty() {
        let _ = writeln!(
            out,
            "| {:<85} |",
            fit(
                &format!(" Process list not readable on GPU {}", unknown.join(", ")),
                85
            )
        );
    }
    rule(out, '+');
}

/// A neuron-ls-like table of the Neuron devices, 89 characters wide like the GPU boxes, then
/// a line per device with hardware errors.
fn neuron_box(out: &mut String, report: &Report, devices: &[&Device]) {
    let sep =
        "+--------+--------------+--------+--------------------+--------------+------------------+";
    let row = |out: &mut String, cells: [&str; 6]| {
        let _ = writeln!(
            out,
            "| {:<6} | {:<12} | {:<6} | {:<18} | {:<12} | {:<16} |",
            fit(cells[0], 6),
            fit(cells[1], 12),
            fit(cells[2], 6),
            fit(cells[3], 18),
            fit(cells[4], 12),
            fit(cells[5], 16),
        );
    };
    let rt = report.runtime(crate::report::RuntimeKind::Neuron);
    let driver = rt.and_then(|r| r.driver_version.as_deref());
    let runtime = rt.and_then(|r| r.version.as_deref());
    let _ = writeln!(out, "{sep}");
    let _ = writeln!(
        out,
        "| {:<85} |",
        fit(
            &format!(
                "{} {}    Neuron Driver: {}    Neuron Runtime: {}",
                report.tool.name,
                report.tool.version,
                na(driver),
                na(runtime)
            ),
            85
        )
    );
    let _ = writeln!(out, "{sep}");
    row(
        out,
        ["NEURON", "NAME", "NEURON", "MEMORY", "PCI BDF", "CONNECTED"],
    );
    row(out, ["DEVICE", "", "CORES", "USED / TOTAL", "", "DEVICES"]);
    let _ = writeln!(out, "{sep}");
    let mut faults = Vec::new();
    for d in devices {
        let n = d.neuron.as_ref();
        let cores = n
            .and_then(|n| n.core_count)
            .map(|c| c.to_string())
            .or_else(|| {
                n.filter(|n| !n.cores.is_empty())
                    .map(|n| format!("{}*", n.cores.len()))
            })
            .unwrap_or_else(|| "N/A".to_string());
        let mib = |v: Option<u64>| v.map_or_else(|| "N/A".to_string(), |m| format!("{m}MiB"));
        let memory = format!("{} / {}", mib(d.memory_used_mib), mib(d.memory_total_mib));
        let connected = n
            .and_then(|n| n.connected_devices.as_ref())
            .map(|c| {
                c.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "N/A".to_string());
        let index = d.index.to_string();
        row(
            out,
            [
                &index,
                &na(d.name.as_deref()),
                &cores,
                &memory,
                &na(d.pci_bus_id.as_deref()),
                &connected,
            ],
        );
        if let Some(n) = n {
            for (label, v) in n.hardware_errors() {
                if let Some(c) = v.filter(|&c| c > 0) {
                    faults.push(format!("device {} {label} {c}", d.index));
                }
            }
        }
    }
    let _ = writeln!(out, "{sep}");
    if devices.iter().any(|d| {
        d.neuron
            .as_ref()
            .is_some_and(|n| n.core_count.is_none() && !n.cores.is_empty())
    }) {
        let _ = writeln!(
            out,
            "* core_count unreadable; cores counted from the neuron_core<i> directories"
        );
    }
    if !faults.is_empty() {
        let _ = writeln!(out, "Neuron hardware errors: {}", faults.join("; "));
    }
}

fn runtime_line(rt: &Runtime) -> String {
    let mut facts = Vec::new();
    if let Some(v) = &rt.version {
        facts.push(format!("version {v}"));
    }
    if let Some(v) = &rt.driver_version {
        facts.push(format!("driver {v}"));
    }
    if let Some(v) = &rt.cuda_version {
        facts.push(format!("CUDA {v}"));
    }
    if let Some(n) = rt.device_count {
        facts.push(format!("{n} device{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(nr) = &rt.neuron {
        if let Some(t) = nr.cores_total {
            let visible = nr
                .cores_visible
                .map_or_else(|| "N/A".to_string(), |v| v.to_string());
            facts.push(format!("{visible} of {t} NeuronCores visible"));
        }
        match (&nr.instance_family, &nr.instance_size) {
            (Some(f), Some(s)) => facts.push(format!("{f} {s}")),
            (Some(f), None) => facts.push(f.clone()),
            _ => {}
        }
    }
    let mut line = format!("  {:<7}{:<9}", rt.name.as_str(), rt.status.as_str());
    if let Some(lib) = &rt.library {
        line.push_str(lib);
        if !facts.is_empty() {
            let _ = write!(line, " ({})", facts.join(", "));
        }
    }
    if rt.status != RuntimeStatus::Loaded {
        if let Some(e) = &rt.error {
            let _ = write!(line, "{}{e}", if rt.library.is_some() { ": " } else { "" });
        }
    }
    line
}

fn runtimes_section(out: &mut String, report: &Report) {
    let _ = writeln!(out, "Runtimes:");
    for rt in &report.runtimes {
        let _ = writeln!(out, "{}", runtime_line(rt));
        if rt.status == RuntimeStatus::Absent && !rt.tried.is_empty() {
            let tried: Vec<&str> = rt.tried.iter().map(|t| t.path.as_str()).collect();
            let _ = writeln!(out, "         tried: {}", tried.join(", "));
        }
    }
}

fn host_section(out: &mut String, report: &Report) {
    let h = &report.host;
    let mut parts = vec![na(h.hostname.as_deref())];
    if let Some(t) = &h.instance_type {
        parts.push(t.clone());
    }
    if let Some(os) = &h.os {
        parts.push(os.clone());
    }
    if let Some(k) = &h.kernel {
        parts.push(format!("kernel {k}"));
    }
    match (h.cpu_count, &h.cpu_model) {
        (Some(n), Some(m)) => parts.push(format!("{n} x {m}")),
        (Some(n), None) => parts.push(format!("{n} CPUs")),
        _ => {}
    }
    if let Some(m) = h.memory_total_mib {
        parts.push(format!("{:.1} GiB", m as f64 / 1024.0));
    }
    let _ = writeln!(out, "Host: {}", parts.join(" | "));
    if let Some(k) = &h.kubernetes {
        let _ = writeln!(
            out,
            "Kubernetes: node {}, pod {}/{}",
            na(k.node_name.as_deref()),
            na(k.pod_namespace.as_deref()),
            na(k.pod_name.as_deref())
        );
    }
}

fn errors_section(out: &mut String, report: &Report) {
    if report.errors.is_empty() {
        return;
    }
    let _ = writeln!(out, "Errors ({}):", report.errors.len());
    for e in &report.errors {
        let dev = e.device.map(|d| format!(" device {d}")).unwrap_or_default();
        let code = e
            .code
            .as_deref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}{dev} {}: {}{code}",
            e.runtime.as_str(),
            e.call,
            e.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names_keep_their_tail() {
        assert_eq!(fit_tail("python", 38), "python");
        let long = "/opt/conda/envs/train/bin/python3.11 -m torch.distributed.run";
        let cut = fit_tail(long, 38);
        assert_eq!(cut.chars().count(), 38);
        assert!(cut.starts_with("...") && cut.ends_with("distributed.run"));
    }

    #[test]
    fn memory_of_large_gpus_fits_without_cutting_a_number() {
        assert_eq!(memory_cell(Some(1), Some(46068)), "1MiB / 46068MiB");
        assert_eq!(memory_cell(Some(80000), Some(81559)), "80000MiB / 81559MiB");
        assert_eq!(
            memory_cell(Some(140000), Some(143771)),
            "140000MiB/143771MiB"
        );
        assert_eq!(memory_cell(None, Some(143771)), "N/A / 143771MiB");
        assert!(memory_cell(Some(190000), Some(191000)).len() <= 20);
    }

    #[test]
    fn names_are_cut_with_ellipsis() {
        assert_eq!(fit("NVIDIA L40S", 25), "NVIDIA L40S");
        assert_eq!(
            fit("NVIDIA A100-SXM4-80GB-EXTRA-LONG", 18),
            "NVIDIA A100-SXM..."
        );
    }
}
