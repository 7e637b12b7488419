//! Newtypes for every id and quantity the engine handles, so that a price can never be passed
//! where a quantity is expected. All are plain integers inside: prices in ticks, quantities in
//! lots, amounts in a currency's minor units.

use core::fmt;

macro_rules! newtype {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
            rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
        )]
        #[rkyv(derive(Debug, PartialEq, Eq))]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The raw integer.
            #[inline]
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

newtype!(
    /// A trading account. Dense: `0..max_accounts`, assigned by the auth service.
    AccountId(u32)
);
newtype!(
    /// An order id assigned by the engine: strictly increasing, never reused.
    OrderId(u64)
);
newtype!(
    /// An id the client chose; unique per account among its live orders.
    ClientOrderId(u64)
);
newtype!(
    /// A market (instrument). Dense: `0..max_markets`.
    MarketId(u32)
);
newtype!(
    /// A currency. Dense: `0..max_currencies`.
    CurrencyId(u16)
);
newtype!(
    /// A price in ticks of the market's tick size.
    Price(u64)
);
newtype!(
    /// A quantity in lots of the market's lot size.
    Qty(u64)
);
newtype!(
    /// An amount in a currency's minor units.
    Amount(u64)
);
newtype!(
    /// A trade id assigned by the engine: strictly increasing, never reused.
    TradeId(u64)
);
newtype!(
    /// A withdrawal id chosen by the wallet service; unique among pending withdrawals.
    WithdrawalId(u64)
);
newtype!(
    /// A deposit id chosen by the wallet service (or an operator): the deposit's idempotency
    /// key, credited at most once.
    DepositId(u64)
);
newtype!(
    /// An API key's id: a QUIC key's configured `key_id`, or [`ApiKeyId::of_key`] of a REST key.
    ApiKeyId(u64)
);
newtype!(
    /// A user of the identity service.
    UserId(u64)
);
newtype!(
    /// An operator of the control API.
    OperatorId(u32)
);
newtype!(
    /// Nanoseconds since the Unix epoch, stamped by the sequencer (never read from a clock here).
    TimestampNs(u64)
);

impl Qty {
    /// No quantity.
    pub const ZERO: Qty = Qty(0);
}

impl Amount {
    /// No amount.
    pub const ZERO: Amount = Amount(0);
}

/// Which side of the book an order is on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum Side {
    /// Buys base, pays quote.
    Buy = 0,
    /// Sells base, receives quote.
    Sell = 1,
}

impl Side {
    /// The other side.
    #[inline]
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

impl ApiKeyId {
    /// The id of an API key known by its public key string (REST keys): FNV-1a 64 of its bytes.
    /// Stable across restarts and configuration order, so the journal names the same key the
    /// same way forever; not a secret (the public key string is not one either).
    pub const fn of_key(key: &[u8]) -> ApiKeyId {
        /// FNV-1a 64-bit offset basis and prime.
        const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET_BASIS;
        let mut index = 0;
        while index < key.len() {
            hash ^= key[index] as u64;
            hash = hash.wrapping_mul(PRIME);
            index += 1;
        }
        ApiKeyId(hash)
    }
}
