-- Replica schema, MySQL/MariaDB dialect. Amounts, prices and quantities are exact integers
-- (minor units, ticks, lots); the market and currency scales turn them into decimals.
-- Keys derive from the journal (sequence, event index) or the engine's ids, so a replayed batch
-- can never add a second copy of a row.

CREATE TABLE replication_state (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    high_water_seq BIGINT NOT NULL,
    high_water_ts_ns BIGINT UNSIGNED NOT NULL
) ENGINE = InnoDB;

INSERT INTO replication_state (id, high_water_seq, high_water_ts_ns) VALUES (1, 0, 0);

CREATE TABLE currencies (
    currency_id SMALLINT UNSIGNED NOT NULL PRIMARY KEY,
    scale TINYINT UNSIGNED NULL,
    added_seq BIGINT NOT NULL
) ENGINE = InnoDB;

CREATE TABLE markets (
    market_id INT UNSIGNED NOT NULL PRIMARY KEY,
    base_currency_id SMALLINT UNSIGNED NOT NULL DEFAULT 0,
    quote_currency_id SMALLINT UNSIGNED NOT NULL DEFAULT 0,
    base_per_lot BIGINT UNSIGNED NOT NULL DEFAULT 0,
    quote_per_tick_lot BIGINT UNSIGNED NOT NULL DEFAULT 0,
    max_price BIGINT UNSIGNED NOT NULL DEFAULT 0,
    max_qty BIGINT UNSIGNED NOT NULL DEFAULT 0,
    max_notional BIGINT UNSIGNED NOT NULL DEFAULT 0,
    band_bps INT UNSIGNED NOT NULL DEFAULT 0,
    reference_price BIGINT UNSIGNED NOT NULL DEFAULT 0,
    maker_fee_ppm INT UNSIGNED NOT NULL DEFAULT 0,
    taker_fee_ppm INT UNSIGNED NOT NULL DEFAULT 0,
    halted BOOLEAN NOT NULL DEFAULT FALSE,
    added_seq BIGINT NOT NULL DEFAULT 0,
    updated_seq BIGINT NOT NULL DEFAULT 0
) ENGINE = InnoDB;

CREATE TABLE market_fee_tiers (
    market_id INT UNSIGNED NOT NULL,
    tier TINYINT UNSIGNED NOT NULL,
    maker_fee_ppm INT UNSIGNED NOT NULL,
    taker_fee_ppm INT UNSIGNED NOT NULL,
    updated_seq BIGINT NOT NULL,
    PRIMARY KEY (market_id, tier)
) ENGINE = InnoDB;

CREATE TABLE accounts (
    account_id INT UNSIGNED NOT NULL PRIMARY KEY,
    fee_tier TINYINT UNSIGNED NOT NULL DEFAULT 0,
    kill_switch BOOLEAN NOT NULL DEFAULT FALSE,
    first_seq BIGINT NOT NULL DEFAULT 0,
    updated_seq BIGINT NOT NULL DEFAULT 0
) ENGINE = InnoDB;

CREATE TABLE orders (
    order_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    account_id INT UNSIGNED NOT NULL DEFAULT 0,
    market_id INT UNSIGNED NOT NULL DEFAULT 0,
    client_order_id BIGINT UNSIGNED NOT NULL DEFAULT 0,
    side VARCHAR(4) NOT NULL DEFAULT '',
    order_type VARCHAR(12) NULL,
    time_in_force VARCHAR(10) NULL,
    trigger_price BIGINT UNSIGNED NULL,
    quote_budget BIGINT UNSIGNED NULL,
    accepted_price BIGINT UNSIGNED NOT NULL DEFAULT 0,
    accepted_qty BIGINT UNSIGNED NOT NULL DEFAULT 0,
    status VARCHAR(12) NOT NULL,
    price BIGINT UNSIGNED NOT NULL,
    open_qty BIGINT UNSIGNED NOT NULL,
    created_seq BIGINT NOT NULL DEFAULT 0,
    created_ts_ns BIGINT UNSIGNED NOT NULL DEFAULT 0,
    updated_seq BIGINT NOT NULL,
    INDEX orders_by_account (account_id, order_id)
) ENGINE = InnoDB;

CREATE TABLE order_events (
    seq BIGINT NOT NULL,
    event_index INT UNSIGNED NOT NULL,
    order_id BIGINT UNSIGNED NOT NULL,
    kind VARCHAR(12) NOT NULL,
    price BIGINT UNSIGNED NOT NULL,
    qty BIGINT UNSIGNED NOT NULL,
    reason VARCHAR(20) NULL,
    ts_ns BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (seq, event_index),
    INDEX order_events_by_order (order_id, seq)
) ENGINE = InnoDB;

CREATE TABLE trades (
    trade_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL,
    market_id INT UNSIGNED NOT NULL,
    price BIGINT UNSIGNED NOT NULL,
    qty BIGINT UNSIGNED NOT NULL,
    taker_side VARCHAR(4) NOT NULL,
    maker_order_id BIGINT UNSIGNED NOT NULL,
    taker_order_id BIGINT UNSIGNED NOT NULL,
    maker_account_id INT UNSIGNED NOT NULL,
    taker_account_id INT UNSIGNED NOT NULL,
    base_amount BIGINT UNSIGNED NOT NULL,
    quote_amount BIGINT UNSIGNED NOT NULL,
    maker_fee BIGINT UNSIGNED NOT NULL,
    taker_fee BIGINT UNSIGNED NOT NULL,
    ts_ns BIGINT UNSIGNED NOT NULL,
    INDEX trades_by_market (market_id, trade_id),
    INDEX trades_by_maker (maker_account_id, trade_id),
    INDEX trades_by_taker (taker_account_id, trade_id)
) ENGINE = InnoDB;

-- Double entry: the rows of one (seq, currency) sum to zero. party 'account' rows are balance
-- cells (available and locked move separately); 'external' is the world outside the exchange
-- (deposits in, settled withdrawals out) and 'fees' the fees collected.
CREATE TABLE ledger_entries (
    seq BIGINT NOT NULL,
    entry_index INT UNSIGNED NOT NULL,
    party VARCHAR(8) NOT NULL,
    account_id INT UNSIGNED NULL,
    currency_id SMALLINT UNSIGNED NOT NULL,
    available_delta DECIMAL(21, 0) NOT NULL,
    locked_delta DECIMAL(21, 0) NOT NULL,
    available_after BIGINT UNSIGNED NULL,
    locked_after BIGINT UNSIGNED NULL,
    cause VARCHAR(20) NOT NULL,
    ts_ns BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (seq, entry_index),
    INDEX ledger_by_account (account_id, currency_id, seq)
) ENGINE = InnoDB;

CREATE TABLE deposits (
    seq BIGINT NOT NULL PRIMARY KEY,
    deposit_id BIGINT UNSIGNED NOT NULL,
    account_id INT UNSIGNED NOT NULL,
    currency_id SMALLINT UNSIGNED NOT NULL,
    amount BIGINT UNSIGNED NOT NULL,
    ts_ns BIGINT UNSIGNED NOT NULL,
    INDEX deposits_by_account (account_id, seq)
) ENGINE = InnoDB;

CREATE TABLE withdrawals (
    seq BIGINT NOT NULL PRIMARY KEY,
    withdrawal_id BIGINT UNSIGNED NOT NULL,
    account_id INT UNSIGNED NOT NULL,
    currency_id SMALLINT UNSIGNED NOT NULL,
    amount BIGINT UNSIGNED NOT NULL,
    state VARCHAR(8) NOT NULL,
    ts_ns BIGINT UNSIGNED NOT NULL,
    INDEX withdrawals_by_id (withdrawal_id, seq),
    INDEX withdrawals_by_account (account_id, seq)
) ENGINE = InnoDB;
