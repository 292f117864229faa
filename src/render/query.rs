//! nvidia-smi's query mode: `--query-gpu=FIELD,... --format=csv[,noheader][,nounits]`.
//!
//! Field names, header spellings, units and value formats follow nvidia-smi so scripts written
//! against it keep working. A value that could not be read prints `[N/A]`.

use crate::error::Error;
use crate::report::{Device, Report};

/// One rendered value.
enum Val {
    Text(String),
    /// A number with the unit nvidia-smi appends (dropped with `nounits`).
    Num(String, &'static str),
    NotAvailable,
}

type Getter = fn(&Report, &Device) -> Val;

/// A query field: accepted names (first is canonical), header text, value getter.
pub struct Field {
    pub names: &'static [&'static str],
    pub header: &'static str,
    get: Getter,
}

fn text(v: Option<impl ToString>) -> Val {
    v.map_or(Val::NotAvailable, |s| Val::Text(s.to_string()))
}

fn num(v: Option<impl ToString>, unit: &'static str) -> Val {
    v.map_or(Val::NotAvailable, |s| Val::Num(s.to_string(), unit))
}

fn enabled(v: Option<bool>) -> Val {
    text(v.map(|b| if b { "Enabled" } else { "Disabled" }))
}

fn yes_no(v: Option<bool>) -> Val {
    text(v.map(|b| if b { "Yes" } else { "No" }))
}

/// A reason bit mask as nvidia-smi prints it: `0x0000000000000001`.
fn mask(v: Option<u64>) -> Val {
    text(v.map(|m| format!("0x{m:016X}")))
}

/// One reason bit as nvidia-smi prints it: `Active` or `Not Active`.
fn reason(d: &Device, bit: u64) -> Val {
    text(
        d.clock_event_reasons
            .active_mask
            .map(|m| if m & bit != 0 { "Active" } else { "Not Active" }),
    )
}

/// The report's time as nvidia-smi prints `timestamp`: `2026/11/29 08:05:12.345`.
fn timestamp(rfc3339: &str) -> Val {
    match (rfc3339.get(..10), rfc3339.get(11..19)) {
        (Some(date), Some(time)) => {
            let millis = rfc3339
                .get(19..)
                .and_then(|rest| rest.strip_prefix('.'))
                .map(|f| {
                    f.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
                .map(|f| format!("{f:0<3}")[..3].to_string())
                .unwrap_or_else(|| "000".into());
            Val::Text(format!("{} {time}.{millis}", date.replace('-', "/")))
        }
        _ => Val::NotAvailable,
    }
}

/// A part of the PCI bus id (`00000000:30:00.0`) as nvidia-smi prints `pci.domain` (`0x0000`),
/// `pci.bus` (`0x30`) and `pci.device` (`0x00`).
fn pci_part(d: &Device, part: usize) -> Val {
    let parsed = d.pci_bus_id.as_deref().and_then(|id| {
        let (domain, rest) = id.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let device = rest.split('.').next()?;
        let n = |s: &str| u32::from_str_radix(s, 16).ok();
        Some([n(domain)?, n(bus)?, n(device)?])
    });
    text(parsed.map(|p| match part {
        0 => format!("0x{:04X}", p[0]),
        _ => format!("0x{:02X}", p[part]),
    }))
}

fn watts(v: Option<f64>) -> Val {
    num(v.map(|w| format!("{w:.2}")), "W")
}

macro_rules! field {
    ([$($name:expr),+], $header:expr, |$r:ident, $d:ident| $body:expr) => {
        Field {
            names: &[$($name),+],
            header: $header,
            get: |$r: &Report, $d: &Device| { let _ = ($r, $d); $body },
        }
    };
}

/// Every supported `--query-gpu` field.
#[rustfmt::skip]
pub static FIELDS: &[Field] = &[
    field!(["index"], "index", |r, d| Val::Text(d.index.to_string())),
    field!(["count"], "count", |r, d| Val::Text(r.devices.len().to_string())),
    field!(["name", "gpu_name"], "name", |r, d| text(d.name.as_ref())),
    field!(["uuid", "gpu_uuid"], "uuid", |r, d| text(d.uuid.as_ref())),
    field!(["serial", "gpu_serial"], "serial", |r, d| text(d.serial.as_ref())),
    field!(["pci.bus_id", "gpu_bus_id"], "pci.bus_id", |r, d| text(d.pci_bus_id.as_ref())),
    field!(["driver_version"], "driver_version", |r, d| text(r.driver_version())),
    field!(["persistence_mode"], "persistence_mode", |r, d| enabled(d.persistence_mode)),
    field!(["display_active"], "display_active", |r, d| enabled(d.display_active)),
    field!(["pstate"], "pstate", |r, d| text(d.performance_state.as_ref())),
    field!(["temperature.gpu"], "temperature.gpu", |r, d| text(d.temperature_c)),
    field!(["fan.speed"], "fan.speed [%]", |r, d| num(d.fan_speed_percent, "%")),
    field!(["power.draw"], "power.draw [W]", |r, d| watts(d.power_draw_w)),
    field!(["power.limit"], "power.limit [W]", |r, d| watts(d.power_management_limit_w)),
    field!(["enforced.power.limit"], "enforced.power.limit [W]", |r, d| watts(d.power_limit_w)),
    field!(["power.default_limit"], "power.default_limit [W]", |r, d| watts(d.power_default_limit_w)),
    field!(["memory.total"], "memory.total [MiB]", |r, d| num(d.memory_total_mib, "MiB")),
    field!(["memory.reserved"], "memory.reserved [MiB]", |r, d| num(d.memory_reserved_mib, "MiB")),
    field!(["memory.used"], "memory.used [MiB]", |r, d| num(d.memory_used_mib, "MiB")),
    field!(["memory.free"], "memory.free [MiB]", |r, d| num(d.memory_free_mib, "MiB")),
    field!(["utilization.gpu"], "utilization.gpu [%]", |r, d| num(d.utilization_gpu_percent, "%")),
    field!(["utilization.memory"], "utilization.memory [%]", |r, d| num(d.utilization_memory_percent, "%")),
    field!(["ecc.mode.current"], "ecc.mode.current", |r, d| enabled(d.ecc.mode_current)),
    field!(["ecc.mode.pending"], "ecc.mode.pending", |r, d| enabled(d.ecc.mode_pending)),
    field!(["ecc.errors.corrected.volatile.total"], "ecc.errors.corrected.volatile.total", |r, d| text(d.ecc.volatile_corrected)),
    field!(["ecc.errors.uncorrected.volatile.total"], "ecc.errors.uncorrected.volatile.total", |r, d| text(d.ecc.volatile_uncorrected)),
    field!(["ecc.errors.corrected.aggregate.total"], "ecc.errors.corrected.aggregate.total", |r, d| text(d.ecc.aggregate_corrected)),
    field!(["ecc.errors.uncorrected.aggregate.total"], "ecc.errors.uncorrected.aggregate.total", |r, d| text(d.ecc.aggregate_uncorrected)),
    field!(["retired_pages.single_bit_ecc.count", "retired_pages.sbe"], "retired_pages.single_bit_ecc.count", |r, d| text(d.retired_pages.single_bit_ecc)),
    field!(["retired_pages.double_bit.count", "retired_pages.dbe"], "retired_pages.double_bit.count", |r, d| text(d.retired_pages.double_bit_ecc)),
    field!(["retired_pages.pending"], "retired_pages.pending", |r, d| yes_no(d.retired_pages.pending)),
    field!(["remapped_rows.correctable"], "remapped_rows.correctable", |r, d| text(d.remapped_rows.correctable)),
    field!(["remapped_rows.uncorrectable"], "remapped_rows.uncorrectable", |r, d| text(d.remapped_rows.uncorrectable)),
    field!(["remapped_rows.pending"], "remapped_rows.pending", |r, d| yes_no(d.remapped_rows.pending)),
    field!(["remapped_rows.failure"], "remapped_rows.failure", |r, d| yes_no(d.remapped_rows.failure)),
    field!(["compute_mode"], "compute_mode", |r, d| text(d.compute_mode.as_ref())),
    field!(["mig.mode.current"], "mig.mode.current", |r, d| enabled(d.mig.mode_current)),
    field!(["mig.mode.pending"], "mig.mode.pending", |r, d| enabled(d.mig.mode_pending)),
    field!(["clocks.gr", "clocks.current.graphics"], "clocks.current.graphics [MHz]", |r, d| num(d.clocks.graphics_mhz, "MHz")),
    field!(["clocks.sm", "clocks.current.sm"], "clocks.current.sm [MHz]", |r, d| num(d.clocks.sm_mhz, "MHz")),
    field!(["clocks.mem", "clocks.current.memory"], "clocks.current.memory [MHz]", |r, d| num(d.clocks.memory_mhz, "MHz")),
    field!(["clocks.max.gr", "clocks.max.graphics"], "clocks.max.graphics [MHz]", |r, d| num(d.clocks.max_graphics_mhz, "MHz")),
    field!(["clocks.max.sm"], "clocks.max.sm [MHz]", |r, d| num(d.clocks.max_sm_mhz, "MHz")),
    field!(["clocks.max.mem", "clocks.max.memory"], "clocks.max.memory [MHz]", |r, d| num(d.clocks.max_memory_mhz, "MHz")),
    field!(["pcie.link.gen.current", "pcie.link.gen.gpucurrent"], "pcie.link.gen.current", |r, d| text(d.pcie.gen_current)),
    field!(["pcie.link.gen.max"], "pcie.link.gen.max", |r, d| text(d.pcie.gen_max)),
    field!(["pcie.link.width.current"], "pcie.link.width.current", |r, d| text(d.pcie.width_current)),
    field!(["pcie.link.width.max"], "pcie.link.width.max", |r, d| text(d.pcie.width_max)),
    field!(["clocks_event_reasons.active"], "clocks_event_reasons.active", |r, d| mask(d.clock_event_reasons.active_mask)),
    field!(["clocks_throttle_reasons.active"], "clocks_throttle_reasons.active", |r, d| mask(d.clock_event_reasons.active_mask)),
    field!(["clocks_event_reasons.supported"], "clocks_event_reasons.supported", |r, d| mask(d.clock_event_reasons.supported_mask)),
    field!(["clocks_throttle_reasons.supported"], "clocks_throttle_reasons.supported", |r, d| mask(d.clock_event_reasons.supported_mask)),
    field!(["compute_cap"], "compute_cap", |r, d| text(d.compute_capability.as_ref())),
    field!(["timestamp"], "timestamp", |r, d| timestamp(&r.created_at)),
    field!(["pci.domain"], "pci.domain", |r, d| pci_part(d, 0)),
    field!(["pci.bus"], "pci.bus", |r, d| pci_part(d, 1)),
    field!(["pci.device"], "pci.device", |r, d| pci_part(d, 2)),
    field!(["clocks_event_reasons.gpu_idle"], "clocks_event_reasons.gpu_idle", |r, d| reason(d, 0x1)),
    field!(["clocks_throttle_reasons.gpu_idle"], "clocks_throttle_reasons.gpu_idle", |r, d| reason(d, 0x1)),
    field!(["clocks_event_reasons.applications_clocks_setting"], "clocks_event_reasons.applications_clocks_setting", |r, d| reason(d, 0x2)),
    field!(["clocks_throttle_reasons.applications_clocks_setting"], "clocks_throttle_reasons.applications_clocks_setting", |r, d| reason(d, 0x2)),
    field!(["clocks_event_reasons.sw_power_cap"], "clocks_event_reasons.sw_power_cap", |r, d| reason(d, 0x4)),
    field!(["clocks_throttle_reasons.sw_power_cap"], "clocks_throttle_reasons.sw_power_cap", |r, d| reason(d, 0x4)),
    field!(["clocks_event_reasons.hw_slowdown"], "clocks_event_reasons.hw_slowdown", |r, d| reason(d, 0x8)),
    field!(["clocks_throttle_reasons.hw_slowdown"], "clocks_throttle_reasons.hw_slowdown", |r, d| reason(d, 0x8)),
    field!(["clocks_event_reasons.sync_boost"], "clocks_event_reasons.sync_boost", |r, d| reason(d, 0x10)),
    field!(["clocks_throttle_reasons.sync_boost"], "clocks_throttle_reasons.sync_boost", |r, d| reason(d, 0x10)),
    field!(["clocks_event_reasons.sw_thermal_slowdown"], "clocks_event_reasons.sw_thermal_slowdown", |r, d| reason(d, 0x20)),
    field!(["clocks_throttle_reasons.sw_thermal_slowdown"], "clocks_throttle_reasons.sw_thermal_slowdown", |r, d| reason(d, 0x20)),
    field!(["clocks_event_reasons.hw_thermal_slowdown"], "clocks_event_reasons.hw_thermal_slowdown", |r, d| reason(d, 0x40)),
    field!(["clocks_throttle_reasons.hw_thermal_slowdown"], "clocks_throttle_reasons.hw_thermal_slowdown", |r, d| reason(d, 0x40)),
    field!(["clocks_event_reasons.hw_power_brake_slowdown"], "clocks_event_reasons.hw_power_brake_slowdown", |r, d| reason(d, 0x80)),
    field!(["clocks_throttle_reasons.hw_power_brake_slowdown"], "clocks_throttle_reasons.hw_power_brake_slowdown", |r, d| reason(d, 0x80)),
];

/// Look up a field by any of its names.
pub fn find(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.names.contains(&name))
}

/// All canonical field names, comma separated (for error messages and docs).
pub fn valid_names() -> String {
    FIELDS
        .iter()
        .map(|f| f.names[0])
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolve a `--query-gpu` list, refusing unknown names.
pub fn parse_fields(list: &str) -> Result<Vec<&'static Field>, Error> {
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Err(Error::Usage(format!(
            "--query-gpu needs at least one field; valid fields: {}",
            valid_names()
        )));
    }
    names
        .into_iter()
        .map(|n| {
            find(n).ok_or_else(|| Error::UnknownQueryField {
                field: n.to_string(),
                valid: valid_names(),
            })
        })
        .collect()
}

/// Render the CSV: one line per device, fields joined by `, ` as nvidia-smi does.
pub fn csv(report: &Report, fields: &[&Field], header: bool, units: bool) -> String {
    let mut out = String::new();
    if header {
        let names: Vec<&str> = fields.iter().map(|f| f.header).collect();
        out.push_str(&names.join(", "));
        out.push('\n');
    }
    for d in &report.devices {
        let vals: Vec<String> = fields
            .iter()
            .map(|f| match (f.get)(report, d) {
                Val::Text(s) => s,
                Val::Num(s, unit) if units => format!("{s} {unit}"),
                Val::Num(s, _) => s,
                Val::NotAvailable => "[N/A]".to_string(),
            })
            .collect();
        out.push_str(&vals.join(", "));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut all: Vec<&str> = FIELDS
            .iter()
            .flat_map(|f| f.names.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn unknown_field_lists_valid_names() {
        let err = parse_fields("name,bogus").err().expect("must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("'bogus'") && msg.contains("memory.total"),
            "{msg}"
        );
    }

    #[test]
    fn csv_units_and_na() {
        let report_json = r#"{"schema_version":1,"tool":{"name":"accelprobe","version":"0"},"id":"x","created_at":"t",
            "host":{},"runtimes":[],"errors":[],
            "devices":[{"index":0,"name":"NVIDIA L4","memory_total_mib":23034,"power_draw_w":12.345}]}"#;
        let r = Report::parse_json(report_json).unwrap();
        let f = parse_fields("name,memory.total,power.draw,fan.speed").unwrap();
        assert_eq!(
            csv(&r, &f, true, true),
            "name, memory.total [MiB], power.draw [W], fan.speed [%]\nNVIDIA L4, 23034 MiB, 12.35 W, [N/A]\n"
        );
        assert_eq!(
            csv(&r, &f, false, false),
            "NVIDIA L4, 23034, 12.35, [N/A]\n"
        );
    }
}
