package main_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/p2pe/keybundle"
)

// TestInjectIssuerTestKeys: --imk-components, --smi-components and
// --smc-components copy the XORed issuer master keys (the bootstrap's
// components files, cloud/center IMKComponentsPath and the SM ones) into
// the bundle's issuer test keys; without the SM files the bundle has
// none; an SM file without --imk-components, or one that does not
// assemble, is refused with nothing written and no key in the message.
func TestInjectIssuerTestKeys(t *testing.T) {
	tok := tokenArgs(t)
	importKey(t, tok, "bdk", "aes", "bdk", unhex(t, aesBDK128), func(k []byte) string { return cmacKCV(t, k) })
	fp, _ := fpFile(t, true)
	dir := t.TempDir()
	// components writes a bootstrap-style components file (label and two
	// 16-byte components, no KCV) for key and returns its path.
	components := func(name string, key []byte) string {
		c1 := bytes.Repeat([]byte{0x3C}, 16)
		b, _ := json.Marshal(map[string]any{"label": name, "components": []string{hex.EncodeToString(c1), hex.EncodeToString(xor(c1, key))}})
		p := filepath.Join(dir, name+"-components.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	imkAC := bytes.Repeat([]byte{0x4B}, 16)
	imkSMI := unhex(t, "1A2B3C4D5E6F708192A3B4C5D6E7F809")
	imkSMC := unhex(t, "2132435465768798A9BACBDCEDFE0F10")
	ac, smi, smc := components("imk-ac", imkAC), components("imk-smi", imkSMI), components("imk-smc", imkSMC)
	inject := func(out string, extra ...string) []string {
		return with(tok, append([]string{"inject", "--bdk", "bdk", "--terminal-id", "T0000001", "--ikid", aesIKID,
			"--fingerprint-components", fp, "--out", out}, extra...)...)
	}

	t.Run("all_three", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "b.json")
		var res injectOut
		ok(t, &res, inject(out, "--imk-components", ac, "--smi-components", smi, "--smc-components", smc)...)
		k, err := keybundle.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if k.Issuer == nil || !bytes.Equal(k.Issuer.IMKAC, imkAC) || !bytes.Equal(k.Issuer.IMKSMI, imkSMI) || !bytes.Equal(k.Issuer.IMKSMC, imkSMC) {
			t.Fatal("the bundle's issuer test keys are not the components' keys")
		}
	})
	t.Run("imk_ac_only", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "b.json")
		var res injectOut
		ok(t, &res, inject(out, "--imk-components", ac)...)
		k, err := keybundle.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if k.Issuer == nil || !bytes.Equal(k.Issuer.IMKAC, imkAC) || k.Issuer.IMKSMI != nil || k.Issuer.IMKSMC != nil {
			t.Fatal("without --smi-components/--smc-components the bundle must hold the IMK-AC only")
		}
	})
	short := filepath.Join(dir, "short.json")
	if err := os.WriteFile(short, []byte(`{"components":["00112233","44556677"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"smi_without_imk", "need --imk-components", []string{"--smi-components", smi}},
		{"smc_without_imk", "need --imk-components", []string{"--smc-components", smc}},
		{"smi_short_component", "IMK-SMI components", []string{"--imk-components", ac, "--smi-components", short}},
		{"smc_missing_file", "read IMK-SMC components", []string{"--imk-components", ac, "--smc-components", filepath.Join(dir, "none.json")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "b.json")
			msg := fails(t, tc.want, inject(out, tc.args...)...)
			for _, k := range [][]byte{imkAC, imkSMI, imkSMC} {
				if strings.Contains(strings.ToUpper(msg), strings.ToUpper(hex.EncodeToString(k))) {
					t.Fatal("the error carries a key")
				}
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a refused inject left %s behind (%v)", out, err)
			}
		})
	}
	t.Run("help_names_the_flags", func(t *testing.T) {
		r := hsmctl(t, "inject", "--help")
		all := r.stdout + r.stderr
		if !strings.Contains(all, "-smi-components") || !strings.Contains(all, "-smc-components") {
			t.Fatalf("inject --help does not list the secure messaging components flags: %q", all)
		}
	})
}
