//! Reading one named nftables counter over netlink (`NFT_MSG_GETOBJ`): `nft list counter`
//! would fetch the whole ruleset first (seconds with 10,000 services), this asks for the one
//! object.

use kproxy_core::IpFamily;

use crate::command::CommandError;
use crate::nfnetlink::socket::Socket;
use crate::nfnetlink::{End, NLM_F_ACK, NLM_F_REQUEST, attrs, errno_error, get, message, on_own_thread, push_attr};

const TOOL: &str = "nftnetlink";
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_GETOBJ: u16 = 19;
const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
const NFT_OBJECT_COUNTER: u32 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const ENOENT: i32 = 2;

/// The packets counted by counter `name` of table `table` (`ip`/`ip6` by `family`) in
/// `netns` (`None`: the calling thread's namespace); `None` when there is no such counter
/// (or table).
pub async fn named_counter_packets(
    netns: Option<String>,
    family: IpFamily,
    table: &str,
    name: &str,
) -> Result<Option<u64>, CommandError> {
    let request = get_request(family, table, name, 1);
    on_own_thread(TOOL, move || {
        let socket = Socket::open(TOOL, netns.as_deref())?;
        socket.send(&request)?;
        let mut packets = None;
        let end = socket.read_until_end(1, |kind, payload| {
            if let Some(n) = read_packets(kind, payload) {
                packets = Some(n);
            }
        })?;
        match end {
            End::Done | End::Error(0) => Ok(packets),
            End::Error(ENOENT) => Ok(None),
            End::Error(errno) => Err(errno_error(TOOL, "get counter", errno)),
        }
    })
    .await
}

/// `NFT_MSG_GETOBJ` of counter `name` in `table`.
fn get_request(family: IpFamily, table: &str, name: &str, seq: u32) -> Vec<u8> {
    let mut attributes = Vec::new();
    push_attr(&mut attributes, NFTA_OBJ_TABLE, &nul_terminated(table));
    push_attr(&mut attributes, NFTA_OBJ_NAME, &nul_terminated(name));
    push_attr(&mut attributes, NFTA_OBJ_TYPE, &NFT_OBJECT_COUNTER.to_be_bytes());
    let nfproto = match family {
        IpFamily::V4 => NFPROTO_IPV4,
        IpFamily::V6 => NFPROTO_IPV6,
    };
    message(NFNL_SUBSYS_NFTABLES, NFT_MSG_GETOBJ, NLM_F_REQUEST | NLM_F_ACK, nfproto, seq, &attributes)
}

fn nul_terminated(text: &str) -> Vec<u8> {
    text.bytes().chain([0]).collect()
}

/// The packets of a counter object message (`kind` is its nlmsg type).
fn read_packets(kind: u16, payload: &[u8]) -> Option<u64> {
    if kind != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWOBJ {
        return None;
    }
    let object = attrs(payload);
    let data = attrs(get(&object, NFTA_OBJ_DATA)?);
    Some(u64::from_be_bytes(get(&data, NFTA_COUNTER_PACKETS)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfnetlink::NLA_F_NESTED;

    #[test]
    fn a_get_names_table_counter_and_type_and_the_answer_gives_packets() {
        let request = get_request(IpFamily::V6, "kproxy", "c1", 3);
        assert_eq!(u16::from_ne_bytes([request[4], request[5]]), 0x0a13, "NFNL_SUBSYS_NFTABLES << 8 | GETOBJ");
        assert_eq!(request[16], NFPROTO_IPV6);
        assert!(request.windows(7).any(|w| w == b"kproxy\0"));
        let mut data = Vec::new();
        push_attr(&mut data, 1, &720u64.to_be_bytes());
        push_attr(&mut data, NFTA_COUNTER_PACKETS, &12u64.to_be_bytes());
        let mut object = Vec::new();
        push_attr(&mut object, NFTA_OBJ_NAME, b"c1\0");
        push_attr(&mut object, NFTA_OBJ_DATA | NLA_F_NESTED, &data);
        assert_eq!(read_packets((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWOBJ, &object), Some(12));
        assert_eq!(read_packets((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ, &object), None);
    }
}
