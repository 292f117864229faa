//! Pods, workload pod templates and Karpenter NodePools: what accelprobe reads from them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{one_line, K8sError, Warning};
use super::labels::{validate_label_key, validate_label_value};
use super::requirement::{
    Constraints, Operator, Requirement, RequirementContext, RequirementError, RequirementField,
};
use super::yaml::{self, entry, inner, is_empty_document, is_null, key_str, Ctx, Map, Node};
use crate::verify::source::Source;

/// Everything read from one or more manifest files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Manifests {
    /// Pod specs: of Pods and of the pod templates of workloads, in file order.
    pub pods: Vec<PodSpec>,
    pub node_pools: Vec<NodePool>,
    /// Kinds skipped, deprecated API versions, fields accelprobe does not check.
    pub warnings: Vec<Warning>,
}

impl Manifests {
    /// Add another file's manifests.
    pub fn extend(&mut self, other: Manifests) {
        self.pods.extend(other.pods);
        self.node_pools.extend(other.node_pools);
        self.warnings.extend(other.warnings);
    }
}

/// The object a pod spec or NodePool was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectRef {
    /// `Pod`, `Job`, `CronJob`, `Deployment`, `DaemonSet`, `StatefulSet`, `ReplicaSet`,
    /// `ReplicationController`, `PodTemplate`, `NodePool`.
    pub kind: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Where the object starts.
    pub source: Source,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} {}", one_line(&self.kind), one_line(name)),
            None => write!(f, "{}", one_line(&self.kind)),
        }
    }
}

/// A `nodeSelector` entry or a NodePool template label: `key: value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SelectorEntry {
    pub key: String,
    pub value: String,
    /// Where the key is written.
    pub source: Source,
}

impl SelectorEntry {
    /// `key In [value]`.
    pub fn requirement(&self) -> Requirement {
        Requirement::equals(&self.key, &self.value, self.source.clone())
    }
}

/// One term of a required node affinity: its requirements all hold (AND). The terms of an
/// affinity are alternatives (OR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeSelectorTerm {
    /// `matchExpressions`.
    pub requirements: Vec<Requirement>,
    /// The term also has `matchFields` (selection by node name), which accelprobe does not
    /// check.
    pub match_fields: bool,
    pub source: Source,
}

impl NodeSelectorTerm {
    /// Kubernetes: a term without expressions or fields matches no node.
    pub fn matches_nothing(&self) -> bool {
        self.requirements.is_empty() && !self.match_fields
    }
}

/// A resource accelprobe reads from container requests and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ResourceName {
    /// `nvidia.com/gpu`
    #[serde(rename = "nvidia.com/gpu")]
    NvidiaGpu,
    /// `aws.amazon.com/neuron` (whole Neuron devices)
    #[serde(rename = "aws.amazon.com/neuron")]
    AwsNeuron,
    /// `aws.amazon.com/neuroncore`
    #[serde(rename = "aws.amazon.com/neuroncore")]
    AwsNeuronCore,
    #[serde(rename = "cpu")]
    Cpu,
    #[serde(rename = "memory")]
    Memory,
}

impl ResourceName {
    pub const ALL: [ResourceName; 5] = [
        ResourceName::NvidiaGpu,
        ResourceName::AwsNeuron,
        ResourceName::AwsNeuronCore,
        ResourceName::Cpu,
        ResourceName::Memory,
    ];

    /// The accelerator resources (extended resources, counted in whole devices or cores).
    pub const ACCELERATORS: [ResourceName; 3] = [
        ResourceName::NvidiaGpu,
        ResourceName::AwsNeuron,
        ResourceName::AwsNeuronCore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceName::NvidiaGpu => "nvidia.com/gpu",
            ResourceName::AwsNeuron => "aws.amazon.com/neuron",
            ResourceName::AwsNeuronCore => "aws.amazon.com/neuroncore",
            ResourceName::Cpu => "cpu",
            ResourceName::Memory => "memory",
        }
    }

    pub fn from_name(name: &str) -> Option<ResourceName> {
        ResourceName::ALL.into_iter().find(|r| r.as_str() == name)
    }

    pub fn is_accelerator(self) -> bool {
        ResourceName::ACCELERATORS.contains(&self)
    }
}

impl std::fmt::Display for ResourceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `requests` or `limits` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceQuantity {
    pub resource: ResourceName,
    /// The quantity as written (`1`, `"1"`, `30Gi`, `3500m`).
    pub quantity: String,
    /// For accelerators, the whole number of devices or cores.
    pub count: Option<u64>,
    /// Where the resource name is written.
    pub source: Source,
}

impl ResourceQuantity {
    /// The quantity in base units (bytes, cores), Kubernetes suffixes understood.
    pub fn value(&self) -> Option<f64> {
        parse_quantity(&self.quantity)
    }
}

/// One container (or init container) and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Container {
    pub name: Option<String>,
    /// From `initContainers`.
    pub init: bool,
    /// An init container with `restartPolicy: Always` (a sidecar, running beside the app).
    pub sidecar: bool,
    pub requests: Vec<ResourceQuantity>,
    pub limits: Vec<ResourceQuantity>,
    pub source: Source,
}

impl Container {
    /// What the container requests of `resource`: `requests`, or `limits` when only a limit is
    /// given (Kubernetes then defaults the request to the limit).
    pub fn request(&self, resource: ResourceName) -> Option<&ResourceQuantity> {
        self.requests
            .iter()
            .find(|q| q.resource == resource)
            .or_else(|| self.limits.iter().find(|q| q.resource == resource))
    }

    pub fn limit(&self, resource: ResourceName) -> Option<&ResourceQuantity> {
        self.limits.iter().find(|q| q.resource == resource)
    }
}

/// A pod's effective request for an accelerator resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceTotal {
    pub resource: ResourceName,
    pub count: u64,
    /// The requests that add up to it.
    pub sources: Vec<Source>,
}

/// A toleration's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TolerationOperator {
    Equal,
    Exists,
}

/// A taint effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub const ALL: [TaintEffect; 3] = [
        TaintEffect::NoSchedule,
        TaintEffect::PreferNoSchedule,
        TaintEffect::NoExecute,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }

    pub fn parse(s: &str) -> Option<TaintEffect> {
        TaintEffect::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Toleration {
    /// `None`: every key (with `Exists`).
    pub key: Option<String>,
    pub operator: TolerationOperator,
    pub value: Option<String>,
    /// `None`: every effect.
    pub effect: Option<TaintEffect>,
    pub source: Source,
}

impl Toleration {
    /// Kubernetes' `ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if self.key.as_ref().is_some_and(|k| *k != taint.key) {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => {
                self.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
            }
        }
    }
}

/// A NodePool taint or startup taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
    pub source: Source,
}

impl std::fmt::Display for Taint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}:{}", self.key, v, self.effect.as_str()),
            None => write!(f, "{}:{}", self.key, self.effect.as_str()),
        }
    }
}

/// What a pod spec (of a Pod or a workload's pod template) asks of its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PodSpec {
    pub object: ObjectRef,
    /// Where the pod spec mapping starts.
    pub source: Source,
    /// `nodeSelector`, in file order.
    pub node_selector: Vec<SelectorEntry>,
    /// `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`:
    /// `None` when the pod has no required node affinity.
    pub node_affinity: Option<Vec<NodeSelectorTerm>>,
    /// Init containers first, then containers, each in file order.
    pub containers: Vec<Container>,
    pub tolerations: Vec<Toleration>,
}

impl PodSpec {
    /// The alternative requirement sets a node may satisfy: the `nodeSelector` entries (as
    /// `In`) plus the expressions of one affinity term, for each term. Without a required
    /// affinity, one set (the `nodeSelector`). Terms that match nothing are left out, so an
    /// empty result means no node can run the pod.
    pub fn alternatives(&self) -> Vec<Vec<Requirement>> {
        let base: Vec<Requirement> = self.node_selector.iter().map(|e| e.requirement()).collect();
        match &self.node_affinity {
            None => vec![base],
            Some(terms) => terms
                .iter()
                .filter(|t| !t.matches_nothing())
                .map(|t| base.iter().chain(&t.requirements).cloned().collect())
                .collect(),
        }
    }

    /// The alternatives as [`Constraints`].
    pub fn constraint_alternatives(&self) -> Vec<Constraints> {
        self.alternatives()
            .iter()
            .map(Constraints::from_requirements)
            .collect()
    }

    /// The pod's effective request of an accelerator resource, as the Kubernetes scheduler
    /// computes it: the larger of the containers' sum (plus sidecars) and the largest init
    /// container (plus the sidecars started before it). `None` when nothing requests it.
    pub fn accelerator_request(&self, resource: ResourceName) -> Option<ResourceTotal> {
        fn count(c: &Container, r: ResourceName) -> Option<(u64, &ResourceQuantity)> {
            c.request(r).and_then(|q| q.count.map(|n| (n, q)))
        }
        let mut sources = Vec::new();
        let mut app: u64 = 0;
        for c in self.containers.iter().filter(|c| !c.init) {
            if let Some((n, q)) = count(c, resource) {
                app = app.saturating_add(n);
                sources.push(q.source.clone());
            }
        }
        let mut sidecars: u64 = 0;
        let mut init_max: u64 = 0;
        let mut init_sources = Vec::new();
        for c in self.containers.iter().filter(|c| c.init) {
            let Some((n, q)) = count(c, resource) else {
                continue;
            };
            if c.sidecar {
                sidecars = sidecars.saturating_add(n);
                sources.push(q.source.clone());
                init_max = init_max.max(sidecars);
            } else if n.saturating_add(sidecars) > init_max {
                init_max = n.saturating_add(sidecars);
                init_sources = vec![q.source.clone()];
            }
        }
        let total = app.saturating_add(sidecars);
        if sources.is_empty() && init_sources.is_empty() {
            return None;
        }
        if init_max > total {
            return Some(ResourceTotal {
                resource,
                count: init_max,
                sources: init_sources,
            });
        }
        Some(ResourceTotal {
            resource,
            count: total,
            sources,
        })
    }

    /// Whether the pod tolerates the taint.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        self.tolerations.iter().any(|t| t.tolerates(taint))
    }
}

/// A Karpenter NodePool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodePool {
    pub object: ObjectRef,
    /// `karpenter.sh/v1` or `karpenter.sh/v1beta1`.
    pub api_version: String,
    /// `spec.template.spec.requirements`.
    pub requirements: Vec<Requirement>,
    /// `spec.template.metadata.labels` (Karpenter treats them as `In` requirements).
    pub labels: Vec<SelectorEntry>,
    pub taints: Vec<Taint>,
    /// Taints present only until the node is initialized (accelprobe's gate uses one).
    pub startup_taints: Vec<Taint>,
}

impl NodePool {
    /// Requirements and template labels combined.
    pub fn constraints(&self) -> Constraints {
        let mut c = Constraints::from_requirements(&self.requirements);
        for label in &self.labels {
            c.add(&label.requirement());
        }
        c
    }
}

/// Parse manifest text: one or more YAML documents (or JSON), each a Pod, a workload (Job,
/// CronJob, Deployment, DaemonSet, StatefulSet, ReplicaSet, ReplicationController,
/// PodTemplate), a Karpenter NodePool, or a `List` of them. Other kinds are skipped with a
/// warning.
pub fn parse_manifests(text: &str, path: &str) -> Result<Manifests, K8sError> {
    let docs = yaml::load(text, path)?;
    let ctx = Ctx::new(path, text);
    let mut out = Manifests::default();
    for doc in &docs {
        object(&ctx, doc, "", &mut out, true)?;
    }
    out.warnings.extend(ctx.warnings.take());
    if out.pods.is_empty() && out.node_pools.is_empty() && out.warnings.is_empty() {
        out.warnings.push(Warning {
            at: super::error::Position::new(path, 1, 1),
            message: "the file holds no Kubernetes object".to_string(),
        });
    }
    Ok(out)
}

/// Read and parse a manifest file (see [`parse_manifests`]).
pub fn read_manifests(path: &std::path::Path) -> Result<Manifests, K8sError> {
    let (text, name) = super::read_text(path)?;
    parse_manifests(&text, &name)
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// The value of `field` in `map`, or `None` when absent or null.
fn opt<'n, 't>(map: &'n Map<'t>, field: &str) -> Option<(&'n Node<'t>, &'n Node<'t>)> {
    entry(map, field).filter(|(_, v)| !is_null(v))
}

fn object<'t>(
    ctx: &Ctx<'t>,
    node: &Node<'t>,
    prefix: &str,
    out: &mut Manifests,
    allow_list: bool,
) -> Result<(), K8sError> {
    if is_empty_document(node) {
        return Ok(());
    }
    let what = "a Kubernetes object (a mapping with apiVersion and kind)";
    let field = if prefix.is_empty() {
        "the document"
    } else {
        prefix
    };
    let map = ctx
        .map(node, field)?
        .ok_or_else(|| ctx.wrong_type(node, field, what))?;
    let kind_field = join(prefix, "kind");
    let Some((_, kind_node)) = entry(map, "kind") else {
        return Err(ctx.missing(node, &kind_field, "a Kubernetes object"));
    };
    let kind = ctx
        .str(kind_node, &kind_field)?
        .ok_or_else(|| ctx.missing(kind_node, &kind_field, "a Kubernetes object"))?;
    let api_version = match entry(map, "apiVersion") {
        Some((_, v)) => ctx.str(v, &join(prefix, "apiVersion"))?,
        None => None,
    };
    let object_ref = object_ref(ctx, node, map, prefix, kind)?;
    let pod_path: &[&str] = match kind {
        "Pod" => &["spec"],
        "Deployment"
        | "DaemonSet"
        | "StatefulSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        "PodTemplate" => &["template", "spec"],
        "NodePool" => {
            return node_pool(
                ctx,
                node,
                map,
                prefix,
                api_version,
                kind_node,
                object_ref,
                out,
            );
        }
        k if allow_list
            && (k == "List" || k.ends_with("List"))
            && entry(map, "items").is_some() =>
        {
            let (_, items) = entry(map, "items").ok_or_else(|| ctx.missing(node, "items", k))?;
            let items_field = join(prefix, "items");
            for (i, item) in ctx
                .seq(items, &items_field)?
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                object(ctx, item, &format!("{items_field}[{i}]"), out, false)?;
            }
            return Ok(());
        }
        other => {
            out.warnings.push(Warning {
                at: ctx.pos(kind_node),
                message: format!(
                    "skipped {}: accelprobe reads Pods, workloads (Job, CronJob, \
                     Deployment, DaemonSet, StatefulSet, ReplicaSet) and Karpenter NodePools",
                    one_line(other)
                ),
            });
            return Ok(());
        }
    };
    let (spec, spec_field) = descend(ctx, node, prefix, pod_path, &object_ref)?;
    out.pods.push(pod_spec(ctx, spec, &spec_field, object_ref)?);
    Ok(())
}

fn object_ref<'t>(
    ctx: &Ctx<'t>,
    node: &Node<'t>,
    map: &Map<'t>,
    prefix: &str,
    kind: &str,
) -> Result<ObjectRef, K8sError> {
    let mut r = ObjectRef {
        kind: kind.to_string(),
        name: None,
        namespace: None,
        source: ctx.source(node),
    };
    if let Some((_, meta)) = opt(map, "metadata") {
        let field = join(prefix, "metadata");
        if let Some(meta) = ctx.map(meta, &field)? {
            if let Some((_, v)) = entry(meta, "name") {
                r.name = ctx.str(v, &join(&field, "name"))?.map(str::to_string);
            }
            if let Some((_, v)) = entry(meta, "namespace") {
                r.namespace = ctx.str(v, &join(&field, "namespace"))?.map(str::to_string);
            }
        }
    }
    Ok(r)
}

/// Follow required mapping fields, naming the first that is missing.
fn descend<'n, 't>(
    ctx: &Ctx<'t>,
    node: &'n Node<'t>,
    prefix: &str,
    path: &[&str],
    object: &ObjectRef,
) -> Result<(&'n Node<'t>, String), K8sError> {
    let mut current = node;
    let mut field = prefix.to_string();
    for segment in path {
        let next = join(&field, segment);
        let context = object.to_string();
        let map = ctx
            .map(
                current,
                if field.is_empty() {
                    "the document"
                } else {
                    &field
                },
            )?
            .ok_or_else(|| ctx.missing(current, &next, &context))?;
        let (_, value) = opt(map, segment).ok_or_else(|| ctx.missing(current, &next, &context))?;
        current = value;
        field = next;
    }
    Ok((current, field))
}

fn pod_spec<'t>(
    ctx: &Ctx<'t>,
    node: &Node<'t>,
    field: &str,
    object: ObjectRef,
) -> Result<PodSpec, K8sError> {
    let map = ctx
        .map(node, field)?
        .ok_or_else(|| ctx.wrong_type(node, field, "a pod spec"))?;
    let mut pod = PodSpec {
        object,
        source: ctx.source(node),
        node_selector: Vec::new(),
        node_affinity: None,
        containers: Vec::new(),
        tolerations: Vec::new(),
    };
    if let Some((_, selector)) = opt(map, "nodeSelector") {
        let f = join(field, "nodeSelector");
        if let Some(selector) = ctx.map(selector, &f)? {
            pod.node_selector = selector_entries(ctx, selector, &f)?;
        }
    }
    pod.node_affinity = node_affinity(ctx, map, field)?;
    for (list, init) in [("initContainers", true), ("containers", false)] {
        if let Some((_, items)) = opt(map, list) {
            let f = join(field, list);
            for (i, item) in ctx.seq(items, &f)?.unwrap_or(&[]).iter().enumerate() {
                let cf = format!("{f}[{i}]");
                let c = container(ctx, item, &cf, init)?;
                check_device_limits(ctx, &c, &cf)?;
                pod.containers.push(c);
            }
        }
    }
    if let Some((_, items)) = opt(map, "tolerations") {
        let f = join(field, "tolerations");
        for (i, item) in ctx.seq(items, &f)?.unwrap_or(&[]).iter().enumerate() {
            pod.tolerations
                .push(toleration(ctx, item, &format!("{f}[{i}]"))?);
        }
    }
    Ok(pod)
}

/// `key: value` entries with string keys and values, both validated as label syntax.
fn selector_entries<'t>(
    ctx: &Ctx<'t>,
    map: &Map<'t>,
    field: &str,
) -> Result<Vec<SelectorEntry>, K8sError> {
    let mut out = Vec::new();
    for (k, v) in map {
        let Some(key) = key_str(k) else {
            return Err(ctx.wrong_type(k, &format!("{field} key"), "a string label key"));
        };
        let f = format!("{field}.{}", one_line(key));
        validate_label_key(key).map_err(|m| ctx.invalid(k, &f, m))?;
        let value = ctx
            .str(v, &f)?
            .ok_or_else(|| ctx.wrong_type(v, &f, "a string"))?;
        validate_label_value(value).map_err(|m| ctx.invalid(v, &f, m))?;
        out.push(SelectorEntry {
            key: key.to_string(),
            value: value.to_string(),
            source: ctx.source(k),
        });
    }
    Ok(out)
}

fn node_affinity<'t>(
    ctx: &Ctx<'t>,
    spec: &Map<'t>,
    field: &str,
) -> Result<Option<Vec<NodeSelectorTerm>>, K8sError> {
    let mut f = field.to_string();
    let mut map = spec;
    for segment in ["affinity", "nodeAffinity"] {
        let Some((_, v)) = opt(map, segment) else {
            return Ok(None);
        };
        f = join(&f, segment);
        match ctx.map(v, &f)? {
            Some(m) => map = m,
            None => return Ok(None),
        }
    }
    let segment = "requiredDuringSchedulingIgnoredDuringExecution";
    let Some((_, required)) = opt(map, segment) else {
        return Ok(None);
    };
    f = join(&f, segment);
    let Some(required_map) = ctx.map(required, &f)? else {
        return Ok(None);
    };
    let terms_field = join(&f, "nodeSelectorTerms");
    let Some((_, terms)) = opt(required_map, "nodeSelectorTerms") else {
        return Err(ctx.missing(required, &terms_field, "a required node affinity"));
    };
    let items = ctx.seq(terms, &terms_field)?.unwrap_or(&[]);
    if items.is_empty() {
        return Err(ctx.invalid(
            terms,
            &terms_field,
            "needs at least one term (a list item with matchExpressions)",
        ));
    }
    let mut out = Vec::new();
    for (i, term) in items.iter().enumerate() {
        let tf = format!("{terms_field}[{i}]");
        let mut t = NodeSelectorTerm {
            requirements: Vec::new(),
            match_fields: false,
            source: ctx.source(term),
        };
        if let Some(term_map) = ctx.map(term, &tf)? {
            if let Some((_, exprs)) = opt(term_map, "matchExpressions") {
                let ef = join(&tf, "matchExpressions");
                for (j, expr) in ctx.seq(exprs, &ef)?.unwrap_or(&[]).iter().enumerate() {
                    t.requirements.push(requirement(
                        ctx,
                        expr,
                        &format!("{ef}[{j}]"),
                        RequirementContext::NodeAffinity,
                    )?);
                }
            }
            if let Some((_, fields)) = opt(term_map, "matchFields") {
                t.match_fields = ctx
                    .seq(fields, &join(&tf, "matchFields"))?
                    .is_some_and(|s| !s.is_empty());
            }
        }
        out.push(t);
    }
    Ok(Some(out))
}

/// A `{key, operator, values[, minValues]}` item, validated for its context.
fn requirement<'t>(
    ctx: &Ctx<'t>,
    node: &Node<'t>,
    field: &str,
    context: RequirementContext,
) -> Result<Requirement, K8sError> {
    let map = ctx
        .map(node, field)?
        .ok_or_else(|| ctx.wrong_type(node, field, "a mapping with key, operator and values"))?;
    let what = "a node selector requirement";
    let key_field = join(field, "key");
    let (_, key_node) = opt(map, "key").ok_or_else(|| ctx.missing(node, &key_field, what))?;
    let key = ctx.str(key_node, &key_field)?.unwrap_or_default();
    let op_field = join(field, "operator");
    let (_, op_node) = opt(map, "operator").ok_or_else(|| ctx.missing(node, &op_field, what))?;
    let op_text = ctx.str(op_node, &op_field)?.unwrap_or_default();
    let op = match Operator::parse(op_text) {
        Some(op)
            if context == RequirementContext::NodePool
                || !matches!(op, Operator::Gte | Operator::Lte) =>
        {
            op
        }
        Some(op) => {
            return Err(K8sError::UnknownOperator {
                at: ctx.pos(op_node),
                field: op_field,
                found: op.to_string(),
                valid: format!(
                    "{} in a node affinity ({op} is a Karpenter NodePool operator)",
                    Operator::list(context)
                ),
            })
        }
        None => {
            return Err(K8sError::UnknownOperator {
                at: ctx.pos(op_node),
                field: op_field,
                found: one_line(op_text),
                valid: Operator::list(context),
            })
        }
    };
    let values_field = join(field, "values");
    let values_node = opt(map, "values").map(|(_, v)| v);
    let mut value_nodes: &[Node<'t>] = &[];
    let mut values = Vec::new();
    if let Some(v) = values_node {
        value_nodes = ctx.seq(v, &values_field)?.unwrap_or(&[]);
        for (i, item) in value_nodes.iter().enumerate() {
            let f = format!("{values_field}[{i}]");
            let s = ctx
                .str(item, &f)?
                .ok_or_else(|| ctx.wrong_type(item, &f, "a string"))?;
            values.push(s.to_string());
        }
    }
    let mut min_values = None;
    let min_node = if context == RequirementContext::NodePool {
        opt(map, "minValues").map(|(_, v)| v)
    } else {
        None
    };
    if let Some(m) = min_node {
        let f = join(field, "minValues");
        match &inner(m).data {
            saphyr::YamlData::Value(saphyr::Scalar::Integer(n)) => {
                min_values = Some(u32::try_from(*n).unwrap_or(if *n < 0 { 0 } else { u32::MAX }));
            }
            _ => return Err(ctx.wrong_type(m, &f, "an integer from 1 to 50")),
        }
    }
    let r = Requirement {
        key: key.to_string(),
        op,
        values,
        min_values,
        source: ctx.source(node),
    };
    r.validate(context).map_err(
        |RequirementError {
             field: which,
             message,
         }| {
            let (at_node, f) = match which {
                RequirementField::Key => (key_node, key_field.clone()),
                RequirementField::Operator => (op_node, op_field.clone()),
                RequirementField::Values => (values_node.unwrap_or(node), values_field.clone()),
                RequirementField::Value(i) => (
                    value_nodes.get(i).unwrap_or(node),
                    format!("{values_field}[{i}]"),
                ),
                RequirementField::MinValues => (min_node.unwrap_or(node), join(field, "minValues")),
            };
            K8sError::InvalidRequirement {
                at: ctx.pos(at_node),
                field: f,
                message,
            }
        },
    )?;
    Ok(r)
}

fn container<'t>(
    ctx: &Ctx<'t>,
    node: &Node<'t>,
    field: &str,
    init: bool,
) -> Result<Container, K8sError> {
    let map = ctx
        .map(node, field)?
        .ok_or_else(|| ctx.wrong_type(node, field, "a container"))?;
    let mut c = Container {
        name: None,
        init,
        sidecar: false,
        requests: Vec::new(),
        limits: Vec::new(),
        source: ctx.source(node),
    };
    if let Some((_, v)) = entry(map, "name") {
        c.name = ctx.str(v, &join(field, "name"))?.map(str::to_string);
    }
    if init {
        if let Some((_, v)) = entry(map, "restartPolicy") {
            c.sidecar = ctx.str(v, &join(field, "restartPolicy"))? == Some("Always");
        }
    }
    if let Some((_, resources)) = opt(map, "resources") {
        let rf = join(field, "resources");
        if let Some(resources) = ctx.map(resources, &rf)? {
            for (which, list) in [("requests", &mut c.requests), ("limits", &mut c.limits)] {
                if let Some((_, m)) = opt(resources, which) {
                    let f = join(&rf, which);
                    if let Some(m) = ctx.map(m, &f)? {
                        *list = quantities(ctx, m, &f)?;
                    }
                }
            }
        }
    }
    Ok(c)
}

/// Whether an extended resource name is an accelerator accelprobe does not count
/// (`nvidia.com/mig-1g.10gb`, `nvidia.com/gpu.shared`, `amd.com/gpu`, `habana.ai/gaudi`).
fn looks_like_a_device(name: &str) -> bool {
    let Some((domain, resource)) = name.split_once('/') else {
        return false;
    };
    let device_domain = [
        "nvidia.com",
        "amd.com",
        "aws.amazon.com",
        "habana.ai",
        "gpu.intel.com",
        "google.com",
    ]
    .contains(&domain);
    device_domain || resource.contains("gpu")
}

fn quantities<'t>(
    ctx: &Ctx<'t>,
    map: &Map<'t>,
    field: &str,
) -> Result<Vec<ResourceQuantity>, K8sError> {
    let mut out = Vec::new();
    for (k, v) in map {
        let Some(name) = key_str(k) else {
            return Err(ctx.wrong_type(k, &format!("{field} key"), "a resource name"));
        };
        let Some(resource) = ResourceName::from_name(name) else {
            if looks_like_a_device(name) {
                ctx.warn(
                    k,
                    format!(
                        "{field}.{name} is not checked: accelprobe checks nvidia.com/gpu, \
                         aws.amazon.com/neuron and aws.amazon.com/neuroncore requests (MIG \
                         slices, shared GPUs and other vendors' devices are not counted)"
                    ),
                );
            }
            continue;
        };
        let f = format!("{field}.{name}");
        let quantity = ctx
            .scalar_text(v)
            .filter(|_| !is_null(v))
            .ok_or_else(|| ctx.wrong_type(v, &f, "a quantity (a number, or a string like \"1\")"))?
            .into_owned();
        let count = if resource.is_accelerator() {
            Some(whole_count(&quantity).ok_or_else(|| {
                ctx.invalid(
                    v,
                    &f,
                    format!(
                        "{name} is counted in whole devices; found '{}', write a whole \
                         number like 1",
                        one_line(&quantity)
                    ),
                )
            })?)
        } else {
            if parse_quantity(&quantity).is_none() {
                return Err(ctx.invalid(
                    v,
                    &f,
                    format!(
                        "'{}' is not a Kubernetes quantity (like 30Gi or 3500m)",
                        one_line(&quantity)
                    ),
                ));
            }
            None
        };
        out.push(ResourceQuantity {
            resource,
            quantity,
            count,
            source: ctx.source(k),
        });
    }
    Ok(out)
}

/// Kubernetes refuses a device request without an equal limit.
fn check_device_limits(ctx: &Ctx<'_>, c: &Container, field: &str) -> Result<(), K8sError> {
    for q in c.requests.iter().filter(|q| q.resource.is_accelerator()) {
        let at = match &q.source {
            Source::File { path, line, column } => {
                super::error::Position::new(path, *line, *column)
            }
            _ => super::error::Position::new(ctx.path, 1, 1),
        };
        let field = format!("{field}.resources.requests.{}", q.resource);
        match c.limit(q.resource) {
            None => {
                return Err(K8sError::InvalidValue {
                    at,
                    field,
                    message: format!(
                        "a device request needs an equal limit; add limits: {}: {}",
                        q.resource,
                        one_line(&q.quantity)
                    ),
                })
            }
            Some(l) if l.count != q.count => {
                return Err(K8sError::InvalidValue {
                    at,
                    field,
                    message: format!(
                        "the request ({}) must equal the limit ({}); Kubernetes refuses \
                         anything else for devices",
                        one_line(&q.quantity),
                        one_line(&l.quantity)
                    ),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A whole, non-negative number of devices: `1`, `"2"`, `1.0`.
fn whole_count(quantity: &str) -> Option<u64> {
    if let Ok(n) = quantity.parse::<u64>() {
        return Some(n);
    }
    let v = parse_quantity(quantity)?;
    (v >= 0.0 && v.fract() == 0.0 && v <= 1e15).then_some(v as u64)
}

/// A Kubernetes quantity in base units: a decimal number with an optional binary (`Ki` ..
/// `Ei`), decimal (`n`, `u`, `m`, `k`, `M` .. `E`) or exponent (`e3`) suffix.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number == "+" || number == "-" || number.matches('.').count() > 1 {
        return None;
    }
    let base: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            if exp.abs() > 300 {
                return None;
            }
            10f64.powi(exp)
        }
        _ => return None,
    };
    let v = base * factor;
    v.is_finite().then_some(v)
}

fn toleration<'t>(ctx: &Ctx<'t>, node: &Node<'t>, field: &str) -> Result<Toleration, K8sError> {
    let map = ctx
        .map(node, field)?
        .ok_or_else(|| ctx.wrong_type(node, field, "a toleration"))?;
    let text = |name: &str| -> Result<Option<String>, K8sError> {
        match entry(map, name) {
            Some((_, v)) => Ok(ctx
                .str(v, &join(field, name))?
                .filter(|s| !s.is_empty())
                .map(str::to_string)),
            None => Ok(None),
        }
    };
    let key = text("key")?;
    let value = text("value")?;
    let operator = match (text("operator")?, entry(map, "operator")) {
        (None, _) => TolerationOperator::Equal,
        (Some(op), Some((_, n))) => match op.as_str() {
            "Equal" => TolerationOperator::Equal,
            "Exists" => TolerationOperator::Exists,
            other => {
                return Err(K8sError::UnknownOperator {
                    at: ctx.pos(n),
                    field: join(field, "operator"),
                    found: one_line(other),
                    valid: "Equal, Exists".to_string(),
                })
            }
        },
        (Some(_), None) => TolerationOperator::Equal,
    };
    let effect = match (text("effect")?, entry(map, "effect")) {
        (Some(e), Some((_, n))) => Some(TaintEffect::parse(&e).ok_or_else(|| {
            ctx.invalid(
                n,
                &join(field, "effect"),
                format!(
                    "unknown effect '{}'; valid effects are NoSchedule, PreferNoSchedule, \
                     NoExecute (or none for all)",
                    one_line(&e)
                ),
            )
        })?),
        _ => None,
    };
    if let Some(k) = &key {
        validate_label_key(k).map_err(|m| {
            ctx.invalid(
                entry(map, "key").map_or(node, |(_, v)| v),
                &join(field, "key"),
                m,
            )
        })?;
    }
    if operator == TolerationOperator::Exists && value.is_some() {
        let n = entry(map, "value").map_or(node, |(_, v)| v);
        return Err(ctx.invalid(
            n,
            &join(field, "value"),
            "must be empty when operator is Exists; remove it",
        ));
    }
    if key.is_none() && operator != TolerationOperator::Exists {
        return Err(ctx.invalid(
            node,
            &join(field, "operator"),
            "must be Exists when key is empty (a toleration of every taint)",
        ));
    }
    Ok(Toleration {
        key,
        operator,
        value,
        effect,
        source: ctx.source(node),
    })
}

fn taint<'t>(ctx: &Ctx<'t>, node: &Node<'t>, field: &str) -> Result<Taint, K8sError> {
    let map = ctx
        .map(node, field)?
        .ok_or_else(|| ctx.wrong_type(node, field, "a taint"))?;
    let what = "a taint";
    let key_field = join(field, "key");
    let (_, key_node) = opt(map, "key").ok_or_else(|| ctx.missing(node, &key_field, what))?;
    let key = ctx.str(key_node, &key_field)?.unwrap_or_default();
    validate_label_key(key).map_err(|m| ctx.invalid(key_node, &key_field, m))?;
    let mut value = None;
    if let Some((_, v)) = opt(map, "value") {
        let f = join(field, "value");
        let s = ctx.str(v, &f)?.unwrap_or_default();
        validate_label_value(s).map_err(|m| ctx.invalid(v, &f, m))?;
        value = (!s.is_empty()).then(|| s.to_string());
    }
    let effect_field = join(field, "effect");
    let (_, effect_node) =
        opt(map, "effect").ok_or_else(|| ctx.missing(node, &effect_field, what))?;
    let e = ctx.str(effect_node, &effect_field)?.unwrap_or_default();
    let effect = TaintEffect::parse(e).ok_or_else(|| {
        ctx.invalid(
            effect_node,
            &effect_field,
            format!(
                "unknown effect '{}'; valid effects are NoSchedule, PreferNoSchedule, NoExecute",
                one_line(e)
            ),
        )
    })?;
    Ok(Taint {
        key: key.to_string(),
        value,
        effect,
        source: ctx.source(node),
    })
}

#[allow(clippy::too_many_arguments)]
fn node_pool<'t>(
    ctx: &Ctx<'t>,
    node: &Node<'t>,
    map: &Map<'t>,
    prefix: &str,
    api_version: Option<&str>,
    kind_node: &Node<'t>,
    object: ObjectRef,
    out: &mut Manifests,
) -> Result<(), K8sError> {
    let api_version = match api_version {
        Some(v @ "karpenter.sh/v1") => v,
        Some(v @ "karpenter.sh/v1beta1") => {
            let at = entry(map, "apiVersion").map_or(node, |(_, v)| v);
            out.warnings.push(Warning {
                at: ctx.pos(at),
                message: "apiVersion karpenter.sh/v1beta1 is deprecated (Karpenter v1.1 and \
                          later do not serve it); read as karpenter.sh/v1, migrate the NodePool"
                    .to_string(),
            });
            v
        }
        other => {
            out.warnings.push(Warning {
                at: ctx.pos(kind_node),
                message: format!(
                    "skipped NodePool with apiVersion {}: accelprobe reads Karpenter NodePools \
                     (karpenter.sh/v1)",
                    one_line(other.unwrap_or("(none)"))
                ),
            });
            return Ok(());
        }
    };
    let (template_spec, field) =
        descend(ctx, node, prefix, &["spec", "template", "spec"], &object)?;
    let spec_map = ctx
        .map(template_spec, &field)?
        .ok_or_else(|| ctx.wrong_type(template_spec, &field, "a mapping"))?;
    let mut pool = NodePool {
        object,
        api_version: api_version.to_string(),
        requirements: Vec::new(),
        labels: Vec::new(),
        taints: Vec::new(),
        startup_taints: Vec::new(),
    };
    let req_field = join(&field, "requirements");
    let Some((_, reqs)) = opt(spec_map, "requirements") else {
        return Err(ctx.missing(template_spec, &req_field, &pool.object.to_string()));
    };
    for (i, item) in ctx.seq(reqs, &req_field)?.unwrap_or(&[]).iter().enumerate() {
        pool.requirements.push(requirement(
            ctx,
            item,
            &format!("{req_field}[{i}]"),
            RequirementContext::NodePool,
        )?);
    }
    for (name, list) in [
        ("taints", &mut pool.taints),
        ("startupTaints", &mut pool.startup_taints),
    ] {
        if let Some((_, items)) = opt(spec_map, name) {
            let f = join(&field, name);
            for (i, item) in ctx.seq(items, &f)?.unwrap_or(&[]).iter().enumerate() {
                list.push(taint(ctx, item, &format!("{f}[{i}]"))?);
            }
        }
    }
    // spec.template.metadata.labels
    if let Some(labels) = template_labels(ctx, node, prefix)? {
        pool.labels = labels;
    }
    out.node_pools.push(pool);
    Ok(())
}

fn template_labels<'t>(
    ctx: &Ctx<'t>,
    node: &Node<'t>,
    prefix: &str,
) -> Result<Option<Vec<SelectorEntry>>, K8sError> {
    let mut current = node;
    let mut field = prefix.to_string();
    for segment in ["spec", "template", "metadata", "labels"] {
        let Some(map) = ctx.map(
            current,
            if field.is_empty() {
                "the document"
            } else {
                &field
            },
        )?
        else {
            return Ok(None);
        };
        let Some((_, v)) = opt(map, segment) else {
            return Ok(None);
        };
        field = join(&field, segment);
        current = v;
    }
    match ctx.map(current, &field)? {
        Some(m) => Ok(Some(selector_entries(ctx, m, &field)?)),
        None => Ok(None),
    }
}
