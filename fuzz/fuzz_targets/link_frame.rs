//! The link's plaintext side: the preamble's hello and status records, and
//! the message stream inside the transport frames. The first byte picks the
//! parser.

#![no_main]

use gossipnet_node::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => fuzzing::hello(rest),
        1 => fuzzing::preamble(rest),
        2 => fuzzing::status(rest),
        3 => fuzzing::plaintext_stream(rest),
        _ => fuzzing::raw_wire(rest),
    }
});
