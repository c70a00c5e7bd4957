//! Issues: grouping, events, states, comments, assignment, stats and retention.

pub mod api;
pub mod store;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;

/// The issues service (filled in by its issue).
#[derive(Clone, Default)]
pub struct Issues {}

impl Issues {
    /// Registers this part's durable bus consumers; called once while the app is built.
    pub fn register(&self, _state: &AppState) {}

    /// Starts this part's background workers.
    pub fn start(&self, _state: &AppState, _shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        Vec::new()
    }

    /// Appends this part's Prometheus metrics.
    pub fn render_metrics(&self, _out: &mut String) {}
}
