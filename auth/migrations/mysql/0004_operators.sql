-- The control API's permissions and the four-eyes adjustments (MySQL/MariaDB; the SQLite file
-- beside this one is the same schema).
--
-- An adjustment is proposed by one operator and applied only once a second one approves it:
-- `state` goes pending -> approved or rejected, once (a conditional UPDATE), the approver is
-- never the creator. The journaled command's idempotency key is the adjustment's id, so an
-- approval retried after a crash or a timeout credits or debits exactly once.

CREATE TABLE adjustments (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    account BIGINT NOT NULL,
    currency VARCHAR(16) NOT NULL,
    amount VARCHAR(64) NOT NULL,
    reason VARCHAR(255) NOT NULL,
    state VARCHAR(16) NOT NULL,
    creator VARCHAR(64) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    reviewer VARCHAR(64) NULL,
    reviewed_at_ms BIGINT NULL,
    KEY adjustments_state (state, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT INTO permissions (role, action) VALUES
    ('superadmin', 'exchange.read'),
    ('superadmin', 'adjustment.create'),
    ('superadmin', 'adjustment.approve'),
    ('superadmin', 'adjustment.read'),
    ('admin', 'exchange.read'),
    ('admin', 'adjustment.read'),
    ('accountant', 'exchange.read'),
    ('accountant', 'adjustment.create'),
    ('accountant', 'adjustment.approve'),
    ('accountant', 'adjustment.read'),
    ('compliance', 'exchange.read'),
    ('support', 'exchange.read'),
    ('technical', 'exchange.read');
