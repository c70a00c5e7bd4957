//! dash (issue 16): browser events without a user get one from the client's address, as
//! Sentry does, so an issue's "users" is not 0. The address is the one the server believes
//! (the TCP peer, or `X-Forwarded-For` from a trusted proxy: [`crate::http::client_ip`]).
//!
//! Sentry fills `user.ip_address` when the SDK asks for it with `"{{auto}}"`, and for
//! JavaScript events that name no user at all, unless the SDK turned that off
//! (`sdk.settings.infer_ip = "never"`).

use std::net::IpAddr;

use serde_json::{Map, Value};

const AUTO: &str = "{{auto}}";

/// Whether `event` (the parsed event, or the part of it grouping reads) should get the
/// client's address as `user.ip_address`.
pub fn wants_ip(event: &Value) -> bool {
    let infer = event
        .pointer("/sdk/settings/infer_ip")
        .and_then(Value::as_str);
    if infer == Some("never") {
        return false;
    }
    let user = event.get("user").and_then(Value::as_object);
    if let Some(u) = user
        && u.get("ip_address").and_then(Value::as_str) == Some(AUTO)
    {
        return true;
    }
    let names_someone = user.is_some_and(|u| {
        ["id", "email", "username", "ip_address"]
            .iter()
            .any(|k| u.get(*k).is_some_and(|v| !v.is_null() && v != ""))
    });
    if names_someone {
        return false;
    }
    infer == Some("auto") || event.get("platform").and_then(Value::as_str) == Some("javascript")
}

/// Sets `user.ip_address` (making `user` an object if it is not one).
pub fn set_ip(event: &mut Value, ip: IpAddr) {
    let Some(obj) = event.as_object_mut() else {
        return;
    };
    let user = obj
        .entry("user")
        .or_insert_with(|| Value::Object(Map::new()));
    if !user.is_object() {
        *user = Value::Object(Map::new());
    }
    user["ip_address"] = Value::String(ip.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn which_events_get_the_address() {
        assert!(wants_ip(&json!({"platform": "javascript"})));
        assert!(wants_ip(&json!({"platform": "javascript", "user": {}})));
        assert!(wants_ip(
            &json!({"platform": "python", "user": {"ip_address": "{{auto}}"}})
        ));
        assert!(wants_ip(
            &json!({"platform": "python", "sdk": {"settings": {"infer_ip": "auto"}}})
        ));
        assert!(!wants_ip(&json!({"platform": "python"})));
        assert!(!wants_ip(
            &json!({"platform": "javascript", "user": {"id": "7"}})
        ));
        assert!(!wants_ip(
            &json!({"platform": "javascript", "sdk": {"settings": {"infer_ip": "never"}}})
        ));
        let mut e =
            json!({"platform": "javascript", "user": {"ip_address": "{{auto}}", "segment": "a"}});
        set_ip(&mut e, "203.0.113.7".parse().unwrap());
        assert_eq!(
            e["user"],
            json!({"ip_address": "203.0.113.7", "segment": "a"})
        );
        let mut e = json!({"user": "nobody"});
        set_ip(&mut e, "::1".parse().unwrap());
        assert_eq!(e["user"], json!({"ip_address": "::1"}));
    }
}
