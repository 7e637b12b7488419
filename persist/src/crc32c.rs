//! CRC32C (Castagnoli), the checksum of journal records and snapshot files. Table-driven in
//! software: records are ~100 bytes, so the table costs well under the rest of an append, and the
//! crate stays free of `unsafe` intrinsics.

/// The reflected Castagnoli polynomial.
const POLYNOMIAL: u32 = 0x82F6_3B78;

/// One 256-entry table, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0_u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

/// A running CRC32C: feed it pieces with [`Crc32c::update`], read it with [`Crc32c::finish`].
#[derive(Clone, Copy, Debug)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c::new()
    }
}

impl Crc32c {
    /// An empty checksum.
    pub const fn new() -> Crc32c {
        Crc32c(!0)
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) -> &mut Crc32c {
        let mut crc = self.0;
        for &byte in bytes {
            crc = TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
        }
        self.0 = crc;
        self
    }

    /// The checksum of everything added.
    pub fn finish(&self) -> u32 {
        !self.0
    }
}

/// The CRC32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    Crc32c::new().update(bytes).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_check_value() {
        // RFC 3720 appendix B.4 / the CRC catalogue's check value for "123456789".
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0_u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let bytes: Vec<u8> = (0..=255_u8).cycle().take(1_000).collect();
        let mut crc = Crc32c::new();
        crc.update(&bytes[..333]).update(&bytes[333..]);
        assert_eq!(crc.finish(), crc32c(&bytes));
    }
}
