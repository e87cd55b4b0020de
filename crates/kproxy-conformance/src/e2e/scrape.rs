//! Reads the daemon's `/metrics` from inside node1's namespace (the server is bound to
//! node1's loopback) and picks out the sync-progress series.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::{Error, netns};

/// How long connecting, sending or reading may take.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The daemon's sync progress, as one scrape of `/metrics` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Progress {
    /// `kubeproxy_sync_proxy_rules_last_timestamp_seconds`: the last successful sync.
    pub(super) last_sync: f64,
    /// `kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds`: the last change handled.
    pub(super) last_queued: f64,
    /// `kubeproxy_sync_proxy_rules_service_changes_total`: Service events handled.
    pub(super) service_changes: f64,
    /// `kubeproxy_sync_proxy_rules_endpoint_changes_total`: EndpointSlice events handled.
    pub(super) endpoint_changes: f64,
    /// Service and endpoint changes handled but not programmed yet.
    pub(super) pending: f64,
}

/// Scrapes `http://<addr>/metrics` from inside namespace `netns`.
pub(super) async fn scrape(netns: &str, addr: SocketAddr) -> Result<Progress, Error> {
    parse(&scrape_text(netns, addr).await?)
}

/// The text of `http://<addr>/metrics`, fetched from inside namespace `netns`.
pub(super) async fn scrape_text(netns: &str, addr: SocketAddr) -> Result<String, Error> {
    netns::in_netns_async(netns, move || get(addr, "/metrics")).await?
}

/// The value of the unlabelled series `name` in an OpenMetrics text.
pub(super) fn value_of(text: &str, name: &str) -> Option<f64> {
    text.lines().filter_map(|line| line.strip_prefix(name)?.strip_prefix(' ')).find_map(|v| v.trim().parse().ok())
}

/// A plain HTTP/1.1 GET; the body of a 200 answer.
fn get(addr: SocketAddr, path: &str) -> Result<String, Error> {
    let io = |e: std::io::Error| Error::new(format!("GET http://{addr}{path}: {e}"));
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(io)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(io)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(Error::new(format!("GET http://{addr}{path}: {}", head.lines().next().unwrap_or_default())));
    }
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Err(Error::new(format!("GET http://{addr}{path}: chunked answers are not supported")));
    }
    Ok(body.to_owned())
}

/// The [`Progress`] series of an OpenMetrics text; an error names a missing one. A series
/// with an `ip_family` label is read for IPv4 (the daemon syncs both families at once).
pub(super) fn parse(text: &str) -> Result<Progress, Error> {
    let value = |name: &str| {
        text.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(name)?;
                rest.strip_prefix(' ').or_else(|| rest.strip_prefix(r#"{ip_family="IPv4"} "#))
            })
            .find_map(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| Error::new(format!("no {name} in the daemon's /metrics")))
    };
    let prefix = "kubeproxy_sync_proxy_rules_";
    let series = |suffix: &str| value(&format!("{prefix}{suffix}"));
    Ok(Progress {
        last_sync: series("last_timestamp_seconds")?,
        last_queued: series("last_queued_timestamp_seconds")?,
        service_changes: series("service_changes_total")?,
        endpoint_changes: series("endpoint_changes_total")?,
        pending: series("service_changes_pending")? + series("endpoint_changes_pending")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_progress_series() {
        let text = "# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\n\
            kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv6\"} 1700000000.5\n\
            kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} 1700000000.25\n\
            kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family=\"IPv4\"} 1700000000.125\n\
            kubeproxy_sync_proxy_rules_service_changes_total 3\n\
            kubeproxy_sync_proxy_rules_endpoint_changes_total 4\n\
            kubeproxy_sync_proxy_rules_service_changes_pending 1\n\
            kubeproxy_sync_proxy_rules_endpoint_changes_pending 0\n# EOF\n";
        let progress = parse(text).expect("parses");
        assert_eq!(progress.last_sync, 1_700_000_000.25);
        assert_eq!(progress.last_queued, 1_700_000_000.125);
        assert_eq!((progress.service_changes, progress.endpoint_changes, progress.pending), (3.0, 4.0, 1.0));
        assert!(parse("kubeproxy_sync_proxy_rules_last_timestamp_seconds 1\n").is_err());
    }
}
