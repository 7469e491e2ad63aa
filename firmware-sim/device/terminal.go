package device

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/cardblock"
	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/fingerprint"
	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/iso93"
)

// Terminal is one simulated terminal connected to a gateway over TCP with
// length-framed ISO 8583:1993 messages. It is safe for concurrent use; its
// sales are sent one at a time, as a real terminal's are.
type Terminal struct {
	keys       Keys
	merchantID string
	acquirerID string
	currency   string
	statePath  string
	now        func() time.Time

	mu      sync.Mutex
	conn    net.Conn
	counter uint32 // last DUKPT counter used
	stan    uint32 // last STAN used
}

// Options configures a Terminal. Zero values take the defaults named.
type Options struct {
	// MerchantID is sent in DE 42. Default "MERCHANT0000001".
	MerchantID string
	// AcquirerID is sent in DE 32. Default "99000001".
	AcquirerID string
	// Currency is the ISO 4217 numeric code of sales. Default "392" (JPY).
	Currency string
	// StatePath, when set, persists the DUKPT counter and STAN there after
	// every use (the terminal's non-volatile memory), so a restarted
	// terminal never reuses a key.
	StatePath string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// state is the persisted counter file.
type state struct {
	Counter uint32 `json:"dukpt_counter"`
	STAN    uint32 `json:"stan"`
}

// New returns a terminal holding keys, restoring its counters from
// opts.StatePath when that file exists.
func New(keys Keys, opts Options) (*Terminal, error) {
	if err := keys.Validate(); err != nil {
		return nil, err
	}
	t := &Terminal{keys: keys, merchantID: opts.MerchantID, acquirerID: opts.AcquirerID, currency: opts.Currency, statePath: opts.StatePath, now: opts.Now}
	if t.merchantID == "" {
		t.merchantID = "MERCHANT0000001"
	}
	if t.acquirerID == "" {
		t.acquirerID = "99000001"
	}
	if t.currency == "" {
		t.currency = "392"
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.statePath != "" {
		raw, err := os.ReadFile(t.statePath)
		switch {
		case err == nil:
			var s state
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("terminal state %s: %w", t.statePath, err)
			}
			t.counter, t.stan = s.Counter, s.STAN
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("terminal state: %w", err)
		}
	}
	return t, nil
}

// ID returns the terminal ID (DE 41).
func (t *Terminal) ID() string { return t.keys.TerminalID }

// Connect dials the gateway's terminal port.
func (t *Terminal) Connect(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("terminal %s: connect to gateway: %w", t.ID(), err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		t.conn.Close()
	}
	t.conn = c
	return nil
}

// Close closes the gateway connection.
func (t *Terminal) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}

// Result is the outcome of one sale as the terminal saw it.
type Result struct {
	STAN         string
	ActionCode   iso93.ActionCode
	ApprovalCode string
	MaskedPAN    string
	KSN          string
	Latency      time.Duration
}

// Approved reports whether the sale was approved.
func (r Result) Approved() bool { return r.ActionCode == iso93.ActionApproved }

// next advances the DUKPT counter and STAN and persists them before the keys
// are used, so a crash never leads to a reused key.
func (t *Terminal) next() (dukpt.AESKSN, string, error) {
	c, err := dukpt.NextAESCounter(t.counter)
	if err != nil {
		return dukpt.AESKSN{}, "", fmt.Errorf("terminal %s: %w", t.ID(), err)
	}
	stan := t.stan%iso93.MaxSTAN + 1
	if t.statePath != "" {
		b, _ := json.Marshal(state{Counter: c, STAN: stan})
		if err := os.MkdirAll(filepath.Dir(t.statePath), 0o700); err != nil {
			return dukpt.AESKSN{}, "", fmt.Errorf("terminal state: %w", err)
		}
		tmp := t.statePath + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return dukpt.AESKSN{}, "", fmt.Errorf("terminal state: %w", err)
		}
		if err := os.Rename(tmp, t.statePath); err != nil {
			return dukpt.AESKSN{}, "", fmt.Errorf("terminal state: %w", err)
		}
	}
	t.counter, t.stan = c, stan
	return dukpt.NewAESKSN(t.keys.IKID, c), fmt.Sprintf("%06d", stan), nil
}

// Sale reads c at the simulated read head, encrypts it, sends a 1200
// financial request for amount (minor units) and waits for the answer.
func (t *Terminal) Sale(ctx context.Context, c deck.Card, amount int64) (Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return Result{}, fmt.Errorf("terminal %s: not connected", t.ID())
	}
	req, res, err := t.buildSale(c, amount)
	if err != nil {
		return Result{}, err
	}
	start := t.now()
	if dl, ok := ctx.Deadline(); ok {
		t.conn.SetDeadline(dl)
	} else {
		t.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { t.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := frame.Write(t.conn, req); err != nil {
		return Result{}, fmt.Errorf("terminal %s: send sale: %w", t.ID(), err)
	}
	raw, err := frame.Read(t.conn, 0)
	if err != nil {
		return Result{}, fmt.Errorf("terminal %s: read answer: %w", t.ID(), err)
	}
	res.Latency = t.now().Sub(start)
	var resp iso93.FinancialResponse
	if err := iso93.UnpackInto(raw, &resp); err != nil {
		return Result{}, fmt.Errorf("terminal %s: answer: %w", t.ID(), err)
	}
	if resp.STAN != res.STAN || resp.TerminalID != t.ID() {
		return Result{}, fmt.Errorf("terminal %s: answer for STAN %s, sent %s", t.ID(), resp.STAN, res.STAN)
	}
	res.ActionCode = resp.ActionCode
	res.ApprovalCode = resp.ApprovalCode
	return res, nil
}

func (t *Terminal) buildSale(c deck.Card, amount int64) ([]byte, Result, error) {
	pan, err := card.ParsePAN(c.PAN)
	if err != nil {
		return nil, Result{}, fmt.Errorf("read card: %w", err)
	}
	exp, err := card.ParseExpiry(c.Expiry)
	if err != nil {
		return nil, Result{}, fmt.Errorf("read card expiry: %w", err)
	}
	clear := cardblock.ClearData{PAN: pan, Expiry: exp, ServiceCode: c.ServiceCode}
	if c.SecurityCode != "" {
		if clear.SecurityCode, err = card.ParseSecurityCode(c.SecurityCode); err != nil {
			return nil, Result{}, fmt.Errorf("read card security code: %w", err)
		}
	}
	ksn, stan, err := t.next()
	if err != nil {
		return nil, Result{}, err
	}
	blk, err := cardblock.SealAES(t.keys.InitialKey, ksn, clear)
	if err != nil {
		return nil, Result{}, fmt.Errorf("encrypt card data: %w", err)
	}
	blkBytes, err := blk.MarshalBinary()
	if err != nil {
		return nil, Result{}, fmt.Errorf("encode card-data block: %w", err)
	}
	fp, err := fingerprint.Compute(t.keys.FingerprintKey, pan)
	if err != nil {
		return nil, Result{}, fmt.Errorf("fingerprint: %w", err)
	}
	now := t.now()
	var nonce [4]byte
	rand.Read(nonce[:])
	req := iso93.FinancialRequest{
		Trace: iso93.Trace{
			TransmissionTime: now.UTC().Format("0102150405"),
			STAN:             stan,
			LocalTime:        now.Format("060102150405"),
			FunctionCode:     iso93.FunctionOriginalFinancial,
			AcquirerID:       t.acquirerID,
			TerminalID:       t.ID(),
			MerchantID:       t.merchantID,
			IdempotencyKey:   t.ID() + "-" + ksn.String() + "-" + hex.EncodeToString(nonce[:]),
		},
		Payment: iso93.Payment{
			ProcessingCode: iso93.ProcessingPurchase,
			Amount:         amount,
			POSDataCode:    "510101513001",
			Currency:       t.currency,
		},
		Card: iso93.Card{
			CardData:    blkBytes,
			KSN:         ksn[:],
			Fingerprint: fp,
			MaskedPAN:   pan.Masked(),
		},
	}
	raw, err := iso93.Pack(&req, iso93.MTIFinancialRequest)
	if err != nil {
		return nil, Result{}, fmt.Errorf("pack 1200: %w", err)
	}
	return raw, Result{STAN: stan, MaskedPAN: pan.Masked(), KSN: ksn.String()}, nil
}
