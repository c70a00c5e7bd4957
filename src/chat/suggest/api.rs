//! Suggestion routes (issue 19).
//!
//! | route | who |
//! |---|---|
//! | `POST /api/chat/conversations/{id}/suggestions`, `POST /api/chat/suggestions/{id}/used` | agent or higher |
//! | `GET /api/chat/suggestions/stats` | admin or higher |

use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::http::auth::{Admin, Agent};
use crate::http::error::{ApiJson, ApiResult};
use crate::http::routes::{Access, Routes};

pub fn routes() -> Routes {
    Routes::new()
        .add(Method::POST, "/api/chat/conversations/{id}/suggestions", Access::Agent, "Top 3 canned replies for the reply box, each with its why; logs the decision → {decision_id, suggestions}", post(suggestions))
        .add(Method::POST, "/api/chat/suggestions/{id}/used", Access::Agent, "The agent sent a canned reply after decision {id}: {canned_id, edited}", post(used))
        .add(Method::GET, "/api/chat/suggestions/stats", Access::Admin, "Suggestion learning: acceptance, resolution with/without, IPS/SNIPS vs holdout (95% intervals)", get(stats))
}

async fn suggestions(
    State(s): State<AppState>,
    Agent(who): Agent,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let shown = s.chat.suggest().suggest(id, who.user_id).await?;
    Ok(ApiJson(json!(shown)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsedBody {
    canned_id: u64,
    #[serde(default)]
    edited: bool,
}

async fn used(
    State(s): State<AppState>,
    _: Agent,
    Path(id): Path<u64>,
    ApiJson(b): ApiJson<UsedBody>,
) -> ApiResult<ApiJson<Value>> {
    let d = s.chat.suggest().used(id, b.canned_id, b.edited).await?;
    Ok(ApiJson(json!({
        "decision_id": d.id,
        "conversation_id": d.conversation_id,
        "canned_id": b.canned_id,
        "rank": d.used.as_ref().and_then(|u| u.rank),
        "edited": d.used.as_ref().map(|u| u.edited),
    })))
}

async fn stats(State(s): State<AppState>, _: Admin) -> ApiResult<ApiJson<Value>> {
    let mut v = s.chat.suggest().stats().await?;
    v["model"] = json!(s.chat.suggest().model().await?);
    Ok(ApiJson(v))
}
