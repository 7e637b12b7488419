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
    /// A deposit id chosen by the wallet service, carried through for traceability.
    DepositId(u64)
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
