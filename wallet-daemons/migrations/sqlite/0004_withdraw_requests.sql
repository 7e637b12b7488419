-- Withdrawals' request side (see migrations/mysql/0004_withdraw_requests.sql).
CREATE TABLE wallet_beneficiaries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account INTEGER NOT NULL,
    currency TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    active_at_ms INTEGER NOT NULL,
    archived BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX wallet_beneficiaries_account ON wallet_beneficiaries (account, currency);

ALTER TABLE wallet_withdrawals ADD COLUMN beneficiary_id INTEGER;
ALTER TABLE wallet_withdrawals ADD COLUMN requested_by TEXT;
ALTER TABLE wallet_withdrawals ADD COLUMN created_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE wallet_withdrawals ADD COLUMN approvals_required INTEGER NOT NULL DEFAULT 0;
CREATE INDEX wallet_withdrawals_account ON wallet_withdrawals (account, currency, created_at_ms);

UPDATE wallet_withdrawals SET state = 'approved' WHERE state = 'requested';

CREATE TABLE wallet_withdrawal_approvals (
    withdrawal_id INTEGER NOT NULL,
    approver TEXT NOT NULL,
    approved_at_ms INTEGER NOT NULL,
    PRIMARY KEY (withdrawal_id, approver)
);

CREATE TABLE wallet_withdraw_locks (
    account INTEGER NOT NULL,
    currency TEXT NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (account, currency)
);

CREATE TABLE wallet_hot_wallets (
    chain TEXT NOT NULL,
    currency TEXT NOT NULL,
    address TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (chain, currency)
);
