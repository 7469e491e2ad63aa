package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/cardblock"
	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/keybundle"
)

// encrypt-block

type encryptBlockResult struct {
	TerminalID string `json:"terminal_id"`
	KSN        string `json:"ksn"`
	MaskedPAN  string `json:"masked_pan"`
	Block      string `json:"block"`
}

func (r encryptBlockResult) text(w io.Writer) error {
	return fields(w, "terminal", r.TerminalID, "KSN", r.KSN, "PAN", r.MaskedPAN, "block", r.Block)
}

func setupEncryptBlock(fs *flag.FlagSet, g *globals) func(context.Context) (result, error) {
	bundle := fs.String("keys", "", "terminal key bundle written by hsmctl inject")
	panFlag := fs.String("pan", "", "card number (test cards only; it is never printed back except masked)")
	expiry := fs.String("expiry", "", "expiry, YYMM")
	cvv := fs.String("cvv", "", "security code, 3 or 4 digits (optional)")
	counter := fs.String("counter", "1", "DUKPT transaction counter (decimal, or hex with 0x)")
	return func(ctx context.Context) (result, error) {
		if err := required("keys", *bundle, "pan", *panFlag, "expiry", *expiry); err != nil {
			return nil, err
		}
		var cd cardblock.ClearData
		var err error
		if cd.PAN, err = card.ParsePAN(*panFlag); err != nil {
			return nil, fmt.Errorf("--pan: %w", err)
		}
		if cd.Expiry, err = card.ParseExpiry(*expiry); err != nil {
			return nil, fmt.Errorf("--expiry: %w", err)
		}
		if *cvv != "" {
			if cd.SecurityCode, err = card.ParseSecurityCode(*cvv); err != nil {
				return nil, fmt.Errorf("--cvv: %w", err)
			}
		}
		c, err := strconv.ParseUint(*counter, 0, 32)
		if err != nil {
			return nil, fmt.Errorf("--counter %q: want a 32-bit number: %w", *counter, errInput)
		}
		keys, err := keybundle.Load(*bundle)
		if err != nil {
			return nil, err
		}
		defer clear(keys.InitialKey)
		defer clear(keys.FingerprintKey)
		ksn := dukpt.NewAESKSN(keys.IKID, uint32(c))
		if err := ksn.Validate(); err != nil {
			return nil, fmt.Errorf("--counter %d: %w", c, err)
		}
		b, err := cardblock.SealAES(keys.InitialKey, ksn, cd)
		if err != nil {
			return nil, fmt.Errorf("seal the card-data block: %w", err)
		}
		raw, err := b.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode the card-data block: %w", err)
		}
		return encryptBlockResult{TerminalID: keys.TerminalID, KSN: ksn.String(), MaskedPAN: cd.PAN.Masked(),
			Block: strings.ToUpper(hex.EncodeToString(raw))}, nil
	}
}

// decrypt-block

type decryptBlockResult struct {
	Algorithm string `json:"algorithm"`
	KSN       string `json:"ksn"`
	MaskedPAN string `json:"masked_pan"`
	Expiry    string `json:"expiry,omitempty"`
	// Fields lists the fields the block carries, by name: pan, expiry,
	// service_code, track2, security_code.
	Fields []string `json:"fields"`
}

func (r decryptBlockResult) text(w io.Writer) error {
	exp := r.Expiry
	if exp == "" {
		exp = "(absent)"
	}
	return fields(w,
		"algorithm", r.Algorithm,
		"KSN", r.KSN,
		"PAN", r.MaskedPAN+" (masked; hsmctl never prints a clear PAN)",
		"expiry", exp,
		"fields present", strings.Join(r.Fields, ", "),
	)
}

func setupDecryptBlock(fs *flag.FlagSet, g *globals) func(context.Context) (result, error) {
	bdk := fs.String("bdk", "", "label of the BDK in the token (AES BDK for an AES block, TDES BDK for a TDES one)")
	blockHex := fs.String("block", "", "the card-data block (DE 120) in hex")
	return func(ctx context.Context) (res result, err error) {
		if err := required("bdk", *bdk, "block", *blockHex); err != nil {
			return nil, err
		}
		raw, err := parseHex("--block", *blockHex)
		if err != nil {
			return nil, err
		}
		b, err := cardblock.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("--block: %w", err)
		}
		tok, err := g.openToken()
		if err != nil {
			return nil, err
		}
		defer closeToken(tok, &err)
		var plain []byte
		var ksnStr string
		switch b.Algorithm {
		case cardblock.AlgAES:
			ksn, err := b.AESKSN()
			if err != nil {
				return nil, err
			}
			ksnStr = ksn.String()
			plain, err = tok.DecryptDUKPT(*bdk, ksn, dukpt.UsageDataEncrypt, dukpt.AlgAES128, make([]byte, 16), b.Ciphertext)
			if err != nil {
				return nil, fmt.Errorf("decrypt the block in the token: %w", err)
			}
		case cardblock.AlgTDES:
			ksn, err := b.TDESKSN()
			if err != nil {
				return nil, err
			}
			ksnStr = ksn.String()
			plain, err = tok.DecryptTDESDUKPT(*bdk, ksn, dukpt.UsageDataEncrypt, make([]byte, 8), b.Ciphertext)
			if err != nil {
				return nil, fmt.Errorf("decrypt the block in the token: %w", err)
			}
		default:
			return nil, fmt.Errorf("--block algorithm %v: %w", b.Algorithm, cardblock.ErrAlgorithm)
		}
		cd, err := cardblock.ParsePlaintext(plain)
		clear(plain)
		if err != nil {
			return nil, fmt.Errorf("decrypted block (wrong BDK?): %w", err)
		}
		r := decryptBlockResult{Algorithm: b.Algorithm.String(), KSN: ksnStr, MaskedPAN: cd.PAN.Masked(), Fields: []string{"pan"}}
		if !cd.Expiry.IsZero() {
			r.Expiry = cd.Expiry.String()
			r.Fields = append(r.Fields, "expiry")
		}
		if cd.ServiceCode != "" {
			r.Fields = append(r.Fields, "service_code")
		}
		if !cd.Track2.IsZero() {
			r.Fields = append(r.Fields, "track2")
		}
		if !cd.SecurityCode.IsZero() {
			r.Fields = append(r.Fields, "security_code")
		}
		return r, nil
	}
}
