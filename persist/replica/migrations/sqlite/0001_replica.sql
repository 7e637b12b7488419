-- Replica schema, SQLite dialect (INTEGER is 64-bit signed: values above 2^63-1 are refused by the replicator). Amounts, prices and quantities are exact integers
-- (minor units, ticks, lots); the market and currency scales turn them into decimals.
-- Keys derive from the journal (sequence, event index) or the engine's ids, so a replayed batch
-- can never add a second copy of a row.

CREATE TABLE replication_state (
    id INTEGER NOT NULL PRIMARY KEY,
    high_water_seq INTEGER NOT NULL,
    high_water_ts_ns INTEGER NOT NULL
);

INSERT INTO replication_state (id, high_water_seq, high_water_ts_ns) VALUES (1, 0, 0);

CREATE TABLE currencies (
    currency_id INTEGER NOT NULL PRIMARY KEY,
    scale INTEGER NULL,
    added_seq INTEGER NOT NULL
);

CREATE TABLE markets (
    market_id INTEGER NOT NULL PRIMARY KEY,
    base_currency_id INTEGER NOT NULL DEFAULT 0,
    quote_currency_id INTEGER NOT NULL DEFAULT 0,
    base_per_lot INTEGER NOT NULL DEFAULT 0,
    quote_per_tick_lot INTEGER NOT NULL DEFAULT 0,
    max_price INTEGER NOT NULL DEFAULT 0,
    max_qty INTEGER NOT NULL DEFAULT 0,
    max_notional INTEGER NOT NULL DEFAULT 0,
    band_bps INTEGER NOT NULL DEFAULT 0,
    reference_price INTEGER NOT NULL DEFAULT 0,
    maker_fee_ppm INTEGER NOT NULL DEFAULT 0,
    taker_fee_ppm INTEGER NOT NULL DEFAULT 0,
    halted INTEGER NOT NULL DEFAULT 0,
    added_seq INTEGER NOT NULL DEFAULT 0,
    updated_seq INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE market_fee_tiers (
    market_id INTEGER NOT NULL,
    tier INTEGER NOT NULL,
    maker_fee_ppm INTEGER NOT NULL,
    taker_fee_ppm INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL,
    PRIMARY KEY (market_id, tier)
);

CREATE TABLE accounts (
    account_id INTEGER NOT NULL PRIMARY KEY,
    fee_tier INTEGER NOT NULL DEFAULT 0,
    kill_switch INTEGER NOT NULL DEFAULT 0,
    first_seq INTEGER NOT NULL DEFAULT 0,
    updated_seq INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE orders (
    order_id INTEGER NOT NULL PRIMARY KEY,
    account_id INTEGER NOT NULL DEFAULT 0,
    market_id INTEGER NOT NULL DEFAULT 0,
    client_order_id INTEGER NOT NULL DEFAULT 0,
    side TEXT NOT NULL DEFAULT '',
    order_type TEXT NULL,
    time_in_force TEXT NULL,
    trigger_price INTEGER NULL,
    quote_budget INTEGER NULL,
    accepted_price INTEGER NOT NULL DEFAULT 0,
    accepted_qty INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    price INTEGER NOT NULL,
    open_qty INTEGER NOT NULL,
    created_seq INTEGER NOT NULL DEFAULT 0,
    created_ts_ns INTEGER NOT NULL DEFAULT 0,
    updated_seq INTEGER NOT NULL
);
CREATE INDEX orders_by_account ON orders (account_id, order_id);

CREATE TABLE order_events (
    seq INTEGER NOT NULL,
    event_index INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    price INTEGER NOT NULL,
    qty INTEGER NOT NULL,
    reason TEXT NULL,
    ts_ns INTEGER NOT NULL,
    PRIMARY KEY (seq, event_index)
);
CREATE INDEX order_events_by_order ON order_events (order_id, seq);

CREATE TABLE trades (
    trade_id INTEGER NOT NULL PRIMARY KEY,
    seq INTEGER NOT NULL,
    market_id INTEGER NOT NULL,
    price INTEGER NOT NULL,
    qty INTEGER NOT NULL,
    taker_side TEXT NOT NULL,
    maker_order_id INTEGER NOT NULL,
    taker_order_id INTEGER NOT NULL,
    maker_account_id INTEGER NOT NULL,
    taker_account_id INTEGER NOT NULL,
    base_amount INTEGER NOT NULL,
    quote_amount INTEGER NOT NULL,
    maker_fee INTEGER NOT NULL,
    taker_fee INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL
);
CREATE INDEX trades_by_market ON trades (market_id, trade_id);
CREATE INDEX trades_by_maker ON trades (maker_account_id, trade_id);
CREATE INDEX trades_by_taker ON trades (taker_account_id, trade_id);

-- Double entry: the rows of one (seq, currency) sum to zero. party 'account' rows are balance
-- cells (available and locked move separately); 'external' is the world outside the exchange
-- (deposits in, settled withdrawals out) and 'fees' the fees collected.
CREATE TABLE ledger_entries (
    seq INTEGER NOT NULL,
    entry_index INTEGER NOT NULL,
    party TEXT NOT NULL,
    account_id INTEGER NULL,
    currency_id INTEGER NOT NULL,
    available_delta INTEGER NOT NULL,
    locked_delta INTEGER NOT NULL,
    available_after INTEGER NULL,
    locked_after INTEGER NULL,
    cause TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    PRIMARY KEY (seq, entry_index)
);
CREATE INDEX ledger_by_account ON ledger_entries (account_id, currency_id, seq);

CREATE TABLE deposits (
    seq INTEGER NOT NULL PRIMARY KEY,
    deposit_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    currency_id INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL
);
CREATE INDEX deposits_by_account ON deposits (account_id, seq);

CREATE TABLE withdrawals (
    seq INTEGER NOT NULL PRIMARY KEY,
    withdrawal_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    currency_id INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    state TEXT NOT NULL,
    ts_ns INTEGER NOT NULL
);
CREATE INDEX withdrawals_by_id ON withdrawals (withdrawal_id, seq);
CREATE INDEX withdrawals_by_account ON withdrawals (account_id, seq);
