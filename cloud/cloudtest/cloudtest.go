// Package cloudtest provides software stand-ins and fixtures for the center's
// tests: a software Vault, a fake card-block decrypter, a registered
// merchant/terminal world and a ledger check helper.
//
// The stand-ins are for tests only: their keys are fixed and public. The
// real Vault and CardDecrypter live in package tokenvault, on the token.
package cloudtest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/posgate/posgate/cloud/acquiring"
	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/issuing"
	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/cardblock"
	"github.com/posgate/posgate/p2pe/fingerprint"
	"github.com/posgate/posgate/protocol/iso93"
)

var (
	vaultKey       = mustHex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	fingerprintKey = mustHex("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")
	blockKey       = mustHex("404142434445464748494a4b4c4d4e4f")
)

// mustHex decodes a constant of this file.
func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// gcm returns AES-GCM under one of this file's constant 16- or 32-byte
// keys, for which neither constructor can fail.
func gcm(key []byte) cipher.AEAD {
	b, _ := aes.NewCipher(key)
	a, _ := cipher.NewGCM(b)
	return a
}

// SoftVault is a software issuing.Vault and authz.Fingerprinter: AES-256-GCM
// sealing and p2pe/fingerprint fingerprints under fixed test keys. It is
// safe for concurrent use.
type SoftVault struct{}

// Seal encrypts the PAN digits (nonce || ciphertext).
func (SoftVault) Seal(pan card.PAN) ([]byte, error) {
	a := gcm(vaultKey)
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, []byte(pan.Digits()), nil), nil
}

// Open reverses Seal.
func (SoftVault) Open(sealed []byte) (card.PAN, error) {
	a := gcm(vaultKey)
	if len(sealed) < a.NonceSize() {
		return card.PAN{}, errors.New("cloudtest: sealed PAN too short")
	}
	pt, err := a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], nil)
	if err != nil {
		return card.PAN{}, errors.New("cloudtest: sealed PAN does not open")
	}
	return card.ParsePAN(string(pt))
}

// Fingerprint computes the PAN fingerprint under the test fingerprint key.
func (SoftVault) Fingerprint(pan card.PAN) (string, error) {
	return fingerprint.Compute(fingerprintKey, pan)
}

// FakeDecrypter is an authz.CardDecrypter for blocks made by Block. It
// counts calls and is safe for concurrent use.
type FakeDecrypter struct {
	Calls atomic.Int64
	// Err, when set, is returned by every call (a token fault).
	Err error
}

// Block builds a card-data block the FakeDecrypter opens: the PAN, expiry,
// device id and counter sealed under a fixed test key (so that no clear PAN
// sits in test messages either).
func Block(pan card.PAN, exp card.Expiry, device string, counter uint64) []byte {
	a := gcm(blockKey)
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	pt := strings.Join([]string{pan.Digits(), exp.String(), device, strconv.FormatUint(counter, 10)}, ";")
	return a.Seal(nonce, nonce, []byte(pt), nil)
}

// OpenCardBlock implements authz.CardDecrypter.
func (d *FakeDecrypter) OpenCardBlock(_ context.Context, block []byte) (cardblock.ClearData, string, uint64, error) {
	d.Calls.Add(1)
	if d.Err != nil {
		return cardblock.ClearData{}, "", 0, d.Err
	}
	a := gcm(blockKey)
	if len(block) < a.NonceSize() {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("fake block of %d bytes: %w", len(block), authz.ErrMalformedBlock)
	}
	pt, err := a.Open(nil, block[:a.NonceSize()], block[a.NonceSize():], nil)
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("fake block does not open: %w", authz.ErrMalformedBlock)
	}
	parts := strings.Split(string(pt), ";")
	if len(parts) != 4 {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("fake block plaintext: %w", authz.ErrMalformedBlock)
	}
	pan, err := card.ParsePAN(parts[0])
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("fake block PAN: %w", authz.ErrMalformedBlock)
	}
	var exp card.Expiry
	if parts[1] != "" {
		if exp, err = card.ParseExpiry(parts[1]); err != nil {
			return cardblock.ClearData{}, "", 0, fmt.Errorf("fake block expiry: %w", authz.ErrMalformedBlock)
		}
	}
	ctr, err := strconv.ParseUint(parts[3], 10, 64)
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("fake block counter: %w", authz.ErrMalformedBlock)
	}
	return cardblock.ClearData{PAN: pan, Expiry: exp}, parts[2], ctr, nil
}

// World ids registered by NewWorld.
const (
	Gateway       = "GW-0001"
	OtherGateway  = "GW-0002"
	Merchant      = "M0000001"
	OtherMerchant = "M0000002"
	Terminal      = "TERM0001"
	OtherTerminal = "TERM0002" // behind OtherGateway, at OtherMerchant
	Currency      = "392"      // JPY
	Expiry        = "3012"
	LocalTime     = "261124101500" // 2026-11-24 10:15:00
)

// World is a store with one gateway, merchant and terminal registered (and
// a second set), the issuing and acquiring services and a Switch wired to
// the software stand-ins. Its methods are safe for concurrent use.
type World struct {
	Store     *store.Store
	Vault     SoftVault
	Decrypter *FakeDecrypter
	Issuer    *issuing.Issuer
	Acquirer  *acquiring.Acquirer
	Switch    *authz.Switch

	mu      sync.Mutex
	counter map[string]uint64
	seq     atomic.Int64
}

// NewWorld registers the world's gateways, merchants and terminals in st.
func NewWorld(t testing.TB, st *store.Store) *World {
	t.Helper()
	ctx := context.Background()
	w := &World{Store: st, Decrypter: &FakeDecrypter{}, counter: map[string]uint64{}}
	w.Issuer = &issuing.Issuer{Store: st, Vault: w.Vault}
	w.Acquirer = &acquiring.Acquirer{Store: st}
	w.Switch = &authz.Switch{Store: st, Decrypter: w.Decrypter, Vault: w.Vault}
	must(t, w.Acquirer.RegisterGateway(ctx, Gateway))
	must(t, w.Acquirer.RegisterGateway(ctx, OtherGateway))
	must(t, w.Acquirer.CreateMerchant(ctx, Merchant, "Shop One", ""))
	must(t, w.Acquirer.CreateMerchant(ctx, OtherMerchant, "Shop Two", Merchant))
	must(t, w.Acquirer.RegisterTerminal(ctx, Terminal, Merchant, Gateway, "5411", Currency))
	must(t, w.Acquirer.RegisterTerminal(ctx, OtherTerminal, OtherMerchant, OtherGateway, "5411", Currency))
	return w
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("set up world: %v", err)
	}
}

// Card is a card issued by World.NewCard.
type Card struct {
	ID        int64
	AccountID int64
	PAN       card.PAN
	Expiry    card.Expiry
}

// NewCard creates a product of the kind (credit line or overdraft = limit;
// a house product allows Merchant only), a cardholder, an account and an
// issued card, and tops up prepaid and debit accounts with funds.
func (w *World) NewCard(t testing.TB, kind store.ProductKind, limit, funds int64) Card {
	t.Helper()
	ctx := context.Background()
	p := store.Product{Name: string(kind) + " test", Kind: kind, Currency: Currency,
		BINLow: "41110000", BINHigh: "41119999", PANLength: 16}
	switch kind {
	case store.KindCredit:
		p.CreditLine = limit
	case store.KindDebit:
		p.Overdraft = limit
	case store.KindHouse:
		p.CreditLine = limit
		p.AllowedMerchants = []string{Merchant}
	}
	pid, err := w.Issuer.CreateProduct(ctx, p)
	must(t, err)
	holder, err := w.Issuer.CreateCardholder(ctx, "Test Holder")
	must(t, err)
	acct, err := w.Issuer.CreateAccount(ctx, pid, holder)
	must(t, err)
	exp, err := card.ParseExpiry(Expiry)
	must(t, err)
	c, err := w.Issuer.IssueCard(ctx, pid, acct, exp)
	must(t, err)
	if funds > 0 {
		_, err := w.Issuer.TopUp(ctx, acct, funds, "test")
		must(t, err)
	}
	return Card{ID: c.ID, AccountID: acct, PAN: c.PAN, Expiry: exp}
}

// Request builds a request from Terminal through Gateway for the card,
// with a fresh idempotency key, STAN and a block under the next counter of
// device "dev-"+Terminal.
func (w *World) Request(mti string, c Card, amount int64) authz.Request {
	return w.RequestOn("dev-"+Terminal, mti, c, amount)
}

// RequestOn is Request with the block encrypted by the given device (so
// that concurrent clients each keep their counters in order).
func (w *World) RequestOn(device, mti string, c Card, amount int64) authz.Request {
	n := w.seq.Add(1)
	w.mu.Lock()
	w.counter[device]++
	ctr := w.counter[device]
	w.mu.Unlock()
	fp, _ := w.Vault.Fingerprint(c.PAN)
	pc := iso93.ProcessingPurchase
	return authz.Request{
		MTI: mti, GatewayID: Gateway, TerminalID: Terminal, STAN: fmt.Sprintf("%06d", n%1_000_000),
		ProcessingCode: pc, Amount: amount, Currency: Currency, LocalTime: LocalTime,
		IdempotencyKey: fmt.Sprintf("%s-%d-%s", Terminal, n, randHex()),
		KSN:            []byte(device), CardBlock: Block(c.PAN, c.Expiry, device, ctr),
		Fingerprint: fp,
	}
}

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Available returns the account's available amount.
func (w *World) Available(t testing.TB, accountID int64) int64 {
	t.Helper()
	var a store.Account
	err := w.Store.View(context.Background(), func(tx *store.Tx) error {
		var err error
		a, err = tx.Account(context.Background(), accountID)
		return err
	})
	must(t, err)
	return ledger.Available(a)
}

// CheckLedger fails t unless ledger.Check finds the book in order. Call it
// at the end of every test that moves money.
func CheckLedger(t testing.TB, st *store.Store) {
	t.Helper()
	r, err := ledger.Check(context.Background(), st)
	if err != nil {
		t.Fatalf("ledger check: %v", err)
	}
	if !r.OK() {
		t.Fatalf("%s", r)
	}
}
