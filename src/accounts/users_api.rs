//! Sign-in, first-start setup, users and API tokens.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{LinkKind, SESSION_COOKIE, UserPatch};
use super::{Role, User, session_cookie};
use crate::app::AppState;
use crate::http::assets;
use crate::http::auth::{Admin, Owner, Viewer, same_origin};
use crate::http::client::client_ip;
use crate::http::error::{ApiError, ApiJson, ApiResult};
use crate::http::routes::{Access, Routes};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/login",
            Access::Public,
            "The sign-in page",
            get(login_page),
        )
        .add(
            Method::GET,
            "/setup",
            Access::Public,
            "The first-start setup and set-password page",
            get(setup_page),
        )
        .add(
            Method::POST,
            "/api/auth/login",
            Access::Public,
            "Sign in with email and password; sets the session cookie",
            post(login),
        )
        .add(
            Method::POST,
            "/api/auth/logout",
            Access::Public,
            "Sign out: ends the session and clears the cookie",
            post(logout),
        )
        .add(
            Method::GET,
            "/api/auth/me",
            Access::Viewer,
            "The signed-in user",
            get(me),
        )
        .add(
            Method::GET,
            "/api/auth/setup",
            Access::Public,
            "Whether the owner account still has to be created (?token= describes a link)",
            get(setup_status),
        )
        .add(
            Method::POST,
            "/api/auth/setup",
            Access::Public,
            "Create the owner account with the one-time setup link; signs in",
            post(setup),
        )
        .add(
            Method::POST,
            "/api/auth/password",
            Access::Public,
            "Set a password with a one-time link; signs in",
            post(set_password),
        )
        .add(
            Method::GET,
            "/api/users",
            Access::Admin,
            "List users",
            get(list_users),
        )
        .add(
            Method::POST,
            "/api/users",
            Access::Owner,
            "Add a user (without a password, the answer has a one-time link to set one)",
            post(create_user),
        )
        .add(
            Method::PATCH,
            "/api/users/{id}",
            Access::Owner,
            "Change a user's role, name, password or disabled flag",
            patch(update_user),
        )
        .add(
            Method::DELETE,
            "/api/users/{id}",
            Access::Owner,
            "Delete a user with their sessions and tokens",
            delete(delete_user),
        )
        .add(
            Method::GET,
            "/api/tokens",
            Access::Viewer,
            "Your API tokens",
            get(list_tokens),
        )
        .add(
            Method::POST,
            "/api/tokens",
            Access::Viewer,
            "Create an API token (the secret is shown once)",
            post(create_token),
        )
        .add(
            Method::DELETE,
            "/api/tokens/{id}",
            Access::Viewer,
            "Revoke one of your API tokens (owners: anyone's)",
            delete(delete_token),
        )
}

/// A user as the API shows it: never the password hash.
pub fn user_view(u: &User) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "disabled": u.disabled,
        "created_ms": u.created_ms,
        "has_password": u.password_hash.is_some(),
    })
}

fn set_cookie(s: &AppState, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if s.config.https() { "; Secure" } else { "" };
    let c = format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&c).expect("cookie is ASCII")
}

/// A JSON answer that signs the user in.
fn signed_in(s: &AppState, user: &User, secret: &str) -> Response {
    let ttl = s.config.auth.session_ttl.get().as_secs();
    let mut resp = ApiJson(json!({ "user": user_view(user) })).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(s, secret, ttl));
    resp
}

async fn login_page(headers: HeaderMap) -> Response {
    assets::serve("login.html", &headers)
}

async fn setup_page(headers: HeaderMap) -> Response {
    assets::serve("setup.html", &headers)
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

/// A browser request that names its origin must come from Hearth's own pages; one that names
/// none (curl, scripts) is not a browser's and carries no victim's cookie.
fn refuse_foreign_page(s: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let names_origin =
        headers.contains_key("sec-fetch-site") || headers.contains_key(header::ORIGIN);
    if names_origin && !same_origin(headers, &s.config.server.base_url()) {
        return Err(super::cross_origin());
    }
    Ok(())
}

async fn login(
    State(s): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    // Another site's form must not sign the browser in to an account of the attacker's.
    refuse_foreign_page(&s, &headers)?;
    let peer = peer.map(|Extension(ConnectInfo(a))| a.ip());
    let ip = client_ip(peer, &headers, &s.config.server.trusted_proxies);
    let (user, secret) = s.accounts.login(&body.email, &body.password, ip).await?;
    Ok(signed_in(&s, &user, &secret))
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(secret) = session_cookie(&headers) {
        if !same_origin(&headers, &s.config.server.base_url()) {
            return Err(super::cross_origin());
        }
        s.accounts.logout(&secret).await?;
    }
    let mut resp = ApiJson(json!({ "signed_out": true })).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&s, "", 0));
    Ok(resp)
}

async fn me(Viewer(a): Viewer, State(s): State<AppState>) -> ApiResult<ApiJson<Value>> {
    let name = match s.accounts.user(a.user_id).await? {
        Some(u) => u.name,
        None => String::new(),
    };
    Ok(ApiJson(json!({ "user": {
        "id": a.user_id,
        "email": a.email,
        "name": name,
        "role": a.role,
        "via": a.via,
    }})))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn setup_status(
    State(s): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> ApiResult<ApiJson<Value>> {
    let needs_setup = s.accounts.user_count().await? == 0;
    let mut out = json!({ "needs_setup": needs_setup });
    if let Some(token) = q.token {
        out["link"] = match s.accounts.link_info(&token).await? {
            Some((LinkKind::Setup, _)) if needs_setup => json!({ "kind": "setup" }),
            Some((LinkKind::SetPassword { .. }, email)) => {
                json!({ "kind": "set_password", "email": email })
            }
            _ => Value::Null,
        };
    }
    Ok(ApiJson(out))
}

#[derive(Deserialize)]
struct SetupBody {
    token: String,
    email: String,
    #[serde(default)]
    name: String,
    password: String,
}

async fn setup(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SetupBody>,
) -> ApiResult<Response> {
    refuse_foreign_page(&s, &headers)?;
    let (user, secret) = s
        .accounts
        .complete_setup(&body.token, &body.email, &body.name, &body.password)
        .await?;
    tracing::info!(user = user.id, "setup done: owner account created");
    Ok(signed_in(&s, &user, &secret))
}

#[derive(Deserialize)]
struct PasswordBody {
    token: String,
    password: String,
}

async fn set_password(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<Response> {
    refuse_foreign_page(&s, &headers)?;
    let (user, secret) = s
        .accounts
        .use_password_token(&body.token, &body.password)
        .await?;
    Ok(signed_in(&s, &user, &secret))
}

async fn list_users(_: Admin, State(s): State<AppState>) -> ApiResult<ApiJson<Value>> {
    let users: Vec<Value> = s
        .accounts
        .list_users()
        .await?
        .iter()
        .map(user_view)
        .collect();
    Ok(ApiJson(json!({ "users": users })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    #[serde(default)]
    name: Option<String>,
    role: Role,
    #[serde(default)]
    password: Option<String>,
}

async fn create_user(
    _: Owner,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<ApiJson<Value>> {
    let name = body
        .name
        .unwrap_or_else(|| body.email.split('@').next().unwrap_or_default().to_string());
    let user = s
        .accounts
        .create_user(&body.email, &name, body.role, body.password.as_deref())
        .await?;
    let mut out = json!({ "user": user_view(&user) });
    if user.password_hash.is_none() {
        let token = s.accounts.create_password_token(user.id).await?;
        out["set_password_url"] = json!(s.accounts.link_url(&token));
    }
    Ok(ApiJson(out))
}

async fn update_user(
    Owner(a): Owner,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<ApiJson<Value>> {
    // Owners changing their own password stay signed in on the credential they used.
    let keep = (a.user_id == id).then_some(a.credential).flatten();
    let user = s.accounts.update_user(id, patch, keep).await?;
    Ok(ApiJson(json!({ "user": user_view(&user) })))
}

async fn delete_user(
    _: Owner,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let user = s.accounts.delete_user(id).await?;
    Ok(ApiJson(json!({ "deleted": user_view(&user) })))
}

async fn list_tokens(Viewer(a): Viewer, State(s): State<AppState>) -> ApiResult<ApiJson<Value>> {
    let tokens = s.accounts.list_tokens(a.user_id).await?;
    Ok(ApiJson(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
}

async fn create_token(
    Viewer(a): Viewer,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<NewToken>,
) -> ApiResult<ApiJson<Value>> {
    if body.name.trim().is_empty() || body.name.len() > 200 {
        return Err(ApiError::bad_request(
            "a token name must be 1 to 200 characters",
        ));
    }
    let (token, secret) = s.accounts.create_api_token(a.user_id, &body.name).await?;
    Ok(ApiJson(json!({
        "token": token,
        "secret": secret,
        "note": "copy the secret now; it is not shown again",
    })))
}

async fn delete_token(
    Viewer(a): Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let owner_of = (a.role != Role::Owner).then_some(a.user_id);
    let token = s.accounts.delete_token(id, owner_of).await?;
    Ok(ApiJson(json!({ "revoked": token })))
}
