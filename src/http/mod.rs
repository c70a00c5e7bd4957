//! The HTTP surface: one router assembled from every part's routes, plus health, metrics,
//! the OpenAPI listing and the embedded dashboard.

pub mod admin;
pub mod assets;
pub mod auth;
pub mod client;
mod conn;
pub mod error;
pub mod live;
pub mod metrics;
pub mod openapi_bodies;
mod openapi_bodies_more;
pub mod public;
pub mod routes;
pub mod socket;
pub mod ws;

pub use client::client_ip;
pub use conn::serve_tcp;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
use crate::metrics as prom;
use auth::Viewer;
use error::{ApiError, ApiJson, Code};
use routes::{Access, RouteInfo, Routes};

/// Every route Hearth serves, by part.
pub fn all_routes() -> Routes {
    system_routes()
        .merge(crate::accounts::api::routes())
        .merge(crate::bus::api::routes())
        .merge(crate::ingest::api::routes())
        .merge(crate::issues::api::routes())
        .merge(crate::mail::api::routes())
        .merge(crate::alerts::api::routes())
        .merge(crate::chat::api::routes())
        // issue 19 (bandit)
        .merge(crate::chat::suggest::api::routes())
        .merge(crate::uptime::api::routes())
        .merge(crate::sourcemaps::api::routes())
        .merge(admin::routes())
}

fn system_routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/health/live",
            Access::Public,
            "The process is up",
            get(live),
        )
        .add(
            Method::GET,
            "/health/ready",
            Access::Public,
            "The database answers and every bus consumer runs",
            get(ready),
        )
        .add(
            Method::GET,
            "/metrics",
            Access::Viewer,
            "Prometheus metrics",
            get(metrics_text),
        )
        .add(
            Method::GET,
            "/api/openapi.json",
            Access::Viewer,
            "This API's routes as an OpenAPI document",
            get(openapi),
        )
        .add(
            Method::GET,
            "/",
            Access::Public,
            "The dashboard",
            get(assets::index).layer(CompressionLayer::new()),
        )
        .add(
            Method::GET,
            "/static/{*path}",
            Access::Public,
            "Dashboard assets",
            get(assets::static_file).layer(CompressionLayer::new()),
        )
        .add(
            Method::GET,
            "/api/live",
            Access::Viewer,
            "Live updates as Server-Sent Events (?subjects=issue.>,event.stored)",
            get(live::live),
        )
}

/// The finished router with its state and middleware, and the route table.
pub fn build_router(state: AppState) -> (Router, Vec<RouteInfo>) {
    let (router, table) = all_routes().into_parts();
    let timeout = state.config.server.request_timeout.get();
    let https = state.config.https();
    // Admin JSON bodies are small; routes that take more (ingest) set their own limit, which
    // wins because it is applied closer to the handler.
    let body_limit = state.config.server.max_json_body.as_usize();
    let router = router
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn(move |req, next| {
            security_headers(https, req, next)
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                Code::Internal,
                "internal error; the server log has the details",
            )
            .into_response()
        }))
        .with_state(state);
    (router, table)
}

async fn not_found() -> ApiError {
    ApiError::new(
        Code::NotFound,
        "no such route; GET /api/openapi.json lists them",
    )
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

async fn security_headers(https: bool, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.entry(HeaderName::from_static(k))
            .or_insert(HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", CSP);
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "same-origin");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    if https {
        set(h, "strict-transport-security", "max-age=31536000");
    }
    // API answers are private and some carry a secret shown once (a new token, DSN, webhook
    // secret, set-password link, session cookie): no cache, shared or the browser's, keeps one.
    if api {
        set(h, "cache-control", "no-store");
    }
    resp
}

async fn live() -> impl IntoResponse {
    ApiJson(json!({ "status": "ok" }))
}

async fn ready(State(s): State<AppState>) -> Response {
    let check = tokio::time::timeout(
        Duration::from_secs(5),
        s.db.read(|txn| crate::store::StoreResult::Ok(txn.open_table(crate::store::META).is_ok())),
    )
    .await;
    let down = s.bus.down_consumers();
    if s.db.space().is_full() && !s.shutdown.is_cancelled() {
        // Reads work, writes do not: degraded, and it recovers by itself once space is freed.
        let body = json!({
            "status": "degraded",
            "error": {
                "code": Code::Unavailable.as_str(),
                "message": format!(
                    "degraded: the data directory is full ({} bytes free, [storage] \
                     min_free_space is {}); writes and ingest are refused until space is freed",
                    s.db.space().free(),
                    s.config.storage.min_free_space
                ),
            },
        });
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, ApiJson(body)).into_response();
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::store::space::RETRY_AFTER_SECS),
        );
        return resp;
    }
    match check {
        // Names only: this answer is public, and why a consumer died is for the log.
        Ok(Ok(true)) if !s.shutdown.is_cancelled() && !down.is_empty() => ApiError::new(
            Code::Unavailable,
            format!(
                "bus consumer down, restarting: {}; the server log says why",
                down.join(", ")
            ),
        )
        .into_response(),
        Ok(Ok(true)) if !s.shutdown.is_cancelled() => {
            ApiJson(json!({ "status": "ready" })).into_response()
        }
        Ok(Ok(_)) => ApiError::new(Code::Unavailable, "shutting down").into_response(),
        Ok(Err(e)) => {
            ApiError::new(Code::Unavailable, format!("database check failed: {e}")).into_response()
        }
        Err(_) => ApiError::new(Code::Unavailable, "database check timed out").into_response(),
    }
}

async fn metrics_text(_: Viewer, State(s): State<AppState>) -> Response {
    let mut out = String::new();
    s.http_metrics.render(&mut out);
    if let Ok(stats) = s.bus.stats().await {
        stats.render_metrics(&mut out);
    }
    let db_bytes = std::fs::metadata(s.db.path()).map(|m| m.len()).unwrap_or(0);
    prom::gauge(
        &mut out,
        "hearth_db_size_bytes",
        "Size of hearth.redb.",
        db_bytes,
    );
    prom::gauge(
        &mut out,
        "hearth_db_used_bytes",
        "Bytes of hearth.redb its tables use, at the last walk (db stats or the disk budget); \
         the rest of the file is free pages.",
        s.db.used_bytes(),
    );
    let space = s.db.space();
    prom::gauge(
        &mut out,
        "hearth_disk_full",
        "Whether writes are refused because the data directory is full.",
        space.is_full() as u8,
    );
    prom::counter(
        &mut out,
        "hearth_disk_refused_writes_total",
        "Writes refused while the data directory was full.",
        space.refused(),
    );
    s.extra_metrics(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn openapi(_: Viewer, State(s): State<AppState>) -> ApiJson<serde_json::Value> {
    let mut paths = serde_json::Map::new();
    for r in s.routes.iter() {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        let security = if matches!(
            r.access,
            Access::Public | Access::DsnKey | Access::Widget | Access::Token
        ) {
            json!([])
        } else {
            json!([{ "session": [] }, { "bearer": [] }])
        };
        entry[r.method.as_str().to_ascii_lowercase()] = json!({
            "summary": r.summary,
            "x-hearth-access": r.access,
            "security": security,
        });
        // dash (issue 16): what the write routes take.
        if let Some(body) = openapi_bodies::request_body(r.method.as_str(), r.path) {
            entry[r.method.as_str().to_ascii_lowercase()]["requestBody"] = body;
        }
    }
    ApiJson(json!({
        "openapi": "3.1.0",
        "info": { "title": "Hearth API", "version": env!("CARGO_PKG_VERSION") },
        "components": { "securitySchemes": {
            "session": { "type": "apiKey", "in": "cookie", "name": "hearth_session" },
            "bearer": { "type": "http", "scheme": "bearer" },
        }},
        "paths": paths,
    }))
}
