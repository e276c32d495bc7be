//! The control API's JSON request bodies (send, dm, shutdown) as the server
//! parses them, and the control file a client reads. The first byte picks
//! the body.

#![no_main]

use gossipnet_node::control::ControlFile;
use gossipnet_node::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 4 == 3 {
        let _ = serde_json::from_slice::<ControlFile>(rest);
    } else {
        fuzzing::api_body(which, rest);
    }
});
