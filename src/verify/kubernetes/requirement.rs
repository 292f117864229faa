//! Node selector requirements with Karpenter's semantics, and the algebra that combines
//! requirements on one label key.
//!
//! Semantics (kubernetes-sigs/karpenter `pkg/scheduling/requirement.go` and `requirements.go`,
//! `pkg/apis/v1/nodeclaim_validation.go`; Kubernetes `component-helpers` node affinity):
//!
//! * `In V`: the label is present and its value is in `V`.
//! * `NotIn V`: the label is absent, or present with a value not in `V`.
//! * `Exists`: the label is present. `DoesNotExist`: the label is absent.
//! * `Gt N`, `Lt N`, `Gte N`, `Lte N`: the label is present and its value parses as an integer
//!   (Go's `strconv.Atoi`: optional sign, decimal digits) that is `> N`, `< N`, `>= N`, `<= N`.
//!   A value that is not an integer never satisfies a bound. Karpenter rewrites `Gt N` as
//!   `Gte N+1` and `Lt N` as `Lte N-1`; so does [`Constraint`].
//!
//! Combining requirements on one key ([`Constraint::intersect`]) follows Karpenter's
//! `Requirement.Intersection`, and additionally keeps whether a node *without* the label
//! satisfies them all (true only when every requirement is `NotIn` or `DoesNotExist`, which is
//! how Karpenter's `Requirements.Intersects` lets two such requirements pass with no common
//! value).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::one_line;
use super::labels::{validate_label_key, validate_label_value, LabelKey, WellKnown};
use crate::verify::source::Source;

/// A node selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
    /// Karpenter extension (NodePool requirements only, Karpenter v1.9.0 and later).
    Gte,
    /// Karpenter extension (NodePool requirements only, Karpenter v1.9.0 and later).
    Lte,
}

impl Operator {
    /// Every operator a Karpenter NodePool requirement accepts.
    pub const ALL: [Operator; 8] = [
        Operator::In,
        Operator::NotIn,
        Operator::Exists,
        Operator::DoesNotExist,
        Operator::Gt,
        Operator::Lt,
        Operator::Gte,
        Operator::Lte,
    ];

    /// The operators Kubernetes node affinity accepts.
    pub const NODE_AFFINITY: [Operator; 6] = [
        Operator::In,
        Operator::NotIn,
        Operator::Exists,
        Operator::DoesNotExist,
        Operator::Gt,
        Operator::Lt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
            Operator::Gt => "Gt",
            Operator::Lt => "Lt",
            Operator::Gte => "Gte",
            Operator::Lte => "Lte",
        }
    }

    /// The operator spelled exactly so (Kubernetes is case-sensitive), if any.
    pub fn parse(s: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.as_str() == s)
    }

    /// `Gt`, `Lt`, `Gte`, `Lte`: one integer value.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Operator::Gt | Operator::Lt | Operator::Gte | Operator::Lte
        )
    }

    /// The operators valid in `context`, for messages ("In, NotIn, ...").
    pub fn list(context: RequirementContext) -> String {
        let ops: &[Operator] = match context {
            RequirementContext::NodePool => &Operator::ALL,
            RequirementContext::NodeAffinity => &Operator::NODE_AFFINITY,
        };
        ops.iter()
            .map(|o| o.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a requirement is written, which decides the rules it must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequirementContext {
    /// `spec.template.spec.requirements` of a Karpenter NodePool: all eight operators; numeric
    /// values must not be negative; `minValues` allowed.
    NodePool,
    /// A Pod's required node affinity: the six Kubernetes operators.
    NodeAffinity,
}

/// Which part of a requirement a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequirementField {
    Key,
    Operator,
    Values,
    /// The value at this index.
    Value(usize),
    MinValues,
}

/// Why a requirement is invalid (without a position; the parser adds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequirementError {
    pub field: RequirementField,
    pub message: String,
}

impl fmt::Display for RequirementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One node selector requirement (`key operator values`), with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Requirement {
    /// The key as written (see [`Requirement::label`] for the normalized key).
    pub key: String,
    #[serde(rename = "operator")]
    pub op: Operator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Karpenter's `minValues` (NodePool requirements only).
    #[serde(default, rename = "minValues", skip_serializing_if = "Option::is_none")]
    pub min_values: Option<u32>,
    pub source: Source,
}

impl Requirement {
    /// A requirement, unchecked (see [`Requirement::validate`]).
    pub fn new(key: &str, op: Operator, values: &[&str], source: Source) -> Requirement {
        Requirement {
            key: key.to_string(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
            min_values: None,
            source,
        }
    }

    /// `key In [value]`, what a `nodeSelector` entry or a label means.
    pub fn equals(key: &str, value: &str, source: Source) -> Requirement {
        Requirement::new(key, Operator::In, &[value], source)
    }

    /// The normalized label key.
    pub fn label(&self) -> LabelKey {
        LabelKey::parse(&self.key)
    }

    /// Check the requirement as Kubernetes and Karpenter validate it: the key syntax, the
    /// operator allowed in `context`, values that fit the operator (`In`, `NotIn`: at least
    /// one; `Exists`, `DoesNotExist`: none; `Gt`, `Lt`, `Gte`, `Lte`: exactly one integer, not
    /// negative in a NodePool), label value syntax, and `minValues` (1 to 50, and no more than
    /// the values of an `In`).
    pub fn validate(&self, context: RequirementContext) -> Result<(), RequirementError> {
        let err = |field, message: String| Err(RequirementError { field, message });
        if let Err(m) = validate_label_key(&self.key) {
            return err(RequirementField::Key, m);
        }
        if context == RequirementContext::NodeAffinity
            && matches!(self.op, Operator::Gte | Operator::Lte)
        {
            return err(
                RequirementField::Operator,
                format!(
                    "{} is a Karpenter NodePool operator; Kubernetes node affinity accepts {} \
                     (write Gte N as Gt N-1, Lte N as Lt N+1)",
                    self.op,
                    Operator::list(context)
                ),
            );
        }
        let n = self.values.len();
        match self.op {
            Operator::In | Operator::NotIn if n == 0 => {
                return err(
                    RequirementField::Values,
                    format!("operator {} needs at least one value in values", self.op),
                )
            }
            Operator::Exists | Operator::DoesNotExist if n > 0 => {
                return err(
                    RequirementField::Values,
                    format!("operator {} takes no values; remove values", self.op),
                )
            }
            op if op.is_numeric() => {
                if n != 1 {
                    return err(
                        RequirementField::Values,
                        format!(
                            "operator {op} takes exactly one integer value (e.g. values: [\"4\"]), \
                             found {n}"
                        ),
                    );
                }
                match parse_int(&self.values[0]) {
                    None => {
                        return err(
                            RequirementField::Value(0),
                            format!(
                                "operator {op} needs an integer value, found '{}'",
                                one_line(&self.values[0])
                            ),
                        )
                    }
                    Some(v) if v < 0 && context == RequirementContext::NodePool => {
                        return err(
                            RequirementField::Value(0),
                            format!(
                            "operator {op} needs a non-negative integer in a NodePool, found {v}"
                        ),
                        )
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
        // Kubernetes checks label value syntax for In and NotIn (Gt and the others take an
        // integer, checked above).
        if matches!(self.op, Operator::In | Operator::NotIn) {
            for (i, value) in self.values.iter().enumerate() {
                if let Err(m) = validate_label_value(value) {
                    return err(RequirementField::Value(i), m);
                }
            }
        }
        if let Some(min) = self.min_values {
            if !(1..=50).contains(&min) {
                return err(
                    RequirementField::MinValues,
                    format!("minValues must be from 1 to 50, found {min}"),
                );
            }
            if self.op == Operator::In && (n as u64) < u64::from(min) {
                return err(
                    RequirementField::MinValues,
                    format!("minValues is {min} but values lists only {n}; list at least {min}"),
                );
            }
        }
        Ok(())
    }

    /// Whether a node whose label has this value (`None`: the node lacks the label) satisfies
    /// the requirement. Absent labels satisfy only `NotIn` and `DoesNotExist`.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let bound = || self.values.first().and_then(|v| parse_int(v));
        match (self.op, value) {
            (Operator::NotIn | Operator::DoesNotExist, None) => true,
            (_, None) => false,
            (Operator::In, Some(v)) => self.values.iter().any(|x| x == v),
            (Operator::NotIn, Some(v)) => !self.values.iter().any(|x| x == v),
            (Operator::Exists, Some(_)) => true,
            (Operator::DoesNotExist, Some(_)) => false,
            (op, Some(v)) => match (parse_int(v), bound()) {
                (Some(v), Some(n)) => match op {
                    Operator::Gt => v > n,
                    Operator::Lt => v < n,
                    Operator::Gte => v >= n,
                    _ => v <= n,
                },
                _ => false,
            },
        }
    }

    /// This requirement as a [`Constraint`] on its key.
    pub fn constraint(&self) -> Constraint {
        Constraint::from_requirement(self)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Operator::Exists | Operator::DoesNotExist => write!(f, "{} {}", self.key, self.op),
            op if op.is_numeric() => {
                write!(
                    f,
                    "{} {} {}",
                    self.key,
                    op,
                    self.values.first().map_or("", |v| v)
                )
            }
            op => write!(f, "{} {} [{}]", self.key, op, self.values.join(", ")),
        }
    }
}

/// Parse a label value as an integer the way Go's `strconv.Atoi` does (optional `+`/`-`,
/// decimal digits, within 64 bits).
pub fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What all the requirements on one label key allow together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub key: LabelKey,
    /// A node without the label satisfies every requirement.
    absent_ok: bool,
    /// `values` lists the excluded values (`true`) or the only allowed ones (`false`).
    complement: bool,
    values: BTreeSet<String>,
    /// Inclusive integer bounds on a present value (only while `complement`).
    min: Option<i64>,
    max: Option<i64>,
    /// The largest `minValues` among the requirements.
    pub min_values: Option<u32>,
    /// Every requirement that went into this constraint.
    pub sources: Vec<Source>,
}

impl Constraint {
    /// No constraint: any value, or no label.
    pub fn any(key: LabelKey) -> Constraint {
        Constraint {
            key,
            absent_ok: true,
            complement: true,
            values: BTreeSet::new(),
            min: None,
            max: None,
            min_values: None,
            sources: Vec::new(),
        }
    }

    pub fn from_requirement(r: &Requirement) -> Constraint {
        let mut c = Constraint::any(r.label());
        c.min_values = r.min_values;
        c.sources.push(r.source.clone());
        let values = || r.values.iter().cloned().collect::<BTreeSet<_>>();
        let bound = r.values.first().and_then(|v| parse_int(v));
        match r.op {
            Operator::In => {
                c.absent_ok = false;
                c.complement = false;
                c.values = values();
            }
            Operator::NotIn => c.values = values(),
            Operator::Exists => c.absent_ok = false,
            Operator::DoesNotExist => c.complement = false,
            op => {
                c.absent_ok = false;
                let (min, max) = match op {
                    Operator::Gt => (bound.and_then(|n| n.checked_add(1)), None),
                    Operator::Gte => (bound, None),
                    Operator::Lt => (None, bound.and_then(|n| n.checked_sub(1))),
                    _ => (None, bound),
                };
                if min.is_none() && max.is_none() {
                    // No integer bound (an invalid value, or one at the edge of i64): nothing
                    // satisfies it.
                    c.complement = false;
                } else {
                    c.min = min;
                    c.max = max;
                }
            }
        }
        c
    }

    /// Both constraints at once (Karpenter's `Requirement.Intersection`).
    pub fn intersect(&self, other: &Constraint) -> Constraint {
        let mut sources = self.sources.clone();
        sources.extend(other.sources.iter().cloned());
        let min_values = match (self.min_values, other.min_values) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let absent_ok = self.absent_ok && other.absent_ok;
        let mut c = Constraint {
            key: self.key.clone(),
            absent_ok,
            complement: false,
            values: BTreeSet::new(),
            min: None,
            max: None,
            min_values,
            sources,
        };
        if matches!((min, max), (Some(lo), Some(hi)) if lo > hi) {
            return c;
        }
        c.complement = self.complement && other.complement;
        c.values = match (self.complement, other.complement) {
            (true, true) => self.values.union(&other.values).cloned().collect(),
            (true, false) => other.values.difference(&self.values).cloned().collect(),
            (false, true) => self.values.difference(&other.values).cloned().collect(),
            (false, false) => self.values.intersection(&other.values).cloned().collect(),
        };
        if c.complement {
            c.min = min;
            c.max = max;
        } else {
            c.values.retain(|v| within(v, min, max));
        }
        c
    }

    /// Whether a node whose label has this value (`None`: no such label) satisfies it.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match value {
            None => self.absent_ok,
            Some(v) => {
                let listed = self.values.contains(v);
                (if self.complement { !listed } else { listed }) && within(v, self.min, self.max)
            }
        }
    }

    /// A node without the label satisfies it.
    pub fn allows_absent(&self) -> bool {
        self.absent_ok
    }

    /// No value of the label satisfies it (only its absence may).
    pub fn no_value_allowed(&self) -> bool {
        !self.complement && self.values.is_empty()
    }

    /// Nothing satisfies it, with or without the label: the combination of requirements can
    /// never be met ("no instance can satisfy").
    pub fn is_unsatisfiable(&self) -> bool {
        !self.absent_ok && self.no_value_allowed()
    }

    /// The finite set of allowed values, when it is one (`In`-like).
    pub fn allowed_values(&self) -> Option<&BTreeSet<String>> {
        (!self.complement).then_some(&self.values)
    }

    /// The excluded values, when the allowed set is everything but these (`NotIn`-like).
    pub fn excluded_values(&self) -> Option<&BTreeSet<String>> {
        self.complement.then_some(&self.values)
    }

    /// Inclusive integer bounds on a present value, when the allowed set is open.
    pub fn bounds(&self) -> (Option<i64>, Option<i64>) {
        (self.min, self.max)
    }

    /// A short phrase for messages: "l40s", "one of g6, g6e", "not l4", ">= 2", "absent", ...
    pub fn describe(&self) -> String {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        let present = if !self.complement {
            match self.values.len() {
                0 => None,
                1 => Some(list(&self.values)),
                _ => Some(format!("one of {}", list(&self.values))),
            }
        } else {
            let mut parts = Vec::new();
            if !self.values.is_empty() {
                parts.push(format!("not {}", list(&self.values)));
            }
            match (self.min, self.max) {
                (Some(lo), Some(hi)) if lo == hi => parts.push(format!("= {lo}")),
                (Some(lo), Some(hi)) => parts.push(format!("from {lo} to {hi}")),
                (Some(lo), None) => parts.push(format!(">= {lo}")),
                (None, Some(hi)) => parts.push(format!("<= {hi}")),
                (None, None) => {}
            }
            Some(if parts.is_empty() {
                "any value".to_string()
            } else {
                parts.join(", ")
            })
        };
        match (present, self.absent_ok) {
            (None, true) => "absent".to_string(),
            (None, false) => "nothing (contradictory requirements)".to_string(),
            (Some(p), true) if p == "any value" => "anything".to_string(),
            (Some(p), true) => format!("{p}, or absent"),
            (Some(p), false) => p,
        }
    }
}

fn within(value: &str, min: Option<i64>, max: Option<i64>) -> bool {
    if min.is_none() && max.is_none() {
        return true;
    }
    match parse_int(value) {
        None => false,
        Some(v) => min.is_none_or(|lo| v >= lo) && max.is_none_or(|hi| v <= hi),
    }
}

/// A set of requirements, combined per normalized label key (all must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    by_key: BTreeMap<LabelKey, Constraint>,
}

/// Why a NodePool cannot serve a pod (Karpenter's `Requirements.Compatible`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    pub key: LabelKey,
    pub message: String,
    pub sources: Vec<Source>,
}

impl Constraints {
    pub fn new() -> Constraints {
        Constraints::default()
    }

    pub fn from_requirements<'a>(requirements: impl IntoIterator<Item = &'a Requirement>) -> Self {
        let mut c = Constraints::new();
        for r in requirements {
            c.add(r);
        }
        c
    }

    pub fn add(&mut self, requirement: &Requirement) {
        self.add_constraint(requirement.constraint());
    }

    pub fn add_constraint(&mut self, constraint: Constraint) {
        let merged = match self.by_key.get(&constraint.key) {
            Some(existing) => existing.intersect(&constraint),
            None => constraint,
        };
        self.by_key.insert(merged.key.clone(), merged);
    }

    /// Both sets at once.
    pub fn and(&self, other: &Constraints) -> Constraints {
        let mut c = self.clone();
        for constraint in other.by_key.values() {
            c.add_constraint(constraint.clone());
        }
        c
    }

    pub fn get(&self, key: &LabelKey) -> Option<&Constraint> {
        self.by_key.get(key)
    }

    pub fn well_known(&self, wk: WellKnown) -> Option<&Constraint> {
        self.by_key.get(&LabelKey::WellKnown(wk))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Constraint> {
        self.by_key.values()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The keys on which nothing can satisfy the requirements.
    pub fn unsatisfiable(&self) -> Vec<&Constraint> {
        self.by_key
            .values()
            .filter(|c| c.is_unsatisfiable())
            .collect()
    }

    /// The constraints a node with these labels fails (`lookup` gives a label's value, `None`
    /// when the node lacks it).
    pub fn mismatches<'v>(
        &self,
        lookup: impl Fn(&LabelKey) -> Option<&'v str>,
    ) -> Vec<&Constraint> {
        self.by_key
            .values()
            .filter(|c| !c.matches(lookup(&c.key)))
            .collect()
    }

    /// Whether a node with these labels satisfies every constraint.
    pub fn matches<'v>(&self, lookup: impl Fn(&LabelKey) -> Option<&'v str>) -> bool {
        self.by_key.values().all(|c| c.matches(lookup(&c.key)))
    }

    /// Karpenter's compatibility of a NodePool (`self`) with a pod's requirements: a key both
    /// constrain must leave a common value (unless both let the label be absent), and a custom
    /// (not well-known) key the pod requires must be defined by the NodePool.
    pub fn incompatibilities(&self, pod: &Constraints) -> Vec<Incompatibility> {
        let mut out = Vec::new();
        for p in pod.by_key.values() {
            match self.by_key.get(&p.key) {
                None if matches!(p.key, LabelKey::Custom(_)) && !p.absent_ok => {
                    out.push(Incompatibility {
                        key: p.key.clone(),
                        message: format!(
                            "the pod requires label {} ({}), which the NodePool does not define; \
                             add a requirement or template label for it to the NodePool",
                            p.key,
                            p.describe()
                        ),
                        sources: p.sources.clone(),
                    });
                }
                None => {}
                Some(np) => {
                    let both = np.intersect(p);
                    if both.no_value_allowed() && !(np.absent_ok && p.absent_ok) {
                        out.push(Incompatibility {
                            key: p.key.clone(),
                            message: format!(
                                "{}: the NodePool allows {} but the pod requires {}",
                                p.key,
                                np.describe(),
                                p.describe()
                            ),
                            sources: both.sources,
                        });
                    }
                }
            }
        }
        out
    }
}
