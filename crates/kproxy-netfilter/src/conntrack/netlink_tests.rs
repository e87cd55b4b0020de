use std::net::IpAddr;

use super::wire::{AF_INET, AF_INET6, IPPROTO_UDP, delete_request, dump_request, flow_message, read_flow};
use crate::nfnetlink::{End, end_message, read_replies};

/// Reads one batch answering `seq` as the socket side does.
fn parse_messages(buf: &[u8], seq: u32, flows: &mut Vec<Flow>) -> Option<End> {
    read_replies(buf, seq, |kind, payload| read_flow(kind, payload, flows))
}
use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A client's UDP flow to `vip:port`, DNATed to `endpoint:8053`.
fn udp_flow(client: &str, vip: &str, port: u16, endpoint: &str) -> Flow {
    Flow {
        original: Tuple { src: ip(client), dst: ip(vip), protocol: IPPROTO_UDP, src_port: 40000, dst_port: port },
        reply: Tuple { src: ip(endpoint), dst: ip(client), protocol: IPPROTO_UDP, src_port: 8053, dst_port: 40000 },
    }
}

#[test]
fn a_dump_request_is_a_ctnetlink_get_with_the_dump_flags() {
    let request = dump_request(AF_INET, 7);
    assert_eq!(request.len(), 20);
    assert_eq!(u32::from_ne_bytes(request[0..4].try_into().unwrap()), 20);
    assert_eq!(u16::from_ne_bytes(request[4..6].try_into().unwrap()), 0x0101, "NFNL_SUBSYS_CTNETLINK << 8 | GET");
    assert_eq!(u16::from_ne_bytes(request[6..8].try_into().unwrap()), 0x0301, "NLM_F_REQUEST | NLM_F_DUMP");
    assert_eq!(u32::from_ne_bytes(request[8..12].try_into().unwrap()), 7);
    assert_eq!(&request[16..20], &[AF_INET, 0, 0, 0]);
}

#[test]
fn dumped_flows_are_read_back_in_both_families() {
    let flows = [
        udp_flow("10.0.1.10", "172.30.0.10", 53, "10.0.2.11"),
        udp_flow("fd00:10:1::10", "fd00:172:30::10", 53, "fd00:10:2::11"),
    ];
    let mut batch = flow_message(&flows[0], AF_INET, 3);
    batch.extend(flow_message(&flows[1], AF_INET6, 3));
    let mut read = Vec::new();
    assert_eq!(parse_messages(&batch, 3, &mut read), None, "no DONE yet: more to come");
    assert_eq!(read, flows);
    assert_eq!(parse_messages(&end_message(None, 3), 3, &mut read), Some(End::Done));
}

#[test]
fn messages_of_another_request_are_ignored_and_errors_are_errnos() {
    let mut read = Vec::new();
    let mut batch = flow_message(&udp_flow("10.0.1.10", "172.30.0.10", 53, "10.0.2.11"), AF_INET, 1);
    batch.extend(end_message(Some(2), 9));
    assert_eq!(parse_messages(&batch, 9, &mut read), Some(End::Error(2)));
    assert!(read.is_empty());
    assert_eq!(parse_messages(&end_message(Some(0), 4), 4, &mut read), Some(End::Error(0)), "an ack");
    assert_eq!(parse_messages(&[1, 2, 3], 4, &mut read), None, "a short read is not a message");
}

#[test]
fn a_delete_request_carries_the_original_tuple() {
    let flow = udp_flow("10.0.1.10", "172.30.0.10", 53, "10.0.2.11");
    let request = delete_request(&flow.original, AF_INET, 5);
    assert_eq!(u16::from_ne_bytes(request[4..6].try_into().unwrap()), 0x0102, "CT_DELETE");
    assert_eq!(u16::from_ne_bytes(request[6..8].try_into().unwrap()), 0x0005, "NLM_F_REQUEST | NLM_F_ACK");
    // The same attributes a dump carries for the original direction parse back to it.
    let mut as_dump = request.clone();
    as_dump[4..6].copy_from_slice(&0x0100u16.to_ne_bytes());
    let mut read = Vec::new();
    parse_messages(&as_dump, 5, &mut read);
    assert!(read.is_empty(), "a delete carries no reply tuple, so it is no flow");
    let expected_len = 16 + 4 + 4 + (4 + 8 + 8) + (4 + 8 + 8 + 8);
    assert_eq!(request.len(), expected_len);
}

#[test]
fn filters_select_udp_flows_by_service_port_and_endpoint() {
    let flow = udp_flow("10.0.1.10", "172.30.0.10", 53, "10.0.2.11");
    let filter =
        |service: Option<&str>, port, endpoint| FlowFilter { service: service.map(ip), port, endpoint: ip(endpoint) };
    assert!(flow.matches(&filter(Some("172.30.0.10"), 53, "10.0.2.11")));
    assert!(flow.matches(&filter(None, 53, "10.0.2.11")), "a node port filter matches any address");
    assert!(!flow.matches(&filter(Some("172.30.0.11"), 53, "10.0.2.11")));
    assert!(!flow.matches(&filter(Some("172.30.0.10"), 54, "10.0.2.11")));
    assert!(!flow.matches(&filter(Some("172.30.0.10"), 53, "10.0.2.12")));
    let mut tcp = flow;
    tcp.original.protocol = 6;
    assert!(!tcp.matches(&filter(Some("172.30.0.10"), 53, "10.0.2.11")));
    assert_eq!(
        families(&[filter(None, 1, "10.0.0.1"), filter(None, 1, "fd00::1"), filter(None, 2, "10.0.0.2")]),
        [AF_INET, AF_INET6]
    );
}
