//! The local admin socket: `<data_dir>/hearth.sock`, mode 0600. CLI commands reach a running
//! server through it; the file permissions are the credential, so requests on it act as owner.

use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::auth::LocalSocket;

pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "{} is in use: another hearth is serving this data directory",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Create it private from the start rather than chmod after a window.
    #[cfg(unix)]
    let listener = {
        use std::os::unix::fs::PermissionsExt;
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener
    };
    Ok(listener)
}

async fn mark_local(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(LocalSocket);
    next.run(req).await
}

pub async fn serve(listener: UnixListener, router: Router, shutdown: CancellationToken) {
    let router = router.layer(middleware::from_fn(mark_local));
    let result = axum::serve(listener, router.into_make_service())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!("admin socket failed: {e}");
    }
}
