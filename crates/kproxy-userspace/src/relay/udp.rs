//! UDP: a session per client address, each with a socket connected to its endpoint;
//! replies go back through the listener socket, from the address the client sent to.
//! A session ends after the idle timeout, when its endpoint is gone (the next datagram
//! opens a new one), or when the endpoint refuses (ICMP unreachable).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::MsgFlags;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::Shared;
use super::balancer::Targets;
use super::pktinfo::{self, Datagram};

/// The largest datagram relayed.
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams handled per wake-up before other tasks get a turn.
const BATCH: usize = 64;
/// Sessions are swept at least this often.
const MAX_SWEEP: Duration = Duration::from_secs(5);

thread_local! {
    /// One datagram buffer per relay thread: sessions and listeners hold none.
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

/// A task that is aborted when this is dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One client's flow.
#[derive(Debug)]
struct Session {
    endpoint: SocketAddr,
    generation: u64,
    backend: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    replies: AbortOnDrop,
}

/// What the listener and its sessions share.
struct Listener {
    socket: Arc<UdpSocket>,
    targets: Arc<Targets>,
    shared: Arc<Shared>,
    sessions: HashMap<SocketAddr, Session>,
    control: Vec<u8>,
}

/// Relays datagrams arriving on `socket` forever.
pub(crate) async fn serve(socket: UdpSocket, targets: Arc<Targets>, shared: Arc<Shared>) {
    let mut sweep = tokio::time::interval(shared.config.udp_idle_timeout.min(MAX_SWEEP));
    let socket = Arc::new(socket);
    let mut listener =
        Listener { socket, targets, shared, sessions: HashMap::new(), control: pktinfo::control_buffer() };
    loop {
        tokio::select! {
            ready = listener.socket.readable() => match ready {
                Ok(()) => listener.receive(),
                Err(error) => tracing::warn!(%error, "userspace relay: UDP listener failed"),
            },
            _ = sweep.tick() => listener.sessions.retain(|_, s| !s.replies.0.is_finished()),
        }
    }
}

impl Listener {
    /// Handles the datagrams waiting, up to a batch.
    fn receive(&mut self) {
        for _ in 0..BATCH {
            if !BUFFER.with_borrow_mut(|buf| self.receive_one(buf)) {
                return;
            }
        }
    }

    /// Handles one datagram; false when none was waiting.
    fn receive_one(&mut self, buf: &mut [u8]) -> bool {
        let fd = self.socket.as_raw_fd();
        let control = &mut self.control;
        match self.socket.try_io(Interest::READABLE, || pktinfo::recv(fd, buf, control)) {
            Ok(datagram) => {
                self.forward(datagram, &buf[..datagram.len]);
                true
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => false,
            Err(error) => {
                tracing::debug!(%error, "userspace relay: UDP receive failed");
                false
            }
        }
    }

    fn forward(&mut self, datagram: Datagram, data: &[u8]) {
        let client = datagram.from;
        if !self.targets.lock().admits(client.ip()) {
            return;
        }
        if !self.sessions.get_mut(&client).is_some_and(|s| s.usable(&self.targets)) {
            match self.open(datagram) {
                Ok(Some(session)) => drop(self.sessions.insert(client, session)),
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(%error, %client, "userspace relay: cannot open a UDP session");
                    return;
                }
            }
        }
        let Some(session) = self.sessions.get(&client) else { return };
        session.last.store(self.shared.now_ms(), Ordering::Relaxed);
        // Straight to the socket (tokio's `try_send` waits for a readiness event a new
        // socket has not had yet). UDP may drop: a full buffer loses the datagram.
        let _ = nix::sys::socket::send(session.backend.as_raw_fd(), data, MsgFlags::MSG_DONTWAIT);
    }

    /// A session for the sender of `datagram`; `None` when there is no endpoint.
    fn open(&self, datagram: Datagram) -> io::Result<Option<Session>> {
        let client = datagram.from;
        let mut balancer = self.targets.lock();
        let Some(endpoint) = balancer.pick(client.ip(), Instant::now()) else { return Ok(None) };
        let generation = balancer.generation();
        drop(balancer);
        let any: IpAddr = if endpoint.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
        let socket = std::net::UdpSocket::bind((any, 0))?;
        socket.connect(endpoint)?;
        socket.set_nonblocking(true)?;
        let backend = Arc::new(UdpSocket::from_std(socket)?);
        let last = Arc::new(AtomicU64::new(self.shared.now_ms()));
        let replies = Replies {
            backend: backend.clone(),
            listener: self.socket.clone(),
            client,
            local: datagram.to,
            endpoint,
            last: last.clone(),
            targets: self.targets.clone(),
            shared: self.shared.clone(),
        };
        let replies = AbortOnDrop(tokio::spawn(replies.run()));
        Ok(Some(Session { endpoint, generation, backend, last, replies }))
    }
}

impl Session {
    /// Still running, and its endpoint still one of the listener's.
    fn usable(&mut self, targets: &Targets) -> bool {
        if self.replies.0.is_finished() {
            return false;
        }
        let balancer = targets.lock();
        if balancer.generation() != self.generation {
            if !balancer.contains(self.endpoint) {
                return false;
            }
            self.generation = balancer.generation();
        }
        true
    }
}

/// Carries one session's replies back to its client until it goes idle.
struct Replies {
    backend: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    local: Option<IpAddr>,
    endpoint: SocketAddr,
    last: Arc<AtomicU64>,
    targets: Arc<Targets>,
    shared: Arc<Shared>,
}

impl Replies {
    async fn run(self) {
        let idle = self.shared.config.udp_idle_timeout;
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = tokio::time::Instant::from_std(self.shared.epoch + last + idle);
            tokio::select! {
                ready = self.backend.readable() => {
                    if ready.is_err() || !self.pass() {
                        return;
                    }
                    self.last.store(self.shared.now_ms(), Ordering::Relaxed);
                }
                () = tokio::time::sleep_until(deadline) => {
                    let quiet = self.shared.now_ms().saturating_sub(self.last.load(Ordering::Relaxed));
                    if u128::from(quiet) >= idle.as_millis() {
                        return;
                    }
                }
            }
        }
    }

    /// Sends every waiting reply on; false when the endpoint refused (the session ends).
    fn pass(&self) -> bool {
        for _ in 0..BATCH {
            let received = BUFFER.with_borrow_mut(|buf| match self.backend.try_recv(buf) {
                Ok(n) => {
                    let _ = pktinfo::send(self.listener.as_raw_fd(), &buf[..n], self.client, self.local);
                    Ok(true)
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(error) => Err(error),
            });
            match received {
                Ok(true) => {}
                Ok(false) => return true,
                Err(error) => {
                    tracing::debug!(%error, endpoint = %self.endpoint, "userspace relay: UDP endpoint refused");
                    self.targets.lock().failed(self.client.ip(), self.endpoint);
                    return false;
                }
            }
        }
        true
    }
}
