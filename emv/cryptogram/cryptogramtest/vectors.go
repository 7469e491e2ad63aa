// Package cryptogramtest loads the EMV cryptogram known-answer vectors of
// testdata/emv/cryptogram_vectors.txt for the tests of emv/cryptogram,
// hsm and emv/card, so every implementation is checked against the same
// file.
package cryptogramtest

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Vector is one row of the vector file. Optional byte fields are nil when
// the file has "-".
type Vector struct {
	Name     string
	IMK      []byte
	PAN      string
	PSN      byte
	ICCMKKCV []byte // 2 bytes
	R        [8]byte
	SKKCV    []byte // 2 bytes
	Data     []byte
	ARQC     [8]byte
	ARPC1MK  []byte // ARPC method 1, ARC 0000, keyed with the ICC MK
	ARPC1SK  []byte // ARPC method 1, ARC 0000, keyed with the session key
	CSU      []byte // 4 bytes, for ARPC method 2
	Prop     []byte // proprietary authentication data for ARPC method 2
	ARPC2    []byte // 4 bytes
}

// Path returns the vector file's path.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "emv", "cryptogram_vectors.txt")
}

// Load reads the vector file, failing the test on any error.
func Load(t testing.TB) []Vector {
	t.Helper()
	f, err := os.Open(Path())
	if err != nil {
		t.Fatalf("open EMV vectors: %v", err)
	}
	defer f.Close()
	var out []Vector
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		fs := strings.Fields(s)
		if len(fs) != 14 {
			t.Fatalf("EMV vectors line %d: %d fields, want 14", line, len(fs))
		}
		h := func(i int) []byte {
			if fs[i] == "-" {
				return nil
			}
			b, err := hex.DecodeString(fs[i])
			if err != nil {
				t.Fatalf("EMV vectors line %d field %d: %v", line, i+1, err)
			}
			return b
		}
		v := Vector{Name: fs[0], IMK: h(1), PAN: fs[2], ICCMKKCV: h(4), SKKCV: h(6), Data: h(7),
			ARPC1MK: h(9), ARPC1SK: h(10), CSU: h(11), Prop: h(12), ARPC2: h(13)}
		v.PSN = h(3)[0]
		copy(v.R[:], h(5))
		copy(v.ARQC[:], h(8))
		if v.Prop == nil && v.ARPC2 != nil {
			v.Prop = []byte{}
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read EMV vectors: %v", err)
	}
	if len(out) == 0 {
		t.Fatal("EMV vectors: file has no rows")
	}
	return out
}
