-- Runtime reference data: the permissions of the control API's reference routes and the
-- four-eyes fee changes (MySQL/MariaDB; the SQLite file beside this one is the same schema).
--
-- A fee change (one market, one fee group, maker and taker rates in parts per million) is
-- proposed by one operator and journaled only once a second one approves it: `state` goes
-- pending -> approved or rejected, once (a conditional UPDATE that also refuses the creator).
-- `applied_seq` is the journal sequence of the `FeeScheduleUpdate` it became, written after
-- the command: an approval retried after a crash between the two applies it then, and never
-- twice (a later change of the same group is never overwritten by a retried older one).

CREATE TABLE fee_changes (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    market VARCHAR(16) NOT NULL,
    fee_group INTEGER NOT NULL,
    maker_ppm BIGINT NOT NULL,
    taker_ppm BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    creator VARCHAR(64) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    reviewer VARCHAR(64) NULL,
    reviewed_at_ms BIGINT NULL,
    applied_seq BIGINT NULL,
    KEY fee_changes_state (state, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT INTO permissions (role, action) VALUES
    ('superadmin', 'reference.manage'),
    ('superadmin', 'fee.create'),
    ('superadmin', 'fee.approve'),
    ('admin', 'reference.manage'),
    ('admin', 'fee.create'),
    ('accountant', 'fee.create'),
    ('accountant', 'fee.approve'),
    ('technical', 'reference.manage');
