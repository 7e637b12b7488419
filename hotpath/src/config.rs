//! Capacity limits and engine-wide risk settings. Everything the engine stores is bounded by one
//! of these, allocated up front, and a command that would exceed a limit is rejected.

/// Limits fixed when the engine is created. Memory is allocated for them up front.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct EngineConfig {
    /// Accounts are dense ids below this.
    pub max_accounts: u32,
    /// Currencies are dense ids below this.
    pub max_currencies: u16,
    /// Markets are dense ids below this.
    pub max_markets: u32,
    /// Live orders (resting and pending stops) across all markets.
    pub max_orders: u32,
    /// Price levels per side of one book; allocated when the market is added.
    pub max_levels_per_side: u32,
    /// Pending withdrawals across all accounts.
    pub max_pending_withdrawals: u32,
    /// Open orders (resting plus pending stops) one account may have.
    pub max_open_orders_per_account: u32,
    /// Order-rate limit: sustained new orders and replaces per second per account; 0 disables.
    pub order_rate_per_sec: u32,
    /// Order-rate limit: burst size (bucket capacity) per account.
    pub order_burst: u32,
    /// No effect since event format 2, where every event that changes a balance carries the
    /// change ([`crate::Event::balance_changes`]) and there is no `Balance` event to turn off.
    /// Kept so snapshots (which store the configuration) keep their format and bytes.
    pub balance_events: bool,
    /// Idempotency keys remembered per kind (deposit ids, withdrawal ids); older keys are
    /// refused as expired (see `idempotency`). About 40 bytes each when used.
    pub idempotency_keys_max: u32,
}

/// The default idempotency window: a million deposits and as many withdrawals, about 80 MiB
/// when full, enough for months of a busy exchange's deposits between two key floors.
pub const IDEMPOTENCY_KEYS_MAX_DEFAULT: u32 = 1 << 20;
/// The default currency capacity: what an appliance's catalog may hold at most.
pub const MAX_CURRENCIES_DEFAULT: u16 = 64;
/// The default market capacity: what an appliance's catalog may hold at most.
pub const MAX_MARKETS_DEFAULT: u32 = 256;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_accounts: 1 << 16,
            max_currencies: MAX_CURRENCIES_DEFAULT,
            max_markets: MAX_MARKETS_DEFAULT,
            max_orders: 1 << 20,
            max_levels_per_side: 4096,
            max_pending_withdrawals: 1 << 16,
            max_open_orders_per_account: 1000,
            order_rate_per_sec: 0,
            order_burst: 100,
            balance_events: true,
            idempotency_keys_max: IDEMPOTENCY_KEYS_MAX_DEFAULT,
        }
    }
}

impl EngineConfig {
    /// A small configuration for tests: fast to allocate, limits easy to reach.
    pub fn small() -> Self {
        EngineConfig {
            max_accounts: 64,
            max_currencies: 8,
            max_markets: 8,
            max_orders: 4096,
            max_levels_per_side: 256,
            max_pending_withdrawals: 64,
            max_open_orders_per_account: 256,
            order_rate_per_sec: 0,
            order_burst: 100,
            balance_events: true,
            idempotency_keys_max: 1_024,
        }
    }

    /// Checks that the limits are usable; the engine refuses to start otherwise.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.max_accounts == 0 || self.max_currencies == 0 || self.max_markets == 0 {
            return Err("max_accounts, max_currencies and max_markets must be positive");
        }
        if self.max_orders == 0 || self.max_orders == u32::MAX {
            return Err("max_orders must be in 1..u32::MAX");
        }
        if self.max_levels_per_side == 0 {
            return Err("max_levels_per_side must be positive");
        }
        if self.idempotency_keys_max == 0 {
            return Err("idempotency_keys_max must be positive");
        }
        if self.order_rate_per_sec > 0 && self.order_burst == 0 {
            return Err("order_burst must be positive when order_rate_per_sec is set");
        }
        // Balances are a dense table of accounts x currencies; refuse sizes that cannot fit.
        let cells = u64::from(self.max_accounts) * u64::from(self.max_currencies);
        if cells > (1 << 28) {
            return Err("max_accounts * max_currencies exceeds 2^28 balance cells");
        }
        Ok(())
    }
}
