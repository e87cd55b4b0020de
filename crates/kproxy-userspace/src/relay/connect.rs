//! Connecting to an endpoint within a timeout, with as few system calls as the kernel
//! allows: on a local network the handshake is usually over by the time `connect(2)`
//! returns, so one turn of the reactor tells, without arming a timer (arming a worker's
//! earliest timer wakes its reactor) or asking the socket for its error.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, setsockopt, socket, sockopt};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Connects to `endpoint` within `timeout` (an error of kind `TimedOut` after it), without
/// Nagle delays: the relay must not add any (the client's side, accepted from a listener
/// with `TCP_NODELAY`, has none either); each end still has its own.
pub(crate) async fn connect(endpoint: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::from_std(start(endpoint)?.into())?;
    // The reactor is polled before this task runs again: the handshake's outcome is then
    // known, and the timer below only armed when it is still under way.
    tokio::task::yield_now().await;
    let ready = tokio::time::timeout(timeout, stream.ready(Interest::WRITABLE))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    if ready.is_write_closed() {
        // Refused, unreachable, or reset as soon as established.
        let error = stream.take_error()?;
        return Err(error.unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset)));
    }
    Ok(stream)
}

/// A non-blocking socket whose connection to `endpoint` is under way (or done).
fn start(endpoint: SocketAddr) -> io::Result<OwnedFd> {
    let family = if endpoint.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    match nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(endpoint)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn connects_without_nagle() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut stream, accepted) = tokio::join!(async { connect(addr, SECOND).await.unwrap() }, listener.accept());
        assert!(stream.nodelay().unwrap());
        let (mut peer, _) = accepted.unwrap();
        peer.write_all(b"hi").await.unwrap();
        let mut got = [0u8; 2];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let error = connect(closed, SECOND).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test]
    async fn an_unanswered_connection_times_out() {
        // A listener whose accept queue is full: the kernel drops further SYNs unanswered.
        let full = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        nix::sys::socket::listen(&full, nix::sys::socket::Backlog::new(0).unwrap()).unwrap();
        let addr = full.local_addr().unwrap();
        let fill = |_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok();
        let queued: Vec<_> = (0..8).map_while(fill).collect();
        assert!(!queued.is_empty() && queued.len() < 8, "the accept queue fills up");
        let started = std::time::Instant::now();
        let error = connect(addr, Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < SECOND, "took {:?}", started.elapsed());
    }
}
