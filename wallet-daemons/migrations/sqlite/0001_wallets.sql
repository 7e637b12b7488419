-- The wallet store: deposit addresses, the followed chain of block hashes, deposits.
-- (Same tables as migrations/mysql/0001_wallets.sql; see there for what each holds.)

CREATE TABLE wallet_addresses (
    currency TEXT NOT NULL,
    account INTEGER NOT NULL,
    address TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (currency, account),
    UNIQUE (currency, address)
);

CREATE TABLE wallet_blocks (
    chain TEXT NOT NULL,
    number INTEGER NOT NULL,
    hash TEXT NOT NULL,
    parent TEXT NOT NULL,
    timestamp_s INTEGER NOT NULL,
    PRIMARY KEY (chain, number)
);

CREATE TABLE wallet_deposits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chain TEXT NOT NULL,
    currency TEXT NOT NULL,
    account INTEGER NOT NULL,
    address TEXT NOT NULL,
    txid TEXT NOT NULL,
    leg INTEGER NOT NULL,
    amount_chain TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    credited_seq INTEGER,
    UNIQUE (chain, txid, leg)
);
CREATE INDEX wallet_deposits_state ON wallet_deposits (chain, state);
CREATE INDEX wallet_deposits_account ON wallet_deposits (account, id);
