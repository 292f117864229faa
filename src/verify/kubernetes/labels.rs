//! Label keys: the well-known ones (with the EKS Auto Mode and Karpenter spellings that mean
//! the same thing), label key and value syntax, and node labels from `--node-labels`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{one_line, K8sError, Position, Warning};
use super::yaml::{self, entry, inner, is_empty_document, key_str, Ctx, Node};
use crate::verify::source::Source;

/// A label that accelprobe understands, whatever prefix spells it.
///
/// Keys under `eks.amazonaws.com/` (EKS Auto Mode) and `karpenter.k8s.aws/` (Karpenter's AWS
/// provider) with the same suffix are the same label; so are the deprecated `beta.` and
/// `failure-domain.beta.` spellings that Karpenter normalizes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum WellKnown {
    InstanceCategory,
    InstanceGeneration,
    InstanceFamily,
    InstanceSize,
    InstanceCpu,
    InstanceCpuManufacturer,
    InstanceCpuSustainedClockSpeedMhz,
    InstanceMemory,
    InstanceEbsBandwidth,
    InstanceNetworkBandwidth,
    InstanceLocalNvme,
    InstanceHypervisor,
    InstanceEncryptionInTransitSupported,
    InstanceCapabilityFlex,
    InstanceTenancy,
    InstanceGpuName,
    InstanceGpuManufacturer,
    InstanceGpuCount,
    InstanceGpuMemory,
    InstanceAcceleratorName,
    InstanceAcceleratorManufacturer,
    InstanceAcceleratorCount,
    CapacityReservationId,
    CapacityReservationType,
    /// `node.kubernetes.io/instance-type` (also `beta.kubernetes.io/instance-type`).
    InstanceType,
    /// `kubernetes.io/arch` (also `beta.kubernetes.io/arch`).
    Arch,
    /// `kubernetes.io/os` (also `beta.kubernetes.io/os`).
    Os,
    /// `karpenter.sh/capacity-type`: `spot`, `on-demand`, `reserved`.
    CapacityType,
    /// `eks.amazonaws.com/compute-type` (`auto` on EKS Auto Mode nodes).
    ComputeType,
    /// `topology.kubernetes.io/zone` (also `failure-domain.beta.kubernetes.io/zone`).
    Zone,
    /// `topology.kubernetes.io/region` (also `failure-domain.beta.kubernetes.io/region`).
    Region,
    /// `topology.k8s.aws/zone-id`.
    ZoneId,
    /// `karpenter.sh/nodepool`.
    NodePool,
}

/// Prefix of EKS Auto Mode labels.
pub const EKS_PREFIX: &str = "eks.amazonaws.com/";
/// Prefix of Karpenter AWS provider labels.
pub const KARPENTER_AWS_PREFIX: &str = "karpenter.k8s.aws/";

/// Labels spelled `<prefix><suffix>` under both prefixes: (label, suffix, integer-valued,
/// canonical prefix). The canonical prefix is the EKS one for the labels EKS Auto Mode
/// documents, Karpenter's for the others.
const SHARED: &[(WellKnown, &str, bool, &str)] = &[
    (
        WellKnown::InstanceCategory,
        "instance-category",
        false,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceGeneration,
        "instance-generation",
        true,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceFamily,
        "instance-family",
        false,
        EKS_PREFIX,
    ),
    (WellKnown::InstanceSize, "instance-size", false, EKS_PREFIX),
    (WellKnown::InstanceCpu, "instance-cpu", true, EKS_PREFIX),
    (
        WellKnown::InstanceCpuManufacturer,
        "instance-cpu-manufacturer",
        false,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceCpuSustainedClockSpeedMhz,
        "instance-cpu-sustained-clock-speed-mhz",
        true,
        KARPENTER_AWS_PREFIX,
    ),
    (
        WellKnown::InstanceMemory,
        "instance-memory",
        true,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceEbsBandwidth,
        "instance-ebs-bandwidth",
        true,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceNetworkBandwidth,
        "instance-network-bandwidth",
        true,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceLocalNvme,
        "instance-local-nvme",
        true,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceHypervisor,
        "instance-hypervisor",
        false,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceEncryptionInTransitSupported,
        "instance-encryption-in-transit-supported",
        false,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceCapabilityFlex,
        "instance-capability-flex",
        false,
        KARPENTER_AWS_PREFIX,
    ),
    (
        WellKnown::InstanceTenancy,
        "instance-tenancy",
        false,
        KARPENTER_AWS_PREFIX,
    ),
    (
        WellKnown::InstanceGpuName,
        "instance-gpu-name",
        false,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceGpuManufacturer,
        "instance-gpu-manufacturer",
        false,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceGpuCount,
        "instance-gpu-count",
        true,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceGpuMemory,
        "instance-gpu-memory",
        true,
        EKS_PREFIX,
    ),
    (
        WellKnown::InstanceAcceleratorName,
        "instance-accelerator-name",
        false,
        KARPENTER_AWS_PREFIX,
    ),
    (
        WellKnown::InstanceAcceleratorManufacturer,
        "instance-accelerator-manufacturer",
        false,
        KARPENTER_AWS_PREFIX,
    ),
    (
        WellKnown::InstanceAcceleratorCount,
        "instance-accelerator-count",
        true,
        KARPENTER_AWS_PREFIX,
    ),
    (
        WellKnown::CapacityReservationId,
        "capacity-reservation-id",
        false,
        KARPENTER_AWS_PREFIX,
    ),
    (
        WellKnown::CapacityReservationType,
        "capacity-reservation-type",
        false,
        KARPENTER_AWS_PREFIX,
    ),
];

/// Labels with fixed spellings: (label, keys with the canonical one first).
const FIXED: &[(WellKnown, &[&str])] = &[
    (
        WellKnown::InstanceType,
        &[
            "node.kubernetes.io/instance-type",
            "beta.kubernetes.io/instance-type",
        ],
    ),
    (
        WellKnown::Arch,
        &["kubernetes.io/arch", "beta.kubernetes.io/arch"],
    ),
    (
        WellKnown::Os,
        &["kubernetes.io/os", "beta.kubernetes.io/os"],
    ),
    (WellKnown::CapacityType, &["karpenter.sh/capacity-type"]),
    (WellKnown::ComputeType, &["eks.amazonaws.com/compute-type"]),
    (
        WellKnown::Zone,
        &[
            "topology.kubernetes.io/zone",
            "failure-domain.beta.kubernetes.io/zone",
        ],
    ),
    (
        WellKnown::Region,
        &[
            "topology.kubernetes.io/region",
            "failure-domain.beta.kubernetes.io/region",
        ],
    ),
    (WellKnown::ZoneId, &["topology.k8s.aws/zone-id"]),
    (WellKnown::NodePool, &["karpenter.sh/nodepool"]),
];

impl WellKnown {
    /// Every well-known label.
    pub const ALL: &'static [WellKnown] = &[
        WellKnown::InstanceCategory,
        WellKnown::InstanceGeneration,
        WellKnown::InstanceFamily,
        WellKnown::InstanceSize,
        WellKnown::InstanceCpu,
        WellKnown::InstanceCpuManufacturer,
        WellKnown::InstanceCpuSustainedClockSpeedMhz,
        WellKnown::InstanceMemory,
        WellKnown::InstanceEbsBandwidth,
        WellKnown::InstanceNetworkBandwidth,
        WellKnown::InstanceLocalNvme,
        WellKnown::InstanceHypervisor,
        WellKnown::InstanceEncryptionInTransitSupported,
        WellKnown::InstanceCapabilityFlex,
        WellKnown::InstanceTenancy,
        WellKnown::InstanceGpuName,
        WellKnown::InstanceGpuManufacturer,
        WellKnown::InstanceGpuCount,
        WellKnown::InstanceGpuMemory,
        WellKnown::InstanceAcceleratorName,
        WellKnown::InstanceAcceleratorManufacturer,
        WellKnown::InstanceAcceleratorCount,
        WellKnown::CapacityReservationId,
        WellKnown::CapacityReservationType,
        WellKnown::InstanceType,
        WellKnown::Arch,
        WellKnown::Os,
        WellKnown::CapacityType,
        WellKnown::ComputeType,
        WellKnown::Zone,
        WellKnown::Region,
        WellKnown::ZoneId,
        WellKnown::NodePool,
    ];

    /// The label a key means, or `None` for a key accelprobe treats as custom.
    pub fn from_key(key: &str) -> Option<WellKnown> {
        for prefix in [EKS_PREFIX, KARPENTER_AWS_PREFIX] {
            if let Some(suffix) = key.strip_prefix(prefix) {
                if let Some((wk, ..)) = SHARED.iter().find(|(_, s, ..)| *s == suffix) {
                    return Some(*wk);
                }
            }
        }
        FIXED
            .iter()
            .find(|(_, keys)| keys.contains(&key))
            .map(|(wk, _)| *wk)
    }

    /// The suffix shared by the `eks.amazonaws.com/` and `karpenter.k8s.aws/` spellings, for
    /// the labels that have both.
    pub fn suffix(self) -> Option<&'static str> {
        SHARED
            .iter()
            .find(|(wk, ..)| *wk == self)
            .map(|(_, s, ..)| *s)
    }

    /// Every key that spells this label, the canonical one first.
    pub fn keys(self) -> Vec<String> {
        if let Some((_, suffix, _, canonical)) = SHARED.iter().find(|(wk, ..)| *wk == self) {
            let other = if *canonical == EKS_PREFIX {
                KARPENTER_AWS_PREFIX
            } else {
                EKS_PREFIX
            };
            return vec![format!("{canonical}{suffix}"), format!("{other}{suffix}")];
        }
        FIXED
            .iter()
            .find(|(wk, _)| *wk == self)
            .map(|(_, keys)| keys.iter().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }

    /// The key accelprobe prints for this label.
    pub fn canonical_key(self) -> String {
        self.keys().into_iter().next().unwrap_or_default()
    }

    /// Whether the label's values are integers (counts, MiB, generations), which the `Gt`,
    /// `Lt`, `Gte` and `Lte` operators compare.
    pub fn is_numeric(self) -> bool {
        SHARED
            .iter()
            .any(|(wk, _, numeric, _)| *wk == self && *numeric)
    }
}

impl fmt::Display for WellKnown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical_key())
    }
}

/// A label key with the prefixes normalized: two keys are the same label exactly when their
/// `LabelKey`s are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelKey {
    WellKnown(WellKnown),
    Custom(String),
}

impl LabelKey {
    pub fn parse(key: &str) -> LabelKey {
        match WellKnown::from_key(key) {
            Some(wk) => LabelKey::WellKnown(wk),
            None => LabelKey::Custom(key.to_string()),
        }
    }

    pub fn well_known(&self) -> Option<WellKnown> {
        match self {
            LabelKey::WellKnown(wk) => Some(*wk),
            LabelKey::Custom(_) => None,
        }
    }

    /// Whether `key`, as written, names this label.
    pub fn is(&self, key: &str) -> bool {
        *self == LabelKey::parse(key)
    }
}

impl fmt::Display for LabelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelKey::WellKnown(wk) => wk.fmt(f),
            LabelKey::Custom(key) => f.write_str(key),
        }
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Kubernetes' "name" part of a qualified name and the label value syntax: at most 63
/// characters, alphanumerics with `-`, `_`, `.` inside.
fn check_name(text: &str, what: &str) -> Result<(), String> {
    let s = one_line(text);
    if text.len() > 63 {
        return Err(format!("{what} '{s}' is longer than 63 characters"));
    }
    let ok = text
        .chars()
        .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
        && text.chars().next().is_some_and(is_alnum)
        && text.chars().last().is_some_and(is_alnum);
    if !ok {
        return Err(format!(
            "{what} '{s}' must consist of letters, digits, '-', '_' or '.', and start and end \
             with a letter or digit"
        ));
    }
    Ok(())
}

/// Check a label key (or taint key) as Kubernetes does: an optional DNS subdomain prefix and
/// `/`, then a name of at most 63 characters.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a label key must not be empty".to_string());
    }
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "label key prefix '{}' must be a lower-case DNS subdomain (like \
                 karpenter.k8s.aws)",
                one_line(prefix)
            ));
        }
    }
    if name.is_empty() {
        return Err(format!(
            "label key '{}' has an empty name after the prefix",
            one_line(key)
        ));
    }
    check_name(name, "label key name")
}

/// Check a label value as Kubernetes does: empty, or at most 63 characters of letters, digits,
/// `-`, `_`, `.`, starting and ending with a letter or digit.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value, "label value")
}

/// One node label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeLabel {
    pub key: String,
    pub value: String,
    /// `Source::Label { key }`.
    pub source: Source,
    /// Where the label is written in the `--node-labels` file.
    pub at: Position,
}

/// The labels of one node, from `--node-labels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeLabels {
    pub path: String,
    /// `metadata.name` when the file is a Node object.
    pub node_name: Option<String>,
    /// In file order.
    pub labels: Vec<NodeLabel>,
    pub warnings: Vec<Warning>,
}

impl NodeLabels {
    /// The label with exactly this key, or else one that means the same (the other prefix).
    pub fn get(&self, key: &str) -> Option<&NodeLabel> {
        self.labels.iter().find(|l| l.key == key).or_else(|| {
            let wk = WellKnown::from_key(key)?;
            self.well_known(wk)
        })
    }

    /// The label under any of its spellings (the first one in the file).
    pub fn well_known(&self, wk: WellKnown) -> Option<&NodeLabel> {
        self.labels
            .iter()
            .find(|l| WellKnown::from_key(&l.key) == Some(wk))
    }

    /// The value of a normalized key, for [`super::Constraints::matches`].
    pub fn lookup(&self, key: &LabelKey) -> Option<&str> {
        match key {
            LabelKey::WellKnown(wk) => self.well_known(*wk).map(|l| l.value.as_str()),
            LabelKey::Custom(k) => self
                .labels
                .iter()
                .find(|l| &l.key == k)
                .map(|l| l.value.as_str()),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &NodeLabel> {
        self.labels.iter()
    }
}

/// Parse `--node-labels` text: a mapping of label key to value, a Node object as
/// `kubectl get node NAME -o json` (or `-o yaml`) prints it, or a `kubectl get nodes -o json`
/// list holding exactly one node.
pub fn parse_node_labels(text: &str, path: &str) -> Result<NodeLabels, K8sError> {
    let docs = yaml::load(text, path)?;
    let ctx = Ctx::new(path, text);
    let docs: Vec<&Node<'_>> = docs.iter().filter(|d| !is_empty_document(d)).collect();
    let expected = "a mapping of label keys to values, a Node, or a node List with one item";
    let doc = match docs.as_slice() {
        [] => {
            return Err(K8sError::WrongType {
                at: Position::new(path, 1, 1),
                field: "the file".to_string(),
                expected,
                found: "no YAML or JSON document".to_string(),
            })
        }
        [doc] => *doc,
        [_, second, ..] => {
            return Err(ctx.invalid(
                second,
                "the file",
                format!("holds {} documents; --node-labels reads one", docs.len()),
            ))
        }
    };
    let map = match &inner(doc).data {
        saphyr::YamlData::Mapping(m) => m,
        _ => return Err(ctx.wrong_type(doc, "the file", expected)),
    };
    let kind_node = entry(map, "kind").map(|(_, v)| v);
    let kind = kind_node.and_then(|v| match &inner(v).data {
        saphyr::YamlData::Value(saphyr::Scalar::String(s)) => Some(s.to_string()),
        _ => None,
    });
    let is_object = entry(map, "apiVersion").is_some() || entry(map, "metadata").is_some();
    let mut out = NodeLabels {
        path: path.to_string(),
        node_name: None,
        labels: Vec::new(),
        warnings: Vec::new(),
    };
    match (kind.as_deref(), kind_node) {
        (Some("Node"), _) if is_object => node_object(&ctx, doc, "", &mut out)?,
        (Some("List" | "NodeList"), _) if is_object || entry(map, "items").is_some() => {
            let (_, items) =
                entry(map, "items").ok_or_else(|| ctx.missing(doc, "items", "a List"))?;
            let items = ctx.seq(items, "items")?.unwrap_or(&[]);
            if items.len() != 1 {
                let (_, at) = entry(map, "items").unwrap_or((doc, doc));
                return Err(K8sError::NodeCount {
                    at: ctx.pos(at),
                    count: items.len(),
                });
            }
            node_object(&ctx, &items[0], "items[0].", &mut out)?;
        }
        (Some(other), Some(k)) if is_object => {
            return Err(K8sError::WrongType {
                at: ctx.pos(k),
                field: "kind".to_string(),
                expected,
                found: format!("kind {}", one_line(other)),
            });
        }
        _ => label_map(&ctx, map, "", &mut out)?,
    }
    warn_conflicts(&mut out);
    Ok(out)
}

/// Read and parse a `--node-labels` file (see [`parse_node_labels`]).
pub fn read_node_labels(path: &std::path::Path) -> Result<NodeLabels, K8sError> {
    let (text, name) = super::read_text(path)?;
    parse_node_labels(&text, &name)
}

fn node_object<'t>(
    ctx: &Ctx<'t>,
    node: &Node<'t>,
    prefix: &str,
    out: &mut NodeLabels,
) -> Result<(), K8sError> {
    let field = format!("{prefix}kind");
    let map = ctx
        .map(node, prefix.trim_end_matches('.'))?
        .ok_or_else(|| ctx.wrong_type(node, prefix.trim_end_matches('.'), "a Node"))?;
    match entry(map, "kind") {
        Some((_, k)) => match ctx.str(k, &field)? {
            Some("Node") => {}
            _ => return Err(ctx.wrong_type(k, &field, "Node")),
        },
        None => return Err(ctx.missing(node, &field, "a node list item")),
    }
    let Some((_, meta)) = entry(map, "metadata") else {
        return Err(ctx.missing(node, &format!("{prefix}metadata"), "a Node"));
    };
    let meta_field = format!("{prefix}metadata");
    let Some(meta) = ctx.map(meta, &meta_field)? else {
        return Err(ctx.missing(meta, &format!("{meta_field}.labels"), "a Node"));
    };
    if let Some((_, name)) = entry(meta, "name") {
        out.node_name = ctx
            .str(name, &format!("{meta_field}.name"))?
            .map(str::to_string);
    }
    if let Some((_, labels)) = entry(meta, "labels") {
        let field = format!("{meta_field}.labels");
        if let Some(labels) = ctx.map(labels, &field)? {
            label_map(ctx, labels, &format!("{field}."), out)?;
        }
    }
    Ok(())
}

fn label_map<'t>(
    ctx: &Ctx<'t>,
    map: &yaml::Map<'t>,
    prefix: &str,
    out: &mut NodeLabels,
) -> Result<(), K8sError> {
    for (k, v) in map {
        let Some(key) = key_str(k) else {
            return Err(ctx.wrong_type(k, &format!("{prefix}<key>"), "a string label key"));
        };
        let field = format!("{prefix}{}", one_line(key));
        validate_label_key(key).map_err(|m| ctx.invalid(k, &field, m))?;
        // A hand-written labels file may leave numbers and booleans unquoted.
        let Some(value) = ctx.scalar_text(v) else {
            return Err(ctx.wrong_type(v, &field, "a string label value"));
        };
        validate_label_value(&value).map_err(|m| ctx.invalid(v, &field, m))?;
        out.labels.push(NodeLabel {
            key: key.to_string(),
            value: value.into_owned(),
            source: Source::Label {
                key: key.to_string(),
            },
            at: ctx.pos(k),
        });
    }
    Ok(())
}

/// Warn when two spellings of one label disagree (the first one wins in lookups).
fn warn_conflicts(out: &mut NodeLabels) {
    let mut warnings = Vec::new();
    for (i, a) in out.labels.iter().enumerate() {
        let Some(wk) = WellKnown::from_key(&a.key) else {
            continue;
        };
        for b in &out.labels[i + 1..] {
            if WellKnown::from_key(&b.key) == Some(wk) && a.value != b.value {
                warnings.push(Warning {
                    at: b.at.clone(),
                    message: format!(
                        "{}={} disagrees with {}={} (same label); using {}",
                        b.key, b.value, a.key, a.value, a.value
                    ),
                });
            }
        }
    }
    out.warnings.extend(warnings);
}
