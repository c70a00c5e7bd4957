//! File uploads in conversations: streamed to `<data_dir>/chat-uploads/` with the size cap
//! checked while reading (never buffered whole), then posted as a message whose attachment
//! names the file. Downloads are served as attachments with `nosniff` and a sandbox CSP, to
//! callers who may see the conversation.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::api::Caller;
use super::model::Attachment;
use crate::app::AppState;
use crate::http::error::{ApiError, ApiJson, ApiResult, Code};

pub fn dir(s: &AppState) -> PathBuf {
    s.config.storage.data_dir.join("chat-uploads")
}

/// A file name safe for a header and a download: no paths, quotes or control characters.
fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let s: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != ';')
        .take(120)
        .collect();
    if s.trim().is_empty() {
        "file".into()
    } else {
        s.trim().to_string()
    }
}

#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
    client_msg_id: Option<String>,
}

pub async fn upload(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(conv_id): Path<u64>,
    Query(q): Query<UploadQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<ApiJson<Value>> {
    s.chat.conversation_for(&who, conv_id).await?;
    let cap = s.chat.config().upload_max_size.as_usize();
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > cap
    {
        return Err(too_large(cap));
    }
    let name = clean_name(q.name.as_deref().unwrap_or("file"));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() < 100 && !v.contains(['\r', '\n']))
        .unwrap_or("application/octet-stream")
        .to_string();
    let dir = dir(&s);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let id = crate::accounts::random_hex(16);
    let tmp = dir.join(format!("{id}.part"));
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(ApiError::internal)?;
    let mut size = 0usize;
    let mut stream = body.into_data_stream();
    let outcome: ApiResult<()> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("reading the upload failed: {e}")))?;
            size += chunk.len();
            if size > cap {
                return Err(too_large(cap));
            }
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        file.sync_all().await.map_err(ApiError::internal)?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = outcome {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    if size == 0 {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ApiError::bad_request("the upload is empty"));
    }
    tokio::fs::rename(&tmp, dir.join(&id))
        .await
        .map_err(ApiError::internal)?;
    let attachment = Attachment {
        id: id.clone(),
        name: name.clone(),
        content_type,
        size: size as u64,
    };
    let cid = q
        .client_msg_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let (_, entry, created) = s
        .chat
        .post_attachment(&who, conv_id, cid, attachment)
        .await?;
    if !created {
        // A retried upload: the first one stands; this copy is not referenced.
        let _ = tokio::fs::remove_file(dir.join(&id)).await;
    }
    Ok(ApiJson(
        json!({ "seq": entry.seq, "message": entry.view(), "duplicate": !created }),
    ))
}

fn too_large(cap: usize) -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        format!("the file is larger than the {cap}-byte limit ([chat] upload_max_size)"),
    )
}

pub async fn download(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path((conv_id, id)): Path<(u64, String)>,
) -> ApiResult<Response> {
    if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::not_found("file"));
    }
    s.chat.conversation_for(&who, conv_id).await?;
    let a = s
        .chat
        .attachment(conv_id, &id, who.is_agent())
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let file = tokio::fs::File::open(dir(&s).join(&a.id))
        .await
        .map_err(|_| ApiError::not_found("file"))?;
    let body = Body::from_stream(read_chunks(file));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&a.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(a.size));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename=\"{}\"",
            a.name.replace(|c: char| !c.is_ascii(), "_")
        ))
        .unwrap_or(HeaderValue::from_static("attachment")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    Ok(resp)
}

/// The file as a stream of 64 KiB chunks (an error ends it).
fn read_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(Some(file), |state| async move {
        use tokio::io::AsyncReadExt;
        let mut f = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_lose_paths_and_header_breakers() {
        assert_eq!(super::clean_name("../../etc/passwd"), "passwd");
        assert_eq!(super::clean_name("a\"b;c\r\n.png"), "abc.png");
        assert_eq!(super::clean_name(""), "file");
    }
}
