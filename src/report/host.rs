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

impl Host {
    /// Add a node's labels (`accelprobe run --node-labels`) to the Kubernetes identity, and
    /// its name when the downward API gave none. The identity then exists, so the reason for
    /// its absence gives way to one reason per downward-API field still missing.
    pub fn add_node_labels<'a>(
        &mut self,
        node_name: Option<&str>,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let k8s = self.kubernetes.get_or_insert_with(Default::default);
        for (k, v) in labels {
            k8s.labels.insert(k.to_string(), v.to_string());
        }
        if k8s.node_name.is_none() {
            k8s.node_name = node_name.map(str::to_string);
        }
        let missing = [
            ("node_name", "NODE_NAME", k8s.node_name.is_none()),
            ("pod_name", "POD_NAME", k8s.pod_name.is_none()),
            (
                "pod_namespace",
                "POD_NAMESPACE",
                k8s.pod_namespace.is_none(),
            ),
        ];
        self.unavailable.remove("kubernetes");
        for (field, var, absent) in missing {
            if absent {
                self.unavailable
                    .insert(format!("kubernetes.{field}"), format!("{var} is not set"));
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_labels_replace_the_missing_identity_with_what_is_still_missing() {
        let mut host = Host::default();
        host.unavailable
            .insert("kubernetes".into(), "not in a pod".into());
        host.add_node_labels(Some("ip-10-0-1-2"), [("karpenter.sh/nodepool", "gpu")]);
        let k8s = host.kubernetes.as_ref().unwrap();
        assert_eq!(k8s.node_name.as_deref(), Some("ip-10-0-1-2"));
        assert_eq!(k8s.labels["karpenter.sh/nodepool"], "gpu");
        let keys: Vec<&str> = host.unavailable.keys().map(String::as_str).collect();
        assert_eq!(keys, ["kubernetes.pod_name", "kubernetes.pod_namespace"]);
        assert_eq!(
            host.unavailable["kubernetes.pod_name"],
            "POD_NAME is not set"
        );
    }

    #[test]
    fn the_downward_api_name_wins_over_the_labels_file() {
        let mut host = Host {
            kubernetes: Some(Kubernetes {
                node_name: Some("from-env".into()),
                pod_name: Some("p".into()),
                pod_namespace: Some("ns".into()),
                labels: Default::default(),
            }),
            ..Host::default()
        };
        host.add_node_labels(Some("from-file"), []);
        assert_eq!(
            host.kubernetes.unwrap().node_name.as_deref(),
            Some("from-env")
        );
        assert!(host.unavailable.is_empty());
    }
}
