use super::*;

#[test]
fn the_literal_prefilter_never_rules_out_a_match() {
    let rules = parse_stacktrace_rules(
        "path:**/node_modules/** -app\nmodule:@babel/** -group\nfunction:run* -group\npackage:/usr/lib/** -app",
    )
    .unwrap();
    let f = |path: &'static str, module: &'static str, function: &'static str| FrameFacts {
        function: Some(function),
        module: Some(module),
        abs_path: Some(path),
        filename: None,
        package: Some(path),
        in_app: None,
        family: "javascript",
    };
    let hits = |fr: &FrameFacts| {
        rules
            .iter()
            .map(|r| r.matchers[0].matches_frame(fr))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        hits(&f("node_modules/x.js", "a", "b")),
        [true, false, false, false]
    );
    assert_eq!(
        hits(&f("/APP/Node_Modules/x.js", "a", "b")),
        [true, false, false, false]
    );
    assert_eq!(
        hits(&f("C:\\app\\node_modules\\x.js", "a", "b")),
        [true, false, false, false]
    );
    assert_eq!(
        hits(&f("/usr/lib/libc.so", "@babel/core", "runNow")),
        [false, true, true, true]
    );
    assert_eq!(
        hits(&f("/srv/app.js", "babel/core", "xrun")),
        [false, false, false, false]
    );
}

#[test]
fn globs() {
    assert!(glob(
        "ChunkLoadError*",
        "ChunkLoadError: Loading chunk 3 failed",
        false
    ));
    assert!(glob("**/node_modules/**", "/app/node_modules/x/y.js", true));
    assert!(glob(
        "**/node_modules/**",
        "C:\\app\\node_modules\\x.js",
        true
    ));
    assert!(!glob("vendor/*", "vendor/a/b.php", true));
    assert!(glob("vendor/**", "vendor/a/b.php", true));
    assert!(glob("io.sentry.*", "io.sentry.Hub", false));
    assert!(!glob("io.sentry.*", "com.io.sentry", false));
    assert!(glob(
        "@babel/**",
        "@babel/runtime/helpers/asyncToGenerator",
        false
    ));
    assert!(glob("*timeout*", "read timeout after 30s", false));
    assert!(!glob("Timeout", "timeout", false));
    assert!(glob_ci("*TIMEOUT*", "read timeout"));
}

#[test]
fn parses_sentrys_syntax_and_says_what_is_wrong() {
    let r = parse_fingerprint_rules(
        "# comment\nerror.type:ChunkLoadError -> chunkloaderror\n\
             message:\"*timeout*\" -> timeouts title=\"Timeouts ({{ transaction }})\"\n\
             stack.function:\"do work\" !tags.env:prod -> work {{ default }}  # trailing\n",
    )
    .unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[1].fingerprint, vec!["timeouts"]);
    assert_eq!(r[1].title.as_deref(), Some("Timeouts ({{ transaction }})"));
    assert_eq!(r[2].matchers[0].pattern, "do work");
    assert!(r[2].matchers[1].negated);
    assert_eq!(r[2].fingerprint, vec!["work", "{{default}}"]);
    assert!(parse_fingerprint_rules("type:X -> a color=red").is_err());
    let e = parse_fingerprint_rules("ok:1 -> x").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("unknown matcher"), "{e}");
    assert!(
        parse_fingerprint_rules("error.type:X")
            .unwrap_err()
            .message
            .contains("->")
    );
    assert!(parse_fingerprint_rules("error.type:X ->").is_err());
    assert!(parse_fingerprint_rules("message:\"x -> y").is_err());

    let s = parse_stacktrace_rules("stack.module:vendor/** -app\nfunction:panic ^-group -group\n")
        .unwrap();
    assert_eq!(
        s[0].actions,
        vec![Action {
            range: Range::Here,
            app: true,
            flag: false
        }]
    );
    assert_eq!(s[1].actions[0].range, Range::Up);
    assert!(
        parse_stacktrace_rules("stack.module:x")
            .unwrap_err()
            .message
            .contains("action")
    );
    assert!(parse_stacktrace_rules("error.type:x -app").is_err());
    assert!(parse_stacktrace_rules("-app").is_err());
    assert!(parse_stacktrace_rules("function:x category=y").is_err());
    assert!(parse_stacktrace_rules(&"function:x -app\n".repeat(MAX_RULES + 1)).is_err());
    builtin_fingerprint_rules();
    builtin_stacktrace_rules();
}
