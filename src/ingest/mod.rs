//! Sentry wire protocol ingest: envelopes and the legacy store endpoint, Hearth's JSON capture
//! API, decoding with size caps, per-key rate limits and the group-commit writer.

pub mod api;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;

/// The ingest service (filled in by its issue).
#[derive(Clone, Default)]
pub struct Ingest {}

impl Ingest {
    /// Registers this part's durable bus consumers; called once while the app is built.
    pub fn register(&self, _state: &AppState) {}

    /// Starts this part's background workers.
    pub fn start(&self, _state: &AppState, _shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        Vec::new()
    }

    /// Appends this part's Prometheus metrics.
    pub fn render_metrics(&self, _out: &mut String) {}
}
