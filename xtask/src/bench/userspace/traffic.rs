//! Traffic for the userspace benchmark, on threads that join a namespace of the bench's
//! cluster: a bulk sender and receiver, a one-byte server and its clients, and a server
//! that holds connections open.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sched::{CloneFlags, setns};

/// Each write and read of the bulk tools.
const CHUNK: usize = 256 * 1024;

/// Runs `f` on a new thread inside namespace `ns` (sockets it makes stay there).
pub(super) fn spawn_in<T, F>(ns: &str, f: F) -> JoinHandle<anyhow::Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).with_context(|| format!("open {path}"))?;
        setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {path}"))?;
        f()
    })
}

/// Runs `f` inside `ns` and waits for it.
pub(super) fn run_in<T, F>(ns: &str, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    spawn_in(ns, f).join().map_err(|_| anyhow::anyhow!("thread in {ns} panicked"))?
}

/// What a server does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Serve {
    /// Reads until end of stream (on a thread of its own), then closes.
    Sink,
    /// Writes one byte and closes.
    OneByte,
    /// Keeps the connection open until [`Server::release`].
    Hold,
}

/// A server on `0.0.0.0:port` inside a namespace, stopped on drop.
pub(super) struct Server {
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Starts `threads` accept loops serving `serve` on `port` in `ns`.
    pub(super) fn start(ns: &str, port: u16, serve: Serve, threads: usize) -> anyhow::Result<Self> {
        let listener = run_in(ns, move || Ok(TcpListener::bind(("0.0.0.0", port))?))?;
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for _ in 0..threads {
            let (listener, stop, held) = (listener.try_clone()?, stop.clone(), held.clone());
            handles.push(std::thread::spawn(move || accept_loop(&listener, serve, &stop, &held)));
        }
        Ok(Self { listener, stop, held, threads: handles })
    }

    /// Connections held so far.
    pub(super) fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Closes every held connection.
    pub(super) fn release(&self) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

fn accept_loop(
    listener: &TcpListener,
    serve: Serve,
    stop: &AtomicBool,
    held: &Mutex<Vec<TcpStream>>,
) -> anyhow::Result<()> {
    loop {
        let (mut stream, _) = match listener.accept() {
            _ if stop.load(Ordering::Acquire) => return Ok(()),
            Ok(accepted) => accepted,
            Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(e.into()),
        };
        match serve {
            Serve::Sink => drop(std::thread::spawn(move || sink(stream))),
            Serve::OneByte => drop(stream.write_all(b"x")),
            Serve::Hold => held.lock().unwrap_or_else(PoisonError::into_inner).push(stream),
        }
    }
}

fn sink(mut stream: TcpStream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        match stream.read(&mut buf)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.release();
        // A listening socket shut down fails every blocked accept (Linux): the loops end.
        let _ = nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Bulk throughput of `streams` connections from `ns` to `addr` for `duration`, in Gbit/s:
/// bytes written, counted when the receiver has read them all and closed.
pub(super) fn bulk(ns: &str, addr: SocketAddr, streams: usize, duration: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    let senders: Vec<_> = (0..streams).map(|_| spawn_in(ns, move || send_for(addr, duration))).collect();
    let mut bytes = 0u64;
    for sender in senders {
        bytes += sender.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
    }
    Ok(bytes as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e9)
}

fn send_for(addr: SocketAddr, duration: Duration) -> anyhow::Result<u64> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    let buf = vec![0x5au8; CHUNK];
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration {
        stream.write_all(&buf)?;
        sent += CHUNK as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    // The receiver closes once it has read everything.
    let mut rest = [0u8; 16];
    while stream.read(&mut rest)? > 0 {}
    Ok(sent)
}

/// One path's connection rate, and the CPU time each connection cost the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rate {
    /// New connections per second.
    pub(super) per_second: f64,
    /// CPU time used per connection by the processes `cpu` counts.
    pub(super) cpu_per_connection: Duration,
}

/// New connections per second (connect, read the one byte, close) from `threads` clients
/// in `ns` to each of `addrs`, measured in `slices` turns of `slice` each, the two taking
/// turns (in either order): both see the same load from the rest of the machine. `cpu`:
/// the CPU time used so far by every process a connection's work runs in.
pub(super) fn connect_rates(
    ns: &str,
    addrs: [SocketAddr; 2],
    threads: usize,
    (slice, slices): (Duration, usize),
    cpu: &dyn Fn() -> anyhow::Result<Duration>,
) -> anyhow::Result<[Rate; 2]> {
    let (mut made, mut spent, mut used) = ([0u64; 2], [Duration::ZERO; 2], [Duration::ZERO; 2]);
    for turn in 0..slices {
        for i in turn_order(turn) {
            let (started, cpu_before) = (Instant::now(), cpu()?);
            made[i] += connects(ns, addrs[i], threads, slice)?;
            spent[i] += started.elapsed();
            used[i] += cpu()?.saturating_sub(cpu_before);
        }
    }
    Ok([0, 1].map(|i| Rate {
        per_second: made[i] as f64 / spent[i].as_secs_f64(),
        cpu_per_connection: used[i] / u32::try_from(made[i].max(1)).unwrap_or(u32::MAX),
    }))
}

/// Which of two paths goes first in `turn`: each as often as the other.
fn turn_order(turn: usize) -> [usize; 2] {
    if turn.is_multiple_of(2) { [0, 1] } else { [1, 0] }
}

/// Connections made (connect, read the one byte, close) from `threads` clients in `ns` to
/// `addr` within `duration`.
fn connects(ns: &str, addr: SocketAddr, threads: usize, duration: Duration) -> anyhow::Result<u64> {
    let started = Instant::now();
    let clients: Vec<_> = (0..threads)
        .map(|_| {
            spawn_in(ns, move || {
                let mut n = 0u64;
                while started.elapsed() < duration {
                    one_byte(addr)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0u64;
    for client in clients {
        total += client.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    Ok(total)
}

fn one_byte(addr: SocketAddr) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    Ok(())
}

/// `count` sequential connect-plus-first-byte latencies from `ns` to `addr`.
pub(super) fn latencies(ns: &str, addr: SocketAddr, count: usize) -> anyhow::Result<Vec<Duration>> {
    run_in(ns, move || (0..count).map(|_| latency(addr)).collect())
}

/// `count` connect-plus-first-byte latencies from `ns` to each of `addrs`, one connection
/// to each in turn (in either order): both see the same load from the rest of the machine.
pub(super) fn paired_latencies(ns: &str, addrs: [SocketAddr; 2], count: usize) -> anyhow::Result<[Vec<Duration>; 2]> {
    run_in(ns, move || {
        let mut out = [Vec::with_capacity(count), Vec::with_capacity(count)];
        for turn in 0..count {
            for i in turn_order(turn) {
                out[i].push(latency(addrs[i])?);
            }
        }
        Ok(out)
    })
}

fn latency(addr: SocketAddr) -> anyhow::Result<Duration> {
    let started = Instant::now();
    one_byte(addr)?;
    Ok(started.elapsed())
}

/// Opens `count` connections from `ns` to `addr` and keeps them.
pub(super) fn open_idle(ns: &str, addr: SocketAddr, count: usize) -> anyhow::Result<Vec<TcpStream>> {
    run_in(ns, move || (0..count).map(|_| Ok(TcpStream::connect_timeout(&addr, Duration::from_secs(5))?)).collect())
}
