-- Fee bumps: a withdrawal's transaction not mined within a number of blocks is replaced by one
-- with the same nonce at a higher fee. The replacement is written here before it is sent: the
-- withdrawal's row holds the latest attempt (txid, raw_hex, its fees and the head it was
-- signed at, how many bumps so far), and every attempt it replaced keeps its id and bytes in
-- wallet_tx_attempts, so whichever of them is mined is recognised.
ALTER TABLE wallet_withdrawals
    ADD COLUMN max_fee_per_gas VARCHAR(40) NULL,
    ADD COLUMN max_priority_fee_per_gas VARCHAR(40) NULL,
    ADD COLUMN signed_at_block BIGINT NULL,
    ADD COLUMN bumps INT NOT NULL DEFAULT 0;

-- owner: 'withdrawal' (a wallet transaction's bumps would be 'transfer'); attempt: 0 the first
-- signature, n the bytes the n-th bump replaced.
CREATE TABLE wallet_tx_attempts (
    chain VARCHAR(16) NOT NULL,
    owner VARCHAR(16) NOT NULL,
    owner_id BIGINT NOT NULL,
    attempt INT NOT NULL,
    txid CHAR(66) NOT NULL,
    raw_hex MEDIUMTEXT NOT NULL,
    PRIMARY KEY (owner, owner_id, attempt),
    UNIQUE KEY wallet_tx_attempts_txid (chain, txid)
) ENGINE = InnoDB;
