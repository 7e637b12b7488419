-- The wallet store: deposit addresses, the followed chain of block hashes, deposits.

-- One deposit address per (currency, account), derived from the currency's seed at `path`.
CREATE TABLE wallet_addresses (
    currency VARCHAR(16) NOT NULL,
    account BIGINT NOT NULL,
    address VARCHAR(90) NOT NULL,
    path VARCHAR(128) NOT NULL,
    PRIMARY KEY (currency, account),
    UNIQUE KEY wallet_addresses_address (currency, address)
) ENGINE = InnoDB;

-- The blocks the deposit watcher followed, each with its parent's hash: the highest is the
-- watcher's cursor, and a block whose parent hash differs from the row below shows a reorg.
CREATE TABLE wallet_blocks (
    chain VARCHAR(16) NOT NULL,
    number BIGINT NOT NULL,
    hash CHAR(66) NOT NULL,
    parent CHAR(66) NOT NULL,
    timestamp_s BIGINT NOT NULL,
    PRIMARY KEY (chain, number)
) ENGINE = InnoDB;

-- Deposits, one row per (chain, transaction, leg); `id` is the engine's idempotency key.
-- leg: -1 the transaction's value, else the log (or output) index.
CREATE TABLE wallet_deposits (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    chain VARCHAR(16) NOT NULL,
    currency VARCHAR(16) NOT NULL,
    account BIGINT NOT NULL,
    address VARCHAR(90) NOT NULL,
    txid CHAR(66) NOT NULL,
    leg BIGINT NOT NULL,
    amount_chain VARCHAR(40) NOT NULL,
    amount_minor BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash CHAR(66) NOT NULL,
    state VARCHAR(16) NOT NULL,
    credited_seq BIGINT NULL,
    UNIQUE KEY wallet_deposits_leg (chain, txid, leg),
    KEY wallet_deposits_state (chain, state),
    KEY wallet_deposits_account (account, id)
) ENGINE = InnoDB;
