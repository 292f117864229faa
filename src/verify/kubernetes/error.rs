//! Errors and warnings of the Kubernetes input layer. Every message is one line that names the
//! file, line and column (1-based; columns count characters) and says what to do.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::verify::source::Source;

/// User text made safe for a one-line message: control characters escaped, at most 60
/// characters kept.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 60 {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A place in an input file: 1-based line and column (the column counts characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Position {
    pub path: String,
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub fn new(path: &str, line: usize, column: usize) -> Self {
        Position {
            path: path.to_string(),
            line,
            column,
        }
    }

    /// The same place as a requirement [`Source`].
    pub fn source(&self) -> Source {
        Source::File {
            path: self.path.clone(),
            line: self.line,
            column: self.column,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.path, self.line, self.column)
    }
}

/// Something accepted but worth telling the user (an unknown kind skipped, a deprecated API
/// version, a field accelprobe ignores). Returned, never printed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Warning {
    pub at: Position,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: warning: {}", self.at, self.message)
    }
}

/// Why a manifest or node-label file was refused. `Display` is a single line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum K8sError {
    /// The file could not be read.
    #[error("{path}: cannot read the file: {message}; check the path and its permissions")]
    Io { path: String, message: String },

    /// The bytes are not UTF-8 text.
    #[error("{at}: the file is not UTF-8 text ({detail}); save it as UTF-8")]
    NotUtf8 { at: Position, detail: String },

    /// Refused before parsing: more bytes than [`super::MAX_FILE_BYTES`].
    #[error(
        "{path}: the file is {size} bytes, more than the {limit}-byte limit; pass only the \
         manifests accelprobe needs (the Pod or workload and the NodePool)"
    )]
    TooLarge {
        path: String,
        size: u64,
        limit: usize,
    },

    /// Refused before parsing: more YAML documents than [`super::MAX_DOCUMENTS`].
    #[error(
        "{at}: more than {limit} YAML documents in one file; split it and pass only the \
         manifests accelprobe needs"
    )]
    TooManyDocuments { at: Position, limit: usize },

    /// Nesting deeper than [`super::MAX_DEPTH`] (or a structure that could be, refused before
    /// parsing).
    #[error(
        "{at}: nesting deeper than {limit} levels{detail}; a Kubernetes manifest never needs \
         that much, check that this is the file you meant"
    )]
    TooDeep {
        at: Position,
        limit: usize,
        detail: String,
    },

    /// A YAML alias (`*name`): refused, because aliases can expand without bound.
    #[error(
        "{at}: YAML alias '*{name}' is not accepted (anchors and aliases can expand without \
         bound); write the value out in full (e.g. yq 'explode(.)' FILE), or quote it if '*' is \
         meant as text"
    )]
    Alias { at: Position, name: String },

    /// The YAML or JSON parser rejected the text.
    #[error("{at}: malformed YAML/JSON: {message}; fix the syntax at this position")]
    Syntax { at: Position, message: String },

    /// A field holds the wrong kind of value (`found` may end with a hint, like quoting).
    #[error("{at}: {field} must be {expected}, found {found}")]
    WrongType {
        at: Position,
        field: String,
        expected: &'static str,
        found: String,
    },

    /// A required field is absent.
    #[error("{at}: {field} is required{context}; add it")]
    MissingField {
        at: Position,
        field: String,
        context: String,
    },

    /// An operator that is not one of the valid ones for this field.
    #[error("{at}: {field}: unknown operator '{found}'; valid operators are {valid}")]
    UnknownOperator {
        at: Position,
        field: String,
        found: String,
        valid: String,
    },

    /// A node selector requirement whose values do not fit its operator, or a bad `minValues`.
    #[error("{at}: {field}: {message}")]
    InvalidRequirement {
        at: Position,
        field: String,
        message: String,
    },

    /// A value of the right type that Kubernetes would refuse (label key or value syntax, a
    /// taint effect, a device count that is not a whole number, ...).
    #[error("{at}: {field}: {message}")]
    InvalidValue {
        at: Position,
        field: String,
        message: String,
    },

    /// The parser could not run (no thread could be started) or failed unexpectedly.
    #[error("{path}: {message}; please report this with the file")]
    Internal { path: String, message: String },

    /// `--node-labels` got a node list with other than one node.
    #[error(
        "{at}: the node list holds {count} nodes; --node-labels needs exactly one (kubectl get \
         node NAME -o json)"
    )]
    NodeCount { at: Position, count: usize },
}

impl K8sError {
    /// Where in the file the problem is, when it has a place.
    pub fn position(&self) -> Option<&Position> {
        match self {
            K8sError::Io { .. } | K8sError::TooLarge { .. } | K8sError::Internal { .. } => None,
            K8sError::NotUtf8 { at, .. }
            | K8sError::TooManyDocuments { at, .. }
            | K8sError::TooDeep { at, .. }
            | K8sError::Alias { at, .. }
            | K8sError::Syntax { at, .. }
            | K8sError::WrongType { at, .. }
            | K8sError::MissingField { at, .. }
            | K8sError::UnknownOperator { at, .. }
            | K8sError::InvalidRequirement { at, .. }
            | K8sError::InvalidValue { at, .. }
            | K8sError::NodeCount { at, .. } => Some(at),
        }
    }
}
