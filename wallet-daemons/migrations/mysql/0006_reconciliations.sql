-- Each currency's last reconciliation (the chain against the ledger), written by the daemon's
-- loop and by `peregrine wallets reconcile` after every run, read by the control API's
-- assets-against-liabilities report. One row per (chain, currency), replaced each run: the
-- history is the daemon's metrics', not this table's. Amounts are decimal integer strings in
-- the chain's units (they may exceed 2^64; `difference` may be negative).
CREATE TABLE wallet_reconciliations (
    chain VARCHAR(16) NOT NULL,
    currency VARCHAR(16) NOT NULL,
    chain_decimals INTEGER NOT NULL,
    hot VARCHAR(40) NOT NULL,
    warm VARCHAR(40) NOT NULL,
    cold VARCHAR(40) NOT NULL,
    deposit_addresses VARCHAR(40) NOT NULL,
    liabilities VARCHAR(40) NOT NULL,
    difference VARCHAR(41) NOT NULL,
    tolerance VARCHAR(40) NOT NULL,
    reconciled_at_ms BIGINT NOT NULL,
    PRIMARY KEY (chain, currency)
) ENGINE = InnoDB;
