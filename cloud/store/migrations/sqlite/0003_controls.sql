-- 0003: cardholder controls, the card lifecycle's inactive state, virtual
-- cards and reissue links, merchant countries, the negative file and API
-- keys. Owned by cloud/controls, cloud/issuing and cloud/api; see
-- docs/issuing.md and docs/api.md.

-- cards gains the 'inactive' status (issued, not yet activated), a virtual
-- flag and the card a reissue replaces. SQLite cannot alter a CHECK
-- constraint, so the table is rebuilt. authorizations.card_id references
-- cards: the old rows are copied aside, the table dropped and recreated
-- under its own name and refilled with the same ids, with foreign keys
-- deferred to commit, where every reference resolves again.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE cards_0003 AS SELECT * FROM cards;
DROP TABLE cards;
CREATE TABLE cards (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id  INTEGER NOT NULL REFERENCES card_products(id),
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    fingerprint TEXT NOT NULL UNIQUE,
    pan_sealed  BLOB NOT NULL,
    masked_pan  TEXT NOT NULL,
    expiry      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('inactive', 'active', 'suspended', 'lost', 'stolen', 'closed')),
    created_at  INTEGER NOT NULL,
    is_virtual  INTEGER NOT NULL DEFAULT 0,
    replaces_id INTEGER REFERENCES cards(id)
);
INSERT INTO cards (id, product_id, account_id, fingerprint, pan_sealed, masked_pan, expiry, status, created_at)
    SELECT id, product_id, account_id, fingerprint, pan_sealed, masked_pan, expiry, status, created_at FROM cards_0003;
DROP TABLE cards_0003;
CREATE INDEX cards_account ON cards(account_id);

-- The daily limit sums a card's approved authorizations per day.
CREATE INDEX authorizations_card_day ON authorizations(card_id, created_at);

-- Merchant country: ISO 3166-1 numeric, "392" is Japan.
ALTER TABLE merchants ADD COLUMN country TEXT NOT NULL DEFAULT '392';

-- Cardholder controls; a card without a row has the defaults (unlocked, no
-- limits, nothing blocked, overseas and e-commerce allowed, home "392").
CREATE TABLE card_controls (
    card_id           INTEGER PRIMARY KEY REFERENCES cards(id),
    locked            INTEGER NOT NULL DEFAULT 0,
    per_txn_limit     INTEGER NOT NULL DEFAULT 0 CHECK (per_txn_limit >= 0),
    daily_limit       INTEGER NOT NULL DEFAULT 0 CHECK (daily_limit >= 0),
    blocked_mccs      TEXT NOT NULL DEFAULT '',
    overseas_allowed  INTEGER NOT NULL DEFAULT 1,
    ecommerce_allowed INTEGER NOT NULL DEFAULT 1,
    home_country      TEXT NOT NULL DEFAULT '392',
    updated_at        INTEGER NOT NULL
);

-- The negative file: one row per change, version strictly increasing in
-- commit order (taken from negative_file_version, whose single row every
-- writer updates and so holds locked until commit).
CREATE TABLE negative_file (
    version     INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    reason      TEXT NOT NULL,
    card_id     INTEGER REFERENCES cards(id),
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX negative_file_fingerprint ON negative_file(fingerprint);

CREATE TABLE negative_file_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO negative_file_version (id, version) VALUES (1, 0);

-- REST API keys: only the SHA-256 of the key is kept.
CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    hash        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'head_office')),
    merchant_id TEXT REFERENCES merchants(id),
    created_at  INTEGER NOT NULL,
    CHECK ((role = 'head_office') = (merchant_id IS NOT NULL))
);
