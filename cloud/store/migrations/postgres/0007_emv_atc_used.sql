-- 0007: the application transaction counters each card application has
-- used. Owned by cloud/authz (store/emv.go); see docs/emv.md ("The ATC
-- rule").
--
-- One row per ATC of a card application ("fingerprint:psn", as in
-- emv_atc) whose cryptogram was accepted: an online ARQC, a TC in an
-- offline approval's advice, or an ARQC in a stand-in advice. Each ATC is
-- used once per card application; advices may carry an ATC below the
-- highest in emv_atc (they arrive late), so the highest alone cannot tell
-- a late advice from a replay.
CREATE TABLE emv_atc_used (
    card_key TEXT NOT NULL,
    atc      INTEGER NOT NULL CHECK (atc >= 0 AND atc <= 65535),
    used_at  BIGINT NOT NULL,
    PRIMARY KEY (card_key, atc)
);

-- The ATCs accepted before this migration are known only by each card's
-- highest: that one is used.
INSERT INTO emv_atc_used (card_key, atc, used_at) SELECT card_key, atc, updated_at FROM emv_atc;
