-- API keys, self-service (MySQL/MariaDB; the SQLite file beside this one is the same schema).
-- Each key carries the trading account it acts for, so a gateway loads a key without a join.
ALTER TABLE api_keys ADD COLUMN account_id BIGINT NULL;

-- What gateways follow to keep their in-memory key caches: one row per change of a key
-- (created, disabled, deleted), ids strictly increasing in commit order. The ids come from
-- `api_key_event_seq`, whose single row each writer locks in its transaction, so a follower
-- reading `id > last` never misses a row committed later with a smaller id (AUTO_INCREMENT
-- would allow that).
CREATE TABLE api_key_events (
    id BIGINT NOT NULL PRIMARY KEY,
    kid VARCHAR(64) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    at_ms BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE api_key_event_seq (
    id BIGINT NOT NULL PRIMARY KEY,
    last_id BIGINT NOT NULL
) ENGINE = InnoDB;

INSERT INTO api_key_event_seq (id, last_id) VALUES (1, 0);
