-- Deposit addresses asked for on the REST bridge (Peatio `GET account/deposit_address/{currency}`)
-- and not derived yet: the appliance holds no seed, so it records the request and the wallet
-- daemon, which does, derives the address at its next step and deletes the row.
CREATE TABLE wallet_address_requests (
    currency VARCHAR(16) NOT NULL,
    account BIGINT NOT NULL,
    PRIMARY KEY (currency, account)
) ENGINE = InnoDB;
