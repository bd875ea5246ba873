//! The accept loop the daemon's two small servers share (the control socket and the
//! metrics listener): a non-blocking listener polled until shutdown, one client at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the loop sleeps when no client waits (how soon it sees a shutdown).
pub const IDLE_POLL: Duration = Duration::from_millis(50);
/// How long it sleeps after a failed accept (out of descriptors, say) before trying again.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(200);

/// Calls `accept` (a non-blocking listener's) until `shutdown` is set and hands each
/// client to `handle`; `what` names the server in the log lines.
pub fn serve_until<S>(
    what: &str,
    shutdown: &Arc<AtomicBool>,
    mut accept: impl FnMut() -> std::io::Result<S>,
    handle: impl Fn(S) -> std::io::Result<()>,
) {
    while !shutdown.load(Ordering::Relaxed) {
        match accept() {
            Ok(stream) => {
                if let Err(e) = handle(stream) {
                    tracing::debug!(error = %e, "{what} client went away");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(IDLE_POLL),
            Err(e) => {
                tracing::warn!(error = %e, "{what}: accept failed; trying again");
                std::thread::sleep(ACCEPT_RETRY);
            }
        }
    }
}
