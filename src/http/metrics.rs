//! Request metrics in Prometheus text format: counts per route and status, latency histogram per
//! route. Routes are labelled by their pattern (`/api/{project_id}/envelope/`), never the raw
//! path, so the label set stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

const BUCKETS_MS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
];

#[derive(Default)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS_MS.len()],
    sum_ms: f64,
    count: u64,
}

#[derive(Default)]
pub struct HttpMetrics {
    routes: Mutex<BTreeMap<(String, String), RouteStats>>,
}

impl HttpMetrics {
    pub fn record(&self, method: &str, route: &str, status: u16, ms: f64) {
        let mut routes = self.routes.lock().expect("metrics");
        let s = routes
            .entry((method.to_string(), route.to_string()))
            .or_default();
        *s.by_status.entry(status).or_default() += 1;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                s.buckets[i] += 1;
            }
        }
        s.sum_ms += ms;
        s.count += 1;
    }

    pub fn render(&self, out: &mut String) {
        let routes = self.routes.lock().expect("metrics");
        out.push_str("# HELP hearth_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE hearth_http_requests_total counter\n");
        for ((m, r), s) in routes.iter() {
            for (status, n) in &s.by_status {
                let _ = writeln!(
                    out,
                    "hearth_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP hearth_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE hearth_http_request_duration_seconds histogram\n");
        for ((m, r), s) in routes.iter() {
            for (i, b) in BUCKETS_MS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "hearth_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"{}\"}} {}",
                    b / 1000.0,
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "hearth_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "hearth_http_request_duration_seconds_sum{{method=\"{m}\",route=\"{r}\"}} {}",
                s.sum_ms / 1000.0
            );
            let _ = writeln!(
                out,
                "hearth_http_request_duration_seconds_count{{method=\"{m}\",route=\"{r}\"}} {}",
                s.count
            );
        }
    }
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    state
        .http_metrics
        .record(&method, &route, resp.status().as_u16(), ms);
    resp
}
