package device_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
