-- 0002: switching. BIN routes to external brand hosts, the routing record
-- of every authorization sent to (or stood in for) a brand host, and the
-- host outbox of reversals and advices still owed to a brand host.
-- Owned by cloud/authz and cloud/routing; see docs/switching.md.

CREATE TABLE bin_routes (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bin_low             TEXT NOT NULL,
    bin_high            TEXT NOT NULL,
    pan_length          INTEGER NOT NULL,
    destination         TEXT NOT NULL,
    standin_txn_limit   BIGINT NOT NULL DEFAULT 0,
    standin_daily_limit BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    UNIQUE (bin_low, bin_high, pan_length)
);

CREATE TABLE routed_authorizations (
    authorization_id BIGINT PRIMARY KEY REFERENCES authorizations(id),
    host             TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    masked_pan       TEXT NOT NULL,
    local_day        TEXT NOT NULL,
    stand_in         INTEGER NOT NULL DEFAULT 0,
    host_action      TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL
);
CREATE INDEX routed_standin ON routed_authorizations(fingerprint, local_day) WHERE stand_in = 1;

CREATE TABLE host_outbox (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    authorization_id BIGINT NOT NULL REFERENCES authorizations(id),
    host             TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('reversal', 'advice')),
    message          BYTEA NOT NULL,
    pan_sealed       BYTEA,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_at          BIGINT NOT NULL,
    last_result      TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX host_outbox_due ON host_outbox(next_at) WHERE state = 'pending';
