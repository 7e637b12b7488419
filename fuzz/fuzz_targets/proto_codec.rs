//! The `peregrine/1` codec on bytes from the network: decoding a request (what the server reads
//! from a client) or a reply (what the SDK reads from the server) never panics, takes no more
//! than the frame, and whatever decodes re-encodes to exactly the bytes it was read from (the
//! decoder accepts one encoding per message: no padding or flag it ignores).

#![no_main]

use libfuzzer_sys::fuzz_target;
use peregrine_proto::codec::{Decoded, decode_reply, decode_request, encode_reply, encode_request};
use peregrine_proto::frame::MAX_FRAME_BYTES;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::with_capacity(MAX_FRAME_BYTES);
    if let Ok(Decoded::Frame(request, used_bytes)) = decode_request(data) {
        assert!(used_bytes <= data.len() && used_bytes <= MAX_FRAME_BYTES);
        assert!(
            encode_request(&request, &mut out).is_ok(),
            "{request:?} does not encode"
        );
        assert_eq!(
            out,
            data[..used_bytes],
            "{request:?} re-encodes differently"
        );
    }
    out.clear();
    if let Ok(Decoded::Frame(reply, used_bytes)) = decode_reply(data) {
        assert!(used_bytes <= data.len() && used_bytes <= MAX_FRAME_BYTES);
        assert!(
            encode_reply(&reply, &mut out).is_ok(),
            "{reply:?} does not encode"
        );
        assert_eq!(out, data[..used_bytes], "{reply:?} re-encodes differently");
    }
});
