//! nfnetlink_acct messages as bytes (`linux/netfilter/nfnetlink_acct.h`): create a counter,
//! get one by name, read the kernel's answer.

use crate::nfnetlink::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, attrs, get, message, push_attr};

const NFNL_SUBSYS_ACCT: u16 = 7;
const NFNL_MSG_ACCT_NEW: u16 = 0;
const NFNL_MSG_ACCT_GET: u16 = 1;
const NFNL_MSG_ACCT_DEL: u16 = 3;
const NFACCT_NAME: u16 = 1;
const NFACCT_PKTS: u16 = 2;
const NFACCT_BYTES: u16 = 3;
/// `NFACCT_NAME_MAX`, with the terminating NUL.
const NAME_MAX: usize = 32;
const AF_UNSPEC: u8 = 0;

/// A counter as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counter {
    pub(crate) name: String,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
}

/// Creates the counter `name` (answered with an ack, or EBUSY when it exists).
pub(crate) fn new_request(name: &str, seq: u32) -> Vec<u8> {
    message(
        NFNL_SUBSYS_ACCT,
        NFNL_MSG_ACCT_NEW,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        AF_UNSPEC,
        seq,
        &name_attr(name),
    )
}

/// Asks for the counter `name` (answered with the counter then an ack, or ENOENT).
pub(crate) fn get_request(name: &str, seq: u32) -> Vec<u8> {
    message(NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_GET, NLM_F_REQUEST | NLM_F_ACK, AF_UNSPEC, seq, &name_attr(name))
}

/// Deletes the counter `name` (EBUSY while a rule uses it).
pub(crate) fn delete_request(name: &str, seq: u32) -> Vec<u8> {
    message(NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_DEL, NLM_F_REQUEST | NLM_F_ACK, AF_UNSPEC, seq, &name_attr(name))
}

fn name_attr(name: &str) -> Vec<u8> {
    let mut text: Vec<u8> = name.bytes().take(NAME_MAX - 1).collect();
    text.push(0);
    let mut out = Vec::new();
    push_attr(&mut out, NFACCT_NAME, &text);
    out
}

/// The counter a message of type `kind` carries, if it is one.
pub(crate) fn read_counter(kind: u16, payload: &[u8]) -> Option<Counter> {
    if kind != (NFNL_SUBSYS_ACCT << 8) | NFNL_MSG_ACCT_NEW {
        return None;
    }
    let attrs = attrs(payload);
    let name = get(&attrs, NFACCT_NAME)?;
    let name = String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
    let be64 = |kind| get(&attrs, kind).and_then(|b| Some(u64::from_be_bytes(b.try_into().ok()?)));
    Some(Counter { name, packets: be64(NFACCT_PKTS)?, bytes: be64(NFACCT_BYTES).unwrap_or(0) })
}

/// A counter message as the kernel writes it (for tests of the reader).
#[cfg(test)]
pub(crate) fn counter_message(counter: &Counter, seq: u32) -> Vec<u8> {
    let mut attrs = name_attr(&counter.name);
    push_attr(&mut attrs, NFACCT_PKTS, &counter.packets.to_be_bytes());
    push_attr(&mut attrs, NFACCT_BYTES, &counter.bytes.to_be_bytes());
    message(NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_NEW, 0, AF_UNSPEC, seq, &attrs)
}
