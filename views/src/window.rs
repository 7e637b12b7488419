//! The de-duplication window as bytes, so it survives a restart from a snapshot: the core takes
//! its image at the snapshot's sequence, and recovery loads it before replaying what follows.
//!
//! Layout (little-endian): magic `PGWINDOW`, version u16, reserved u16, entry count u32, then
//! per entry (oldest first) account u32, client order id u64, order id u64, sequence u64,
//! filled u64, state u8, 3 reserved bytes; then an FNV-1a 64 checksum of everything before it.

use peregrine_hotpath::{AccountId, ClientOrderId, OrderId, Qty};

use crate::order::OrderState;
use crate::orders::{OrderStatus, Orders};

const MAGIC: &[u8; 8] = b"PGWINDOW";
/// The version this build writes and reads.
pub const WINDOW_IMAGE_VERSION: u16 = 1;
const HEADER_BYTES: usize = 16;
const ENTRY_BYTES: usize = 40;
const CHECKSUM_BYTES: usize = 8;
const _: () = assert!(HEADER_BYTES == MAGIC.len() + 2 + 2 + 4);
const _: () = assert!(ENTRY_BYTES == 4 + 8 + 8 + 8 + 8 + 1 + 3);

/// Why a window image was refused (nothing was changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowImageError {
    /// Shorter than a header and checksum, or not a whole number of entries.
    Length(usize),
    /// Not a window image.
    Magic,
    /// Written by a version this build does not read.
    Version(u16),
    /// More entries than this window holds.
    TooManyEntries(u32),
    /// The checksum does not match: the file is damaged.
    Checksum,
    /// An entry's state byte is not a known state.
    State(u8),
}

impl std::fmt::Display for WindowImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowImageError::Length(bytes) => write!(f, "a window image of {bytes} bytes"),
            WindowImageError::Magic => write!(f, "not a window image"),
            WindowImageError::Version(found) => write!(
                f,
                "window image version {found}; this build reads {WINDOW_IMAGE_VERSION}"
            ),
            WindowImageError::TooManyEntries(count) => {
                write!(f, "{count} entries, more than the window holds")
            }
            WindowImageError::Checksum => write!(f, "checksum mismatch: the image is damaged"),
            WindowImageError::State(byte) => write!(f, "unknown order state {byte}"),
        }
    }
}

impl std::error::Error for WindowImageError {}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn state_byte(state: OrderState) -> u8 {
    match state {
        OrderState::Sequenced => 1,
        OrderState::Rejected => 2,
        OrderState::Untriggered => 3,
        OrderState::Open => 4,
        OrderState::Filled => 5,
        OrderState::Cancelled => 6,
    }
}

fn state_of(byte: u8) -> Result<OrderState, WindowImageError> {
    Ok(match byte {
        1 => OrderState::Sequenced,
        2 => OrderState::Rejected,
        3 => OrderState::Untriggered,
        4 => OrderState::Open,
        5 => OrderState::Filled,
        6 => OrderState::Cancelled,
        other => return Err(WindowImageError::State(other)),
    })
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0_u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0_u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

impl Orders {
    /// The window's image, oldest entry first. (A rejected order's reason is not kept: after a
    /// restore its resend is still a duplicate, without the reason.)
    pub fn window_image(&self) -> Vec<u8> {
        let entries = self.window_entries();
        let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        let mut image =
            Vec::with_capacity(HEADER_BYTES + entries.len() * ENTRY_BYTES + CHECKSUM_BYTES);
        image.extend_from_slice(MAGIC);
        image.extend_from_slice(&WINDOW_IMAGE_VERSION.to_le_bytes());
        image.extend_from_slice(&0_u16.to_le_bytes());
        image.extend_from_slice(&count.to_le_bytes());
        for ((account, client), status) in entries.take(count as usize) {
            image.extend_from_slice(&account.0.to_le_bytes());
            image.extend_from_slice(&client.0.to_le_bytes());
            image.extend_from_slice(&status.order.0.to_le_bytes());
            image.extend_from_slice(&status.seq.to_le_bytes());
            image.extend_from_slice(&status.filled.0.to_le_bytes());
            image.push(state_byte(status.state));
            image.extend_from_slice(&[0; 3]);
        }
        let checksum = fnv1a64(&image);
        image.extend_from_slice(&checksum.to_le_bytes());
        debug_assert_eq!(
            image.len(),
            HEADER_BYTES + count as usize * ENTRY_BYTES + CHECKSUM_BYTES
        );
        image
    }

    /// Loads a window image into an empty window (at start, before replay); returns the
    /// entries loaded. A bad image is refused whole and changes nothing.
    pub fn restore_window(&mut self, image: &[u8]) -> Result<usize, WindowImageError> {
        let entries = parse(image, self.window_limit())?;
        let count = entries.len() / ENTRY_BYTES;
        for entry in entries.chunks_exact(ENTRY_BYTES) {
            let status = OrderStatus {
                order: OrderId(u64_at(entry, 12)),
                seq: u64_at(entry, 20),
                filled: Qty(u64_at(entry, 28)),
                state: state_of(entry[36])?,
                reject: None,
            };
            let key = (AccountId(u32_at(entry, 0)), ClientOrderId(u64_at(entry, 4)));
            self.restore_status(key, status);
        }
        Ok(count)
    }
}

/// Checks `image` whole and returns its entries' bytes.
fn parse(image: &[u8], window_max: usize) -> Result<&[u8], WindowImageError> {
    let framing = HEADER_BYTES + CHECKSUM_BYTES;
    if image.len() < framing || !(image.len() - framing).is_multiple_of(ENTRY_BYTES) {
        return Err(WindowImageError::Length(image.len()));
    }
    if &image[..MAGIC.len()] != MAGIC {
        return Err(WindowImageError::Magic);
    }
    let version = u16::from_le_bytes([image[8], image[9]]);
    if version != WINDOW_IMAGE_VERSION {
        return Err(WindowImageError::Version(version));
    }
    let count = u32_at(image, 12);
    if count as usize > window_max {
        return Err(WindowImageError::TooManyEntries(count));
    }
    if count as usize * ENTRY_BYTES != image.len() - framing {
        return Err(WindowImageError::Length(image.len()));
    }
    let body = image.len() - CHECKSUM_BYTES;
    if fnv1a64(&image[..body]) != u64_at(image, body) {
        return Err(WindowImageError::Checksum);
    }
    // States are checked before anything is loaded: a bad entry refuses the whole image.
    for entry in image[HEADER_BYTES..body].chunks_exact(ENTRY_BYTES) {
        state_of(entry[36])?;
    }
    Ok(&image[HEADER_BYTES..body])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::OrdersLimits;

    fn window(entries: u64) -> Orders {
        let mut orders = Orders::new(OrdersLimits {
            per_account: 10,
            total: 10,
            window: 8,
        });
        for id in 1..=entries {
            let status = OrderStatus {
                order: OrderId(id * 10),
                seq: id,
                filled: Qty(id),
                state: OrderState::Filled,
                reject: None,
            };
            orders.restore_status((AccountId(1), ClientOrderId(id)), status);
        }
        orders
    }

    #[test]
    fn an_image_restores_every_status_in_age_order() {
        let image = window(3).window_image();
        let mut restored = Orders::new(OrdersLimits {
            per_account: 10,
            total: 10,
            window: 8,
        });
        assert_eq!(restored.restore_window(&image), Ok(3));
        let status = restored.status(AccountId(1), ClientOrderId(2)).unwrap();
        assert_eq!(
            (status.order, status.seq, status.filled, status.state),
            (OrderId(20), 2, Qty(2), OrderState::Filled)
        );
        assert_eq!(
            restored.window_image(),
            image,
            "same entries, same age order"
        );
    }

    #[test]
    fn a_damaged_or_foreign_image_is_refused_and_changes_nothing() {
        let image = window(2).window_image();
        let mut target = window(0);
        let mut flipped = image.clone();
        flipped[HEADER_BYTES + 5] ^= 1;
        assert_eq!(
            target.restore_window(&flipped),
            Err(WindowImageError::Checksum)
        );
        assert_eq!(
            target.restore_window(&image[..image.len() - 1]),
            Err(WindowImageError::Length(image.len() - 1))
        );
        let mut versioned = image.clone();
        versioned[8] = 9;
        assert_eq!(
            target.restore_window(&versioned),
            Err(WindowImageError::Version(9))
        );
        let mut huge = window(0).window_image();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            target.restore_window(&huge),
            Err(WindowImageError::TooManyEntries(u32::MAX))
        );
        assert_eq!(
            target.restore_window(b"PGWINDOX"),
            Err(WindowImageError::Length(8))
        );
        assert!(target.status(AccountId(1), ClientOrderId(1)).is_none());
    }
}
