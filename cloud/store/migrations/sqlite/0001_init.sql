-- 0001: merchants, terminals, card products, accounts, cards, the ledger,
-- authorizations, device replay state and the audit trail.
-- Timestamps are Unix microseconds (UTC). Money is integer minor units.

CREATE TABLE gateways (
    id         TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE merchants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    head_office_id TEXT REFERENCES merchants(id),
    created_at     INTEGER NOT NULL
);

CREATE TABLE terminals (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    gateway_id  TEXT NOT NULL REFERENCES gateways(id),
    mcc         TEXT NOT NULL,
    currency    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX terminals_gateway ON terminals(gateway_id);

CREATE TABLE card_products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('credit', 'debit', 'prepaid', 'house')),
    currency    TEXT NOT NULL,
    bin_low     TEXT NOT NULL,
    bin_high    TEXT NOT NULL,
    pan_length  INTEGER NOT NULL,
    credit_line INTEGER NOT NULL DEFAULT 0,
    overdraft   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE product_merchants (
    product_id  INTEGER NOT NULL REFERENCES card_products(id),
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    PRIMARY KEY (product_id, merchant_id)
);

CREATE TABLE cardholders (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    currency      TEXT NOT NULL,
    ref           TEXT UNIQUE,
    cardholder_id INTEGER REFERENCES cardholders(id),
    product_id    INTEGER REFERENCES card_products(id),
    merchant_id   TEXT REFERENCES merchants(id),
    balance       INTEGER NOT NULL DEFAULT 0,
    held          INTEGER NOT NULL DEFAULT 0,
    credit_line   INTEGER NOT NULL DEFAULT 0,
    overdraft     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE cards (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id  INTEGER NOT NULL REFERENCES card_products(id),
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    fingerprint TEXT NOT NULL UNIQUE,
    pan_sealed  BLOB NOT NULL,
    masked_pan  TEXT NOT NULL,
    expiry      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'lost', 'stolen', 'closed')),
    created_at  INTEGER NOT NULL
);
CREATE INDEX cards_account ON cards(account_id);

CREATE TABLE transfers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE postings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_id INTEGER NOT NULL REFERENCES transfers(id),
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    amount      INTEGER NOT NULL,
    currency    TEXT NOT NULL
);
CREATE INDEX postings_transfer ON postings(transfer_id);
CREATE INDEX postings_account ON postings(account_id);

CREATE TABLE holds (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    amount     INTEGER NOT NULL CHECK (amount > 0),
    currency   TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('open', 'released', 'captured')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX holds_open ON holds(account_id) WHERE status = 'open';
CREATE INDEX holds_expiry ON holds(expires_at) WHERE status = 'open';

CREATE TABLE authorizations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    gateway_id      TEXT NOT NULL,
    terminal_id     TEXT NOT NULL,
    stan            TEXT NOT NULL,
    mti             TEXT NOT NULL,
    processing_code TEXT NOT NULL,
    function_code   TEXT NOT NULL,
    local_time      TEXT NOT NULL,
    amount          INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    card_id         INTEGER REFERENCES cards(id),
    account_id      INTEGER REFERENCES accounts(id),
    action_code     TEXT NOT NULL,
    approval_code   TEXT NOT NULL,
    rrn             TEXT NOT NULL,
    hold_id         INTEGER REFERENCES holds(id),
    transfer_id     INTEGER REFERENCES transfers(id),
    original_id     INTEGER REFERENCES authorizations(id),
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX authorizations_original ON authorizations(terminal_id, stan, local_time, mti);
CREATE INDEX authorizations_rrn ON authorizations(rrn);

CREATE TABLE ksn_device (
    device_id  TEXT PRIMARY KEY,
    counter    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    actor  TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_at ON audit(at);
