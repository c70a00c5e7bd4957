use super::super::grouping::{group, group_with};
use super::super::rules::{parse_fingerprint_rules, parse_stacktrace_rules};
use super::*;
use serde_json::json;

fn rules_of(case: &Value) -> ProjectRules {
    let r = &case["rules"];
    ProjectRules {
        fingerprint: parse_fingerprint_rules(r["fingerprint"].as_str().unwrap_or(""))
            .expect("fingerprint rules"),
        stacktrace: parse_stacktrace_rules(r["stacktrace"].as_str().unwrap_or(""))
            .expect("stack-trace rules"),
    }
}

/// Every pair in `tests/fixtures/grouping/pairs.json` (what Sentry groups together or
/// apart, per rule and platform) groups the same way here on version 2.
#[test]
fn sentry_pairs_group_together_or_apart_as_sentry_does() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grouping/pairs.json");
    let cases: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&path).expect("pairs.json")).expect("json");
    assert!(cases.len() >= 50, "{} pairs", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let rules = rules_of(case);
        let (a, ea) = group_with(&case["a"], 2, &rules);
        let (b, eb) = group_with(&case["b"], 2, &rules);
        let same = case["same"].as_bool().expect("same");
        if (a.hash == b.hash) != same {
            failures.push(format!(
                "{} ({}): expected {}\n  a: {:?}\n  {:#?}\n  b: {:?}\n  {:#?}",
                case["name"],
                case["rule"],
                if same { "together" } else { "apart" },
                a.components,
                ea.map(|e| e.parts),
                b.components,
                eb.map(|e| e.parts),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn version_1_is_unchanged_by_version_2() {
    // The divergences version 2 fixes are still there on version 1: existing projects keep
    // their hashes.
    let threads = |m: &str| {
        json!({"platform": "python", "message": "same", "threads": {"values": [{"current": true,
            "stacktrace": {"frames": [{"module": m, "function": "f", "in_app": true}]}}]}})
    };
    assert_eq!(group(&threads("a"), 1).hash, group(&threads("b"), 1).hash);
    assert_ne!(group(&threads("a"), 2).hash, group(&threads("b"), 2).hash);
    assert_eq!(
        group(&json!({"message": "x"}), 1).components,
        vec!["message:x".to_string()]
    );
}

#[test]
fn explanation_says_what_contributed_and_why_not() {
    let e = json!({"platform": "python", "message": "hello",
        "exception": {"values": [{"type": "ValueError", "value": "bad 17",
          "stacktrace": {"frames": [
            {"module": "requests.api", "function": "get", "in_app": false, "context_line": "x"},
            {"module": "shop.views", "function": "index", "in_app": true, "context_line": "  go( 1 )"},
            {"module": "shop.views", "function": "index", "in_app": true, "context_line": "  go( 1 )"}]}}]}});
    let a = analyse(&e, &ProjectRules::default());
    assert_eq!(a.grouped_by, "exception: type and in-app frames");
    let by_kind = |k: &str| a.parts.iter().filter(|p| p.kind == k).collect::<Vec<_>>();
    assert!(by_kind("type")[0].contributes);
    let frames = by_kind("frame");
    assert!(!frames[0].contributes);
    assert_eq!(frames[0].hint.as_deref(), Some("not in-app"));
    assert!(frames[1].contributes);
    assert_eq!(frames[1].label, "shop.views · index · `go( 1 )`");
    assert!(frames[2].hint.as_deref().unwrap().contains("recursion"));
    let value = by_kind("value")[0];
    assert!(!value.contributes);
    assert_eq!(value.label, "bad 17");
    assert!(
        by_kind("message")[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("exception")
    );
    assert_eq!(
        a.components,
        vec![
            "type:ValueError".to_string(),
            "frame:shop.views:index:go( 1 )".into()
        ]
    );

    // A rule's fingerprint: everything else is marked as overridden; the title template
    // is expanded.
    let rules = ProjectRules {
        fingerprint: parse_fingerprint_rules(
            "error.type:ValueError -> value-errors {{ tags.tenant }} title=\"Bad value in {{ function }}\"",
        )
        .unwrap(),
        stacktrace: Vec::new(),
    };
    let mut e2 = e.clone();
    e2["tags"] = json!({"tenant": "acme"});
    let (g, a) = group_with(&e2, 2, &rules);
    let a = a.unwrap();
    assert_eq!(g.title, "Bad value in index");
    assert_eq!(
        g.components,
        vec!["fp:value-errors".to_string(), "fp:acme".into()]
    );
    let fp = a.fingerprint.unwrap();
    assert_eq!(fp.source, "rule");
    assert_eq!(fp.values, vec!["value-errors".to_string(), "acme".into()]);
    assert!(
        a.parts
            .iter()
            .filter(|p| p.kind != "fingerprint")
            .all(|p| !p.contributes)
    );
    assert!(
        a.grouped_by
            .starts_with("fingerprint rule `error.type:ValueError")
    );
}

#[test]
fn fingerprint_sources_take_precedence_as_in_sentry() {
    let chunk = json!({"platform": "javascript", "fingerprint": ["mine"],
        "exception": {"values": [{"type": "ChunkLoadError", "value": "Loading chunk 1 failed"}]}});
    // An SDK fingerprint beats a built-in rule...
    let a = analyse(&chunk, &ProjectRules::default());
    assert_eq!(a.components, vec!["fp:mine".to_string()]);
    assert_eq!(a.fingerprint.unwrap().source, "sdk");
    // ...and a project rule beats the SDK's.
    let rules = ProjectRules {
        fingerprint: parse_fingerprint_rules("error.type:ChunkLoadError -> chunks").unwrap(),
        stacktrace: Vec::new(),
    };
    assert_eq!(
        analyse(&chunk, &rules).components,
        vec!["fp:chunks".to_string()]
    );
    // `{{ default }}` alone is the default grouping.
    let d = json!({"message": "x", "fingerprint": ["{{ default }}"]});
    assert_eq!(
        analyse(&d, &ProjectRules::default()).components,
        vec!["message:x".to_string()]
    );
    // An unknown variable is named as such, not taken literally.
    let u = json!({"message": "x", "fingerprint": ["{{ nope }}"]});
    assert_eq!(
        analyse(&u, &ProjectRules::default()).components,
        vec!["fp:<unrecognized-variable-nope>".to_string()]
    );
    let missing =
        json!({"message": "x", "fingerprint": ["{{ tags.tenant }}", "{{ transaction }}"]});
    assert_eq!(
        analyse(&missing, &ProjectRules::default()).components,
        vec![
            "fp:<no-value-for-tag-tenant>".to_string(),
            "fp:<no-transaction>".into()
        ]
    );
}

#[test]
fn threads_choice_and_empty_events() {
    let t = |threads: Value| json!({"platform": "java", "threads": {"values": threads}});
    let st = |f: &str| json!({"frames": [{"module": "m", "function": f, "in_app": true}]});
    // Several threads, none crashed or current: not used, and the explanation says why.
    let a = analyse(
        &t(json!([{"stacktrace": st("a")}, {"stacktrace": st("b")}])),
        &ProjectRules::default(),
    );
    assert_eq!(a.components, vec!["empty".to_string()]);
    assert!(a.parts[0].hint.as_deref().unwrap().contains("2 threads"));
    // The crashed one wins over the current one.
    let b = analyse(
        &t(
            json!([{"current": true, "stacktrace": st("cur")}, {"crashed": true, "stacktrace": st("boom")}]),
        ),
        &ProjectRules::default(),
    );
    assert_eq!(b.components, vec!["frame:m:boom".to_string()]);
    assert_eq!(b.grouped_by, "thread stack trace: in-app frames");
    assert_eq!(group(&json!({}), 2).components, vec!["empty".to_string()]);
}

#[test]
fn jvm_names_normalised() {
    for (raw, want) in [
        (
            "com.a.B$HibernateProxy$fT2bNxN8",
            "com.a.B$HibernateProxy$<auto>",
        ),
        (
            "jdk.internal.reflect.GeneratedMethodAccessor77",
            "jdk.internal.reflect.GeneratedMethodAccessor<auto>",
        ),
        (
            "sun.reflect.GeneratedConstructorAccessor3",
            "sun.reflect.GeneratedConstructorAccessor<auto>",
        ),
        (
            "com.a.S$$EnhancerBySpringCGLIB$$3f2a9c1d",
            "com.a.S$$EnhancerBySpringCGLIB$$<auto>",
        ),
        (
            "com.a.S$$FastClassByCGLIB$$3f2a9c1d_2",
            "com.a.S$$FastClassByCGLIB$$<auto>",
        ),
        ("com.a.R_$$_javassist_seam_74", "com.a.R_$$_javassist<auto>"),
        ("com.a.R$ByteBuddy$AbC123", "com.a.R$ByteBuddy$<auto>"),
        (
            "com.a.J$$Lambda$412/0x0000000800c0b840",
            "com.a.J$$Lambda$<auto>",
        ),
        ("com.sun.proxy.$Proxy123", "com.sun.proxy.$Proxy<auto>"),
        ("shop.core$fn__12345", "shop.core$fn__<auto>"),
        ("com.a.Plain", "com.a.Plain"),
    ] {
        assert_eq!(normalize_java_module(raw).0, want, "{raw}");
    }
}
