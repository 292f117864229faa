//! Verification: the provisioning side's judgement. Requirements come from the catalog, the
//! Karpenter NodePool, the Pod, node labels and `--expect`; checks compare a report against
//! them and give a verdict. Nothing here touches hardware.

pub mod build;
pub mod catalog;
pub mod checks;
mod checks_neuron;
pub mod expect;
pub mod kubernetes;
pub mod requirements;
pub mod source;
pub mod verdict;

use crate::report::Report;
use catalog::Catalog;
use expect::Expect;
use kubernetes::{Manifests, NodeLabels};
use requirements::Requirements;
use source::Source;
use verdict::{Status, Verdict, VERDICT_SCHEMA_VERSION};

/// Everything a verdict is built from.
#[derive(Debug, Default)]
pub struct VerifyInputs {
    /// Pods, workloads and NodePools from every `--pod` and `--nodepool` file.
    pub manifests: Manifests,
    pub node_labels: Option<NodeLabels>,
    /// Parsed `--expect` flags with their text.
    pub expects: Vec<(Expect, String)>,
}

/// Build the requirements in rising precedence: the catalog entry of the instance type the
/// report names, NodePools, Pods, node labels, `--expect`.
pub fn requirements(
    report: &Report,
    inputs: &VerifyInputs,
    catalog: &Catalog,
) -> Result<(Requirements, Vec<String>), build::BuildError> {
    let mut req = Requirements::default();
    let mut warnings = Vec::new();
    if let Some(it) = &report.host.instance_type {
        let src = Source::Catalog {
            entry: format!("{it} (report)"),
        };
        build::from_instance_type(&mut req, catalog, it, src, &mut warnings);
    }
    // What the node is: its labels say best, else the report's own instance type.
    let mut node = build::NodeIdentity::default();
    if let Some(it) = &report.host.instance_type {
        node.instance_type = Some((
            it.clone(),
            Source::Catalog {
                entry: format!("{it} (report)"),
            },
        ));
    }
    if let Some(labels) = &inputs.node_labels {
        if let Some(l) = labels.well_known(kubernetes::WellKnown::InstanceType) {
            if let Some(it) = report
                .host
                .instance_type
                .as_ref()
                .filter(|it| **it != l.value)
            {
                req.conflicts.push(format!(
                    "the report says the machine is a {it} (read from its DMI) but the node's \
                     label {} says {}: these are not the same node, or the label is wrong",
                    l.key, l.value
                ));
            }
            node.instance_type = Some((l.value.clone(), l.source.clone()));
        }
        node.node_pool = labels
            .well_known(kubernetes::WellKnown::NodePool)
            .map(|l| l.value.clone());
    }
    build::from_manifests(&mut req, catalog, &inputs.manifests, &node, &mut warnings);
    if let Some(labels) = &inputs.node_labels {
        build::from_node_labels(&mut req, catalog, labels, &mut warnings);
    }
    build::from_expects(&mut req, catalog, &inputs.expects)?;
    build::memory_from_models(&mut req, catalog);
    Ok((req, warnings))
}

/// Judge `report` against the requirements the inputs give.
pub fn verify(
    report: &Report,
    inputs: &VerifyInputs,
    catalog: &Catalog,
) -> Result<Verdict, build::BuildError> {
    let (req, mut warnings) = requirements(report, inputs, catalog)?;
    warnings.extend(req.overridden.iter().cloned());
    let mut checks = checks::run_all(&checks::Inputs {
        report,
        req: &req,
        models: catalog,
    });
    if !req.conflicts.is_empty() {
        checks.insert(
            0,
            verdict::Check {
                id: "requirements.consistent".into(),
                status: Status::Fail,
                expected: Some("satisfiable requirements".into()),
                observed: Some(format!("{} conflict(s)", req.conflicts.len())),
                message: req.conflicts.join("; "),
                sources: Vec::new(),
                device: None,
            },
        );
    }
    let node = report
        .host
        .kubernetes
        .as_ref()
        .and_then(|k| k.node_name.clone())
        .or_else(|| {
            inputs
                .node_labels
                .as_ref()
                .and_then(|l| l.node_name.clone())
        })
        .or_else(|| report.host.hostname.clone());
    Ok(Verdict {
        schema_version: VERDICT_SCHEMA_VERSION,
        passed: checks.iter().all(|c| c.status != Status::Fail),
        report_id: report.id.clone(),
        node,
        requirements: req.applied(),
        conflicts: req.conflicts.clone(),
        warnings,
        checks,
    })
}
