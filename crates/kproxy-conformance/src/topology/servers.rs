//! The pods' servers: TCP and UDP on every port of [`SERVED_PORTS`] (and SCTP on
//! [`PORT_SCTP`] when the kernel has it), each answering with [`reply_line`].
//!
//! Sockets are made on a thread inside each pod's namespace, then served by one tokio
//! runtime on a thread of its own; stopping it closes every socket, so the namespaces can go.

use std::net::{Ipv6Addr, SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::socket::{Backlog, SockaddrStorage, bind, listen};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;

use super::namespaces::Namespaces;
use crate::plan::{PODS, PORT_SCTP, SERVED_PORTS};
use crate::traffic::{reply_line, sctp_socket};
use crate::{Error, netns};

/// How long a server waits for a request line before answering anyway.
const REQUEST_WAIT: Duration = Duration::from_secs(2);

/// The running servers; dropping this stops them and closes their sockets.
#[derive(Debug)]
pub(crate) struct Servers {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// One pod's listening sockets (SCTP ones are listening stream sockets too).
struct PodSockets {
    pod: &'static str,
    streams: Vec<StdTcpListener>,
    datagrams: Vec<StdUdpSocket>,
}

impl Servers {
    /// Binds every pod's sockets inside its namespace and starts serving them.
    pub(crate) fn start(ns: &Namespaces, sctp: bool) -> Result<Self, Error> {
        let mut all = Vec::new();
        for pod in PODS {
            let name = pod.name;
            let sockets = netns::in_netns(ns.of(name)?, move || bind_pod(name, sctp))?
                .map_err(|e| Error::new(format!("bind servers of {name}: {e}")))?;
            all.push(sockets);
        }
        let (stop, stopped) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("kpc-servers".to_owned())
            .spawn(move || serve_all(all, stopped, ready_tx))
            .map_err(|e| Error::new(format!("spawn server thread: {e}")))?;
        let servers = Self { stop: Some(stop), thread: Some(thread) };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(servers),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new("pod servers did not start")),
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn bind_pod(pod: &'static str, sctp: bool) -> std::io::Result<PodSockets> {
    let mut sockets = PodSockets { pod, streams: Vec::new(), datagrams: Vec::new() };
    for port in SERVED_PORTS {
        // `[::]` takes IPv4 too (bindv6only is 0 in a new namespace).
        sockets.streams.push(StdTcpListener::bind((Ipv6Addr::UNSPECIFIED, port))?);
        sockets.datagrams.push(StdUdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))?);
    }
    if sctp {
        sockets.streams.push(sctp_listener()?);
    }
    Ok(sockets)
}

fn sctp_listener() -> std::io::Result<StdTcpListener> {
    let fd = sctp_socket(false)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT_SCTP))))?;
    listen(&fd, Backlog::new(64)?)?;
    Ok(StdTcpListener::from(fd))
}

fn serve_all(all: Vec<PodSockets>, stopped: oneshot::Receiver<()>, ready: mpsc::Sender<Result<(), Error>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(Error::new(format!("server runtime: {e}"))));
            return;
        }
    };
    runtime.block_on(async move {
        let started = all.into_iter().try_for_each(spawn_pod);
        let _ = ready.send(started);
        // Either a stop or the Servers being dropped without one ends serving.
        let _ = stopped.await;
    });
    // Dropping the runtime cancels every task and closes every socket.
}

fn spawn_pod(sockets: PodSockets) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::new(format!("serve {}: {e}", sockets.pod));
    for listener in sockets.streams {
        listener.set_nonblocking(true).map_err(io)?;
        tokio::spawn(serve_stream(sockets.pod, TcpListener::from_std(listener).map_err(io)?));
    }
    for socket in sockets.datagrams {
        socket.set_nonblocking(true).map_err(io)?;
        tokio::spawn(serve_datagram(sockets.pod, UdpSocket::from_std(socket).map_err(io)?));
    }
    Ok(())
}

async fn serve_stream(pod: &'static str, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(answer_stream(pod, stream, peer));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn answer_stream(pod: &'static str, mut stream: TcpStream, peer: SocketAddr) {
    let mut request = [0u8; 64];
    // The request's content does not matter; a client that sends nothing is answered too.
    let _ = tokio::time::timeout(REQUEST_WAIT, stream.read(&mut request)).await;
    let _ = stream.write_all(reply_line(pod, peer).as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn serve_datagram(pod: &'static str, socket: UdpSocket) {
    let mut request = [0u8; 512];
    loop {
        match socket.recv_from(&mut request).await {
            Ok((_, peer)) => {
                let _ = socket.send_to(reply_line(pod, peer).as_bytes(), peer).await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
