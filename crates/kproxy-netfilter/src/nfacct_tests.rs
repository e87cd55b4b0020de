use super::wire::{Counter, counter_message, get_request, new_request, read_counter};
use super::*;
use crate::nfnetlink::{End, end_message, read_replies};

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

#[test]
fn requests_name_the_counter_in_the_acct_subsystem() {
    let get = get_request(CT_STATE_INVALID_DROPPED, 5);
    assert_eq!(u16_at(&get, 4), 0x0701, "NFNL_SUBSYS_ACCT << 8 | GET");
    assert_eq!(u16_at(&get, 6), 0x0005, "NLM_F_REQUEST | NLM_F_ACK, no dump");
    let name = &get[24..24 + CT_STATE_INVALID_DROPPED.len() + 1];
    assert_eq!(name, b"ct_state_invalid_dropped_pkts\0");
    assert_eq!(u16_at(&get, 20), 4 + 30, "the attribute holds the name and its NUL");
    let new = new_request(LOCALHOST_NODEPORTS_ACCEPTED, 6);
    assert_eq!(u16_at(&new, 4), 0x0700, "NFNL_SUBSYS_ACCT << 8 | NEW");
    assert_eq!(u16_at(&new, 6), 0x0405, "NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE");
    assert_eq!(new.len() % 4, 0, "attributes are padded");
}

#[test]
fn the_answer_to_a_get_is_read_back_then_its_ack_ends_it() {
    let counter = Counter { name: LOCALHOST_NODEPORTS_ACCEPTED.to_owned(), packets: 42, bytes: 2520 };
    let mut batch = counter_message(&counter, 9);
    batch.extend(end_message(Some(0), 9));
    let mut read = Vec::new();
    let end = read_replies(&batch, 9, |kind, payload| read.extend(read_counter(kind, payload)));
    assert_eq!(end, Some(End::Error(0)));
    assert_eq!(read, vec![counter]);
    let mut other = Vec::new();
    assert_eq!(read_replies(&counter_message(&read[0], 8), 9, |k, p| other.extend(read_counter(k, p))), None);
    assert!(other.is_empty(), "another request's answer is not ours");
}

#[tokio::test]
async fn the_fake_keeps_counts_of_ensured_counters_only() {
    let fake = FakeNfacct::default();
    fake.ensure(CT_STATE_INVALID_DROPPED).await.unwrap();
    fake.count(CT_STATE_INVALID_DROPPED, 3);
    fake.ensure(CT_STATE_INVALID_DROPPED).await.unwrap();
    fake.count(LOCALHOST_NODEPORTS_ACCEPTED, 1);
    assert_eq!(fake.packets(CT_STATE_INVALID_DROPPED).await.unwrap(), Some(3), "ensure keeps the count");
    assert_eq!(fake.packets(LOCALHOST_NODEPORTS_ACCEPTED).await.unwrap(), None);
    assert!(FakeNfacct::refusing().ensure(CT_STATE_INVALID_DROPPED).await.is_err());
}
