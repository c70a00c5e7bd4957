//! Accounts routes: projects and keys here; sign-in, setup, users and tokens in `users_api`.

use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{ApiJson, ApiResult};
use crate::http::routes::{Access, Routes};

pub fn routes() -> Routes {
    super::users_api::routes()
        .add(
            Method::GET,
            "/api/projects",
            Access::Viewer,
            "List projects",
            get(list_projects),
        )
        .add(
            Method::POST,
            "/api/projects",
            Access::Admin,
            "Create a project and its first DSN key",
            post(create_project),
        )
        .add(
            Method::GET,
            "/api/projects/{id}/keys",
            Access::Viewer,
            "List a project's DSN keys",
            get(list_keys),
        )
        .add(
            Method::POST,
            "/api/projects/{id}/keys",
            Access::Admin,
            "Add a DSN key",
            post(create_key),
        )
        .add(
            Method::POST,
            "/api/projects/{id}/keys/{key}/revoke",
            Access::Admin,
            "Revoke a DSN key",
            post(revoke_key),
        )
}

#[derive(Deserialize)]
struct NewProject {
    name: String,
}

async fn list_projects(_: Viewer, State(s): State<AppState>) -> ApiResult<ApiJson<Value>> {
    let projects = s.accounts.list_projects().await?;
    Ok(ApiJson(json!({ "projects": projects })))
}

async fn create_project(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<NewProject>,
) -> ApiResult<ApiJson<Value>> {
    let (project, key) = s.accounts.create_project(&body.name).await?;
    let dsn = key.dsn(&s.config.server.base_url());
    Ok(ApiJson(
        json!({ "project": project, "key": key, "dsn": dsn }),
    ))
}

async fn list_keys(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let base = s.config.server.base_url();
    let keys: Vec<Value> = s
        .accounts
        .list_keys(id)
        .await?
        .into_iter()
        .map(|k| json!({ "dsn": k.dsn(&base), "key": k }))
        .collect();
    Ok(ApiJson(json!({ "keys": keys })))
}

#[derive(Deserialize)]
struct NewKey {
    #[serde(default)]
    label: String,
}

async fn create_key(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<ApiJson<Value>> {
    let key = s.accounts.create_key(id, &body.label).await?;
    let dsn = key.dsn(&s.config.server.base_url());
    Ok(ApiJson(json!({ "key": key, "dsn": dsn })))
}

async fn revoke_key(
    _: Admin,
    State(s): State<AppState>,
    Path((id, key)): Path<(u64, String)>,
) -> ApiResult<ApiJson<Value>> {
    let key = s.accounts.revoke_key(id, &key).await?;
    Ok(ApiJson(json!({ "key": key })))
}
