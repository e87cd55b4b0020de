//! Asking a running daemon: `GET /explain` on its metrics server, over plain HTTP/1.1.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use kproxy_core::explain::{Explanation, Query};
use kproxy_runtime::config::ProxyConfig;

use super::Failure;

/// How long connecting, sending and reading may each take (the daemon answers between
/// syncs, within its own 10-second limit).
const TIMEOUT: Duration = Duration::from_secs(15);

/// The daemon's metrics address as a URL (an unspecified bind address is asked on loopback);
/// `None` when the metrics server is disabled.
pub fn default_url(config: &ProxyConfig) -> Option<String> {
    let mut addr = config.metrics_bind_address?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    Some(format!("http://{addr}"))
}

/// Asks the daemon at `url` about `query`.
pub fn ask(url: &str, query: &Query) -> Result<Explanation, Failure> {
    let authority = authority(url)?;
    let mut path = format!("/explain?dst={}", encode(&query.destination.to_string()));
    if let Some(source) = query.source {
        path.push_str(&format!("&from={}", encode(&source.to_string())));
    }
    let (status, body) = get(&authority, &path).map_err(|e| Failure::Other(format!("cannot ask {url}: {e}")))?;
    match status {
        200 => serde_json::from_str(&body)
            .map_err(|e| Failure::Other(format!("{url} answered something else than an explanation: {e}"))),
        400 => Err(Failure::Usage(error_message(&body))),
        404 => Err(Failure::Other(format!("{url} does not serve /explain (an older kproxy, or not kproxy)"))),
        _ => Err(Failure::Other(format!("{url} answered {status}: {}", error_message(&body)))),
    }
}

/// `host:port` of an `http://host:port[/…]` URL.
fn authority(url: &str) -> Result<String, Failure> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Failure::Usage(format!("invalid --daemon {url:?}: expected http://HOST:PORT")))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(Failure::Usage(format!("invalid --daemon {url:?}: expected http://HOST:PORT")));
    }
    Ok(authority.to_owned())
}

fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}

/// `GET path` with `Connection: close`: the status and the body.
fn get(authority: &str, path: &str) -> std::io::Result<(u16, String)> {
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{authority} resolves to no address")))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    Ok((status, body.to_owned()))
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_queries_are_written_as_http_wants() {
        assert_eq!(encode("[fd00::1]:53/udp"), "%5Bfd00%3A%3A1%5D%3A53%2Fudp");
        assert_eq!(authority("http://127.0.0.1:10249/").ok(), Some("127.0.0.1:10249".to_owned()));
        assert!(matches!(authority("https://x:1"), Err(Failure::Usage(_))));
        assert!(matches!(authority("http://"), Err(Failure::Usage(_))));
    }
}
