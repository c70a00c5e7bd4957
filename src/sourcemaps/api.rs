//! Source map routes: the Sentry API subset `sentry-cli sourcemaps upload` calls (with a Hearth
//! API token as `SENTRY_AUTH_TOKEN`; any organization slug), and Hearth's own list/delete.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/0/` | who the token belongs to (sentry-cli's auth check) |
//! | `GET /api/0/organizations/{org}/chunk-upload/` | upload options |
//! | `POST /api/0/organizations/{org}/chunk-upload/` | chunks (multipart `file` / `file_gzip`, named by SHA-1) |
//! | `POST /api/0/organizations/{org}/artifactbundle/assemble/` | assemble a bundle; poll until `ok` |
//! | `GET /api/projects/{pid}/sourcemaps` | a project's bundles |
//! | `DELETE /api/projects/{pid}/sourcemaps/{id}` | delete a bundle |

use std::io::Read;

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, Method, header};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::SourceMapsError;
use crate::app::AppState;
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{ApiError, ApiJson, ApiResult, Code};
use crate::http::routes::{Access, Routes};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/api/0/",
            Access::Viewer,
            "Sentry API root for sentry-cli: the token's user",
            get(root),
        )
        .add(
            Method::GET,
            "/api/0/organizations/{org}/chunk-upload/",
            Access::Admin,
            "sentry-cli: chunk upload options (any organization slug)",
            get(chunk_options),
        )
        .add(
            Method::POST,
            "/api/0/organizations/{org}/chunk-upload/",
            Access::Admin,
            "sentry-cli: upload chunks (multipart, file or file_gzip, named by SHA-1; [sourcemaps] chunk_size)",
            post(upload_chunks).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .add(
            Method::POST,
            "/api/0/organizations/{org}/artifactbundle/assemble/",
            Access::Admin,
            "sentry-cli: assemble an artifact bundle {checksum, chunks, projects, version?, dist?}; poll until state is ok",
            post(assemble),
        )
        .add(
            Method::GET,
            "/api/projects/{pid}/sourcemaps",
            Access::Viewer,
            "A project's uploaded source map bundles (files, debug ids, release), newest first",
            get(list),
        )
        .add(
            Method::DELETE,
            "/api/projects/{pid}/sourcemaps/{id}",
            Access::Admin,
            "Delete a source map bundle",
            delete(remove),
        )
}

async fn root(Viewer(user): Viewer) -> ApiJson<Value> {
    ApiJson(json!({
        "version": "0",
        "auth": {"scopes": ["project:releases", "project:read", "project:write", "org:read"]},
        "user": {"id": user.user_id.to_string(), "email": user.email, "username": user.email},
    }))
}

async fn chunk_options(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(org): Path<String>,
) -> ApiJson<Value> {
    let url = format!(
        "{}/api/0/organizations/{}/chunk-upload/",
        state.config.server.base_url().trim_end_matches('/'),
        org
    );
    ApiJson(state.sourcemaps.chunk_options(url))
}

async fn upload_chunks(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(_org): Path<String>,
    headers: HeaderMap,
    mut form: Multipart,
) -> ApiResult<ApiJson<Value>> {
    let max_request = state.sourcemaps.max_request();
    let chunk_cap = state.config.sourcemaps.chunk_size.as_usize();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_request) {
        return Err(too_large(max_request));
    }
    let mut total = 0usize;
    let mut chunks = Vec::new();
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("the multipart body cannot be read: {e}")))?
    {
        let gzip = match field.name() {
            Some("file") => false,
            Some("file_gzip") => true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown multipart field {other:?}; send chunks as `file` or `file_gzip`"
                )));
            }
        };
        let name = field.file_name().unwrap_or("").to_string();
        let mut data = Vec::new();
        while let Some(bytes) = field
            .chunk()
            .await
            .map_err(|e| ApiError::bad_request(format!("the multipart body cannot be read: {e}")))?
        {
            total += bytes.len();
            if total > max_request {
                return Err(too_large(max_request));
            }
            if data.len() + bytes.len() > chunk_cap + 64 && !gzip {
                return Err(chunk_too_large(chunk_cap));
            }
            data.extend_from_slice(&bytes);
        }
        if gzip {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data.as_slice())
                .take(chunk_cap as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::bad_request(format!("a file_gzip chunk is not gzip: {e}"))
                })?;
            data = out;
        }
        if data.len() > chunk_cap {
            return Err(chunk_too_large(chunk_cap));
        }
        chunks.push((name, data));
    }
    let n = state.sourcemaps.put_chunks(chunks).await?;
    Ok(ApiJson(json!({ "stored": n })))
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        format!(
            "the request is larger than {max} bytes; send fewer chunks per request (GET chunk-upload/ tells the limits)"
        ),
    )
}

fn chunk_too_large(max: usize) -> ApiError {
    SourceMapsError::TooLarge(format!(
        "a chunk is larger than {max} bytes ([sourcemaps] chunk_size); split bundles into chunks of the size GET chunk-upload/ tells"
    ))
    .into()
}

#[derive(Deserialize)]
struct AssembleBody {
    checksum: String,
    #[serde(default)]
    chunks: Vec<String>,
    #[serde(default)]
    projects: Vec<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    dist: Option<String>,
}

async fn assemble(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(_org): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<ApiJson<Value>> {
    let body: AssembleBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Code::InvalidJson,
            format!("the body must be {{checksum, chunks, projects, version?, dist?}}: {e}"),
        )
    })?;
    if body.projects.is_empty() {
        return Err(ApiError::bad_request(
            "name the project: sentry-cli sourcemaps upload --project <id or name>",
        ));
    }
    let mut ids = Vec::new();
    for p in &body.projects {
        ids.push(resolve_project(&state, p).await?);
    }
    let out = state
        .sourcemaps
        .assemble(ids, body.checksum, body.chunks, body.version, body.dist)
        .await?;
    if let Some(d) = &out.detail {
        tracing::info!("source map bundle refused: {d}");
    }
    Ok(ApiJson(serde_json::to_value(out).expect("serializable")))
}

/// A project by id, name, or name as a slug (lowercase, `-` for spaces).
async fn resolve_project(state: &AppState, p: &str) -> Result<u64, ApiError> {
    let projects = state
        .accounts
        .list_projects()
        .await
        .map_err(ApiError::internal)?;
    let slug = |s: &str| s.trim().to_lowercase().replace([' ', '_'], "-");
    projects
        .iter()
        .find(|x| x.id.to_string() == p)
        .or_else(|| projects.iter().find(|x| x.name == p))
        .or_else(|| projects.iter().find(|x| slug(&x.name) == slug(p)))
        .map(|x| x.id)
        .ok_or_else(|| {
            ApiError::new(
                Code::NotFound,
                format!("project {p:?} not found; pass --project with a Hearth project id or name"),
            )
        })
}

async fn list(
    State(state): State<AppState>,
    Viewer(_): Viewer,
    Path(pid): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    project_exists(&state, pid).await?;
    let bundles = state.sourcemaps.list(pid).await?;
    Ok(ApiJson(json!({ "bundles": bundles })))
}

async fn remove(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path((pid, id)): Path<(u64, u64)>,
) -> ApiResult<ApiJson<Value>> {
    project_exists(&state, pid).await?;
    state.sourcemaps.delete(pid, id).await?;
    Ok(ApiJson(json!({ "deleted": id })))
}

async fn project_exists(state: &AppState, pid: u64) -> Result<(), ApiError> {
    match state.accounts.project(pid).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::not_found("project")),
        Err(e) => Err(ApiError::internal(e)),
    }
}
