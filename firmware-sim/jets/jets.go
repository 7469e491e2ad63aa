// Package jets is the firmware of the simulated JET-S-class payment
// terminal on the terminal link (package tlink): given a byte stream to the
// gateway — the device side of a pty, or TCP — it answers status, key status
// and last-transaction queries, shows display text, prints, takes firmware
// images chunk by chunk (package fwimage) and runs card transactions when
// the gateway commands them: it "reads" a deck card (magstripe, chip or
// contactless), simulates PIN entry where the card needs it, encrypts the
// card data and PIN at the read head under DUKPT (package device), sends the
// ISO 8583:1993 request as a financial-request frame, waits for the
// financial response, prints a receipt with the masked PAN and answers
// txn-result. Its last transaction, journal, reversals owed and the
// advices of its offline chip approvals (advice.go) survive restarts,
// stored beside the DUKPT counter.
//
// docs/termsim.md describes what the firmware answers.
package jets

import (
	"context"
	"crypto/aes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/firmware-sim/fwimage"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// Defaults.
const (
	DefaultModel       = "JET-S-SIM"
	DefaultHostTimeout = 20 * time.Second
	DefaultCVMLimit    = 10000
	DefaultPIN         = "1234"
	// maxReceipts is how many printed receipts Receipts keeps.
	maxReceipts = 32
	// MaxJournal is how many approved transactions the terminal's journal
	// keeps for voids and captures; older ones are forgotten.
	MaxJournal = 64
)

// DefaultFactoryVersion is the firmware version a terminal reports before
// any image was installed.
var DefaultFactoryVersion = fwimage.Version{Major: 1}

// Sentinel errors.
var (
	// ErrConfig is wrapped by every Config error.
	ErrConfig = errors.New("jets: invalid config")
	// ErrNoCard means the Picker had no card to present.
	ErrNoCard = errors.New("jets: no card presented")
)

// Picker decides which card the "cardholder" presents for a transaction
// command, and how (entry mode, PIN typed if one is asked for). It may
// block — a cardholder taking time — and must return ctx's error when ctx
// ends (the command was cancelled). Implementations must be safe for
// concurrent use when one Picker serves several terminals.
type Picker interface {
	Pick(ctx context.Context, kind tlink.Kind, cmd tlink.TxnCommand) (device.Read, error)
}

// PickerFunc adapts a function to Picker.
type PickerFunc func(ctx context.Context, kind tlink.Kind, cmd tlink.TxnCommand) (device.Read, error)

// Pick calls f.
func (f PickerFunc) Pick(ctx context.Context, kind tlink.Kind, cmd tlink.TxnCommand) (device.Read, error) {
	return f(ctx, kind, cmd)
}

// Cycle returns a Picker that presents reads in turn, starting again after
// the last. It is safe for concurrent use.
func Cycle(reads ...device.Read) Picker {
	var (
		mu sync.Mutex
		i  int
	)
	return PickerFunc(func(ctx context.Context, _ tlink.Kind, _ tlink.TxnCommand) (device.Read, error) {
		if len(reads) == 0 {
			return device.Read{}, ErrNoCard
		}
		mu.Lock()
		defer mu.Unlock()
		r := reads[i%len(reads)]
		i++
		return r, ctx.Err()
	})
}

// ByRef returns a Picker that lets the command's ref name the card: a ref
// ending in "@CARD" or "@CARD:ENTRY" (for example "S17@visa-ok:contactless")
// presents deck card CARD with that entry mode (default chip); any other
// ref is left to fallback. It is the scripted farm's way for a POS test to
// choose a card through the gateway. Safe for concurrent use if fallback is.
func ByRef(fallback Picker) Picker {
	return PickerFunc(func(ctx context.Context, k tlink.Kind, cmd tlink.TxnCommand) (device.Read, error) {
		i := strings.LastIndexByte(cmd.Ref, '@')
		if i < 0 {
			if fallback == nil {
				return device.Read{}, ErrNoCard
			}
			return fallback.Pick(ctx, k, cmd)
		}
		name, mode, _ := strings.Cut(cmd.Ref[i+1:], ":")
		c, err := deck.Lookup(name)
		if err != nil {
			return device.Read{}, fmt.Errorf("card named by ref: %w: %w", err, ErrNoCard)
		}
		r := device.Read{Card: c, Entry: device.EntryChip}
		if mode != "" {
			if r.Entry, err = device.ParseEntryMode(mode); err != nil {
				return device.Read{}, fmt.Errorf("card named by ref: %w: %w", err, ErrNoCard)
			}
		}
		return r, ctx.Err()
	})
}

// Report is what the firmware tells Config.OnResult after each transaction
// command: no card data beyond the masked PAN.
type Report struct {
	Kind      tlink.Kind
	Result    tlink.TxnResult
	MaskedPAN string // empty when no card was read
	Entry     device.EntryMode
	// Latency is from the command's arrival to its result being ready.
	Latency time.Duration
	// HostLatency is from sending the financial request to its response
	// (zero when none was sent or none came).
	HostLatency time.Duration
	Err         error // why the outcome is failed, when it is
}

// Config configures a Firmware. Zero fields take the defaults named.
type Config struct {
	// Terminal is the secure side: the injected keys, the DUKPT counter,
	// STAN and the non-volatile last-transaction record. Nil means no keys
	// were injected: status answers state error and every transaction
	// command fails.
	Terminal *device.Terminal
	// Model is reported in status. Default DefaultModel.
	Model string
	// Serial is reported in status. Default the terminal ID.
	Serial string
	// VendorKey verifies firmware images. Nil: every image is refused.
	VendorKey ed25519.PublicKey
	// FirmwareDir keeps received and installed images; required with
	// VendorKey.
	FirmwareDir string
	// FactoryVersion is the version before any install. Default 1.0.0.
	FactoryVersion fwimage.Version
	// Picker presents cards. Default ByRef(Cycle(visa-ok by chip)).
	Picker Picker
	// PIN is what the simulated cardholder types when a PIN is asked for
	// and the Picker's Read has none. Default DefaultPIN.
	PIN string
	// CVMLimit: a contactless transaction above it (minor units) asks for
	// a PIN. Default DefaultCVMLimit. Chip always asks; magstripe never
	// (signature).
	CVMLimit int64
	// HostTimeout bounds the wait for the financial response after the
	// request was acknowledged; after it the terminal reverses (1420).
	// Default DefaultHostTimeout.
	HostTimeout time.Duration
	// FloorLimit is the terminal's floor limit in minor units: a chip
	// transaction above it is sent online (ARQC). Default 0: online only.
	// With a Bureau, a contact chip sale at or under it is verified
	// offline (DDA, or CDA with Config.CDA), taken without PIN (signature) and, when ODA
	// succeeded, approved offline by the card's TC and sent as a 1220
	// advice (chip.go).
	FloorLimit int64
	// CDA makes the terminal claim combined DDA/application cryptogram
	// generation (9F33 byte 3 C8): with a Bureau, an offline approval
	// then asks for the TC with CDA and verifies its signature instead
	// of running DDA; a TC whose signature fails is declined at the
	// terminal. Default false: DDA.
	CDA bool
	// Bureau, when set, is the simulated card bureau that personalises
	// the deck's contact chip cards for offline data authentication and
	// whose CA public keys the kernel trusts (chip.go). Nil: no ODA, every
	// chip transaction goes online.
	Bureau *Bureau
	// AdviceRetry is the first wait before pending advices are sent again
	// after one was not taken (advice.go); the wait doubles up to
	// AdviceRetryMax. Default DefaultAdviceRetry.
	AdviceRetry time.Duration
	// AdviceRetryMax caps the wait between sends of pending advices; it
	// must not be below AdviceRetry. Default DefaultAdviceRetryMax.
	AdviceRetryMax time.Duration
	// MaxPendingAdvices is how many offline approvals may await their
	// advice's answer: with that many queued, a chip sale under the floor
	// limit goes online (ARQC). Default DefaultMaxPendingAdvices.
	MaxPendingAdvices int
	// Link configures the tlink endpoint.
	Link tlink.Config
	// Logger receives display text, receipts (masked PAN only) and events.
	// Nil discards them.
	Logger *slog.Logger
	// OnResult, when set, is called when a transaction command's result
	// is ready, just before the txn-result is sent.
	OnResult func(Report)
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// lastRecord is the persisted last transaction.
type lastRecord struct {
	Command  uint8  `json:"command"`
	Ref      string `json:"ref"`
	Amount   uint64 `json:"amount,omitempty"`
	Currency string `json:"currency,omitempty"`
	Outcome  uint8  `json:"outcome"`
	Action   string `json:"action_code,omitempty"`
	Approval string `json:"approval_code,omitempty"`
	STAN     string `json:"stan,omitempty"`
	RRN      string `json:"rrn,omitempty"`
	Time     string `json:"time,omitempty"`
}

// stored is the firmware's non-volatile record, kept by
// device.Terminal.SaveLast beside the DUKPT counter (parseRecord reads it).
type stored struct {
	// Version is recordVersion when written; absent (0) in records of
	// version 1, which had no Advices.
	Version int         `json:"version,omitempty"`
	Last    *lastRecord `json:"last,omitempty"`
	// Owed are the requests sent whose answer never came and whose 1420
	// has not been answered yet: what BuildReversal needs, no card data.
	Owed []device.Result `json:"reversals_owed,omitempty"`
	// Journal holds the approved transactions, oldest first, at most
	// MaxJournal: what a void (1420) or a capture (1220) of one needs.
	Journal []journalEntry `json:"journal,omitempty"`
	// Advices are the offline approvals' advices awaiting their 1230,
	// oldest first (advice.go).
	Advices []pendingAdvice `json:"advices,omitempty"`
}

// journalEntry is one approved transaction in the terminal's journal. No
// card data: Request has the masked PAN and the fingerprint only.
type journalEntry struct {
	Kind     uint8         `json:"kind"`
	Ref      string        `json:"ref"`
	Time     string        `json:"time"`
	Request  device.Result `json:"request"`
	Voided   bool          `json:"voided,omitempty"`
	Captured bool          `json:"captured,omitempty"` // pre-auths: completed by a capture
}

// update is one change of the non-volatile record (see save).
type update struct {
	last    *lastRecord    // replaces the last transaction (copied) when not nil
	owe     *device.Result // added to the reversals owed when not nil
	paid    string         // STAN of an owed reversal answered: removed
	journal func([]journalEntry) []journalEntry
	advise  *pendingAdvice // added to the advice queue when not nil
	advised string         // STAN of an advice whose 1230 came: removed
	rrn     string         // with advised: the 1230's RRN, for its journal entry and last record
}

func (r *lastRecord) result() tlink.TxnResult {
	return tlink.TxnResult{Ref: r.Ref, Amount: r.Amount, Currency: r.Currency, Outcome: tlink.Outcome(r.Outcome),
		ActionCode: r.Action, ApprovalCode: r.Approval, STAN: r.STAN, RRN: r.RRN, Time: r.Time}
}

// Firmware is one simulated terminal's firmware. It serves one link at a
// time (Serve); a restarted link (a new Serve) keeps the terminal's state.
// Its accessors are safe for concurrent use with Serve.
type Firmware struct {
	cfg Config
	log *slog.Logger
	upd *fwimage.Updater

	mu       sync.Mutex
	state    tlink.DeviceState
	display  string
	receipts []string
	last     *lastRecord
	cur      *txn // transaction in progress
	serving  bool
	fin      map[string]chan []byte // financial requests awaiting a response, by STAN
	version  fwimage.Version        // installed firmware; the Updater's copy is for the message loop
	owed     []device.Result        // reversals owed (see stored)
	journal  []journalEntry         // approved transactions (see stored)
	chips    map[string]*card.Card  // deck cards personalised by the simulator, by name (chip.go)
	advices  []pendingAdvice        // offline approvals' advices awaiting their 1230 (see stored)
	tried    map[string]bool        // STANs of queued advices that may have been sent: repeats are 1221s

	pmu sync.Mutex // orders saves of the non-volatile record; held across the state file write
}

type txn struct {
	ref    string
	cancel context.CancelFunc
}

// New returns the firmware for cfg, restoring the last transaction, the
// journal, the reversals owed and the advice queue from the terminal's
// state and opening the firmware directory. A last transaction left
// pending by a crash is turned into failed; if its financial request had
// been sent, the next Serve sends its reversal first. A record written by
// a newer firmware is refused (ErrRecordVersion).
func New(cfg Config) (*Firmware, error) {
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.Serial == "" && cfg.Terminal != nil {
		cfg.Serial = cfg.Terminal.ID()
	}
	if cfg.Serial == "" {
		cfg.Serial = "UNINJECTED"
	}
	if cfg.FactoryVersion == (fwimage.Version{}) {
		cfg.FactoryVersion = DefaultFactoryVersion
	}
	if cfg.Picker == nil {
		c, _ := deck.Lookup("visa-ok")
		cfg.Picker = ByRef(Cycle(device.Read{Card: c, Entry: device.EntryChip}))
	}
	if cfg.PIN == "" {
		cfg.PIN = DefaultPIN
	}
	if cfg.CVMLimit == 0 {
		cfg.CVMLimit = DefaultCVMLimit
	}
	if cfg.HostTimeout == 0 {
		cfg.HostTimeout = DefaultHostTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AdviceRetry == 0 {
		cfg.AdviceRetry = DefaultAdviceRetry
	}
	if cfg.AdviceRetryMax == 0 {
		cfg.AdviceRetryMax = DefaultAdviceRetryMax
	}
	if cfg.MaxPendingAdvices == 0 {
		cfg.MaxPendingAdvices = DefaultMaxPendingAdvices
	}
	if cfg.HostTimeout < 0 || cfg.CVMLimit < 0 {
		return nil, fmt.Errorf("host timeout %v and CVM limit %d must not be negative: %w", cfg.HostTimeout, cfg.CVMLimit, ErrConfig)
	}
	if cfg.AdviceRetry < 0 || cfg.AdviceRetryMax < cfg.AdviceRetry || cfg.MaxPendingAdvices < 0 {
		return nil, fmt.Errorf("advice retry %v must be positive, advice retry max %v at least the retry, max pending advices %d not negative: %w",
			cfg.AdviceRetry, cfg.AdviceRetryMax, cfg.MaxPendingAdvices, ErrConfig)
	}
	if err := cfg.Link.Validate(); err != nil {
		return nil, fmt.Errorf("link config: %w: %w", err, ErrConfig)
	}
	f := &Firmware{cfg: cfg, log: cfg.Logger, state: tlink.StateIdle, fin: map[string]chan []byte{}, tried: map[string]bool{}}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.log = f.log.With("terminal", cfg.Serial)
	if cfg.VendorKey != nil {
		if cfg.FirmwareDir == "" {
			return nil, fmt.Errorf("a vendor key needs a firmware directory: %w", ErrConfig)
		}
		u, err := fwimage.OpenUpdater(cfg.FirmwareDir, cfg.VendorKey, cfg.FactoryVersion)
		if err != nil {
			return nil, err
		}
		f.upd = u
		f.version = u.Installed()
	} else {
		f.version = cfg.FactoryVersion
	}
	if cfg.Terminal == nil {
		f.state = tlink.StateError
		return f, nil
	}
	if raw := cfg.Terminal.Last(); raw != nil {
		st, err := parseRecord(raw, cfg.Terminal.ID())
		if err != nil {
			return nil, fmt.Errorf("terminal %s: %w", cfg.Serial, err)
		}
		f.last, f.owed, f.journal, f.advices = st.Last, st.Owed, st.Journal, st.Advices
		for _, p := range st.Advices {
			f.tried[p.STAN] = true // sent before the restart, maybe
		}
		if n := len(st.Advices); n > 0 {
			f.log.Info("offline approval advices restored; sent when the link is up", "pending", n)
		}
		if r := st.Last; r != nil && tlink.Outcome(r.Outcome) == tlink.OutcomePending {
			failed := *r
			failed.Outcome = uint8(tlink.OutcomeFailed)
			if err := f.save(update{last: &failed}); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

// Version returns the installed firmware version.
func (f *Firmware) Version() fwimage.Version {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version
}

// Unreversed reports whether a financial request whose answer never came
// still awaits its 1420 reversal being answered (it is sent again at the
// next Serve).
func (f *Firmware) Unreversed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.owed) > 0
}

// Display returns the text the gateway last put on the display.
func (f *Firmware) Display() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.display
}

// Receipts returns the most recent printed receipts, oldest first.
func (f *Firmware) Receipts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.receipts...)
}

// State returns the device state reported in status.
func (f *Firmware) State() tlink.DeviceState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *Firmware) setState(s tlink.DeviceState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cfg.Terminal == nil {
		s = tlink.StateError
	}
	f.state = s
}

// Serve runs the terminal link over rw until ctx ends, the link fails or
// the peer hangs up, and returns the endpoint's error (never nil; see
// tlink.Endpoint.Run). It owns rw and closes it. A transaction in progress
// when the link ends is finished as far as it can be (its result is
// recorded for last-txn queries). Serve must not be called again before it
// returned.
func (f *Firmware) Serve(ctx context.Context, rw io.ReadWriteCloser) error {
	f.mu.Lock()
	if f.serving {
		f.mu.Unlock()
		rw.Close()
		return errors.New("jets: Serve already running")
	}
	f.serving = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.serving = false
		f.mu.Unlock()
	}()

	ep := tlink.New(rw, f.cfg.Link)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	runErr := make(chan error, 1)
	wg.Go(func() { runErr <- ep.Run(ctx) })
	defer func() {
		cancel()
		ep.Close()
		wg.Wait()
	}()

	adv := newAdviceSender(f, ep)
	wg.Go(func() { adv.run(ctx) })
	f.mu.Lock()
	owed := slices.Clone(f.owed)
	f.mu.Unlock()
	if len(owed) > 0 {
		wg.Go(func() {
			for _, o := range owed {
				f.reverse(ctx, ep, o)
			}
		})
	}
	for {
		m, err := ep.Receive(ctx)
		if err != nil {
			cancel()
			wg.Wait()
			return <-runErr
		}
		f.handle(ctx, ep, adv, m, &wg)
	}
}

func (f *Firmware) send(ctx context.Context, ep *tlink.Endpoint, k tlink.Kind, v interface{ MarshalBinary() ([]byte, error) }) {
	p, err := v.MarshalBinary()
	if err == nil {
		err = ep.Send(ctx, k, p)
	}
	if err != nil {
		f.log.Warn("send failed", "kind", k.String(), "err", err)
	}
}

func (f *Firmware) handle(ctx context.Context, ep *tlink.Endpoint, adv *adviceSender, m tlink.Message, wg *sync.WaitGroup) {
	switch m.Kind {
	case tlink.KindStatusRequest:
		var q tlink.RefOnly
		if err := q.UnmarshalBinary(m.Payload); err != nil {
			f.log.Warn("bad status request", "err", err)
			return
		}
		f.send(ctx, ep, tlink.KindStatusResponse, &tlink.Status{Ref: q.Ref, DeviceKind: uint8(transport.PaymentTerminal),
			State: f.State(), Model: f.cfg.Model, Serial: f.cfg.Serial, Firmware: f.Version().String(), Protocol: tlink.ProtocolVersion})
	case tlink.KindKeyStatusRequest:
		var q tlink.RefOnly
		if err := q.UnmarshalBinary(m.Payload); err != nil {
			f.log.Warn("bad key-status request", "err", err)
			return
		}
		ks := f.keyStatus()
		ks.Ref = q.Ref
		f.send(ctx, ep, tlink.KindKeyStatusResponse, &ks)
	case tlink.KindLastTxnQuery:
		var q tlink.RefOnly
		if err := q.UnmarshalBinary(m.Payload); err != nil {
			f.log.Warn("bad last-txn query", "err", err)
			return
		}
		lt := tlink.LastTxn{Ref: q.Ref}
		f.mu.Lock()
		if f.last != nil {
			r := f.last.result()
			lt.Command, lt.Txn = tlink.Kind(f.last.Command), &r
		}
		f.mu.Unlock()
		f.send(ctx, ep, tlink.KindLastTxnResponse, &lt)
	case tlink.KindDisplay:
		var d tlink.Display
		if err := d.UnmarshalBinary(m.Payload); err != nil {
			f.log.Warn("bad display", "err", err)
			return
		}
		f.show(d.Text)
	case tlink.KindPrint:
		var p tlink.Print
		if err := p.UnmarshalBinary(m.Payload); err != nil {
			f.log.Warn("bad print", "err", err)
			return
		}
		f.print(p.Text)
		f.send(ctx, ep, tlink.KindPrintResult, &tlink.PrintResult{Ref: p.Ref, Status: tlink.PrintOK})
	case tlink.KindFirmwareChunk:
		f.firmwareChunk(ctx, ep, m.Payload)
	case tlink.KindCancel:
		var q tlink.RefOnly
		if err := q.UnmarshalBinary(m.Payload); err != nil {
			f.log.Warn("bad cancel", "err", err)
			return
		}
		f.mu.Lock()
		if f.cur != nil && (q.Ref == "" || q.Ref == f.cur.ref) {
			f.cur.cancel()
		}
		f.mu.Unlock()
	case tlink.KindSale, tlink.KindRefund, tlink.KindVoid, tlink.KindPreAuth, tlink.KindCapture:
		f.startTxn(ctx, ep, adv, m, wg)
	case tlink.KindFinancialResponse:
		h, err := iso93.Peek(m.Payload)
		if err != nil {
			f.log.Warn("bad financial response", "err", err)
			return
		}
		f.mu.Lock()
		ch := f.fin[h.STAN]
		delete(f.fin, h.STAN)
		f.mu.Unlock()
		if ch == nil {
			f.log.Warn("financial response matches no request", "mti", h.MTI, "stan", h.STAN)
			return
		}
		ch <- m.Payload
	default:
		f.log.Info("message ignored", "kind", m.Kind.String())
	}
}

func (f *Firmware) show(text string) {
	f.mu.Lock()
	f.display = text
	f.mu.Unlock()
	f.log.Info("display", "text", text)
}

func (f *Firmware) print(text string) {
	f.mu.Lock()
	f.receipts = append(f.receipts, text)
	if len(f.receipts) > maxReceipts {
		f.receipts = f.receipts[len(f.receipts)-maxReceipts:]
	}
	f.mu.Unlock()
	f.log.Info("print", "text", text)
}

// keyStatus describes the keys in secure storage: slot, type, check value
// (by the rules hsmctl uses, so they match the injection record) and the
// current KSN; never key bytes.
func (f *Firmware) keyStatus() tlink.KeyStatus {
	var ks tlink.KeyStatus
	if t := f.cfg.Terminal; t != nil {
		k := t.Keys()
		typ := tlink.KeyAES128DUKPT
		if len(k.InitialKey) == 32 {
			typ = tlink.KeyAES256DUKPT
		}
		_, ksn := t.Counter()
		ks.Keys = append(ks.Keys,
			tlink.KeyInfo{Slot: "dukpt-ik", Type: typ, KCV: aesKCV(k.InitialKey), KSN: ksn[:]},
			tlink.KeyInfo{Slot: "pan-fingerprint", Type: tlink.KeyFingerprint, KCV: hmacKCV(k.FingerprintKey)})
	}
	if f.cfg.VendorKey != nil {
		ks.Keys = append(ks.Keys, tlink.KeyInfo{Slot: "firmware-vendor", Type: tlink.KeyFirmware, KCV: fwimage.KCV(f.cfg.VendorKey)})
	}
	return ks
}

// aesKCV is AES-CMAC over one zero block, first 3 bytes (hsm.Token.KCV's
// rule for AES keys).
func aesKCV(k []byte) [3]byte {
	c, err := aes.NewCipher(k)
	if err != nil {
		return [3]byte{}
	}
	var l, k1 [16]byte
	c.Encrypt(l[:], l[:])
	carry := l[0] >> 7
	for i := range 15 {
		k1[i] = l[i]<<1 | l[i+1]>>7
	}
	k1[15] = l[15] << 1
	if carry == 1 {
		k1[15] ^= 0x87
	}
	// One complete zero block: MAC = E(K, 0 XOR K1).
	c.Encrypt(k1[:], k1[:])
	return [3]byte{k1[0], k1[1], k1[2]}
}

// hmacKCV is HMAC-SHA256 over 16 zero bytes, first 3 bytes (hsm's rule
// for HMAC keys).
func hmacKCV(k []byte) [3]byte {
	m := hmac.New(sha256.New, k)
	m.Write(make([]byte, 16))
	s := m.Sum(nil)
	return [3]byte{s[0], s[1], s[2]}
}

func (f *Firmware) firmwareChunk(ctx context.Context, ep *tlink.Endpoint, p []byte) {
	var c tlink.FirmwareChunk
	if err := c.UnmarshalBinary(p); err != nil {
		f.log.Warn("bad firmware chunk", "err", err)
		return
	}
	if f.upd == nil {
		f.log.Warn("firmware image refused: no vendor key installed", "image", c.Image)
		f.send(ctx, ep, tlink.KindFirmwareAck, &tlink.FirmwareAck{Ref: c.Ref, Image: c.Image, Status: tlink.FirmwareBadImage})
		return
	}
	f.mu.Lock()
	busy := f.cur != nil
	f.mu.Unlock()
	if busy {
		// Not now: ask for the same chunk again later.
		_, next, _, _ := f.upd.Progress()
		f.send(ctx, ep, tlink.KindFirmwareAck, &tlink.FirmwareAck{Ref: c.Ref, Image: c.Image, Status: tlink.FirmwareResend, NextOffset: next})
		return
	}
	f.setState(tlink.StateUpdating)
	ack, err := f.upd.Chunk(&c)
	switch ack.Status {
	case tlink.FirmwareInstalled:
		f.mu.Lock()
		f.version = f.upd.Installed()
		f.mu.Unlock()
		f.log.Info("firmware installed", "image", c.Image, "version", f.upd.Installed().String())
		f.setState(tlink.StateIdle)
	case tlink.FirmwareBadImage:
		f.log.Warn("firmware image refused", "image", c.Image, "reason", err)
		f.setState(tlink.StateIdle)
	}
	f.send(ctx, ep, tlink.KindFirmwareAck, &ack)
}

// save applies u to the non-volatile record and writes it: u.last (when
// not nil) replaces the last transaction (copied), u.owe (when not nil) is
// added to the reversals owed, the one with STAN u.paid (when not empty)
// is removed, u.journal (when not nil) edits a copy of the journal, which
// is then cut to the newest MaxJournal entries, u.advise (when not nil)
// joins the advice queue and the advice with STAN u.advised (when not
// empty) leaves it, its journal entry and the last transaction (when they
// are its) taking u.rrn when not empty. pmu keeps the snapshot and the
// write of concurrent saves in order.
func (f *Firmware) save(u update) error {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	f.mu.Lock()
	st := stored{Version: recordVersion, Last: f.last, Owed: slices.Clone(f.owed), Journal: slices.Clone(f.journal), Advices: slices.Clone(f.advices)}
	f.mu.Unlock()
	if u.last != nil {
		c := *u.last
		st.Last = &c
	}
	if u.owe != nil {
		st.Owed = append(st.Owed, *u.owe)
	}
	if u.paid != "" {
		st.Owed = slices.DeleteFunc(st.Owed, func(r device.Result) bool { return r.STAN == u.paid })
	}
	if u.journal != nil {
		st.Journal = u.journal(st.Journal)
		if n := len(st.Journal); n > MaxJournal {
			st.Journal = st.Journal[n-MaxJournal:]
		}
	}
	if u.advise != nil {
		st.Advices = append(st.Advices, *u.advise)
	}
	if u.advised != "" {
		st.Advices = slices.DeleteFunc(st.Advices, func(p pendingAdvice) bool { return p.STAN == u.advised })
		if u.rrn != "" {
			st.Journal = markJournal(u.advised, func(e *journalEntry) {
				if e.Request.MTI == iso93.MTIAdvice {
					e.Request.RRN = u.rrn
				}
			})(st.Journal)
			if l := st.Last; l != nil && l.STAN == u.advised && tlink.Kind(l.Command) == tlink.KindSale {
				c := *l
				c.RRN = u.rrn
				st.Last = &c
			}
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("last transaction record: %w", err)
	}
	if err := f.cfg.Terminal.SaveLast(b); err != nil {
		return err
	}
	f.mu.Lock()
	f.last, f.owed, f.journal, f.advices = st.Last, st.Owed, st.Journal, st.Advices
	if u.advised != "" {
		delete(f.tried, u.advised)
	}
	f.mu.Unlock()
	return nil
}

// reverse sends the 1420 for orig, a request whose answer never came, and
// once the gateway answered it removes it from the reversals owed.
func (f *Firmware) reverse(ctx context.Context, ep *tlink.Endpoint, orig device.Result) {
	raw, err := f.cfg.Terminal.BuildReversal(orig, iso93.ReasonTimeoutReversal)
	if err != nil {
		f.log.Error("build reversal", "err", err)
		return
	}
	if _, err := f.financial(ctx, ep, raw); err != nil {
		f.log.Warn("reversal not answered; kept for the next link", "stan", orig.STAN, "err", err)
		return
	}
	if err := f.save(update{paid: orig.STAN}); err != nil {
		f.log.Error("record reversal", "err", err)
		return
	}
	f.log.Info("reversal answered", "stan", orig.STAN)
}

// financial sends the ISO request raw as a financial-request frame and
// waits up to HostTimeout for the financial response with the same STAN.
func (f *Firmware) financial(ctx context.Context, ep *tlink.Endpoint, raw []byte) ([]byte, error) {
	h, err := iso93.Peek(raw)
	if err != nil {
		return nil, fmt.Errorf("financial request: %w", err)
	}
	ch := make(chan []byte, 1)
	f.mu.Lock()
	f.fin[h.STAN] = ch
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if f.fin[h.STAN] == ch {
			delete(f.fin, h.STAN)
		}
		f.mu.Unlock()
	}()
	if err := ep.Send(ctx, tlink.KindFinancialRequest, raw); err != nil {
		return nil, fmt.Errorf("send %s STAN %s: %w", h.MTI, h.STAN, err)
	}
	timer := time.NewTimer(f.cfg.HostTimeout)
	defer timer.Stop()
	select {
	case resp := <-ch:
		return resp, nil
	case <-timer.C:
		return nil, fmt.Errorf("%s STAN %s: no financial response within %v: %w", h.MTI, h.STAN, f.cfg.HostTimeout, tlink.ErrNoResponse)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s STAN %s: waiting for the financial response: %w", h.MTI, h.STAN, context.Cause(ctx))
	}
}

// startTxn decodes a transaction command and runs it on its own goroutine
// (owned by Serve's wait group), or answers at once when it cannot start.
func (f *Firmware) startTxn(ctx context.Context, ep *tlink.Endpoint, adv *adviceSender, m tlink.Message, wg *sync.WaitGroup) {
	start := f.cfg.Now()
	var cmd tlink.TxnCommand
	if err := cmd.UnmarshalBinary(m.Payload); err != nil {
		f.log.Warn("bad transaction command", "kind", m.Kind.String(), "err", err)
		return
	}
	refuse := func(action iso93.ActionCode, why error) {
		res := tlink.TxnResult{Ref: cmd.Ref, Amount: cmd.Amount, Currency: cmd.Currency, Outcome: tlink.OutcomeFailed, ActionCode: string(action), Time: start.Format(tlink.TimeLayout)}
		f.report(Report{Kind: m.Kind, Result: res, Latency: f.cfg.Now().Sub(start), Err: why})
		f.send(ctx, ep, tlink.KindTxnResult, &res)
	}
	if err := cmd.Validate(m.Kind); err != nil {
		refuse(iso93.ActionFormatError, err)
		return
	}
	if f.cfg.Terminal == nil {
		refuse(iso93.ActionSystemMalfunction, errors.New("no keys injected"))
		return
	}
	tctx, cancel := context.WithCancel(ctx)
	f.mu.Lock()
	busy := f.cur != nil || f.state == tlink.StateUpdating
	if !busy {
		f.cur = &txn{ref: cmd.Ref, cancel: cancel}
		f.state = tlink.StateBusy
	}
	f.mu.Unlock()
	if busy {
		cancel()
		refuse(iso93.ActionRequestInProgress, errors.New("terminal busy"))
		return
	}
	f.mu.Lock()
	me := f.cur
	f.mu.Unlock()
	// end makes the terminal idle again; it runs before the txn-result
	// is sent, so that the gateway's next command finds it idle.
	end := func() {
		cancel()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.cur == me {
			f.cur = nil
			if f.cfg.Terminal != nil && f.state == tlink.StateBusy {
				f.state = tlink.StateIdle
			}
		}
	}
	wg.Go(func() {
		defer end()
		f.runTxn(ctx, tctx, ep, adv, m.Kind, cmd, start, end)
	})
}

func (f *Firmware) report(r Report) {
	if f.cfg.OnResult != nil {
		f.cfg.OnResult(r)
	}
}

// runTxn runs one transaction command to its result. ctx is the link's,
// tctx also ends on a cancel: it bounds only the card read and PIN entry,
// before anything was sent to the host.
func (f *Firmware) runTxn(ctx, tctx context.Context, ep *tlink.Endpoint, adv *adviceSender, kind tlink.Kind, cmd tlink.TxnCommand, start time.Time, end func()) {
	t := &run{f: f, ctx: ctx, tctx: tctx, ep: ep, adv: adv, kind: kind, cmd: cmd, start: start, end: end,
		rec: &lastRecord{Command: uint8(kind), Ref: cmd.Ref, Amount: cmd.Amount, Currency: cmd.Currency,
			Outcome: uint8(tlink.OutcomePending), Time: start.Format(tlink.TimeLayout)},
		rep: Report{Kind: kind}}
	if err := f.save(update{last: t.rec}); err != nil {
		f.log.Error("record last transaction", "err", err)
		t.finish(tlink.OutcomeFailed, iso93.ActionSystemMalfunction, err)
		return
	}
	switch kind {
	case tlink.KindSale:
		t.card(iso93.MTIFinancialRequest, iso93.ProcessingPurchase)
	case tlink.KindRefund:
		t.card(iso93.MTIFinancialRequest, iso93.ProcessingRefund)
	case tlink.KindPreAuth:
		t.card(iso93.MTIAuthorizationRequest, iso93.ProcessingPurchase)
	case tlink.KindVoid:
		t.void()
	case tlink.KindCapture:
		t.capture()
	default:
		t.finish(tlink.OutcomeFailed, iso93.ActionInvalidTransaction, fmt.Errorf("%s is not a transaction command", kind))
	}
}

// run is one transaction command in progress.
type run struct {
	f         *Firmware
	ctx, tctx context.Context
	ep        *tlink.Endpoint
	adv       *adviceSender
	kind      tlink.Kind
	cmd       tlink.TxnCommand
	start     time.Time
	end       func()
	rec       *lastRecord
	rep       Report
	paid      string                              // STAN of an owed request whose answer came
	journal   func([]journalEntry) []journalEntry // journal change saved with the result
	advised   bool                                // an offline approval: its advice is queued
}

// finish records the result (with the journal change, if any), reports
// it, makes the terminal idle, sends the txn-result and asks for a pass
// of the advice queue.
func (t *run) finish(o tlink.Outcome, action iso93.ActionCode, err error) {
	f := t.f
	t.rec.Outcome, t.rec.Action = uint8(o), string(action)
	if serr := f.save(update{last: t.rec, paid: t.paid, journal: t.journal}); serr != nil {
		f.log.Error("record last transaction", "err", serr)
	}
	t.rep.Result, t.rep.Err = t.rec.result(), err
	t.rep.Latency = f.cfg.Now().Sub(t.start)
	f.report(t.rep)
	t.end()
	f.send(t.ctx, t.ep, tlink.KindTxnResult, &t.rep.Result)
	t.adv.Kick()
}

// advicesFirst sends the pending advices before the command sends its own
// request to the host, as a real terminal sends its stored advices first.
// The pass stops at the first advice not taken (the request then goes
// anyway): the wait is bounded by about one HostTimeout.
func (t *run) advicesFirst() {
	if t.f.PendingAdvices() == 0 {
		return
	}
	t.f.show("SENDING ADVICES")
	t.adv.Flush(t.ctx)
}

// cancelled reports whether the command was cancelled (not the link).
func (t *run) cancelled() bool { return t.tctx.Err() != nil && t.ctx.Err() == nil }

// read asks the Picker for the card and applies the cardholder
// verification choice (pin: whether this kind may take a PIN at all). ok
// is false when the transaction was finished (cancelled or no card).
func (t *run) read(pin bool) (device.Read, bool) {
	f := t.f
	f.show(fmt.Sprintf("%s %d %s\nPRESENT CARD", strings.ToUpper(t.kind.String()), t.cmd.Amount, t.cmd.Currency))
	read, err := f.cfg.Picker.Pick(t.tctx, t.kind, t.cmd)
	if err != nil {
		if t.cancelled() {
			f.show("CANCELLED")
			t.finish(tlink.OutcomeCancelled, "", nil)
			return device.Read{}, false
		}
		f.show("CARD ERROR")
		t.finish(tlink.OutcomeFailed, "", fmt.Errorf("read card: %w", err))
		return device.Read{}, false
	}
	if read.Entry == 0 {
		read.Entry = device.EntryChip
	}
	t.rep.Entry, t.rep.MaskedPAN = read.Entry, read.Card.Masked()
	if pin && f.needsPIN(read, t.kind, int64(t.cmd.Amount)) {
		f.show("ENTER PIN")
		if read.PIN == "" {
			read.PIN = f.cfg.PIN
		}
	} else {
		read.PIN = ""
	}
	if t.cancelled() {
		f.show("CANCELLED")
		t.finish(tlink.OutcomeCancelled, "", nil)
		return device.Read{}, false
	}
	return read, true
}

// card runs a sale (1200 000000), refund (1200 200000) or pre-auth (1100):
// read the card, send the request, reverse it when its answer is lost.
func (t *run) card(mti, proc string) {
	f := t.f
	read, ok := t.read(true)
	if !ok {
		return
	}
	fin := device.Financial{MTI: mti, Read: read, ProcessingCode: proc, Amount: int64(t.cmd.Amount), Currency: t.cmd.Currency}
	chip, err := t.startChip(&read, &fin) // chip.go: the EMV kernel up to the first GENERATE AC
	if err == nil && chip != nil && chip.declined {
		// The card declined offline (AAC: an issuer script blocked it),
		// or its TC failed CDA (worthless): nothing goes to the host.
		f.show("CARD DECLINED")
		t.finish(tlink.OutcomeDeclined, iso93.ActionDoNotHonour, chip.declineErr)
		return
	}
	var (
		raw []byte
		res device.Result
	)
	if err == nil {
		raw, res, err = f.cfg.Terminal.BuildFinancial(fin)
	}
	if err != nil {
		f.show("CARD ERROR")
		t.finish(tlink.OutcomeFailed, "", err)
		return
	}
	if chip != nil && chip.offline {
		t.offline(chip, raw, res) // chip.go: the card approved offline (TC)
		return
	}
	t.advicesFirst()
	if t.cancelled() {
		f.show("CANCELLED")
		t.finish(tlink.OutcomeCancelled, "", nil)
		return
	}
	t.rec.STAN = res.STAN
	// From here the request may reach the host: a cancel no longer
	// applies, and a lost answer is reversed.
	if err := f.save(update{last: t.rec, owe: &res}); err != nil {
		// Without the record a lost answer could not be reversed after a
		// restart: do not send.
		f.show("SYSTEM ERROR")
		t.finish(tlink.OutcomeFailed, iso93.ActionSystemMalfunction, err)
		return
	}
	f.show("PROCESSING")
	sent := f.cfg.Now()
	resp, err := f.financial(t.ctx, t.ep, raw)
	if err == nil {
		t.rep.HostLatency = f.cfg.Now().Sub(sent)
		err = f.cfg.Terminal.CompleteResult(resp, &res)
	}
	if err != nil {
		f.show("NO ANSWER\nTRANSACTION VOID")
		t.finish(tlink.OutcomeFailed, "", fmt.Errorf("financial request: %w", err))
		// The reversal is owed in the record; send it now if the link is
		// up, otherwise the next Serve sends it.
		if t.ctx.Err() == nil {
			f.reverse(t.ctx, t.ep, res)
		}
		return
	}
	if chip != nil && res.ActionCode.Approved() {
		if ok, cerr := chip.complete(res); !ok { // chip.go: the card's AAC overrides the approval
			f.show("CARD DECLINED")
			res.ActionCode, res.ApprovalCode = iso93.ActionDoNotHonour, ""
			t.finish(tlink.OutcomeDeclined, res.ActionCode, fmt.Errorf("card declined the host's approval: %v", cerr))
			f.reverse(t.ctx, t.ep, res) // still owed: the record keeps it until answered
			return
		}
	} else if chip != nil {
		chip.complete(res) // the card records the decline (AAC)
	}
	t.paid = res.STAN
	t.rec.Approval, t.rec.RRN = res.ApprovalCode, res.RRN
	outcome := tlink.OutcomeDeclined
	if res.ActionCode.Approved() {
		outcome = tlink.OutcomeApproved
		e := journalEntry{Kind: uint8(t.kind), Ref: t.cmd.Ref, Time: t.rec.Time, Request: res}
		t.journal = func(j []journalEntry) []journalEntry { return append(j, e) }
	}
	t.done(res, outcome)
}

// done prints the receipt, shows the outcome and finishes; then, after an
// offline approval, waits for a pass of the advice queue (the gateway
// links a signature to the request with its STAN, so the advice goes
// first), and captures the signature when the transaction takes one.
func (t *run) done(res device.Result, outcome tlink.Outcome) {
	f := t.f
	f.print(receipt(f.cfg.Serial, t.kind, t.cmd, res, outcome, t.start))
	if outcome == tlink.OutcomeApproved {
		f.show("APPROVED")
	} else {
		f.show("DECLINED " + string(res.ActionCode))
	}
	t.finish(outcome, res.ActionCode, nil)
	if t.advised {
		t.adv.Flush(t.ctx)
	}
	if needsSignature(t.kind, outcome, res.PINEntered) { // signature.go
		f.captureSignature(t.ctx, t.ep, t.cmd.Ref, res.STAN)
	}
}

// original finds the approved journal entry the command's OrigRef names
// (the newest with that ref), or refuses the command locally (outcome
// declined, action 914: nothing sent) and returns false.
func (t *run) original(want ...tlink.Kind) (journalEntry, bool) {
	f := t.f
	f.mu.Lock()
	var e journalEntry
	found := false
	for i := len(f.journal) - 1; i >= 0; i-- {
		if f.journal[i].Ref == t.cmd.OrigRef && slices.Contains(want, tlink.Kind(f.journal[i].Kind)) {
			e, found = f.journal[i], true
			break
		}
	}
	f.mu.Unlock()
	switch {
	case !found:
		return t.refuse(iso93.ActionOriginalNotFound, fmt.Errorf("%s: no approved %v with ref %q in the journal", t.kind, want, t.cmd.OrigRef))
	case e.Voided:
		return t.refuse(iso93.ActionOriginalNotFound, fmt.Errorf("%s: %q was voided", t.kind, t.cmd.OrigRef))
	case e.Captured:
		return t.refuse(iso93.ActionDuplicateTransmission, fmt.Errorf("%s: %q was already captured", t.kind, t.cmd.OrigRef))
	}
	return e, true
}

func (t *run) refuse(action iso93.ActionCode, err error) (journalEntry, bool) {
	t.f.show("DECLINED " + string(action))
	t.finish(tlink.OutcomeDeclined, action, err)
	return journalEntry{}, false
}

// markJournal returns a journal change that applies mark to the entry
// whose request had STAN stan.
func markJournal(stan string, mark func(*journalEntry)) func([]journalEntry) []journalEntry {
	return func(j []journalEntry) []journalEntry {
		for i := range j {
			if j[i].Request.STAN == stan {
				mark(&j[i])
			}
		}
		return j
	}
}

// void sends the 1420 (reason 4000) of the approved transaction OrigRef
// names: a sale, refund, pre-auth or capture. The original goes on the
// reversals owed first, so an unanswered void is sent again (as for a
// timeout reversal, under the same idempotency key) at the next link.
func (t *run) void() {
	f := t.f
	e, ok := t.original(tlink.KindSale, tlink.KindRefund, tlink.KindPreAuth, tlink.KindCapture)
	if !ok {
		return
	}
	orig := e.Request
	if t.cmd.Amount != 0 && (int64(t.cmd.Amount) != orig.Amount || t.cmd.Currency != orig.Currency) {
		t.refuse(iso93.ActionInvalidAmount, fmt.Errorf("void of %q: amount %d %s differs from the original's %d %s (partial voids are not supported)",
			t.cmd.OrigRef, t.cmd.Amount, t.cmd.Currency, orig.Amount, orig.Currency))
		return
	}
	t.rec.Amount, t.rec.Currency = uint64(orig.Amount), orig.Currency
	t.rep.MaskedPAN, t.rep.Entry = orig.MaskedPAN, orig.Entry
	t.advicesFirst()
	if f.adviceQueued(orig.STAN) {
		// The host has not taken the original's advice: a 1420 of it
		// could arrive first. Nothing is sent; the void can be tried
		// again once the advice is delivered.
		f.show("ADVICE PENDING\nTRY VOID LATER")
		t.finish(tlink.OutcomeFailed, iso93.ActionIssuerInoperative, fmt.Errorf("void of %q: its offline approval's advice is not delivered yet", t.cmd.OrigRef))
		return
	}
	f.show(fmt.Sprintf("VOID %d %s\nPROCESSING", orig.Amount, orig.Currency))
	raw, err := f.cfg.Terminal.BuildReversal(orig, iso93.ReasonCustomerCancel)
	if err == nil {
		err = f.save(update{last: t.rec, owe: &orig})
	}
	if err != nil {
		f.show("SYSTEM ERROR")
		t.finish(tlink.OutcomeFailed, iso93.ActionSystemMalfunction, err)
		return
	}
	h, _ := iso93.Peek(raw)
	t.rec.STAN = h.STAN
	sent := f.cfg.Now()
	resp, err := f.financial(t.ctx, t.ep, raw)
	var a iso93.Header
	if err == nil {
		t.rep.HostLatency = f.cfg.Now().Sub(sent)
		if a, err = iso93.Peek(resp); err == nil && (a.MTI != iso93.MTIReversalResponse || a.TerminalID != f.cfg.Terminal.ID()) {
			err = fmt.Errorf("answer to the 1420 is a %s for terminal %s", a.MTI, a.TerminalID)
		}
	}
	if err != nil {
		// Still owed: the next Serve sends the 1420 again.
		f.show("NO ANSWER\nVOID PENDING")
		t.finish(tlink.OutcomeFailed, "", fmt.Errorf("void: %w", err))
		return
	}
	t.paid = orig.STAN
	res := orig
	res.STAN, res.ActionCode, res.ApprovalCode, res.RRN = h.STAN, iso93.ActionCode(a.ActionCode), "", ""
	outcome := tlink.OutcomeDeclined
	if res.ActionCode == iso93.ActionReversalAccepted {
		outcome = tlink.OutcomeApproved
		t.journal = markJournal(orig.STAN, func(e *journalEntry) { e.Voided = true })
	}
	t.done(res, outcome)
}

// capture sends the 1220 completion advice of the approved pre-auth
// OrigRef names, for the command's amount (at most the authorized one),
// after the cardholder presents the same card again (checked by
// fingerprint; no PIN).
func (t *run) capture() {
	f := t.f
	e, ok := t.original(tlink.KindPreAuth)
	if !ok {
		return
	}
	orig := e.Request
	if int64(t.cmd.Amount) > orig.Amount || t.cmd.Currency != orig.Currency {
		t.refuse(iso93.ActionInvalidAmount, fmt.Errorf("capture of %q: %d %s above the %d %s authorized",
			t.cmd.OrigRef, t.cmd.Amount, t.cmd.Currency, orig.Amount, orig.Currency))
		return
	}
	read, ok := t.read(false)
	if !ok {
		return
	}
	raw, res, err := f.cfg.Terminal.BuildCompletion(orig, device.Financial{Read: read, Amount: int64(t.cmd.Amount), Currency: t.cmd.Currency})
	if err != nil {
		f.show("CARD ERROR")
		t.finish(tlink.OutcomeFailed, "", err)
		return
	}
	if res.Fingerprint != orig.Fingerprint {
		t.refuse(iso93.ActionOriginalNotFound, fmt.Errorf("capture of %q: the card presented is not the pre-authorized one", t.cmd.OrigRef))
		return
	}
	t.advicesFirst()
	t.rec.STAN = res.STAN
	f.show("PROCESSING")
	sent := f.cfg.Now()
	resp, err := f.financial(t.ctx, t.ep, raw)
	if err == nil {
		t.rep.HostLatency = f.cfg.Now().Sub(sent)
		err = f.cfg.Terminal.CompleteResult(resp, &res)
	}
	if err != nil {
		// An advice is not reversed: the capture may be sent again, under
		// the same idempotency key, by a new capture command.
		f.show("NO ANSWER\nRETRY CAPTURE")
		t.finish(tlink.OutcomeFailed, "", fmt.Errorf("completion advice: %w", err))
		return
	}
	res.ApprovalCode = orig.ApprovalCode
	t.rec.RRN = res.RRN
	outcome := tlink.OutcomeDeclined
	if res.ActionCode.Approved() {
		outcome = tlink.OutcomeApproved
		t.rec.Approval = res.ApprovalCode
		captured := journalEntry{Kind: uint8(t.kind), Ref: t.cmd.Ref, Time: t.rec.Time, Request: res}
		mark := markJournal(orig.STAN, func(e *journalEntry) { e.Captured = true })
		t.journal = func(j []journalEntry) []journalEntry { return append(mark(j), captured) }
	}
	t.done(res, outcome)
}

// needsPIN is the terminal's cardholder verification choice: chip and PIN
// (except a sale at or under the floor limit at a terminal with a Bureau,
// which may be approved offline: signature), contactless above the CVM
// limit, magstripe by signature.
func (f *Firmware) needsPIN(r device.Read, kind tlink.Kind, amount int64) bool {
	switch r.Entry {
	case device.EntryChip:
		return f.cfg.Bureau == nil || kind != tlink.KindSale || amount > f.cfg.FloorLimit
	case device.EntryContactless:
		return amount > f.cfg.CVMLimit
	}
	return false
}

// receipt is the printed slip: masked PAN only.
func receipt(serial string, kind tlink.Kind, cmd tlink.TxnCommand, res device.Result, o tlink.Outcome, at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "TERMINAL %s\n%s\n", serial, at.Format("2006-01-02 15:04:05"))
	fmt.Fprintf(&b, "%s\nCARD %s (%s)\n", strings.ToUpper(kind.String()), res.MaskedPAN, res.Entry)
	fmt.Fprintf(&b, "AMOUNT %d %s\n", cmd.Amount, cmd.Currency)
	fmt.Fprintf(&b, "STAN %s  REF %s\n", res.STAN, cmd.Ref)
	if o == tlink.OutcomeApproved {
		fmt.Fprintf(&b, "APPROVED  CODE %s\n", res.ApprovalCode)
		if res.PINEntered {
			b.WriteString("PIN VERIFIED\n")
		} else {
			b.WriteString("SIGNATURE ____________________\n")
		}
	} else {
		fmt.Fprintf(&b, "DECLINED  %s\n", res.ActionCode)
	}
	return b.String()
}
