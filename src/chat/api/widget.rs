//! The widget's own routes: its scripts, the visitor session and the widget config.

use super::*;

pub(super) async fn widget_js(headers: HeaderMap) -> Response {
    widget_asset("widget.js", &headers)
}

pub(super) async fn widget_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    if file == "widget.js" || file.contains('/') || file.contains("..") {
        return ApiError::not_found("widget file").into_response();
    }
    widget_asset(&file, &headers)
}

pub(super) fn widget_asset(file: &str, headers: &HeaderMap) -> Response {
    let mut resp = crate::http::assets::serve(&format!("widget/{file}"), headers);
    // Loaded as a cross-origin script (and module) by other sites' pages.
    resp.headers_mut().insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionBody {
    site_key: String,
    #[serde(default)]
    visitor_token: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    user_hash: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    page_url: Option<String>,
}

pub(super) async fn widget_session(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<SessionBody>,
) -> ApiResult<ApiJson<Value>> {
    let hello = VisitorHello {
        site_key: b.site_key,
        visitor_token: b.visitor_token,
        user_id: b.user_id,
        user_hash: b.user_hash,
        name: b.name,
        email: b.email,
        page_url: b.page_url,
        user_agent: header_str(&headers, "user-agent"),
    };
    let (site, visitor, token) = s.chat.visitor_session(hello, Some(addr.ip())).await?;
    let (state, next_open) = s.chat.widget_state(&site);
    let agents: Vec<Value> = s
        .chat
        .online_agents()
        .iter()
        .map(|a| json!({"id": a.user_id, "name": a.name}))
        .collect();
    Ok(ApiJson(json!({
        "visitor_token": token,
        "visitor": visitor_view(&visitor),
        "site": {"name": site.name, "time_zone": site.time_zone},
        "state": state,
        "next_open_ms": next_open,
        "agents": agents,
        "websocket_url": format!("{}/api/chat/ws", ws_base(&s.config.server.base_url())),
        "ping_ms": s.chat.config().ping_interval.get().as_millis() as u64,
    })))
}

#[derive(Deserialize)]
pub(super) struct ConfigQuery {
    site_key: String,
}

pub(super) async fn widget_config(
    State(s): State<AppState>,
    Query(q): Query<ConfigQuery>,
) -> ApiResult<ApiJson<Value>> {
    let site = s
        .chat
        .site_by_key(&q.site_key)
        .await?
        .ok_or_else(|| ApiError::from(ChatError::Auth(crate::chat::unknown_site_key())))?;
    let (state, next_open) = s.chat.widget_state(&site);
    Ok(ApiJson(json!({
        "site": {"name": site.name, "time_zone": site.time_zone},
        "state": state,
        "next_open_ms": next_open,
        "require_identity": site.require_identity,
    })))
}
