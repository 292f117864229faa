//! YAML for `accelprobe manifests`: a Karpenter NodePool (EKS Auto Mode labels, as in the seed)
//! with accelprobe's startup taint, and a validation Job that requests the accelerators and
//! judges the node. Written as text so the output reads like a hand-written manifest, with
//! comments; the test suite parses it and validates it against the Kubernetes and Karpenter
//! schemas.

use crate::manifests::{Plan, NAMESPACE, TOKEN_SECRET};
// The taint the collector lifts: one constant, so the two cannot drift apart.
use crate::serve::gate::STARTUP_TAINT_KEY as STARTUP_TAINT;
use crate::verify::catalog::Vendor;

/// A YAML double-quoted scalar: JSON string syntax, which YAML reads the same way, so quotes,
/// backslashes and newlines in a value cannot break the document.
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// `["a", "b"]` for YAML flow sequences.
fn flow(items: &[impl AsRef<str>]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quoted(s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// The resource name and the taint key of the accelerator.
fn resource(p: &Plan) -> &'static str {
    p.vendor.resource_name()
}

fn nodepool(p: &Plan) -> String {
    let name = format!("{}-{}", vendor_word(p), p.label);
    let mut reqs = format!(
        "        - key: karpenter.sh/capacity-type\n          operator: In\n          values: [\"on-demand\"]\n\
         \x20       - key: kubernetes.io/arch\n          operator: In\n          values: {}\n\
         \x20       - key: eks.amazonaws.com/instance-family\n          operator: In\n          values: {}\n",
        flow(&p.archs),
        flow(&p.families)
    );
    if p.vendor != Vendor::Neuron {
        reqs.push_str(&format!(
            "        - key: eks.amazonaws.com/instance-gpu-name\n          operator: In\n          values: {}\n",
            flow(&[&p.label])
        ));
        if p.pin_count {
            reqs.push_str(&format!(
                "        - key: eks.amazonaws.com/instance-gpu-count\n          operator: In\n          values: {}\n",
                flow(&[p.count.to_string()])
            ));
        }
    }
    format!(
        "# NodePool for {label} nodes. New nodes start with the taint {STARTUP_TAINT}: nothing but\n\
         # the validation Job (which tolerates it) runs there until the collector has seen the node\n\
         # pass and removed it.\n\
         apiVersion: karpenter.sh/v1\n\
         kind: NodePool\n\
         metadata:\n\
         \x20 name: {name}\n\
         spec:\n\
         \x20 disruption:\n\
         \x20   budgets:\n\
         \x20     - nodes: 10%\n\
         \x20   consolidateAfter: 1h\n\
         \x20   consolidationPolicy: WhenEmpty\n\
         \x20 template:\n\
         \x20   spec:\n\
         \x20     nodeClassRef:\n\
         \x20       group: eks.amazonaws.com\n\
         \x20       kind: NodeClass\n\
         \x20       name: default\n\
         \x20     requirements:\n{reqs}\
         \x20     taints:\n\
         \x20       - key: {resource}\n\
         \x20         effect: NoSchedule\n\
         \x20     startupTaints:\n\
         \x20       - key: {STARTUP_TAINT}\n\
         \x20         effect: NoSchedule\n\
         \x20     terminationGracePeriod: 24h0m0s\n",
        label = p.label,
        resource = resource(p),
    )
}

fn vendor_word(p: &Plan) -> &'static str {
    match p.vendor {
        Vendor::Neuron => "neuron",
        _ => "gpu",
    }
}

/// Where the Job may run: the accelerator's node label (GPUs, as the seed's pod selects), or
/// the instance families (Neuron: Auto Mode examples select by family).
fn placement(p: &Plan) -> String {
    match p.vendor {
        Vendor::Neuron => format!(
            "      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n\
             \x20           nodeSelectorTerms:\n              - matchExpressions:\n\
             \x20                 - key: eks.amazonaws.com/instance-family\n                    operator: In\n\
             \x20                   values: {}\n      nodeSelector:\n        eks.amazonaws.com/compute-type: auto\n",
            flow(&p.families)
        ),
        _ => format!(
            "      nodeSelector:\n        eks.amazonaws.com/instance-gpu-name: {}\n        eks.amazonaws.com/compute-type: auto\n",
            p.label
        ),
    }
}

/// The downward-API variables the report uses to name the node and the pod.
pub const DOWNWARD_ENV: &str = "            - name: NODE_NAME\n              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}\n\
\x20           - name: POD_NAME\n              valueFrom: {fieldRef: {fieldPath: metadata.name}}\n\
\x20           - name: POD_NAMESPACE\n              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}\n";

fn job(p: &Plan) -> String {
    let res = resource(p);
    // A container sees only the GPUs it was given, so a GPU Job expects its own count. The
    // Neuron driver's sysfs tree lists every device of the node whatever the pod was given,
    // so a Neuron Job leaves the count to the node's instance type (the catalog's).
    let expect = match p.vendor {
        Vendor::Neuron => format!("accelerator={}", p.label),
        _ => format!("gpu={};count={}", p.label, p.count),
    };
    let (post_env, token_mount, token_volume) = match &p.collector {
        Some(url) => (
            format!(
                "            - name: ACCELPROBE_POST_URL\n              value: {}\n\
                 \x20           - name: ACCELPROBE_TOKEN_FILE\n              value: /var/run/accelprobe/token\n",
                quoted(url)
            ),
            "            - name: token\n              mountPath: /var/run/accelprobe\n              readOnly: true\n".to_string(),
            format!(
                "        - name: token\n          secret:\n            secretName: {TOKEN_SECRET}\n"
            ),
        ),
        None => (String::new(), String::new(), String::new()),
    };
    format!(
        "# Validation Job for {label} nodes: accelprobe instead of nvidia-smi. It lands on a new node\n\
         # like the workload would, tolerates the startup taint, and exits 0 only when the node\n\
         # passes (the verdict is also in the pod's termination message).\n\
         apiVersion: batch/v1\n\
         kind: Job\n\
         metadata:\n\
         \x20 name: accelprobe-validate-{slug}\n\
         \x20 namespace: {NAMESPACE}\n\
         \x20 labels:\n\
         \x20   app.kubernetes.io/name: accelprobe\n\
         \x20   app.kubernetes.io/component: validation\n\
         spec:\n\
         \x20 backoffLimit: 0\n\
         \x20 ttlSecondsAfterFinished: 86400\n\
         \x20 template:\n\
         \x20   metadata:\n\
         \x20     labels:\n\
         \x20       app.kubernetes.io/name: accelprobe\n\
         \x20       app.kubernetes.io/component: validation\n\
         \x20   spec:\n\
         \x20     restartPolicy: Never\n\
         \x20     automountServiceAccountToken: false\n\
         {placement}\
         \x20     tolerations:\n\
         \x20       - key: {res}\n\
         \x20         operator: Exists\n\
         \x20         effect: NoSchedule\n\
         \x20       - key: {STARTUP_TAINT}\n\
         \x20         operator: Exists\n\
         \x20         effect: NoSchedule\n\
         \x20     securityContext:\n\
         \x20       runAsNonRoot: true\n\
         \x20       runAsUser: 65532\n\
         \x20       runAsGroup: 65532\n\
         \x20     containers:\n\
         \x20       - name: accelprobe\n\
         \x20         image: {image}\n\
         \x20         args: [\"run\"]\n\
         \x20         env:\n\
         \x20           - name: ACCELPROBE_EXPECT\n\
         \x20             value: \"{expect}\"\n\
         {DOWNWARD_ENV}{post_env}\
         \x20         resources:\n\
         \x20           requests:\n\
         \x20             cpu: \"1\"\n\
         \x20             memory: 4Gi\n\
         \x20             {res}: {count}\n\
         \x20           limits:\n\
         \x20             memory: 4Gi\n\
         \x20             {res}: {count}\n\
         \x20         securityContext:\n\
         \x20           allowPrivilegeEscalation: false\n\
         \x20           readOnlyRootFilesystem: true\n\
         \x20           capabilities:\n\
         \x20             drop: [\"ALL\"]\n\
         \x20         volumeMounts:\n\
         \x20           - name: tmp\n\
         \x20             mountPath: /tmp\n\
         {token_mount}\
         \x20     volumes:\n\
         \x20       - name: tmp\n\
         \x20         emptyDir: {{}}\n\
         {token_volume}",
        label = p.label,
        slug = p.label,
        placement = placement(p),
        image = quoted(&p.image),
        count = p.count,
    )
}

/// The NodePool and the Job, as one multi-document YAML stream.
pub fn yaml(p: &Plan) -> String {
    format!(
        "# Generated by `accelprobe manifests` {} from the built-in catalog: {} on {}.\n---\n{}---\n{}",
        env!("CARGO_PKG_VERSION"),
        p.models.join(", "),
        p.families.join(", "),
        nodepool(p),
        job(p)
    )
}
