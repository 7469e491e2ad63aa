// Package cardsec is the center's issuer-side card security on the token:
// EMV application cryptogram checks and ARPCs under per-product issuer
// master keys, and card verification values (CVV2) under per-product card
// verification keys. It adapts hsm.Token to what the authorization switch
// consumes (authz.CardSecurity); the keys never leave the token.
package cardsec

import (
	"errors"
	"fmt"
	"sync"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/p2pe/card"
)

// Errors callers branch on.
var (
	// ErrCryptogram means the ARQC does not verify (wraps
	// hsm.ErrCryptogram).
	ErrCryptogram = hsm.ErrCryptogram
	// ErrCVV means the card verification value does not verify (wraps
	// hsm.ErrCVV).
	ErrCVV = hsm.ErrCVV
)

// Keys checks cryptograms and card verification values in one token. It
// keeps one hsm.EMVIssuer per IMK label, made on first use. It is safe for
// concurrent use; Close it before closing the token.
type Keys struct {
	tok      *hsm.Token
	maxCards int
	arpcKey  hsm.ARPCKey

	mu      sync.Mutex
	issuers map[string]*hsm.EMVIssuer
}

// New returns Keys on tok. maxCards bounds each IMK's ICC master key cache
// as hsm.Token.EMVIssuer's argument does (0 default, -1 off); arpcKey
// selects the key of ARPC method 1 (zero means hsm.ARPCKeyICCMaster).
func New(tok *hsm.Token, maxCards int, arpcKey hsm.ARPCKey) (*Keys, error) {
	if maxCards < -1 {
		return nil, fmt.Errorf("card security keys: ICC master key cache bound %d: want -1, 0 or positive", maxCards)
	}
	if arpcKey == 0 {
		arpcKey = hsm.ARPCKeyICCMaster
	}
	if arpcKey != hsm.ARPCKeyICCMaster && arpcKey != hsm.ARPCKeySession {
		return nil, fmt.Errorf("card security keys: ARPC key selector %d: want ICC master or session", arpcKey)
	}
	return &Keys{tok: tok, maxCards: maxCards, arpcKey: arpcKey, issuers: map[string]*hsm.EMVIssuer{}}, nil
}

func (k *Keys) issuer(imkLabel string) (*hsm.EMVIssuer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if iss := k.issuers[imkLabel]; iss != nil {
		return iss, nil
	}
	// EMVIssuer makes no token call (the key is looked up on first use),
	// so holding mu here holds it across no token call.
	iss, err := k.tok.EMVIssuer(imkLabel, k.maxCards)
	if err != nil {
		return nil, err
	}
	k.issuers[imkLabel] = iss
	return iss, nil
}

// VerifyARQC checks req under the IMK labelled imkLabel and, when it
// verifies, returns the ARPC (method 1) for arc. It returns an error
// wrapping ErrCryptogram when the cryptogram does not verify, another
// error when the token could not compute it.
func (k *Keys) VerifyARQC(imkLabel string, req hsm.ARQCRequest, arc [2]byte) ([8]byte, error) {
	iss, err := k.issuer(imkLabel)
	if err != nil {
		return [8]byte{}, fmt.Errorf("verify ARQC under %q: %w", imkLabel, err)
	}
	arpc, err := iss.VerifyARQCAndARPC1(req, arc, k.arpcKey)
	if err != nil {
		return [8]byte{}, fmt.Errorf("verify ARQC under %q: %w", imkLabel, err)
	}
	return arpc, nil
}

// ARPC returns the ARPC (method 1) for req.ARQC and arc under the IMK
// labelled imkLabel without verifying the ARQC: for a decline.
func (k *Keys) ARPC(imkLabel string, req hsm.ARQCRequest, arc [2]byte) ([8]byte, error) {
	iss, err := k.issuer(imkLabel)
	if err != nil {
		return [8]byte{}, fmt.Errorf("ARPC under %q: %w", imkLabel, err)
	}
	arpc, err := iss.ARPC1(req, arc, k.arpcKey)
	if err != nil {
		return [8]byte{}, fmt.Errorf("ARPC under %q: %w", imkLabel, err)
	}
	return arpc, nil
}

// VerifyCVV checks code as the card verification value of pan, exp and
// serviceCode (hsm.ServiceCodeCVV2 for CVV2) under the CVK labelled
// cvkLabel. It returns an error wrapping ErrCVV when it does not match,
// another error when the token could not compute it. Errors carry no card
// data.
func (k *Keys) VerifyCVV(cvkLabel string, pan card.PAN, exp card.Expiry, serviceCode string, code card.SecurityCode) error {
	if exp.IsZero() {
		return fmt.Errorf("verify CVV of %s: no expiry: %w", pan.Masked(), hsm.ErrInput)
	}
	err := k.tok.VerifyCVV(cvkLabel, pan.Digits(), exp.String(), serviceCode, code.Digits())
	if err != nil {
		return fmt.Errorf("verify CVV of %s under %q: %w", pan.Masked(), cvkLabel, err)
	}
	return nil
}

// Close destroys every issuer's cached ICC master keys. Keys stays usable.
func (k *Keys) Close() error {
	k.mu.Lock()
	issuers := k.issuers
	k.issuers = map[string]*hsm.EMVIssuer{}
	k.mu.Unlock()
	var errs []error
	for _, iss := range issuers {
		errs = append(errs, iss.Close())
	}
	return errors.Join(errs...)
}
