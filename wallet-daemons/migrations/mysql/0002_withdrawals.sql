-- Withdrawals: the engine holds the funds (`held`) before anything is signed; the raw
-- transaction, its id and nonce are written (`signed`) before the first broadcast, so a restart
-- rebroadcasts the same bytes and a second transaction for one withdrawal is never signed.
CREATE TABLE wallet_withdrawals (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    chain VARCHAR(16) NOT NULL,
    currency VARCHAR(16) NOT NULL,
    currency_id BIGINT NOT NULL,
    account BIGINT NOT NULL,
    amount_minor BIGINT NOT NULL,
    from_address VARCHAR(90) NOT NULL,
    path VARCHAR(128) NOT NULL,
    to_address VARCHAR(90) NOT NULL,
    amount_chain VARCHAR(40) NOT NULL,
    state VARCHAR(16) NOT NULL,
    nonce BIGINT NULL,
    txid CHAR(66) NULL,
    raw_hex MEDIUMTEXT NULL,
    UNIQUE KEY wallet_withdrawals_nonce (chain, from_address, nonce),
    KEY wallet_withdrawals_state (chain, state)
) ENGINE = InnoDB;
