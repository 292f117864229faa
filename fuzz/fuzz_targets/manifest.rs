//! Kubernetes manifests and node labels: any bytes must give a value or a clean error.
#![no_main]

use accelprobe::verify::kubernetes::{parse_manifests, parse_node_labels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = parse_manifests(text, "fuzz.yaml") {
            // Exercise what verify does with parsed manifests.
            for pod in &m.pods {
                let _ = pod.alternatives();
                let _ = pod.constraint_alternatives();
            }
            for np in &m.node_pools {
                let _ = np.constraints();
            }
        }
        let _ = parse_node_labels(text, "fuzz.json");
    }
});
