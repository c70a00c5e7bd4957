//! Request bodies for `/api/openapi.json`, continued (issue 16): chat, uptime, mail, the bus and
//! the admin routes, and the bodies that are not JSON (Sentry envelopes, uploads).

use serde_json::{Value, json};

use super::openapi_bodies::{STR, desc, obj, strings, t};

const PRIORITIES: [&str; 4] = ["urgent", "high", "normal", "low"];

fn raw_body(types: &[(&str, &str)]) -> Value {
    let mut content = serde_json::Map::new();
    for (ty, d) in types {
        content.insert(
            ty.to_string(),
            json!({ "schema": { "type": "string", "format": "binary", "description": d } }),
        );
    }
    json!({ "required": true, "content": content })
}

/// `requestBody` of the routes whose body is not a JSON document.
pub fn raw(method: &str, path: &str) -> Option<Value> {
    let sentry = "a Sentry event; gzip, deflate, br or zstd with Content-Encoding";
    Some(match (method, path) {
        ("POST", "/api/{project_id}/envelope/") => raw_body(&[(
            "application/x-sentry-envelope",
            "a Sentry envelope: a JSON header line, then item header + payload pairs",
        )]),
        ("POST", "/api/{project_id}/store/") => raw_body(&[("application/json", sentry)]),
        ("POST", "/api/chat/session/{id}/upload") => raw_body(&[(
            "application/octet-stream",
            "the file's bytes; ?name=FILE&client_msg_id=ID; Content-Type is the file's type",
        )]),
        ("POST", "/api/0/organizations/{org}/chunk-upload/") => json!({
            "required": true,
            "content": { "multipart/form-data": { "schema": obj(&[], json!({
                "file": desc(STR, "one chunk (binary), repeated; named by its SHA-1"),
                "file_gzip": desc(STR, "one gzip-compressed chunk (binary), repeated"),
            })) } },
        }),
        _ => return None,
    })
}

/// Write routes whose JSON body may be left out.
pub fn optional(method: &str, path: &str) -> bool {
    matches!((method, path), ("POST", "/api/chat/agent/online"))
}

fn capture(exception: bool) -> Value {
    let mut props = json!({
        "message": t(STR),
        "level": { "enum": ["fatal", "error", "warning", "info", "debug"] },
        "user": desc("object", "{id, email, username, ip_address} or an email address string"),
        "url": t(STR), "environment": t(STR), "release": t(STR), "server_name": t(STR),
        "transaction": t(STR), "fingerprint": strings(),
        "tags": { "type": "object", "additionalProperties": { "type": "string" } },
        "extra": t("object"),
    });
    if exception {
        props["type"] = desc(STR, "the exception type, e.g. TypeError");
        props["handled"] = desc("boolean", "default true");
        props["stacktrace"] = desc(
            "string",
            "a JavaScript/Python stack trace as text, or an array of {filename, function, lineno, module, in_app}",
        );
    }
    obj(&[], props)
}

/// The live chat and helpdesk.
pub fn chat(method: &str, path: &str) -> Option<Value> {
    let assign = || {
        obj(
            &["user_id"],
            json!({ "user_id": desc("integer", "null unassigns") }),
        )
    };
    let site = || {
        obj(
            &[],
            json!({
                "name": t(STR), "require_identity": t("boolean"), "time_zone": desc(STR, "IANA, e.g. Europe/Berlin"),
                "hours": desc("object", "opening hours per weekday, e.g. {\"mon\": [\"09:00-17:00\"]}"),
            }),
        )
    };
    Some(match (method, path) {
        ("POST", "/api/chat/widget/session") => obj(
            &["site_key"],
            json!({
                "site_key": t(STR), "visitor_token": t(STR), "user_id": t(STR),
                "user_hash": desc(STR, "HMAC-SHA256 of user_id with the site's identity secret"),
                "name": t(STR), "email": t(STR), "page_url": t(STR),
            }),
        ),
        ("POST", "/api/chat/start") => obj(
            &[],
            json!({
                "customer_name": t(STR), "customer_email": t(STR), "initial_message": t(STR),
                "client_id": desc(STR, "a retried start with the same id returns the first conversation"),
            }),
        ),
        ("POST", "/api/chat/session/{id}/message") => obj(
            &[],
            json!({
                "body": t(STR), "message": desc(STR, "older name of body"),
                "client_msg_id": desc(STR, "makes a retried send idempotent"),
                "private": desc("boolean", "agents: an internal note"),
            }),
        ),
        ("POST", "/api/chat/session/{id}/seen") => obj(&["seq"], json!({ "seq": t("integer") })),
        ("POST", "/api/chat/session/{id}/csat") => obj(
            &["rating"],
            json!({ "rating": desc("integer", "1 to 5"), "comment": t(STR) }),
        ),
        ("POST", "/api/chat/widget/offline") => obj(
            &["email", "message"],
            json!({ "name": t(STR), "email": t(STR), "message": t(STR) }),
        ),
        ("POST", "/api/chat/conversations/{id}/status") => obj(
            &["status"],
            json!({ "status": { "enum": ["open", "in_progress", "resolved", "closed"] } }),
        ),
        ("POST", "/api/chat/conversations/{id}/assign")
        | ("POST", "/api/chat/tickets/{id}/assign") => assign(),
        ("POST", "/api/chat/conversations/{id}/priority") => {
            obj(&["priority"], json!({ "priority": { "enum": PRIORITIES } }))
        }
        ("POST", "/api/chat/canned-responses") => obj(
            &["shortcut", "body"],
            json!({ "shortcut": t(STR), "title": t(STR), "body": t(STR) }),
        ),
        ("POST", "/api/chat/agent/online") => obj(
            &[],
            json!({ "status": { "enum": ["online", "away"], "description": "default online" } }),
        ),
        ("POST", "/api/chat/tickets") => obj(
            &[],
            json!({
                "conversation_id": desc("integer", "make the ticket from this conversation"),
                "site_id": t("integer"), "subject": t(STR), "customer_email": t(STR),
                "customer_name": t(STR), "message": t(STR), "priority": { "enum": PRIORITIES },
            }),
        ),
        ("POST", "/api/chat/sites") | ("POST", "/api/chat/sites/{id}") => site(),
        ("POST", "/api/chat/suggestions/{id}/used") => obj(
            &["canned_id"],
            json!({ "canned_id": t("integer"), "edited": desc("boolean", "the agent changed it before sending") }),
        ),
        _ => return None,
    })
}

fn monitor() -> Value {
    obj(
        &["name"],
        json!({
            "name": t(STR), "slug": t(STR), "group": t(STR),
            "check": {
                "type": "object", "required": ["kind"],
                "description": "what to check; leave out for a heartbeat monitor",
                "properties": {
                    "kind": { "enum": ["http", "tcp", "tls", "dns"] },
                    "url": desc(STR, "http"), "method": desc(STR, "http, default GET"),
                    "headers": desc("array", "http: [[name, value], ...]"), "body": desc(STR, "http"),
                    "expected_status": desc("array", "http: [{from, to}], default 200-299"),
                    "host": desc(STR, "tcp, tls"), "port": desc("integer", "tcp, tls"),
                    "name": desc(STR, "dns: the name to resolve"), "record_type": desc(STR, "dns: A, AAAA, MX, ..."),
                    "expected": desc("array", "dns: the answers expected"),
                    "timeout": desc("integer", "milliseconds"),
                },
            },
            "heartbeat": desc("object", "{schedule: {kind: interval|cron|oncalendar, value, tz}, grace: \"1m\", max_runtime: \"1m\"}"),
            "interval": desc(STR, "30s, 5m; default 60s"),
            "conditions": { "type": "array", "items": obj(&["condition"], json!({
                "condition": desc(STR, "e.g. [STATUS] == 200"), "case_insensitive": t("boolean"),
            })) },
            "keyword": obj(&["text"], json!({
                "text": t(STR), "present": desc("boolean", "default true"), "case_insensitive": t("boolean"),
            })),
            "failure_threshold": t("integer"), "success_threshold": t("integer"),
            "reminder_every": desc("integer", "remind every N failed checks"),
            "parent": desc(STR, "slug of the monitor this one depends on"),
            "maintenance": { "type": "array", "items": desc("object", "a maintenance window") },
        }),
    )
}

/// Uptime monitors and status pages.
pub fn uptime(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("POST", "/api/monitors")
        | ("POST", "/api/monitors/test")
        | ("PUT", "/api/monitors/{id}") => monitor(),
        ("POST", "/api/monitors/{id}/snooze") => obj(
            &["minutes"],
            json!({ "minutes": desc("integer", "at most 30 days") }),
        ),
        ("POST", "/api/monitors/{id}/incidents/{start_ms}/updates") => obj(
            &["state", "message"],
            json!({
                "state": { "enum": ["investigating", "identified", "monitoring", "resolved"] },
                "message": desc(STR, "at most 5000 bytes"),
            }),
        ),
        ("PUT", "/api/status-pages/{group}") => obj(
            &["title"],
            json!({ "title": t(STR), "description": t(STR), "logo_url": desc(STR, "https image URL") }),
        ),
        _ => return None,
    })
}

fn attachments() -> Value {
    json!({ "type": "array", "items": obj(
        &["filename", "content_base64"],
        json!({ "filename": t(STR), "content_type": t(STR), "content_base64": t(STR) }),
    ) })
}

/// Outgoing mail and its templates.
pub fn mail(method: &str, path: &str) -> Option<Value> {
    let priority = json!({ "enum": ["high", "normal", "low"] });
    let category = json!({ "enum": ["monitoring", "admin", "internal", "development"] });
    let dedup = desc(STR, "a second message with the same key is not sent again");
    let template = || {
        obj(
            &["subject"],
            json!({
                "name": desc(STR, "POST: the new template's name; PUT: must match the path"),
                "description": t(STR), "subject": t(STR), "text": t(STR), "html": t(STR),
            }),
        )
    };
    Some(match (method, path) {
        ("POST", "/api/mail/test") => obj(&["to"], json!({ "to": t(STR) })),
        ("POST", "/api/mail/send") => obj(
            &["to", "subject"],
            json!({
                "to": strings(), "cc": strings(), "bcc": strings(), "subject": t(STR),
                "text": t(STR), "html": t(STR), "attachments": attachments(),
                "priority": priority, "category": category, "dedup_key": dedup,
            }),
        ),
        ("POST", "/api/mail/send-template") => obj(
            &["template", "to"],
            json!({
                "template": t(STR), "to": strings(), "cc": strings(), "bcc": strings(),
                "vars": { "type": "object" }, "attachments": attachments(),
                "priority": priority, "category": category, "dedup_key": dedup,
            }),
        ),
        ("POST", "/api/mail/bulk") => obj(
            &["recipients"],
            json!({
                "template": desc(STR, "a stored template; or give subject/text/html"),
                "subject": t(STR), "text": t(STR), "html": t(STR),
                "vars": desc("object", "shared by every recipient (a recipient's own vars win)"),
                "recipients": { "type": "array", "items": obj(&["to"], json!({
                    "to": t(STR), "vars": t("object"),
                })) },
                "attachments": attachments(), "priority": priority, "category": category,
            }),
        ),
        ("POST", "/api/mail/templates") | ("PUT", "/api/mail/templates/{name}") => template(),
        _ => return None,
    })
}

/// Ingest's capture API, the bus, grouping, source maps and backups.
pub fn ops(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("POST", "/api/{project_id}/capture/exception") => capture(true),
        ("POST", "/api/{project_id}/capture/message") => capture(false),
        ("POST", "/api/bus/consumers/{consumer}/replay") => obj(
            &[],
            json!({
                "from_seq": desc("integer", "replay from this sequence number"),
                "from_time_ms": desc("integer", "or from this time (ms since the epoch)"),
            }),
        ),
        ("PUT", "/api/projects/{pid}/grouping") => obj(
            &[],
            json!({
                "fingerprint_rules": desc(STR, "Sentry's fingerprint rules, one a line"),
                "stacktrace_rules": desc(STR, "Sentry's stack trace rules, one a line"),
            }),
        ),
        ("POST", "/api/0/organizations/{org}/artifactbundle/assemble/") => obj(
            &["checksum"],
            json!({
                "checksum": desc(STR, "SHA-1 of the whole bundle"), "chunks": strings(),
                "projects": strings(), "version": desc(STR, "the release"), "dist": t(STR),
            }),
        ),
        ("POST", "/api/admin/backup") => obj(
            &["path"],
            json!({ "path": desc(STR, "absolute path on the server; must not exist yet") }),
        ),
        _ => return None,
    })
}
