-- 0003: cardholder controls, the card lifecycle's inactive state, virtual
-- cards and reissue links, merchant countries, the negative file and API
-- keys. Owned by cloud/controls, cloud/issuing and cloud/api; see
-- docs/issuing.md and docs/api.md.

-- cards gains the 'inactive' status (issued, not yet activated), a virtual
-- flag and the card a reissue replaces.
ALTER TABLE cards DROP CONSTRAINT cards_status_check;
ALTER TABLE cards ADD CONSTRAINT cards_status_check
    CHECK (status IN ('inactive', 'active', 'suspended', 'lost', 'stolen', 'closed'));
ALTER TABLE cards ADD COLUMN is_virtual BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE cards ADD COLUMN replaces_id BIGINT REFERENCES cards(id);

-- The daily limit sums a card's approved authorizations per day.
CREATE INDEX authorizations_card_day ON authorizations(card_id, created_at);

-- Merchant country: ISO 3166-1 numeric, "392" is Japan.
ALTER TABLE merchants ADD COLUMN country TEXT NOT NULL DEFAULT '392';

-- Cardholder controls; a card without a row has the defaults (unlocked, no
-- limits, nothing blocked, overseas and e-commerce allowed, home "392").
CREATE TABLE card_controls (
    card_id           BIGINT PRIMARY KEY REFERENCES cards(id),
    locked            BOOLEAN NOT NULL DEFAULT FALSE,
    per_txn_limit     BIGINT NOT NULL DEFAULT 0 CHECK (per_txn_limit >= 0),
    daily_limit       BIGINT NOT NULL DEFAULT 0 CHECK (daily_limit >= 0),
    blocked_mccs      TEXT NOT NULL DEFAULT '',
    overseas_allowed  BOOLEAN NOT NULL DEFAULT TRUE,
    ecommerce_allowed BOOLEAN NOT NULL DEFAULT TRUE,
    home_country      TEXT NOT NULL DEFAULT '392',
    updated_at        BIGINT NOT NULL
);

-- The negative file: one row per change, version strictly increasing in
-- commit order (taken from negative_file_version, whose single row every
-- writer updates and so holds locked until commit).
CREATE TABLE negative_file (
    version     BIGINT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    reason      TEXT NOT NULL,
    card_id     BIGINT REFERENCES cards(id),
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX negative_file_fingerprint ON negative_file(fingerprint);

CREATE TABLE negative_file_version (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO negative_file_version (id, version) VALUES (1, 0);

-- REST API keys: only the SHA-256 of the key is kept.
CREATE TABLE api_keys (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'head_office')),
    merchant_id TEXT REFERENCES merchants(id),
    created_at  BIGINT NOT NULL,
    CHECK ((role = 'head_office') = (merchant_id IS NOT NULL))
);
