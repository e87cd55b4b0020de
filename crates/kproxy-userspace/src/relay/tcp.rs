//! TCP: accept, pick an endpoint and connect (the next endpoint after a failure, within a
//! bounded number of attempts and time), then splice both ways until both sides are done.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::socket::{setsockopt, sockopt};
use tokio::net::{TcpListener, TcpStream};

use super::Shared;
use super::balancer::Targets;
use super::connect;
use super::splice;

/// How long to wait after an accept error (out of file descriptors, for one).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` forever, each relayed on a task of its own.
pub(crate) async fn serve(listener: TcpListener, targets: Arc<Targets>, shared: Arc<Shared>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(error) => {
                tracing::warn!(%error, "userspace relay: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if !targets.lock().admits(peer.ip()) {
            tracing::debug!(%peer, "userspace relay: source not in loadBalancerSourceRanges");
            reset(&client);
            continue;
        }
        let guard = shared.connections.enter();
        let (targets, shared) = (targets.clone(), shared.clone());
        tokio::spawn(async move {
            let _guard = guard;
            relay(client, peer, &targets, &shared).await;
        });
    }
}

async fn relay(client: TcpStream, peer: SocketAddr, targets: &Targets, shared: &Shared) {
    let Some(backend) = connect(targets, peer.ip(), &shared.config.connect_timeouts).await else {
        tracing::debug!(%peer, "userspace relay: no endpoint accepted the connection");
        reset(&client);
        return;
    };
    if let Some(size) = shared.receive_buffer {
        // Set once connected: the window scale stays what autotuning negotiated (setting
        // it before the handshake measurably slowed bulk transfers).
        for stream in [&client, &backend] {
            let _ = setsockopt(stream, sockopt::RcvBuf, &size);
        }
    }
    if let Err(error) = splice::relay(&client, &backend, &shared.pipes).await {
        tracing::trace!(%error, %peer, "userspace relay: connection ended by an error");
        reset(&client);
        reset(&backend);
    }
}

/// Connects to the endpoints `targets` picks for `client`, one attempt per timeout.
async fn connect(targets: &Targets, client: IpAddr, timeouts: &[Duration]) -> Option<TcpStream> {
    for timeout in timeouts {
        let endpoint = targets.lock().pick(client, Instant::now())?;
        match connect::connect(endpoint, *timeout).await {
            Ok(stream) => return Some(stream),
            Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                tracing::debug!(%endpoint, ?timeout, "userspace relay: connect timed out");
            }
            Err(error) => tracing::debug!(%error, %endpoint, "userspace relay: connect failed"),
        }
        targets.lock().failed(client, endpoint);
    }
    None
}

/// Makes the close of `stream` a reset.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}
