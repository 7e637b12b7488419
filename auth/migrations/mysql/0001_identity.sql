-- The identity store (MySQL/MariaDB; the SQLite file beside this one is the same schema).
-- Times are Unix milliseconds (BIGINT): one spelling for both back ends, no time zones.
-- Text columns use a case-insensitive collation: sqlx reads `_bin` text as bytes, and every
-- key compared here (e-mail, uid, handle) is stored in one case anyway.
-- Secrets never appear here in clear: passwords as argon2id PHC strings, session ids, CSRF
-- tokens and e-mailed codes as SHA-256 digests, API-key secrets as OpenBao transit ciphertext.

CREATE TABLE users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uid VARCHAR(16) NOT NULL,
    email VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    role VARCHAR(32) NOT NULL,
    state VARCHAR(16) NOT NULL,
    level BIGINT NOT NULL DEFAULT 0,
    otp_enabled BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE KEY users_uid (uid),
    UNIQUE KEY users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE profiles (
    user_id BIGINT NOT NULL PRIMARY KEY,
    first_name VARCHAR(255) NULL,
    last_name VARCHAR(255) NULL,
    dob VARCHAR(10) NULL,
    address VARCHAR(255) NULL,
    postcode VARCHAR(32) NULL,
    city VARCHAR(255) NULL,
    country VARCHAR(3) NULL,
    state VARCHAR(16) NOT NULL,
    metadata TEXT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- KYC labels: (key, value) per user and scope; private labels are set by the service only.
CREATE TABLE labels (
    user_id BIGINT NOT NULL,
    label_key VARCHAR(64) NOT NULL,
    scope VARCHAR(16) NOT NULL,
    label_value VARCHAR(64) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, label_key, scope)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One-time codes sent by e-mail (verification, password reset): the digest, never the code.
CREATE TABLE email_codes (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    purpose VARCHAR(16) NOT NULL,
    code_digest VARBINARY(32) NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    consumed BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    KEY email_codes_user (user_id, purpose)
) ENGINE = InnoDB;

-- Failure counters for rate limits and lockouts, by key (`login.email:<email>`, `login.ip:<ip>`).
CREATE TABLE throttles (
    throttle_key VARCHAR(320) NOT NULL PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    locked_until_ms BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Sessions: keyed by the digest of the cookie's id; `handle` is the public name to list and
-- revoke one by.
CREATE TABLE sessions (
    digest VARBINARY(32) NOT NULL PRIMARY KEY,
    handle VARCHAR(32) NOT NULL,
    user_id BIGINT NOT NULL,
    csrf_digest VARBINARY(32) NOT NULL,
    user_agent VARCHAR(255) NOT NULL,
    source VARCHAR(64) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    absolute_expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT NULL,
    UNIQUE KEY sessions_handle (handle),
    KEY sessions_user (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- API keys (HMAC or Ed25519), for the tokens/keys stage: the secret is OpenBao transit
-- ciphertext, the nonce high-water mark makes replays fail.
CREATE TABLE api_keys (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    kid VARCHAR(64) NOT NULL,
    algorithm VARCHAR(16) NOT NULL,
    scopes VARCHAR(64) NOT NULL,
    secret_ciphertext TEXT NULL,
    public_key VARBINARY(32) NULL,
    legacy_signature BIGINT NOT NULL DEFAULT 0,
    allowed_ips TEXT NULL,
    state VARCHAR(16) NOT NULL,
    last_nonce BIGINT NOT NULL DEFAULT 0,
    expires_at_ms BIGINT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE KEY api_keys_kid (kid),
    KEY api_keys_user (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- RBAC: roles and their typed permissions (actions, not URL prefixes).
CREATE TABLE roles (
    name VARCHAR(32) NOT NULL PRIMARY KEY,
    description VARCHAR(255) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE permissions (
    role VARCHAR(32) NOT NULL,
    action VARCHAR(64) NOT NULL,
    PRIMARY KEY (role, action)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT INTO roles (name, description) VALUES
    ('superadmin', 'every action'),
    ('admin', 'operations and user administration'),
    ('accountant', 'balances, deposits and withdrawals review'),
    ('compliance', 'KYC review and labels'),
    ('support', 'read-only user support'),
    ('technical', 'markets and system operations'),
    ('trader', 'trading with higher limits'),
    ('member', 'a signed-up user');

-- The one trading account of each verified user: a dense engine AccountId.
CREATE TABLE accounts (
    user_id BIGINT NOT NULL PRIMARY KEY,
    account_id BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE KEY accounts_account_id (account_id)
) ENGINE = InnoDB;

-- The audit trail: append-only, each record's hash covers the previous one's.
CREATE TABLE audit (
    seq BIGINT NOT NULL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor VARCHAR(64) NOT NULL,
    action VARCHAR(64) NOT NULL,
    target VARCHAR(255) NOT NULL,
    source VARCHAR(64) NOT NULL,
    outcome VARCHAR(16) NOT NULL,
    code VARCHAR(64) NOT NULL,
    prev_hash VARBINARY(32) NOT NULL,
    hash VARBINARY(32) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
