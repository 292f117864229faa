//! The collector's HTTP API (axum). Handlers turn requests into calls on the judge, the store
//! and the gate, and answer JSON; every refusal is a 4xx with `{"error": "..."}` that says what
//! was wrong.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};

use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::gate::Gate;
use super::judge::{self, Judge, LabelOrigin, Labels};
use super::metrics::{Counters, Rejection};
use super::store::{NewReport, Store, Stored};
use super::summary::{summarize, Context};
use crate::report::Report;
use crate::verify::catalog::Catalog;
use crate::verify::kubernetes::{self, Manifests};

/// A request must be read and answered within this time once its headers are in (a body
/// that trickles is cut off); the headers themselves have `--header-timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest report id and node name accepted.
const MAX_ID: usize = 128;
const MAX_NODE: usize = 253;

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub judge: Judge,
    pub catalog: &'static Catalog,
    /// Accepted bearer tokens; empty: no authentication.
    pub tokens: Vec<String>,
    pub counters: Counters,
    /// Reads node labels from the Kubernetes API (`--kube`).
    pub gate: Option<Gate>,
    /// Applies verdicts to nodes (`--kube`).
    pub gate_queue: Option<super::GateQueue>,
    /// Bounds the reports read and judged at once.
    pub posting: tokio::sync::Semaphore,
    /// NodePools read from the Kubernetes API, by name, with when they were read.
    pub pools: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, Option<Manifests>)>,
    >,
}

/// How long a NodePool read from the API is used before it is read again.
const POOL_TTL: Duration = Duration::from_secs(60);

/// The node's NodePool as the cluster has it, when the collector's own requirements do not
/// hold one of that name (`--kube` only). Read at most once a minute per name.
async fn cluster_pool(
    state: &AppState,
    node: &str,
    pool: Option<&str>,
) -> Result<Option<Manifests>, String> {
    let (Some(gate), Some(name)) = (&state.gate, pool) else {
        return Ok(None);
    };
    let name = name.to_string();
    if state.judge.has_node_pool(&name) {
        return Ok(None);
    }
    if let Ok(cache) = state.pools.lock() {
        if let Some((at, m)) = cache.get(&name) {
            if at.elapsed() < POOL_TTL {
                return Ok(m.clone());
            }
        }
    }
    let value = gate
        .node_pool(node, &name)
        .await
        .map_err(|e| e.to_string())?;
    let manifests = match value {
        None => None,
        Some(v) => {
            let text = v.to_string();
            let origin = format!("NodePool {name} (Kubernetes API)");
            match kubernetes::parse_manifests(&text, &origin) {
                Ok(m) => Some(m),
                // Retrying cannot fix it: judge without it, and say why in the log.
                Err(e) => {
                    super::log(&format!("{origin} cannot be read, not applied: {e}"));
                    None
                }
            }
        }
    };
    if let Ok(mut cache) = state.pools.lock() {
        cache.insert(name, (std::time::Instant::now(), manifests.clone()));
    }
    Ok(manifests)
}

type Shared = Arc<AppState>;

/// The router with every endpoint and limit.
pub fn router(state: Shared, max_body: usize) -> Router {
    let reports = post(post_report)
        .layer(DefaultBodyLimit::max(max_body))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), max_body),
            declared_size,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(fleet_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/reports", reports)
        .route("/v1/reports/{id}", get(get_report))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{name}", get(node_history))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// SHA-256 of a token: equal-length values to compare, so not even the length leaks.
fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether the request carries one of the configured tokens (compared in constant time).
fn authorized(tokens: &[String], headers: &HeaderMap) -> bool {
    if tokens.is_empty() {
        return true;
    }
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    // The scheme is case-insensitive (RFC 9110).
    let Some((scheme, given)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let given = digest(given.trim());
    // Compare with every token, without stopping early.
    tokens
        .iter()
        .fold(false, |ok, t| ok | bool::from(digest(t).ct_eq(&given)))
}

async fn require_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    state.counters.received.inc();
    if authorized(&state.tokens, request.headers()) {
        next.run(request).await
    } else {
        state.counters.reject(Rejection::Unauthorized);
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token; send 'Authorization: Bearer <token>' with a token \
             from the collector's --token-file",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        r
    }
}

/// Refuse a body whose declared length is over the limit before reading any of it (the body
/// limit alone would read up to the limit first). Chunked bodies are cut by the limit.
async fn declared_size(
    State((state, max)): State<(Shared, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > max as u64) {
        return refuse(
            &state,
            Rejection::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the report is {n} bytes; this collector accepts at most {max} (--max-body)"),
        );
    }
    // Only so many bodies are read and judged at once; the rest wait their turn.
    let Ok(_permit) = state.posting.acquire().await else {
        return refuse(
            &state,
            Rejection::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "the collector is shutting down; retry".into(),
        );
    };
    next.run(request).await
}

/// The node a report is about: the Kubernetes node name, else the hostname.
fn node_name(host: &crate::report::Host) -> Result<String, String> {
    let name = host
        .kubernetes
        .as_ref()
        .and_then(|k| k.node_name.clone())
        .or_else(|| host.hostname.clone())
        .ok_or(
            "the report names no node (host.kubernetes.node_name and host.hostname are \
                both missing); set NODE_NAME from the downward API",
        )?;
    if !path_segment_ok(&name, MAX_NODE) {
        return Err(format!(
            "node name {:?} is not a valid node name (1 to {MAX_NODE} printable characters \
             without '/', not '.' or '..')",
            name.chars().take(64).collect::<String>()
        ));
    }
    Ok(name)
}

/// Whether `s` can be one segment of a URL path (`/v1/nodes/{name}`, `/v1/reports/{id}`) that
/// every client reads back as itself: printable, no '/', and not a dot segment, which
/// browsers resolve away even when percent-encoded.
fn path_segment_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c.is_control() || c == '/')
}

fn check_id(id: &str) -> Result<(), String> {
    if !path_segment_ok(id, MAX_ID) {
        return Err(format!(
            "report id must be 1 to {MAX_ID} printable characters without '/', not '.' or '..'"
        ));
    }
    Ok(())
}

/// A refused report: counted and answered.
fn refuse(state: &AppState, why: Rejection, status: StatusCode, message: String) -> Response {
    state.counters.reject(why);
    error(status, message)
}

/// Store `new` and, once it is stored, count it and wake the gate for `node` (a repeat too:
/// it may follow a gate action that never happened, a crash after the commit). This runs as
/// its own task so that a request dropped while the commit is under way (its 30 s ran out,
/// the client went away) still counts the report and wakes the gate: a committed verdict is
/// never left unapplied until the next restart.
async fn store_and_wake(
    state: &Arc<AppState>,
    new: NewReport,
    node: &str,
) -> Result<Stored, super::store::StoreError> {
    let state = Arc::clone(state);
    let node = node.to_string();
    let task = tokio::spawn(async move {
        let stored = state.store.insert(new).await;
        match &stored {
            Ok(Stored::New(_)) => state.counters.stored.inc(),
            Ok(Stored::Repeat(_)) => state.counters.repeats.inc(),
            _ => return stored,
        };
        if let Some(q) = &state.gate_queue {
            q.wake(&node);
        }
        stored
    });
    task.await.unwrap_or(Err(super::store::StoreError::Closed))
}

async fn post_report(State(state): State<Shared>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rej) => {
            let status = rej.status();
            let why = if status == StatusCode::PAYLOAD_TOO_LARGE {
                Rejection::TooLarge
            } else {
                Rejection::Invalid
            };
            return refuse(&state, why, status, format!("cannot read the body: {rej}"));
        }
    };
    let bad = |m: String| refuse(&state, Rejection::Invalid, StatusCode::BAD_REQUEST, m);
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad("the body is not UTF-8 JSON".into());
    };
    // Parsed once; the probe's own verdict is kept for the record (the collector judges again).
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return bad(crate::report::ReportParseError::Json {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }
            .to_string())
        }
    };
    drop(body);
    let probe_passed = value
        .get("verdict")
        .and_then(|v| v.get("passed"))
        .and_then(Value::as_bool);
    let report = match Report::from_json_value(value) {
        Ok(r) => r,
        Err(e) => return bad(e.to_string()),
    };
    if let Err(e) = check_id(&report.id) {
        return bad(e);
    }
    let node = match node_name(&report.host) {
        Ok(n) => n,
        Err(e) => return bad(e),
    };
    let labels = match &state.gate {
        Some(gate) => match gate.node_labels(&node).await {
            Ok(map) => Labels {
                map,
                origin: LabelOrigin::KubernetesApi,
            },
            Err(
                e @ (super::gate::GateError::NodeNotFound { .. }
                | super::gate::GateError::InvalidNodeName { .. }),
            ) => {
                return bad(format!("node {node} is not in the cluster: {e}"));
            }
            Err(e) => {
                return refuse(
                    &state,
                    Rejection::Unavailable,
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot read node {node} from the Kubernetes API: {e}; retry later"),
                )
            }
        },
        None => Labels {
            map: report
                .host
                .kubernetes
                .as_ref()
                .map(|k| k.labels.clone())
                .unwrap_or_default(),
            origin: LabelOrigin::Report,
        },
    };
    let labels_from = if labels.map.is_empty() {
        "none"
    } else {
        labels.origin.as_str()
    };
    let node_labels = match judge::node_labels(&node, &labels) {
        Ok(l) => l,
        Err(e) => return bad(e.to_string()),
    };
    let known = |wk| node_labels.as_ref().and_then(|l| judge::well_known(l, wk));
    let node_pool = known(kubernetes::WellKnown::NodePool);
    let instance_type = known(kubernetes::WellKnown::InstanceType);
    let cluster = match cluster_pool(&state, &node, node_pool.as_deref()).await {
        Ok(m) => m,
        Err(e) => {
            return refuse(
                &state,
                Rejection::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the NodePool of node {node}: {e}; retry later"),
            )
        }
    };
    let verdict =
        match state
            .judge
            .judge(&report, &node, node_labels, cluster.as_ref(), state.catalog)
        {
            Ok(v) => v,
            Err(e) => return bad(e.to_string()),
        };
    let summary = summarize(
        &report,
        &verdict,
        Context {
            node: &node,
            node_pool,
            instance_type,
            labels_from,
            probe_passed,
            received_at: crate::probe::now_rfc3339(),
        },
    );
    let new = NewReport::new(
        summary,
        serde_json::to_string(&report).unwrap_or_default(),
        serde_json::to_string(&verdict).unwrap_or_default(),
    );
    let (verdict_json, summary_json) = (new.verdict_json.clone(), new.summary_json.clone());
    match store_and_wake(&state, new, &node).await {
        Ok(Stored::New(summary)) => answer(
            StatusCode::CREATED,
            "new",
            &summary,
            &summary_json,
            &verdict_json,
        ),
        Ok(Stored::Repeat(summary)) => {
            // Repeats are rare: their stored summary is written out again.
            let summary_json = serde_json::to_string(&summary).unwrap_or_else(|_| "null".into());
            answer(StatusCode::OK, "repeat", &summary, &summary_json, "null")
        }
        Ok(Stored::Conflict) => refuse(
            &state,
            Rejection::Conflict,
            StatusCode::CONFLICT,
            format!(
                "another report with id {} is already stored; a report id must be unique",
                report.id
            ),
        ),
        Err(e) => refuse(
            &state,
            Rejection::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not stored: {e}; retry later"),
        ),
    }
}

fn answer(
    status: StatusCode,
    stored: &str,
    s: &super::store::NodeSummary,
    summary: &str,
    verdict_json: &str,
) -> Response {
    json_text(
        status,
        format!(
            "{{\"id\":{},\"node\":{},\"passed\":{},\"stored\":\"{stored}\",\"summary\":{summary},\"verdict\":{verdict_json}}}",
            json!(s.report_id),
            json!(s.node),
            s.passed
        ),
    )
}

async fn get_report(
    State(state): State<Shared>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Path(id) = match id {
        Ok(p) => p,
        Err(e) => return error(e.status(), e.body_text()),
    };
    match state.store.report(id.clone()).await {
        Ok(Some(r)) => json_text(
            StatusCode::OK,
            format!(
                "{{\"report\":{},\"verdict\":{},\"summary\":{}}}",
                r.report, r.verdict, r.summary
            ),
        ),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no report with id {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn list_nodes(State(state): State<Shared>) -> Response {
    let nodes = state.store.latest();
    axum::Json(json!({ "nodes": nodes })).into_response()
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    limit: Option<u32>,
}

async fn node_history(
    State(state): State<Shared>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let Path(name) = match name {
        Ok(p) => p,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(e.status(), format!("{}; use ?limit=N", e.body_text())),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    match state.store.history(name.clone(), limit).await {
        Ok(h) if h.is_empty() => error(
            StatusCode::NOT_FOUND,
            format!("no reports from node {name}"),
        ),
        Ok(h) => axum::Json(json!({ "node": name, "history": h })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn healthz(State(state): State<Shared>) -> Response {
    match state.store.count().await {
        Ok(n) => axum::Json(json!({ "status": "ok", "reports": n })).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store does not answer: {e}"),
        ),
    }
}

async fn metrics(State(state): State<Shared>) -> Response {
    let text = super::metrics::render(&state.store.latest(), &state.counters);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn fleet_page(State(state): State<Shared>) -> Response {
    (
        [
            // Inline styles only; nothing else may load or run.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(crate::render::fleet::page(&state.store.latest())),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed here; reports are POSTed to /v1/reports, everything else is GET",
    )
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint; see GET /, /healthz, /metrics, /v1/nodes, /v1/nodes/{name}, \
         /v1/reports/{id}, POST /v1/reports",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_read_back_as_one_path_segment() {
        for ok in ["ip-10-0-1-2.ec2.internal", "a.b", "..x", "n\u{e9}ud"] {
            assert!(path_segment_ok(ok, 253), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a\nb", &"x".repeat(254)] {
            assert!(!path_segment_ok(bad, 253), "{bad:?}");
        }
        assert!(check_id("..").is_err());
    }

    #[test]
    fn tokens_are_checked_exactly() {
        let tokens = vec!["s3cret".to_string(), "other".to_string()];
        let mut h = HeaderMap::new();
        assert!(!authorized(&tokens, &h));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorized(&tokens, &h));
        h.insert(header::AUTHORIZATION, "Bearer other".parse().unwrap());
        assert!(authorized(&tokens, &h));
        h.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(!authorized(&tokens, &h));
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(!authorized(&tokens, &h));
        h.insert(header::AUTHORIZATION, "bearer s3cret".parse().unwrap());
        assert!(authorized(&tokens, &h));
        h.insert(header::AUTHORIZATION, "Bearer".parse().unwrap());
        assert!(!authorized(&tokens, &h));
        assert!(authorized(&[], &HeaderMap::new()));
    }

    #[test]
    fn ids_and_names_are_bounded() {
        assert!(check_id("a-b").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a/b").is_err());
        assert!(check_id(&"x".repeat(129)).is_err());

        let host = |node: Option<&str>, hostname: Option<&str>| crate::report::Host {
            hostname: hostname.map(str::to_string),
            kubernetes: node.map(|n| crate::report::Kubernetes {
                node_name: Some(n.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            node_name(&host(Some("gpu-1"), Some("ip-10"))).unwrap(),
            "gpu-1"
        );
        assert_eq!(node_name(&host(None, Some("ip-10"))).unwrap(), "ip-10");
        assert!(node_name(&host(None, None))
            .unwrap_err()
            .contains("names no node"));
        assert!(node_name(&host(Some(&"n".repeat(254)), None)).is_err());
        assert!(node_name(&host(Some(&"n".repeat(253)), None)).is_ok());
        assert!(node_name(&host(Some("gpu\n1"), None)).is_err());
        assert!(node_name(&host(Some(""), Some("ip-10"))).is_err());
    }
}
