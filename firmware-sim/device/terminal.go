// Package device simulates a JET-S-class payment terminal's firmware: its
// secure side holds the injected DUKPT initial key and the PAN fingerprint
// key (a p2pe/keybundle bundle), reads cards from the test deck, encrypts
// them at the "read head" into the card-data block and sends ISO 8583:1993
// requests to the gateway.
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
	"slices"
	"sync"
	"time"

	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/cardblock"
	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/fingerprint"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/p2pe/pinblock"
	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/iso93"
)

// Terminal is one simulated terminal connected to a gateway over TCP with
// length-framed ISO 8583:1993 messages. It is safe for concurrent use; its
// sales are sent one at a time, as a real terminal's are.
type Terminal struct {
	keys       keybundle.Keys
	merchantID string
	acquirerID string
	currency   string
	statePath  string
	now        func() time.Time

	mu   sync.Mutex // guards conn; held for a whole direct-mode Sale
	conn net.Conn

	// smu guards the non-volatile state below. It is held while the state
	// file is rewritten: the counter must be on disk before its key is
	// used, and two writes must not land out of order.
	smu     sync.Mutex
	counter uint32          // last DUKPT counter used
	stan    uint32          // last STAN used
	last    json.RawMessage // the firmware's last-transaction record, opaque here
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
	Counter uint32          `json:"dukpt_counter"`
	STAN    uint32          `json:"stan"`
	Last    json.RawMessage `json:"last_txn,omitempty"`
}

// New returns a terminal holding keys, restoring its counters (and the
// last-transaction record, see SaveLast) from opts.StatePath when that file
// exists.
func New(keys keybundle.Keys, opts Options) (*Terminal, error) {
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
			t.counter, t.stan, t.last = s.Counter, s.STAN, s.Last
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
	RRN          string    // DE 37 of the answer, when the host gave one
	Entry        EntryMode // how the card was read
	PINEntered   bool      // a PIN block was sent
	Latency      time.Duration

	// What a reversal or completion of the request needs (see
	// BuildReversal, BuildCompletion).
	MTI            string // of the request; "" (state written before it was kept) means 1200
	ProcessingCode string // DE 3
	Amount         int64  // DE 4
	Currency       string // DE 49
	LocalTime      string // DE 12 of the request
	Fingerprint    string // DE 122

	// ICCResponse is the answer's DE 55 (issuer authentication data, for
	// the card's second GENERATE AC), set by CompleteResult; not kept in
	// the terminal's non-volatile record.
	ICCResponse []byte `json:"-"`
}

// Approved reports whether the sale was approved.
func (r Result) Approved() bool { return r.ActionCode == iso93.ActionApproved }

// next advances the DUKPT counter and STAN and persists them before the keys
// are used, so a crash never leads to a reused key.
func (t *Terminal) next() (dukpt.AESKSN, string, error) {
	t.smu.Lock()
	defer t.smu.Unlock()
	c, err := dukpt.NextAESCounter(t.counter)
	if err != nil {
		return dukpt.AESKSN{}, "", fmt.Errorf("terminal %s: %w", t.ID(), err)
	}
	stan := iso93.NextSTAN(t.stan)
	if err := t.persist(state{Counter: c, STAN: stan, Last: t.last}); err != nil {
		return dukpt.AESKSN{}, "", err
	}
	t.counter, t.stan = c, stan
	return dukpt.NewAESKSN(t.keys.IKID, c), iso93.FormatSTAN(stan), nil
}

// persist writes s to the state file atomically (write, fsync, rename).
// The caller holds smu.
func (t *Terminal) persist(s state) error {
	if t.statePath == "" {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("terminal state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(t.statePath), 0o700); err != nil {
		return fmt.Errorf("terminal state: %w", err)
	}
	tmp := t.statePath + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("terminal state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("terminal state: %w", err)
	}
	if err := os.Rename(tmp, t.statePath); err != nil {
		return fmt.Errorf("terminal state: %w", err)
	}
	return nil
}

// SaveLast stores rec, the firmware's record of its last transaction, in
// the terminal's non-volatile state beside the DUKPT counter, so a restarted
// terminal still knows it. rec must be valid JSON and must not carry card
// data. It is safe for concurrent use.
func (t *Terminal) SaveLast(rec json.RawMessage) error {
	if !json.Valid(rec) {
		return fmt.Errorf("terminal %s: save last transaction: record is not JSON", t.ID())
	}
	t.smu.Lock()
	defer t.smu.Unlock()
	rec = slices.Clone(rec)
	if err := t.persist(state{Counter: t.counter, STAN: t.stan, Last: rec}); err != nil {
		return fmt.Errorf("terminal %s: save last transaction: %w", t.ID(), err)
	}
	t.last = rec
	return nil
}

// Last returns the record last stored by SaveLast (also before a restart,
// when StatePath is set), or nil when there is none. The caller may keep it.
func (t *Terminal) Last() json.RawMessage {
	t.smu.Lock()
	defer t.smu.Unlock()
	return slices.Clone(t.last)
}

// Counter returns the DUKPT counter and the KSN of the last transaction key
// used (counter 0: none used yet). It is safe for concurrent use.
func (t *Terminal) Counter() (uint32, dukpt.AESKSN) {
	t.smu.Lock()
	defer t.smu.Unlock()
	return t.counter, dukpt.NewAESKSN(t.keys.IKID, t.counter)
}

// Keys returns the terminal's key bundle. The caller must not print or log
// its secret fields.
func (t *Terminal) Keys() keybundle.Keys { return t.keys }

// Sale reads c at the simulated read head, encrypts it, sends a 1200
// financial request for amount (minor units) and waits for the answer.
func (t *Terminal) Sale(ctx context.Context, c deck.Card, amount int64) (Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return Result{}, fmt.Errorf("terminal %s: not connected", t.ID())
	}
	req, res, err := t.BuildFinancial(Financial{Read: Read{Card: c}, Amount: amount})
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
	if err := t.CompleteResult(raw, &res); err != nil {
		return Result{}, err
	}
	return res, nil
}

// CompleteResult checks that raw answers the request res was built for
// (the response MTI of res.MTI: 1210 for a 1200, 1110 for a 1100, 1230
// for a 1220; same STAN and terminal ID) and fills res's ActionCode,
// ApprovalCode and RRN from it. The error names the mismatch, never card
// data.
func (t *Terminal) CompleteResult(raw []byte, res *Result) error {
	sent := res.MTI
	if sent == "" {
		sent = iso93.MTIFinancialRequest
	}
	want, _ := iso93.ResponseMTI(sent)
	var (
		tr       iso93.Trace
		action   iso93.ActionCode
		approval string
	)
	switch want {
	case iso93.MTIAuthorizationResponse:
		var m iso93.AuthorizationResponse
		if err := iso93.UnpackInto(raw, &m); err != nil {
			return fmt.Errorf("terminal %s: answer: %w", t.ID(), err)
		}
		tr, action, approval = m.Trace, m.ActionCode, m.ApprovalCode
		res.ICCResponse = m.ICCData
	case iso93.MTIAdviceResponse:
		var m iso93.AdviceResponse
		if err := iso93.UnpackInto(raw, &m); err != nil {
			return fmt.Errorf("terminal %s: answer: %w", t.ID(), err)
		}
		tr, action = m.Trace, m.ActionCode
	case iso93.MTIFinancialResponse:
		var m iso93.FinancialResponse
		if err := iso93.UnpackInto(raw, &m); err != nil {
			return fmt.Errorf("terminal %s: answer: %w", t.ID(), err)
		}
		tr, action, approval = m.Trace, m.ActionCode, m.ApprovalCode
		res.ICCResponse = m.ICCData
	default:
		return fmt.Errorf("terminal %s: answer to a %s: not a request this terminal sends", t.ID(), sent)
	}
	if tr.STAN != res.STAN || tr.TerminalID != t.ID() {
		return fmt.Errorf("terminal %s: answer for STAN %s, sent %s", t.ID(), tr.STAN, res.STAN)
	}
	res.ActionCode = action
	res.ApprovalCode = approval
	res.RRN = tr.RRN
	return nil
}

// EntryMode is how a card was presented at the read head.
type EntryMode uint8

// Entry modes. The zero value means EntryChip in a Read.
const (
	EntryMagstripe   EntryMode = iota + 1 // swiped
	EntryChip                             // inserted, contact EMV
	EntryContactless                      // tapped
)

// String returns "magstripe", "chip" or "contactless".
func (m EntryMode) String() string {
	switch m {
	case EntryMagstripe:
		return "magstripe"
	case EntryChip:
		return "chip"
	case EntryContactless:
		return "contactless"
	}
	return fmt.Sprintf("entry(%d)", uint8(m))
}

// ParseEntryMode parses the String form of an entry mode.
func ParseEntryMode(s string) (EntryMode, error) {
	for _, m := range []EntryMode{EntryMagstripe, EntryChip, EntryContactless} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("entry mode %q: want magstripe, chip or contactless", s)
}

// posDataCode returns DE 22 for a card read in mode m: positions 1-6 say
// chip-capable, PIN-capable, attended, cardholder and card present;
// position 7 is the input mode (2 magstripe, 5 chip, A contactless);
// position 8 the cardholder verification (1 PIN, 5 signature/none).
func posDataCode(m EntryMode, pin bool) string {
	in := byte('5')
	switch m {
	case EntryMagstripe:
		in = '2'
	case EntryContactless:
		in = 'A'
	}
	cvm := byte('5')
	if pin {
		cvm = '1'
	}
	return "510101" + string([]byte{in, cvm}) + "3001"
}

// Read is one card presentation at the simulated read head.
type Read struct {
	Card  deck.Card
	Entry EntryMode // zero means EntryChip
	// PIN is what the cardholder keyed on the PIN pad, empty when no PIN
	// was taken. It is encrypted at once into an ISO 9564 format 4 block
	// under the DUKPT PIN key (DE 125) and never stored.
	PIN string
}

// Financial describes one financial request for BuildFinancial.
type Financial struct {
	// MTI is iso93.MTIFinancialRequest (the default, "") or
	// iso93.MTIAuthorizationRequest (a pre-authorization, 1100).
	MTI  string
	Read Read
	// ProcessingCode is DE 3. Default iso93.ProcessingPurchase.
	ProcessingCode string
	// Amount in minor units, > 0.
	Amount int64
	// Currency is the ISO 4217 numeric code. Default the terminal's.
	Currency string
	// ICCData is DE 55, the chip data of an EMV read (de55.Build), nil
	// for a magnetic-stripe read or a direct sale. It carries no card
	// data; the PAN and track 2 equivalent go only in the card-data block.
	ICCData []byte
}

// BuildFinancial reads f.Read at the simulated read head: it advances and
// persists the DUKPT counter and STAN, encrypts the card data into the
// card-data block (DE 120) and, when f.Read.PIN is set, the PIN into a
// format 4 block under the DUKPT PIN key of the same KSN (DE 125), and
// returns the packed 1200 (or 1100, by f.MTI) with its Result (ActionCode
// still empty; see CompleteResult). It does no network I/O and is safe for
// concurrent use.
func (t *Terminal) BuildFinancial(f Financial) ([]byte, Result, error) {
	switch f.MTI {
	case "":
		f.MTI = iso93.MTIFinancialRequest
	case iso93.MTIFinancialRequest, iso93.MTIAuthorizationRequest:
	default:
		return nil, Result{}, fmt.Errorf("terminal %s: MTI %q: want 1100 or 1200", t.ID(), f.MTI)
	}
	return t.buildRequest(f, nil)
}

// BuildCompletion reads f.Read like BuildFinancial and returns a packed
// 1220 completion advice of f.Amount for orig, a pre-authorization (1100)
// that was approved: DE 56 names orig (MTI, STAN, local time), DE 38 is
// orig's approval code, DE 24 201, DE 25 iso93.ReasonCompletion. Its idempotency
// key is derived from orig, so a capture sent again (also after a restart)
// is answered with the center's first answer and never captures twice.
// f.MTI is ignored. Safe for concurrent use.
func (t *Terminal) BuildCompletion(orig Result, f Financial) ([]byte, Result, error) {
	if orig.MTI != iso93.MTIAuthorizationRequest || orig.ApprovalCode == "" {
		return nil, Result{}, fmt.Errorf("terminal %s: completion of STAN %s: the original is not an approved 1100", t.ID(), orig.STAN)
	}
	if f.Amount > orig.Amount {
		return nil, Result{}, fmt.Errorf("terminal %s: completion of STAN %s: amount %d above the %d authorized", t.ID(), orig.STAN, f.Amount, orig.Amount)
	}
	f.MTI = iso93.MTIAdvice
	return t.buildRequest(f, &orig)
}

// buildRequest builds a 1100, 1200 (orig nil) or a 1220 completion of orig.
func (t *Terminal) buildRequest(f Financial, orig *Result) ([]byte, Result, error) {
	c, amount := f.Read.Card, f.Amount
	if amount < 1 {
		return nil, Result{}, fmt.Errorf("terminal %s: amount %d: must be positive", t.ID(), amount)
	}
	entry := f.Read.Entry
	if entry == 0 {
		entry = EntryChip
	}
	proc := f.ProcessingCode
	if proc == "" {
		proc = iso93.ProcessingPurchase
	}
	cur := f.Currency
	if cur == "" {
		cur = t.currency
	}
	var pin pinblock.PIN
	if f.Read.PIN != "" {
		var err error
		if pin, err = pinblock.ParsePIN(f.Read.PIN); err != nil {
			return nil, Result{}, fmt.Errorf("read PIN pad: %w", err)
		}
	}
	pan, err := card.ParsePAN(c.PAN)
	if err != nil {
		return nil, Result{}, fmt.Errorf("read card: %w", err)
	}
	exp, err := card.ParseExpiry(c.Expiry)
	if err != nil {
		return nil, Result{}, fmt.Errorf("read card expiry: %w", err)
	}
	cd := cardblock.ClearData{PAN: pan, Expiry: exp, ServiceCode: c.ServiceCode}
	if c.SecurityCode != "" {
		if cd.SecurityCode, err = card.ParseSecurityCode(c.SecurityCode); err != nil {
			return nil, Result{}, fmt.Errorf("read card security code: %w", err)
		}
	}
	ksn, stan, err := t.next()
	if err != nil {
		return nil, Result{}, err
	}
	blk, err := cardblock.SealAES(t.keys.InitialKey, ksn, cd)
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
	var pinBlk []byte
	if f.Read.PIN != "" {
		pk, err := dukpt.AESWorkingKey(t.keys.InitialKey, ksn, dukpt.UsagePINEncryption, dukpt.AlgAES128)
		if err != nil {
			return nil, Result{}, fmt.Errorf("derive DUKPT PIN key: %w", err)
		}
		pinBlk, err = pinblock.EncryptFormat4(pk, pin, pan.Digits(), nil)
		clear(pk)
		if err != nil {
			return nil, Result{}, fmt.Errorf("encrypt PIN block: %w", err)
		}
	}
	now := t.now()
	var nonce [4]byte
	rand.Read(nonce[:])
	tr := iso93.Trace{
		TransmissionTime: iso93.TransmissionTime(now),
		STAN:             stan,
		LocalTime:        iso93.LocalTime(now),
		FunctionCode:     iso93.FunctionOriginalFinancial,
		AcquirerID:       t.acquirerID,
		TerminalID:       t.ID(),
		MerchantID:       t.merchantID,
		IdempotencyKey:   t.ID() + "-" + ksn.String() + "-" + hex.EncodeToString(nonce[:]),
	}
	pay := iso93.Payment{
		ProcessingCode: proc,
		Amount:         amount,
		POSDataCode:    posDataCode(entry, f.Read.PIN != ""),
		Currency:       cur,
	}
	cd2 := iso93.Card{
		CardData:    blkBytes,
		KSN:         ksn[:],
		Fingerprint: fp,
		MaskedPAN:   pan.Masked(),
		PINBlock:    pinBlk,
		ICCData:     f.ICCData,
	}
	var raw []byte
	switch f.MTI {
	case iso93.MTIAuthorizationRequest:
		tr.FunctionCode = iso93.FunctionOriginalAuthorization
		raw, err = iso93.Pack(&iso93.AuthorizationRequest{Trace: tr, Payment: pay, Card: cd2}, f.MTI)
	case iso93.MTIAdvice:
		raw, err = t.packCompletion(tr, pay, cd2, *orig)
	default:
		raw, err = iso93.Pack(&iso93.FinancialRequest{Trace: tr, Payment: pay, Card: cd2}, f.MTI)
	}
	if err != nil {
		return nil, Result{}, fmt.Errorf("terminal %s: pack %s: %w", t.ID(), f.MTI, err)
	}
	return raw, Result{MTI: f.MTI, STAN: stan, MaskedPAN: pan.Masked(), KSN: ksn.String(), Entry: entry, PINEntered: f.Read.PIN != "",
		ProcessingCode: proc, Amount: amount, Currency: cur, LocalTime: tr.LocalTime, Fingerprint: fp}, nil
}

// packCompletion packs the 1220 completion advice of orig: the typed
// Advice has no DE 56, so it is set on the message before packing.
func (t *Terminal) packCompletion(tr iso93.Trace, pay iso93.Payment, c iso93.Card, orig Result) ([]byte, error) {
	od, err := iso93.OriginalData{MTI: orig.MTI, STAN: orig.STAN, LocalTime: orig.LocalTime, AcquirerID: t.acquirerID}.Encode()
	if err != nil {
		return nil, fmt.Errorf("original of completion: %w", err)
	}
	tr.FunctionCode = iso93.FunctionPreviousApproval
	tr.ReasonCode = iso93.ReasonCompletion
	tr.IdempotencyKey = t.ID() + "-cap-" + orig.STAN + "-" + orig.LocalTime
	msg := iso93.NewMessage(iso93.MTIAdvice)
	if err := msg.Marshal(&iso93.Advice{Trace: tr, Payment: pay, Card: c, ApprovalCode: orig.ApprovalCode}); err != nil {
		return nil, fmt.Errorf("marshal 1220: %w", err)
	}
	if err := msg.Field(iso93.FieldOriginalData, od); err != nil {
		return nil, fmt.Errorf("set DE 56: %w", err)
	}
	return iso93.PackMessage(msg)
}

// nextSTAN advances and persists the STAN alone (messages without card
// data use no DUKPT key).
func (t *Terminal) nextSTAN() (string, error) {
	t.smu.Lock()
	defer t.smu.Unlock()
	stan := iso93.NextSTAN(t.stan)
	if err := t.persist(state{Counter: t.counter, STAN: stan, Last: t.last}); err != nil {
		return "", err
	}
	t.stan = stan
	return iso93.FormatSTAN(stan), nil
}

// BuildReversal returns a packed 1420 reversal advice of the request orig
// was built for (by BuildFinancial), with reason code reason
// (iso93.ReasonTimeoutReversal, iso93.ReasonCustomerCancel). It carries
// no card data beyond the fingerprint and masked PAN, takes a new STAN and
// an idempotency key derived from the original, so a repeat is
// deduplicated by the center. Safe for concurrent use.
func (t *Terminal) BuildReversal(orig Result, reason string) ([]byte, error) {
	stan, err := t.nextSTAN()
	if err != nil {
		return nil, fmt.Errorf("terminal %s: reversal: %w", t.ID(), err)
	}
	mti := orig.MTI
	if mti == "" {
		mti = iso93.MTIFinancialRequest
	}
	od, err := iso93.OriginalData{MTI: mti, STAN: orig.STAN, LocalTime: orig.LocalTime, AcquirerID: t.acquirerID}.Encode()
	if err != nil {
		return nil, fmt.Errorf("terminal %s: reversal of STAN %s: %w", t.ID(), orig.STAN, err)
	}
	now := t.now()
	rev := iso93.Reversal{
		Trace: iso93.Trace{
			TransmissionTime: iso93.TransmissionTime(now),
			STAN:             stan,
			LocalTime:        iso93.LocalTime(now),
			FunctionCode:     iso93.FunctionFullReversal,
			ReasonCode:       reason,
			AcquirerID:       t.acquirerID,
			TerminalID:       t.ID(),
			MerchantID:       t.merchantID,
			IdempotencyKey:   t.ID() + "-rev-" + orig.STAN + "-" + orig.LocalTime,
		},
		Payment: iso93.Payment{
			ProcessingCode: orig.ProcessingCode,
			Amount:         orig.Amount,
			Currency:       orig.Currency,
		},
		OriginalData: od,
		Fingerprint:  orig.Fingerprint,
		MaskedPAN:    orig.MaskedPAN,
	}
	raw, err := iso93.Pack(&rev, iso93.MTIReversal)
	if err != nil {
		return nil, fmt.Errorf("terminal %s: pack 1420: %w", t.ID(), err)
	}
	return raw, nil
}
