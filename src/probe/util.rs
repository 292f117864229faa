//! Small helpers shared by the backends.

use serde_json::Value;

use crate::report::Device;

/// Bytes to MiB, rounded down as nvidia-smi does.
pub fn mib_from_bytes(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

/// Give every `null` field of `device` that has no recorded reason the reason `reason`, so
/// that the report never holds an unexplained null. Field names are dotted paths
/// (`ecc.volatile_uncorrected`).
pub fn fill_missing_reasons(device: &mut Device, reason: &str) {
    let Ok(value) = serde_json::to_value(&*device) else {
        return;
    };
    let mut nulls = Vec::new();
    collect_nulls(&value, "", &mut nulls);
    for path in nulls {
        // A parent already explained (e.g. `nvlink`) covers its children.
        let covered = device
            .unavailable
            .keys()
            .any(|k| path == *k || path.starts_with(&format!("{k}.")));
        if !covered {
            device.unavailable.insert(path, reason.to_string());
        }
    }
}

fn collect_nulls(value: &Value, prefix: &str, out: &mut Vec<String>) {
    let Value::Object(map) = value else {
        return;
    };
    for (key, v) in map {
        if key == "unavailable" {
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        collect_value(v, path, out);
    }
}

fn collect_value(v: &Value, path: String, out: &mut Vec<String>) {
    match v {
        Value::Null => out.push(path),
        Value::Object(_) => collect_nulls(v, &path, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_value(item, format!("{path}.{i}"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_only_unexplained_nulls() {
        let mut d = Device {
            name: Some("NVIDIA L4".into()),
            ..Device::default()
        };
        d.mark_unavailable("temperature_c", "not supported");
        fill_missing_reasons(&mut d, "not read");
        assert_eq!(d.unavailable["temperature_c"], "not supported");
        assert_eq!(d.unavailable["ecc.volatile_uncorrected"], "not read");
        assert_eq!(d.unavailable["cuda"], "not read");
        assert!(!d.unavailable.contains_key("name"));
    }

    #[test]
    fn mib_rounds_down() {
        assert_eq!(mib_from_bytes(48305799168), 46068);
        assert_eq!(mib_from_bytes(1048575), 0);
    }
}
