//! Tests of the one-link rule and the inbound caps.

use std::net::Ipv4Addr;

use gossipnet_proto::SecretKey;
use rand::SeedableRng;

use super::*;

fn id(seed: u64) -> NodeId {
    SecretKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed)).node_id()
}

/// Two ids, the smaller first.
fn ordered() -> (NodeId, NodeId) {
    let (a, b) = (id(1), id(2));
    (a.min(b), a.max(b))
}

#[test]
fn crossing_dials_keep_the_one_dialled_by_the_smaller_id_at_both_ends() {
    use Direction::{Inbound, Outbound};
    let (small, big) = ordered();
    // The small end dialled (outbound at small, inbound at big) and the big
    // end dialled too; each end sees the other connection arrive second.
    assert!(
        keeps_new(small, big, Outbound, Inbound),
        "small keeps its own dial"
    );
    assert!(
        !keeps_new(small, big, Inbound, Outbound),
        "small refuses big's dial"
    );
    assert!(
        keeps_new(big, small, Inbound, Outbound),
        "big takes small's dial"
    );
    assert!(
        !keeps_new(big, small, Outbound, Inbound),
        "big drops its own dial"
    );
}

#[test]
fn a_redial_by_the_same_side_replaces_the_old_link() {
    use Direction::{Inbound, Outbound};
    let (small, big) = ordered();
    for (me, peer) in [(small, big), (big, small)] {
        assert!(keeps_new(me, peer, Outbound, Outbound));
        assert!(keeps_new(me, peer, Inbound, Inbound));
    }
}

fn limits(max: usize, per_ip: usize) -> Limits {
    Limits {
        max_inbound: max,
        max_inbound_per_ip: per_ip,
        ..Limits::default()
    }
}

#[test]
fn inbound_links_are_capped_in_total_and_per_address() {
    let mut inbound = Inbound::new(&limits(3, 2));
    let a = IpAddr::from(Ipv4Addr::new(192, 0, 2, 1));
    let b = IpAddr::from(Ipv4Addr::new(192, 0, 2, 2));
    inbound.add(a);
    assert_eq!(inbound.refusal(a), None);
    inbound.add(a);
    assert_eq!(inbound.refusal(a), Some("too many links from your address"));
    assert_eq!(inbound.refusal(b), None);
    inbound.add(b);
    assert_eq!(inbound.refusal(b), Some("too many inbound links"));
    inbound.remove(a);
    assert_eq!(inbound.refusal(a), None);
    assert_eq!(inbound.refusal(b), None);
}

#[test]
fn loopback_is_capped_only_in_total() {
    let mut inbound = Inbound::new(&limits(4, 1));
    let lo = IpAddr::from(Ipv4Addr::LOCALHOST);
    for _ in 0..3 {
        inbound.add(lo);
        assert_eq!(inbound.refusal(lo), None);
    }
    inbound.add(lo);
    assert_eq!(inbound.refusal(lo), Some("too many inbound links"));
}

#[test]
fn forgetting_more_than_was_counted_does_not_underflow() {
    let mut inbound = Inbound::new(&limits(1, 1));
    let a = IpAddr::from(Ipv4Addr::new(192, 0, 2, 1));
    inbound.remove(a);
    inbound.add(a);
    inbound.remove(a);
    inbound.remove(a);
    assert_eq!(inbound.total, 0);
    assert!(inbound.per_ip.is_empty());
    assert_eq!(inbound.refusal(a), None);
}
