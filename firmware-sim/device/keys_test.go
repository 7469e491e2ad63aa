package device_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/firmware-sim/device"
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
			k, err := device.LoadIMKComponents(write(tc.name+".json", tc.body))
			if !tc.ok {
				if !errors.Is(err, device.ErrBadKeys) {
					t.Fatalf("err %v, want ErrBadKeys", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bundle := device.Keys{TerminalID: "T0000001", InitialKey: make([]byte, 16), FingerprintKey: make([]byte, 32), Issuer: k}
			p := filepath.Join(dir, tc.name+"-bundle.json")
			if err := device.SaveKeys(p, bundle); err != nil {
				t.Fatal(err)
			}
			got, err := device.LoadKeys(p)
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
	smi, err := device.LoadIssuerKeyComponents("IMK-SMI", write("smi.json", `{"label":"imk-smi","components":["`+c1+`","`+c2+`"],"kcv":"08D7"}`))
	if err != nil {
		t.Fatal(err)
	}
	smc, err := device.LoadIssuerKeyComponents("IMK-SMC", write("smc.json", `{"components":["`+c2+`","`+c2+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(smc, make([]byte, 16)) {
		t.Fatal("two equal components did not XOR to zero")
	}
	if _, err := device.LoadIssuerKeyComponents("IMK-SMI", write("bad.json", `{"components":["`+c1+`","`+c2+`"],"kcv":"FFFF"}`)); !errors.Is(err, device.ErrBadKeys) || !strings.Contains(err.Error(), "IMK-SMI") {
		t.Fatalf("wrong KCV: err %v, want ErrBadKeys naming the IMK-SMI", err)
	}
	base := device.Keys{TerminalID: "T0000001", InitialKey: make([]byte, 16), FingerprintKey: make([]byte, 32)}
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
			k.Issuer = &device.IssuerTestKeys{IMKAC: bytes.Repeat([]byte{0x4B}, 16), IMKSMI: tc.smi, IMKSMC: tc.smc}
			p := filepath.Join(dir, tc.name+"-bundle.json")
			err := device.SaveKeys(p, k)
			if !tc.ok {
				if !errors.Is(err, device.ErrBadKeys) {
					t.Fatalf("SaveKeys err %v, want ErrBadKeys", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := device.LoadKeys(p)
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
			_, err := device.LoadKeys(p)
			if !errors.Is(err, device.ErrBadKeys) {
				t.Fatalf("LoadKeys err %v, want ErrBadKeys", err)
			}
			if strings.Contains(strings.ToUpper(err.Error()), c2) {
				t.Fatal("the error carries key bytes")
			}
		})
	}
}
