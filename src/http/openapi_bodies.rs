//! Request bodies for `/api/openapi.json` (issue 16): the JSON each write route takes, as a
//! JSON Schema with the field names, types and required fields its handler accepts.
//! Bodies that are not JSON (envelopes, uploads) are documented by their media type; the routes
//! that take no body at all are the allow-list in `tests/it/router_walk.rs`, which fails when a
//! write route is in neither.

use serde_json::{Value, json};

pub(super) fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

pub(super) const STR: &str = "string";

pub(super) fn t(ty: &str) -> Value {
    json!({ "type": ty })
}

pub(super) fn desc(ty: &str, d: &str) -> Value {
    json!({ "type": ty, "description": d })
}

pub(super) fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

pub(super) fn ids() -> Value {
    json!({ "type": "array", "items": { "type": "integer" } })
}

fn rule() -> Value {
    obj(
        &["name", "when", "channels"],
        json!({
            "name": t(STR),
            "enabled": desc("boolean", "default true"),
            "when": {
                "type": "object",
                "required": ["type"],
                "description": "the trigger",
                "properties": {
                    "type": { "enum": ["issue_created", "issue_regressed", "frequency", "dlq_growth",
                        "monitor_down", "monitor_up", "ticket_created", "ticket_sla_breached", "disk_budget"] },
                    "count": desc("integer", "frequency: more than this many events"),
                    "window": { "enum": ["1m", "5m", "15m", "1h", "1d"] },
                    "monitor": desc(STR, "monitor_down/up: one monitor (default any)"),
                    "consumer": desc(STR, "dlq_growth: one consumer (default any)"),
                    "min_priority": { "enum": ["urgent", "high", "normal", "low"] },
                },
            },
            "filters": obj(&[], json!({
                "project_ids": ids(),
                "environments": strings(),
                "levels": strings(),
                "tags": { "type": "object", "additionalProperties": { "type": "string" } },
            })),
            "channels": ids(),
            "throttle_minutes": desc("integer", "null: [alerts] default_throttle; 0: no throttle"),
        }),
    )
}

fn channel() -> Value {
    obj(
        &["name", "type"],
        json!({
            "name": t(STR),
            "type": { "enum": ["email", "slack", "webhook"] },
            "to": { "type": "array", "items": { "type": "string", "format": "email" }, "description": "email" },
            "url": desc(STR, "slack, webhook"),
            "secret": desc(STR, "webhook: whsec_… (made when empty)"),
            "rotate_secret": desc("boolean", "PUT, webhook: make a new secret"),
        }),
    )
}

fn status_change(with_ids: bool) -> Value {
    let mut props = json!({
        "status": { "enum": ["unresolved", "resolved", "resolved_next_release", "muted"] },
        "mute_until_ms": desc("integer", "muted: until this time (ms since the epoch)"),
        "mute_for_events": desc("integer", "muted: for this many more events"),
    });
    let mut required = vec!["status"];
    if with_ids {
        props["ids"] = ids();
        required.push("ids");
    }
    obj(&required, props)
}

/// The schema of the JSON body `method path` takes, if it takes one.
pub fn schema(method: &str, path: &str) -> Option<Value> {
    core(method, path)
        .or_else(|| super::openapi_bodies_more::chat(method, path))
        .or_else(|| super::openapi_bodies_more::uptime(method, path))
        .or_else(|| super::openapi_bodies_more::mail(method, path))
        .or_else(|| super::openapi_bodies_more::ops(method, path))
}

fn core(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("POST", "/api/alerts/rules") | ("PUT", "/api/alerts/rules/{id}") => rule(),
        ("POST", "/api/alerts/channels") | ("PUT", "/api/alerts/channels/{id}") => channel(),
        ("POST", "/api/alerts/daily-report") => obj(
            &[],
            json!({ "to": strings(), "date": desc(STR, "YYYY-MM-DD") }),
        ),
        ("POST", "/api/issues/{id}/status") => status_change(false),
        ("POST", "/api/issues/bulk") => status_change(true),
        ("POST", "/api/issues/{id}/comments") => obj(&["text"], json!({ "text": t(STR) })),
        ("POST", "/api/issues/{id}/assign") => obj(
            &["user_id"],
            json!({ "user_id": desc("integer", "null unassigns") }),
        ),
        ("POST", "/api/projects") => obj(&["name"], json!({ "name": t(STR) })),
        ("POST", "/api/projects/{id}/keys") => obj(&[], json!({ "label": t(STR) })),
        ("POST", "/api/auth/login") => obj(
            &["email", "password"],
            json!({ "email": t(STR), "password": t(STR) }),
        ),
        ("POST", "/api/auth/setup") => obj(
            &["token", "email", "password"],
            json!({ "token": t(STR), "email": t(STR), "name": t(STR), "password": desc(STR, "at least 10 characters") }),
        ),
        ("POST", "/api/auth/password") => obj(
            &["token", "password"],
            json!({ "token": t(STR), "password": t(STR) }),
        ),
        ("POST", "/api/users") => obj(
            &["email", "role"],
            json!({
                "email": t(STR), "name": t(STR),
                "role": { "enum": ["viewer", "agent", "admin", "owner"] },
                "password": desc(STR, "optional: without it the answer has set_password_url"),
            }),
        ),
        ("PATCH", "/api/users/{id}") => obj(
            &[],
            json!({
                "role": { "enum": ["viewer", "agent", "admin", "owner"] },
                "name": t(STR), "disabled": t("boolean"), "password": t(STR),
            }),
        ),
        ("POST", "/api/tokens") => obj(
            &["name"],
            json!({ "name": desc(STR, "1 to 200 characters") }),
        ),
        _ => return None,
    })
}

/// `requestBody` for an OpenAPI operation: a JSON schema, or the media types of a body that is
/// not JSON.
pub fn request_body(method: &str, path: &str) -> Option<Value> {
    if let Some(b) = super::openapi_bodies_more::raw(method, path) {
        return Some(b);
    }
    let required = !super::openapi_bodies_more::optional(method, path);
    schema(method, path).map(
        |s| json!({ "required": required, "content": { "application/json": { "schema": s } } }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_routes_have_bodies_reads_do_not() {
        let b = request_body("POST", "/api/alerts/rules").unwrap();
        let s = &b["content"]["application/json"]["schema"];
        assert_eq!(s["required"], json!(["name", "when", "channels"]));
        assert!(s["properties"]["when"]["properties"]["type"]["enum"].is_array());
        assert!(request_body("GET", "/api/alerts/rules").is_none());
        assert!(request_body("PUT", "/api/alerts/channels/{id}").is_some());
    }
}
