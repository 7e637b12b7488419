-- Each currency's last reconciliation (see migrations/mysql/0006_reconciliations.sql).
CREATE TABLE wallet_reconciliations (
    chain TEXT NOT NULL,
    currency TEXT NOT NULL,
    chain_decimals INTEGER NOT NULL,
    hot TEXT NOT NULL,
    warm TEXT NOT NULL,
    cold TEXT NOT NULL,
    deposit_addresses TEXT NOT NULL,
    liabilities TEXT NOT NULL,
    difference TEXT NOT NULL,
    tolerance TEXT NOT NULL,
    reconciled_at_ms INTEGER NOT NULL,
    PRIMARY KEY (chain, currency)
);
