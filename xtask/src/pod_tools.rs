//! Tools the demo and benchmarks run inside namespaces: a pod's server and a client.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Answers every TCP connection on `port` with `name` and the peer's address, forever.
pub(crate) fn serve(name: &str, port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(stream, "{name} {peer}");
    }
    Ok(())
}

/// Connects `count` times to `addr` and prints how many answers came from each pod.
pub(crate) fn request(addr: &str, count: usize) -> anyhow::Result<()> {
    let mut by_pod: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..count {
        let answer = ask(addr).unwrap_or_else(|e| format!("error: {e}"));
        let pod = answer.split_whitespace().next().unwrap_or("?").to_owned();
        *by_pod.entry(pod).or_default() += 1;
    }
    for (pod, n) in by_pod {
        println!("    {pod:<10} {n:>3} {}", "#".repeat(n));
    }
    Ok(())
}

/// One request: the first line of the answer.
pub(crate) fn ask(addr: &str) -> anyhow::Result<String> {
    let addr = addr.parse()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// A plain HTTP/1.0 GET of `http://addr/path`: the response body.
pub(crate) fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

/// Connects `count` times to `addr`, reading the first byte each time; prints the
/// connect-plus-first-byte latencies in microseconds, one per line.
pub(crate) fn latency(addr: &str, count: usize) -> anyhow::Result<()> {
    let addr = addr.parse()?;
    let mut out = String::new();
    for _ in 0..count {
        let started = std::time::Instant::now();
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte)?;
        out.push_str(&format!("{}\n", started.elapsed().as_micros()));
    }
    print!("{out}");
    Ok(())
}
