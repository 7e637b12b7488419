-- Collection and rebalancing: the wallet's own transactions (gas top-ups of deposit addresses,
-- sweeps of deposit addresses to the hot wallet, the hot wallet's excess to warm or cold).
-- Like a withdrawal's, each row is written with its nonce, raw bytes and id before the first
-- broadcast (`signed`), so a restart sends the same bytes and one row is one transaction.
-- kind: topup, sweep, rebalance; state: signed, broadcast, mined, failed, dropped (the node
-- refused the bytes and does not know them: no nonce was used, so `nonce` is cleared for reuse).
CREATE TABLE wallet_transfers (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    chain VARCHAR(16) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    currency VARCHAR(16) NOT NULL,
    seed VARCHAR(16) NOT NULL,
    path VARCHAR(128) NOT NULL,
    from_address VARCHAR(90) NOT NULL,
    to_address VARCHAR(90) NOT NULL,
    amount_chain VARCHAR(40) NOT NULL,
    nonce BIGINT NULL,
    txid CHAR(66) NOT NULL,
    raw_hex MEDIUMTEXT NOT NULL,
    state VARCHAR(16) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE KEY wallet_transfers_nonce (chain, from_address, nonce),
    KEY wallet_transfers_state (chain, state)
) ENGINE = InnoDB;

-- The sweep that collected a credited deposit (NULL: still on its deposit address).
ALTER TABLE wallet_deposits
    ADD COLUMN sweep_id BIGINT NULL,
    ADD KEY wallet_deposits_sweep (chain, currency, sweep_id, state);
