//! Host section: which machine, OS, CPU and memory, and which Kubernetes node.
//!
//! Parsing is separated from reading so the parsers are tested on text; reading never fails
//! the probe: a file that cannot be read leaves its field `None` with the reason recorded.

use std::collections::BTreeMap;
use std::path::Path;

use crate::report::{Host, Kubernetes};

/// Where the host facts come from; tests point it at a fake root.
pub struct HostSources<'a> {
    /// Filesystem root (`/` normally).
    pub root: &'a Path,
    /// Environment lookup (downward-API variables).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Probe the host. Never fails; unreadable facts are `None` with a reason.
pub fn probe_host(src: &HostSources<'_>) -> Host {
    let mut host = Host::default();
    let mut why = BTreeMap::new();
    let mut read = |field: &str, rel: &str| -> Option<String> {
        let path = src.root.join(rel);
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) => {
                why.insert(
                    field.to_string(),
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    };

    host.hostname = read("hostname", "proc/sys/kernel/hostname").map(|s| s.trim().to_string());
    host.kernel = read("kernel", "proc/sys/kernel/osrelease").map(|s| s.trim().to_string());
    host.os = read("os", "etc/os-release").and_then(|s| parse_os_release(&s));
    let cpuinfo = read("cpu_model", "proc/cpuinfo");
    host.cpu_model = cpuinfo.as_deref().and_then(parse_cpu_model);
    host.cpu_count = cpuinfo.as_deref().and_then(parse_cpu_count);
    host.memory_total_mib =
        read("memory_total_mib", "proc/meminfo").and_then(|s| parse_meminfo_total_mib(&s));
    let vendor = read("instance_type", "sys/devices/virtual/dmi/id/sys_vendor");
    let product = read("instance_type", "sys/devices/virtual/dmi/id/product_name");
    host.instance_type = parse_ec2_instance_type(vendor.as_deref(), product.as_deref());

    let k8s = Kubernetes {
        node_name: (src.env)("NODE_NAME").filter(|s| !s.is_empty()),
        pod_name: (src.env)("POD_NAME").filter(|s| !s.is_empty()),
        pod_namespace: (src.env)("POD_NAMESPACE").filter(|s| !s.is_empty()),
        labels: Default::default(),
    };
    if k8s.node_name.is_some() || k8s.pod_name.is_some() || k8s.pod_namespace.is_some() {
        host.kubernetes = Some(k8s);
    }

    let fields: [(&str, bool); 7] = [
        ("hostname", host.hostname.is_some()),
        ("kernel", host.kernel.is_some()),
        ("os", host.os.is_some()),
        ("cpu_model", host.cpu_model.is_some()),
        ("cpu_count", host.cpu_count.is_some()),
        ("memory_total_mib", host.memory_total_mib.is_some()),
        ("instance_type", host.instance_type.is_some()),
    ];
    for (field, present) in fields {
        if !present {
            let reason = why
                .remove(field)
                .unwrap_or_else(|| default_reason(field).to_string());
            host.unavailable.insert(field.to_string(), reason);
        }
    }
    if host.kubernetes.is_none() {
        host.unavailable.insert(
            "kubernetes".to_string(),
            "NODE_NAME, POD_NAME and POD_NAMESPACE are not set (not in a pod, or no downward API)"
                .to_string(),
        );
    }
    host
}

fn default_reason(field: &str) -> &'static str {
    match field {
        "instance_type" => "not an EC2 instance (DMI vendor is not Amazon EC2)",
        "os" => "no PRETTY_NAME or NAME in /etc/os-release",
        _ => "not found in the kernel's report",
    }
}

/// `PRETTY_NAME` (else `NAME` and `VERSION_ID`) of an os-release file.
pub fn parse_os_release(text: &str) -> Option<String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'');
            vars.insert(k.trim(), v.to_string());
        }
    }
    if let Some(p) = vars.get("PRETTY_NAME").filter(|s| !s.is_empty()) {
        return Some(p.clone());
    }
    let name = vars.get("NAME")?;
    Some(match vars.get("VERSION_ID") {
        Some(v) => format!("{name} {v}"),
        None => name.clone(),
    })
}

/// CPU model from /proc/cpuinfo (`model name` on x86, `Model` or the implementer/part on Arm).
pub fn parse_cpu_model(text: &str) -> Option<String> {
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    value("model name")
        .or_else(|| value("Model"))
        .or_else(|| {
            let part = value("CPU part")?;
            let implementer = value("CPU implementer").unwrap_or_default();
            Some(format!("Arm CPU implementer {implementer} part {part}"))
        })
        .filter(|s| !s.is_empty())
}

/// Number of `processor` entries in /proc/cpuinfo.
pub fn parse_cpu_count(text: &str) -> Option<u32> {
    let n = text
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    u32::try_from(n).ok().filter(|&n| n > 0)
}

/// `MemTotal` of /proc/meminfo, in MiB.
pub fn parse_meminfo_total_mib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The EC2 instance type, from DMI: Nitro instances put it in `product_name`.
pub fn parse_ec2_instance_type(
    sys_vendor: Option<&str>,
    product_name: Option<&str>,
) -> Option<String> {
    if sys_vendor?.trim() != "Amazon EC2" {
        return None;
    }
    let product = product_name?.trim();
    // An instance type is family.size, e.g. g6e.2xlarge.
    let (family, size) = product.split_once('.')?;
    (!family.is_empty() && !size.is_empty() && !product.contains(' ')).then(|| product.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_prefers_pretty_name() {
        assert_eq!(
            parse_os_release("NAME=\"Amazon Linux\"\nVERSION_ID=\"2023\"\nPRETTY_NAME=\"Amazon Linux 2023.6.20241212\"\n"),
            Some("Amazon Linux 2023.6.20241212".to_string())
        );
        assert_eq!(
            parse_os_release("NAME=Debian\nVERSION_ID=12\n"),
            Some("Debian 12".to_string())
        );
        assert_eq!(parse_os_release("garbage"), None);
    }

    #[test]
    fn cpuinfo_x86_and_arm() {
        let x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7R13 Processor\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7R13 Processor\n";
        assert_eq!(
            parse_cpu_model(x86).as_deref(),
            Some("AMD EPYC 7R13 Processor")
        );
        assert_eq!(parse_cpu_count(x86), Some(2));
        let arm = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd40\n";
        assert_eq!(
            parse_cpu_model(arm).as_deref(),
            Some("Arm CPU implementer 0x41 part 0xd40")
        );
        assert_eq!(parse_cpu_count(""), None);
    }

    #[test]
    fn meminfo_total() {
        assert_eq!(
            parse_meminfo_total_mib("MemTotal:       65011712 kB\nMemFree: 1 kB\n"),
            Some(63488)
        );
        assert_eq!(parse_meminfo_total_mib("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn ec2_instance_type_only_on_ec2() {
        assert_eq!(
            parse_ec2_instance_type(Some("Amazon EC2\n"), Some("g6e.2xlarge\n")).as_deref(),
            Some("g6e.2xlarge")
        );
        assert_eq!(
            parse_ec2_instance_type(Some("QEMU\n"), Some("g6e.2xlarge")),
            None
        );
        assert_eq!(
            parse_ec2_instance_type(Some("Amazon EC2"), Some("Standard PC (Q35)")),
            None
        );
        assert_eq!(parse_ec2_instance_type(None, Some("g6e.2xlarge")), None);
    }

    #[test]
    fn probe_host_on_fake_root_records_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
        std::fs::write(root.join("proc/sys/kernel/hostname"), "node-a\n").unwrap();
        let env = |k: &str| (k == "NODE_NAME").then(|| "ip-10-0-0-1".to_string());
        let host = probe_host(&HostSources { root, env: &env });
        assert_eq!(host.hostname.as_deref(), Some("node-a"));
        assert!(host.kernel.is_none());
        assert!(host.unavailable["kernel"].contains("cannot read"));
        assert_eq!(
            host.kubernetes.unwrap().node_name.as_deref(),
            Some("ip-10-0-0-1")
        );
    }
}
