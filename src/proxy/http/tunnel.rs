//! An upgraded connection (WebSocket and other `Upgrade` protocols): bytes both ways.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::upstream::InFlight;

/// Join the client's and the server's upgraded connections and copy until either side is
/// done. The server counts the tunnel as in flight for as long as it lives.
pub async fn run(downstream: OnUpgrade, upstream: OnUpgrade, in_flight: InFlight) {
    let (down, up) = match tokio::try_join!(downstream, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(server = %in_flight.server().name, "upgrade failed: {e}");
            return;
        }
    };
    let mut down = TokioIo::new(down);
    let mut up = TokioIo::new(up);
    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        tracing::debug!(server = %in_flight.server().name, "tunnel ended: {e}");
    }
}
