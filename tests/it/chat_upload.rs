//! Files in conversations, against the real binary: streamed to disk under a cap, shown as a
//! message, downloaded as an attachment with nosniff only by those who may see the
//! conversation.

use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::chat_support::{team, visitor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_capped_shared_and_served_as_attachments() {
    let h = Hearth::start("[chat]\nupload_max_size = \"64 KiB\"\n").await;
    let t = team(&h).await;
    let v = visitor(&h, &t.site_key).await;
    let r = h
        .http
        .post(h.url("/api/chat/start"))
        .header("x-hearth-site-key", &v.site_key)
        .header("x-hearth-visitor-token", &v.token)
        .json(&json!({"initial_message": "see the screenshot"}))
        .send()
        .await
        .unwrap();
    let conv = r.json::<Value>().await.unwrap()["chat_id"]
        .as_u64()
        .unwrap();
    let upload = |name: &str, body: Vec<u8>| {
        h.http
            .post(h.url(&format!("/api/chat/session/{conv}/upload?name={name}")))
            .header("x-hearth-site-key", &v.site_key)
            .header("x-hearth-visitor-token", &v.token)
            .header("content-type", "text/html")
            .body(body)
            .send()
    };
    let payload: Vec<u8> = b"<script>alert(1)</script>"
        .iter()
        .copied()
        .cycle()
        .take(10_000)
        .collect();
    let r = upload("..%2Fpage.html", payload.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    let a = &m["message"]["attachment"];
    assert_eq!(a["name"], "page.html", "{m}");
    assert_eq!(a["size"], 10_000);
    let id = a["id"].as_str().unwrap().to_string();
    // Over the cap: refused, nothing kept.
    let r = upload("big.bin", vec![7u8; 100 * 1024]).await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
    let files: Vec<_> = std::fs::read_dir(h.dir.join("data/chat-uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, vec![id.clone()], "only the accepted file is on disk");
    // The agent downloads it: same bytes, as an attachment, never sniffed or rendered.
    let r = h
        .get(
            &t.agent_token,
            &format!("/api/chat/session/{conv}/files/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hd = r.headers().clone();
    assert_eq!(hd["x-content-type-options"], "nosniff");
    assert!(
        hd["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        hd["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), payload.as_slice());
    // Another visitor cannot.
    let other = visitor(&h, &t.site_key).await;
    let r = h
        .http
        .get(h.url(&format!("/api/chat/session/{conv}/files/{id}")))
        .header("x-hearth-site-key", &other.site_key)
        .header("x-hearth-visitor-token", &other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    h.stop().await;
}
