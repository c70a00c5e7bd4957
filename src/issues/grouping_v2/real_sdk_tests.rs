use super::*;

/// The first event item of a captured request in `../shared/fixtures/sentry/`.
fn fixture_event(name: &str) -> Option<Value> {
    let shared = std::env::var_os("HEARTH_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let body = std::fs::read(shared.join("fixtures/sentry").join(name)).ok()?;
    body.split(|c| *c == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .find(|v| v.get("exception").is_some() || v.get("message").is_some())
}

/// Events from real SDKs (sentry-python 2.75, @sentry/node and @sentry/browser 11.12) are
/// grouped as Sentry groups them on version 2.
#[test]
fn real_sdk_events_group_as_in_sentry() {
    let Some(py) = fixture_event("py_zero_division.1.envelope") else {
        assert!(
            std::env::var_os("HEARTH_REQUIRE_ALL_TESTS").is_none(),
            "../shared/fixtures/sentry is missing"
        );
        eprintln!("SKIPPED: ../shared/fixtures/sentry is missing");
        return;
    };
    let rules = ProjectRules::default();
    // Python: module + function + context line per in-app frame.
    let a = analyse(&py, &rules);
    assert_eq!(a.components[0], "type:ZeroDivisionError");
    assert!(
        a.components
            .contains(&"frame:shop_billing:divide:return total / parts".to_string()),
        "{:?}",
        a.components
    );
    // Node: `Immediate.runQueuedProfileRequest` trimmed, the timers frame not in-app.
    let node = fixture_event("node_error.2.envelope").expect("node fixture");
    let a = analyse(&node, &rules);
    assert!(
        a.components.contains(
            &"frame:node_scenarios:runQueuedProfileRequest:handleProfileRequest(userId);"
                .to_string()
        ),
        "{:?}",
        a.components
    );
    assert!(!a.components.iter().any(|c| c.contains("timers")));
    // Browser: URL file names out, `HTMLButtonElement.onValidateClick` trimmed, the SDK's
    // own bundle frame left out by a built-in rule.
    let web = fixture_event("browser_captured.3.envelope").expect("browser fixture");
    let a = analyse(&web, &rules);
    assert_eq!(
        a.components,
        vec![
            "type:Error".to_string(),
            "frame::onValidateClick".into(),
            "frame::validateCheckoutForm".into()
        ],
        "{:#?}",
        a.parts
    );
    let bundle = a
        .parts
        .iter()
        .find(|p| p.label.contains("sentry-browser"))
        .expect("the SDK frame is listed");
    assert!(!bundle.contributes);
    assert!(
        bundle
            .hint
            .as_deref()
            .unwrap()
            .contains("sentry-browser*.js")
    );
    // A Python message without stack trace: the parameterised message.
    let msg = fixture_event("py_message.1.envelope").expect("message fixture");
    let a = analyse(&msg, &rules);
    assert_eq!(a.components.len(), 1);
    assert!(
        a.components[0].starts_with("message:"),
        "{:?}",
        a.components
    );
}
