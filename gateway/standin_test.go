package gateway

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"

	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/negfile"
)

// gcmSealer is a software AES-GCM sealer for tests (production seals in the
// token with hsmseal).
type gcmSealer struct{ aead cipher.AEAD }

func newSealer(t testing.TB) gcmSealer {
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return gcmSealer{a}
}

func (s gcmSealer) Seal(p, aad []byte) ([]byte, error) {
	n := make([]byte, s.aead.NonceSize())
	rand.Read(n)
	return s.aead.Seal(n, n, p, aad), nil
}

func (s gcmSealer) Open(c, aad []byte) ([]byte, error) {
	if len(c) < s.aead.NonceSize() {
		return nil, errors.New("short")
	}
	return s.aead.Open(nil, c[:s.aead.NonceSize()], c[s.aead.NonceSize():], aad)
}

const blockedFP = "ffeeddccbbaa99887766554433221100"

// openStore opens an offline store in a temp dir; with loaded, a snapshot
// of version 1 holding blockedFP is in force.
func openStore(t testing.TB, loaded bool, pol standin.Policy) *offline.Store {
	t.Helper()
	st, err := offline.Open(offline.Config{Path: filepath.Join(t.TempDir(), "offline.db"), Sealer: newSealer(t), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if loaded {
		chunks, err := negfile.Split(negfile.OpSnapshot, 0, 1, []string{blockedFP}, nil, negfile.MaxDE72)
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

// saleWith packs a 1200 like sale() and lets the test change it.
func saleWith(t *testing.T, stan string, change func(*iso93.FinancialRequest)) []byte {
	t.Helper()
	var req iso93.FinancialRequest
	if err := iso93.UnpackInto(sale(t, stan), &req); err != nil {
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

var (
	linkDown       = uplinkFunc(func(context.Context, []byte) ([]byte, error) { return nil, link.ErrLinkDown })
	outcomeUnknown = uplinkFunc(func(context.Context, []byte) ([]byte, error) {
		return nil, errors.Join(link.ErrLinkDown, link.ErrOutcomeUnknown)
	})
	notEnrolledUp = uplinkFunc(func(context.Context, []byte) ([]byte, error) { return nil, ErrNotEnrolled })
)

func TestForwarderStandIn(t *testing.T) {
	tests := []struct {
		name       string
		uplink     uplinkFunc
		loaded     bool
		change     func(*iso93.FinancialRequest)
		want       string
		wantStored bool
	}{
		{"link_down_within_policy_approved", linkDown, true, nil, "000", true},
		{"not_enrolled_within_policy_approved", notEnrolledUp, true, nil, "000", true},
		{"over_floor_limit_declined", linkDown, true, func(r *iso93.FinancialRequest) { r.Amount = 10_001 }, "907", false},
		{"negative_file_hit_declined", linkDown, true, func(r *iso93.FinancialRequest) { r.Fingerprint = blockedFP }, "200", false},
		{"negative_file_hit_first_even_over_floor", linkDown, true, func(r *iso93.FinancialRequest) {
			r.Fingerprint, r.Amount = blockedFP, 50_000
		}, "200", false},
		{"refund_never_offline", linkDown, true, func(r *iso93.FinancialRequest) { r.ProcessingCode = iso93.ProcessingRefund }, "907", false},
		{"no_negative_file_declined", linkDown, false, nil, "907", false},
		{"outcome_unknown_reversed_not_stood_in", outcomeUnknown, true, nil, "911", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, tt.loaded, standin.Policy{})
			f := &Forwarder{Uplink: tt.uplink, Logger: quiet(), Metrics: NewMetrics(), Offline: st}
			raw := saleWith(t, "000042", tt.change)
			resp, err := f.Handle(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			var r iso93.FinancialResponse
			if err := iso93.UnpackInto(resp, &r); err != nil {
				t.Fatalf("answer: %v", err)
			}
			if string(r.ActionCode) != tt.want {
				t.Fatalf("action %s, want %s", r.ActionCode, tt.want)
			}
			if r.STAN != "000042" || r.IdempotencyKey != "T0000001-000042" {
				t.Fatalf("answer does not echo the request: stan %s key %s", r.STAN, r.IdempotencyKey)
			}
			recs, err := st.Queue().Next(10)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(recs) == 1; got != tt.wantStored || len(recs) > 1 {
				t.Fatalf("%d records stored, want stored=%v", len(recs), tt.wantStored)
			}
			if tt.wantStored {
				rec := recs[0]
				if r.ApprovalCode != rec.ApprovalCode || len(r.ApprovalCode) != 6 {
					t.Fatalf("DE 38 %q, stored approval code %q", r.ApprovalCode, rec.ApprovalCode)
				}
				if !bytes.Equal(rec.Message, raw) || rec.Brand != "visa" || rec.MaskedPAN != "411111******1111" || rec.Amount != 1200 {
					t.Fatalf("stored record %v does not describe the request", rec)
				}
			}
		})
	}
}

// TestForwarderStandInStoreFailure closes the store: Approve fails and the
// terminal is told 907, never approved.
func TestForwarderStandInStoreFailure(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	st.Close()
	f := &Forwarder{Uplink: linkDown, Logger: quiet(), Offline: st}
	resp, err := f.Handle(t.Context(), sale(t, "000043"))
	if err != nil {
		t.Fatal(err)
	}
	if got := actionOf(t, resp); got != "907" {
		t.Fatalf("action %s with a failed store, want 907", got)
	}
}

// TestForwarderStandInIdempotent repeats one request while offline: the
// same approval code both times and one stored record.
func TestForwarderStandInIdempotent(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	f := &Forwarder{Uplink: linkDown, Logger: quiet(), Offline: st}
	var codes []string
	for range 2 {
		resp, err := f.Handle(t.Context(), sale(t, "000044"))
		if err != nil {
			t.Fatal(err)
		}
		var r iso93.FinancialResponse
		if err := iso93.UnpackInto(resp, &r); err != nil {
			t.Fatal(err)
		}
		codes = append(codes, r.ApprovalCode)
	}
	recs, _ := st.Queue().Next(10)
	if codes[0] != codes[1] || len(recs) != 1 {
		t.Fatalf("approval codes %v, %d records; want one approval", codes, len(recs))
	}
}

func TestBrandOf(t *testing.T) {
	tests := []struct{ name, masked, want string }{
		{"visa", "411111******1111", "visa"},
		{"mastercard_51_55", "555555******4444", "mastercard"},
		{"mastercard_2_series", "222100******0009", "mastercard"},
		{"jcb", "353011******0000", "jcb"},
		{"amex", "378282*****0005", "amex"},
		{"unionpay", "620000******0005", "unionpay"},
		{"house", "999001******0010", "house"},
		{"other", "601100******0004", "other"},
		{"empty", "", "other"},
		{"not_digits", "******", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BrandOf(tt.masked); got != tt.want {
				t.Fatalf("BrandOf(%q) = %s, want %s", tt.masked, got, tt.want)
			}
		})
	}
}

// chipData builds a request DE 55 with de55.Build whose 9F27 is cid: the
// golden online purchase's values (testdata/emv/de55_request.hex) with the
// cryptogram type changed.
func chipData(t *testing.T, cid byte) []byte {
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

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestForwarderStandInChip follows the card's own offline decision read
// from DE 55: a TC is approved past the floor limit (the terminal applied
// it), an AAC is declined, an ARQC leaves the decision to the policy, and a
// DE 55 that cannot be read is refused as malformed.
func TestForwarderStandInChip(t *testing.T) {
	tests := []struct {
		name     string
		icc      func(t *testing.T) []byte
		amount   int64
		want     string
		wantChip standin.Chip
		stored   bool
	}{
		{"tc_within_floor_approved", func(t *testing.T) []byte { return chipData(t, 0x40) }, 1200, "000", standin.ChipTC, true},
		{"tc_over_floor_approved", func(t *testing.T) []byte { return chipData(t, 0x40) }, 10_001, "000", standin.ChipTC, true},
		{"aac_declined_offline", func(t *testing.T) []byte { return chipData(t, 0x00) }, 1200, standin.ReasonCardDeclined.ActionCode(), 0, false},
		{"arqc_within_floor_policy_approves", func(t *testing.T) []byte { return chipData(t, 0x80) }, 1200, "000", standin.ChipNone, true},
		{"arqc_over_floor_policy_declines", func(t *testing.T) []byte { return chipData(t, 0x80) }, 10_001, standin.ReasonFloorLimit.ActionCode(), 0, false},
		{"no_de55_policy_decides", func(*testing.T) []byte { return nil }, 10_001, standin.ReasonFloorLimit.ActionCode(), 0, false},
		{"rfu_cryptogram_format_error", func(t *testing.T) []byte { return chipData(t, 0xC0) }, 1200, "904", 0, false},
		{"malformed_de55_format_error", func(*testing.T) []byte { return []byte{0x9F, 0x27, 0x05, 0x40} }, 1200, "904", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, true, standin.Policy{})
			f := &Forwarder{Uplink: linkDown, Logger: quiet(), Metrics: NewMetrics(), Offline: st}
			raw := saleWith(t, "000050", func(r *iso93.FinancialRequest) {
				r.ICCData, r.Amount = tt.icc(t), tt.amount
			})
			resp, err := f.Handle(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			if got := actionOf(t, resp); got != tt.want {
				t.Fatalf("action %s, want %s", got, tt.want)
			}
			recs, err := st.Queue().Next(10)
			if err != nil {
				t.Fatal(err)
			}
			if (len(recs) == 1) != tt.stored || len(recs) > 1 {
				t.Fatalf("%d records stored, want stored=%v", len(recs), tt.stored)
			}
			if tt.stored && recs[0].Chip != tt.wantChip {
				t.Fatalf("stored chip decision %d, want %d", recs[0].Chip, tt.wantChip)
			}
		})
	}
}
