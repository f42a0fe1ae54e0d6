//! The agent session's message decoding: any text frame must decode as an `AgentMessage` (what
//! the server reads) or `ServerMessage` (what the agent reads) or be refused, never panic; any
//! binary frame must decode as an Exec `Frame` or be refused. What decodes encodes again.
#![no_main]

use flotilla_protocol::exec::Frame;
use flotilla_protocol::{decode, encode, AgentMessage, ServerMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        let _ = frame.encode();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = decode::<AgentMessage>(text) {
        encode(&m).expect("a decoded AgentMessage encodes");
    }
    if let Ok(m) = decode::<ServerMessage>(text) {
        encode(&m).expect("a decoded ServerMessage encodes");
    }
});
