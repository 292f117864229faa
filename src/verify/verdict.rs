//! The verdict: a separate document from the report, with the requirements that were applied
//! (each with its sources) and one entry per named check.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::source::Source;

/// Version of the verdict format.
pub const VERDICT_SCHEMA_VERSION: u32 = 1;

/// Outcome of one check.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Skip,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Skip => "skip",
            Status::Fail => "fail",
        }
    }
}

/// One named check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Check {
    /// Dotted id from the registry, e.g. `gpu.model`.
    pub id: String,
    pub status: Status,
    /// What was required, in words (`1 x l40s`).
    pub expected: Option<String>,
    /// What the report shows.
    pub observed: Option<String>,
    /// One line for a person.
    pub message: String,
    /// Who demanded it (empty for accelprobe's own health defaults).
    #[serde(default)]
    pub sources: Vec<Source>,
    /// The device the check is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// One applied requirement, for the record.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct AppliedRequirement {
    /// `gpu.model`, `gpu.count`, `gpu.memory`, `driver.version`, `perf.gemm.bf16`, ...
    pub key: String,
    pub value: String,
    pub sources: Vec<Source>,
    /// Binds only the accelerators a node has: a node without any satisfies it (models a
    /// selector with a CPU alternative allows). Such a requirement alone says nothing about
    /// the node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// The verdict document.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Verdict {
    pub schema_version: u32,
    /// True when no check failed.
    pub passed: bool,
    /// The report judged (its id), and the node it came from when known.
    pub report_id: String,
    pub node: Option<String>,
    pub requirements: Vec<AppliedRequirement>,
    /// Combinations no instance can satisfy, and other problems with the requirements.
    #[serde(default)]
    pub conflicts: Vec<String>,
    /// Things skipped while reading the inputs (unknown kinds, unused documents).
    #[serde(default)]
    pub warnings: Vec<String>,
    pub checks: Vec<Check>,
}

impl Verdict {
    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }
}

/// The JSON Schema of [`Verdict`], as committed in `docs/verdict.schema.json`.
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&schemars::schema_for!(Verdict)).unwrap_or_default();
    s.push('\n');
    s
}
