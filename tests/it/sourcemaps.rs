//! Source maps (issue 20) against the real `hearth` binary: the real `sentry-cli` uploads what
//! the real `esbuild` built from a small app using the real `@sentry/browser`, Chromium throws
//! in it, and the stored event reads in original terms. Then the refusals: malformed maps,
//! another project's map, an unknown debug id, an oversized chunk.
//!
//! The JavaScript tools come from `tests/js` (`npm ci --prefix tests/js`, which `.ci/run` does);
//! without them the browser test skips, which CI turns into a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::browser::Browser;
use crate::common::{free_port, skip, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

fn tool(name: &str) -> Option<PathBuf> {
    let p = js_dir().join("node_modules/.bin").join(name);
    p.exists().then_some(p)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Builds `entry` (in tests/js/app) minified with a source map into `out`, injects debug ids
/// and uploads the result with sentry-cli; returns the built script's file name.
fn build_and_upload(h: &Hearth, token: &str, project: &str, entry: &str, out: &Path) -> String {
    let esbuild = tool("esbuild").unwrap();
    let cli = tool("sentry-cli").unwrap();
    run(Command::new(&esbuild)
        .current_dir(js_dir())
        .arg(format!("app/{entry}"))
        .args([
            "--bundle",
            "--minify",
            "--sourcemap",
            "--entry-names=[name]-[hash]",
        ])
        .arg(format!("--outdir={}", out.display())));
    run(Command::new(&cli)
        .args(["sourcemaps", "inject"])
        .arg(out)
        .env("SENTRY_AUTH_TOKEN", token));
    let log = run(Command::new(&cli)
        .args(["--url", &h.base, "sourcemaps", "upload", "--org", "any-org"])
        .args(["--project", project])
        .arg(out)
        .env("SENTRY_AUTH_TOKEN", token)
        .env_remove("SENTRY_ORG")
        .env_remove("SENTRY_PROJECT"));
    assert!(log.contains("artifact bundle"), "upload log:\n{log}");
    std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".js"))
        .expect("a built script")
}

/// Serves `dir` over HTTP on localhost (the built app and its page).
async fn serve_dir(dir: PathBuf) -> (String, tokio::task::JoinHandle<()>) {
    let port = free_port();
    let app = axum::Router::new().route(
        "/{file}",
        axum::routing::get(
            move |axum::extract::Path(file): axum::extract::Path<String>| {
                let dir = dir.clone();
                async move {
                    let safe = !file.contains("..") && !file.contains('/');
                    match std::fs::read(dir.join(&file)) {
                        Ok(bytes) if safe => {
                            let ct = if file.ends_with(".html") {
                                "text/html; charset=utf-8"
                            } else if file.ends_with(".js") {
                                "text/javascript"
                            } else {
                                "application/json"
                            };
                            ([(axum::http::header::CONTENT_TYPE, ct)], bytes).into_response()
                        }
                        _ => axum::http::StatusCode::NOT_FOUND.into_response(),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}"), task)
}

use axum::response::IntoResponse;

async fn get_json(h: &Hearth, token: &str, path: &str) -> Value {
    let r = h.get(token, path).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

fn in_app_frames(event: &Value) -> Vec<Value> {
    event["exception"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["stacktrace"]["frames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|f| {
            f["filename"]
                .as_str()
                .is_some_and(|n| n.ends_with("app/cart.js"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_cli_uploads_and_a_browser_error_reads_in_original_source_in_one_issue() {
    crate::common::install_crypto();
    if tool("sentry-cli").is_none() || tool("esbuild").is_none() {
        skip("tests/js/node_modules is missing; run `npm ci --prefix tests/js`");
        return;
    }
    let Some(b) = Browser::start().await else {
        return;
    };
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "Web Shop").await;
    let work = tempfile::tempdir().unwrap();

    let mut minified_names = Vec::new();
    for (n, entry) in [(1, "main.js"), (2, "main2.js")] {
        let out = work.path().join(format!("dist{n}"));
        // The project by name as a slug; the organization is any value.
        let script = build_and_upload(&h, &owner.token, "web-shop", entry, &out);
        std::fs::write(
            out.join("index.html"),
            format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>Shop</title></head><body>\
                 <button id=\"buy\">Buy</button>\
                 <script>window.HEARTH_TEST = {{dsn: {dsn:?}, release: \"shop@{n}\"}};</script>\
                 <script src=\"/{script}\"></script></body></html>"
            ),
        )
        .unwrap();
        let (site, server) = serve_dir(out.clone()).await;
        b.c.goto(&format!("{site}/index.html")).await.unwrap();
        wait_for("the app to start", WAIT, || async {
            let v =
                b.c.execute("return window.HEARTH_READY === true", vec![])
                    .await
                    .ok()?;
            (v == json!(true)).then_some(())
        })
        .await;
        b.c.find(Locator::Css("#buy"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The event arrives; with the second build it joins the first build's issue.
        let list = wait_for("the browser's error to be stored", WAIT, || async {
            let v = get_json(&h, &owner.token, &format!("/api/projects/{pid}/issues")).await;
            let total: u64 = v["issues"]
                .as_array()?
                .iter()
                .filter_map(|i| i["count"].as_u64())
                .sum();
            (total >= n).then_some(v)
        })
        .await;
        server.abort();
        let issues = list["issues"].as_array().unwrap();
        assert_eq!(
            issues.len(),
            1,
            "two builds with different minified names group into one issue: {list}"
        );
        let issue = issues[0]["id"].as_u64().unwrap();
        let latest = get_json(
            &h,
            &owner.token,
            &format!("/api/issues/{issue}/events/latest"),
        )
        .await;
        let event = &latest["event"];
        assert_eq!(event["release"], format!("shop@{n}"));
        let frames = in_app_frames(event);
        let top = frames
            .last()
            .unwrap_or_else(|| panic!("no frame in app/cart.js: {event}"));
        assert_eq!(top["function"], "computeTotal", "{top}");
        assert_eq!(top["lineno"], 8, "{top}");
        assert_eq!(
            top["context_line"]
                .as_str()
                .unwrap_or_else(|| panic!("{top}"))
                .trim(),
            "throw new Error(\"cart total is not a number\");"
        );
        assert_eq!(top["pre_context"].as_array().unwrap().len(), 5);
        assert_eq!(top["data"]["symbolicated"], true);
        assert!(
            frames.iter().any(|f| f["function"] == "checkout"),
            "the caller is mapped too: {frames:?}"
        );
        // The minified frames are kept beside the mapped ones.
        let raw = &event["exception"]["values"][0]["raw_stacktrace"]["frames"];
        let raw_top = raw.as_array().unwrap().last().unwrap();
        assert!(
            raw_top["filename"].as_str().unwrap().ends_with(&script),
            "{raw_top}"
        );
        assert_ne!(
            raw_top["function"], "computeTotal",
            "the minified name: {raw_top}"
        );
        minified_names.push((script, raw_top["function"].clone()));
        // The culprit names the original function and file.
        assert!(
            issues[0]["culprit"]
                .as_str()
                .unwrap()
                .contains("computeTotal"),
            "{}",
            issues[0]
        );
    }
    assert_ne!(
        minified_names[0].0, minified_names[1].0,
        "two builds, two file names"
    );
    assert_ne!(
        minified_names[0].1, minified_names[1].1,
        "two builds, two minified names"
    );

    // The event page marks mapped frames and shows the minified frame under each; the
    // project's source maps screen lists both bundles.
    let issue = get_json(&h, &owner.token, &format!("/api/projects/{pid}/issues")).await["issues"]
        [0]["id"]
        .as_u64()
        .unwrap();
    b.c.goto(&h.url("/#/login")).await.unwrap();
    for (css, text) in [
        ("#login-email", &owner.email),
        ("#login-password", &owner.password),
    ] {
        wait_for("the login form", WAIT, || async {
            b.c.find(Locator::Css(css)).await.ok()
        })
        .await
        .send_keys(text)
        .await
        .unwrap();
    }
    b.c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the signed-in top bar", WAIT, || async {
        let v =
            b.c.execute("return !document.getElementById('topbar').hidden", vec![])
                .await
                .ok()?;
        (v == json!(true)).then_some(())
    })
    .await;
    b.c.goto(&h.url(&format!("/#/issues/{issue}")))
        .await
        .unwrap();
    let minified_fn = minified_names[1].1.as_str().unwrap().to_string();
    let shown = wait_for("mapped frames on the event page", WAIT, || async {
        let v = b
            .c
            .execute(
                "const m = document.querySelectorAll('#exceptions .badge.mapped').length;\
                 const f = [...document.querySelectorAll('#exceptions .minified-frame')].map(e => e.textContent);\
                 return m > 0 ? {m, f} : null;",
                vec![],
            )
            .await
            .ok()?;
        (!v.is_null()).then_some(v)
    })
    .await;
    assert!(
        shown["f"].as_array().unwrap().iter().any(|t| t
            .as_str()
            .unwrap()
            .contains(&format!("minified: {minified_fn} at "))),
        "{shown}"
    );
    b.c.goto(&h.url(&format!("/#/projects/{pid}/sourcemaps")))
        .await
        .unwrap();
    wait_for("the bundles on the source maps screen", WAIT, || async {
        let v =
            b.c.execute(
                "return document.querySelectorAll('#sourcemaps tr[data-bundle]').length",
                vec![],
            )
            .await
            .ok()?;
        (v == json!(2)).then_some(())
    })
    .await;

    // The bundles are listed, and deleting one removes it.
    let bundles = get_json(&h, &owner.token, &format!("/api/projects/{pid}/sourcemaps")).await;
    let list = bundles["bundles"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{bundles}");
    assert!(
        list[0]["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "source_map")
    );
    let id = list[1]["id"].as_u64().unwrap();
    let r = h
        .http
        .delete(h.url(&format!("/api/projects/{pid}/sourcemaps/{id}")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bundles = get_json(&h, &owner.token, &format!("/api/projects/{pid}/sourcemaps")).await;
    assert_eq!(bundles["bundles"].as_array().unwrap().len(), 1);
    b.close().await;
    h.stop().await;
}

// ---- the refusals, with bundles built here ----

const DEBUG_ID: &str = "5d0c5b0e-7f7a-4a4e-9d5c-2c8f0b7a1e01";

/// A minified one-liner and its map: `function a(){throw new Error("x")}` from app/boom.js.
fn tiny_map() -> (String, Vec<u8>) {
    let minified = "function a(){throw new Error(\"x\")}a();\n".to_string();
    let mut b = sourcemap::SourceMapBuilder::new(Some("boom.js"));
    let src = b.add_source("../src/boom.js");
    b.set_source_contents(
        src,
        Some("// boom\nfunction explode() {\n  throw new Error(\"x\");\n}\nexplode();\n"),
    );
    let name = b.add_name("explode");
    b.add_raw(0, 0, 1, 0, Some(src), None, false);
    b.add_raw(0, 9, 1, 9, Some(src), Some(name), false);
    b.add_raw(0, 13, 2, 2, Some(src), None, false);
    let mut out = Vec::new();
    b.into_sourcemap().to_writer(&mut out).unwrap();
    (minified, out)
}

fn bundle_zip(map: &[u8], minified: &str) -> Vec<u8> {
    bundle_zip_with(map, minified, DEBUG_ID)
}

fn bundle_zip_with(map: &[u8], minified: &str, debug_id: &str) -> Vec<u8> {
    let manifest = json!({"files": {
        "_/_/boom.js": {"type": "minified_source", "url": "~/boom.js",
            "headers": {"debug-id": debug_id, "Sourcemap": "boom.js.map"}},
        "_/_/boom.js.map": {"type": "source_map", "url": "~/boom.js.map",
            "headers": {"debug-id": debug_id}},
    }});
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in [
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ("_/_/boom.js", minified.as_bytes().to_vec()),
        ("_/_/boom.js.map", map.to_vec()),
    ] {
        w.start_file(name, opts).unwrap();
        w.write_all(&data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn sha1_hex(data: &[u8]) -> String {
    hearth::sourcemaps::sha1_hex(data)
}

/// Uploads `data` as one chunk (multipart, as sentry-cli sends it); returns status and body.
async fn upload_chunk(h: &Hearth, token: &str, data: &[u8]) -> (u16, Value) {
    let boundary = "hearthtestboundary";
    let mut body = Vec::new();
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        sha1_hex(data)
    )
    .unwrap();
    body.extend_from_slice(data);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    let r = h
        .post(token, "/api/0/organizations/acme/chunk-upload/")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Offers `zip` to `project`, uploads it and assembles it; returns the final assemble reply.
async fn upload_bundle(h: &Hearth, token: &str, project: &str, zip: &[u8]) -> Value {
    let sum = sha1_hex(zip);
    let body = json!({"checksum": sum, "chunks": [sum], "projects": [project]});
    let assemble = || async {
        let r = h
            .post(token, "/api/0/organizations/acme/artifactbundle/assemble/")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let first = assemble().await;
    if first["state"] == "ok" {
        return first;
    }
    assert_eq!(first["missingChunks"], json!([sum]), "{first}");
    let (status, _) = upload_chunk(h, token, zip).await;
    assert_eq!(status, 200);
    assemble().await
}

async fn send_event(h: &Hearth, dsn: &str, pid: u64, event: Value) {
    let key = dsn.split("//").nth(1).unwrap().split('@').next().unwrap();
    let r = h
        .http
        .post(h.url(&format!("/api/{pid}/store/")))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_version=7, sentry_key={key}"),
        )
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

fn boom_event(debug_id: &str) -> Value {
    json!({
        "platform": "javascript",
        "exception": {"values": [{"type": "Error", "value": "x", "stacktrace": {"frames": [
            {"abs_path": "http://shop.test/boom.js", "filename": "http://shop.test/boom.js",
             "function": "a", "lineno": 1, "colno": 14, "in_app": true}
        ]}}]},
        "debug_meta": {"images": [{"type": "sourcemap", "code_file": "http://shop.test/boom.js", "debug_id": debug_id}]},
    })
}

async fn latest_event(h: &Hearth, token: &str, pid: u64, n: usize) -> Value {
    let list = wait_for("the event", WAIT, || async {
        let v = get_json(h, token, &format!("/api/projects/{pid}/issues")).await;
        (v["issues"].as_array()?.len() >= n).then_some(v)
    })
    .await;
    let id = list["issues"][0]["id"].as_u64().unwrap();
    get_json(h, token, &format!("/api/issues/{id}/events/latest")).await["event"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_unmapped_events_are_still_stored_with_a_note() {
    let h = Hearth::start("[sourcemaps]\nchunk_size = \"64 KB\"\n").await;
    let owner = h.owner().await;
    let (a, dsn_a) = h.project(&owner.token, "alpha").await;
    let (b, dsn_b) = h.project(&owner.token, "beta").await;

    // The options sentry-cli reads.
    let opts = get_json(
        &h,
        &owner.token,
        "/api/0/organizations/whatever/chunk-upload/",
    )
    .await;
    assert_eq!(opts["hashAlgorithm"], "sha1");
    assert_eq!(opts["chunkSize"], 64_000);
    assert!(
        opts["accept"]
            .as_array()
            .unwrap()
            .contains(&json!("artifact_bundles"))
    );

    // An oversized chunk: 413 with a stable code, nothing stored.
    let (status, body) = upload_chunk(&h, &owner.token, &vec![7u8; 65_000]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (minified, map) = tiny_map();

    // A malformed map: the assembly reports an error and stores nothing.
    let bad = bundle_zip(b"{\"version\": 3, \"mappings\": 12}", &minified);
    let r = upload_bundle(&h, &owner.token, &a.to_string(), &bad).await;
    assert_eq!(r["state"], "error", "{r}");
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("not a valid source map"),
        "{r}"
    );
    let listed = get_json(&h, &owner.token, &format!("/api/projects/{a}/sourcemaps")).await;
    assert_eq!(listed["bundles"], json!([]));
    // Not a zip at all.
    let r = upload_bundle(&h, &owner.token, "alpha", b"PK but not really a zip").await;
    assert_eq!(r["state"], "error", "{r}");
    // An unknown project.
    let r = h
        .post(
            &owner.token,
            "/api/0/organizations/acme/artifactbundle/assemble/",
        )
        .json(&json!({"checksum": sha1_hex(b"x"), "chunks": [], "projects": ["nope"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );

    // A good bundle for project alpha (by name), uploaded twice: stored once.
    let good = bundle_zip(&map, &minified);
    let r = upload_bundle(&h, &owner.token, "alpha", &good).await;
    assert_eq!(r["state"], "ok", "{r}");
    let again = upload_bundle(&h, &owner.token, "alpha", &good).await;
    assert_eq!(again["state"], "ok");
    let listed = get_json(&h, &owner.token, &format!("/api/projects/{a}/sourcemaps")).await;
    assert_eq!(listed["bundles"].as_array().unwrap().len(), 1, "{listed}");

    // Alpha's event is mapped.
    send_event(&h, &dsn_a, a, boom_event(DEBUG_ID)).await;
    let ev = latest_event(&h, &owner.token, a, 1).await;
    let frame = &ev["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["filename"], "src/boom.js", "{ev}");
    assert_eq!(frame["lineno"], 3);
    assert_eq!(frame["function"], "explode");
    assert_eq!(frame["context_line"], "  throw new Error(\"x\");");

    // The same debug id in project beta (which has a bundle of its own, under another debug
    // id): alpha's map is not used; the event is stored unmapped and says what is missing.
    let other_id = "5d0c5b0e-7f7a-4a4e-9d5c-2c8f0b7a1e02";
    let r = upload_bundle(
        &h,
        &owner.token,
        "beta",
        &bundle_zip_with(&map, &minified, other_id),
    )
    .await;
    assert_eq!(r["state"], "ok", "{r}");
    send_event(&h, &dsn_b, b, boom_event(DEBUG_ID)).await;
    let ev = latest_event(&h, &owner.token, b, 1).await;
    let frame = &ev["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["function"], "a", "{ev}");
    assert_eq!(frame["abs_path"], "http://shop.test/boom.js");
    assert_eq!(ev["errors"][0]["type"], "js_no_source", "{ev}");
    assert!(
        ev["errors"][0]["hint"]
            .as_str()
            .unwrap()
            .contains("sentry-cli sourcemaps upload")
    );

    // A debug id that matches nothing, in alpha: stored unmapped, with the note.
    send_event(&h, &dsn_a, a, {
        let mut e = boom_event("00000000-0000-4000-8000-000000000000");
        e["exception"]["values"][0]["type"] = json!("OtherError");
        e
    })
    .await;
    let list = wait_for("the second issue", WAIT, || async {
        let v = get_json(&h, &owner.token, &format!("/api/projects/{a}/issues")).await;
        (v["issues"].as_array()?.len() >= 2).then_some(v)
    })
    .await;
    let other = list["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"].as_str().unwrap_or("").contains("OtherError"))
        .unwrap_or_else(|| panic!("{list}"))["id"]
        .as_u64()
        .unwrap();
    let ev = get_json(
        &h,
        &owner.token,
        &format!("/api/issues/{other}/events/latest"),
    )
    .await;
    assert_eq!(ev["event"]["errors"][0]["type"], "js_no_source");
    assert_eq!(
        ev["event"]["exception"]["values"][0]["stacktrace"]["frames"][0]["function"],
        "a"
    );

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_uploaded_with_a_release_maps_events_of_that_release_by_url() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "gamma").await;
    let (minified, map) = tiny_map();
    // What `sentry-cli sourcemaps upload --release shop@7` sends for files without debug ids.
    let manifest = json!({"release": "shop@7", "files": {
        "_/_/static/boom.js": {"type": "minified_source", "url": "~/static/boom.js",
            "headers": {"Sourcemap": "boom.js.map"}},
        "_/_/static/boom.js.map": {"type": "source_map", "url": "~/static/boom.js.map"},
    }});
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in [
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ("_/_/static/boom.js", minified.into_bytes()),
        ("_/_/static/boom.js.map", map),
    ] {
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&data).unwrap();
    }
    let zip = w.finish().unwrap().into_inner();
    let r = upload_bundle(&h, &owner.token, "gamma", &zip).await;
    assert_eq!(r["state"], "ok", "{r}");
    let listed = get_json(&h, &owner.token, &format!("/api/projects/{pid}/sourcemaps")).await;
    assert_eq!(listed["bundles"][0]["release"], "shop@7");

    let event = |release: &str, ty: &str| {
        json!({
            "platform": "javascript", "release": release,
            "exception": {"values": [{"type": ty, "value": "x", "stacktrace": {"frames": [
                {"filename": "https://shop.example/static/boom.js?v=7", "function": "a",
                 "lineno": 1, "colno": 14, "in_app": true}]}}]},
        })
    };
    send_event(&h, &dsn, pid, event("shop@7", "Error")).await;
    let ev = latest_event(&h, &owner.token, pid, 1).await;
    let frame = &ev["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["filename"], "src/boom.js", "{ev}");
    assert_eq!(frame["function"], "explode");
    assert_eq!(frame["lineno"], 3);
    assert_eq!(frame["data"]["sourcemap"], "release shop@7");

    // Another release has no map: stored unmapped, with the note.
    send_event(&h, &dsn, pid, event("shop@8", "OtherError")).await;
    let list = wait_for("the second issue", WAIT, || async {
        let v = get_json(&h, &owner.token, &format!("/api/projects/{pid}/issues")).await;
        (v["issues"].as_array()?.len() >= 2).then_some(v)
    })
    .await;
    let other = list["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"].as_str().unwrap_or("").contains("OtherError"))
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    let ev = get_json(
        &h,
        &owner.token,
        &format!("/api/issues/{other}/events/latest"),
    )
    .await;
    assert_eq!(ev["event"]["errors"][0]["type"], "js_no_source", "{ev}");
    assert_eq!(ev["event"]["errors"][0]["release"], "shop@8");
    h.stop().await;
}
