-- KYC documents, the provider webhook's replay cache, and the RBAC role -> permission table
-- (SQLite; the MySQL file beside this one is the same schema).
--
-- A document's content is never stored in clear: it is AES-256-GCM ciphertext (tag appended)
-- under a data key of its own, and only that data key's OpenBao transit wrapping is kept
-- (`wrapped_key`, `vault:v<N>:...`). Opening one needs OpenBao.

CREATE TABLE documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL,
    doc_type VARCHAR(32) NOT NULL,
    doc_number VARCHAR(64) NOT NULL,
    doc_expire VARCHAR(10) NULL,
    content_type VARCHAR(64) NOT NULL,
    size_bytes BIGINT NOT NULL,
    wrapped_key TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX documents_user ON documents (user_id);

-- Webhook events seen within the replay window, by the provider's event id.
CREATE TABLE kyc_webhook_events (
    event_id VARCHAR(64) NOT NULL PRIMARY KEY,
    received_at_ms BIGINT NOT NULL
);

UPDATE roles SET description = 'every operator action but reading users'' documents'
    WHERE name = 'superadmin';

-- Each role's typed permissions (`peregrine_auth::rbac::Permission`); a row naming an unknown
-- role or permission makes the service refuse to start.
INSERT INTO permissions (role, action) VALUES
    ('superadmin', 'user.read'),
    ('superadmin', 'user.manage'),
    ('superadmin', 'kyc.profile.review'),
    ('superadmin', 'kyc.label.write'),
    ('superadmin', 'audit.read'),
    ('superadmin', 'market.manage'),
    ('superadmin', 'account.kill_switch'),
    ('superadmin', 'balance.read_any'),
    ('superadmin', 'deposit.credit'),
    ('superadmin', 'withdrawal.review'),
    ('admin', 'user.read'),
    ('admin', 'user.manage'),
    ('admin', 'kyc.profile.review'),
    ('admin', 'kyc.label.write'),
    ('admin', 'audit.read'),
    ('admin', 'market.manage'),
    ('admin', 'account.kill_switch'),
    ('admin', 'balance.read_any'),
    ('accountant', 'user.read'),
    ('accountant', 'balance.read_any'),
    ('accountant', 'deposit.credit'),
    ('accountant', 'withdrawal.review'),
    ('compliance', 'user.read'),
    ('compliance', 'kyc.profile.review'),
    ('compliance', 'kyc.label.write'),
    ('compliance', 'kyc.document.read_any'),
    ('compliance', 'audit.read'),
    ('support', 'user.read'),
    ('support', 'balance.read_any'),
    ('technical', 'market.manage'),
    ('technical', 'account.kill_switch'),
    ('trader', 'order.trade'),
    ('trader', 'withdrawal.request'),
    ('trader', 'api_key.manage'),
    ('member', 'order.trade'),
    ('member', 'withdrawal.request'),
    ('member', 'api_key.manage');
