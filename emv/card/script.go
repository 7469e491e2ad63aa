package card

import (
	"errors"
	"fmt"

	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

// Issuer scripts (EMV 4.4 Book 2 section 9, Book 3 section 10.10).
//
// A card personalised with Config.IMKSMI runs the issuer script commands
// a terminal passes it from the 86 objects of a 71 or 72 template, after
// checking each command's secure messaging MAC (format 2,
// cryptogram.ScriptMACData) under its SMI session key for the
// application cryptogram of its last ARQC (R = that ARQC). The card
// keeps that ARQC and its ATC from the first GENERATE AC that asked to go
// online until the next GENERATE AC, so a script is valid only for the
// transaction it answers.
//
// Commands (CLA 84: secure messaging, the last 8 bytes of the data field
// are the MAC):
//
//   - APPLICATION BLOCK (INS 1E, P1 P2 00 00): the application is
//     blocked. posgate's card stays selectable and answers every later
//     GENERATE AC (and contactless tap) with an AAC: the terminal
//     declines offline, nothing goes online.
//   - APPLICATION UNBLOCK (INS 18, P1 P2 00 00): unblocks it.
//
// A command whose MAC does not verify changes nothing and answers 6988.
// Status words are those of ISO/IEC 7816-4.

// Status words of issuer script commands.
const (
	// SWOK: the command ran.
	SWOK uint16 = 0x9000
	// SWWrongLength: the APDU is shorter than its header, its Lc does
	// not match its length, or its data field cannot hold the MAC.
	SWWrongLength uint16 = 0x6700
	// SWConditions: the card has no secure messaging keys, or no ARQC
	// this transaction for the MAC to cover.
	SWConditions uint16 = 0x6985
	// SWSecureMessaging: the MAC does not verify (incorrect secure
	// messaging data objects).
	SWSecureMessaging uint16 = 0x6988
	// SWWrongP1P2: P1 P2 are not 00 00.
	SWWrongP1P2 uint16 = 0x6A86
	// SWINSNotSupported: the instruction is not a script command this
	// card runs.
	SWINSNotSupported uint16 = 0x6D00
	// SWCLANotSupported: the class is not 84 (secure messaging).
	SWCLANotSupported uint16 = 0x6E00
)

// Script command instructions.
const (
	InsApplicationBlock   byte = 0x1E
	InsApplicationUnblock byte = 0x18
)

// ErrScript means an issuer script template is malformed (not a 71 or 72
// template).
var ErrScript = errors.New("card: malformed issuer script")

// scriptState is what issuer script MACs cover: the ATC and the
// cryptogram of the card's last ARQC.
type scriptState struct {
	atc  uint16
	arqc [8]byte
}

// personaliseSM derives the ICC master keys for secure messaging from the
// test IMKs; nil IMKs leave the card without them.
func (c *Card) personaliseSM(imkSMI, imkSMC []byte) error {
	var err error
	if imkSMI != nil {
		if c.smi, err = cryptogram.DeriveICCMasterKeyA(imkSMI, c.pan, c.psn); err != nil {
			return fmt.Errorf("IMK-SMI: %w", err)
		}
	}
	if imkSMC != nil {
		if c.smc, err = cryptogram.DeriveICCMasterKeyA(imkSMC, c.pan, c.psn); err != nil {
			return fmt.Errorf("IMK-SMC: %w", err)
		}
	}
	return nil
}

// Blocked reports whether an APPLICATION BLOCK script command was
// accepted (and no APPLICATION UNBLOCK since).
func (c *Card) Blocked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked
}

// ScriptCommand runs one issuer script command APDU (the value of an 86
// object: CLA INS P1 P2 Lc data, the data ending with the 8-byte MAC, an
// optional Le) and returns its status word. Only SWOK changes the card.
func (c *Card) ScriptCommand(apdu []byte) uint16 {
	if len(apdu) < 5 {
		return SWWrongLength
	}
	lc := int(apdu[4])
	if n := len(apdu) - 5; n != lc && n != lc+1 {
		return SWWrongLength
	}
	if apdu[0] != 0x84 {
		return SWCLANotSupported
	}
	ins := apdu[1]
	if ins != InsApplicationBlock && ins != InsApplicationUnblock {
		return SWINSNotSupported
	}
	if apdu[2] != 0 || apdu[3] != 0 {
		return SWWrongP1P2
	}
	if lc < cryptogram.ScriptMACLen {
		return SWWrongLength
	}
	data := apdu[5 : 5+lc-cryptogram.ScriptMACLen]
	mac := [8]byte(apdu[5+lc-cryptogram.ScriptMACLen : 5+lc])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.smi == nil || c.script == nil {
		return SWConditions
	}
	sk, err := cryptogram.DeriveSessionKey(c.smi, cryptogram.SMSessionR(c.script.arqc))
	if err != nil {
		return SWConditions
	}
	defer clear(sk)
	if cryptogram.VerifyScriptMAC(sk, [4]byte(apdu[:4]), c.script.atc, c.script.arqc, data, mac) != nil {
		return SWSecureMessaging
	}
	c.blocked = ins == InsApplicationBlock
	return SWOK
}

// RunScript runs the 86 commands of one issuer script template (a 71 or
// 72 as de55.ParseResponse returns it) in order, stopping after the first
// that does not answer SWOK (EMV Book 3 10.10), and returns the status
// words of the commands run. Objects other than 86 (the 9F18 script
// identifier) are skipped. A template of another tag is ErrScript.
func (c *Card) RunScript(t tlv.TLV) ([]uint16, error) {
	if t.Tag != tags.IssuerScript1 && t.Tag != tags.IssuerScript2 {
		return nil, fmt.Errorf("run issuer script: tag %s: %w", t.Tag, ErrScript)
	}
	var sws []uint16
	for _, x := range t.Children {
		if x.Tag != tags.IssuerScriptCommand {
			continue
		}
		sw := c.ScriptCommand(x.Value)
		sws = append(sws, sw)
		if sw != SWOK {
			break
		}
	}
	return sws, nil
}

// ScriptDecipher deciphers data of a confidential script command under
// the card's SMC session key for its last ARQC (cryptogram.
// DecipherScriptData); no command uses it yet. It returns
// cryptogram.ErrInput for data that does not decipher, ErrSequence
// without an ARQC, and an error without SMC keys.
func (c *Card) ScriptDecipher(ct []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.smc == nil {
		return nil, errors.New("card: script decipher: no IMK-SMC personalised")
	}
	if c.script == nil {
		return nil, fmt.Errorf("script decipher: %w", ErrSequence)
	}
	sk, err := cryptogram.DeriveSessionKey(c.smc, cryptogram.SMSessionR(c.script.arqc))
	if err != nil {
		return nil, fmt.Errorf("script decipher: %w", err)
	}
	defer clear(sk)
	return cryptogram.DecipherScriptData(sk, ct)
}
