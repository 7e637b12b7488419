-- Withdrawals' request side: beneficiaries, the policy's accounting and operators' approvals.

-- A user's payee for one currency: usable once `active_at_ms` has passed (the configured
-- activation delay after creation), never after it is archived (deleted by the user).
CREATE TABLE wallet_beneficiaries (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    account BIGINT NOT NULL,
    currency VARCHAR(16) NOT NULL,
    name VARCHAR(64) NOT NULL,
    address VARCHAR(90) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    active_at_ms BIGINT NOT NULL,
    archived BOOLEAN NOT NULL DEFAULT FALSE,
    KEY wallet_beneficiaries_account (account, currency)
) ENGINE = InnoDB;

-- Who asked (identity's uid: an approver must be someone else), to whom, when, and how many
-- operators' approvals the policy demanded (0: none).
ALTER TABLE wallet_withdrawals
    ADD COLUMN beneficiary_id BIGINT NULL,
    ADD COLUMN requested_by VARCHAR(64) NULL,
    ADD COLUMN created_at_ms BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN approvals_required INT NOT NULL DEFAULT 0,
    ADD KEY wallet_withdrawals_account (account, currency, created_at_ms);

-- `awaiting_approval` is longer than the 16 characters the states had.
ALTER TABLE wallet_withdrawals MODIFY state VARCHAR(32) NOT NULL;

-- `requested` was "recorded, not held yet": it is `approved` now that a policy decides it.
UPDATE wallet_withdrawals SET state = 'approved' WHERE state = 'requested';

-- One row per (withdrawal, operator): the key refuses the same operator twice.
CREATE TABLE wallet_withdrawal_approvals (
    withdrawal_id BIGINT NOT NULL,
    approver VARCHAR(64) NOT NULL,
    approved_at_ms BIGINT NOT NULL,
    PRIMARY KEY (withdrawal_id, approver)
) ENGINE = InnoDB;

-- Serialises one account's requests in a currency: the limits are summed and the new row
-- inserted under this row's lock, so two requests at once cannot both pass a limit.
CREATE TABLE wallet_withdraw_locks (
    account BIGINT NOT NULL,
    currency VARCHAR(16) NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (account, currency)
) ENGINE = InnoDB;

-- The hot wallet each currency pays from, recorded by the daemon (the appliance holds no
-- seed: a request reads its paying address and path here).
CREATE TABLE wallet_hot_wallets (
    chain VARCHAR(16) NOT NULL,
    currency VARCHAR(16) NOT NULL,
    address VARCHAR(90) NOT NULL,
    path VARCHAR(128) NOT NULL,
    PRIMARY KEY (chain, currency)
) ENGINE = InnoDB;
