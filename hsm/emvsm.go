package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
	"github.com/posgate/posgate/emv/cryptogram"
)

// EMV secure messaging for issuer scripts in the token (EMV 4.4 Book 2
// section 9; the arithmetic is in emv/cryptogram, sm.go).
//
// The issuer master keys for secure messaging integrity (IMK-SMI) and
// confidentiality (IMK-SMC) are persistent, sensitive, non-extractable
// DES2 objects with CKA_DERIVE, like the IMK-AC. Each is served by an
// EMVIssuer (its ICC master key cache, option A derivation and
// reference-counted objects), so everything said in emv.go's notes
// holds: the ICC master key MK-SMI (MK-SMC) is one C_DeriveKey over
// option A's data, the session key one more over the common session key
// data with R = the transaction's application cryptogram
// (cryptogram.SMSessionR), and the command MAC is the same two-operation
// ISO/IEC 9797-1 MAC algorithm 3 as the application cryptogram's, under
// the SMI session key. Data encipherment is one CKM_DES3_CBC (zero IV)
// under the SMC session key over the data padded by method 2. Only TDES
// IMKs are served: an AES IMK-SMI or IMK-SMC is refused with ErrKeyType.

// ScriptCommand is an issuer script command to MAC for one card and one
// transaction: the card (PAN digits and BCD PSN), the ATC and application
// cryptogram of the request the script answers, the command's CLA INS P1
// P2 and its data field without the MAC (already enciphered when it is
// confidential). PAN is card data: never log a ScriptCommand.
type ScriptCommand struct {
	PAN    string
	PSN    byte
	ATC    uint16
	ARQC   [8]byte
	Header [4]byte
	Data   []byte
}

// SecureMessaging computes issuer script MACs and enciphers script data
// under an IMK-SMI and an IMK-SMC held in the token. It is safe for
// concurrent use. Close it before the Token.
type SecureMessaging struct {
	smi, smc *EMVIssuer
}

// SecureMessaging returns a SecureMessaging for the IMK-SMI labelled
// smiLabel and the IMK-SMC labelled smcLabel; maxCards bounds each one's
// ICC master key cache as EMVIssuer's argument does. The keys are looked
// up on first use.
func (t *Token) SecureMessaging(smiLabel, smcLabel string, maxCards int) (*SecureMessaging, error) {
	smi, err := t.EMVIssuer(smiLabel, maxCards)
	if err != nil {
		return nil, fmt.Errorf("secure messaging: IMK-SMI: %w", err)
	}
	smc, err := t.EMVIssuer(smcLabel, maxCards)
	if err != nil {
		return nil, fmt.Errorf("secure messaging: IMK-SMC: %w", err)
	}
	return &SecureMessaging{smi: smi, smc: smc}, nil
}

// Close destroys the cached ICC master keys; the SecureMessaging stays
// usable.
func (m *SecureMessaging) Close() error {
	return errors.Join(m.smi.Close(), m.smc.Close())
}

// ScriptMAC returns the 8-byte secure messaging MAC of c (format 2:
// cryptogram.ScriptMACData) under the card's SMI session key for c.ARQC,
// computed in the token.
func (m *SecureMessaging) ScriptMAC(c ScriptCommand) ([8]byte, error) {
	var out [8]byte
	data, err := cryptogram.ScriptMACData(c.Header, c.ATC, c.ARQC, c.Data)
	if err != nil {
		return out, fmt.Errorf("script MAC: %w: %w", ErrInput, err)
	}
	e := m.smi
	err = e.withICC(c.PAN, c.PSN, func(s *session, mk icc) error {
		if mk.kind.aesLen > 0 {
			return fmt.Errorf("IMK-SMI %q is an AES key; secure messaging is TDES only: %w", e.imk, ErrKeyType)
		}
		sk, err := e.deriveSession(s, mk, cryptogram.SMSessionR(c.ARQC), true)
		if err != nil {
			return err
		}
		defer func() { _ = e.t.destroy(s, sk.full, sk.left) }()
		out, err = e.mac(s, mk.kind, sk, data)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("script MAC: %w", err)
	}
	return out, nil
}

// EncipherScriptData enciphers plain, the data field of a confidential
// script command, under the card's SMC session key for arqc: TDES CBC
// with a zero IV over the data padded by ISO/IEC 9797-1 method 2, in the
// token (cryptogram.EncipherScriptData).
func (m *SecureMessaging) EncipherScriptData(pan string, psn byte, arqc [8]byte, plain []byte) ([]byte, error) {
	var out []byte
	e := m.smc
	p := cryptogram.Pad2(plain)
	defer clear(p)
	err := e.withICC(pan, psn, func(s *session, mk icc) error {
		if mk.kind.aesLen > 0 {
			return fmt.Errorf("IMK-SMC %q is an AES key; secure messaging is TDES only: %w", e.imk, ErrKeyType)
		}
		sk, err := e.deriveSession(s, mk, cryptogram.SMSessionR(arqc), false)
		if err != nil {
			return err
		}
		defer func() { _ = e.t.destroy(s, sk.full) }()
		out, err = e.t.cipherHandle(s, sk.full, true, pkcs11.NewMechanism(pkcs11.CKM_DES3_CBC, make([]byte, 8)), p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("encipher script data: %w", err)
	}
	return out, nil
}
