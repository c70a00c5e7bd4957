//! Request metrics in Prometheus text format: counts per route and status, latency histogram per
//! route. Routes are labelled by their pattern (`/api/{project_id}/envelope/`), never the raw
//! path, so the label set stays bounded.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;
use crate::metrics::{self, Kind};

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
        let requests = "hearth_http_requests_total";
        metrics::family(
            out,
            requests,
            Kind::Counter,
            "HTTP requests by route and status.",
        );
        for ((m, r), s) in routes.iter() {
            for (status, n) in &s.by_status {
                let status = status.to_string();
                let labels = [("method", m.as_str()), ("route", r), ("status", &status)];
                metrics::sample(out, requests, &labels, n);
            }
        }
        let duration = "hearth_http_request_duration_seconds";
        metrics::family(
            out,
            duration,
            Kind::Histogram,
            "HTTP request latency by route.",
        );
        let bounds = BUCKETS_MS.map(|b| b / 1000.0);
        for ((m, r), s) in routes.iter() {
            let labels = [("method", m.as_str()), ("route", r.as_str())];
            let sum = s.sum_ms / 1000.0;
            metrics::histogram(out, duration, &labels, &bounds, &s.buckets, sum, s.count);
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
