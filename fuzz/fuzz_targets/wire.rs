//! Every message a peer can send on a link: decoded and bound-checked, and
//! whatever decodes must re-encode to bytes that decode to the same value.

#![no_main]

use gossipnet_proto::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = wire::decode(data) else {
        return;
    };
    let _ = wire::kind(&message);
    let encoded = wire::encode(&message);
    assert!(
        encoded.len() <= data.len(),
        "re-encoding grew: {} bytes from {}",
        encoded.len(),
        data.len()
    );
    let again = wire::decode(&encoded).expect("a re-encoded message decodes");
    assert_eq!(again, message, "a message changed in a round trip");
});
