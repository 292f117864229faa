//! The collector's own judgement: every report is verified again against the requirements the
//! collector holds for its node, so a probe cannot certify itself. The probe's verdict is kept
//! for the record only.
//!
//! Which requirements apply to a node: the NodePool named by its `karpenter.sh/nodepool` label,
//! the Pods and workloads whose node selector and required affinity match its labels, and the
//! catalog entry of its instance type. The labels come from the Kubernetes API when the
//! collector gates nodes (`--kube`), else from the report (`accelprobe run --node-labels`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::report::Report;
use crate::verify::catalog::Catalog;
use crate::verify::kubernetes::{self, Manifests, NodeLabels, WellKnown};
use crate::verify::source::Source;
use crate::verify::verdict::{Check, Status, Verdict};
use crate::verify::VerifyInputs;

/// Where a node's labels came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOrigin {
    /// Read from the Node object by the collector: trusted.
    KubernetesApi,
    /// Sent by the probe in its report.
    Report,
}

impl LabelOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelOrigin::KubernetesApi => "kubernetes-api",
            LabelOrigin::Report => "report",
        }
    }
}

/// A node's labels and where they came from.
#[derive(Debug, Clone)]
pub struct Labels {
    pub map: BTreeMap<String, String>,
    pub origin: LabelOrigin,
}

/// Why a report cannot be judged.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The labels the report carries are not valid Kubernetes labels.
    #[error("host.kubernetes.labels: {0}")]
    Labels(String),
    #[error("{0}")]
    Requirements(String),
}

/// The requirements the collector holds, read once at start.
#[derive(Debug, Default)]
pub struct Judge {
    manifests: Manifests,
    /// The files read, for the log.
    pub files: Vec<PathBuf>,
}

/// Manifest files in a directory: `*.yaml`, `*.yml`, `*.json`, sorted by name.
fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "--requirements {}: cannot read the directory: {e}",
            dir.display()
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("--requirements {}: {e}", dir.display()))?
            .path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if path.is_file() && matches!(ext, "yaml" | "yml" | "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

impl Judge {
    /// Read every manifest in `dir` (none: judge by the catalog alone). A malformed file is an
    /// error that names it, line and column.
    pub fn load(dir: Option<&Path>) -> Result<Judge, String> {
        let mut judge = Judge::default();
        let Some(dir) = dir else {
            return Ok(judge);
        };
        for path in manifest_files(dir)? {
            let m = kubernetes::read_manifests(&path).map_err(|e| e.to_string())?;
            judge.manifests.extend(m);
            judge.files.push(path);
        }
        Ok(judge)
    }

    /// Warnings from reading the manifests (unknown kinds and the like), for the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        self.manifests
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// NodePools and Pods held, for the start-up log.
    pub fn counts(&self) -> (usize, usize) {
        (self.manifests.node_pools.len(), self.manifests.pods.len())
    }

    /// Whether the manifests hold a NodePool of this name.
    pub fn has_node_pool(&self, name: &str) -> bool {
        self.manifests
            .node_pools
            .iter()
            .any(|np| np.object.name.as_deref() == Some(name))
    }

    /// The collector's verdict on `report` for `node`. `cluster` holds the node's NodePool as
    /// the Kubernetes API has it (`--kube`), used when `--requirements` has none of its name.
    pub fn judge(
        &self,
        report: &Report,
        node: &str,
        node_labels: Option<NodeLabels>,
        cluster: Option<&Manifests>,
        catalog: &Catalog,
    ) -> Result<Verdict, JudgeError> {
        let mut notes = Vec::new();
        let node_pool = node_labels
            .as_ref()
            .and_then(|l| well_known(l, WellKnown::NodePool));
        let mut manifests = Manifests::default();
        match &node_pool {
            Some(name) => {
                manifests.node_pools = pools_named(&self.manifests, name);
                if manifests.node_pools.is_empty() {
                    manifests.node_pools =
                        cluster.map(|c| pools_named(c, name)).unwrap_or_default();
                }
                if manifests.node_pools.is_empty() {
                    notes.push(format!(
                        "the node's NodePool {name} is not among the collector's requirements; \
                         judged on the catalog and the matching pods only"
                    ));
                }
            }
            None if !self.manifests.node_pools.is_empty() => notes.push(
                "the node has no karpenter.sh/nodepool label: no NodePool requirements applied"
                    .to_string(),
            ),
            None => {}
        }
        manifests.pods = self
            .manifests
            .pods
            .iter()
            .filter(|pod| pod_applies(pod, node_labels.as_ref()))
            .cloned()
            .collect();
        let inputs = VerifyInputs {
            manifests,
            node_labels,
            expects: Vec::new(),
        };
        let mut verdict = crate::verify::verify(report, &inputs, catalog)
            .map_err(|e| JudgeError::Requirements(e.to_string()))?;
        verdict.node = Some(node.to_string());
        verdict.warnings.extend(notes);
        require_requirements(&mut verdict);
        Ok(verdict)
    }
}

/// The NodePools called `name`.
fn pools_named(m: &Manifests, name: &str) -> Vec<kubernetes::NodePool> {
    m.node_pools
        .iter()
        .filter(|np| np.object.name.as_deref() == Some(name))
        .cloned()
        .collect()
}

/// A pod (or workload template) applies to a node when the node satisfies one of its selector
/// alternatives; one without any selector applies to every node.
fn pod_applies(pod: &kubernetes::PodSpec, labels: Option<&NodeLabels>) -> bool {
    let alternatives = pod.constraint_alternatives();
    if alternatives.is_empty() {
        // Its required affinity matches no node at all.
        return false;
    }
    if alternatives.iter().all(|c| c.is_empty()) {
        return true;
    }
    let Some(labels) = labels else {
        return false;
    };
    alternatives
        .iter()
        .any(|c| c.matches(|key| labels.lookup(key)))
}

/// The value of a well-known label (any of its spellings).
pub fn well_known(labels: &NodeLabels, wk: WellKnown) -> Option<String> {
    labels.well_known(wk).map(|l| l.value.clone())
}

/// The label map as the verifier's node labels (`None` when there are none). Labels from a
/// report are validated as Kubernetes validates them; the API server's are valid by
/// construction.
pub fn node_labels(node: &str, labels: &Labels) -> Result<Option<NodeLabels>, JudgeError> {
    if labels.map.is_empty() {
        return Ok(None);
    }
    to_node_labels(node, labels).map(Some)
}

fn to_node_labels(node: &str, labels: &Labels) -> Result<NodeLabels, JudgeError> {
    let origin = match labels.origin {
        LabelOrigin::KubernetesApi => format!("node {node} (Kubernetes API)"),
        LabelOrigin::Report => format!("node {node} (labels in the report)"),
    };
    let mut out = NodeLabels {
        path: origin.clone(),
        node_name: Some(node.to_string()),
        labels: Vec::with_capacity(labels.map.len()),
        warnings: Vec::new(),
    };
    for (key, value) in &labels.map {
        if labels.origin == LabelOrigin::Report {
            kubernetes::validate_label_key(key)
                .and_then(|()| kubernetes::validate_label_value(value))
                .map_err(|e| JudgeError::Labels(format!("label {key}: {e}")))?;
        }
        out.labels.push(kubernetes::NodeLabel {
            key: key.clone(),
            value: value.clone(),
            source: Source::Label { key: key.clone() },
            at: kubernetes::Position::new(&origin, 1, 1),
        });
    }
    Ok(out)
}

/// A verdict judged against nothing proves nothing: it fails, saying what to add.
fn require_requirements(verdict: &mut Verdict) {
    // Optional requirements alone ("one of these, or no accelerator": what generic labels such
    // as kubernetes.io/arch allow) know nothing about this node either.
    if !verdict.requirements.iter().all(|r| r.optional) {
        return;
    }
    verdict.passed = false;
    verdict.checks.insert(
        0,
        Check {
            id: "requirements.present".into(),
            status: Status::Fail,
            expected: Some("at least one requirement for this node".into()),
            observed: Some("none".into()),
            message: "the collector holds no requirements for this node: no NodePool matches \
                      its karpenter.sh/nodepool label, no Pod's selector matches its labels, \
                      and its instance type is not in the catalog; add its NodePool or Pod \
                      to --requirements"
                .into(),
            sources: Vec::new(),
            device: None,
        },
    );
}
