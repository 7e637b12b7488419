//! Record payloads: the rkyv archive of one [`Envelope`]. Decoding validates the archive
//! (bytecheck), so damaged bytes that still pass the CRC yield an error, never a panic.

use peregrine_hotpath::Envelope;
use rkyv::util::AlignedVec;

/// rkyv archives want 16-byte aligned input.
pub type Scratch = AlignedVec<16>;

/// Serialises `command` into `scratch` (cleared first, reused so the steady state does not
/// allocate).
pub fn encode(command: &Envelope, scratch: &mut Scratch) -> Result<(), String> {
    scratch.clear();
    let taken = std::mem::take(scratch);
    match rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(command, taken) {
        Ok(bytes) => {
            *scratch = bytes;
            Ok(())
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Deserialises a payload, validating it first. `scratch` is reused for the aligned copy.
pub fn decode(payload: &[u8], scratch: &mut Scratch) -> Result<Envelope, String> {
    scratch.clear();
    scratch.extend_from_slice(payload);
    rkyv::from_bytes::<Envelope, rkyv::rancor::Error>(scratch).map_err(|error| error.to_string())
}
