//! ctnetlink messages as bytes (`linux/netfilter/nfnetlink_conntrack.h`): a dump request, a
//! delete request by original tuple, and the reading of dumped flows, acks and errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::nfnetlink::{NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, attrs, get, push_attr};

pub(crate) const AF_INET: u8 = 2;
pub(crate) const AF_INET6: u8 = 10;
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const ENOENT: i32 = 2;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// One direction of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (17: UDP).
    pub protocol: u8,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// A conntrack flow: what the client sent (original) and what the answer looks like (reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The original direction.
    pub original: Tuple,
    /// The reply direction (its source is the endpoint after DNAT).
    pub reply: Tuple,
}

/// `NLM_F_DUMP` of every flow of `family` (AF_INET or AF_INET6).
pub fn dump_request(family: u8, seq: u32) -> Vec<u8> {
    message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, family, seq, &[])
}

/// Deletes the flow whose original direction is `original`; the kernel acks.
pub fn delete_request(original: &Tuple, family: u8, seq: u32) -> Vec<u8> {
    let mut attrs = Vec::new();
    let tuple = tuple_attrs(original);
    push_attr(&mut attrs, CTA_TUPLE_ORIG | NLA_F_NESTED, &tuple);
    message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, family, seq, &attrs)
}

fn message(kind: u16, flags: u16, family: u8, seq: u32, attrs: &[u8]) -> Vec<u8> {
    crate::nfnetlink::message(NFNL_SUBSYS_CTNETLINK, kind, flags, family, seq, attrs)
}

fn tuple_attrs(tuple: &Tuple) -> Vec<u8> {
    let mut ip = Vec::new();
    match (tuple.src, tuple.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            push_attr(&mut ip, CTA_IP_V4_SRC, &src.octets());
            push_attr(&mut ip, CTA_IP_V4_DST, &dst.octets());
        }
        (src, dst) => {
            push_attr(&mut ip, CTA_IP_V6_SRC, &v6(src).octets());
            push_attr(&mut ip, CTA_IP_V6_DST, &v6(dst).octets());
        }
    }
    let mut proto = Vec::new();
    push_attr(&mut proto, CTA_PROTO_NUM, &[tuple.protocol]);
    push_attr(&mut proto, CTA_PROTO_SRC_PORT, &tuple.src_port.to_be_bytes());
    push_attr(&mut proto, CTA_PROTO_DST_PORT, &tuple.dst_port.to_be_bytes());
    let mut out = Vec::new();
    push_attr(&mut out, CTA_TUPLE_IP | NLA_F_NESTED, &ip);
    push_attr(&mut out, CTA_TUPLE_PROTO | NLA_F_NESTED, &proto);
    out
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Appends the flow of a dumped message (`kind` is the nlmsg type) to `flows`.
pub fn read_flow(kind: u16, payload: &[u8], flows: &mut Vec<Flow>) {
    if kind == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
        && let Some(flow) = parse_flow(payload)
    {
        flows.push(flow);
    }
}

fn parse_flow(body: &[u8]) -> Option<Flow> {
    let top = attrs(body);
    Some(Flow { original: parse_tuple(get(&top, CTA_TUPLE_ORIG)?)?, reply: parse_tuple(get(&top, CTA_TUPLE_REPLY)?)? })
}

fn parse_tuple(buf: &[u8]) -> Option<Tuple> {
    let tuple = attrs(buf);
    let ip = attrs(get(&tuple, CTA_TUPLE_IP)?);
    let proto = attrs(get(&tuple, CTA_TUPLE_PROTO)?);
    let (src, dst) = match (get(&ip, CTA_IP_V4_SRC), get(&ip, CTA_IP_V4_DST)) {
        (Some(s), Some(d)) => (IpAddr::V4(v4_of(s)?), IpAddr::V4(v4_of(d)?)),
        _ => (IpAddr::V6(v6_of(get(&ip, CTA_IP_V6_SRC)?)?), IpAddr::V6(v6_of(get(&ip, CTA_IP_V6_DST)?)?)),
    };
    let port = |kind| get(&proto, kind).and_then(|b| Some(u16::from_be_bytes(b.try_into().ok()?)));
    Some(Tuple {
        src,
        dst,
        protocol: *get(&proto, CTA_PROTO_NUM)?.first()?,
        src_port: port(CTA_PROTO_SRC_PORT).unwrap_or(0),
        dst_port: port(CTA_PROTO_DST_PORT).unwrap_or(0),
    })
}

fn v4_of(b: &[u8]) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))
}

fn v6_of(b: &[u8]) -> Option<Ipv6Addr> {
    Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))
}

/// A dumped flow message as the kernel writes it (for tests of the reader).
#[cfg(test)]
pub(crate) fn flow_message(flow: &Flow, family: u8, seq: u32) -> Vec<u8> {
    let mut attrs = Vec::new();
    push_attr(&mut attrs, CTA_TUPLE_ORIG | NLA_F_NESTED, &tuple_attrs(&flow.original));
    push_attr(&mut attrs, CTA_TUPLE_REPLY | NLA_F_NESTED, &tuple_attrs(&flow.reply));
    message(IPCTNL_MSG_CT_NEW, 0, family, seq, &attrs)
}
