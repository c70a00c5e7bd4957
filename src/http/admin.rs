//! Operator routes that belong to no part: backups.

use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Owner;
use super::error::{ApiError, ApiJson, ApiResult, Code};
use super::routes::{Access, Routes};
use crate::app::AppState;

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::POST,
            "/api/admin/backup",
            Access::Owner,
            "Write a consistent copy of the database to a new file on the server",
            post(backup),
        )
        .add(
            Method::GET,
            "/api/admin/db/stats",
            Access::Owner,
            "Where the database's bytes go: per-table sizes, free space, events per project",
            get(db_stats),
        )
}

async fn db_stats(_: Owner, State(s): State<AppState>) -> ApiResult<ApiJson<Value>> {
    let stats =
        s.db.stats()
            .await
            .map_err(|e| ApiError::bad_request(format!("database stats failed: {e}")))?;
    Ok(ApiJson(json!(stats)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    /// Absolute path on the server; must not exist yet.
    path: std::path::PathBuf,
}

async fn backup(
    Owner(who): Owner,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<BackupBody>,
) -> ApiResult<ApiJson<Value>> {
    if !body.path.is_absolute() {
        return Err(ApiError::bad_request(
            "give the backup file as an absolute path on the server",
        ));
    }
    // Refuse to overwrite: a typo must not replace an older backup (or the live database).
    if body.path.exists() {
        return Err(ApiError::new(
            Code::Conflict,
            format!("{} exists; choose a new file name", body.path.display()),
        ));
    }
    let bytes =
        s.db.backup_to(body.path.clone())
            .await
            .map_err(|e| ApiError::bad_request(format!("backup failed: {e}")))?;
    tracing::info!(path = %body.path.display(), bytes, by = %who.email, "database backed up");
    Ok(ApiJson(json!({ "path": body.path, "bytes": bytes })))
}
