package hsm_test

import (
	"bufio"
	"crypto/des"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

type cvvVector struct {
	name              string
	cvk               []byte
	pan, exp, sc, cvv string
}

// loadCVVVectors reads testdata/cvv_vectors.txt.
func loadCVVVectors(t testing.TB) []cvvVector {
	t.Helper()
	f, err := os.Open("testdata/cvv_vectors.txt")
	if err != nil {
		t.Fatalf("open CVV vectors: %v", err)
	}
	defer f.Close()
	var out []cvvVector
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 5 {
			t.Fatalf("CVV vector line %q: want 5 fields", line)
		}
		k, err := hex.DecodeString(fs[0])
		if err != nil {
			t.Fatalf("CVV vector CVK: %v", err)
		}
		out = append(out, cvvVector{name: "vector_" + fs[4] + "_sc_" + fs[3], cvk: k, pan: fs[1], exp: fs[2], sc: fs[3], cvv: fs[4]})
	}
	if len(out) == 0 {
		t.Fatal("no CVV vectors")
	}
	return out
}

// softCVV is a pure-Go reference of the Visa CVV algorithm: single DES of
// block 1 under CVK-A, XOR block 2, TDES (A, B, A), decimalise.
func softCVV(t testing.TB, cvk []byte, pan, exp, sc string) string {
	t.Helper()
	blk, err := hsm.CVVBlock(pan, exp, sc)
	if err != nil {
		t.Fatalf("CVV block: %v", err)
	}
	a, err := des.NewCipher(cvk[:8])
	if err != nil {
		t.Fatal(err)
	}
	k3 := append(append([]byte{}, cvk...), cvk[:8]...)
	tdes, err := des.NewTripleDESCipher(k3)
	if err != nil {
		t.Fatal(err)
	}
	var x, mac [8]byte
	a.Encrypt(x[:], blk[:8])
	for i := range x {
		x[i] ^= blk[8+i]
	}
	tdes.Encrypt(mac[:], x[:])
	return hsm.DecimalizeCVV(mac, 3)
}

func TestCVVPublishedVectors(t *testing.T) {
	tok := hsmtest.Token(t)
	for _, v := range loadCVVVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			if got := softCVV(t, v.cvk, v.pan, v.exp, v.sc); got != v.cvv {
				t.Fatalf("pure-Go CVV = %s, want %s", got, v.cvv)
			}
			label := hsmtest.Label(t, "cvk")
			if err := tok.ImportCVK(label, v.cvk); err != nil {
				t.Fatalf("import CVK: %v", err)
			}
			got, err := tok.CVV(label, v.pan, v.exp, v.sc)
			if err != nil || got != v.cvv {
				t.Fatalf("token CVV = %s, %v; want %s", got, err, v.cvv)
			}
			if err := tok.VerifyCVV(label, v.pan, v.exp, v.sc, v.cvv); err != nil {
				t.Fatalf("verify the published CVV: %v", err)
			}
		})
	}
}

func TestCVVServiceCodes(t *testing.T) {
	tok := hsmtest.Token(t)
	v := loadCVVVectors(t)[1]
	label := hsmtest.Label(t, "cvk")
	if err := tok.ImportCVK(label, v.cvk); err != nil {
		t.Fatalf("import CVK: %v", err)
	}
	seen := map[string]string{}
	for _, sc := range []string{"101", "201", hsm.ServiceCodeCVV2, hsm.ServiceCodeICVV} {
		t.Run("service_code_"+sc, func(t *testing.T) {
			got, err := tok.CVV(label, v.pan, v.exp, sc)
			if err != nil {
				t.Fatalf("token CVV: %v", err)
			}
			if want := softCVV(t, v.cvk, v.pan, v.exp, sc); got != want {
				t.Fatalf("token CVV = %s, pure Go %s", got, want)
			}
			seen[sc] = got
		})
	}
	if seen[hsm.ServiceCodeCVV2] == seen[hsm.ServiceCodeICVV] && seen["101"] == seen[hsm.ServiceCodeCVV2] {
		t.Fatalf("CVV, CVV2 and iCVV all equal: service code not in the MAC")
	}
}

func TestCVVRefusals(t *testing.T) {
	tok := hsmtest.Token(t)
	v := loadCVVVectors(t)[0]
	label := hsmtest.Label(t, "cvk")
	if err := tok.ImportCVK(label, v.cvk); err != nil {
		t.Fatalf("import CVK: %v", err)
	}
	wrong := "000"
	if v.cvv == wrong {
		wrong = "001"
	}
	tests := []struct {
		name              string
		label             string
		pan, exp, sc, cvv string
		want              error
	}{
		{"wrong_value", label, v.pan, v.exp, v.sc, wrong, hsm.ErrCVV},
		{"two_digits", label, v.pan, v.exp, v.sc, v.cvv[:2], hsm.ErrCVV},
		{"other_expiry", label, v.pan, "3412", v.sc, v.cvv, nil},
		{"short_pan", label, "12345678901", v.exp, v.sc, v.cvv, hsm.ErrInput},
		{"pan_not_digits", label, "22222222A2222222", v.exp, v.sc, v.cvv, hsm.ErrInput},
		{"expiry_not_4_digits", label, v.pan, "333", v.sc, v.cvv, hsm.ErrInput},
		{"service_code_not_3_digits", label, v.pan, v.exp, "1A1", v.cvv, hsm.ErrInput},
		{"unknown_cvk", hsmtest.Label(t, "absent"), v.pan, v.exp, v.sc, v.cvv, hsm.ErrKeyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tok.VerifyCVV(tt.label, tt.pan, tt.exp, tt.sc, tt.cvv)
			if tt.name == "other_expiry" {
				// Some other expiry may collide in 3 digits; it must at
				// least compute.
				if err != nil && !errors.Is(err, hsm.ErrCVV) {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("verify = %v, want %v", err, tt.want)
			}
		})
	}
	if err := tok.ImportCVK(label, v.cvk); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("second import = %v, want ErrKeyExists", err)
	}
	if err := tok.ImportCVK(hsmtest.Label(t, "short"), v.cvk[:8]); !errors.Is(err, hsm.ErrKeyLength) {
		t.Fatalf("8-byte CVK = %v, want ErrKeyLength", err)
	}
}

func BenchmarkCVV(b *testing.B) {
	tok := hsmtest.Token(b)
	v := loadCVVVectors(b)[0]
	label := hsmtest.Label(b, "cvk")
	if err := tok.ImportCVK(label, v.cvk); err != nil {
		b.Fatalf("import CVK: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := tok.VerifyCVV(label, v.pan, v.exp, v.sc, v.cvv); err != nil {
			b.Fatal(err)
		}
	}
}
