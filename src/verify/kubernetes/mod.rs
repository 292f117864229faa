//! Kubernetes input: Pods, workload pod templates, Karpenter NodePools, node labels.
//!
//! Parsing is pure (`parse_*(text, path)`, where `path` only names the file in messages and
//! sources) and separate from reading (`read_*(path)`). Nothing here panics on any input: a
//! file is either read into typed values, each with the [`Source`] of where it is written, or
//! refused with a [`K8sError`] whose one-line message names the file, line and column and what
//! to do.
//!
//! Limits, enforced before the YAML parser runs: [`MAX_FILE_BYTES`], [`MAX_DOCUMENTS`],
//! [`MAX_DEPTH`] (see `yaml.rs` for how depth is bounded before parsing and checked exactly
//! after), and no YAML aliases (`*name`): an alias bomb is refused before anything expands.
//!
//! [`Source`]: crate::verify::source::Source

mod error;
mod labels;
mod manifest;
mod requirement;
mod yaml;

#[cfg(test)]
mod tests;

pub use error::{K8sError, Position, Warning};
pub use labels::{
    parse_node_labels, read_node_labels, validate_label_key, validate_label_value, LabelKey,
    NodeLabel, NodeLabels, WellKnown, EKS_PREFIX, KARPENTER_AWS_PREFIX,
};
pub use manifest::{
    parse_manifests, parse_quantity, read_manifests, Container, Manifests, NodePool,
    NodeSelectorTerm, ObjectRef, PodSpec, ResourceName, ResourceQuantity, ResourceTotal,
    SelectorEntry, Taint, TaintEffect, Toleration, TolerationOperator,
};
pub use requirement::{
    parse_int, Constraint, Constraints, Incompatibility, Operator, Requirement, RequirementContext,
    RequirementError, RequirementField,
};

use std::io::Read;

/// Files larger than this (4 MiB) are refused unread.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Files with more YAML documents than this are refused before parsing.
pub const MAX_DOCUMENTS: usize = 1000;
/// Deepest accepted nesting of collections (a document `{a: [1]}` has depth 2).
pub const MAX_DEPTH: usize = 64;

/// Read a file as UTF-8 text, refusing it when larger than [`MAX_FILE_BYTES`] (checked on the
/// metadata first, and on what is read for pipes). Returns the text and the path as shown in
/// messages.
pub(crate) fn read_text(path: &std::path::Path) -> Result<(String, String), K8sError> {
    let name = path.display().to_string();
    let io = |e: std::io::Error| K8sError::Io {
        path: name.clone(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if let Ok(meta) = file.metadata() {
        if meta.is_file() {
            yaml::check_size(meta.len(), &name)?;
        }
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    yaml::check_size(bytes.len() as u64, &name)?;
    let text = decode(bytes, &name)?;
    Ok((text, name))
}

/// UTF-8 text from bytes, or an error at the first byte that is not.
fn decode(bytes: Vec<u8>, name: &str) -> Result<String, K8sError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(K8sError::NotUtf8 {
            at: Position::new(name, 1, 1),
            detail: "it is UTF-16, as PowerShell redirection writes".to_string(),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let prefix = String::from_utf8_lossy(valid);
        let line = prefix.matches('\n').count() + 1;
        let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        K8sError::NotUtf8 {
            at: Position::new(name, line, column),
            detail: format!("invalid byte 0x{:02x}", e.as_bytes()[valid.len()]),
        }
    })
}
