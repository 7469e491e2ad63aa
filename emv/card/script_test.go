package card_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

var (
	testSMI = []byte{0x1A, 0x2B, 0x3C, 0x4D, 0x5E, 0x6F, 0x70, 0x81, 0x92, 0xA3, 0xB4, 0xC5, 0xD6, 0xE7, 0xF8, 0x09}
	testSMC = []byte{0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xA9, 0xBA, 0xCB, 0xDC, 0xED, 0xFE, 0x0F, 0x10}
	blockHd = [4]byte{0x84, card.InsApplicationBlock, 0, 0}
)

// arqcOf runs a first GENERATE AC on c and returns its answer, an ARQC.
func arqcOf(t *testing.T, c *card.Card) card.Response {
	t.Helper()
	data, _ := card.DefaultCDOL1().Build(terminal(t, "BBA4CD5B"))
	r, err := c.GenerateAC(emv.ARQC, data)
	if err != nil || r.CID.Type() != emv.ARQC {
		t.Fatalf("first GENERATE AC = %v, %v; want an ARQC", r.CID.Flags(), err)
	}
	return r
}

// command returns the APDU header || Lc || data || mac.
func command(h [4]byte, data []byte, mac [8]byte) []byte {
	b := append(h[:], byte(len(data)+8))
	return append(append(b, data...), mac[:]...)
}

// softMAC is the issuer's script MAC in pure Go.
func softMAC(t *testing.T, imk []byte, pan string, psn byte, h [4]byte, r card.Response) [8]byte {
	t.Helper()
	mk, err := cryptogram.DeriveICCMasterKeyA(imk, pan, psn)
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := cryptogram.DeriveSessionKey(mk, cryptogram.SMSessionR(r.Cryptogram))
	m, err := cryptogram.ScriptMAC(sk, h, r.ATC, r.Cryptogram, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestScriptBlockFromToken: the card accepts an APPLICATION BLOCK whose
// MAC the token computed under the IMK-SMI, and then declines every
// GENERATE AC and tap with an AAC; a tampered MAC changes nothing.
func TestScriptBlockFromToken(t *testing.T) {
	tok := hsmtest.Token(t)
	smi, smc := hsmtest.Label(t, "imk-smi"), hsmtest.Label(t, "imk-smc")
	if err := tok.ImportTDES(smi, testSMI, hsm.UseDerive); err != nil {
		t.Fatal(err)
	}
	if err := tok.ImportTDES(smc, testSMC, hsm.UseDerive); err != nil {
		t.Fatal(err)
	}
	sm, err := tok.SecureMessaging(smi, smc, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	for _, tampered := range []bool{true, false} {
		name := "valid_mac"
		if tampered {
			name = "tampered_mac"
		}
		t.Run(name, func(t *testing.T) {
			c := newCard(t, card.Config{ATC: 0x20, IMKSMI: testSMI, IMKSMC: testSMC})
			v, psn := panOf(c), c.Records()[1].Value[0]
			r := arqcOf(t, c)
			mac, err := sm.ScriptMAC(hsm.ScriptCommand{PAN: v, PSN: psn, ATC: r.ATC, ARQC: r.Cryptogram, Header: blockHd})
			if err != nil {
				t.Fatalf("token script MAC: %v", err)
			}
			if want := softMAC(t, testSMI, v, psn, blockHd, r); mac != want {
				t.Fatalf("token MAC %X, pure Go %X", mac, want)
			}
			wantSW := card.SWOK
			if tampered {
				mac[3] ^= 0x40
				wantSW = card.SWSecureMessaging
			}
			if sw := c.ScriptCommand(command(blockHd, nil, mac)); sw != wantSW {
				t.Fatalf("APPLICATION BLOCK = %04X, want %04X", sw, wantSW)
			}
			if c.Blocked() != !tampered {
				t.Fatalf("blocked = %v after a %s", c.Blocked(), name)
			}
			data, _ := card.DefaultCDOL1().Build(terminal(t, "01020304"))
			next, err := c.GenerateAC(emv.TC, data)
			if err != nil {
				t.Fatal(err)
			}
			wantType := emv.AAC
			if tampered {
				wantType = emv.ARQC
			}
			if next.CID.Type() != wantType {
				t.Fatalf("next GENERATE AC = %v, want %v", next.CID.Flags(), wantType)
			}
			pdol, _ := card.DefaultPDOL().Build(terminal(t, "01020305"))
			tap, err := c.Tap(pdol)
			if err != nil || tap.CID.Type() != wantType {
				t.Fatalf("tap = %v, %v; want %v", tap.CID.Flags(), err, wantType)
			}

			// The SMC session key is the token's too.
			if c.Blocked() {
				return // a blocked card makes no ARQC for a script to answer
			}
			r = arqcOf(t, c)
			ct, err := sm.EncipherScriptData(v, psn, r.Cryptogram, []byte("new PIN block"))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := c.ScriptDecipher(ct); err != nil || string(got) != "new PIN block" {
				t.Fatalf("card deciphers %q, %v", got, err)
			}
		})
	}
}

func TestScriptCommandRefusals(t *testing.T) {
	c := newCard(t, card.Config{IMKSMI: testSMI})
	pan, psn := panOf(c), c.Records()[1].Value[0]
	if sw := c.ScriptCommand(command(blockHd, nil, [8]byte{})); sw != card.SWConditions {
		t.Fatalf("before any ARQC: %04X, want 6985", sw)
	}
	old := arqcOf(t, c)
	oldMAC := softMAC(t, testSMI, pan, psn, blockHd, old)
	r := arqcOf(t, c)
	good := softMAC(t, testSMI, pan, psn, blockHd, r)
	unblock := [4]byte{0x84, card.InsApplicationUnblock, 0, 0}
	tests := []struct {
		name string
		apdu []byte
		want uint16
	}{
		{"short", []byte{0x84, 0x1E, 0, 0}, card.SWWrongLength},
		{"lc_too_long", append(command(blockHd, nil, good), 1, 2), card.SWWrongLength},
		{"lc_short_of_mac", []byte{0x84, 0x1E, 0, 0, 4, 1, 2, 3, 4}, card.SWWrongLength},
		{"class_00", command([4]byte{0x00, 0x1E, 0, 0}, nil, good), card.SWCLANotSupported},
		{"put_data", command([4]byte{0x84, 0xDA, 0, 0}, nil, good), card.SWINSNotSupported},
		{"p1p2", command([4]byte{0x84, 0x1E, 1, 0}, nil, good), card.SWWrongP1P2},
		{"mac_of_previous_arqc", command(blockHd, nil, oldMAC), card.SWSecureMessaging},
		{"block_mac_on_unblock", command(unblock, nil, good), card.SWSecureMessaging},
		{"mac_over_other_data", command(blockHd, []byte{1}, good), card.SWSecureMessaging},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if sw := c.ScriptCommand(tc.apdu); sw != tc.want || c.Blocked() {
				t.Fatalf("%X = %04X blocked %v, want %04X and not blocked", tc.apdu, sw, c.Blocked(), tc.want)
			}
		})
	}
	// With Le, and then APPLICATION UNBLOCK.
	if sw := c.ScriptCommand(append(command(blockHd, nil, good), 0)); sw != card.SWOK || !c.Blocked() {
		t.Fatalf("block with Le = %04X blocked %v", sw, c.Blocked())
	}
	if sw := c.ScriptCommand(command(unblock, nil, softMAC(t, testSMI, pan, psn, unblock, r))); sw != card.SWOK || c.Blocked() {
		t.Fatalf("unblock = %04X blocked %v", sw, c.Blocked())
	}
	// A card without secure messaging keys refuses every command.
	plain := newCard(t, card.Config{})
	arqcOf(t, plain)
	if sw := plain.ScriptCommand(command(blockHd, nil, good)); sw != card.SWConditions {
		t.Fatalf("card without IMK-SMI: %04X, want 6985", sw)
	}
}

func TestRunScript(t *testing.T) {
	c := newCard(t, card.Config{IMKSMI: testSMI})
	pan, psn := panOf(c), c.Records()[1].Value[0]
	r := arqcOf(t, c)
	good := command(blockHd, nil, softMAC(t, testSMI, pan, psn, blockHd, r))
	bad := slices.Clone(good)
	bad[len(bad)-1] ^= 1
	script := func(cmds ...[]byte) tlv.TLV {
		ch := []tlv.TLV{tlv.New(tlv.Tag(0x9F18), []byte{0, 0, 0, 1})}
		for _, x := range cmds {
			ch = append(ch, tlv.New(tags.IssuerScriptCommand, x))
		}
		return tlv.TLV{Tag: tags.IssuerScript2, Children: ch}
	}
	sws, err := c.RunScript(script(bad, good))
	if err != nil || !slices.Equal(sws, []uint16{card.SWSecureMessaging}) || c.Blocked() {
		t.Fatalf("bad then good = %04X, %v, blocked %v; want the first only, 6988", sws, err, c.Blocked())
	}
	sws, err = c.RunScript(script(good))
	if err != nil || !slices.Equal(sws, []uint16{card.SWOK}) || !c.Blocked() {
		t.Fatalf("good = %04X, %v, blocked %v", sws, err, c.Blocked())
	}
	if _, err := c.RunScript(tlv.New(tags.IssuerAuthenticationData, make([]byte, 10))); !errors.Is(err, card.ErrScript) {
		t.Fatalf("tag 91 as a script: %v, want ErrScript", err)
	}
}

// FuzzScriptCommand: any APDU answers a status word, and the card is
// blocked only by an APPLICATION BLOCK whose MAC verifies.
func FuzzScriptCommand(f *testing.F) {
	c := newCard(f, card.Config{IMKSMI: testSMI})
	data, _ := card.DefaultCDOL1().Build(terminal(f, "BBA4CD5B"))
	r, err := c.GenerateAC(emv.ARQC, data)
	if err != nil {
		f.Fatal(err)
	}
	mk, _ := cryptogram.DeriveICCMasterKeyA(testSMI, panOf(c), c.Records()[1].Value[0])
	sk, _ := cryptogram.DeriveSessionKey(mk, cryptogram.SMSessionR(r.Cryptogram))
	good, _ := cryptogram.ScriptMAC(sk, blockHd, r.ATC, r.Cryptogram, nil)
	f.Add(command(blockHd, nil, good))
	f.Add(command(blockHd, []byte{1, 2}, good))
	f.Add([]byte{0x84, 0x1E, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, apdu []byte) {
		sw := c.ScriptCommand(apdu)
		if sw == card.SWOK {
			if len(apdu) < 13 || apdu[0] != 0x84 || apdu[2] != 0 || apdu[3] != 0 {
				t.Fatalf("%X accepted", apdu)
			}
			lc := int(apdu[4])
			err := cryptogram.VerifyScriptMAC(sk, [4]byte(apdu[:4]), r.ATC, r.Cryptogram, apdu[5:5+lc-8], [8]byte(apdu[5+lc-8:5+lc]))
			if err != nil {
				t.Fatalf("%X accepted without a valid MAC", apdu)
			}
			if c.Blocked() != (apdu[1] == card.InsApplicationBlock) {
				t.Fatalf("%X accepted, blocked %v", apdu, c.Blocked())
			}
		}
		if !bytes.Equal(apdu, command(blockHd, nil, good)) && sw == card.SWOK && apdu[1] == card.InsApplicationBlock && len(apdu) == 13 {
			t.Fatalf("%X is not the block command yet accepted", apdu)
		}
	})
}

// panOf returns the card's PAN digits from its 5A record.
func panOf(c *card.Card) string {
	x, _ := tlv.Find(c.Records(), tags.PAN)
	var b []byte
	for _, v := range x.Value {
		for _, d := range []byte{v >> 4, v & 0xF} {
			if d < 10 {
				b = append(b, '0'+d)
			}
		}
	}
	return string(b)
}
