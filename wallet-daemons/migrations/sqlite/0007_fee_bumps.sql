-- Fee bumps (see migrations/mysql/0007_fee_bumps.sql).
ALTER TABLE wallet_withdrawals ADD COLUMN max_fee_per_gas TEXT;
ALTER TABLE wallet_withdrawals ADD COLUMN max_priority_fee_per_gas TEXT;
ALTER TABLE wallet_withdrawals ADD COLUMN signed_at_block INTEGER;
ALTER TABLE wallet_withdrawals ADD COLUMN bumps INTEGER NOT NULL DEFAULT 0;

CREATE TABLE wallet_tx_attempts (
    chain TEXT NOT NULL,
    owner TEXT NOT NULL,
    owner_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    txid TEXT NOT NULL,
    raw_hex TEXT NOT NULL,
    PRIMARY KEY (owner, owner_id, attempt),
    UNIQUE (chain, txid)
);
