//! Request bodies for `/api/openapi.json` (issue 16): the JSON each write route takes, as a
//! JSON Schema with the field names, types and required fields its handler accepts.
//! Routes not listed take no body or a non-JSON one (envelopes, uploads).

use serde_json::{Value, json};

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

const STR: &str = "string";

fn t(ty: &str) -> Value {
    json!({ "type": ty })
}

fn desc(ty: &str, d: &str) -> Value {
    json!({ "type": ty, "description": d })
}

fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

fn ids() -> Value {
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
        ("POST", "/api/mail/test") => obj(&["to"], json!({ "to": t(STR) })),
        ("POST", "/api/mail/send") => obj(
            &["to", "subject"],
            json!({
                "to": strings(), "cc": strings(), "bcc": strings(), "subject": t(STR),
                "text": t(STR), "html": t(STR),
                "priority": { "enum": ["high", "normal", "low"] }, "category": t(STR),
            }),
        ),
        ("POST", "/api/mail/send-template") => obj(
            &["template", "to"],
            json!({ "template": t(STR), "to": strings(), "vars": { "type": "object" } }),
        ),
        _ => return None,
    })
}

/// `requestBody` for an OpenAPI operation.
pub fn request_body(method: &str, path: &str) -> Option<Value> {
    schema(method, path)
        .map(|s| json!({ "required": true, "content": { "application/json": { "schema": s } } }))
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
