//! The report: the data contract every other part of accelprobe stands on.
//!
//! One serde model, versioned by [`SCHEMA_VERSION`], with a JSON Schema generated from these
//! types (`docs/report.schema.json`, kept fresh by a test). Probing fills it, renderers print
//! it, and the fake NVML replays it, so a report captured on a real node is also a test
//! fixture.
//!
//! Rule for every field that comes from hardware: a value that could not be read is `None`
//! (`null` in JSON) and the reason sits in the device's `unavailable` map (and, when it was a
//! real failure rather than "not supported", in the report's `errors`). Never 0 or -1 as a
//! stand-in.

mod bench;
mod device;
mod host;
mod neuron;

pub use bench::*;
pub use device::*;
pub use host::*;
pub use neuron::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the report format. Bump when a field changes meaning or is removed; adding an
/// optional field does not need a bump.
pub const SCHEMA_VERSION: u32 = 1;

/// Name the tool writes into `tool.name`.
pub const TOOL_NAME: &str = "accelprobe";

/// One probe of one machine.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Report {
    /// Version of this format; readers refuse versions newer than they know.
    pub schema_version: u32,
    /// The program that wrote the report.
    pub tool: Tool,
    /// Unique id of this report (a UUID); collectors use it to deduplicate.
    pub id: String,
    /// When the probe started, RFC 3339 in UTC.
    pub created_at: String,
    /// The machine and, inside Kubernetes, the node and pod.
    pub host: Host,
    /// One entry per runtime library looked for, loaded or not.
    pub runtimes: Vec<Runtime>,
    /// One entry per accelerator found.
    pub devices: Vec<Device>,
    /// Micro-kernel results, when `bench` ran.
    #[serde(default)]
    pub benchmarks: Vec<Benchmark>,
    /// Everything that went wrong while probing, with the call that failed.
    pub errors: Vec<ProbeError>,
}

/// The program that wrote a report.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Tool {
    /// This build of accelprobe.
    pub fn current() -> Self {
        Tool {
            name: TOOL_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Which runtime library an entry describes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// NVIDIA Management Library (`libnvidia-ml.so.1`).
    Nvml,
    /// CUDA driver API (`libcuda.so`).
    Cuda,
    /// AWS Neuron runtime (`libnrt.so.1`).
    Neuron,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Nvml => "nvml",
            RuntimeKind::Cuda => "cuda",
            RuntimeKind::Neuron => "neuron",
        }
    }
}

/// Outcome of looking for a runtime.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeStatus {
    /// The library loaded and initialised.
    Loaded,
    /// No candidate library could be opened; `tried` lists every path.
    Absent,
    /// The library loaded but failed (init error, missing symbol, driver not loaded).
    Error,
    /// A call into the library did not return before the deadline.
    Timeout,
}

impl RuntimeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Loaded => "loaded",
            RuntimeStatus::Absent => "absent",
            RuntimeStatus::Error => "error",
            RuntimeStatus::Timeout => "timeout",
        }
    }
}

/// One attempt to open a runtime library.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct LibraryAttempt {
    /// The path or name handed to the dynamic loader.
    pub path: String,
    /// Why it did not load; `None` for the attempt that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One runtime library looked for.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Runtime {
    pub name: RuntimeKind,
    pub status: RuntimeStatus,
    /// The library that was loaded, when one was.
    #[serde(default)]
    pub library: Option<String>,
    /// Every path tried, in order.
    #[serde(default)]
    pub tried: Vec<LibraryAttempt>,
    /// Version of the library itself: NVML version (`12.535.230.02`), CUDA driver API
    /// version (`12.2`).
    #[serde(default)]
    pub version: Option<String>,
    /// NVIDIA kernel driver version (`535.230.02`), as NVML reports it.
    #[serde(default)]
    pub driver_version: Option<String>,
    /// Highest CUDA version the driver supports (`12.2`), what nvidia-smi shows as
    /// "CUDA Version".
    #[serde(default)]
    pub cuda_version: Option<String>,
    /// Number of devices the runtime reported.
    #[serde(default)]
    pub device_count: Option<u32>,
    /// Why the runtime is not `loaded`.
    #[serde(default)]
    pub error: Option<String>,
    /// What the Neuron runtime reports (`name: neuron` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neuron: Option<NeuronRuntime>,
}

impl Runtime {
    /// An entry with nothing known yet.
    pub fn new(name: RuntimeKind, status: RuntimeStatus) -> Self {
        Runtime {
            name,
            status,
            library: None,
            tried: Vec::new(),
            version: None,
            driver_version: None,
            cuda_version: None,
            device_count: None,
            error: None,
            neuron: None,
        }
    }
}

/// What kind of failure an error entry records.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The library call returned an error code.
    Error,
    /// The call did not return before the deadline.
    Timeout,
    /// The library or its wrapper aborted the call (a missing symbol, a bug); caught.
    Panic,
}

/// Something that went wrong while probing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ProbeError {
    pub runtime: RuntimeKind,
    pub kind: ErrorKind,
    /// The library function that failed, e.g. `nvmlDeviceGetTemperature`.
    pub call: String,
    /// Index of the device the call was about, when it was about one.
    #[serde(default)]
    pub device: Option<u32>,
    /// The report field left empty because of it, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Library return code name, e.g. `NVML_ERROR_GPU_IS_LOST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

impl Report {
    /// The runtime entry of the given kind, if it was looked for.
    pub fn runtime(&self, kind: RuntimeKind) -> Option<&Runtime> {
        self.runtimes.iter().find(|r| r.name == kind)
    }

    /// The AWS Neuron devices.
    pub fn neuron_devices(&self) -> Vec<&Device> {
        self.devices.iter().filter(|d| d.is_neuron()).collect()
    }

    /// Driver version, from NVML.
    pub fn driver_version(&self) -> Option<&str> {
        self.runtime(RuntimeKind::Nvml)
            .and_then(|r| r.driver_version.as_deref())
    }

    /// CUDA version the driver supports: NVML's answer, else the CUDA driver API's.
    pub fn cuda_version(&self) -> Option<&str> {
        self.runtime(RuntimeKind::Nvml)
            .and_then(|r| r.cuda_version.as_deref())
            .or_else(|| {
                self.runtime(RuntimeKind::Cuda)
                    .and_then(|r| r.cuda_version.as_deref())
            })
    }

    /// Parse a report from JSON text, refusing a schema newer than this build knows.
    pub fn parse_json(text: &str) -> Result<Report, ReportParseError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ReportParseError::Json {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?;
        Report::from_json_value(value)
    }

    /// A report from parsed JSON (refusing a newer schema first, with that reason).
    pub fn from_json_value(value: serde_json::Value) -> Result<Report, ReportParseError> {
        if let Some(v) = value.get("schema_version").and_then(|v| v.as_u64()) {
            if v > u64::from(SCHEMA_VERSION) {
                return Err(ReportParseError::NewerSchema {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        serde_json::from_value(value).map_err(|e| ReportParseError::Shape {
            message: e.to_string(),
        })
    }
}

/// Why a report file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportParseError {
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("report schema_version {found} is newer than this accelprobe supports ({supported}); upgrade accelprobe")]
    NewerSchema { found: u64, supported: u32 },
    #[error("not an accelprobe report: {message}")]
    Shape { message: String },
}

/// The JSON Schema of [`Report`], as committed in `docs/report.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Report)).unwrap_or(serde_json::Value::Null)
}

/// Render the JSON Schema as the committed file's text (pretty JSON, trailing newline).
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}
