//! Where a requirement came from, so every check can say who demanded it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The origin of a requirement or a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A manifest file, at a 1-based line and column.
    File {
        path: String,
        line: usize,
        column: usize,
    },
    /// A node label (`--node-labels`).
    Label { key: String },
    /// The built-in catalog entry for an instance type or model.
    Catalog { entry: String },
    /// A `--expect KEY=VALUE` flag.
    Flag { text: String },
}

impl Source {
    /// The built-in catalog, as opposed to a manifest, a label or a flag.
    pub fn is_catalog(&self) -> bool {
        matches!(self, Source::Catalog { .. })
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File { path, line, column } => write!(f, "{path}:{line}:{column}"),
            Source::Label { key } => write!(f, "label {key}"),
            Source::Catalog { entry } => write!(f, "catalog {entry}"),
            Source::Flag { text } => write!(f, "--expect {text}"),
        }
    }
}
