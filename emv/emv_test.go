package emv_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/posgate/posgate/emv"
)

func TestTVRFlags(t *testing.T) {
	tests := []struct {
		name string
		tvr  emv.TVR
		want []string
	}{
		{"clear", emv.TVR{}, nil},
		{"typical_online", emv.TVR{0x00, 0x00, 0x04, 0x80, 0x00}, []string{"online PIN entered", "transaction exceeds floor limit"}},
		{"oda_not_performed_new_card", emv.TVR{0x80, 0x08, 0x00, 0x00, 0x40}, []string{"offline data authentication was not performed", "new card", "issuer authentication failed"}},
		{"rfu_bits_ignored", emv.TVR{0x01, 0x07, 0x03, 0x07, 0x03}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.tvr.Flags(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Flags = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTVRSetHas(t *testing.T) {
	var tvr emv.TVR
	tvr.Set(emv.TVRExpiredApplication)
	tvr.Set(emv.TVRRelayTimeLimitsExceeded)
	if tvr != (emv.TVR{0, 0x40, 0, 0, 0x04}) {
		t.Fatalf("TVR = %X", tvr)
	}
	if !tvr.Has(emv.TVRExpiredApplication) || tvr.Has(emv.TVRNewCard) {
		t.Fatal("Has disagrees with Set")
	}
	var tsi emv.TSI
	tsi.Set(emv.TSICardRiskManagement)
	tsi.Set(emv.TVRExpiredApplication) // byte 2 exists: sets 0x40 there
	if tsi != (emv.TSI{0x20, 0x40}) {
		t.Fatalf("TSI = %X", tsi)
	}
	tsi.Set(emv.TVRDefaultTDOLUsed) // byte 5: out of range, ignored
	if tsi != (emv.TSI{0x20, 0x40}) {
		t.Fatalf("TSI changed by an out-of-range bit: %X", tsi)
	}
}

func TestOtherFlags(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"tsi", emv.TSI{0xE8, 0x00}.Flags(), []string{"offline data authentication was performed", "cardholder verification was performed", "card risk management was performed", "terminal risk management was performed"}},
		{"aip", emv.AIP{0x39, 0x00}.Flags(), []string{"DDA supported", "cardholder verification is supported", "terminal risk management is to be performed", "CDA supported"}},
		{"aip_contactless", emv.AIP{0x19, 0x80}.Flags(), []string{"cardholder verification is supported", "terminal risk management is to be performed", "CDA supported", "EMV mode is supported (contactless)"}},
		{"auc", emv.AUC{0xFF, 0x00}.Flags()[6:], []string{"valid at ATMs", "valid at terminals other than ATMs"}},
		{"cid_arqc", emv.CID(0x80).Flags(), []string{"ARQC"}},
		{"cid_aac_advice", emv.CID(0x0A).Flags(), []string{"AAC", "advice required", "PIN try limit exceeded"}},
		{"cid_tc", emv.CID(0x40).Flags(), []string{"TC"}},
		{"cvm_results", emv.CVMResults{0x42, 0x03, 0x00}.Flags(), []string{"method: enciphered PIN verified online", "condition: if terminal supports the CVM", "result: unknown"}},
		{"cvm_results_signature", emv.CVMResults{0x1E, 0x03, 0x00}.Flags()[:1], []string{"method: signature (paper)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Fatalf("Flags = %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestCVMList(t *testing.T) {
	in := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0x03, 0x1E, 0x03, 0x1F, 0x03}
	l, err := emv.ParseCVMList(in)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	want := []emv.CVMRule{{emv.CVMOnlinePIN, true, 0x03}, {emv.CVMSignature, false, 0x03}, {emv.CVMNoCVMRequired, false, 0x03}}
	if !reflect.DeepEqual(l.Rules, want) {
		t.Fatalf("rules = %v", l.Rules)
	}
	if !bytes.Equal(l.Encode(), in) {
		t.Fatalf("Encode = %X, want %X", l.Encode(), in)
	}
	for _, bad := range [][]byte{nil, make([]byte, 9), make([]byte, 11)} {
		if _, err := emv.ParseCVMList(bad); !errors.Is(err, emv.ErrCVMList) {
			t.Fatalf("parse %d bytes: %v", len(bad), err)
		}
	}
}

func TestMemoryATCGuard(t *testing.T) {
	tests := []struct {
		name string
		seq  []uint16
		last error
	}{
		{"increasing", []uint16{1, 2, 5}, nil},
		{"replayed", []uint16{7, 7}, emv.ErrATCReplayed},
		{"regressed", []uint16{9, 8}, emv.ErrATCRegressed},
		{"jump_over_gap", []uint16{1, 200}, emv.ErrATCJump},
		{"jump_at_gap", []uint16{1, 101}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := &emv.MemoryATCGuard{MaxGap: 100}
			var err error
			for i, atc := range tc.seq {
				err = g.Accept(context.Background(), "card-a", atc)
				if i < len(tc.seq)-1 && err != nil {
					t.Fatalf("accept %d: %v", atc, err)
				}
			}
			if !errors.Is(err, tc.last) || (tc.last == nil && err != nil) {
				t.Fatalf("last accept = %v, want %v", err, tc.last)
			}
			// Another card is independent.
			if err := g.Accept(context.Background(), "card-b", 1); err != nil {
				t.Fatalf("other card: %v", err)
			}
		})
	}
}

func TestMemoryATCGuardRefusedNotRecorded(t *testing.T) {
	g := &emv.MemoryATCGuard{}
	ctx := context.Background()
	for _, atc := range []uint16{10, 3} {
		_ = g.Accept(ctx, "c", atc)
	}
	if err := g.Accept(ctx, "c", 11); err != nil {
		t.Fatalf("11 after 10 and a refused 3: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.Accept(cctx, "c", 12); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

// TestMemoryATCGuardConcurrent presents the same ATC from many goroutines:
// exactly one wins.
func TestMemoryATCGuardConcurrent(t *testing.T) {
	g := &emv.MemoryATCGuard{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 16 {
		wg.Go(func() {
			if g.Accept(context.Background(), "c", 42) == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d goroutines accepted the same ATC, want 1", wins)
	}
}
