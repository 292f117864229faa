//! Host part of the report: what machine and which Kubernetes node this is.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The machine the probe ran on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct Host {
    pub hostname: Option<String>,
    /// OS release, `PRETTY_NAME` of `/etc/os-release`.
    pub os: Option<String>,
    /// Kernel release (`uname -r`).
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    /// Logical CPUs online.
    pub cpu_count: Option<u32>,
    pub memory_total_mib: Option<u64>,
    /// EC2 instance type (from the DMI product name on Nitro instances).
    pub instance_type: Option<String>,
    /// Kubernetes identity from the downward API, when running in a pod.
    pub kubernetes: Option<Kubernetes>,
    /// Field name → why its value is `null`.
    pub unavailable: std::collections::BTreeMap<String, String>,
}

/// Kubernetes identity of the probe (downward-API environment variables).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default)]
pub struct Kubernetes {
    /// `NODE_NAME` (`spec.nodeName`).
    pub node_name: Option<String>,
    /// `POD_NAME` (`metadata.name`).
    pub pod_name: Option<String>,
    /// `POD_NAMESPACE` (`metadata.namespace`).
    pub pod_namespace: Option<String>,
    /// The node's labels as the probe was given them (`accelprobe run --node-labels`). The
    /// collector uses them to find the node's NodePool when it cannot ask the Kubernetes API.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}
