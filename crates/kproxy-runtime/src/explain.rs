//! `/explain` on the metrics server: the daemon's answer to `kproxy explain --daemon`.
//!
//! The HTTP handler parses the query (`dst=ADDR:PORT[/PROTO]`, optional `from=IP` and
//! `proto=tcp|udp|sctp`) and hands it through an [`ExplainHandle`] to the task that owns
//! the proxy loop and the dataplane, which answers with
//! [`explain_with`](kproxy_core::explain_with) on the state it last programmed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use kproxy_core::explain::{Destination, Explanation, Query, parse_protocol};
use tokio::sync::{mpsc, oneshot};

/// How many questions may wait for the proxy task.
const QUEUE: usize = 16;
/// How long a question may wait for its answer (a sync in progress delays it).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One question to the proxy task, with where to send the answer.
#[derive(Debug)]
pub struct ExplainRequest {
    /// The question.
    pub query: Query,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Explanation>,
}

/// Sends questions to the proxy task; cloned into the HTTP server.
#[derive(Debug, Clone)]
pub struct ExplainHandle(mpsc::Sender<ExplainRequest>);

impl ExplainHandle {
    /// A handle and the receiver the proxy task answers from.
    pub fn channel() -> (Self, mpsc::Receiver<ExplainRequest>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(tx), rx)
    }

    /// Asks `query`; `None` when the proxy task is gone or does not answer within
    /// [`ANSWER_TIMEOUT`].
    pub async fn ask(&self, query: Query) -> Option<Explanation> {
        let (reply, answer) = oneshot::channel();
        self.0.send(ExplainRequest { query, reply }).await.ok()?;
        tokio::time::timeout(ANSWER_TIMEOUT, answer).await.ok()?.ok()
    }
}

/// The query of `GET /explain?dst=…&from=…&proto=…`; the error says what is wrong.
pub fn parse_query(params: &HashMap<String, String>) -> Result<Query, String> {
    let dst = params.get("dst").ok_or("missing dst=ADDR:PORT[/PROTO]")?;
    let mut destination: Destination =
        dst.parse().map_err(|e: kproxy_core::explain::ParseDestinationError| e.to_string())?;
    if let Some(proto) = params.get("proto").filter(|p| !p.is_empty()) {
        destination.protocol = parse_protocol(proto).map_err(|e| e.to_string())?;
    }
    let source = match params.get("from").filter(|f| !f.is_empty()) {
        Some(from) => Some(from.parse::<IpAddr>().map_err(|_| format!("invalid source address {from:?}"))?),
        None => None,
    };
    Ok(Query { destination, source })
}

#[cfg(test)]
mod tests {
    use kproxy_core::Protocol;

    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn parses_destination_source_and_protocol() {
        let q = parse_query(&params(&[("dst", "[fd00::1]:53"), ("proto", "udp"), ("from", "fd00::9")])).expect("valid");
        assert_eq!(q.destination.to_string(), "[fd00::1]:53/udp");
        assert_eq!(q.source, Some("fd00::9".parse().expect("ip")));
        let q = parse_query(&params(&[("dst", "10.0.0.1:80/sctp")])).expect("valid");
        assert_eq!((q.destination.protocol, q.source), (Protocol::Sctp, None));
    }

    #[test]
    fn says_what_is_wrong() {
        assert!(parse_query(&params(&[])).expect_err("no dst").contains("missing dst"));
        assert!(parse_query(&params(&[("dst", "nope")])).expect_err("bad dst").contains("invalid destination"));
        let bad_from = parse_query(&params(&[("dst", "10.0.0.1:80"), ("from", "x")])).expect_err("bad from");
        assert!(bad_from.contains("invalid source"), "{bad_from}");
        assert!(parse_query(&params(&[("dst", "10.0.0.1:80"), ("proto", "icmp")])).is_err());
    }
}
