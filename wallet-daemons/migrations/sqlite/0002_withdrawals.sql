-- Withdrawals the signer sends (see migrations/mysql/0002_withdrawals.sql).
CREATE TABLE wallet_withdrawals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chain TEXT NOT NULL,
    currency TEXT NOT NULL,
    currency_id INTEGER NOT NULL,
    account INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    from_address TEXT NOT NULL,
    path TEXT NOT NULL,
    to_address TEXT NOT NULL,
    amount_chain TEXT NOT NULL,
    state TEXT NOT NULL,
    nonce INTEGER,
    txid TEXT,
    raw_hex TEXT,
    UNIQUE (chain, from_address, nonce)
);
CREATE INDEX wallet_withdrawals_state ON wallet_withdrawals (chain, state);
