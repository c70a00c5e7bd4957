//! Application state: the handles every part and handler reaches through.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use crate::alerts::Alerts;
use crate::bus::Bus;
use crate::chat::Chat;
use crate::config::Config;
use crate::http::metrics::HttpMetrics;
use crate::http::routes::RouteInfo;
use crate::ingest::Ingest;
use crate::issues::Issues;
use crate::mail::Mail;
use crate::search::Search;
use crate::store::Db;
use crate::uptime::Uptime;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<AppInner>,
}

pub struct AppInner {
    pub config: Arc<Config>,
    pub db: Db,
    pub bus: Bus,
    pub accounts: Accounts,
    pub search: Search,
    pub issues: Issues,
    pub ingest: Ingest,
    pub mail: Mail,
    pub alerts: Alerts,
    pub chat: Chat,
    pub uptime: Uptime,
    pub sourcemaps: crate::sourcemaps::SourceMaps,
    pub http_metrics: HttpMetrics,
    /// The route table, for the OpenAPI listing and the router-walk test.
    pub routes: Arc<Vec<RouteInfo>>,
    /// Cancelled when the server shuts down; every background task watches it.
    pub shutdown: CancellationToken,
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        AppState {
            inner: Arc::new(inner),
        }
    }

    /// Every part's own metrics, appended to `/metrics`.
    pub fn extra_metrics(&self, out: &mut String) {
        self.ingest.render_metrics(out);
        self.issues.render_metrics(out);
        self.search.render_metrics(out);
        self.mail.render_metrics(out);
        self.alerts.render_metrics(out);
        self.chat.render_metrics(out);
        self.uptime.render_metrics(out);
        self.sourcemaps.render_metrics(out);
    }
}
