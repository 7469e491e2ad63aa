package device_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/p2pe/pinblock"
	"github.com/posgate/posgate/protocol/iso93"
)

func testKeys() keybundle.Keys {
	return keybundle.Keys{TerminalID: "T0000007", IKID: [8]byte{1, 1, 2, 3, 5, 8, 13, 21},
		InitialKey: bytes.Repeat([]byte{0x42}, 16), FingerprintKey: bytes.Repeat([]byte{0x24}, 32)}
}

func TestBuildFinancial(t *testing.T) {
	visa, _ := deck.Lookup("visa-ok")
	tests := []struct {
		name  string
		read  device.Read
		proc  string
		entry byte
		cvm   byte
	}{
		{"chip_with_pin", device.Read{Card: visa, Entry: device.EntryChip, PIN: "4321"}, "", '5', '1'},
		{"default_entry_is_chip", device.Read{Card: visa}, "", '5', '5'},
		{"magstripe", device.Read{Card: visa, Entry: device.EntryMagstripe}, iso93.ProcessingRefund, '2', '5'},
		{"contactless_pin", device.Read{Card: visa, Entry: device.EntryContactless, PIN: "0000"}, "", 'A', '1'},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term, err := device.New(testKeys(), device.Options{})
			if err != nil {
				t.Fatal(err)
			}
			raw, res, err := term.BuildFinancial(device.Financial{Read: tt.read, ProcessingCode: tt.proc, Amount: 999})
			if err != nil {
				t.Fatal(err)
			}
			var req iso93.FinancialRequest
			if err := iso93.UnpackInto(raw, &req); err != nil {
				t.Fatal(err)
			}
			wantProc := tt.proc
			if wantProc == "" {
				wantProc = iso93.ProcessingPurchase
			}
			if req.PAN != "" || bytes.Contains(raw, []byte(visa.PAN)) {
				t.Fatal("the 1200 carries the clear PAN")
			}
			if req.POSDataCode[6] != tt.entry || req.POSDataCode[7] != tt.cvm || req.ProcessingCode != wantProc || req.Amount != 999 || req.Currency != "392" {
				t.Fatalf("DE 22 %s, DE 3 %s, DE 4 %d, DE 49 %s", req.POSDataCode, req.ProcessingCode, req.Amount, req.Currency)
			}
			if res.STAN != req.STAN || res.MaskedPAN != visa.Masked() || res.LocalTime != req.LocalTime || res.Fingerprint != req.Fingerprint {
				t.Fatalf("result %+v does not describe the request", res)
			}
			if tt.read.PIN == "" {
				if req.PINBlock != nil || res.PINEntered {
					t.Fatal("a PIN block without a PIN")
				}
				return
			}
			ksn, _ := dukpt.ParseAESKSN(req.KSN)
			pk, _ := dukpt.AESWorkingKey(testKeys().InitialKey, ksn, dukpt.UsagePINEncryption, dukpt.AlgAES128)
			pin, err := pinblock.DecryptFormat4(pk, req.PINBlock, visa.PAN)
			want, _ := pinblock.ParsePIN(tt.read.PIN)
			if err != nil || pin != want {
				t.Fatalf("DE 125 does not hold the keyed PIN: %v", err)
			}
		})
	}
}

func TestBuildFinancialRefusals(t *testing.T) {
	visa, _ := deck.Lookup("visa-ok")
	term, err := device.New(testKeys(), device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    device.Financial
	}{
		{"zero_amount", device.Financial{Read: device.Read{Card: visa}}},
		{"short_pin", device.Financial{Read: device.Read{Card: visa, PIN: "12"}, Amount: 1}},
		{"bad_card", device.Financial{Read: device.Read{Card: deck.Card{PAN: "4111111111111112", Expiry: "3012"}}, Amount: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := term.BuildFinancial(tt.f); err == nil {
				t.Fatal("BuildFinancial accepted it")
			}
		})
	}
}

func TestStatePersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "T0000007.state")
	visa, _ := deck.Lookup("visa-ok")
	term, err := device.New(testKeys(), device.Options{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	_, res, err := term.BuildFinancial(device.Financial{Read: device.Read{Card: visa}, Amount: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := term.SaveLast(json.RawMessage(`{"ref":"S1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := term.SaveLast(json.RawMessage(`{"ref":`)); err == nil {
		t.Fatal("SaveLast accepted a broken record")
	}
	rev, err := term.BuildReversal(res, iso93.ReasonTimeoutReversal)
	if err != nil {
		t.Fatal(err)
	}
	var r iso93.Reversal
	if err := iso93.UnpackInto(rev, &r); err != nil {
		t.Fatal(err)
	}
	od, err := iso93.ParseOriginalData(r.OriginalData)
	if err != nil || od.STAN != res.STAN || od.MTI != "1200" || r.STAN != "000002" || r.MaskedPAN != visa.Masked() {
		t.Fatalf("1420: original %+v (%v), STAN %s", od, err, r.STAN)
	}

	again, err := device.New(testKeys(), device.Options{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := again.Counter(); c != 1 || string(again.Last()) != `{"ref":"S1"}` {
		t.Fatalf("after restart: counter %d, last %s", c, again.Last())
	}
	_, res2, err := again.BuildFinancial(device.Financial{Read: device.Read{Card: visa}, Amount: 5})
	if err != nil || res2.STAN != "000003" || res2.KSN == res.KSN {
		t.Fatalf("after restart: STAN %s, KSN reused %v, %v", res2.STAN, res2.KSN == res.KSN, err)
	}
}
