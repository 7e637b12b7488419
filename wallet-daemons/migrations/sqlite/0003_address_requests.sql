-- Deposit addresses asked for and not derived yet (see migrations/mysql/0003_address_requests.sql).
CREATE TABLE wallet_address_requests (
    currency TEXT NOT NULL,
    account INTEGER NOT NULL,
    PRIMARY KEY (currency, account)
);
