//! Node gating through the Kubernetes API.
//!
//! A NodePool gives every new node the startup taint `accelprobe.io/unverified`. When a node's
//! report reaches the collector, [`Gate::apply`] turns the verdict into Kubernetes state:
//!
//! - passed: the startup taint is removed (whatever its effect; other taints are kept exactly as
//!   they are) and the node is labelled `accelprobe.io/verdict=pass`;
//! - failed: the taints are left alone (the startup taint stays, none is added), the node is
//!   labelled `accelprobe.io/verdict=fail`, and a Warning Event `AcceleratorValidationFailed`
//!   naming the failing checks is recorded against the Node.
//!
//! Every change is a JSON merge patch that carries the `metadata.resourceVersion` the change was
//! computed from, so a node that changed in between is answered with 409 Conflict; the gate then
//! reads the node again and recomputes, a bounded number of times. Nothing is patched when
//! nothing would change. Every API call is bounded in time, so a hung API server cannot hang the
//! collector. The collector's service account needs exactly what
//! `containers/k8s/collector/rbac.yaml` grants: get and patch nodes, create events.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Map, Value};

/// The startup taint a NodePool puts on new nodes; removed when a node passes.
pub const STARTUP_TAINT_KEY: &str = "accelprobe.io/unverified";
/// The label that carries the verdict (`pass` or `fail`).
pub const VERDICT_LABEL_KEY: &str = "accelprobe.io/verdict";
/// The Event reason for a failed validation.
pub const EVENT_REASON: &str = "AcceleratorValidationFailed";
/// The component name used as field manager and as the Event's source/reportingComponent.
pub const COMPONENT: &str = "accelprobe-collector";
/// The Event annotation that carries the report id.
pub const REPORT_ID_ANNOTATION: &str = "accelprobe.io/report-id";
/// The RBAC manifest that grants the collector what the gate needs.
pub const RBAC_FILE: &str = "containers/k8s/collector/rbac.yaml";
/// The longest Event message, in bytes (the Kubernetes limit for an event note).
pub const EVENT_MESSAGE_LIMIT: usize = 1024;

/// The default namespace for Events. The API server accepts a core v1 Event about a cluster-scoped
/// object such as a Node only in `default` (or with no namespace).
pub const DEFAULT_EVENT_NAMESPACE: &str = "default";
/// The default bound on each API call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a patch is computed and sent before a run of 409 Conflicts is given up.
pub const MAX_ATTEMPTS: u32 = 5;

/// Why the gate could not do its work. Every message is one line that names the node and what to
/// do about it.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// No client could be built (no in-cluster service account and no usable kubeconfig).
    #[error("cannot reach the Kubernetes API: {reason}; check the in-cluster service account or KUBECONFIG")]
    Connect { reason: String },
    /// A request did not reach the API server or its answer could not be read.
    #[error("cannot reach the Kubernetes API to {op} for node {node}: {reason}; check the in-cluster service account or KUBECONFIG and the network path to the API server")]
    Transport {
        node: String,
        op: &'static str,
        reason: String,
    },
    /// The API server did not answer in time.
    #[error("the Kubernetes API did not answer within {secs}s to {op} for node {node}; check the API server's health and the network path to it")]
    Timeout {
        node: String,
        op: &'static str,
        secs: f64,
    },
    /// The report names a node the cluster does not have.
    #[error("node {node} not found; it was deleted, or the report names the wrong node (check NODE_NAME in the validation pod)")]
    NodeNotFound { node: String },
    /// The name cannot be a Kubernetes node name; nothing was sent.
    #[error("node {node:?} is not a valid Kubernetes node name (lowercase DNS subdomain); the report's node name is wrong")]
    InvalidNodeName { node: String },
    /// RBAC denies the collector's service account what the gate needs.
    #[error("forbidden: the collector's service account may not {verb} {resource} (node {node}); apply {RBAC_FILE}")]
    Forbidden {
        node: String,
        verb: &'static str,
        resource: String,
    },
    /// The API server does not accept the collector's credentials.
    #[error("unauthorized: the Kubernetes API rejected the collector's credentials while trying to {op} for node {node}; check the service account token or KUBECONFIG")]
    Unauthorized { node: String, op: &'static str },
    /// The node kept changing between read and patch.
    #[error("node {node} changed during every one of {attempts} attempts to patch it (409 Conflict); the verdict was not applied, send the report again")]
    Conflict { node: String, attempts: u32 },
    /// Any other refusal by the API server.
    #[error("the Kubernetes API refused to {op} for node {node}: HTTP {code}: {message}")]
    Api {
        node: String,
        op: &'static str,
        code: u16,
        message: String,
    },
    /// The API server's answer did not have the expected shape.
    #[error("unexpected answer from the Kubernetes API to {op} for node {node}: {reason}")]
    Unexpected {
        node: String,
        op: &'static str,
        reason: String,
    },
}

/// What the gate did to a node, for the collector's record and log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateAction {
    pub node: String,
    /// `"pass"` or `"fail"`.
    pub verdict: &'static str,
    /// The startup taint was present and has been removed.
    pub taint_removed: bool,
    /// The verdict label was missing or different and has been set.
    pub label_set: bool,
    /// A Warning Event has been created.
    pub event: bool,
}

/// Applies verdicts to nodes.
#[derive(Clone)]
pub struct Gate {
    client: kube::Client,
    event_namespace: String,
    call_timeout: Duration,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("event_namespace", &self.event_namespace)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

/// The API calls the gate makes, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    GetNode,
    PatchNode,
    CreateEvent,
    GetNodePool,
}

impl Op {
    fn describe(self) -> &'static str {
        match self {
            Op::GetNode => "read the node",
            Op::PatchNode => "patch the node",
            Op::CreateEvent => "create an event",
            Op::GetNodePool => "read its NodePool",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Op::GetNode => "get",
            Op::PatchNode => "patch",
            Op::CreateEvent => "create",
            Op::GetNodePool => "get",
        }
    }
}

/// What a verdict needs changed on a node as it was read.
#[derive(Debug, PartialEq)]
struct Plan {
    /// The taint list without the startup taint, when the startup taint was present.
    new_taints: Option<Vec<Value>>,
    /// Whether the verdict label has to be set.
    set_label: bool,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.new_taints.is_none() && !self.set_label
    }
}

impl Gate {
    /// In-cluster config or kubeconfig (`kube::Client::try_default`), Events in `default`.
    pub async fn connect() -> Result<Gate, GateError> {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| GateError::Connect {
                reason: one_line(&e.to_string()),
            })?;
        Ok(Gate::new(client, DEFAULT_EVENT_NAMESPACE))
    }

    /// A gate on an existing client. `event_namespace` is where Events are created; the API
    /// server accepts core v1 Events about Nodes only in `default`, so pass that unless the
    /// cluster is known to differ. An empty namespace means `default`.
    pub fn new(client: kube::Client, event_namespace: &str) -> Gate {
        Gate {
            client,
            event_namespace: DEFAULT_EVENT_NAMESPACE.to_string(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
        .with_event_namespace(event_namespace)
    }

    /// The same gate creating Events in `namespace` (empty means `default`; see [`Gate::new`]).
    pub fn with_event_namespace(mut self, namespace: &str) -> Gate {
        self.event_namespace = if namespace.is_empty() {
            DEFAULT_EVENT_NAMESPACE.to_string()
        } else {
            namespace.to_string()
        };
        self
    }

    /// The same gate with another bound on each API call (default [`DEFAULT_CALL_TIMEOUT`]).
    pub fn with_call_timeout(mut self, timeout: Duration) -> Gate {
        self.call_timeout = timeout;
        self
    }

    /// Ask the API server for its version: proves at start that it can be reached and that it
    /// accepts the credentials. The version text (`v1.33.2`).
    pub async fn check(&self) -> Result<String, GateError> {
        let info = tokio::time::timeout(self.call_timeout, self.client.apiserver_version())
            .await
            .map_err(|_| GateError::Connect {
                reason: format!("no answer within {:.0}s", self.call_timeout.as_secs_f64()),
            })?
            .map_err(|e| GateError::Connect {
                reason: one_line(&e.to_string()),
            })?;
        Ok(info.git_version)
    }

    /// The Karpenter NodePool `name` (`karpenter.sh/v1`) as JSON, `None` when the cluster has
    /// none of that name (or no Karpenter). `node` names the node it is read for, for errors.
    pub async fn node_pool(&self, node: &str, name: &str) -> Result<Option<Value>, GateError> {
        let resource = ApiResource {
            group: "karpenter.sh".into(),
            version: "v1".into(),
            api_version: "karpenter.sh/v1".into(),
            kind: "NodePool".into(),
            plural: "nodepools".into(),
        };
        let pools: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let found = self
            .bounded(node, Op::GetNodePool, pools.get_opt(name))
            .await?;
        match found {
            Ok(pool) => Ok(pool.and_then(|p| serde_json::to_value(p).ok())),
            // No Karpenter in the cluster: the resource type itself is unknown.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(self.classify(e, node, Op::GetNodePool)),
        }
    }

    /// The node's labels as the API server has them (trusted identity for re-verification).
    pub async fn node_labels(&self, node: &str) -> Result<BTreeMap<String, String>, GateError> {
        check_node_name(node)?;
        let obj = self.get_node(node).await?;
        Ok(obj.metadata.labels.unwrap_or_default())
    }

    /// Apply a verdict to a node.
    ///
    /// passed: remove the startup taint (any effect) if present and set the label
    /// `accelprobe.io/verdict=pass`. failed: keep the taints as they are, set the label
    /// `accelprobe.io/verdict=fail` and create a Warning Event listing `failing` (check id,
    /// one-line message) and `report_id`. Nothing is patched when nothing would change.
    ///
    /// When the Event cannot be created the label is already set and the error is returned;
    /// calling `apply` again is safe (the label is not patched twice, the Event is created once
    /// more).
    pub async fn apply(
        &self,
        node: &str,
        passed: bool,
        failing: &[(String, String)],
        report_id: &str,
    ) -> Result<GateAction, GateError> {
        check_node_name(node)?;
        let verdict = if passed { "pass" } else { "fail" };
        let nodes = self.nodes();
        let params = PatchParams {
            field_manager: Some(COMPONENT.to_string()),
            ..PatchParams::default()
        };

        let mut attempt = 0;
        let (plan, uid) = loop {
            attempt += 1;
            let obj = self.get_node(node).await?;
            let plan = plan_for(&obj, passed);
            let uid = obj.metadata.uid.clone();
            if plan.is_empty() {
                break (plan, uid);
            }
            let Some(resource_version) = obj.metadata.resource_version.clone() else {
                return Err(GateError::Unexpected {
                    node: node.to_string(),
                    op: Op::GetNode.describe(),
                    reason: "the node has no metadata.resourceVersion".to_string(),
                });
            };
            let body = patch_body(&resource_version, verdict, &plan);
            let result = self
                .bounded(
                    node,
                    Op::PatchNode,
                    nodes.patch(node, &params, &Patch::Merge(&body)),
                )
                .await?;
            match result {
                Ok(patched) => break (plan, patched.metadata.uid.or(uid)),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(GateError::Conflict {
                            node: node.to_string(),
                            attempts: attempt,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
                }
                Err(e) => return Err(self.classify(e, node, Op::PatchNode)),
            }
        };

        let mut action = GateAction {
            node: node.to_string(),
            verdict,
            taint_removed: plan.new_taints.is_some(),
            label_set: plan.set_label,
            event: false,
        };
        if !passed {
            let event = failure_event(node, uid, &self.event_namespace, failing, report_id);
            let events: Api<Event> = Api::namespaced(self.client.clone(), &self.event_namespace);
            let pp = PostParams {
                field_manager: Some(COMPONENT.to_string()),
                ..PostParams::default()
            };
            self.bounded(node, Op::CreateEvent, events.create(&pp, &event))
                .await?
                .map_err(|e| self.classify(e, node, Op::CreateEvent))?;
            action.event = true;
        }
        Ok(action)
    }

    fn nodes(&self) -> Api<DynamicObject> {
        // Untyped, so that fields this build does not know (in taints, say) survive the
        // read-modify-patch round trip.
        Api::all_with(self.client.clone(), &ApiResource::erase::<Node>(&()))
    }

    async fn get_node(&self, node: &str) -> Result<DynamicObject, GateError> {
        self.bounded(node, Op::GetNode, self.nodes().get(node))
            .await?
            .map_err(|e| self.classify(e, node, Op::GetNode))
    }

    /// Runs one API call under the call timeout. The outer error is the timeout.
    async fn bounded<T>(
        &self,
        node: &str,
        op: Op,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, GateError> {
        tokio::time::timeout(self.call_timeout, call)
            .await
            .map_err(|_| GateError::Timeout {
                node: node.to_string(),
                op: op.describe(),
                secs: self.call_timeout.as_secs_f64(),
            })
    }

    fn classify(&self, err: kube::Error, node: &str, op: Op) -> GateError {
        let node = node.to_string();
        match err {
            kube::Error::Api(status) => match status.code {
                401 => GateError::Unauthorized {
                    node,
                    op: op.describe(),
                },
                403 => GateError::Forbidden {
                    node,
                    verb: op.verb(),
                    resource: match op {
                        Op::GetNode | Op::PatchNode => "nodes".to_string(),
                        Op::CreateEvent => {
                            format!("events in namespace {}", self.event_namespace)
                        }
                        Op::GetNodePool => "nodepools.karpenter.sh".to_string(),
                    },
                },
                404 if op != Op::CreateEvent => GateError::NodeNotFound { node },
                code => GateError::Api {
                    node,
                    op: op.describe(),
                    code,
                    message: one_line(if status.message.is_empty() {
                        &status.reason
                    } else {
                        &status.message
                    }),
                },
            },
            kube::Error::SerdeError(e) => GateError::Unexpected {
                node,
                op: op.describe(),
                reason: one_line(&e.to_string()),
            },
            other => GateError::Transport {
                node,
                op: op.describe(),
                reason: one_line(&other.to_string()),
            },
        }
    }
}

/// Rejects anything that is not a lowercase RFC 1123 DNS subdomain (what Kubernetes accepts as a
/// node name), so that a name from a report can never reshape the request path.
fn check_node_name(node: &str) -> Result<(), GateError> {
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    if node.len() <= 253 && node.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(GateError::InvalidNodeName {
            node: node.chars().take(300).collect(),
        })
    }
}

/// What the verdict changes on the node as read.
fn plan_for(obj: &DynamicObject, passed: bool) -> Plan {
    let want = if passed { "pass" } else { "fail" };
    let set_label = obj
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(VERDICT_LABEL_KEY))
        .map(String::as_str)
        != Some(want);
    let new_taints = if passed {
        let taints = obj
            .data
            .get("spec")
            .and_then(|s| s.get("taints"))
            .and_then(Value::as_array);
        taints.and_then(|taints| {
            let kept: Vec<Value> = taints
                .iter()
                .filter(|t| !is_startup_taint(t))
                .cloned()
                .collect();
            (kept.len() != taints.len()).then_some(kept)
        })
    } else {
        None
    };
    Plan {
        new_taints,
        set_label,
    }
}

fn is_startup_taint(taint: &Value) -> bool {
    taint.get("key").and_then(Value::as_str) == Some(STARTUP_TAINT_KEY)
}

/// The merge patch for a plan. `metadata.resourceVersion` makes the API server refuse it with
/// 409 Conflict when the node changed since it was read; `spec.taints` is a whole list (merge
/// patch replaces lists), which is safe because of that precondition.
fn patch_body(resource_version: &str, verdict: &str, plan: &Plan) -> Value {
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), json!(resource_version));
    if plan.set_label {
        metadata.insert("labels".into(), json!({ VERDICT_LABEL_KEY: verdict }));
    }
    let mut body = Map::new();
    body.insert("metadata".into(), Value::Object(metadata));
    if let Some(taints) = &plan.new_taints {
        body.insert("spec".into(), json!({ "taints": taints }));
    }
    Value::Object(body)
}

/// The Warning Event for a failed node.
fn failure_event(
    node: &str,
    uid: Option<String>,
    namespace: &str,
    failing: &[(String, String)],
    report_id: &str,
) -> Event {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let report_id = truncate_on_char_boundary(&one_line(report_id), 253);
    Event {
        metadata: ObjectMeta {
            // The API server appends a random suffix.
            generate_name: Some(format!("{node}.")),
            namespace: Some(namespace.to_string()),
            annotations: Some(BTreeMap::from([(
                REPORT_ID_ANNOTATION.to_string(),
                report_id.clone(),
            )])),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Node".to_string()),
            name: Some(node.to_string()),
            uid,
            ..ObjectReference::default()
        },
        type_: Some("Warning".to_string()),
        reason: Some(EVENT_REASON.to_string()),
        message: Some(event_message(failing, &report_id)),
        source: Some(EventSource {
            component: Some(COMPONENT.to_string()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.to_string()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    }
}

/// `accelprobe validation failed (report R): 2 failing checks: a.b: msg; c.d: msg`, one line,
/// at most [`EVENT_MESSAGE_LIMIT`] bytes.
fn event_message(failing: &[(String, String)], report_id: &str) -> String {
    let mut msg = format!("accelprobe validation failed (report {report_id})");
    if failing.is_empty() {
        msg.push_str("; the report names no failing check");
    } else {
        let n = failing.len();
        msg.push_str(&format!(
            ": {n} failing check{}: ",
            if n == 1 { "" } else { "s" }
        ));
        let parts: Vec<String> = failing
            .iter()
            .map(|(id, m)| format!("{}: {}", one_line(id), one_line(m)))
            .collect();
        msg.push_str(&parts.join("; "));
    }
    if msg.len() > EVENT_MESSAGE_LIMIT {
        const ELLIPSIS: &str = "…";
        let mut cut = truncate_on_char_boundary(&msg, EVENT_MESSAGE_LIMIT - ELLIPSIS.len());
        cut.push_str(ELLIPSIS);
        return cut;
    }
    msg
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate_on_char_boundary(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Collapses all whitespace runs (newlines included) to single spaces and drops control chars.
fn one_line(s: &str) -> String {
    s.split_whitespace()
        .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use std::pin::pin;
    use tower_test::mock;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    /// One request the fake API server expects and the answer it gives.
    struct Exchange {
        method: &'static str,
        path_and_query: String,
        content_type: Option<&'static str>,
        body: Option<Value>,
        status: u16,
        response: Value,
    }

    fn get_node(node: &str, response: Value) -> Exchange {
        Exchange {
            method: "GET",
            path_and_query: format!("/api/v1/nodes/{node}"),
            content_type: None,
            body: None,
            status: 200,
            response,
        }
    }

    fn patch_node(node: &str, body: Value, status: u16, response: Value) -> Exchange {
        Exchange {
            method: "PATCH",
            path_and_query: format!("/api/v1/nodes/{node}?fieldManager=accelprobe-collector"),
            content_type: Some("application/merge-patch+json"),
            body: Some(body),
            status,
            response,
        }
    }

    fn post_event(ns: &str, body: Value, status: u16, response: Value) -> Exchange {
        Exchange {
            method: "POST",
            path_and_query: format!(
                "/api/v1/namespaces/{ns}/events?fieldManager=accelprobe-collector"
            ),
            content_type: Some("application/json"),
            body: Some(body),
            status,
            response,
        }
    }

    fn status(code: u16, reason: &str, message: &str) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code
        })
    }

    fn node_json(name: &str, rv: &str, labels: Option<Value>, taints: Option<Value>) -> Value {
        let mut metadata = json!({ "name": name, "uid": "uid-1234", "resourceVersion": rv });
        if let Some(labels) = labels {
            metadata["labels"] = labels;
        }
        let mut node = json!({ "apiVersion": "v1", "kind": "Node", "metadata": metadata });
        if let Some(taints) = taints {
            node["spec"] = json!({ "taints": taints });
        }
        node
    }

    /// Strips the two timestamps from an Event body after checking that they are RFC 3339 times.
    fn strip_timestamps(mut body: Value) -> Value {
        for key in ["firstTimestamp", "lastTimestamp"] {
            let t = body
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("event has no {key}: {body}"));
            assert!(
                t.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
                "{key} {t} is not a timestamp"
            );
            body.as_object_mut().unwrap().remove(key);
        }
        body
    }

    /// Serves `script` in order, asserting each request exactly, then asserts that no further
    /// request arrives before the client is dropped.
    async fn serve(handle: Handle, script: Vec<Exchange>) {
        let mut handle = pin!(handle);
        for (i, ex) in script.into_iter().enumerate() {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                panic!(
                    "request {i} ({} {}) never came",
                    ex.method, ex.path_and_query
                )
            });
            assert_eq!(request.method().as_str(), ex.method, "request {i}");
            // Path exact; query as its list of pairs (kube writes `?&fieldManager=...`).
            let uri = request.uri().clone();
            let (want_path, want_query) = ex
                .path_and_query
                .split_once('?')
                .unwrap_or((ex.path_and_query.as_str(), ""));
            assert_eq!(uri.path(), want_path, "request {i} path");
            let pairs = |q: &str| -> Vec<String> {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            assert_eq!(
                pairs(uri.query().unwrap_or("")),
                pairs(want_query),
                "request {i} query of {uri}"
            );
            let ct = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(ct.as_deref(), ex.content_type, "request {i} content-type");
            let bytes = request.into_body().collect_bytes().await.unwrap();
            match ex.body {
                None => assert!(bytes.is_empty(), "request {i} has a body"),
                Some(expected) => {
                    let mut got: Value = serde_json::from_slice(&bytes).unwrap();
                    if ex.method == "POST" {
                        got = strip_timestamps(got);
                    }
                    assert_eq!(got, expected, "request {i} body");
                }
            }
            let response = Response::builder()
                .status(StatusCode::from_u16(ex.status).unwrap())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&ex.response).unwrap()))
                .unwrap();
            send.send_response(response);
        }
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }

    /// Runs `f` against a gate whose API server follows `script`.
    async fn with_script<T, F, Fut>(script: Vec<Exchange>, f: F) -> T
    where
        F: FnOnce(Gate) -> Fut,
        Fut: Future<Output = T>,
    {
        let (mock_service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(serve(handle, script));
        let gate = Gate::new(kube::Client::new(mock_service, "default"), "default");
        let out = f(gate).await;
        // `f` consumed the gate, so the client is gone; a failed assertion surfaces here.
        server.await.unwrap();
        out
    }

    fn failing() -> Vec<(String, String)> {
        vec![
            (
                "gpu.count".to_string(),
                "expected 8 GPUs, found 7".to_string(),
            ),
            (
                "gpu.memory".to_string(),
                "GPU 3 reports 40 GiB,\nexpected 80 GiB".to_string(),
            ),
        ]
    }

    #[tokio::test]
    async fn pass_removes_only_the_startup_taint_and_sets_the_label() {
        let other =
            json!({ "key": "example.com/dedicated", "value": "ml", "effect": "NoSchedule" });
        let ours = json!({ "key": STARTUP_TAINT_KEY, "effect": "NoSchedule" });
        let gpu = json!({
            "key": "nvidia.com/gpu", "value": "present", "effect": "NoExecute",
            "timeAdded": "2025-01-02T03:04:05Z", "someFutureField": 1
        });
        let node = node_json(
            "gpu-1",
            "100",
            Some(json!({ "kubernetes.io/hostname": "gpu-1" })),
            Some(json!([other, ours, gpu])),
        );
        let expected_patch = json!({
            "metadata": { "resourceVersion": "100", "labels": { "accelprobe.io/verdict": "pass" } },
            "spec": { "taints": [other, gpu] }
        });
        let patched = node_json("gpu-1", "101", Some(json!({})), Some(json!([other, gpu])));
        let script = vec![
            get_node("gpu-1", node),
            patch_node("gpu-1", expected_patch, 200, patched),
        ];
        let action = with_script(script, |g| async move {
            g.apply("gpu-1", true, &[], "r-1").await
        })
        .await
        .unwrap();
        assert_eq!(
            action,
            GateAction {
                node: "gpu-1".into(),
                verdict: "pass",
                taint_removed: true,
                label_set: true,
                event: false
            }
        );
    }

    #[tokio::test]
    async fn pass_with_nothing_to_do_only_reads() {
        let node = node_json(
            "gpu-1",
            "7",
            Some(json!({ VERDICT_LABEL_KEY: "pass" })),
            Some(json!([{ "key": "example.com/dedicated", "effect": "NoSchedule" }])),
        );
        let action = with_script(vec![get_node("gpu-1", node)], |g| async move {
            g.apply("gpu-1", true, &[], "r-1").await
        })
        .await
        .unwrap();
        assert_eq!(
            action,
            GateAction {
                node: "gpu-1".into(),
                verdict: "pass",
                taint_removed: false,
                label_set: false,
                event: false
            }
        );
    }

    #[tokio::test]
    async fn pass_removes_the_taint_whatever_its_effect_without_relabelling() {
        let node = node_json(
            "gpu-1",
            "8",
            Some(json!({ VERDICT_LABEL_KEY: "pass" })),
            Some(json!([
                { "key": STARTUP_TAINT_KEY, "effect": "NoSchedule" },
                { "key": STARTUP_TAINT_KEY, "value": "x", "effect": "NoExecute" }
            ])),
        );
        let expected_patch = json!({
            "metadata": { "resourceVersion": "8" },
            "spec": { "taints": [] }
        });
        let patched = node_json("gpu-1", "9", None, None);
        let script = vec![
            get_node("gpu-1", node),
            patch_node("gpu-1", expected_patch, 200, patched),
        ];
        let action = with_script(
            script,
            |g| async move { g.apply("gpu-1", true, &[], "r").await },
        )
        .await
        .unwrap();
        assert!(action.taint_removed);
        assert!(!action.label_set);
    }

    #[tokio::test]
    async fn pass_on_a_node_without_labels_or_taints_adds_the_label_map() {
        let node = node_json("gpu-1", "3", None, None);
        let expected_patch = json!({
            "metadata": { "resourceVersion": "3", "labels": { "accelprobe.io/verdict": "pass" } }
        });
        let patched = node_json(
            "gpu-1",
            "4",
            Some(json!({ VERDICT_LABEL_KEY: "pass" })),
            None,
        );
        let script = vec![
            get_node("gpu-1", node),
            patch_node("gpu-1", expected_patch, 200, patched),
        ];
        let action = with_script(
            script,
            |g| async move { g.apply("gpu-1", true, &[], "r").await },
        )
        .await
        .unwrap();
        assert!(!action.taint_removed);
        assert!(action.label_set);
    }

    fn expected_event(message: &str, report_id: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": "gpu-1.",
                "namespace": "default",
                "annotations": { "accelprobe.io/report-id": report_id }
            },
            "involvedObject": { "apiVersion": "v1", "kind": "Node", "name": "gpu-1", "uid": "uid-1234" },
            "type": "Warning",
            "reason": "AcceleratorValidationFailed",
            "message": message,
            "source": { "component": "accelprobe-collector" },
            "reportingComponent": "accelprobe-collector",
            "count": 1
        })
    }

    #[tokio::test]
    async fn fail_keeps_the_taint_sets_the_label_and_records_an_event() {
        let ours = json!({ "key": STARTUP_TAINT_KEY, "effect": "NoSchedule" });
        let node = node_json(
            "gpu-1",
            "50",
            Some(json!({ "a": "b" })),
            Some(json!([ours])),
        );
        let expected_patch = json!({
            "metadata": { "resourceVersion": "50", "labels": { "accelprobe.io/verdict": "fail" } }
        });
        let patched = node_json(
            "gpu-1",
            "51",
            Some(json!({ VERDICT_LABEL_KEY: "fail" })),
            Some(json!([ours])),
        );
        let message = "accelprobe validation failed (report r-42): 2 failing checks: \
                       gpu.count: expected 8 GPUs, found 7; gpu.memory: GPU 3 reports 40 GiB, expected 80 GiB";
        let script = vec![
            get_node("gpu-1", node),
            patch_node("gpu-1", expected_patch, 200, patched),
            post_event("default", expected_event(message, "r-42"), 201, json!({})),
        ];
        let action = with_script(script, |g| async move {
            g.apply("gpu-1", false, &failing(), "r-42").await
        })
        .await
        .unwrap();
        assert_eq!(
            action,
            GateAction {
                node: "gpu-1".into(),
                verdict: "fail",
                taint_removed: false,
                label_set: true,
                event: true
            }
        );
    }

    #[tokio::test]
    async fn fail_with_the_label_already_set_only_records_an_event() {
        let node = node_json(
            "gpu-1",
            "50",
            Some(json!({ VERDICT_LABEL_KEY: "fail" })),
            Some(json!([{ "key": STARTUP_TAINT_KEY, "effect": "NoSchedule" }])),
        );
        let message = "accelprobe validation failed (report r-43): 1 failing check: gpu.count: expected 8 GPUs, found 7";
        let script = vec![
            get_node("gpu-1", node),
            post_event("default", expected_event(message, "r-43"), 201, json!({})),
        ];
        let one = vec![failing()[0].clone()];
        let action = with_script(script, |g| async move {
            g.apply("gpu-1", false, &one, "r-43").await
        })
        .await
        .unwrap();
        assert!(!action.label_set);
        assert!(!action.taint_removed);
        assert!(action.event);
    }

    #[tokio::test]
    async fn a_conflict_is_retried_on_a_fresh_read() {
        let ours = json!({ "key": STARTUP_TAINT_KEY, "effect": "NoSchedule" });
        let added = json!({ "key": "node.kubernetes.io/not-ready", "effect": "NoExecute" });
        let first = node_json("gpu-1", "1", None, Some(json!([ours])));
        let second = node_json(
            "gpu-1",
            "2",
            Some(json!({ "x": "y" })),
            Some(json!([ours, added])),
        );
        let script = vec![
            get_node("gpu-1", first),
            patch_node(
                "gpu-1",
                json!({
                    "metadata": { "resourceVersion": "1", "labels": { VERDICT_LABEL_KEY: "pass" } },
                    "spec": { "taints": [] }
                }),
                409,
                status(409, "Conflict", "the object has been modified"),
            ),
            get_node("gpu-1", second),
            patch_node(
                "gpu-1",
                json!({
                    "metadata": { "resourceVersion": "2", "labels": { VERDICT_LABEL_KEY: "pass" } },
                    "spec": { "taints": [added] }
                }),
                200,
                node_json("gpu-1", "3", None, Some(json!([added]))),
            ),
        ];
        let action = with_script(
            script,
            |g| async move { g.apply("gpu-1", true, &[], "r").await },
        )
        .await
        .unwrap();
        assert!(action.taint_removed && action.label_set && !action.event);
    }

    #[tokio::test]
    async fn conflicts_are_given_up_after_max_attempts() {
        let mut script = Vec::new();
        for rv in 1..=MAX_ATTEMPTS {
            let rv = rv.to_string();
            script.push(get_node("gpu-1", node_json("gpu-1", &rv, None, None)));
            script.push(patch_node(
                "gpu-1",
                json!({ "metadata": { "resourceVersion": rv, "labels": { VERDICT_LABEL_KEY: "pass" } } }),
                409,
                status(409, "Conflict", "the object has been modified"),
            ));
        }
        let err = with_script(
            script,
            |g| async move { g.apply("gpu-1", true, &[], "r").await },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                GateError::Conflict {
                    attempts: MAX_ATTEMPTS,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "node gpu-1 changed during every one of 5 attempts to patch it (409 Conflict); \
             the verdict was not applied, send the report again"
        );
    }

    #[tokio::test]
    async fn forbidden_patch_names_the_rbac_file() {
        let node = node_json("gpu-1", "5", None, None);
        let script = vec![
            get_node("gpu-1", node),
            patch_node(
                "gpu-1",
                json!({ "metadata": { "resourceVersion": "5", "labels": { VERDICT_LABEL_KEY: "pass" } } }),
                403,
                status(
                    403,
                    "Forbidden",
                    "nodes \"gpu-1\" is forbidden: User \"x\" cannot patch resource \"nodes\"",
                ),
            ),
        ];
        let err = with_script(
            script,
            |g| async move { g.apply("gpu-1", true, &[], "r").await },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "forbidden: the collector's service account may not patch nodes (node gpu-1); \
             apply containers/k8s/collector/rbac.yaml"
        );
    }

    #[tokio::test]
    async fn forbidden_event_names_events_and_the_rbac_file() {
        let node = node_json(
            "gpu-1",
            "5",
            Some(json!({ VERDICT_LABEL_KEY: "fail" })),
            None,
        );
        let message = "accelprobe validation failed (report r); the report names no failing check";
        let script = vec![
            get_node("gpu-1", node),
            post_event(
                "default",
                expected_event(message, "r"),
                403,
                status(403, "Forbidden", "events is forbidden"),
            ),
        ];
        let err = with_script(script, |g| async move {
            g.apply("gpu-1", false, &[], "r").await
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "forbidden: the collector's service account may not create events in namespace default \
             (node gpu-1); apply containers/k8s/collector/rbac.yaml"
        );
    }

    #[tokio::test]
    async fn a_missing_node_is_reported_as_not_found() {
        let script = vec![Exchange {
            status: 404,
            ..get_node(
                "gpu-1",
                status(404, "NotFound", "nodes \"gpu-1\" not found"),
            )
        }];
        let err = with_script(
            script,
            |g| async move { g.apply("gpu-1", true, &[], "r").await },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, GateError::NodeNotFound { .. }), "{err:?}");
        assert!(err.to_string().starts_with("node gpu-1 not found"), "{err}");
    }

    #[tokio::test]
    async fn other_api_errors_are_one_line() {
        let script = vec![Exchange {
            status: 500,
            ..get_node("gpu-1", status(500, "InternalError", "etcd\nunavailable"))
        }];
        let err = with_script(script, |g| async move { g.node_labels("gpu-1").await })
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Kubernetes API refused to read the node for node gpu-1: HTTP 500: etcd unavailable"
        );
    }

    #[tokio::test]
    async fn node_labels_returns_the_servers_labels() {
        let node = node_json(
            "gpu-1",
            "1",
            Some(
                json!({ "node.kubernetes.io/instance-type": "g6e.xlarge", "karpenter.sh/nodepool": "gpu" }),
            ),
            None,
        );
        let labels = with_script(vec![get_node("gpu-1", node)], |g| async move {
            g.node_labels("gpu-1").await
        })
        .await
        .unwrap();
        assert_eq!(
            labels,
            BTreeMap::from([
                ("karpenter.sh/nodepool".to_string(), "gpu".to_string()),
                (
                    "node.kubernetes.io/instance-type".to_string(),
                    "g6e.xlarge".to_string()
                ),
            ])
        );
    }

    #[tokio::test]
    async fn node_labels_of_a_node_without_labels_is_empty() {
        let node = node_json("gpu-1", "1", None, None);
        let labels = with_script(vec![get_node("gpu-1", node)], |g| async move {
            g.node_labels("gpu-1").await
        })
        .await
        .unwrap();
        assert!(labels.is_empty());
    }

    #[tokio::test]
    async fn a_hung_api_server_is_a_timeout() {
        let (mock_service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let mut handle = pin!(handle);
            // Take the request and never answer it.
            let held = handle.next_request().await;
            let _ = held_tx.send(held.is_some());
            std::future::pending::<()>().await;
        });
        let gate = Gate::new(kube::Client::new(mock_service, "default"), "default")
            .with_call_timeout(Duration::from_millis(100));
        let err = gate.apply("gpu-1", true, &[], "r").await.unwrap_err();
        assert!(
            held_rx.await.unwrap(),
            "the request never reached the server"
        );
        server.abort();
        assert!(matches!(err, GateError::Timeout { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the Kubernetes API did not answer within 0.1s to read the node for node gpu-1; \
             check the API server's health and the network path to it"
        );
    }

    #[tokio::test]
    async fn a_transport_error_points_at_the_credentials_and_network() {
        let (mock_service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut handle = pin!(handle);
            let (_, send) = handle.next_request().await.expect("no request");
            send.send_error(std::io::Error::other("connection refused"));
        });
        let gate = Gate::new(kube::Client::new(mock_service, "default"), "default");
        let err = gate.node_labels("gpu-1").await.unwrap_err();
        server.await.unwrap();
        assert!(matches!(err, GateError::Transport { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot reach the Kubernetes API to read the node for node gpu-1:"),
            "{msg}"
        );
        assert!(msg.contains("KUBECONFIG") && !msg.contains('\n'), "{msg}");
    }

    #[tokio::test]
    async fn an_invalid_node_name_sends_nothing() {
        for bad in ["", "GPU-1", "gpu/1", "../secrets", "gpu-1.", "-gpu", "a\nb"] {
            let bad = bad.to_string();
            let err = with_script(
                vec![],
                |g| async move { g.apply(&bad, true, &[], "r").await },
            )
            .await
            .unwrap_err();
            assert!(matches!(err, GateError::InvalidNodeName { .. }), "{err:?}");
            assert!(!err.to_string().contains('\n'));
        }
        let long = "a".repeat(254);
        assert!(check_node_name(&long).is_err());
        assert!(check_node_name(&"a".repeat(253)).is_ok());
        assert!(check_node_name("ip-10-0-1-2.ec2.internal").is_ok());
    }

    #[test]
    fn the_event_message_is_one_line_and_truncated_on_a_char_boundary() {
        let long: Vec<(String, String)> = (0..100)
            .map(|i| {
                (
                    format!("check.{i}"),
                    "é€ long\r\nmessage\twith\u{7}bell".to_string(),
                )
            })
            .collect();
        let msg = event_message(&long, "r-1");
        assert!(msg.len() <= EVENT_MESSAGE_LIMIT, "{}", msg.len());
        assert!(msg.len() > EVENT_MESSAGE_LIMIT - 8, "{}", msg.len());
        assert!(msg.ends_with('…'));
        assert!(!msg.contains(['\n', '\r', '\t', '\u{7}']));
        assert!(msg.starts_with(
            "accelprobe validation failed (report r-1): 100 failing checks: check.0: é€ long message withbell; check.1:"
        ));
        assert_eq!(truncate_on_char_boundary("aé", 2), "a");
        assert_eq!(truncate_on_char_boundary("aé", 3), "aé");
    }

    #[test]
    fn reasons_are_made_one_line_and_messages_say_what_to_do() {
        // Whatever text an error carries in is flattened before it reaches a message.
        assert_eq!(
            one_line("connection refused\r\n  (os error 111)\n\tretrying\u{7}"),
            "connection refused (os error 111) retrying"
        );
        assert_eq!(
            GateError::Connect { reason: "no kubeconfig".into() }.to_string(),
            "cannot reach the Kubernetes API: no kubeconfig; check the in-cluster service account or KUBECONFIG"
        );
    }

    #[tokio::test]
    async fn an_empty_event_namespace_means_default() {
        let (mock_service, _handle) = mock::pair::<Request<Body>, Response<Body>>();
        let gate = Gate::new(kube::Client::new(mock_service, "default"), "");
        assert_eq!(gate.event_namespace, "default");
        assert_eq!(gate.call_timeout, DEFAULT_CALL_TIMEOUT);
        let gate = gate.with_event_namespace("ops");
        assert_eq!(gate.event_namespace, "ops");
        assert_eq!(gate.with_event_namespace("").event_namespace, "default");
    }
}
