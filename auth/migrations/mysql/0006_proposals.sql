-- One four-eyes proposal store for every kind (MySQL/MariaDB; the SQLite file beside this one
-- is the same schema): manual balance adjustments, fee changes, withdrawal limits by KYC level
-- and the fee volume tiers. A proposal is (kind, id): ids count from 1 within a kind
-- (`proposal_ids` holds each kind's last), so the adjustments and fee changes keep their ids
-- (an adjustment's id keys its journaled commands). `payload` is the kind's JSON. `state` goes
-- pending -> approved or rejected, once, never by the creator (a conditional UPDATE).
-- `claimed_seq` is the journal sequence the appliance had applied when an approved
-- proposal's command was first submitted, `applied_seq` the command's own: a retry that finds
-- a claim and no sequence looks in the journal after the claim instead of journaling again.
--
-- The two tables of migrations 0004 and 0005 move here and are dropped. Withdrawal limits get
-- their permissions (fee volume tiers are fees: `fee.create`, `fee.approve`).

CREATE TABLE proposals (
    kind VARCHAR(32) NOT NULL,
    id BIGINT NOT NULL,
    payload TEXT NOT NULL,
    state VARCHAR(16) NOT NULL,
    creator VARCHAR(64) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    reviewer VARCHAR(64) NULL,
    reviewed_at_ms BIGINT NULL,
    claimed_seq BIGINT NULL,
    applied_seq BIGINT NULL,
    PRIMARY KEY (kind, id),
    KEY proposals_state (kind, state, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE proposal_ids (
    kind VARCHAR(32) NOT NULL PRIMARY KEY,
    last_id BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT INTO proposals (kind, id, payload, state, creator, created_at_ms, reviewer,
                       reviewed_at_ms, claimed_seq, applied_seq)
SELECT 'adjustment', id,
       JSON_OBJECT('account', account, 'currency', currency, 'amount', amount, 'reason', reason),
       state, creator, created_at_ms, reviewer, reviewed_at_ms, NULL, NULL
FROM adjustments;

-- An applied fee change was claimed at its own sequence or before: the sequence says so.
INSERT INTO proposals (kind, id, payload, state, creator, created_at_ms, reviewer,
                       reviewed_at_ms, claimed_seq, applied_seq)
SELECT 'fee_change', id,
       JSON_OBJECT('market', market, 'group', fee_group, 'maker_ppm', maker_ppm,
                   'taker_ppm', taker_ppm),
       state, creator, created_at_ms, reviewer, reviewed_at_ms, applied_seq, applied_seq
FROM fee_changes;

INSERT INTO proposal_ids (kind, last_id)
SELECT 'adjustment', COALESCE(MAX(id), 0) FROM adjustments;
INSERT INTO proposal_ids (kind, last_id)
SELECT 'fee_change', COALESCE(MAX(id), 0) FROM fee_changes;

DROP TABLE adjustments;
DROP TABLE fee_changes;

INSERT INTO permissions (role, action) VALUES
    ('superadmin', 'limit.create'),
    ('superadmin', 'limit.approve'),
    ('admin', 'limit.create'),
    ('accountant', 'limit.create'),
    ('accountant', 'limit.approve');
