//! AWS Neuron backend: the devices from the driver's sysfs tree, the runtime from `libnrt`.
//!
//! **Inventory** comes from `<root>/sys/devices/virtual/neuron_device/neuron<N>/` (`root` is
//! `--sysfs-root`, `/` by default), in the layout of the Neuron driver before 2.31 ("legacy"),
//! as built by `nsysfsmetric_register` in aws-neuron/aws-neuron-driver
//! `neuron_sysfs_metrics.c` (commit 6bbfbe2346d88717b6fde8c17a09979789459cd6) and listed in
//! the project's reference (`runtimes.md` §3, driver 2.24.7.0):
//!
//! | file (under `neuron<N>/`) | report field |
//! |---|---|
//! | `info/architecture/device_name` | `name` |
//! | `info/serial_number` | `serial` |
//! | `device` (symlink into the PCI tree, when there is one) | `pci_bus_id` (its last `dddd:bb:dd.f` component) |
//! | `info/architecture/arch_type` | `neuron.arch_type` |
//! | `info/architecture/instance_type` | `neuron.instance_type` |
//! | `core_count` (0400, root only) | `neuron.core_count` |
//! | `connected_devices` (0400, root only; `"3, 5"`) | `neuron.connected_devices` |
//! | `stats/hardware/{mem_ecc_uncorrected,mem_ecc_repairable_uncorrected,sram_ecc_uncorrected}` | `neuron.*` of the same name |
//! | `neuron_core<i>/info/architecture/arch_type` | `neuron.cores[i].arch_type` |
//! | `neuron_core<i>/stats/memory_usage/device_mem/<category>/total`, summed | `neuron.cores[i].memory_used_bytes` |
//!
//! and `<root>/sys/module/neuron/version` is the runtime entry's `driver_version`. No sysfs
//! file gives a device's memory size, so `memory_total_mib` stays null with that reason.
//!
//! Neuron driver 2.31 reorganised the tree incompatibly (Neuron documentation v2.33.0, "Neuron
//! Sysfs User Guide"). The new paths could not be verified from any source available when
//! this was written, so they are not guessed: a device directory without any of the legacy
//! entries gets `sysfs_layout: null` and an error that says so, and its fields stay null with
//! that reason.
//!
//! A file that cannot be read is never reported as 0: its field is null and the device's
//! `unavailable` map says why (`permission denied: core_count is readable by root only
//! (0400)`, `not exposed: … does not exist`, `unparseable: …`).
//!
//! **Runtime**: `libnrt.so.1` (or `--neuron-lib`, or the Neuron SDK's
//! `/opt/aws/neuron/lib/libnrt.so.1`) is opened with `libloading` on a probe thread under the
//! common deadline ([`super::guard`]); every symbol is looked up just before its call, so a
//! missing one is an error entry, never a panic. Calls, in order: `nrt_get_total_vnc_count`
//! (allowed before init), `nrt_init(NRT_FRAMEWORK_TYPE_NO_FW, "", "")`,
//! `nrt_get_visible_vnc_count`, `nrt_get_version`, `nrt_get_instance_info`, `nrt_close`.
//! The library is never unloaded (the real runtime starts threads of its own).

use std::ffi::{c_char, c_int};
use std::io::ErrorKind as IoKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::guard::{guarded, spawn_worker, Slot};
use super::util::{fill_missing_reasons, mib_from_bytes};
use crate::report::{
    Device, ErrorKind, LibraryAttempt, NeuronCore, NeuronDevice, NeuronRuntime, ProbeError,
    Runtime, RuntimeKind, RuntimeStatus, Vendor,
};

/// Where the driver puts its devices, relative to the sysfs root.
pub const DEVICES_DIR: &str = "sys/devices/virtual/neuron_device";
/// The driver's version file, relative to the sysfs root.
pub const DRIVER_VERSION_FILE: &str = "sys/module/neuron/version";
/// Library names tried when none is given, in order.
pub const DEFAULT_LIBRARIES: &[&str] = &["libnrt.so.1", "/opt/aws/neuron/lib/libnrt.so.1"];
/// `sysfs_layout` of the tree before driver 2.31.
pub const LAYOUT_LEGACY: &str = "legacy";

const MEMORY_NOT_EXPOSED: &str =
    "not exposed in sysfs: the Neuron driver has no file with a device's memory size";

/// What the Neuron backend found.
#[derive(Debug, Clone)]
pub struct NeuronResult {
    pub runtime: Runtime,
    pub devices: Vec<Device>,
    pub errors: Vec<ProbeError>,
}

// ---------------------------------------------------------------------------------------------
// sysfs
// ---------------------------------------------------------------------------------------------

/// Why a file gave no value.
#[derive(Debug, Clone, PartialEq)]
enum Miss {
    /// The file does not exist.
    Missing(String),
    /// It exists but could not be read, or its text is not a value.
    Unreadable(String),
}

impl Miss {
    fn reason(&self) -> &str {
        match self {
            Miss::Missing(r) | Miss::Unreadable(r) => r,
        }
    }
}

/// The text of `dir/rel`, trimmed, or why not.
fn read_text(dir: &Path, rel: &str) -> Result<String, Miss> {
    let path = dir.join(rel);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).trim().to_string()),
        Err(e) if e.kind() == IoKind::NotFound => Err(Miss::Missing(format!(
            "not exposed by this driver: {rel} does not exist"
        ))),
        Err(e) if e.kind() == IoKind::PermissionDenied => {
            Err(Miss::Unreadable(permission_reason(&path, rel)))
        }
        Err(e) => Err(Miss::Unreadable(format!("unreadable: {rel}: {e}"))),
    }
}

fn permission_reason(path: &Path, rel: &str) -> String {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    match std::fs::metadata(path) {
        Ok(m) if m.uid() == 0 && m.mode() & 0o077 == 0 => format!(
            "permission denied: {file} is readable by root only ({:04o})",
            m.mode() & 0o7777
        ),
        Ok(m) => format!(
            "permission denied: {file} (mode {:04o}, owner uid {})",
            m.mode() & 0o7777,
            m.uid()
        ),
        Err(_) => format!("permission denied: {file}"),
    }
}

/// Parse a value out of `dir/rel`.
fn read_parsed<T>(dir: &Path, rel: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, Miss> {
    let text = read_text(dir, rel)?;
    parse(&text).ok_or_else(|| {
        Miss::Unreadable(format!(
            "unparseable: {rel} contains {:?}",
            text.chars().take(40).collect::<String>()
        ))
    })
}

/// A non-negative integer as the driver prints it.
pub fn parse_count(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// `connected_devices`: `"3, 5"`, or empty for none.
pub fn parse_connected(text: &str) -> Option<Vec<u32>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|p| p.trim().parse().ok()).collect()
}

/// The PCI address at the end of a `device` link target (`../../../0000:00:1e.0`).
pub fn parse_bdf(target: &str) -> Option<String> {
    let last = target.trim_end_matches('/').rsplit('/').next()?;
    let (domain, rest) = last.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    (hex(domain, 4) && hex(bus, 2) && hex(dev, 2) && hex(func, 1)).then(|| last.to_string())
}

/// Numbered entries `<prefix><N>` of `dir`, sorted by N.
fn numbered(dir: &Path, prefix: &str) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.parse::<u32>().ok())
        {
            out.push((n, entry.path()));
        }
    }
    out.sort_by_key(|(n, _)| *n);
    Ok(out)
}

/// What sysfs says about the Neuron devices.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Whether the driver's device directory exists at all.
    pub driver_present: bool,
    pub driver_version: Option<String>,
    pub devices: Vec<Device>,
    pub errors: Vec<ProbeError>,
}

/// Read the sysfs tree on a worker: a file system that hangs (a wedged driver) must not hold
/// the probe past its deadline.
pub fn start_inventory(root: PathBuf) -> Slot<Option<Inventory>> {
    spawn_worker("neuron-sysfs", None, move |slot| {
        slot.enter("reading the Neuron sysfs tree", None);
        let inventory = read_inventory(&root);
        slot.update(|s| *s = Some(inventory));
    })
}

/// The inventory, or an error naming the read that did not return before `deadline`.
pub fn collect_inventory(slot: &Slot<Option<Inventory>>, deadline: Instant) -> Inventory {
    let out = slot.wait_until(deadline);
    let error = match (out.value, out.stuck_in) {
        (Some(inv), None) => return inv,
        (_, Some(stuck)) => stuck.timeout_error(RuntimeKind::Neuron),
        // Finished without a value: the reader panicked (caught).
        (None, None) => ProbeError {
            runtime: RuntimeKind::Neuron,
            kind: ErrorKind::Panic,
            call: "sysfs".to_string(),
            device: None,
            field: None,
            code: None,
            message: "reading the Neuron sysfs tree failed unexpectedly".to_string(),
        },
    };
    Inventory {
        errors: vec![error],
        ..Inventory::default()
    }
}

/// Read every Neuron device under `root`.
pub fn read_inventory(root: &Path) -> Inventory {
    let mut inv = Inventory {
        driver_version: read_text(root, DRIVER_VERSION_FILE)
            .ok()
            .filter(|v| !v.is_empty()),
        ..Inventory::default()
    };
    let dir = root.join(DEVICES_DIR);
    match numbered(&dir, "neuron") {
        Ok(list) => {
            inv.driver_present = true;
            for (index, path) in list {
                let (device, error) = read_device(index, &path);
                inv.devices.push(device);
                inv.errors.extend(error);
            }
        }
        Err(e) if e.kind() == IoKind::NotFound => {}
        Err(e) => {
            inv.driver_present = true;
            inv.errors.push(sysfs_error(
                None,
                format!("cannot list {}: {e}", dir.display()),
            ));
        }
    }
    inv
}

fn sysfs_error(device: Option<u32>, message: String) -> ProbeError {
    ProbeError {
        runtime: RuntimeKind::Neuron,
        kind: ErrorKind::Error,
        call: "sysfs".to_string(),
        device,
        field: None,
        code: None,
        message,
    }
}

/// Which layout a device directory is in; `None` when none known.
fn detect_layout(dir: &Path) -> Option<&'static str> {
    let legacy = [
        "core_count",
        "info/architecture",
        "neuron_core0",
        "stats/hardware",
    ];
    legacy
        .iter()
        .any(|p| dir.join(p).symlink_metadata().is_ok())
        .then_some(LAYOUT_LEGACY)
}

fn read_device(index: u32, dir: &Path) -> (Device, Option<ProbeError>) {
    let mut d = Device {
        index,
        vendor: Some(Vendor::Neuron),
        ..Device::default()
    };
    let mut n = NeuronDevice::default();
    let Some(layout) = detect_layout(dir) else {
        let why = format!(
            "unrecognised sysfs layout in {}: none of core_count, info/architecture, \
             neuron_core0, stats/hardware exist (Neuron driver 2.31 reorganised the tree; \
             its new paths are not supported)",
            dir.display()
        );
        d.neuron = Some(n);
        d.mark_unavailable("memory_total_mib", MEMORY_NOT_EXPOSED);
        mark_nvidia_only(&mut d);
        fill_missing_reasons(&mut d, &why);
        return (d, Some(sysfs_error(Some(index), why)));
    };
    n.sysfs_layout = Some(layout.to_string());

    let mut missing: Vec<(&str, String)> = Vec::new();
    let mut note = |key: &'static str, m: Miss| missing.push((key, m.reason().to_string()));

    match read_text(dir, "info/architecture/device_name") {
        Ok(v) if !v.is_empty() => d.name = Some(v),
        Ok(_) => note(
            "name",
            Miss::Unreadable("the driver printed an empty device_name".into()),
        ),
        Err(m) => note("name", m),
    }
    match read_text(dir, "info/serial_number") {
        Ok(v) if !v.is_empty() => d.serial = Some(v),
        Ok(_) => note(
            "serial",
            Miss::Unreadable(
                "the driver printed an empty serial_number (the firmware did not answer)".into(),
            ),
        ),
        Err(m) => note("serial", m),
    }
    match std::fs::read_link(dir.join("device")) {
        Ok(target) => match parse_bdf(&target.to_string_lossy()) {
            Some(bdf) => d.pci_bus_id = Some(bdf),
            None => note(
                "pci_bus_id",
                Miss::Unreadable(format!(
                    "the device link points to {}, not to a PCI address",
                    target.display()
                )),
            ),
        },
        Err(_) => note(
            "pci_bus_id",
            Miss::Missing(
                "not exposed in sysfs: the Neuron device directory has no device link into \
                 the PCI tree"
                    .into(),
            ),
        ),
    }
    d.mark_unavailable("memory_total_mib", MEMORY_NOT_EXPOSED);

    let text = |rel: &str| read_text(dir, rel).and_then(non_empty(rel));
    match text("info/architecture/arch_type") {
        Ok(v) => n.arch_type = Some(v),
        Err(m) => note("neuron.arch_type", m),
    }
    match text("info/architecture/instance_type") {
        Ok(v) => n.instance_type = Some(v),
        Err(m) => note("neuron.instance_type", m),
    }
    match read_parsed(dir, "core_count", |t| {
        parse_count(t).and_then(|c| u32::try_from(c).ok())
    }) {
        Ok(v) => n.core_count = Some(v),
        Err(m) => note("neuron.core_count", m),
    }
    match read_parsed(dir, "connected_devices", parse_connected) {
        Ok(v) => n.connected_devices = Some(v),
        Err(m) => note("neuron.connected_devices", m),
    }
    for (key, field, slot) in [
        (
            "mem_ecc_uncorrected",
            "neuron.mem_ecc_uncorrected",
            &mut n.mem_ecc_uncorrected,
        ),
        (
            "mem_ecc_repairable_uncorrected",
            "neuron.mem_ecc_repairable_uncorrected",
            &mut n.mem_ecc_repairable_uncorrected,
        ),
        (
            "sram_ecc_uncorrected",
            "neuron.sram_ecc_uncorrected",
            &mut n.sram_ecc_uncorrected,
        ),
    ] {
        match read_parsed(dir, &format!("stats/hardware/{key}"), parse_count) {
            Ok(v) => *slot = Some(v),
            Err(m) => missing.push((field, m.reason().to_string())),
        }
    }

    let cores = numbered(dir, "neuron_core").unwrap_or_default();
    let mut core_reasons = Vec::new();
    for (i, core_dir) in cores {
        let mut c = NeuronCore {
            index: i,
            ..NeuronCore::default()
        };
        match read_text(&core_dir, "info/architecture/arch_type").and_then(non_empty("arch_type")) {
            Ok(v) => c.arch_type = Some(v),
            Err(m) => core_reasons.push((
                format!("neuron.cores.{}.arch_type", n.cores.len()),
                m.reason().to_string(),
            )),
        }
        match core_memory(&core_dir) {
            Ok(v) => c.memory_used_bytes = Some(v),
            Err(m) => core_reasons.push((
                format!("neuron.cores.{}.memory_used_bytes", n.cores.len()),
                m.reason().to_string(),
            )),
        }
        n.cores.push(c);
    }
    let used: Option<u64> = if n.cores.is_empty() {
        None
    } else {
        n.cores.iter().map(|c| c.memory_used_bytes).sum()
    };
    match used {
        Some(b) => d.memory_used_mib = Some(mib_from_bytes(b)),
        None if n.cores.is_empty() => d.mark_unavailable(
            "memory_used_mib",
            "no neuron_core<i> directory in sysfs to read memory usage from",
        ),
        None => d.mark_unavailable(
            "memory_used_mib",
            "the memory usage of some NeuronCore could not be read (see neuron.cores)",
        ),
    }
    for (key, why) in missing {
        d.mark_unavailable(key, why);
    }
    for (key, why) in core_reasons {
        d.mark_unavailable(&key, why);
    }
    d.neuron = Some(n);
    mark_nvidia_only(&mut d);
    fill_missing_reasons(&mut d, "not reported for Neuron devices");
    (d, None)
}

/// The NVIDIA-only groups, explained once each instead of field by field.
fn mark_nvidia_only(d: &mut Device) {
    for key in [
        "ecc",
        "retired_pages",
        "remapped_rows",
        "mig",
        "clocks",
        "pcie",
        "clock_event_reasons",
    ] {
        d.mark_unavailable(
            key,
            "NVIDIA only; Neuron hardware errors are under neuron.* (stats/hardware)",
        );
    }
}

fn non_empty(rel: &str) -> impl Fn(String) -> Result<String, Miss> + '_ {
    move |v| {
        if v.is_empty() {
            Err(Miss::Unreadable(format!(
                "the driver printed an empty {rel}"
            )))
        } else {
            Ok(v)
        }
    }
}

/// Device memory in use by one core: the sum over the driver's categories of their `total`
/// (the current usage; `present` is the last change), else `device_mem/total` itself.
fn core_memory(core_dir: &Path) -> Result<u64, Miss> {
    const DIR: &str = "stats/memory_usage/device_mem";
    let entries = match std::fs::read_dir(core_dir.join(DIR)) {
        Ok(e) => e,
        Err(e) if e.kind() == IoKind::NotFound => {
            return Err(Miss::Missing(
                "not exposed by this driver: stats/memory_usage/device_mem does not exist".into(),
            ))
        }
        Err(e) => {
            return Err(Miss::Unreadable(format!(
                "unreadable: stats/memory_usage/device_mem: {e}"
            )))
        }
    };
    let mut categories: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    categories.sort();
    if categories.is_empty() {
        return read_parsed(core_dir, &format!("{DIR}/total"), parse_count);
    }
    let mut sum = 0u64;
    for name in categories {
        // Read relative to the core, so every reason names the whole path.
        let v = read_parsed(core_dir, &format!("{DIR}/{name}/total"), parse_count)?;
        sum = sum.saturating_add(v);
    }
    Ok(sum)
}

// ---------------------------------------------------------------------------------------------
// libnrt
// ---------------------------------------------------------------------------------------------

/// `NRT_FRAMEWORK_TYPE_NO_FW`.
const NRT_FRAMEWORK_TYPE_NO_FW: c_int = 1;

/// `nrt_version_t`.
#[repr(C)]
struct NrtVersion {
    rt_major: u64,
    rt_minor: u64,
    rt_patch: u64,
    rt_maintenance: u64,
    rt_detail: [c_char; 128],
    git_hash: [c_char; 64],
}

/// `nrt_instance_info_t` in its longer form (`family`, `size`, `arch_name[16]`,
/// `device_revision[8]`); only `family` and `size` are read, which every form starts with.
#[repr(C)]
struct NrtInstanceInfo {
    family: u32,
    size: u32,
    arch_name: [c_char; 16],
    device_revision: [c_char; 8],
}

/// `NRT_STATUS` names (runtimes.md §3).
pub fn status_name(code: i32) -> String {
    let name = match code {
        0 => "NRT_SUCCESS",
        1 => "NRT_FAILURE",
        2 => "NRT_INVALID",
        3 => "NRT_INVALID_HANDLE",
        4 => "NRT_RESOURCE",
        5 => "NRT_TIMEOUT",
        6 => "NRT_HW_ERROR",
        7 => "NRT_QUEUE_FULL",
        9 => "NRT_LOAD_NOT_ENOUGH_NC",
        10 => "NRT_UNSUPPORTED_NEFF_VERSION",
        13 => "NRT_UNINITIALIZED",
        14 => "NRT_CLOSED",
        1100 => "NRT_COLL_PENDING",
        1002..=1005 => return format!("NRT_EXEC_{code}"),
        _ => return format!("NRT_STATUS_{code}"),
    };
    name.to_string()
}

/// Instance family names of `nrt_get_instance_info` (the enum of nrt.h in
/// aws-neuron/aws-neuron-sdk `src/libnrt/include/nrt/nrt.h`).
pub fn family_name(code: u32) -> Option<String> {
    let name = match code {
        0 => return None,
        1 => "INF1",
        2 => "TRN1",
        3 => "TRN1N",
        4 => "INF2",
        5 => "TRN2",
        6 => "TRN2N",
        7 => "INF2E",
        8 => "TRN2P",
        9 => "TRN2U",
        10 => "TRN2E",
        11 => "TRN2EU",
        12 => "TRN2AC",
        13 => "TRN2UAC",
        14 => "TRN3",
        15 => "TRN3PDS98",
        other => return Some(format!("family {other}")),
    };
    Some(name.to_string())
}

/// Instance sizes of `nrt_get_instance_info` (`NRT_INSTANCE_SIZE_1XL` … `_3XL`), spelled as
/// EC2 spells them.
pub fn size_name(code: u32) -> Option<String> {
    let name = match code {
        0 => "xlarge",
        1 => "2xlarge",
        2 => "4xlarge",
        3 => "6xlarge",
        4 => "8xlarge",
        5 => "24xlarge",
        6 => "32xlarge",
        7 => "48xlarge",
        8 => "3xlarge",
        _ => return None,
    };
    Some(name.to_string())
}

/// Start the libnrt probe on a worker thread; collect with [`collect`].
pub fn start(lib: Option<PathBuf>) -> Slot<NeuronResult> {
    spawn_worker(
        "neuron",
        NeuronResult {
            runtime: Runtime::new(RuntimeKind::Neuron, RuntimeStatus::Absent),
            devices: Vec::new(),
            errors: Vec::new(),
        },
        move |slot| worker(slot, lib.as_deref()),
    )
}

/// Wait for the worker until `deadline` and merge in the sysfs inventory.
pub fn collect(slot: &Slot<NeuronResult>, inventory: Inventory, deadline: Instant) -> NeuronResult {
    let out = slot.wait_until(deadline);
    let mut r = out.value;
    match out.stuck_in {
        // Everything was read and only the release hung: the runtime worked, and the hang is
        // one error entry (as a hung nvmlShutdown is).
        Some(stuck) if stuck.call == "nrt_close" && r.runtime.status == RuntimeStatus::Loaded => {
            r.errors.push(stuck.timeout_error(RuntimeKind::Neuron));
        }
        Some(stuck) => stuck.time_out(&mut r.runtime, &mut r.errors),
        None => {}
    }
    merge(r, inventory)
}

/// Put the sysfs inventory and the runtime's answers together.
fn merge(mut r: NeuronResult, inv: Inventory) -> NeuronResult {
    r.runtime.driver_version = inv.driver_version;
    r.runtime.device_count = inv
        .driver_present
        .then(|| u32::try_from(inv.devices.len()).unwrap_or(u32::MAX));
    if r.runtime.status == RuntimeStatus::Absent {
        let lib = r.runtime.error.clone().unwrap_or_default();
        r.runtime.error = Some(if inv.driver_present {
            format!("{lib}; the devices come from sysfs only")
        } else {
            format!("{lib}; no Neuron driver ({DEVICES_DIR} does not exist)")
        });
    }
    r.devices = inv.devices;
    let mut errors = inv.errors;
    errors.append(&mut r.errors);
    r.errors = errors;
    r
}

fn worker(slot: &Slot<NeuronResult>, explicit: Option<&Path>) {
    let candidates: Vec<String> = match explicit {
        Some(p) => vec![p.to_string_lossy().into_owned()],
        None => DEFAULT_LIBRARIES.iter().map(|s| s.to_string()).collect(),
    };
    let mut loaded = None;
    for name in candidates {
        slot.enter("dlopen", None);
        match open_library(&name) {
            Ok(lib) => {
                slot.update(|s| {
                    s.runtime.tried.push(LibraryAttempt {
                        path: name.clone(),
                        error: None,
                    });
                    s.runtime.library = Some(name.clone());
                    s.runtime.status = RuntimeStatus::Loaded;
                });
                loaded = Some(lib);
                break;
            }
            Err(e) => slot.update(|s| {
                s.runtime.tried.push(LibraryAttempt {
                    path: name.clone(),
                    error: Some(e),
                })
            }),
        }
    }
    let Some(lib) = loaded else {
        slot.update(|s| {
            s.runtime.error = Some(
                "libnrt not found (the Neuron runtime is not installed in this image)".to_string(),
            )
        });
        return;
    };
    let mut info = NeuronRuntime::default();

    let mut total = 0u32;
    if let Some(()) = call(
        slot,
        lib,
        "nrt_get_total_vnc_count",
        |f: unsafe extern "C" fn(*mut u32) -> c_int| unsafe { f(&mut total) },
    ) {
        info.cores_total = Some(total);
    }
    slot.update(|s| s.runtime.neuron = Some(info.clone()));

    slot.enter("nrt_init", None);
    let init = init_runtime(lib)
        .map_err(|f| push_error(slot, f.kind, "nrt_init", f.code, f.message))
        .ok();
    if init.is_none() {
        slot.update(|s| {
            s.runtime.status = RuntimeStatus::Error;
            let why = s
                .errors
                .last()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            s.runtime.error = Some(format!("the Neuron runtime did not initialise: {why}"));
        });
        // Version works without init.
        read_version(slot, lib);
        return;
    }

    let mut visible = 0u32;
    if call(
        slot,
        lib,
        "nrt_get_visible_vnc_count",
        |f: unsafe extern "C" fn(*mut u32) -> c_int| unsafe { f(&mut visible) },
    )
    .is_some()
    {
        info.cores_visible = Some(visible);
        slot.update(|s| s.runtime.neuron = Some(info.clone()));
    }
    read_version(slot, lib);

    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut inst: NrtInstanceInfo = unsafe { std::mem::zeroed() };
    if call(
        slot,
        lib,
        "nrt_get_instance_info",
        |f: unsafe extern "C" fn(*mut NrtInstanceInfo, usize) -> c_int| unsafe {
            f(&mut inst, std::mem::size_of::<NrtInstanceInfo>())
        },
    )
    .is_some()
    {
        info.instance_family = family_name(inst.family);
        info.instance_size = size_name(inst.size);
        slot.update(|s| s.runtime.neuron = Some(info.clone()));
    }

    close(slot, lib);
}

fn read_version(slot: &Slot<NeuronResult>, lib: &'static libloading::Library) {
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut v: NrtVersion = unsafe { std::mem::zeroed() };
    if call(
        slot,
        lib,
        "nrt_get_version",
        |f: unsafe extern "C" fn(*mut NrtVersion, usize) -> c_int| unsafe {
            f(&mut v, std::mem::size_of::<NrtVersion>())
        },
    )
    .is_some()
    {
        let version = format!(
            "{}.{}.{}.{}",
            v.rt_major, v.rt_minor, v.rt_patch, v.rt_maintenance
        );
        slot.update(|s| s.runtime.version = Some(version));
    }
}

fn close(slot: &Slot<NeuronResult>, lib: &'static libloading::Library) {
    slot.enter("nrt_close", None);
    if let Err(f) = close_runtime(lib) {
        push_error(slot, f.kind, "nrt_close", f.code, f.message);
    }
}

fn push_error(
    slot: &Slot<NeuronResult>,
    kind: ErrorKind,
    call: &str,
    code: Option<String>,
    message: String,
) {
    slot.update(|s| {
        s.errors.push(ProbeError {
            runtime: RuntimeKind::Neuron,
            kind,
            call: call.to_string(),
            device: None,
            field: None,
            code,
            message,
        })
    });
}

/// Look up `name` and run `f` with it under the panic guard; a missing symbol, a panic or a
/// status other than `NRT_SUCCESS` becomes an error entry and `None`.
fn call<F: Copy>(
    slot: &Slot<NeuronResult>,
    lib: &'static libloading::Library,
    name: &str,
    f: impl FnOnce(F) -> c_int,
) -> Option<()> {
    slot.enter(name, None);
    match call_nrt(lib, name, f) {
        Ok(()) => Some(()),
        Err(e) => {
            push_error(slot, e.kind, name, e.code, e.message);
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// libnrt calls shared with the Neuron benchmarks (`crate::bench::neuron`). None of these knows
// about deadlines: the caller runs them on a worker thread and names each call in its slot
// before making it ([`super::guard`]).
// ---------------------------------------------------------------------------------------------

/// Why a libnrt call did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    /// `Error` for a missing symbol or a status other than `NRT_SUCCESS`, `Panic` for a panic.
    pub kind: ErrorKind,
    /// The `NRT_STATUS` name, when the call returned one.
    pub code: Option<String>,
    /// One line: `nrt_tensor_write returned NRT_FAILURE (1)`.
    pub message: String,
}

/// Open `name` with `libloading` under the panic guard and keep it loaded for the rest of the
/// process (the real runtime starts threads of its own, so it is never unloaded). Opening the
/// same path again returns the same loaded library.
pub fn open_library(name: &str) -> Result<&'static libloading::Library, String> {
    // SAFETY: loading libnrt runs its initialisers; that is the point of loading it.
    match guarded(|| unsafe { libloading::Library::new(name) }) {
        Ok(Ok(lib)) => Ok(Box::leak(Box::new(lib))),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!("dlopen aborted: {panic}")),
    }
}

/// Look up `name` and run `f` with it under the panic guard; a missing symbol, a panic or a
/// status other than `NRT_SUCCESS` is a [`CallFailure`].
pub fn call_nrt<F: Copy>(
    lib: &libloading::Library,
    name: &str,
    f: impl FnOnce(F) -> c_int,
) -> Result<(), CallFailure> {
    let symbol = format!("{name}\0");
    // SAFETY: the caller names the function type nrt.h gives `name`.
    let sym = match unsafe { lib.get::<F>(symbol.as_bytes()) } {
        Ok(s) => *s,
        Err(e) => {
            return Err(CallFailure {
                kind: ErrorKind::Error,
                code: None,
                message: format!("{name}: libnrt has no such symbol ({e})"),
            })
        }
    };
    match guarded(|| f(sym)) {
        Ok(0) => Ok(()),
        Ok(code) => {
            let cname = status_name(code);
            Err(CallFailure {
                kind: ErrorKind::Error,
                message: format!("{name} returned {cname} ({code})"),
                code: Some(cname),
            })
        }
        Err(panic) => Err(CallFailure {
            kind: ErrorKind::Panic,
            code: None,
            message: format!("{name} aborted: {panic}"),
        }),
    }
}

/// Look up `name`, a function returning nothing (`nrt_close`, `nrt_tensor_free`), and run `f`
/// with it under the panic guard.
pub fn call_nrt_void<F: Copy>(
    lib: &libloading::Library,
    name: &str,
    f: impl FnOnce(F),
) -> Result<(), CallFailure> {
    call_nrt(lib, name, |sym: F| {
        f(sym);
        0
    })
}

/// `nrt_init(NRT_FRAMEWORK_TYPE_NO_FW, "", "")`.
pub fn init_runtime(lib: &libloading::Library) -> Result<(), CallFailure> {
    let empty = c"";
    call_nrt(
        lib,
        "nrt_init",
        |f: unsafe extern "C" fn(c_int, *const c_char, *const c_char) -> c_int| unsafe {
            f(NRT_FRAMEWORK_TYPE_NO_FW, empty.as_ptr(), empty.as_ptr())
        },
    )
}

/// `nrt_close()`.
pub fn close_runtime(lib: &libloading::Library) -> Result<(), CallFailure> {
    // SAFETY: `nrt_close(void)` has this signature in nrt.h.
    call_nrt_void(lib, "nrt_close", |f: unsafe extern "C" fn()| unsafe { f() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_devices_parse() {
        assert_eq!(parse_connected("3, 5\n"), Some(vec![3, 5]));
        assert_eq!(parse_connected(""), Some(vec![]));
        assert_eq!(parse_connected("1, x"), None);
    }

    #[test]
    fn bdf_is_taken_from_the_link_target() {
        assert_eq!(
            parse_bdf("../../../pci0000:00/0000:00:1e.0").as_deref(),
            Some("0000:00:1e.0")
        );
        assert_eq!(parse_bdf("../../virtual/foo"), None);
    }

    #[test]
    fn enums_have_names() {
        assert_eq!(family_name(2).as_deref(), Some("TRN1"));
        assert_eq!(family_name(4).as_deref(), Some("INF2"));
        assert_eq!(family_name(0), None);
        assert_eq!(size_name(6).as_deref(), Some("32xlarge"));
        assert_eq!(size_name(0).as_deref(), Some("xlarge"));
        assert_eq!(size_name(9), None);
        assert_eq!(status_name(13), "NRT_UNINITIALIZED");
        assert_eq!(status_name(1003), "NRT_EXEC_1003");
    }

    #[test]
    fn missing_root_is_no_driver() {
        let inv = read_inventory(Path::new("/nonexistent-accelprobe-root"));
        assert!(!inv.driver_present);
        assert!(inv.devices.is_empty());
    }
}
