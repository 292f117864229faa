//! Pieces shared by the fake NVML and the fake CUDA driver: reading the fixture, the
//! fault-injection rules and the call log.
//!
//! This file is compiled into both fakes (`accelprobe-fake-cuda` includes it with
//! `#[path = "../../fake-nvml/src/shared.rs"]`), so it knows nothing about either library.
//!
//! Injection syntax, the same for every fake and every variable:
//!
//! * errors and hangs: a comma-separated list of `function[:device]=value`, e.g.
//!   `nvmlDeviceGetTemperature:0=15,nvmlSystemGetDriverVersion=999`; the value is a return
//!   code (errors) or milliseconds (hangs). Without `:device` the rule matches every device
//!   and the calls that are about no device.
//! * lost devices: a comma-separated list of device indices, e.g. `2` or `0,3`.
//!
//! In a fixture the same rules are JSON: `{"errors": [{"function": "...", "device": 0,
//! "code": 15}], "hangs": [{"function": "...", "device": 1, "ms": 30000}], "lost_devices":
//! [2]}` (`device` optional). Environment rules are added to the fixture's and are consulted
//! first; the first matching rule wins.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Why a fixture could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixtureError {
    /// The environment variable naming the fixture is not set.
    Missing,
    /// The file could not be read, is not JSON, or has the wrong shape.
    Bad,
}

/// Read the fixture named by the environment variable `env`.
pub fn read_fixture(env: &str) -> Result<Value, FixtureError> {
    let path = std::env::var_os(env).ok_or(FixtureError::Missing)?;
    let text = std::fs::read_to_string(path).map_err(|_| FixtureError::Bad)?;
    let value: Value = serde_json::from_str(&text).map_err(|_| FixtureError::Bad)?;
    if !value.is_object() {
        return Err(FixtureError::Bad);
    }
    Ok(value)
}

/// The fixture's NVIDIA devices (entries whose `vendor` is `"nvidia"` or missing), in order.
pub fn nvidia_devices(fixture: &Value) -> Result<Vec<Value>, FixtureError> {
    let devices = match fixture.get("devices") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(FixtureError::Bad),
    };
    Ok(devices
        .iter()
        .filter(|d| match d.get("vendor") {
            None | Some(Value::Null) => true,
            Some(v) => v.as_str() == Some("nvidia"),
        })
        .cloned()
        .collect())
}

/// The fixture's `runtimes[]` entry with the given `name`, or `Value::Null`.
pub fn runtime<'a>(fixture: &'a Value, name: &str) -> &'a Value {
    fixture
        .get("runtimes")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
        })
        .unwrap_or(&Value::Null)
}

/// `"12.2"` → `12020` (major × 1000 + minor × 10), the CUDA version encoding.
pub fn cuda_version_number(text: &str) -> Option<i32> {
    let (major, minor) = text.split_once('.').unwrap_or((text, "0"));
    let minor = minor.split('.').next().unwrap_or("0");
    Some(major.trim().parse::<i32>().ok()? * 1000 + minor.trim().parse::<i32>().ok()? * 10)
}

/// `"0000abcd:3B:00.0"` → `(domain, bus, device)`.
pub fn parse_pci_bus_id(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split(':');
    let (domain, bus, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let device = rest.split('.').next()?;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    Some((hex(domain)?, hex(bus)?, hex(device)?))
}

/// One injection rule: for calls of `function` (about `device`, or any call when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub function: String,
    pub device: Option<usize>,
    /// Return code (error rules) or milliseconds (hang rules).
    pub value: u64,
}

impl Rule {
    fn matches(&self, function: &str, device: Option<usize>) -> bool {
        self.function == function && (self.device.is_none() || self.device == device)
    }
}

/// Every fault to inject, from the environment and the fixture.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub errors: Vec<Rule>,
    pub hangs: Vec<Rule>,
    pub lost: Vec<usize>,
}

impl Rules {
    /// Rules from the environment variables (checked first), then from the fixture's
    /// `section` object (e.g. `fake_nvml`). `lost_env` may be `None` for a fake without lost
    /// devices. Any malformed rule is an error.
    pub fn load(
        section: Option<&Value>,
        errors_env: &str,
        hang_env: &str,
        lost_env: Option<&str>,
    ) -> Result<Rules, FixtureError> {
        let env = |name: &str| std::env::var(name).ok().filter(|s| !s.trim().is_empty());
        let mut rules = Rules::default();
        if let Some(spec) = env(errors_env) {
            rules.errors = parse_rules(&spec).ok_or(FixtureError::Bad)?;
        }
        if let Some(spec) = env(hang_env) {
            rules.hangs = parse_rules(&spec).ok_or(FixtureError::Bad)?;
        }
        if let Some(spec) = lost_env.and_then(env) {
            rules.lost = parse_indices(&spec).ok_or(FixtureError::Bad)?;
        }
        let Some(section) = section.filter(|s| !s.is_null()) else {
            return Ok(rules);
        };
        let list = |key: &str, value_key: &str| -> Result<Vec<Rule>, FixtureError> {
            match section.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| json_rule(item, value_key).ok_or(FixtureError::Bad))
                    .collect(),
                Some(_) => Err(FixtureError::Bad),
            }
        };
        rules.errors.extend(list("errors", "code")?);
        rules.hangs.extend(list("hangs", "ms")?);
        match section.get("lost_devices") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let index = item.as_u64().ok_or(FixtureError::Bad)?;
                    rules
                        .lost
                        .push(usize::try_from(index).map_err(|_| FixtureError::Bad)?);
                }
            }
            Some(_) => return Err(FixtureError::Bad),
        }
        Ok(rules)
    }

    /// The return code to inject for this call, if any.
    pub fn error_for(&self, function: &str, device: Option<usize>) -> Option<u64> {
        self.errors
            .iter()
            .find(|r| r.matches(function, device))
            .map(|r| r.value)
    }

    /// How long this call should hang before doing its work, if at all.
    pub fn hang_for(&self, function: &str, device: Option<usize>) -> Option<Duration> {
        self.hangs
            .iter()
            .find(|r| r.matches(function, device))
            .map(|r| Duration::from_millis(r.value))
    }

    /// Whether every per-device call for `device` should fail as "GPU is lost".
    pub fn is_lost(&self, device: usize) -> bool {
        self.lost.contains(&device)
    }
}

/// Parse `function[:device]=value,...`; `None` when any item is malformed.
pub fn parse_rules(spec: &str) -> Option<Vec<Rule>> {
    spec.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (target, value) = item.split_once('=')?;
            let (function, device) = match target.split_once(':') {
                Some((f, d)) => (f.trim(), Some(d.trim().parse().ok()?)),
                None => (target.trim(), None),
            };
            if function.is_empty() {
                return None;
            }
            Some(Rule {
                function: function.to_string(),
                device,
                value: value.trim().parse().ok()?,
            })
        })
        .collect()
}

/// Parse `2` or `0,3`; `None` when any item is not an index.
pub fn parse_indices(spec: &str) -> Option<Vec<usize>> {
    spec.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| item.parse().ok())
        .collect()
}

fn json_rule(item: &Value, value_key: &str) -> Option<Rule> {
    let device = match item.get("device") {
        None | Some(Value::Null) => None,
        Some(d) => Some(usize::try_from(d.as_u64()?).ok()?),
    };
    Some(Rule {
        function: item.get("function")?.as_str()?.to_string(),
        device,
        value: item.get(value_key)?.as_u64()?,
    })
}

/// Append `function` (and `:device` for a per-device call) as one line to the file named by
/// the environment variable `env`, when it is set. Failures are ignored: logging must never
/// change what the fake returns.
pub fn log_call(env: &str, function: &str, device: Option<usize>) {
    let Some(path) = std::env::var_os(env) else {
        return;
    };
    let line = match device {
        Some(d) => format!("{function}:{d}\n"),
        None => format!("{function}\n"),
    };
    if let Ok(mut file) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&path))
    {
        // One write of one short line: O_APPEND keeps concurrent lines whole.
        let _ = file.write_all(line.as_bytes());
    }
}

/// Copy `text` and a terminating NUL into the C buffer `buf` of `len` bytes. `false` when
/// `buf` is null or the text does not fit (nothing is written then).
///
/// # Safety
/// `buf` must be null or valid for `len` bytes of writes.
pub unsafe fn copy_c_string(buf: *mut std::ffi::c_char, len: usize, text: &str) -> bool {
    let bytes = text.as_bytes();
    if buf.is_null() || bytes.len() >= len {
        return false;
    }
    // SAFETY: `buf` is valid for `len > bytes.len()` bytes (caller's contract, checked above).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
        *buf.add(bytes.len()) = 0;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rule_specs() {
        let rules = parse_rules("nvmlDeviceGetTemperature:0=15, nvmlSystemGetDriverVersion=999")
            .expect("valid spec");
        assert_eq!(
            rules,
            vec![
                Rule {
                    function: "nvmlDeviceGetTemperature".into(),
                    device: Some(0),
                    value: 15
                },
                Rule {
                    function: "nvmlSystemGetDriverVersion".into(),
                    device: None,
                    value: 999
                },
            ]
        );
        assert_eq!(parse_rules(""), Some(vec![]));
        assert_eq!(parse_rules("f:x=1"), None);
        assert_eq!(parse_rules("f=abc"), None);
        assert_eq!(parse_rules("=1"), None);
        assert_eq!(parse_indices("2, 0"), Some(vec![2, 0]));
        assert_eq!(parse_indices("two"), None);
    }

    #[test]
    fn matches_device_rules_and_device_less_rules() {
        let rules = Rules {
            errors: parse_rules("a:1=15,b=3").unwrap(),
            ..Rules::default()
        };
        assert_eq!(rules.error_for("a", Some(1)), Some(15));
        assert_eq!(rules.error_for("a", Some(0)), None);
        assert_eq!(rules.error_for("a", None), None);
        assert_eq!(rules.error_for("b", Some(7)), Some(3));
        assert_eq!(rules.error_for("b", None), Some(3));
    }

    #[test]
    fn decodes_versions_and_bus_ids() {
        assert_eq!(cuda_version_number("12.2"), Some(12020));
        assert_eq!(cuda_version_number("11.8"), Some(11080));
        assert_eq!(cuda_version_number("x"), None);
        assert_eq!(parse_pci_bus_id("00000000:30:00.0"), Some((0, 0x30, 0)));
        assert_eq!(parse_pci_bus_id("00000001:1B:1F.0"), Some((1, 0x1b, 0x1f)));
        assert_eq!(parse_pci_bus_id("30:00.0"), None);
    }
}
