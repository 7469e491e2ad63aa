package main_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/p2pe/keybundle"
)

type injectBatchOut struct {
	Terminals []injectOut `json:"terminals"`
}

// TestInjectBatchMatchesSingleInjects injects three terminals with --count
// in one token session and checks each bundle against what a single
// inject with the same terminal ID and IKID writes.
func TestInjectBatchMatchesSingleInjects(t *testing.T) {
	tok := tokenArgs(t)
	importKey(t, tok, "bdk", "aes", "bdk", unhex(t, aesBDK128), func(k []byte) string { return cmacKCV(t, k) })
	fp, fpKey := fpFile(t, true)
	dir := filepath.Join(t.TempDir(), "termsim")
	var res injectBatchOut
	ok(t, &res, with(tok, "inject", "--bdk", "bdk", "--count", "3", "--first", "9", "--bdk-id", "12345678",
		"--fingerprint-components", fp, "--out-dir", dir)...)
	want := []struct{ tid, ikid string }{
		{"T0000009", "1234567800000009"},
		{"T0000010", "1234567800000010"},
		{"T0000011", "1234567800000011"},
	}
	if len(res.Terminals) != len(want) {
		t.Fatalf("batch printed %d terminals, want %d", len(res.Terminals), len(want))
	}
	for i, w := range want {
		t.Run(strings.ToLower(w.tid), func(t *testing.T) {
			got := res.Terminals[i]
			path := filepath.Join(dir, w.tid+".json")
			if got.TerminalID != w.tid || got.IKID != w.ikid || got.Out != path || got.IKBits != 128 || got.FingerprintKCV != hmacKCV(fpKey) {
				t.Fatalf("batch entry %d: %+v, want %s IKID %s at %s", i, got, w.tid, w.ikid, path)
			}
			keys, err := keybundle.Load(path)
			if err != nil {
				t.Fatalf("load batch bundle: %v", err)
			}
			single := filepath.Join(t.TempDir(), "single.json")
			var one injectOut
			ok(t, &one, with(tok, "inject", "--bdk", "bdk", "--terminal-id", w.tid, "--ikid", w.ikid,
				"--fingerprint-components", fp, "--out", single)...)
			ref, err := keybundle.Load(single)
			if err != nil {
				t.Fatalf("load single bundle: %v", err)
			}
			if !bytes.Equal(keys.InitialKey, ref.InitialKey) || !bytes.Equal(keys.FingerprintKey, fpKey) || keys.TerminalID != w.tid || keys.IKID != ref.IKID {
				t.Fatalf("batch bundle (IK KCV %s) differs from the single inject's (IK KCV %s)", cmacKCV(t, keys.InitialKey), cmacKCV(t, ref.InitialKey))
			}
			if one.IKKCV != got.IKKCV {
				t.Fatalf("batch IK KCV %s, single %s", got.IKKCV, one.IKKCV)
			}
			if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("batch bundle mode: %v %v, want 0600", st.Mode(), err)
			}
		})
	}
	t.Run("text_output_names_kcvs_not_keys", func(t *testing.T) {
		r := hsmctl(t, with(tok, "inject", "--bdk", "bdk", "--count", "2", "--first", "9", "--bdk-id", "12345678",
			"--fingerprint-components", fp, "--out-dir", dir, "--force")...)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "T0000009  IKID 1234567800000009  IK KCV "+res.Terminals[0].IKKCV) {
			t.Fatalf("inject --count text: exit %d, %q", r.code, r.stdout)
		}
		keys, err := keybundle.Load(filepath.Join(dir, "T0000009.json"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ToLower(r.stdout), hex.EncodeToString(keys.InitialKey)) {
			t.Fatal("inject --count printed an initial key")
		}
	})
}

func TestInjectBatchRejects(t *testing.T) {
	tok := tokenArgs(t)
	importKey(t, tok, "bdk", "aes", "bdk", unhex(t, aesBDK128), func(k []byte) string { return cmacKCV(t, k) })
	fp, _ := fpFile(t, true)
	dir := t.TempDir()
	// T0000003's bundle exists: a batch over it writes nothing.
	if err := os.WriteFile(filepath.Join(dir, "T0000003.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"inject", "--bdk", "bdk", "--fingerprint-components", fp}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"count_with_terminal_id", []string{"--count", "2", "--terminal-id", "T0000001", "--out-dir", dir}, "--count replaces --terminal-id"},
		{"count_with_out", []string{"--count", "2", "--out", filepath.Join(dir, "x.json"), "--out-dir", dir}, "--count replaces"},
		{"missing_out_dir", []string{"--count", "2"}, "--out-dir is required"},
		{"negative_count", []string{"--count", "-1", "--out-dir", dir}, "terminals are numbered 1 to 9999999"},
		{"zero_first", []string{"--count", "2", "--first", "0", "--out-dir", dir}, "terminals are numbered"},
		{"past_last_terminal", []string{"--count", "2", "--first", "9999999", "--out-dir", dir}, "terminals are numbered"},
		{"bad_bdk_id", []string{"--count", "2", "--bdk-id", "1234", "--out-dir", dir}, "--bdk-id: 4 hex digits, want 8"},
		{"existing_bundle", []string{"--count", "3", "--first", "1", "--out-dir", dir}, "output file exists"},
		{"bdk_not_found", []string{"--count", "2", "--first", "5", "--out-dir", dir, "--bdk", "nobdk"}, "inject T0000005 (0 of 2 written)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fails(t, tc.want, with(tok, append(append([]string(nil), base...), tc.args...)...)...)
			for _, id := range []string{"T0000001", "T0000002", "T0000005", "T0000006"} {
				if _, err := os.Stat(filepath.Join(dir, id+".json")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("a refused batch left %s behind (%v)", id, err)
				}
			}
		})
	}
}
