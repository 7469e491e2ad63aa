package dukpt_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/internal/vectors"
	"github.com/posgate/posgate/p2pe/pinblock"
)

// TestAESVectorFile checks every row of testdata/vectors/dukpt_aes.txt: the
// initial key (and its derivation data) of each BDK, then per counter the
// transaction key, the AES-128 PIN, MAC and data keys, and the format 4 PIN
// block under the PIN key.
func TestAESVectorFile(t *testing.T) {
	var (
		ik   []byte
		ikid [8]byte
		head vectors.Record
		rows int
	)
	for _, r := range vectors.Load(t, "dukpt_aes.txt") {
		if r.Has("BDK") {
			head = r
			bdk := r.Hex(t, "BDK")
			copy(ikid[:], r.Hex(t, "IKID"))
			var err error
			ik, err = dukpt.AESInitialKey(bdk, ikid)
			if err != nil {
				t.Fatal(err)
			}
			if want := r.Hex(t, "IK"); !bytes.Equal(ik, want) {
				t.Fatalf("initial key %X, want %X", ik, want)
			}
			if r.Has("IKDATA") {
				d := dukpt.AESDerivationData(dukpt.UsageInitialKey, dukpt.AlgAES128, 1, dukpt.NewAESKSN(ikid, 0), 0)
				if want := r.Hex(t, "IKDATA"); !bytes.Equal(d[:], want) {
					t.Fatalf("initial key derivation data %X, want %X", d, want)
				}
			}
			continue
		}
		if ik == nil {
			t.Fatal("transaction row before any BDK record")
		}
		rows++
		t.Run(fmt.Sprintf("aes%d_counter_%s", len(ik)*8, r.Str(t, "COUNTER")), func(t *testing.T) {
			c := binary.BigEndian.Uint32(r.Hex(t, "COUNTER"))
			ksn := dukpt.NewAESKSN(ikid, c)
			tk, err := dukpt.AESTransactionKey(ik, ksn)
			if err != nil {
				t.Fatal(err)
			}
			if want := r.Hex(t, "TK"); !bytes.Equal(tk, want) {
				t.Fatalf("transaction key %X, want %X", tk, want)
			}
			for _, w := range []struct {
				name  string
				usage dukpt.KeyUsage
			}{{"PINKEY", dukpt.UsagePINEncryption}, {"MACKEY", dukpt.UsageMACGenerate}, {"DATAKEY", dukpt.UsageDataEncrypt}} {
				if !r.Has(w.name) {
					continue
				}
				k, err := dukpt.AESWorkingKey(ik, ksn, w.usage, dukpt.AlgAES128)
				if err != nil {
					t.Fatal(err)
				}
				if want := r.Hex(t, w.name); !bytes.Equal(k, want) {
					t.Fatalf("%s %X, want %X", w.name, k, want)
				}
			}
			if r.Has("PINBLOCK4") {
				k, err := dukpt.AESWorkingKey(ik, ksn, dukpt.UsagePINEncryption, dukpt.AlgAES128)
				if err != nil {
					t.Fatal(err)
				}
				var pf, af [16]byte
				copy(pf[:], head.Hex(t, "PINFIELD"))
				copy(af[:], head.Hex(t, "PANFIELD"))
				got, err := pinblock.EncipherFormat4(k, pf, af)
				if err != nil {
					t.Fatal(err)
				}
				if want := r.Hex(t, "PINBLOCK4"); !bytes.Equal(got[:], want) {
					t.Fatalf("format 4 PIN block %X, want %X", got, want)
				}
			}
		})
	}
	if rows != 7 {
		t.Fatalf("%d transaction rows, want 7", rows)
	}
}
