-- 0005: cardholder signatures captured at the terminal, carried by the
-- gateway in 1304 SIGCAP file actions (docs/signatures.md). Owned by
-- cloud/center (signature.go) and store/signature.go. No card data: a
-- signature is linked to its authorization by the sale's idempotency key.

-- Chunks of signatures not yet complete, one row per record received.
-- Deleted when the signature is assembled.
CREATE TABLE signature_chunks (
    idempotency_key TEXT NOT NULL,
    chunk_offset    INTEGER NOT NULL CHECK (chunk_offset >= 0),
    total           INTEGER NOT NULL CHECK (total > 0 AND total <= 65536),
    format          INTEGER NOT NULL,
    data            BLOB NOT NULL,
    received_at     INTEGER NOT NULL,
    PRIMARY KEY (idempotency_key, chunk_offset)
);

-- Complete signatures, at most one per authorization.
CREATE TABLE signatures (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    authorization_id INTEGER NOT NULL UNIQUE REFERENCES authorizations(id),
    idempotency_key  TEXT NOT NULL UNIQUE,
    gateway_id       TEXT NOT NULL,
    terminal_id      TEXT NOT NULL,
    stan             TEXT NOT NULL,
    local_time       TEXT NOT NULL,
    format           INTEGER NOT NULL,
    data             BLOB NOT NULL,
    received_at      INTEGER NOT NULL
);
