package cryptogram_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/posgate/posgate/emv/cryptogram"
)

// TestScriptMACThirdParty checks the script command MAC against the
// example of another, independent implementation (pyemv's
// sm.generate_command_mac, EMV 4.3 Book 2 9.2.3): a PIN UNBLOCK header
// 84 24 00 00 with Lc 08 (the MAC only), ATC FFFF and ARQC
// 1234567890123456 under the session key 0123..3210.
func TestScriptMACThirdParty(t *testing.T) {
	sk := unhex(t, "0123456789ABCDEFFEDCBA9876543210")
	arqc := [8]byte(unhex(t, "1234567890123456"))
	d, err := cryptogram.ScriptMACData([4]byte{0x84, 0x24, 0, 0}, 0xFFFF, arqc, nil)
	if err != nil || hexs(d) != "8424000008FFFF1234567890123456" {
		t.Fatalf("MAC data = %X, %v", d, err)
	}
	mac, err := cryptogram.ScriptMAC(sk, [4]byte{0x84, 0x24, 0, 0}, 0xFFFF, arqc, nil)
	if err != nil || hexs(mac[:]) != "E07B8DF1B4184282" {
		t.Fatalf("script MAC = %X, %v; want E07B8DF1B4184282", mac, err)
	}
	if err := cryptogram.VerifyScriptMAC(sk, [4]byte{0x84, 0x24, 0, 0}, 0xFFFF, arqc, nil, mac); err != nil {
		t.Fatalf("verify own MAC: %v", err)
	}
	bad := mac
	bad[7] ^= 1
	if err := cryptogram.VerifyScriptMAC(sk, [4]byte{0x84, 0x24, 0, 0}, 0xFFFF, arqc, nil, bad); !errors.Is(err, cryptogram.ErrMismatch) {
		t.Fatalf("verify tampered MAC: %v, want ErrMismatch", err)
	}
	// Every input byte counts: another ATC, cryptogram or header fails.
	if err := cryptogram.VerifyScriptMAC(sk, [4]byte{0x84, 0x24, 0, 0}, 0xFFFE, arqc, nil, mac); !errors.Is(err, cryptogram.ErrMismatch) {
		t.Fatalf("verify under another ATC: %v, want ErrMismatch", err)
	}
	if err := cryptogram.VerifyScriptMAC(sk, [4]byte{0x84, 0x1E, 0, 0}, 0xFFFF, arqc, nil, mac); !errors.Is(err, cryptogram.ErrMismatch) {
		t.Fatalf("verify under another INS: %v, want ErrMismatch", err)
	}
}

func TestScriptMACDataLimits(t *testing.T) {
	if _, err := cryptogram.ScriptMACData([4]byte{}, 1, [8]byte{}, make([]byte, 247)); err != nil {
		t.Fatalf("247 bytes of data (Lc 255): %v", err)
	}
	if _, err := cryptogram.ScriptMACData([4]byte{}, 1, [8]byte{}, make([]byte, 248)); !errors.Is(err, cryptogram.ErrInput) {
		t.Fatalf("248 bytes of data: %v, want ErrInput", err)
	}
	if _, err := cryptogram.ScriptMAC(make([]byte, 8), [4]byte{}, 1, [8]byte{}, nil); !errors.Is(err, cryptogram.ErrKeyLength) {
		t.Fatalf("8-byte key: %v, want ErrKeyLength", err)
	}
}

// TestEncipherScriptData checks the encipherment against pyemv's example
// (sm.encrypt_command_data of the PIN block 241234FFFFFFFFFF under
// 0123..3210 in its Mastercard mode, TDES CBC with a zero IV and no
// padding for whole blocks: the first block of the always-padded EMV
// mode), and that deciphering gives the data back for lengths around
// block boundaries.
func TestEncipherScriptData(t *testing.T) {
	sk := unhex(t, "0123456789ABCDEFFEDCBA9876543210")
	ct, err := cryptogram.EncipherScriptData(sk, unhex(t, "241234FFFFFFFFFF"))
	if err != nil || len(ct) != 16 || hexs(ct[:8]) != "9859240AE52820C3" {
		t.Fatalf("encipher = %X, %v; want 16 bytes beginning 9859240AE52820C3", ct, err)
	}
	for n := range 25 {
		plain := bytes.Repeat([]byte{byte(n), 0x80, 0}, 9)[:n]
		ct, err := cryptogram.EncipherScriptData(sk, plain)
		if err != nil || len(ct) != (n/8+1)*8 {
			t.Fatalf("%d bytes: encipher = %d bytes, %v", n, len(ct), err)
		}
		got, err := cryptogram.DecipherScriptData(sk, ct)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: decipher = %X, %v; want %X", n, got, err, plain)
		}
	}
}

func TestDecipherScriptDataRefuses(t *testing.T) {
	sk := unhex(t, "0123456789ABCDEFFEDCBA9876543210")
	for _, tc := range []struct {
		name string
		ct   []byte
	}{
		{"empty", nil},
		{"partial_block", make([]byte, 7)},
		{"zero_block_bad_padding", mustEncipherRaw(t, sk, make([]byte, 8))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cryptogram.DecipherScriptData(sk, tc.ct); !errors.Is(err, cryptogram.ErrInput) {
				t.Fatalf("decipher: %v, want ErrInput", err)
			}
		})
	}
}

// mustEncipherRaw enciphers whole blocks without padding: the encipherment
// of Pad2(x) minus its last block, when x is whole blocks.
func mustEncipherRaw(t *testing.T, sk, blocks []byte) []byte {
	t.Helper()
	ct, err := cryptogram.EncipherScriptData(sk, blocks)
	if err != nil {
		t.Fatal(err)
	}
	return ct[:len(blocks)]
}

// FuzzDecipherScriptData: any bytes decipher to an error or to data that
// enciphers back to the same bytes.
func FuzzDecipherScriptData(f *testing.F) {
	sk := unhex(f, "0123456789ABCDEFFEDCBA9876543210")
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	ct, _ := cryptogram.EncipherScriptData(sk, []byte("12345"))
	f.Add(ct)
	f.Fuzz(func(t *testing.T, ct []byte) {
		plain, err := cryptogram.DecipherScriptData(sk, ct)
		if err != nil {
			if !errors.Is(err, cryptogram.ErrInput) {
				t.Fatalf("decipher: %v, want ErrInput", err)
			}
			return
		}
		back, err := cryptogram.EncipherScriptData(sk, plain)
		if err != nil || !bytes.Equal(back, ct) {
			t.Fatalf("re-encipher = %X, %v; want %X", back, err, ct)
		}
	})
}
