use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;

fn http(status: u16, body: &str) -> CheckResult {
    let mut r = CheckResult::new(Timestamp::UNIX_EPOCH);
    r.connected = true;
    r.status = Some(status);
    r.body = body.as_bytes().to_vec();
    r.response_time = Some(Duration::from_millis(120));
    r.ip = Some("127.0.0.1".parse().unwrap());
    r
}

fn holds(cond: &str, r: &CheckResult) -> bool {
    Condition::parse(cond)
        .unwrap_or_else(|e| panic!("{cond}: {e}"))
        .evaluate(r)
        .success
}

#[test]
fn gatus_readme_examples_pass_and_fail_as_documented() {
    let ok = http(
        200,
        r#"{"user":{"name":"john"},"data":[{"id":1}],"age":1,"id":1,"name":"john.doe","users":[]}"#,
    );
    for c in [
        "[STATUS] == 200",
        "[STATUS] < 300",
        "[STATUS] <= 299",
        "[STATUS] == any(200, 429)",
        "[CONNECTED] == true",
        "[RESPONSE_TIME] < 500",
        "[IP] == 127.0.0.1",
        "[BODY].user.name == john",
        "[BODY].data[0].id == 1",
        "[BODY].age == [BODY].id",
        "len([BODY].data) < 5",
        "len([BODY].name) == 8",
        "has([BODY].errors) == false",
        "has([BODY].users) == true",
        "[BODY].name == pat(john*)",
        "[BODY].id == any(1, 2)",
        "[status] == 200",
    ] {
        assert!(holds(c, &ok), "{c} should hold");
    }
    let bad = http(404, r#"{"name":"bob","errors":[]}"#);
    for c in [
        "[STATUS] == 200",
        "[STATUS] < 300",
        "len([BODY].name) == 8",
        "has([BODY].errors) == false",
        "[BODY].name == pat(john*)",
        "[STATUS] == any(200, 429)",
    ] {
        assert!(!holds(c, &bad), "{c} should fail");
    }
    assert!(holds("[STATUS] > 400", &bad));
    assert!(holds("[BODY] == 1", &http(200, " 1\n")));
}

#[test]
fn certificate_expiration_compares_with_durations() {
    let mut r = http(200, "");
    r.checked_at = Timestamp::UNIX_EPOCH;
    r.cert_expires_at = Some(Timestamp::UNIX_EPOCH + SignedDuration::from_hours(24 * 5));
    assert!(holds("[CERTIFICATE_EXPIRATION] > 48h", &r));
    assert!(holds("[CERTIFICATE_EXPIRATION] < 7d", &r));
    assert!(!holds("[CERTIFICATE_EXPIRATION] > 240h", &r));
    let out = Condition::parse("[CERTIFICATE_EXPIRATION] > 240h")
        .unwrap()
        .evaluate(&r);
    assert_eq!(out.detail, "[CERTIFICATE_EXPIRATION] (432000000) > 240h");
    r.cert_expires_at = None;
    let out = Condition::parse("[CERTIFICATE_EXPIRATION] > 48h")
        .unwrap()
        .evaluate(&r);
    assert!(!out.success);
    assert_eq!(
        out.reason.as_deref(),
        Some("[CERTIFICATE_EXPIRATION]: no certificate")
    );
}

#[test]
fn dns_rcode_compares_by_name() {
    let mut r = CheckResult::new(Timestamp::UNIX_EPOCH);
    r.dns_rcode = Some("NXDOMAIN".into());
    assert!(holds("[DNS_RCODE] == NXDOMAIN", &r));
    assert!(!holds("[DNS_RCODE] == NOERROR", &r));
    assert!(holds("[DNS_RCODE] != NOERROR", &r));
}

#[test]
fn keyword_checks_are_case_sensitive_unless_flagged() {
    let r = http(200, "<html>Status: HEALTHY</html>");
    let sensitive = Condition::keyword("healthy", true, false).unwrap();
    assert_eq!(sensitive.source(), "[BODY] == pat(*healthy*)");
    assert!(!sensitive.evaluate(&r).success);
    let insensitive = Condition::keyword("healthy", true, true).unwrap();
    assert!(insensitive.evaluate(&r).success);
    // The word is matched literally, glob characters and all.
    let star = Condition::keyword("a*b", true, false).unwrap();
    assert!(star.evaluate(&http(200, "xa*bx")).success);
    assert!(!star.evaluate(&http(200, "xaZZbx")).success);
    // Absence.
    let absent = Condition::keyword("error", false, false).unwrap();
    assert!(absent.evaluate(&r).success);
    assert!(!absent.evaluate(&http(200, "an error occurred")).success);
    // Text equality follows the flag too.
    let eq = Condition::parse_with("[BODY].status == ok", true).unwrap();
    assert!(eq.evaluate(&http(200, r#"{"status":"OK"}"#)).success);
    assert!(!holds(
        "[BODY].status == ok",
        &http(200, r#"{"status":"OK"}"#)
    ));
}

#[test]
fn patterns_support_classes_escapes_and_slashes() {
    let r = |body: &str| http(200, body);
    assert!(holds("[BODY] == pat(v[0-9].*)", &r("v2.1")));
    assert!(!holds("[BODY] == pat(v[!0-9]*)", &r("v2.1")));
    assert!(holds("[BODY] == pat(a?c)", &r("abc")));
    assert!(!holds("[BODY] == pat(a?c)", &r("abbc")));
    assert!(holds("[BODY] == pat(*/health*)", &r("GET /healthz ok")));
    assert!(holds("[BODY] == pat(\\*)", &r("*")));
    assert!(!holds("[BODY] == pat(\\*)", &r("x")));
    assert!(holds("[BODY] == pat(*)", &r("")));
    // Backtracking over several stars.
    assert!(holds("[BODY] == pat(*a*b*c*)", &r("xxaxxbxxcxx")));
    assert!(!holds("[BODY] == pat(*a*b*c*)", &r("xxaxxcxxbxx")));
    // A pattern on the left works the same.
    assert!(holds("pat(2*) == [STATUS]", &r("")));
}

#[test]
fn a_missing_value_fails_with_the_reason() {
    let r = http(200, r#"{"data":{"status":"ok"}}"#);
    let out = Condition::parse("[BODY].data.state == ok")
        .unwrap()
        .evaluate(&r);
    assert!(!out.success);
    assert_eq!(
        out.reason.as_deref(),
        Some("[BODY].data.state: no value at [BODY].data.state")
    );
    // Even with != (a missing value is not "different").
    assert!(!holds("[BODY].data.state != ok", &r));
    let out = Condition::parse("[BODY].data == x")
        .unwrap()
        .evaluate(&http(200, "not json"));
    assert_eq!(
        out.reason.as_deref(),
        Some("[BODY].data: the body is not JSON")
    );
    // Ordering against text that is not a number.
    let out = Condition::parse("[BODY].data.status > 3")
        .unwrap()
        .evaluate(&r);
    assert!(!out.success);
    assert_eq!(out.reason.as_deref(), Some("'ok' is not a number"));
    // A failed request has no status.
    let failed = CheckResult::failed(Timestamp::UNIX_EPOCH, "connection refused");
    let out = Condition::parse("[STATUS] == 200")
        .unwrap()
        .evaluate(&failed);
    assert_eq!(
        out.reason.as_deref(),
        Some("[STATUS]: no HTTP status (connection refused)")
    );
}

#[test]
fn detail_shows_resolved_values() {
    let out = Condition::parse("[STATUS] == 200")
        .unwrap()
        .evaluate(&http(503, ""));
    assert_eq!(out.detail, "[STATUS] (503) == 200");
    let out = Condition::parse("len([BODY].items) > 0")
        .unwrap()
        .evaluate(&http(200, r#"{"items":[]}"#));
    assert!(!out.success);
    assert_eq!(out.detail, "len([BODY].items) (0) > 0");
}

#[test]
fn len_and_has_on_json_and_text() {
    let r = http(
        200,
        r#"{"items":[1,2,3],"obj":{"a":1,"b":2},"s":"","n":12345}"#,
    );
    assert!(holds("len([BODY].items) == 3", &r));
    assert!(holds("len([BODY].obj) == 2", &r));
    assert!(holds("len([BODY].n) == 5", &r));
    assert!(holds("has([BODY].s) == true", &r));
    assert!(holds("has([BODY].nope) == false", &r));
    assert!(holds("has([BODY]) == true", &r));
    assert!(holds("has([BODY]) == false", &http(200, "  ")));
    assert!(holds("len([BODY]) == 5", &http(200, "héllo")));
    assert!(holds("len([BODY]) == 2", &http(200, "[1, 2]")));
    assert!(holds("[BODY].items[2] == 3", &r));
    assert!(!holds("[BODY].items[3] == 3", &r));
    assert!(holds("[BODY].obj == {\"a\":1,\"b\":2}", &r));
}

#[test]
fn numbers_compare_numerically() {
    let r = http(200, r#"{"price":24.99,"count":"007"}"#);
    assert!(holds("[BODY].price == 24.99", &r));
    assert!(holds("[BODY].price > 24", &r));
    assert!(holds("[BODY].count == 7", &r));
    assert!(holds("[BODY] != hello", &r));
    assert!(holds("[BODY].price == [BODY].price", &r));
    assert!(holds("[RESPONSE_TIME] < 1s", &r));
}

#[test]
fn literals_may_contain_spaces() {
    assert!(holds(
        "[BODY].name == John Doe",
        &http(200, r#"{"name":"John Doe"}"#)
    ));
}

#[test]
fn errors_point_at_the_problem() {
    let cases: &[(&str, usize, &str)] = &[
        ("[STATSU] == 200", 0, "unknown placeholder [STATSU]"),
        ("[STATUS] = 200", 9, "expected an operator"),
        ("[STATUS] == ", 12, "expected a value after =="),
        ("[STATUS] < abc", 11, "'abc' is not a number"),
        ("[STATUS] == abc", 12, "expected a number"),
        ("[CONNECTED] == yes", 15, "expected true or false"),
        ("[DNS_RCODE] == NOERR", 15, "expected one of NOERROR"),
        ("[STATUS] > pat(2*)", 11, "pat() works only with == and !="),
        ("[BODY] == pat(*x", 16, "pat() is not closed"),
        ("[BODY].a[x] == 1", 9, "array index must be a number"),
        ("[BODY].a[*].b == 1", 8, "[*] is not supported"),
        ("[BODY]. == 1", 6, "empty key"),
        ("[STATUS].x == 1", 0, "only [BODY] takes a JSON path"),
        ("len([BODY].a == 1", 12, "expected ) to close"),
        ("len(abc) == 1", 4, "expected a placeholder"),
        ("", 0, "empty condition"),
        ("hello", 0, "expected <value> <operator> <value>"),
        ("[STATUS] == 200 x", 12, "expected a number"),
        ("[STATUS] == [BODY] x", 19, "unexpected text after [BODY]"),
        ("[BODY] == pat([ab)", 14, "[ is not closed"),
        ("[BODY] == pat([z-a])", 14, "range z-a is backwards"),
        ("[STATUS] === 200", 9, "unknown operator"),
        ("has([BODY].a) > 1", 0, "is not a number"),
        ("[BODY] == any(1, )", 14, "any() needs values"),
        ("pat(a) == any(b)", 10, "cannot be compared"),
    ];
    for (src, position, message) in cases {
        let e = Condition::parse(src).expect_err(src);
        assert!(e.message.contains(message), "{src}: {e}");
        assert_eq!(e.position, *position, "{src}: {e}");
    }
    let long = format!("[BODY] == {}", "x".repeat(MAX_CONDITION_LEN));
    assert!(Condition::parse(&long).is_err());
}

#[test]
fn serde_round_trip_reparses_and_refuses_bad_text() {
    let c = Condition::parse_with("[BODY] == pat(*ok*)", true).unwrap();
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(
        json,
        r#"{"condition":"[BODY] == pat(*ok*)","case_insensitive":true}"#
    );
    let back: Condition = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    let bad = serde_json::from_str::<Condition>(r#"{"condition":"[NOPE] == 1"}"#);
    assert!(bad.unwrap_err().to_string().contains("unknown placeholder"));
    let specs = vec![
        ConditionSpec {
            condition: "[STATUS] == 200".into(),
            case_insensitive: false,
        },
        ConditionSpec {
            condition: "[STATUS] <".into(),
            case_insensitive: false,
        },
    ];
    assert_eq!(parse_all(&specs).unwrap_err().0, 1);
}

#[test]
fn evaluate_all_parses_json_once_and_reports_each() {
    let r = http(200, r#"{"a":1,"b":2}"#);
    let conds: Vec<Condition> = ["[BODY].a == 1", "[BODY].b == 3", "[STATUS] == 200"]
        .iter()
        .map(|c| Condition::parse(c).unwrap())
        .collect();
    let outs = evaluate_all(&conds, &r);
    assert_eq!(
        outs.iter().map(|o| o.success).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert!(conds[0].uses_body() && !conds[2].uses_body());
}

#[test]
fn a_truncated_body_says_so() {
    let mut r = http(200, r#"{"a": [1, 2"#);
    r.body_truncated = true;
    let out = Condition::parse("[BODY].a == 1").unwrap().evaluate(&r);
    assert!(out.reason.unwrap().contains("cut at the size cap"));
}
