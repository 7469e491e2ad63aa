package keybundle_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/p2pe/keybundle"
)

func TestIssuerTestKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// 0123456789ABCDEFFEDCBA9876543210 split in two; KCV 08D7 (docs/emv.md).
	const c1, c2 = "00000000000000000000000000000000", "0123456789ABCDEFFEDCBA9876543210"
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"kcv_matches", `{"label":"imk-ac","components":["` + c1 + `","` + c2 + `"],"kcv":"08D7"}`, true},
		{"no_kcv", `{"components":["` + c1 + `","` + c2 + `"]}`, true},
		{"kcv_wrong", `{"components":["` + c1 + `","` + c2 + `"],"kcv":"0000"}`, false},
		{"one_component", `{"components":["` + c2 + `"]}`, false},
		{"short_component", `{"components":["0011","` + c2 + `"]}`, false},
		{"not_json", `{`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := keybundle.LoadIMKComponents(write(tc.name+".json", tc.body))
			if !tc.ok {
				if !errors.Is(err, keybundle.ErrBadKeys) {
					t.Fatalf("err %v, want ErrBadKeys", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bundle := keybundle.Keys{TerminalID: "T0000001", InitialKey: make([]byte, 16), FingerprintKey: make([]byte, 32), Issuer: k}
			p := filepath.Join(dir, tc.name+"-bundle.json")
			if err := keybundle.Save(p, bundle); err != nil {
				t.Fatal(err)
			}
			got, err := keybundle.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if got.Issuer == nil || !bytes.Equal(got.Issuer.IMKAC, k.IMKAC) {
				t.Fatal("the bundle's issuer test keys did not round-trip")
			}
		})
	}
}

// TestIssuerSecureMessagingKeys: the IMK-SMI and IMK-SMC components files
// assemble like the IMK-AC's and round-trip through a bundle (imk_smi,
// imk_smc); a bundle without them loads with none; a key of another
// length or not hex is refused.
func TestIssuerSecureMessagingKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const c1, c2 = "00000000000000000000000000000000", "0123456789ABCDEFFEDCBA9876543210"
	smi, err := keybundle.LoadIssuerKeyComponents("IMK-SMI", write("smi.json", `{"label":"imk-smi","components":["`+c1+`","`+c2+`"],"kcv":"08D7"}`))
	if err != nil {
		t.Fatal(err)
	}
	smc, err := keybundle.LoadIssuerKeyComponents("IMK-SMC", write("smc.json", `{"components":["`+c2+`","`+c2+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(smc, make([]byte, 16)) {
		t.Fatal("two equal components did not XOR to zero")
	}
	if _, err := keybundle.LoadIssuerKeyComponents("IMK-SMI", write("bad.json", `{"components":["`+c1+`","`+c2+`"],"kcv":"FFFF"}`)); !errors.Is(err, keybundle.ErrBadKeys) || !strings.Contains(err.Error(), "IMK-SMI") {
		t.Fatalf("wrong KCV: err %v, want ErrBadKeys naming the IMK-SMI", err)
	}
	base := keybundle.Keys{TerminalID: "T0000001", InitialKey: make([]byte, 16), FingerprintKey: make([]byte, 32)}
	for _, tc := range []struct {
		name     string
		smi, smc []byte
		ok       bool
	}{
		{"both", smi, smc, true},
		{"none", nil, nil, true},
		{"smi_only", smi, nil, true},
		{"short_smi", smi[:8], smc, false},
		{"long_smc", smi, append(append([]byte(nil), smc...), 0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := base
			k.Issuer = &keybundle.IssuerTestKeys{IMKAC: bytes.Repeat([]byte{0x4B}, 16), IMKSMI: tc.smi, IMKSMC: tc.smc}
			p := filepath.Join(dir, tc.name+"-bundle.json")
			err := keybundle.Save(p, k)
			if !tc.ok {
				if !errors.Is(err, keybundle.ErrBadKeys) {
					t.Fatalf("SaveKeys err %v, want ErrBadKeys", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := keybundle.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Issuer.IMKSMI, tc.smi) || !bytes.Equal(got.Issuer.IMKSMC, tc.smc) ||
				(tc.smi == nil) != (got.Issuer.IMKSMI == nil) || (tc.smc == nil) != (got.Issuer.IMKSMC == nil) {
				t.Fatal("the bundle's secure messaging keys did not round-trip")
			}
		})
	}
	for _, tc := range []struct{ name, issuer string }{
		{"smi_not_hex", `{"imk_ac":"` + c2 + `","imk_smi":"zz"}`},
		{"smc_short", `{"imk_ac":"` + c2 + `","imk_smc":"0011"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.name+".json", `{"terminal_id":"T0000001","ikid":"0000000100000001","initial_key":"`+c2+`","fingerprint_key":"`+c2+c2+`","issuer_test_keys":`+tc.issuer+`}`)
			_, err := keybundle.Load(p)
			if !errors.Is(err, keybundle.ErrBadKeys) {
				t.Fatalf("LoadKeys err %v, want ErrBadKeys", err)
			}
			if strings.Contains(strings.ToUpper(err.Error()), c2) {
				t.Fatal("the error carries key bytes")
			}
		})
	}
}

// TestMarshalGolden pins the wire form hsmctl writes and terminals load.
func TestMarshalGolden(t *testing.T) {
	k := keybundle.Keys{TerminalID: "T0000001", IKID: [8]byte{0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56},
		InitialKey: bytes.Repeat([]byte{0xAB}, 16), FingerprintKey: bytes.Repeat([]byte{0x01}, 32),
		Issuer: &keybundle.IssuerTestKeys{IMKAC: bytes.Repeat([]byte{0x4B}, 16)}}
	const want = `{
  "terminal_id": "T0000001",
  "ikid": "1234567890123456",
  "initial_key": "abababababababababababababababab",
  "fingerprint_key": "0101010101010101010101010101010101010101010101010101010101010101",
  "issuer_test_keys": {
    "imk_ac": "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b"
  }
}
`
	got, err := keybundle.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", got, want)
	}
	back, err := keybundle.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.TerminalID != k.TerminalID || back.IKID != k.IKID || !bytes.Equal(back.InitialKey, k.InitialKey) ||
		!bytes.Equal(back.FingerprintKey, k.FingerprintKey) || !bytes.Equal(back.Issuer.IMKAC, k.Issuer.IMKAC) {
		t.Fatal("Parse(Marshal(k)) is not k")
	}
}

// FuzzParse: a bundle that parses marshals to a canonical form that parses
// back to the same bundle, and errors never carry key bytes.
func FuzzParse(f *testing.F) {
	const c2 = "0123456789abcdeffedcba9876543210"
	f.Add([]byte(`{"terminal_id":"T0000001","ikid":"0000000100000001","initial_key":"` + c2 + `","fingerprint_key":"` + c2 + c2 + `"}`))
	f.Add([]byte(`{"terminal_id":"T0000001","ikid":"0000000100000001","initial_key":"` + c2 + c2 + `","fingerprint_key":"` + c2 + c2 +
		`","issuer_test_keys":{"imk_ac":"` + c2 + `","imk_smi":"` + c2 + `"}}`))
	f.Add([]byte(`{"ikid":"zz"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := keybundle.Parse(b)
		if err != nil {
			if !errors.Is(err, keybundle.ErrBadKeys) {
				t.Fatalf("Parse error %v does not wrap ErrBadKeys", err)
			}
			return
		}
		out, err := keybundle.Marshal(k)
		if err != nil {
			t.Fatalf("Marshal of a parsed bundle: %v", err)
		}
		back, err := keybundle.Parse(out)
		if err != nil {
			t.Fatalf("Parse of a marshalled bundle: %v", err)
		}
		again, err := keybundle.Marshal(back)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("marshalled form is not canonical (%v)", err)
		}
	})
}
