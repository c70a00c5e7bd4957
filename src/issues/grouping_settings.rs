//! Per-project grouping settings: the project's fingerprint and stack-trace rules and, after an
//! upgrade of its grouping version, the previous version and the end of the transition during
//! which an event's hash on the previous version still finds its issue.
//!
//! The grouping version itself stays on the project (`accounts::Project::grouping_version`),
//! where ingest reads it with the project key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::IssuesError;
use super::grouping::{GROUPING_VERSION, ProjectRules};
use super::rules::{
    self, BUILTIN_FINGERPRINT_RULES, BUILTIN_STACKTRACE_RULES, parse_fingerprint_rules,
    parse_stacktrace_rules,
};
use crate::app::AppState;
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{ApiError, ApiJson, Code};
use crate::store::{Db, StoreResult, codec, now_ms};

/// project id → [`StoredSettings`] (codec).
pub const SETTINGS: TableDefinition<u64, &[u8]> = TableDefinition::new("issues_grouping_settings");

/// How long after an upgrade an event's previous-version hash still finds its issue.
pub const TRANSITION_MS: i64 = 30 * super::DAY_MS;

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(SETTINGS)?;
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredSettings {
    pub fingerprint_rules: String,
    pub stacktrace_rules: String,
    pub previous_version: Option<u32>,
    pub transition_until_ms: Option<i64>,
    pub updated_ms: i64,
    pub updated_by: Option<u64>,
}

/// A project's settings, parsed, as grouping uses them.
#[derive(Debug, Default)]
pub struct ProjectGrouping {
    pub rules: ProjectRules,
    /// (previous version, transition end ms).
    pub previous: Option<(u32, i64)>,
}

impl ProjectGrouping {
    fn from_stored(s: &StoredSettings) -> Self {
        // Saved rules were validated; a failure here would be a bug, so it only loses rules.
        let rules = ProjectRules {
            fingerprint: parse_fingerprint_rules(&s.fingerprint_rules).unwrap_or_default(),
            stacktrace: parse_stacktrace_rules(&s.stacktrace_rules).unwrap_or_default(),
        };
        ProjectGrouping {
            rules,
            previous: s.previous_version.zip(s.transition_until_ms),
        }
    }

    /// The previous version to also hash on, while its transition lasts.
    pub fn transition(&self, version: u32, now: i64) -> Option<u32> {
        self.previous
            .filter(|(v, until)| *v != version && now < *until)
            .map(|(v, _)| v)
    }
}

/// Parsed settings by project, read once and replaced on every change (all changes go
/// through this process).
#[derive(Default)]
pub struct Cache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    by_project: HashMap<u64, Arc<ProjectGrouping>>,
    /// Bumped by every change, so a read that started before it is not cached after it.
    generation: u64,
}

impl Cache {
    pub fn get(&self, db: &Db, project_id: u64) -> Arc<ProjectGrouping> {
        let generation = {
            let c = self.inner.lock().expect("grouping cache");
            if let Some(p) = c.by_project.get(&project_id) {
                return p.clone();
            }
            c.generation
        };
        let stored = read_blocking(db, project_id).unwrap_or_else(|e| {
            tracing::warn!("grouping settings of project {project_id} unreadable: {e}");
            None
        });
        let p = Arc::new(
            stored
                .as_ref()
                .map(ProjectGrouping::from_stored)
                .unwrap_or_default(),
        );
        let mut c = self.inner.lock().expect("grouping cache");
        if c.generation == generation {
            if c.by_project.len() > 100_000 {
                c.by_project.clear();
            }
            c.by_project.insert(project_id, p.clone());
        }
        p
    }

    /// Called after a change is committed.
    pub fn forget(&self, project_id: u64) {
        let mut c = self.inner.lock().expect("grouping cache");
        c.by_project.remove(&project_id);
        c.generation += 1;
    }
}

fn read_blocking(db: &Db, project_id: u64) -> Result<Option<StoredSettings>, IssuesError> {
    db.read_blocking(|txn| {
        let t = match txn.open_table(SETTINGS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(crate::store::StoreError::from(e).into()),
        };
        Ok(t.get(project_id)?
            .map(|v| codec::decode(v.value()))
            .transpose()?)
    })
}

// ---- API ------------------------------------------------------------------------------------

async fn project_version(s: &AppState, pid: u64) -> Result<u32, ApiError> {
    s.accounts
        .project(pid)
        .await
        .map_err(ApiError::internal)?
        .map(|p| p.grouping_version)
        .ok_or_else(|| ApiError::not_found("project"))
}

async fn stored(s: &AppState, pid: u64) -> Result<StoredSettings, ApiError> {
    let db = s.db.clone();
    Ok(tokio::task::spawn_blocking(move || read_blocking(&db, pid))
        .await
        .map_err(ApiError::internal)??
        .unwrap_or_default())
}

fn view(version: u32, st: &StoredSettings) -> Value {
    let now = now_ms();
    json!({
        "version": version,
        "latest_version": GROUPING_VERSION,
        "upgrade_available": version < GROUPING_VERSION,
        "previous_version": st.previous_version,
        "transition_until_ms": st.transition_until_ms,
        "in_transition": st.transition_until_ms.is_some_and(|t| now < t)
            && st.previous_version.is_some_and(|p| p != version),
        "fingerprint_rules": st.fingerprint_rules,
        "stacktrace_rules": st.stacktrace_rules,
        "builtin_fingerprint_rules": BUILTIN_FINGERPRINT_RULES,
        "builtin_stacktrace_rules": BUILTIN_STACKTRACE_RULES,
        "updated_ms": st.updated_ms,
        "updated_by": st.updated_by,
    })
}

pub async fn get_settings(
    _: Viewer,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
) -> Result<ApiJson<Value>, ApiError> {
    let version = project_version(&s, pid).await?;
    Ok(ApiJson(
        json!({"grouping": view(version, &stored(&s, pid).await?)}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    fingerprint_rules: Option<String>,
    stacktrace_rules: Option<String>,
}

fn rule_error(kind: &str, e: rules::RuleError) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} {e}. Fix that line and save again (Sentry's syntax; see the README's \
         grouping section)"
    ))
}

pub async fn put_settings(
    Admin(user): Admin,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
    ApiJson(body): ApiJson<RulesBody>,
) -> Result<ApiJson<Value>, ApiError> {
    let version = project_version(&s, pid).await?;
    if let Some(t) = &body.fingerprint_rules {
        parse_fingerprint_rules(t).map_err(|e| rule_error("fingerprint rules:", e))?;
    }
    if let Some(t) = &body.stacktrace_rules {
        parse_stacktrace_rules(t).map_err(|e| rule_error("stack-trace rules:", e))?;
    }
    let has_rules = |t: &Option<String>| t.as_deref().is_some_and(|t| !t.trim().is_empty());
    if version < 2 && (has_rules(&body.fingerprint_rules) || has_rules(&body.stacktrace_rules)) {
        return Err(ApiError::new(
            Code::Conflict,
            format!(
                "rules take effect from grouping version 2; this project is on version \
                 {version}. Upgrade it first (POST /api/projects/{pid}/grouping/upgrade)"
            ),
        ));
    }
    let st =
        s.db.write(move |txn| {
            let mut t = txn.open_table(SETTINGS)?;
            let mut st: StoredSettings = t
                .get(pid)?
                .map(|v| codec::decode(v.value()))
                .transpose()?
                .unwrap_or_default();
            if let Some(f) = body.fingerprint_rules {
                st.fingerprint_rules = f;
            }
            if let Some(r) = body.stacktrace_rules {
                st.stacktrace_rules = r;
            }
            st.updated_ms = now_ms();
            st.updated_by = Some(user.user_id);
            t.insert(pid, codec::encode(&st).as_slice())?;
            Ok::<_, IssuesError>(st)
        })
        .await?;
    s.issues.forget_grouping(pid);
    Ok(ApiJson(json!({"grouping": view(version, &st)})))
}

/// Moves the project to the latest grouping version; its previous version's hashes keep
/// finding their issues for [`TRANSITION_MS`].
pub async fn upgrade(
    Admin(user): Admin,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
) -> Result<ApiJson<Value>, ApiError> {
    let (version, st) =
        s.db.write(move |txn| {
            let mut projects = txn.open_table(crate::accounts::store::PROJECTS)?;
            let row = projects
                .get(pid)?
                .map(|v| v.value().to_vec())
                .ok_or(IssuesError::NotFound("project"))?;
            let mut project: crate::accounts::Project = codec::decode(&row)?;
            if project.grouping_version >= GROUPING_VERSION {
                return Err(IssuesError::Conflict(format!(
                    "the project is already on grouping version {}, the latest",
                    project.grouping_version
                )));
            }
            let previous = project.grouping_version;
            project.grouping_version = GROUPING_VERSION;
            projects.insert(pid, codec::encode(&project).as_slice())?;
            let mut t = txn.open_table(SETTINGS)?;
            let mut st: StoredSettings = t
                .get(pid)?
                .map(|v| codec::decode(v.value()))
                .transpose()?
                .unwrap_or_default();
            let now = now_ms();
            st.previous_version = Some(previous);
            st.transition_until_ms = Some(now + TRANSITION_MS);
            st.updated_ms = now;
            st.updated_by = Some(user.user_id);
            t.insert(pid, codec::encode(&st).as_slice())?;
            Ok((GROUPING_VERSION, st))
        })
        .await?;
    s.issues.forget_grouping(pid);
    tracing::info!(project = pid, version, "grouping upgraded");
    Ok(ApiJson(json!({"grouping": view(version, &st)})))
}
