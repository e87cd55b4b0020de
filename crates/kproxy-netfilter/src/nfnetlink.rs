//! What every nfnetlink client here shares (ctnetlink for conntrack, nfnetlink_acct for
//! nfacct): messages as bytes ([`message`], [`push_attr`], [`attrs`], [`read_replies`]) and
//! a blocking socket ([`socket`]) used on a thread of its own ([`on_own_thread`]), inside a
//! named network namespace when given one.

pub(crate) mod socket;

use crate::command::CommandError;

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NFGENMSG_LEN: usize = 4;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// A dump's DONE.
    Done,
    /// The kernel's answer as an errno (0: success ack; -1: a message we cannot read).
    Error(i32),
}

/// One nfnetlink request or message: `subsys`'s message `kind`, the nfgenmsg header for
/// `family`, then `attrs`.
pub(crate) fn message(subsys: u16, kind: u16, flags: u16, family: u8, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    out.extend_from_slice(&((subsys << 8) | kind).to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, version NFNETLINK_V0, resource id (big endian) 0.
    out.extend_from_slice(&[family, 0, 0, 0]);
    out.extend_from_slice(attrs);
    out
}

/// Appends one attribute, padded to 4 bytes.
pub(crate) fn push_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

/// Reads one `recv` worth of messages answering request `seq`: each message of the
/// request's subsystem goes to `on_message` as `(type, payload after nfgenmsg)`; returns
/// the request's end when it is in this batch, `None` when more is to come.
pub(crate) fn read_replies(mut buf: &[u8], seq: u32, mut on_message: impl FnMut(u16, &[u8])) -> Option<End> {
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Some(End::Error(-1));
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let msg_seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let body = &buf[NLMSG_HDRLEN..len];
        buf = &buf[align(len).min(buf.len())..];
        if msg_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Some(End::Done),
            NLMSG_ERROR => {
                let errno = body.get(0..4).map_or(-1, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                return Some(End::Error(-errno));
            }
            kind => {
                if let Some(payload) = body.get(NFGENMSG_LEN..) {
                    on_message(kind, payload);
                }
            }
        }
    }
    None
}

pub(crate) fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// The attributes of `buf` as `(type, payload)`.
pub(crate) fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        buf = &buf[align(len).min(buf.len())..];
    }
    out
}

/// The payload of the first attribute of type `kind`.
pub(crate) fn get<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

/// Runs `work` on a thread of its own (entering a namespace changes the calling thread
/// for good) and waits for it.
pub(crate) async fn on_own_thread<T: Send + 'static>(
    tool: &'static str,
    work: impl FnOnce() -> Result<T, CommandError> + Send + 'static,
) -> Result<T, CommandError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("kproxy-{tool}"))
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| io_error(tool, e))?;
    rx.await.map_err(|_| io_error(tool, std::io::Error::other("netlink thread died")))?
}

pub(crate) fn io_error(tool: &str, source: std::io::Error) -> CommandError {
    CommandError::Io { tool: tool.to_owned(), source }
}

/// A request the kernel refused with `errno`.
pub(crate) fn errno_error(tool: &str, step: &str, errno: i32) -> CommandError {
    let source = std::io::Error::from_raw_os_error(errno);
    CommandError::Failed {
        tool: format!("{tool} {step}"),
        status: format!("errno {errno}"),
        stderr: source.to_string(),
    }
}

/// The kernel's DONE or ERROR message answering `seq` (for tests of the readers).
#[cfg(test)]
pub(crate) fn end_message(error: Option<i32>, seq: u32) -> Vec<u8> {
    let (kind, body) = match error {
        None => (NLMSG_DONE, 0i32.to_ne_bytes().to_vec()),
        Some(errno) => (NLMSG_ERROR, (-errno).to_ne_bytes().iter().copied().chain([0u8; 16]).collect()),
    };
    let len = NLMSG_HDRLEN + body.len();
    let mut out = Vec::new();
    out.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&body);
    out
}
