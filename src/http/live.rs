//! Live updates for the dashboard: ephemeral bus messages as Server-Sent Events.
//!
//! `GET /api/live?subjects=issue.>,event.stored` streams every matching ephemeral message (and
//! every committed durable event, which the bus mirrors to ephemeral subscribers) as one SSE
//! `message` whose data is the message's JSON. The stream is lossy by design: when the client
//! was too slow and the bus skipped messages, a `missed` event tells it to refetch. Comments
//! keep idle connections open through proxies; the stream ends when the server shuts down so
//! graceful shutdown never waits on a dashboard tab.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::bus::subject::valid_pattern;
use crate::http::auth::Viewer;
use crate::http::error::{ApiError, ApiResult};

/// Subjects a dashboard gets when it names none.
const DEFAULT_SUBJECTS: &str = "issue.>,event.stored";
/// Patterns per connection: enough for any screen, small enough to keep matching cheap.
const MAX_PATTERNS: usize = 16;

#[derive(Deserialize)]
pub struct LiveQuery {
    subjects: Option<String>,
}

pub async fn live(
    _: Viewer,
    State(s): State<AppState>,
    Query(q): Query<LiveQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let raw = q.subjects.unwrap_or_else(|| DEFAULT_SUBJECTS.to_string());
    let patterns: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
        return Err(ApiError::bad_request(format!(
            "give 1 to {MAX_PATTERNS} comma-separated subject patterns in ?subjects=, e.g. issue.>,event.stored"
        )));
    }
    if let Some(bad) = patterns.iter().find(|p| !valid_pattern(p)) {
        return Err(ApiError::bad_request(format!(
            "invalid subject pattern {bad:?}: use dotted tokens, `*` for one token and `>` for the rest"
        )));
    }
    let sub = s.bus.subscribe(&patterns);
    let shutdown = s.shutdown.clone();
    // The first event says the stream is live, so a client can refetch what it may have missed
    // while (re)connecting.
    let hello = Event::default()
        .event("ready")
        .data(json!({ "subjects": patterns }).to_string());
    let state = (sub, shutdown, 0u64, Some(hello));
    let events = stream::unfold(
        state,
        |(mut sub, shutdown, seen_missed, hello)| async move {
            if let Some(h) = hello {
                return Some((Ok(h), (sub, shutdown, seen_missed, None)));
            }
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return None,
                m = sub.recv() => m?,
            };
            let missed = sub.missed();
            let event = if missed > seen_missed {
                // The client fell behind and the bus skipped messages: say so (with the message in
                // hand) so the client refetches instead of trusting a partial picture.
                Event::default()
                    .event("missed")
                    .data(json!({ "missed": missed - seen_missed, "last": &*msg }).to_string())
            } else {
                Event::default().data(serde_json::to_string(&*msg).unwrap_or_else(|_| "{}".into()))
            };
            Some((Ok(event), (sub, shutdown, missed, None)))
        },
    );
    Ok(Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}
