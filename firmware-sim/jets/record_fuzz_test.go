package jets

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/posgate/posgate/protocol/iso93"
)

// testAdvice is an offline approval's 1220 (STAN 000007) from terminal
// id, with a made-up card-data block.
func testAdvice(id string) ([]byte, error) {
	return iso93.Pack(&iso93.Advice{
		Trace: iso93.Trace{TransmissionTime: "0101120000", STAN: "000007", LocalTime: "250101120000", FunctionCode: iso93.FunctionPreviousApproval,
			ReasonCode: iso93.ReasonICCProcessed, AcquirerID: "99000001", TerminalID: id, MerchantID: "MERCHANT0000001", IdempotencyKey: id + "-key-1"},
		Payment:      iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: 1000, POSDataCode: "510101551001", Currency: "392"},
		Card:         iso93.Card{CardData: bytes.Repeat([]byte{0xA5}, 32), KSN: make([]byte, 12), Fingerprint: "00112233445566778899aabbccddeeff", MaskedPAN: "476173******0119"},
		ApprovalCode: "Y10007",
	}, iso93.MTIAdvice)
}

// FuzzParseRecord feeds parseRecord arbitrary terminal records (what a
// state file's last_txn holds). A record it accepts must survive being
// written and read again unchanged, and each queued advice must repeat as
// a 1221 with the same data elements (the same idempotency key).
func FuzzParseRecord(f *testing.F) {
	adv, err := testAdvice("T0000042")
	if err != nil {
		f.Fatal(err)
	}
	v2, err := json.Marshal(stored{Version: recordVersion, Last: &lastRecord{Command: 0x10, Ref: "S-7", Outcome: 1, STAN: "000007"},
		Advices: []pendingAdvice{{STAN: "000007", Ref: "S-7", Time: "20250101120000", Advice: adv}}})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := parseRecord(v2, "T0000042"); err != nil {
		f.Fatalf("the version 2 seed is refused: %v", err)
	}
	f.Add(v2)
	f.Add([]byte(`{"last":{"command":16,"ref":"S-1","outcome":1},"journal":[{"kind":16,"ref":"S-1","time":"20250101120000","request":{"STAN":"000001"}}]}`))
	f.Add([]byte(`{"version":3}`))
	f.Add([]byte(`{"version":2,"advices":[{"stan":"000001","advice":"AAAA"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := parseRecord(raw, "T0000042")
		if err != nil {
			return
		}
		b1, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("marshal an accepted record: %v", err)
		}
		st2, err := parseRecord(b1, "T0000042")
		if err != nil {
			t.Fatalf("an accepted record, written, is refused: %v", err)
		}
		if b2, _ := json.Marshal(st2); !bytes.Equal(b1, b2) {
			t.Fatalf("record changed on a round trip:\n%s\n%s", b1, b2)
		}
		for _, p := range st.Advices {
			rep, err := repeatAdvice(p.Advice)
			if err != nil {
				t.Fatalf("queued advice STAN %s does not repeat: %v", p.STAN, err)
			}
			var a, b iso93.Advice
			if err := iso93.UnpackInto(p.Advice, &a); err != nil {
				t.Fatal(err)
			}
			if err := iso93.UnpackInto(rep, &b); err != nil {
				t.Fatalf("1221 does not unpack: %v", err)
			}
			if h, _ := iso93.Peek(rep); h.MTI != iso93.MTIAdviceRepeat || b.IdempotencyKey != a.IdempotencyKey || b.STAN != a.STAN ||
				!bytes.Equal(b.CardData, a.CardData) || !bytes.Equal(b.ICCData, a.ICCData) || b.Amount != a.Amount {
				t.Fatalf("1221 of STAN %s differs from its 1220 beyond the MTI", p.STAN)
			}
		}
	})
}

// TestParseRecordOtherTerminal: a record whose queued advice is another
// terminal's (a state file copied between terminals) is refused.
func TestParseRecordOtherTerminal(t *testing.T) {
	adv, err := testAdvice("T0000099")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(stored{Version: recordVersion, Advices: []pendingAdvice{{STAN: "000007", Advice: adv}}})
	if _, err := parseRecord(raw, "T0000099"); err != nil {
		t.Fatalf("its own terminal: %v", err)
	}
	if _, err := parseRecord(raw, "T0000042"); err == nil {
		t.Fatal("another terminal's advice queue was accepted")
	}
}
