//! Unit tests of what turns a resolved DNS-SD instance into a
//! [`Discovered`]: the network tag, the checks on a peer's TXT entries, the
//! cap on its addresses, and the instance name. Real mDNS between two
//! [`Mdns`] instances is tested in `lan_tests`.

use super::*;

#[test]
fn net_tag_is_16_hex_chars_and_hides_the_id() {
    let tag = net_tag("gossipnet");
    assert_eq!(tag.len(), NET_TAG_HEX_LEN);
    assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!tag.contains("gossipnet"));
    assert_ne!(tag, net_tag("other"));
}

fn real_id(seed: u8) -> NodeId {
    gossipnet_proto::identity::SecretKey::from_bytes(&[seed; 32]).node_id()
}

/// A resolved instance as the daemon would hand it over.
fn resolved(txt: &[(&str, &str)], addrs: &[IpAddr], port: u16) -> ResolvedService {
    ServiceInfo::new(SERVICE_TYPE, "x", "x.local.", addrs, port, txt)
        .unwrap()
        .as_resolved_service()
}

#[test]
fn accept_takes_only_other_nodes_of_our_network() {
    let (own, peer) = (real_id(1), real_id(2));
    let net = net_tag("n");
    let peer_text = peer.to_string();
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let good = [
        (TXT_ID, peer_text.as_str()),
        (TXT_NET, net.as_str()),
        (TXT_V, "1"),
    ];
    let found = accept(&resolved(&good, &[ip], 7000), &own, &net).unwrap();
    assert_eq!(found.id, peer);
    assert_eq!(found.addrs, vec![SocketAddr::new(ip, 7000)]);

    let other_net = net_tag("m");
    let own_text = own.to_string();
    // Well-formed text, but not a point on the curve.
    let not_a_key = (0..=u8::MAX)
        .map(|b| NodeId::from_bytes([b; 32]))
        .find(|id| id.verifying_key().is_err())
        .unwrap()
        .to_string();
    for txt in [
        [
            (TXT_ID, peer_text.as_str()),
            (TXT_NET, other_net.as_str()),
            (TXT_V, "1"),
        ],
        [
            (TXT_ID, peer_text.as_str()),
            (TXT_NET, net.as_str()),
            (TXT_V, "2"),
        ],
        [
            (TXT_ID, own_text.as_str()),
            (TXT_NET, net.as_str()),
            (TXT_V, "1"),
        ],
        [(TXT_ID, "not-an-id"), (TXT_NET, net.as_str()), (TXT_V, "1")],
        [
            (TXT_ID, not_a_key.as_str()),
            (TXT_NET, net.as_str()),
            (TXT_V, "1"),
        ],
        [("x", "y"), (TXT_NET, net.as_str()), (TXT_V, "1")],
    ] {
        assert_eq!(
            accept(&resolved(&txt, &[ip], 7000), &own, &net),
            None,
            "{txt:?}"
        );
    }
    // No address, or port 0: nothing to dial.
    assert_eq!(accept(&resolved(&good, &[], 7000), &own, &net), None);
    assert_eq!(accept(&resolved(&good, &[ip], 0), &own, &net), None);
}

#[test]
fn accept_caps_and_orders_addresses() {
    let (own, peer) = (real_id(1), real_id(2));
    let net = net_tag("n");
    let peer_text = peer.to_string();
    let txt = [
        (TXT_ID, peer_text.as_str()),
        (TXT_NET, net.as_str()),
        (TXT_V, "1"),
    ];
    let mut ips: Vec<IpAddr> = (1..=20u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    ips.push("2001:db8::1".parse().unwrap());
    ips.push("224.0.0.1".parse().unwrap());
    let found = accept(&resolved(&txt, &ips, 7000), &own, &net).unwrap();
    assert_eq!(found.addrs.len(), MAX_ADDRS_PER_PEER);
    assert!(found
        .addrs
        .iter()
        .all(|a| a.is_ipv4() && !a.ip().is_multicast()));
    assert!(found.addrs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn instance_name_is_short_id_with_optional_name() {
    let id = NodeId::from_bytes([7; 32]);
    assert_eq!(instance_name(&id, None), id.short());
    assert_eq!(instance_name(&id, Some("  ")), id.short());
    assert_eq!(
        instance_name(&id, Some("alice")),
        format!("alice ({})", id.short())
    );
    let long = "é".repeat(60);
    let name = instance_name(&id, Some(&long));
    assert!(name.len() <= 63, "{} bytes", name.len());
}
