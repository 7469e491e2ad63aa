package mac_test

import (
	"bytes"
	"crypto/cipher"
	"crypto/des"
	"errors"
	"testing"

	"github.com/posgate/posgate/p2pe/internal/vectors"
	"github.com/posgate/posgate/p2pe/mac"
)

// TestRetailTDESDUKPTVectors checks Retail against the request and response
// MACs of testdata/vectors/dukpt_tdes.txt, with the MAC keys formed here
// directly from the transaction key and the variant masks of the file.
func TestRetailTDESDUKPTVectors(t *testing.T) {
	recs := vectors.Load(t, "dukpt_tdes.txt")
	head := recs[0]
	data := []byte(head.Str(t, "MACDATA"))
	for _, r := range recs[1:] {
		t.Run("ksn_"+r.Str(t, "KSN"), func(t *testing.T) {
			tk := r.Hex(t, "TK")
			for _, m := range []struct{ mask, want string }{{"MASK_MACREQ", "MACREQ"}, {"MASK_MACRESP", "MACRESP"}} {
				mask := head.Hex(t, m.mask)
				key := make([]byte, 16)
				for i := range key {
					key[i] = tk[i] ^ mask[i]
				}
				got, err := mac.Retail(key, data)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != mac.Size {
					t.Fatalf("MAC of %d bytes", len(got))
				}
				if want := r.Hex(t, m.want); !bytes.Equal(got[:4], want) {
					t.Fatalf("%s %X, want %X", m.want, got[:4], want)
				}
			}
		})
	}
}

// reference computes MAC algorithm 3 with the standard library's CBC mode
// and TDES (K1 K2 K1) on the last block: an independent formulation.
func reference(t *testing.T, key, padded []byte) []byte {
	t.Helper()
	k1, err := des.NewCipher(key[:8])
	if err != nil {
		t.Fatal(err)
	}
	cbc := make([]byte, len(padded))
	cipher.NewCBCEncrypter(k1, make([]byte, 8)).CryptBlocks(cbc, padded)
	last := cbc[len(cbc)-8:]
	// Retail MAC = TDES-encrypt of the final chaining input.
	in := make([]byte, 8)
	k1.Decrypt(in, last) // undo the last single-DES step
	tdes, err := des.NewTripleDESCipher(append(append([]byte(nil), key...), key[:8]...))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 8)
	tdes.Encrypt(out, in)
	return out
}

func TestRetailMatchesReference(t *testing.T) {
	key := []byte("0123456789ABCDEF")
	tests := []struct {
		name   string
		data   string
		zero   string // data after padding method 1
		method string // data after padding method 2
	}{
		{"empty", "", "\x00\x00\x00\x00\x00\x00\x00\x00", "\x80\x00\x00\x00\x00\x00\x00\x00"},
		{"one_byte", "A", "A\x00\x00\x00\x00\x00\x00\x00", "A\x80\x00\x00\x00\x00\x00\x00"},
		{"one_block", "ABCDEFGH", "ABCDEFGH", "ABCDEFGH\x80\x00\x00\x00\x00\x00\x00\x00"},
		{"block_and_a_half", "ABCDEFGHIJKL", "ABCDEFGHIJKL\x00\x00\x00\x00", "ABCDEFGHIJKL\x80\x00\x00\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mac.Retail(key, []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if want := reference(t, key, []byte(tt.zero)); !bytes.Equal(got, want) {
				t.Fatalf("Retail %X, reference %X", got, want)
			}
			got2, err := mac.RetailPad2(key, []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if want := reference(t, key, []byte(tt.method)); !bytes.Equal(got2, want) {
				t.Fatalf("RetailPad2 %X, reference %X", got2, want)
			}
		})
	}
}

func TestRetailKeyLength(t *testing.T) {
	for _, n := range []int{0, 8, 15, 24} {
		if _, err := mac.Retail(make([]byte, n), []byte("x")); !errors.Is(err, mac.ErrKeyLength) {
			t.Errorf("%d-byte key: %v", n, err)
		}
	}
}
