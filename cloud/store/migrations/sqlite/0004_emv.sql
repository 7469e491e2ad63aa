-- 0004: chip cards and card verification values at the center. Owned by
-- cloud/authz (store/emv.go); see docs/emv.md ("Center integration") and
-- docs/issuing.md ("Card verification values").

-- Per product: the token labels of its issuer master key for application
-- cryptograms and of its card verification key ('' = the center's
-- configured default, keys.imk_ac / keys.cvk), whether a chip card of the
-- product may be read by magnetic stripe after a chip failure (fallback),
-- and how CVV2 is treated: 'off' (never checked), 'if_present' (checked
-- when the card block carries one), 'required' (must be present and
-- valid).
ALTER TABLE card_products ADD COLUMN imk_label TEXT NOT NULL DEFAULT '';
ALTER TABLE card_products ADD COLUMN cvk_label TEXT NOT NULL DEFAULT '';
ALTER TABLE card_products ADD COLUMN allow_fallback INTEGER NOT NULL DEFAULT 1;
ALTER TABLE card_products ADD COLUMN cvv2_policy TEXT NOT NULL DEFAULT 'off'
    CHECK (cvv2_policy IN ('off', 'if_present', 'required'));

-- The ATC guard: per card application (PAN fingerprint and PAN sequence
-- number, "fingerprint:psn"), the highest application transaction counter
-- accepted online. Advanced in the authorization's own transaction.
CREATE TABLE emv_atc (
    card_key   TEXT PRIMARY KEY,
    atc        INTEGER NOT NULL CHECK (atc >= 0 AND atc <= 65535),
    updated_at INTEGER NOT NULL
);
