// Package gatewaytest holds what the gateway's package tests share: a
// software sealer, an offline store in a temp dir, terminal requests and
// uplinks that answer or fail in a chosen way. It is for tests only.
package gatewaytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/offline/offlinetest"

	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/negfile"
)

// NewSealer returns the offline store's test sealer (offlinetest) under a
// fresh random key (production seals in the token with hsmseal).
func NewSealer(t testing.TB) *offlinetest.Sealer {
	key := make([]byte, 32)
	rand.Read(key)
	s, err := offlinetest.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// BlockedFP is the fingerprint OpenStore's negative file blocks.
const BlockedFP = "ffeeddccbbaa99887766554433221100"

// OpenStore opens an offline store in a temp dir, closed at cleanup; with
// loaded, a snapshot of version 1 holding BlockedFP is in force.
func OpenStore(t testing.TB, loaded bool, pol standin.Policy) *offline.Store {
	t.Helper()
	st, err := offline.Open(offline.Config{Path: filepath.Join(t.TempDir(), "offline.db"), Sealer: NewSealer(t), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if loaded {
		chunks, err := negfile.Split(negfile.OpSnapshot, 0, 1, []string{BlockedFP}, nil, negfile.MaxDE72)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			if _, err := st.ApplyChunk(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st
}

// Sale packs a 1200 of 1200 JPY from terminal T0000001 with the given STAN
// and the idempotency key "T0000001-<stan>".
func Sale(t testing.TB, stan string) []byte {
	t.Helper()
	req := iso93.FinancialRequest{
		Trace: iso93.Trace{
			TransmissionTime: "1124120000",
			STAN:             stan,
			LocalTime:        "261124120000",
			FunctionCode:     iso93.FunctionOriginalFinancial,
			AcquirerID:       "99000001",
			TerminalID:       "T0000001",
			MerchantID:       "MERCHANT0000001",
			IdempotencyKey:   "T0000001-" + stan,
		},
		Payment: iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: 1200, POSDataCode: "510101513001", Currency: "392"},
		Card: iso93.Card{
			CardData:    bytes.Repeat([]byte{0xAA}, 48),
			KSN:         bytes.Repeat([]byte{0x01}, 12),
			Fingerprint: "00112233445566778899aabbccddeeff",
			MaskedPAN:   "411111******1111",
		},
	}
	raw, err := iso93.Pack(&req, iso93.MTIFinancialRequest)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// SaleWith packs a 1200 like Sale and lets the test change it.
func SaleWith(t testing.TB, stan string, change func(*iso93.FinancialRequest)) []byte {
	t.Helper()
	var req iso93.FinancialRequest
	if err := iso93.UnpackInto(Sale(t, stan), &req); err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(&req)
	}
	raw, err := iso93.Pack(&req, iso93.MTIFinancialRequest)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// UplinkFunc adapts a function to an uplink (RoundTrip); error paths need
// an uplink that fails in a chosen way on demand.
type UplinkFunc func(ctx context.Context, req []byte) ([]byte, error)

// RoundTrip calls f.
func (f UplinkFunc) RoundTrip(ctx context.Context, req []byte) ([]byte, error) { return f(ctx, req) }

// Uplinks that fail: the link is down (nothing sent), or the request may
// have reached the center (outcome unknown).
var (
	LinkDown       = UplinkFunc(func(context.Context, []byte) ([]byte, error) { return nil, link.ErrLinkDown })
	OutcomeUnknown = UplinkFunc(func(context.Context, []byte) ([]byte, error) {
		return nil, errors.Join(link.ErrLinkDown, link.ErrOutcomeUnknown)
	})
)

// Approve answers any request with 000.
func Approve(_ context.Context, req []byte) ([]byte, error) {
	_, msg, err := iso93.Unpack(req)
	if err != nil {
		return nil, err
	}
	resp, err := iso93.NewResponse(msg, iso93.ActionApproved)
	if err != nil {
		return nil, err
	}
	return iso93.PackMessage(resp)
}

// ActionOf returns the DE 39 of an answer.
func ActionOf(t testing.TB, resp []byte) string {
	t.Helper()
	h, err := iso93.Peek(resp)
	if err != nil {
		t.Fatalf("answer is not a message: %v", err)
	}
	return h.ActionCode
}

// Quiet is a logger that discards everything.
func Quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// AdviceCenter answers advices as the center does: 208 for the keys in
// Reject, 000 otherwise, recording each advice it saw and its MTI. While
// Down it fails as a link that dropped with the request in flight.
type AdviceCenter struct {
	mu     sync.Mutex
	Seen   []iso93.Advice
	MTIs   []string
	Reject map[string]bool
	Down   bool
}

// RoundTrip answers one advice.
func (c *AdviceCenter) RoundTrip(_ context.Context, req []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Down {
		return nil, errors.Join(link.ErrLinkDown, link.ErrOutcomeUnknown)
	}
	var a iso93.Advice
	if err := iso93.UnpackInto(req, &a); err != nil {
		return nil, err
	}
	c.Seen = append(c.Seen, a)
	c.MTIs = append(c.MTIs, string(req[:4]))
	action := iso93.ActionApproved
	if c.Reject[a.IdempotencyKey] {
		action = iso93.ActionLostCard
	}
	return iso93.Pack(a.Response(action), iso93.MTIAdviceResponse)
}

// ChipData builds a request DE 55 with de55.Build whose 9F27 is cid: the
// golden online purchase's values (testdata/emv/de55_request.hex) with the
// cryptogram type changed.
func ChipData(t testing.TB, cid byte) []byte {
	t.Helper()
	v := dol.Values{
		tags.ApplicationCryptogram:   mustHex(t, "C2C12B1AD1A3A5BC"),
		tags.CID:                     {cid},
		tags.IssuerApplicationData:   mustHex(t, "0110A00003220000000000000000000000FF"),
		tags.UnpredictableNumber:     mustHex(t, "BBA4CD5B"),
		tags.ATC:                     mustHex(t, "0001"),
		tags.TVR:                     mustHex(t, "0000048000"),
		tags.TransactionDate:         mustHex(t, "260121"),
		tags.TransactionType:         {0x00},
		tags.AmountAuthorised:        mustHex(t, "000000001200"),
		tags.TransactionCurrencyCode: mustHex(t, "0392"),
		tags.AIP:                     mustHex(t, "3900"),
		tags.TerminalCountryCode:     mustHex(t, "0392"),
	}
	b, err := de55.Build(v)
	if err != nil {
		t.Fatalf("build DE 55: %v", err)
	}
	return b
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TerminalAdvice packs the 1220 a terminal sends after its chip card
// approved a sale offline (firmware-sim/jets offlineAdvice): the 1200 of
// Sale with DE 55 holding a TC, DE 24 201, DE 25 1005 and DE 38 the
// offline approval code "Y1" + the last four STAN digits. change may alter
// the message before it is packed.
func TerminalAdvice(t testing.TB, stan string, change func(*iso93.Advice)) []byte {
	t.Helper()
	var req iso93.FinancialRequest
	if err := iso93.UnpackInto(Sale(t, stan), &req); err != nil {
		t.Fatal(err)
	}
	req.ICCData = ChipData(t, 0x40)
	req.FunctionCode, req.ReasonCode = iso93.FunctionPreviousApproval, "1005"
	adv := iso93.Advice{Trace: req.Trace, Payment: req.Payment, Card: req.Card, ApprovalCode: "Y1" + stan[2:]}
	if change != nil {
		change(&adv)
	}
	raw, err := iso93.Pack(&adv, iso93.MTIAdvice)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// WaitLimit bounds the gateway tests' waits on a condition (poll.Until):
// the code under test uses real sockets or a bbolt file, which cannot run
// in a testing/synctest bubble.
const WaitLimit = 10 * time.Second
