-- 0001: merchants, terminals, card products, accounts, cards, the ledger,
-- authorizations, device replay state and the audit trail.
-- Timestamps are Unix microseconds (UTC). Money is integer minor units.

CREATE TABLE gateways (
    id         TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE merchants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    head_office_id TEXT REFERENCES merchants(id),
    created_at     BIGINT NOT NULL
);

CREATE TABLE terminals (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    gateway_id  TEXT NOT NULL REFERENCES gateways(id),
    mcc         TEXT NOT NULL,
    currency    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX terminals_gateway ON terminals(gateway_id);

CREATE TABLE card_products (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('credit', 'debit', 'prepaid', 'house')),
    currency    TEXT NOT NULL,
    bin_low     TEXT NOT NULL,
    bin_high    TEXT NOT NULL,
    pan_length  BIGINT NOT NULL,
    credit_line BIGINT NOT NULL DEFAULT 0,
    overdraft   BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE product_merchants (
    product_id  BIGINT NOT NULL REFERENCES card_products(id),
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    PRIMARY KEY (product_id, merchant_id)
);

CREATE TABLE cardholders (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE accounts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT NOT NULL,
    currency      TEXT NOT NULL,
    ref           TEXT UNIQUE,
    cardholder_id BIGINT REFERENCES cardholders(id),
    product_id    BIGINT REFERENCES card_products(id),
    merchant_id   TEXT REFERENCES merchants(id),
    balance       BIGINT NOT NULL DEFAULT 0,
    held          BIGINT NOT NULL DEFAULT 0,
    credit_line   BIGINT NOT NULL DEFAULT 0,
    overdraft     BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE cards (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id  BIGINT NOT NULL REFERENCES card_products(id),
    account_id  BIGINT NOT NULL REFERENCES accounts(id),
    fingerprint TEXT NOT NULL UNIQUE,
    pan_sealed  BYTEA NOT NULL,
    masked_pan  TEXT NOT NULL,
    expiry      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'lost', 'stolen', 'closed')),
    created_at  BIGINT NOT NULL
);
CREATE INDEX cards_account ON cards(account_id);

CREATE TABLE transfers (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE postings (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id BIGINT NOT NULL REFERENCES transfers(id),
    account_id  BIGINT NOT NULL REFERENCES accounts(id),
    amount      BIGINT NOT NULL,
    currency    TEXT NOT NULL
);
CREATE INDEX postings_transfer ON postings(transfer_id);
CREATE INDEX postings_account ON postings(account_id);

CREATE TABLE holds (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    amount     BIGINT NOT NULL CHECK (amount > 0),
    currency   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('open', 'released', 'captured')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX holds_open ON holds(account_id) WHERE status = 'open';
CREATE INDEX holds_expiry ON holds(expires_at) WHERE status = 'open';

CREATE TABLE authorizations (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    gateway_id      TEXT NOT NULL,
    terminal_id     TEXT NOT NULL,
    stan            TEXT NOT NULL,
    mti             TEXT NOT NULL,
    processing_code TEXT NOT NULL,
    function_code   TEXT NOT NULL,
    local_time      TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    card_id         BIGINT REFERENCES cards(id),
    account_id      BIGINT REFERENCES accounts(id),
    action_code     TEXT NOT NULL,
    approval_code   TEXT NOT NULL,
    rrn             TEXT NOT NULL,
    hold_id         BIGINT REFERENCES holds(id),
    transfer_id     BIGINT REFERENCES transfers(id),
    original_id     BIGINT REFERENCES authorizations(id),
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX authorizations_original ON authorizations(terminal_id, stan, local_time, mti);
CREATE INDEX authorizations_rrn ON authorizations(rrn);

CREATE TABLE ksn_device (
    device_id  TEXT PRIMARY KEY,
    counter    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE audit (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    actor  TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_at ON audit(at);
