//! Sentry-compatible ingest routes, Hearth's JSON capture API, and read routes for the
//! non-error items (release health, monitors, feedback, transactions, client reports,
//! attachments).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ingest, IngestError, capture, decode, store::*};
use crate::app::AppState;
use crate::http::auth::Viewer;
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes::{Access, Routes};
use crate::store::codec;

/// The peer address axum's connect info gives, when the server was started with it.
type Peer = Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

/// The client's address as the server believes it (trusted proxies honoured): the user of
/// browser events that name none (`auto_user`).
fn client_ip(s: &AppState, peer: Peer, headers: &HeaderMap) -> Option<std::net::IpAddr> {
    let peer = peer.map(|axum::Extension(axum::extract::ConnectInfo(a))| a.ip());
    crate::http::client_ip(peer, headers, &s.config.server.trusted_proxies)
}

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::POST,
            "/api/{project_id}/envelope/",
            Access::DsnKey,
            "Sentry envelope ingest (any SDK): events, transactions, sessions, check-ins, feedback, attachments",
            post(envelope).options(preflight),
        )
        .add(
            Method::POST,
            "/api/{project_id}/store/",
            Access::DsnKey,
            "Legacy Sentry store endpoint: one event as JSON",
            post(store_event).options(preflight),
        )
        .add(
            Method::POST,
            "/api/{project_id}/capture/exception",
            Access::DsnKey,
            "Hearth capture API: report an exception {type, message, stacktrace, user, url, environment, release, tags, level}",
            post(capture_exception).options(preflight),
        )
        .add(
            Method::POST,
            "/api/{project_id}/capture/message",
            Access::DsnKey,
            "Hearth capture API: report a message {message, level, user, url, environment, release, tags}",
            post(capture_message).options(preflight),
        )
        .add(
            Method::GET,
            "/api/projects/{pid}/release-health",
            Access::Viewer,
            "Session counts per release (started, exited, errored, crashed, abnormal, crash-free rate; users, crashed users, crash-free users)",
            get(release_health),
        )
        .add(
            Method::GET,
            "/api/projects/{pid}/monitors",
            Access::Viewer,
            "Cron monitors reported by SDK check-ins, with their recent check-ins",
            get(monitors),
        )
        .add(
            Method::GET,
            "/api/projects/{pid}/feedback",
            Access::Viewer,
            "User feedback and user reports, newest first, with the event and issue they belong to",
            get(feedback),
        )
        .add(
            Method::GET,
            "/api/projects/{pid}/transactions",
            Access::Viewer,
            "Performance transactions stored for the project, newest first (summary only)",
            get(transactions),
        )
        .add(
            Method::GET,
            "/api/projects/{pid}/client-reports",
            Access::Viewer,
            "Events SDKs discarded client-side, by reason and category",
            get(client_reports),
        )
        .add(
            Method::GET,
            "/api/events/{event_id}/attachments",
            Access::Viewer,
            "Attachments stored with an event (metadata)",
            get(attachments),
        )
        .add(
            Method::GET,
            "/api/events/{event_id}/attachments/{n}",
            Access::Viewer,
            "Download one attachment (served as application/octet-stream)",
            get(attachment_download),
        )
}

fn cors(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, x-sentry-rate-limits, x-sentry-error"),
    );
    resp
}

async fn preflight() -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "content-type, x-sentry-auth, x-requested-with, origin, accept, authentication, authorization, content-encoding, sentry-trace, baggage",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("3600"),
    );
    cors(resp)
}

/// The DSN key from `X-Sentry-Auth` / `Authorization: Sentry ...` or `?sentry_key=`.
fn key_from_request(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    for name in ["x-sentry-auth", "authorization"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            let v = v
                .strip_prefix("Sentry ")
                .or_else(|| v.strip_prefix("sentry "))
                .or_else(|| v.strip_prefix("DSN "))
                .unwrap_or(v);
            for part in v.split(',') {
                if let Some((k, val)) = part.trim().split_once('=')
                    && k.trim() == "sentry_key"
                {
                    return Some(val.trim().to_string());
                }
            }
        }
    }
    if let Some(k) = headers.get("x-hearth-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim().to_string());
    }
    let q = uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "sentry_key")
        .map(|(_, v)| v.into_owned())
}

fn project_id(raw: &str) -> Result<u64, IngestError> {
    raw.parse()
        .map_err(|_| IngestError::Malformed(format!("{raw:?} is not a project id; check the DSN")))
}

/// A request body as sent (capped at `[ingest] max_compressed_size`), with its encoding.
struct RawBody {
    bytes: Vec<u8>,
    encoding: String,
}

/// Reads the body, capped, into one buffer (sized from Content-Length: no copies).
async fn read_raw(
    ingest: &Ingest,
    headers: &HeaderMap,
    body: Body,
) -> Result<RawBody, IngestError> {
    let cfg = &ingest.config().ingest;
    let max_c = cfg.max_compressed_size.as_usize();
    let too_large = || {
        IngestError::TooLarge(format!(
            "the request body is larger than {max_c} bytes ([ingest] max_compressed_size)"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_c as u64) {
        return Err(too_large());
    }
    let encoding = match headers.get(header::CONTENT_ENCODING) {
        Some(v) => v
            .to_str()
            .map_err(|_| IngestError::UnsupportedEncoding("Content-Encoding is not ASCII".into()))?
            .to_string(),
        None => String::new(),
    };
    let mut bytes = Vec::with_capacity(declared.map_or(8 * 1024, |l| l as usize));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| IngestError::Malformed(format!("cannot read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > max_c {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(RawBody { bytes, encoding })
}

fn decode_error(e: decode::DecodeError, setting: &str) -> IngestError {
    match e {
        decode::DecodeError::TooLarge(_) => IngestError::TooLarge(format!("{e} ({setting})")),
        decode::DecodeError::Unsupported(_) => IngestError::UnsupportedEncoding(e.to_string()),
        decode::DecodeError::Corrupt(..) => IngestError::Malformed(e.to_string()),
    }
}

/// Large bodies are decompressed off the async workers.
async fn off_workers<T: Send + 'static>(
    big: bool,
    f: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, IngestError> {
    if big {
        crate::store::run_blocking(f).await
    } else {
        f()
    }
}

fn is_big(raw: &RawBody) -> bool {
    raw.bytes.len() > 64 * 1024 || !raw.encoding.is_empty()
}

/// Decompressions running at once: each fills a buffer of up to `max_decompressed_size` and
/// takes a core, so many hostile requests at once wait here holding only their raw bodies.
static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Undoes Content-Encoding, producing at most `cap` bytes (`setting` names the cap).
async fn decode_body(
    raw: RawBody,
    cap: usize,
    setting: &'static str,
) -> Result<Vec<u8>, IngestError> {
    if raw.encoding.is_empty() || raw.encoding.eq_ignore_ascii_case("identity") {
        return decode::decode(raw.bytes, "", cap).map_err(|e| decode_error(e, setting));
    }
    let _slot = DECODES
        .acquire()
        .await
        .map_err(|_| IngestError::Unavailable)?;
    off_workers(is_big(&raw), move || {
        decode::decode(raw.bytes, &raw.encoding, cap).map_err(|e| decode_error(e, setting))
    })
    .await
}

/// Reads and decodes a body of at most `cap` bytes.
async fn read_body(
    ingest: &Ingest,
    headers: &HeaderMap,
    body: Body,
    cap: usize,
    setting: &'static str,
) -> Result<Vec<u8>, IngestError> {
    let raw = read_raw(ingest, headers, body).await?;
    decode_body(raw, cap, setting).await
}

fn reply(result: Result<Value, IngestError>, ingest: &Ingest) -> Response {
    match result {
        Ok(v) => cors(ApiJson(v).into_response()),
        Err(e) => {
            ingest.count_rejected();
            cors(ApiError::from(e).into_response())
        }
    }
}

/// The Sentry rate-limit header for the attachment category.
fn attachment_limit_header(retry_after: u64) -> String {
    format!("{retry_after}:attachment:project:attachment_limit")
}

async fn envelope(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = client_ip(&s, peer, &headers);
    let r = async {
        let pid = project_id(&pid)?;
        let cfg = &s.ingest.config().ingest;
        // Check the header/query key before reading the body, so unauthenticated bodies
        // cost nothing.
        let version = match key_from_request(&headers, &uri) {
            Some(k) => Some(s.ingest.authorize(&k, pid).await?),
            None => None,
        };
        let raw = read_raw(&s.ingest, &headers, body).await?;
        // The body is decompressed as it is read, item by item: never held whole.
        let big = is_big(&raw);
        let cap = cfg.max_decompressed_size.as_usize();
        let _slot = if raw.encoding.is_empty() {
            None
        } else {
            Some(
                DECODES
                    .acquire()
                    .await
                    .map_err(|_| IngestError::Unavailable)?,
            )
        };
        let authenticated = version.is_some();
        let (stream, header) = off_workers(big, move || {
            let reader = decode::reader(raw.bytes, &raw.encoding, cap)
                .map_err(|e| decode_error(e, "[ingest] max_decompressed_size"))?;
            let mut stream = super::envelope::Stream::new(reader);
            let header = stream.header(authenticated).map_err(|e| match e {
                super::envelope::StreamError::Envelope(e) => IngestError::Malformed(e.to_string()),
                super::envelope::StreamError::TooLarge(m) => {
                    IngestError::TooLarge(format!("{m} ([ingest] max_decompressed_size)"))
                }
                e => IngestError::Malformed(e.to_string()),
            })?;
            Ok((stream, header))
        })
        .await?;
        let version = match version {
            Some(v) => v,
            // The key is in the envelope header: only that line (at most `MAX_HEADER_LINE`
            // bytes) was decompressed and read before the request is authenticated.
            None => {
                let key =
                    Ingest::key_from_envelope_header(&header).ok_or(IngestError::MissingKey)?;
                s.ingest.authorize(&key, pid).await?
            }
        };
        let prepared = s
            .ingest
            .prepare_envelope(pid, version, header, stream, big, ip)
            .await?;
        drop(_slot);
        s.ingest.submit_envelope(prepared).await
    }
    .await;
    match r {
        Ok(accepted) => {
            let limited = accepted.attachments_limited;
            if accepted.nothing_stored
                && let Some(retry_after) = limited
            {
                s.ingest.count_rejected();
                let err = ApiError::new(
                    crate::http::error::Code::RateLimited,
                    format!(
                        "attachment limits reached ([ingest] max_attachments_per_event, \
                         max_attachment_bytes_per_event, max_attachment_bytes_per_project_per_day); \
                         retry after {retry_after} s"
                    ),
                )
                .with_header("retry-after", retry_after.to_string())
                .with_header("x-sentry-rate-limits", attachment_limit_header(retry_after));
                return cors(err.into_response());
            }
            let v = match accepted.id {
                Some(id) => json!({ "id": id }),
                None => json!({}),
            };
            let mut resp = cors(ApiJson(v).into_response());
            if let Some(retry_after) = limited
                && let Ok(h) = HeaderValue::from_str(&attachment_limit_header(retry_after))
            {
                resp.headers_mut().insert("x-sentry-rate-limits", h);
            }
            resp
        }
        Err(e) => reply(Err(e), &s.ingest),
    }
}

async fn store_event(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = client_ip(&s, peer, &headers);
    let r = async {
        let pid = project_id(&pid)?;
        let key = key_from_request(&headers, &uri).ok_or(IngestError::MissingKey)?;
        let version = s.ingest.authorize(&key, pid).await?;
        // One event: never more than `max_event_size` is decompressed.
        let cap = s.ingest.config().ingest.max_event_size.as_usize();
        let body = read_body(&s.ingest, &headers, body, cap, "[ingest] max_event_size").await?;
        let ev = s.ingest.prepare_event(pid, version, &body, None, ip)?;
        drop(body);
        let id = ev.event_id.clone();
        s.ingest
            .submit(vec![super::Work::Event(Box::new(ev))])
            .await?;
        Ok(json!({ "id": id }))
    }
    .await;
    reply(r, &s.ingest)
}

async fn capture_common(
    s: &AppState,
    pid: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    exception: bool,
    ip: Option<std::net::IpAddr>,
) -> Result<Value, IngestError> {
    let pid = project_id(pid)?;
    let key = key_from_request(headers, uri).ok_or(IngestError::MissingKey)?;
    let version = s.ingest.authorize(&key, pid).await?;
    // One event: never more than `max_event_size` is decompressed, so the JSON tree below is
    // a bounded multiple of that.
    let cap = s.ingest.config().ingest.max_event_size.as_usize();
    let body = read_body(&s.ingest, headers, body, cap, "[ingest] max_event_size").await?;
    let input: Value = serde_json::from_slice(&body)
        .map_err(|e| IngestError::InvalidJson(format!("the body is not valid JSON: {e}")))?;
    drop(body);
    let event = if exception {
        capture::exception_event(input)
    } else {
        capture::message_event(input)
    }
    .map_err(IngestError::InvalidJson)?;
    let raw = serde_json::to_vec(&event).map_err(|e| IngestError::InvalidJson(e.to_string()))?;
    drop(event);
    let ev = s.ingest.prepare_event(pid, version, &raw, None, ip)?;
    let id = ev.event_id.clone();
    s.ingest
        .submit(vec![super::Work::Event(Box::new(ev))])
        .await?;
    Ok(json!({ "id": id }))
}

async fn capture_exception(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = client_ip(&s, peer, &headers);
    let r = capture_common(&s, &pid, &uri, &headers, body, true, ip).await;
    reply(r, &s.ingest)
}

async fn capture_message(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = client_ip(&s, peer, &headers);
    let r = capture_common(&s, &pid, &uri, &headers, body, false, ip).await;
    reply(r, &s.ingest)
}

// ---- read routes ----------------------------------------------------------------------------

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
}

async fn release_health(
    _: Viewer,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
) -> Result<ApiJson<Value>, ApiError> {
    let rows =
        s.db.read(move |txn| {
            let t = txn.open_table(RELEASE_HEALTH)?;
            let mut out = Vec::new();
            for row in t.range((pid, "")..(pid + 1, ""))? {
                let (k, v) = row?;
                let h: ReleaseHealth = codec::decode(v.value())?;
                let bad = h.crashed + h.abnormal;
                let crash_free = if h.sessions > 0 {
                    Some(100.0 * (h.sessions.saturating_sub(bad)) as f64 / h.sessions as f64)
                } else {
                    None
                };
                // dash (issue 16): crash-free users (sessions that name their user).
                let (users, crashed_users) = super::release_users::counts(txn, pid, k.value().1)?;
                let crash_free_users = (users > 0)
                    .then(|| 100.0 * users.saturating_sub(crashed_users) as f64 / users as f64);
                out.push(json!({
                    "release": k.value().1, "sessions": h.sessions, "exited": h.exited,
                    "errored": h.errored, "crashed": h.crashed, "abnormal": h.abnormal,
                    "crash_free_percent": crash_free, "last_seen_ms": h.last_seen_ms,
                    "users": users, "crashed_users": crashed_users,
                    "crash_free_users_percent": crash_free_users,
                    "environments": h.environments,
                }));
            }
            Ok::<_, IngestError>(out)
        })
        .await?;
    Ok(ApiJson(json!({ "releases": rows })))
}

async fn monitors(
    _: Viewer,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
) -> Result<ApiJson<Value>, ApiError> {
    let rows = s
        .db
        .read(move |txn| {
            let t = txn.open_table(MONITORS)?;
            let cis = txn.open_table(CHECK_INS)?;
            let mut out = Vec::new();
            for row in t.range((pid, "")..(pid + 1, ""))? {
                let (_, v) = row?;
                let m: Monitor = codec::decode(v.value())?;
                let mut recent: Vec<CheckIn> = Vec::new();
                for r in cis.range((pid, m.slug.as_str(), "")..=(pid, m.slug.as_str(), "~"))? {
                    let (_, v) = r?;
                    recent.push(codec::decode(v.value())?);
                }
                recent.sort_by_key(|c| std::cmp::Reverse(c.updated_ms));
                recent.truncate(50);
                out.push(json!({
                    "slug": m.slug,
                    "config": m.config.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()),
                    "last_status": m.last_status, "last_check_in_ms": m.last_check_in_ms,
                    "created_ms": m.created_ms, "check_ins": recent,
                }));
            }
            Ok::<_, IngestError>(out)
        })
        .await?;
    Ok(ApiJson(json!({ "monitors": rows })))
}

async fn feedback(
    _: Viewer,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
    Query(p): Query<Page>,
) -> Result<ApiJson<Value>, ApiError> {
    let limit = p.limit.unwrap_or(50).clamp(1, 500);
    let rows =
        s.db.read(move |txn| {
            let t = txn.open_table(FEEDBACK)?;
            let mut out = Vec::new();
            for row in t.range((pid, 0)..=(pid, u64::MAX))?.rev().take(limit) {
                let (_, v) = row?;
                let f: Feedback = codec::decode(v.value())?;
                out.push(f);
            }
            Ok::<_, IngestError>(out)
        })
        .await?;
    Ok(ApiJson(json!({ "feedback": rows })))
}

async fn transactions(
    _: Viewer,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
    Query(p): Query<Page>,
) -> Result<ApiJson<Value>, ApiError> {
    let limit = p.limit.unwrap_or(50).clamp(1, 500);
    let rows =
        s.db.read(move |txn| {
            let t = txn.open_table(TRANSACTIONS)?;
            let total = t.range((pid, 0)..=(pid, u64::MAX))?.count();
            let mut out = Vec::new();
            for row in t.range((pid, 0)..=(pid, u64::MAX))?.rev().take(limit) {
                let (_, v) = row?;
                let tr: TransactionRow = codec::decode(v.value())?;
                out.push(json!({
                    "event_id": tr.event_id, "name": tr.name, "op": tr.op,
                    "duration_ms": tr.duration_ms, "span_count": tr.span_count,
                    "received_ms": tr.received_ms,
                }));
            }
            Ok::<_, IngestError>((total, out))
        })
        .await?;
    Ok(ApiJson(json!({ "total": rows.0, "transactions": rows.1 })))
}

async fn client_reports(
    _: Viewer,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
) -> Result<ApiJson<Value>, ApiError> {
    let rows =
        s.db.read(move |txn| {
            // 0.1.0 kept one total per (reason, category); since, they are kept by day.
            let mut totals: std::collections::BTreeMap<(String, String), u64> =
                std::collections::BTreeMap::new();
            let t = txn.open_table(CLIENT_REPORTS)?;
            for row in t.range((pid, "", "")..(pid + 1, "", ""))? {
                let (k, v) = row?;
                let (_, reason, category) = k.value();
                *totals.entry((reason.into(), category.into())).or_default() += v.value();
            }
            let t = txn.open_table(CLIENT_REPORTS_DAILY)?;
            for row in t.range((pid, i64::MIN, "", "")..(pid + 1, i64::MIN, "", ""))? {
                let (k, v) = row?;
                let (_, _, reason, category) = k.value();
                *totals.entry((reason.into(), category.into())).or_default() += v.value();
            }
            let out: Vec<Value> = totals
                .into_iter()
                .map(|((reason, category), quantity)| {
                    json!({"reason": reason, "category": category, "quantity": quantity})
                })
                .collect();
            Ok::<_, IngestError>(out)
        })
        .await?;
    Ok(ApiJson(json!({ "discarded": rows })))
}

async fn attachments(
    _: Viewer,
    State(s): State<AppState>,
    Path(event_id): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let eid = event_id.replace('-', "").to_ascii_lowercase();
    let rows =
        s.db.read(move |txn| {
            let t = txn.open_table(ATTACHMENTS)?;
            let mut out = Vec::new();
            for row in t.range((eid.as_str(), 0)..=(eid.as_str(), u64::MAX))? {
                let (k, v) = row?;
                let a = decode_attachment(v.value())?;
                let (filename, content_type, attachment_type, size, truncated) = a.meta();
                out.push(json!({
                    "n": k.value().1, "filename": filename, "content_type": content_type,
                    "attachment_type": attachment_type, "size": size, "truncated": truncated,
                }));
            }
            Ok::<_, IngestError>(out)
        })
        .await?;
    Ok(ApiJson(json!({ "attachments": rows })))
}

async fn attachment_download(
    _: Viewer,
    State(s): State<AppState>,
    Path((event_id, n)): Path<(String, u64)>,
) -> Result<Response, ApiError> {
    let eid = event_id.replace('-', "").to_ascii_lowercase();
    let a =
        s.db.read(move |txn| {
            let t = txn.open_table(ATTACHMENTS)?;
            let Some(row) = t.get((eid.as_str(), n))? else {
                return Ok::<_, IngestError>(None);
            };
            let a = decode_attachment(row.value())?;
            let name = a.filename().to_string();
            Ok(Some((name, a.into_data()?)))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let (filename, data) = a;
    // Always octet-stream with attachment disposition: user data is never rendered inline.
    let name: String = filename
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        data,
    )
        .into_response())
}
