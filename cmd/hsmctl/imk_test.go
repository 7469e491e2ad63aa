package main_test

import (
	"strings"
	"testing"
)

// TestImportIMK imports EMV issuer master keys from components with
// --usage imk: an AES-128, an AES-256 and a TDES one, each a sensitive,
// derive-only key of its kind (what hsm.EMVIssuer takes as IMK-AC).
func TestImportIMK(t *testing.T) {
	tok := tokenArgs(t)
	aes256 := unhex(t, "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4")
	tests := []struct {
		label, kind string
		key         []byte
		kcv         func([]byte) string
		wantKind    string
		wantBits    int
	}{
		{"imk-ac-aes128", "aes", aes256[:16], func(k []byte) string { return cmacKCV(t, k) }, "AES", 128},
		{"imk-ac-aes256", "aes", aes256, func(k []byte) string { return cmacKCV(t, k) }, "AES", 256},
		{"imk-ac-tdes", "tdes", unhex(t, "0123456789ABCDEFFEDCBA9876543210"), func(k []byte) string { return tdesKCV(t, k) }, "TDES", 128},
	}
	for _, tc := range tests {
		out := importKey(t, tok, tc.label, tc.kind, "imk", tc.key, tc.kcv)
		if out.KCV != tc.kcv(tc.key) {
			t.Fatalf("import %s: KCV %s, want %s", tc.label, out.KCV, tc.kcv(tc.key))
		}
	}
	var l listOut
	ok(t, &l, with(tok, "list")...)
	found := 0
	for _, k := range l.Keys {
		for _, tc := range tests {
			if k.Label != tc.label {
				continue
			}
			found++
			if k.Kind != tc.wantKind || k.Bits != tc.wantBits || strings.Join(k.Usage, ",") != "derive" || !k.Sensitive || k.Extractable {
				t.Errorf("list %s: %s/%d usage %v sensitive %t extractable %t; want %s/%d, derive only, sensitive, not extractable",
					k.Label, k.Kind, k.Bits, k.Usage, k.Sensitive, k.Extractable, tc.wantKind, tc.wantBits)
			}
		}
	}
	if found != len(tests) {
		t.Fatalf("list shows %d of the %d IMKs", found, len(tests))
	}
}
