-- Collection and rebalancing (see migrations/mysql/0005_collection.sql).
CREATE TABLE wallet_transfers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chain TEXT NOT NULL,
    kind TEXT NOT NULL,
    currency TEXT NOT NULL,
    seed TEXT NOT NULL,
    path TEXT NOT NULL,
    from_address TEXT NOT NULL,
    to_address TEXT NOT NULL,
    amount_chain TEXT NOT NULL,
    nonce INTEGER,
    txid TEXT NOT NULL,
    raw_hex TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (chain, from_address, nonce)
);
CREATE INDEX wallet_transfers_state ON wallet_transfers (chain, state);
ALTER TABLE wallet_deposits ADD COLUMN sweep_id INTEGER;
CREATE INDEX wallet_deposits_sweep ON wallet_deposits (chain, currency, sweep_id, state);
