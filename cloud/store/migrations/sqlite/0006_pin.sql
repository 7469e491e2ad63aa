-- 0006: issuer PIN verification with the Visa PIN verification value
-- (PVV). Owned by cloud/authz (pin.go) and store/pin.go; see docs/keys.md
-- ("Issuer PIN verification").

-- Per product: the token label of its PIN verification key pair ('' = the
-- product's PINs are not verified at the center).
ALTER TABLE card_products ADD COLUMN pvk_label TEXT NOT NULL DEFAULT '';

-- Per card: the PVV (4 digits) and the PIN verification key index it was
-- made with, and the count of consecutive wrong PINs (reset by a right
-- one). A card without a row has no PIN the center can verify. The PVV is
-- not the PIN, but with the PVK it narrows the PIN: it is card security
-- data, never logged or shown.
CREATE TABLE card_pins (
    card_id    INTEGER PRIMARY KEY REFERENCES cards(id),
    pvki       INTEGER NOT NULL CHECK (pvki >= 0 AND pvki <= 9),
    pvv        TEXT NOT NULL CHECK (length(pvv) = 4),
    tries      INTEGER NOT NULL DEFAULT 0 CHECK (tries >= 0),
    updated_at INTEGER NOT NULL
);
