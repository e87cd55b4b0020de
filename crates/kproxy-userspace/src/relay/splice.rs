//! Zero-copy relaying of one TCP connection: bytes move socket → pipe → socket with
//! `splice(2)`, never through user memory. Pipes come from a pool and go back to it as
//! soon as they are empty, so an idle connection holds none.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::sys::socket::{Shutdown, shutdown};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// A pipe with nothing in it.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

/// Empty pipes for reuse.
#[derive(Debug)]
pub struct PipePool {
    idle: Mutex<Vec<Pipe>>,
    size: usize,
    max_idle: usize,
}

impl PipePool {
    /// A pool of pipes of `size` bytes (as the kernel grants), keeping at most `max_idle`.
    pub fn new(size: usize, max_idle: usize) -> Self {
        Self { idle: Mutex::new(Vec::new()), size, max_idle }
    }

    /// An empty pipe: an idle one, or a new one.
    pub fn take(&self) -> io::Result<Pipe> {
        if let Some(pipe) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(pipe);
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let asked = i32::try_from(self.size).unwrap_or(i32::MAX);
        // Refused (pipe-max-size, per-user limits): the default capacity stays.
        let capacity = fcntl(&write, FcntlArg::F_SETPIPE_SZ(asked))
            .or_else(|_| fcntl(&write, FcntlArg::F_GETPIPE_SZ))
            .map_or(1 << 16, |n| usize::try_from(n).unwrap_or(1 << 16));
        Ok(Pipe { read, write, capacity })
    }

    /// Returns an empty pipe to the pool (or closes it when the pool is full).
    pub fn give(&self, pipe: Pipe) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(pipe);
        }
    }

    /// Pipes waiting in the pool.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

const FLAGS: SpliceFFlags = SpliceFFlags::SPLICE_F_MOVE.union(SpliceFFlags::SPLICE_F_NONBLOCK);

/// Relays `a` ↔ `b` until both directions have ended. An end of stream from one side
/// becomes a write shutdown (FIN) to the other; an error ends both directions.
pub async fn relay(a: &TcpStream, b: &TcpStream, pipes: &PipePool) -> io::Result<(u64, u64)> {
    tokio::try_join!(pump(a, b, pipes), pump(b, a, pipes))
}

/// Pipe fills moved in one go before other tasks of the thread get a turn: a busy
/// stream must not starve the connections that share its thread.
const FILLS_PER_TURN: usize = 16;

/// How a burst ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Burst {
    /// `src` has nothing more for now.
    Drained,
    /// `src` may have more, but the turn is over.
    Yield,
    /// `src` has ended.
    Ended,
}

/// Moves bytes from `src` to `dst` until `src` ends; returns how many.
async fn pump(src: &TcpStream, dst: &TcpStream, pipes: &PipePool) -> io::Result<u64> {
    let mut total = 0;
    loop {
        src.readable().await?;
        let pipe = pipes.take()?;
        let (moved, how) = burst(src, dst, &pipe).await?;
        // Only empty pipes reach here: an error above drops the pipe with its bytes.
        pipes.give(pipe);
        total += moved;
        match how {
            Burst::Drained => {}
            Burst::Yield => tokio::task::yield_now().await,
            Burst::Ended => {
                // The peer may be gone already; then there is nothing left to tell it.
                let _ = shutdown(dst.as_raw_fd(), Shutdown::Write);
                return Ok(total);
            }
        }
    }
}

/// Splices what `src` has into `pipe` and on to `dst`, up to a turn's worth. Leaves
/// `pipe` empty.
async fn burst(src: &TcpStream, dst: &TcpStream, pipe: &Pipe) -> io::Result<(u64, Burst)> {
    let mut moved = 0u64;
    for _ in 0..FILLS_PER_TURN {
        let (filled, how) = fill(src, pipe)?;
        // Data followed by the end of the stream leaves with its FIN, as the sender's did:
        // a client that closes as soon as it has the data must not become the active closer.
        drain(pipe, dst, filled, how == Fill::Ended).await?;
        moved += filled as u64;
        match how {
            Fill::Full | Fill::Stopped => {}
            Fill::Drained => return Ok((moved, Burst::Drained)),
            Fill::Ended => return Ok((moved, Burst::Ended)),
        }
    }
    Ok((moved, Burst::Yield))
}

/// How filling a pipe stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// The pipe is full.
    Full,
    /// The pipe holds something, and splicing more would block: `src` may have nothing
    /// more, or the pipe may be out of slots (one per socket buffer fragment, however few
    /// bytes it holds). Empty the pipe and look again.
    Stopped,
    /// `src` has nothing more for now.
    Drained,
    /// `src` has ended.
    Ended,
}

/// Splices into `pipe` whatever `src` has, up to the pipe's capacity.
fn fill(src: &TcpStream, pipe: &Pipe) -> io::Result<(usize, Fill)> {
    let mut filled = 0;
    while filled < pipe.capacity {
        let len = pipe.capacity - filled;
        let spliced = if filled == 0 {
            // An empty pipe has room: "would block" is `src`'s, and its readiness is spent.
            src.try_io(Interest::READABLE, || into_pipe(src, pipe, len))
        } else {
            // "Would block" may be the pipe's: `src`'s readiness must stay, or bytes it
            // still holds would wait for more to arrive, which may never happen.
            into_pipe(src, pipe, len)
        };
        match spliced {
            Ok(0) => return Ok((filled, Fill::Ended)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled == 0 => return Ok((0, Fill::Drained)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((filled, Fill::Stopped)),
            Err(e) => return Err(e),
        }
    }
    Ok((filled, Fill::Full))
}

/// Splices `len` bytes out of `pipe` into `dst`; `last`: the stream ends after them, so
/// they may wait for the FIN that follows (`SPLICE_F_MORE`).
async fn drain(pipe: &Pipe, dst: &TcpStream, mut len: usize, last: bool) -> io::Result<()> {
    let flags = if last { FLAGS | SpliceFFlags::SPLICE_F_MORE } else { FLAGS };
    while len > 0 {
        match dst.try_io(Interest::WRITABLE, || out_of_pipe(pipe, dst, len, flags)) {
            Ok(n) => len -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn into_pipe(src: &TcpStream, pipe: &Pipe, len: usize) -> io::Result<usize> {
    splice(src.as_fd(), None, pipe.write.as_fd(), None, len, FLAGS).map_err(io::Error::from)
}

fn out_of_pipe(pipe: &Pipe, dst: &TcpStream, len: usize, flags: SpliceFFlags) -> io::Result<usize> {
    splice(pipe.read.as_fd(), None, dst.as_fd(), None, len, flags).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair of TCP streams on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_half_close_is_kept() {
        let pool = PipePool::new(1 << 16, 4);
        let (mut client, relay_front) = pair().await;
        let (relay_back, mut server) = pair().await;
        let relaying = tokio::spawn(async move {
            let pool = pool;
            let moved = relay(&relay_front, &relay_back, &pool).await;
            (moved, pool.idle())
        });
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&payload).await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got == payload, "payload corrupted ({} of {} bytes)", got.len(), payload.len());
        // The client's half is closed; the server still answers on the other half.
        server.write_all(b"done").await.unwrap();
        server.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"done");
        let (moved, idle) = relaying.await.unwrap();
        assert_eq!(moved.unwrap(), (payload.len() as u64, 4));
        assert!(idle >= 1, "pipes go back to the pool");
    }

    #[tokio::test]
    async fn small_segments_beyond_the_pipes_slots_all_pass() {
        // A one-page pipe has one slot: each small segment queued fills it.
        let pool = PipePool::new(4096, 4);
        let (mut client, relay_front) = pair().await;
        let (relay_back, mut server) = pair().await;
        client.set_nodelay(true).unwrap();
        // Queued before the relay starts, one segment each; then the client waits.
        for i in 0..20u8 {
            client.write_all(&[i; 10]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let relaying = tokio::spawn(async move { relay(&relay_front, &relay_back, &pool).await });
        let mut got = vec![0u8; 200];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), server.read_exact(&mut got)).await;
        assert!(read.is_ok(), "bytes held in the relay's socket were not relayed");
        assert!(got.chunks(10).enumerate().all(|(i, c)| c.iter().all(|b| usize::from(*b) == i)));
        drop((client, server));
        assert!(relaying.await.is_ok());
    }
}
