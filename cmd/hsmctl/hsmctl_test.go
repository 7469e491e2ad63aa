package main_test

import (
	"bytes"
	"crypto/aes"
	"crypto/des"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/posgate/posgate/p2pe/keybundle"
)

// The commands run as a real binary: SoftHSM reads its configuration once
// per process, and every test uses its own token directory.

// The binary is built on first use, so fuzz workers (which re-run TestMain)
// and tests that need no binary do not pay for a build.
var (
	buildDir  string
	buildOnce sync.Once
	hsmctlBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds hsmctl once per test process and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "hsmctl-test-")
		if buildErr != nil {
			return
		}
		hsmctlBin = filepath.Join(buildDir, "hsmctl")
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go command is not on PATH: %w", err)
			return
		}
		args := []string{"build", "-o", hsmctlBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build hsmctl: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return hsmctlBin
}

// Published values (p2pe/dukpt and /work/shared/vectors: ANSI X9.24-3-2017
// supplement test vectors, ANSI X9.24-1:2009 Annex A.4).
const (
	aesBDK128 = "FEDCBA9876543210F1F1F1F1F1F1F1F1"
	aesBDK256 = "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1"
	aesIKID   = "1234567890123456"
	aesIK128  = "1273671EA26AC29AFA4D1084127652A1"
	tdesBDK   = "0123456789ABCDEFFEDCBA9876543210"
)

// testPAN is a Luhn-valid test card number. It must never appear in test
// output: failures print masked forms only.
const testPAN = "4761739001010010"

const testPANMasked = "476173******0010"

// result of one hsmctl run.
type run struct {
	stdout, stderr string
	code           int
}

// hsmctl runs the binary with args and HSM_PIN unset.
func hsmctl(t *testing.T, args ...string) run {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	// atexit_sleep_ms: a race-built binary otherwise sleeps 1s at exit.
	cmd.Env = append(os.Environ(), "HSM_PIN=", "GORACE=atexit_sleep_ms=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run hsmctl: %v", err)
		}
		code = ee.ExitCode()
	}
	r := run{out.String(), errb.String(), code}
	if strings.Contains(r.stdout, testPAN) || strings.Contains(r.stderr, testPAN) {
		t.Fatalf("hsmctl %v printed the clear test PAN (%s)", len(args), testPANMasked)
	}
	return r
}

// ok runs hsmctl in json mode, requires exit 0 and decodes stdout into v.
func ok(t *testing.T, v any, args ...string) {
	t.Helper()
	r := hsmctl(t, append(args, "--format", "json")...)
	if r.code != 0 {
		t.Fatalf("hsmctl %s: exit %d, stdout %q, stderr %q", args[0], r.code, r.stdout, r.stderr)
	}
	if err := strictJSON(r.stdout, v); err != nil {
		t.Fatalf("hsmctl %s: output is not one JSON object: %v: %q", args[0], err, r.stdout)
	}
}

// fails runs hsmctl in json mode, requires exit 1 and an {"error"} object
// on stdout containing want, and returns the message.
func fails(t *testing.T, want string, args ...string) string {
	t.Helper()
	r := hsmctl(t, append(args, "--format", "json")...)
	if r.code != 1 {
		t.Fatalf("hsmctl %s: exit %d, want 1; stdout %q", args[0], r.code, r.stdout)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := strictJSON(r.stdout, &e); err != nil || e.Error == "" {
		t.Fatalf("hsmctl %s: stdout %q is not an {\"error\"} object (%v)", args[0], r.stdout, err)
	}
	if !strings.Contains(e.Error, want) {
		t.Fatalf("hsmctl %s: error %q does not say %q", args[0], e.Error, want)
	}
	return e.Error
}

func strictJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// tokenArgs returns the token flags of a fresh SoftHSM directory.
func tokenArgs(t *testing.T) []string {
	return []string{"--softhsm-dir", filepath.Join(t.TempDir(), "hsm"), "--token", "test", "--pin", "4321"}
}

func with(base []string, args ...string) []string {
	return append(append([]string(nil), args...), base...)
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// Reference KCVs, computed here independently of hsmctl and hsm.

// cmacKCV is the first 3 bytes of AES-CMAC (NIST SP 800-38B) over one zero
// block, computed step by step.
func cmacKCV(t *testing.T, key []byte) string {
	t.Helper()
	c, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	l := make([]byte, 16)
	c.Encrypt(l, l)
	var k1 [16]byte
	carry := byte(0)
	for i := 15; i >= 0; i-- {
		k1[i] = l[i]<<1 | carry
		carry = l[i] >> 7
	}
	if carry == 1 {
		k1[15] ^= 0x87
	}
	// One complete block: MAC = E(M XOR K1) with M = 0.
	out := make([]byte, 16)
	c.Encrypt(out, k1[:])
	return strings.ToUpper(hex.EncodeToString(out[:3]))
}

func tdesKCV(t *testing.T, key []byte) string {
	t.Helper()
	k3 := append(append([]byte(nil), key...), key[:8]...)
	c, err := des.NewTripleDESCipher(k3)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 8)
	c.Encrypt(out, out)
	return strings.ToUpper(hex.EncodeToString(out[:3]))
}

func hmacKCV(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(make([]byte, 16))
	return strings.ToUpper(hex.EncodeToString(m.Sum(nil)[:3]))
}

func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// split returns two components of key: a fixed pattern and key XOR it.
func split(key []byte) (c1, c2 []byte) {
	c1 = make([]byte, len(key))
	for i := range c1 {
		c1[i] = byte(0x5A + 17*i)
	}
	return c1, xor(key, c1)
}

type importOut struct {
	Label      string `json:"label"`
	Kind       string `json:"kind"`
	Components int    `json:"components"`
	KCV        string `json:"kcv"`
	KCVMethod  string `json:"kcv_method"`
	FinalKCV   bool   `json:"final_kcv_checked"`
}

// importKey imports key into the token as two components with their KCVs.
func importKey(t *testing.T, tok []string, label, kind, usage string, key []byte, kcv func([]byte) string) importOut {
	t.Helper()
	c1, c2 := split(key)
	args := with(tok, "import", "--label", label, "--kind", kind,
		"--component", hex.EncodeToString(c1), "--component", hex.EncodeToString(c2),
		"--kcv", kcv(c1), "--kcv", kcv(c2), "--final-kcv", kcv(key))
	if usage != "" {
		args = append(args, "--usage", usage)
	}
	var out importOut
	ok(t, &out, args...)
	return out
}

func TestInitIsIdempotent(t *testing.T) {
	tok := tokenArgs(t)
	type initOut struct {
		Token       string `json:"token"`
		SoftHSMConf string `json:"softhsm_conf"`
		Keys        int    `json:"keys"`
	}
	var first, second initOut
	ok(t, &first, with(tok, "init")...)
	ok(t, &second, with(tok, "init")...)
	if first != second || first.Token != "test" || first.Keys != 0 {
		t.Fatalf("init then init: %+v, %+v; want the same token with no keys", first, second)
	}
	if _, err := os.Stat(first.SoftHSMConf); err != nil {
		t.Fatalf("SoftHSM config: %v", err)
	}
	// A key survives a second init.
	ok(t, &genBDKOut{}, with(tok, "gen-bdk", "--label", "bdk")...)
	ok(t, &second, with(tok, "init")...)
	if second.Keys != 1 {
		t.Fatalf("init after gen-bdk reports %d keys, want 1", second.Keys)
	}
	t.Run("wrong_pin_is_refused", func(t *testing.T) {
		bad := append(append([]string(nil), tok[:4]...), "--pin", "9999")
		fails(t, "open token", with(bad, "init")...)
	})
	t.Run("needs_softhsm_dir", func(t *testing.T) {
		fails(t, "init needs --softhsm-dir", "init", "--token", "x")
	})
}

type genBDKOut struct {
	Label     string `json:"label"`
	Alg       string `json:"alg"`
	KCV       string `json:"kcv"`
	KCVMethod string `json:"kcv_method"`
	InToken   bool   `json:"generated_in_token"`
	Note      string `json:"note"`
}

type listOut struct {
	Token string `json:"token"`
	Keys  []struct {
		Label       string   `json:"label"`
		Kind        string   `json:"kind"`
		Bits        int      `json:"bits"`
		KCV         string   `json:"kcv"`
		KCVMethod   string   `json:"kcv_method"`
		Sensitive   bool     `json:"sensitive"`
		Extractable bool     `json:"extractable"`
		Usage       []string `json:"usage"`
	} `json:"keys"`
}

func TestGenBDKThenList(t *testing.T) {
	tok := tokenArgs(t)
	tests := []struct {
		label, alg string
		kind       string
		bits       int
		inToken    bool
	}{
		{"bdk-aes128", "aes128", "AES", 128, true},
		{"bdk-aes256", "aes256", "AES", 256, true},
		{"bdk-tdes", "tdes", "TDES", 128, false},
	}
	kcvs := map[string]string{}
	for _, tc := range tests {
		var out genBDKOut
		ok(t, &out, with(tok, "gen-bdk", "--label", tc.label, "--alg", tc.alg)...)
		if out.Label != tc.label || len(out.KCV) != 6 || out.InToken != tc.inToken {
			t.Fatalf("gen-bdk %s: %+v", tc.alg, out)
		}
		if !tc.inToken && !strings.Contains(out.Note, "wiped") {
			t.Fatalf("gen-bdk tdes does not say how the value was made: %q", out.Note)
		}
		kcvs[tc.label] = out.KCV
	}
	var l listOut
	ok(t, &l, with(tok, "list")...)
	seen := map[string]bool{}
	for _, k := range l.Keys {
		seen[k.Label] = true
		if !k.Sensitive || k.Extractable {
			t.Errorf("%s: sensitive=%t extractable=%t, want true/false", k.Label, k.Sensitive, k.Extractable)
		}
		for _, tc := range tests {
			if k.Label != tc.label {
				continue
			}
			if k.Kind != tc.kind || k.Bits != tc.bits || k.KCV != kcvs[tc.label] {
				t.Errorf("list %s: %s/%d KCV %s, want %s/%d KCV %s", k.Label, k.Kind, k.Bits, k.KCV, tc.kind, tc.bits, kcvs[tc.label])
			}
			if tc.inToken && strings.Join(k.Usage, ",") != "derive" {
				t.Errorf("list %s: usage %v, want derive only", k.Label, k.Usage)
			}
		}
	}
	for _, want := range []string{"bdk-aes128", "bdk-aes256", "bdk-tdes", "bdk-tdes.c0"} {
		if !seen[want] {
			t.Errorf("list lacks %s", want)
		}
	}
	fails(t, "already exists", with(tok, "gen-bdk", "--label", "bdk-aes128")...)

	r := hsmctl(t, with(tok, "list")...)
	if r.code != 0 || !strings.Contains(r.stdout, "bdk-aes256") || !strings.Contains(r.stdout, "SENSITIVE") {
		t.Fatalf("list in text: exit %d, %q", r.code, r.stdout)
	}
}

func TestImportByComponents(t *testing.T) {
	tok := tokenArgs(t)
	key := unhex(t, aesBDK128)
	c1, c2 := split(key)
	k1, k2, kf := cmacKCV(t, c1), cmacKCV(t, c2), cmacKCV(t, key)
	dir := t.TempDir()
	file2 := filepath.Join(dir, "c2")
	// Custodians write components in groups of four.
	h2 := strings.ToUpper(hex.EncodeToString(c2))
	var grouped []string
	for i := 0; i < len(h2); i += 4 {
		grouped = append(grouped, h2[i:i+4])
	}
	if err := os.WriteFile(file2, []byte(strings.Join(grouped, " ")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badKCV := "000000"
	if k2 == badKCV {
		badKCV = "111111"
	}
	tests := []struct {
		name    string
		label   string
		args    []string
		wantErr string // "" for success
	}{
		{"correct_kcvs", "k1", []string{"--kind", "aes", "--component", hex.EncodeToString(c1), "--component", hex.EncodeToString(c2), "--kcv", k1, "--kcv", k2, "--final-kcv", kf}, ""},
		{"component_file_and_short_kcvs", "k2", []string{"--kind", "aes", "--usage", "bdk", "--component", hex.EncodeToString(c1), "--component-file", file2, "--kcv", k1[:4], "--kcv", k2[:4]}, ""},
		{"wrong_kcv_names_component_2", "k3", []string{"--kind", "aes", "--component", hex.EncodeToString(c1), "--component", hex.EncodeToString(c2), "--kcv", k1, "--kcv", badKCV}, "component 2 KCV: hsm: key check value mismatch"},
		{"wrong_final_kcv", "k4", []string{"--kind", "aes", "--component", hex.EncodeToString(c1), "--component", hex.EncodeToString(c2), "--kcv", k1, "--kcv", k2, "--final-kcv", k1}, "assembled key KCV"},
		{"missing_kcv", "k5", []string{"--kind", "aes", "--component", hex.EncodeToString(c1), "--component", hex.EncodeToString(c2), "--kcv", k1}, "1 --kcv for 2 components"},
		{"one_component", "k6", []string{"--kind", "aes", "--component", hex.EncodeToString(c1), "--kcv", k1}, "want at least 2"},
		{"bad_hex_component", "k7", []string{"--kind", "aes", "--component", "XYZ1" + hex.EncodeToString(c1)[4:], "--component", hex.EncodeToString(c2), "--kcv", k1, "--kcv", k2}, "component 1: not hexadecimal"},
		{"unknown_kind", "k8", []string{"--kind", "rsa", "--component", hex.EncodeToString(c1), "--component", hex.EncodeToString(c2), "--kcv", k1, "--kcv", k2}, `--kind "rsa": want one of`},
		{"missing_component_file", "k9", []string{"--kind", "aes", "--component", hex.EncodeToString(c1), "--component-file", filepath.Join(dir, "nope"), "--kcv", k1, "--kcv", k2}, "component 2:"},
		{"mac_usage_on_aes", "k10", []string{"--kind", "aes", "--usage", "mac", "--component", hex.EncodeToString(c1), "--component", hex.EncodeToString(c2), "--kcv", k1, "--kcv", k2}, "does not apply"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := with(tok, append([]string{"import", "--label", tc.label}, tc.args...)...)
			if tc.wantErr != "" {
				msg := fails(t, tc.wantErr, args...)
				if strings.Contains(strings.ToUpper(msg), strings.ToUpper(hex.EncodeToString(c2))) {
					t.Fatalf("error carries a component")
				}
				return
			}
			var out importOut
			ok(t, &out, args...)
			if out.KCV != kf || out.Components != 2 {
				t.Fatalf("import: KCV %s from %d components, want %s from 2", out.KCV, out.Components, kf)
			}
		})
	}
	var l listOut
	ok(t, &l, with(tok, "list")...)
	if len(l.Keys) != 2 {
		t.Fatalf("token holds %d keys after 2 successful imports", len(l.Keys))
	}

	t.Run("tdes_bdk_and_hmac", func(t *testing.T) {
		out := importKey(t, tok, "tbdk", "tdes-bdk", "", unhex(t, tdesBDK), func(k []byte) string { return tdesKCV(t, k) })
		if out.KCV != tdesKCV(t, unhex(t, tdesBDK)) {
			t.Fatalf("TDES BDK KCV %s", out.KCV)
		}
		hk := bytes.Repeat([]byte{0x3C}, 32)
		out = importKey(t, tok, "fp", "hmac", "", hk, hmacKCV)
		if out.KCV != hmacKCV(hk) {
			t.Fatalf("HMAC key KCV %s, want %s", out.KCV, hmacKCV(hk))
		}
	})
}

func TestGenComponent(t *testing.T) {
	type compOut struct {
		Alg        string `json:"alg"`
		Component  string `json:"component"`
		KCV        string `json:"kcv"`
		KCVMethod  string `json:"kcv_method"`
		ImportKind string `json:"import_kind"`
	}
	tests := []struct {
		alg string
		n   int
		kcv func([]byte) string
	}{
		{"aes128", 16, func(k []byte) string { return cmacKCV(t, k) }},
		{"aes256", 32, func(k []byte) string { return cmacKCV(t, k) }},
		{"tdes", 16, func(k []byte) string { return tdesKCV(t, k) }},
		{"hmac256", 32, hmacKCV},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			var a, b compOut
			ok(t, &a, "gen-component", "--alg", tc.alg)
			ok(t, &b, "gen-component", "--alg", tc.alg)
			k := unhex(t, a.Component)
			if len(k) != tc.n || a.KCV != tc.kcv(k) {
				t.Fatalf("component of %d bytes with KCV %s; want %d bytes, KCV %s", len(k), a.KCV, tc.n, tc.kcv(k))
			}
			if a.Component == b.Component {
				t.Fatal("two components are equal")
			}
		})
	}
	fails(t, `--alg "des"`, "gen-component", "--alg", "des")
}

// fpFile writes a fingerprint components file like cardcenter's and
// returns its path and the assembled key.
func fpFile(t *testing.T, withKCVs bool) (string, []byte) {
	t.Helper()
	key := bytes.Repeat([]byte{0xA5, 0x01}, 16)
	c1, c2 := split(key)
	f := map[string]any{
		"label":      "fingerprint",
		"components": []string{hex.EncodeToString(c1), hex.EncodeToString(c2)},
		"kcv":        hmacKCV(key),
	}
	if withKCVs {
		f["kcvs"] = []string{hmacKCV(c1), hmacKCV(c2)}
	}
	b, _ := json.Marshal(f)
	p := filepath.Join(t.TempDir(), "fingerprint-components.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, key
}

type injectOut struct {
	TerminalID        string   `json:"terminal_id"`
	IKID              string   `json:"ikid"`
	BDK               string   `json:"bdk"`
	IKKCV             string   `json:"ik_kcv"`
	IKBits            int      `json:"ik_bits"`
	FingerprintKCV    string   `json:"fingerprint_kcv"`
	FingerprintChecks []string `json:"fingerprint_checks"`
	KCVMethod         string   `json:"kcv_method"`
	Out               string   `json:"out"`
}

// injectVector imports the published AES-128 BDK and injects terminal
// T0000001 with the published IKID; it returns the bundle path.
func injectVector(t *testing.T, tok []string) (string, injectOut) {
	t.Helper()
	importKey(t, tok, "bdk", "aes", "bdk", unhex(t, aesBDK128), func(k []byte) string { return cmacKCV(t, k) })
	fp, _ := fpFile(t, true)
	out := filepath.Join(t.TempDir(), "termsim", "T0000001.json")
	var res injectOut
	ok(t, &res, with(tok, "inject", "--bdk", "bdk", "--terminal-id", "T0000001", "--ikid", aesIKID,
		"--fingerprint-components", fp, "--out", out)...)
	return out, res
}

func TestInjectWritesThePublishedInitialKey(t *testing.T) {
	tok := tokenArgs(t)
	out, res := injectVector(t, tok)
	keys, err := keybundle.Load(out)
	if err != nil {
		t.Fatalf("load bundle: %v", err)
	}
	if !bytes.Equal(keys.InitialKey, unhex(t, aesIK128)) {
		t.Fatalf("bundle's initial key (KCV %s) is not the published IK (KCV %s)", cmacKCV(t, keys.InitialKey), cmacKCV(t, unhex(t, aesIK128)))
	}
	_, fpKey := fpFile(t, false)
	if !bytes.Equal(keys.FingerprintKey, fpKey) || keys.TerminalID != "T0000001" || hex.EncodeToString(keys.IKID[:]) != aesIKID {
		t.Fatalf("bundle holds %v with fingerprint KCV %s, want T0000001, IKID %s, fingerprint KCV %s", keys, hmacKCV(keys.FingerprintKey), aesIKID, hmacKCV(fpKey))
	}
	if res.IKKCV != cmacKCV(t, unhex(t, aesIK128)) || res.FingerprintKCV != hmacKCV(fpKey) || res.IKID != aesIKID || res.IKBits != 128 || res.Out != out {
		t.Fatalf("inject printed %+v", res)
	}
	if strings.Join(res.FingerprintChecks, ",") != "file" {
		t.Fatalf("fingerprint checks %v, want [file]", res.FingerprintChecks)
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("bundle mode: %v %v, want 0600", st.Mode(), err)
	}
	raw, _ := os.ReadFile(out)
	r := hsmctl(t, with(tok, "list")...)
	if strings.Contains(strings.ToUpper(r.stdout), aesIK128) {
		t.Fatal("list prints the initial key")
	}

	t.Run("refuses_existing_bundle", func(t *testing.T) {
		fp, _ := fpFile(t, true)
		fails(t, "output file exists", with(tok, "inject", "--bdk", "bdk", "--terminal-id", "T0000002", "--ikid", "1234567890123457",
			"--fingerprint-components", fp, "--out", out)...)
		if after, _ := os.ReadFile(out); !bytes.Equal(after, raw) {
			t.Fatal("a refused inject changed the bundle")
		}
	})
	t.Run("force_replaces_with_mode_0600", func(t *testing.T) {
		if err := os.Chmod(out, 0o644); err != nil {
			t.Fatal(err)
		}
		fp, _ := fpFile(t, true)
		var res injectOut
		ok(t, &res, with(tok, "inject", "--bdk", "bdk", "--terminal-id", "T0000002", "--ikid", "1234567890123457",
			"--fingerprint-components", fp, "--out", out, "--force")...)
		keys, err := keybundle.Load(out)
		if err != nil || keys.TerminalID != "T0000002" {
			t.Fatalf("forced bundle: %v, %v", keys, err)
		}
		if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
			t.Fatalf("forced bundle has mode %v", st.Mode().Perm())
		}
	})
	t.Run("text_output_names_kcvs_not_keys", func(t *testing.T) {
		fp, _ := fpFile(t, false)
		p := filepath.Join(t.TempDir(), "b.json")
		r := hsmctl(t, with(tok, "inject", "--bdk", "bdk", "--terminal-id", "T0000001", "--ikid", aesIKID,
			"--fingerprint-components", fp, "--out", p)...)
		if r.code != 0 || !strings.Contains(r.stdout, cmacKCV(t, unhex(t, aesIK128))) || !strings.Contains(r.stdout, p) {
			t.Fatalf("inject text: exit %d, %q", r.code, r.stdout)
		}
		if strings.Contains(strings.ToUpper(r.stdout), aesIK128) || strings.Contains(strings.ToLower(r.stdout), hex.EncodeToString(fpKeyOf(t, fp))) {
			t.Fatal("inject printed a key")
		}
	})
}

func fpKeyOf(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Components []string }
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return xor(unhex(t, f.Components[0]), unhex(t, f.Components[1]))
}

func TestInjectRejects(t *testing.T) {
	tok := tokenArgs(t)
	importKey(t, tok, "bdk", "aes", "bdk", unhex(t, aesBDK128), func(k []byte) string { return cmacKCV(t, k) })
	importKey(t, tok, "general", "aes", "", unhex(t, aesBDK128), func(k []byte) string { return cmacKCV(t, k) })
	good, _ := fpFile(t, true)
	dir := t.TempDir()
	write := func(name string, v any) string {
		b, _ := json.Marshal(v)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c1, c2 := split(bytes.Repeat([]byte{7}, 32))
	h1, h2 := hex.EncodeToString(c1), hex.EncodeToString(c2)
	badKCV := write("badkcv.json", map[string]any{"label": "x", "components": []string{h1, h2}, "kcvs": []string{hmacKCV(c1), hmacKCV(c1)}})
	badFinal := write("badfinal.json", map[string]any{"label": "x", "components": []string{h1, h2}, "kcv": hmacKCV(c1)})
	short := write("short.json", map[string]any{"label": "x", "components": []string{h1[:62], h2}})
	one := write("one.json", map[string]any{"label": "x", "components": []string{h1}})
	unknown := write("unknown.json", map[string]any{"label": "x", "components": []string{h1, h2}, "key": h1})
	notJSON := filepath.Join(dir, "not.json")
	os.WriteFile(notJSON, []byte("{\"components\": ["+h1), 0o600)
	// The token's fingerprint key differs from the file's.
	importKey(t, tok, "fingerprint", "hmac", "", bytes.Repeat([]byte{9}, 32), hmacKCV)

	tests := []struct {
		name, bdk, tid, ikid, fp, want string
	}{
		{"bad_ikid_hex", "bdk", "T0000001", "12345678901234ZZ", good, "--ikid: not hexadecimal"},
		{"short_ikid", "bdk", "T0000001", "12345678", good, "--ikid: 8 hex digits, want 16"},
		{"bad_terminal_id", "bdk", "T1", aesIKID, good, "--terminal-id"},
		{"component_kcv_mismatch", "bdk", "T0000001", aesIKID, badKCV, "component 2 KCV: hsm: key check value mismatch"},
		{"final_kcv_mismatch", "bdk", "T0000001", aesIKID, badFinal, "assembled key KCV"},
		{"short_component", "bdk", "T0000001", aesIKID, short, "component 1: 62 hex digits, want 64"},
		{"one_component", "bdk", "T0000001", aesIKID, one, "1 components, want at least 2"},
		{"unknown_field", "bdk", "T0000001", aesIKID, unknown, "not a components object"},
		{"not_json", "bdk", "T0000001", aesIKID, notJSON, "not JSON"},
		{"missing_file", "bdk", "T0000001", aesIKID, filepath.Join(dir, "none.json"), "read fingerprint components"},
		{"token_fingerprint_differs", "bdk", "T0000001", aesIKID, good, "the token's key \"fingerprint\" has KCV"},
		{"file_checked_before_token", "nobdk", "T0000001", aesIKID, badFinal, "assembled key KCV"},
		{"bdk_without_derive", "general", "T0000001", aesIKID, write("x.json", map[string]any{"label": "x", "components": []string{h1, h2}}), "lacks CKA_DERIVE"},
		{"bdk_not_found", "nobdk", "T0000001", aesIKID, write("y.json", map[string]any{"label": "x", "components": []string{h1, h2}}), "key not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "b.json")
			msg := fails(t, tc.want, with(tok, "inject", "--bdk", tc.bdk, "--terminal-id", tc.tid, "--ikid", tc.ikid,
				"--fingerprint-components", tc.fp, "--out", out)...)
			if strings.Contains(msg, h1) || strings.Contains(msg, h2) {
				t.Fatal("error carries a component")
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a failed inject left %s behind (%v)", out, err)
			}
		})
	}
}

type deriveOut struct {
	BDK       string `json:"bdk"`
	KSN       string `json:"ksn"`
	Scheme    string `json:"scheme"`
	Usage     string `json:"usage"`
	Alg       string `json:"alg"`
	KCV       string `json:"kcv"`
	KCVMethod string `json:"kcv_method"`
	Method    string `json:"method"`
}

func TestDeriveMatchesPublishedVectors(t *testing.T) {
	tok := tokenArgs(t)
	importKey(t, tok, "bdk128", "aes", "bdk", unhex(t, aesBDK128), func(k []byte) string { return cmacKCV(t, k) })
	importKey(t, tok, "bdk256", "aes", "bdk", unhex(t, aesBDK256), func(k []byte) string { return cmacKCV(t, k) })
	importKey(t, tok, "tbdk", "tdes-bdk", "", unhex(t, tdesBDK), func(k []byte) string { return tdesKCV(t, k) })
	aesKCV := func(k string) string { return cmacKCV(t, unhex(t, k)) }
	// TDES working keys are the published transaction key XOR the
	// usage's variant mask (the data variants also take the one-way step,
	// which this table does not use).
	tk1 := unhex(t, "042666B49184CFA368DE9628D0397BC9")
	pinKey := xor(tk1, unhex(t, "00000000000000FF00000000000000FF"))
	macReq := xor(tk1, unhex(t, "000000000000FF00000000000000FF00"))
	tests := []struct {
		name, bdk, ksn, usage, alg string
		wantKCV                    string
		inToken                    bool
	}{
		{"aes128_tc1_data_enc", "bdk128", aesIKID + "00000001", "data-enc", "", aesKCV("A35C412EFD41FDB98B69797C02DCD08F"), true},
		{"aes128_tc1_pin", "bdk128", aesIKID + "00000001", "pin", "aes128", aesKCV("AF8CB133A78F8DC2D1359F18527593FB"), true},
		{"aes128_tc1_mac_gen", "bdk128", aesIKID + "00000001", "mac-gen", "aes128", aesKCV("A2DC23DE6FDE0824A2BC321E08E4B8B7"), true},
		{"aes128_tc2_data_enc", "bdk128", aesIKID + "00000002", "data-enc", "aes128", aesKCV("D639514AA33AC43AD9229E433D6D4E5B"), true},
		{"aes128_tc8_data_enc", "bdk128", aesIKID + "00000008", "data-enc", "aes128", aesKCV("650F34204ABD4E57764D61AC3D266FB1"), true},
		{"aes128_tc2_mac_gen", "bdk128", aesIKID + "00000002", "mac-gen", "aes128", aesKCV("484C3B06E8562704528CD5B46FB12FB6"), true},
		{"aes128_tc1_derivation", "bdk128", aesIKID + "00000001", "derivation", "", aesKCV("4F21B565BAD9835E112B6465635EAE44"), false},
		{"aes128_tc1fffe_derivation", "bdk128", aesIKID + "0001FFFE", "derivation", "", aesKCV("E21E8C8D347F8561A2BE752DAA85A111"), false},
		{"aes256_tc1_pin_aes128", "bdk256", aesIKID + "00000001", "pin", "aes128", aesKCV("09C9C432966811D6B2C3336BAC1B1202"), true},
		{"aes256_tc1_derivation", "bdk256", aesIKID + "00000001", "derivation", "", aesKCV("54AC2B32B145EA4A554CB8BC44B17467063A799856B1CCC2A138D36E8DBF78B3"), false},
		{"tdes_e00001_derivation", "tbdk", "FFFF9876543210E00001", "derivation", "", tdesKCV(t, tk1), false},
		{"tdes_e00001_pin", "tbdk", "FFFF9876543210E00001", "pin", "tdes2", tdesKCV(t, pinKey), false},
		{"tdes_e00001_mac_gen", "tbdk", "FFFF9876543210E00001", "mac-gen", "", tdesKCV(t, macReq), false},
		{"tdes_f00000_derivation", "tbdk", "FFFF9876543210F00000", "derivation", "", tdesKCV(t, unhex(t, "AA4D58DB653EC74A48C75F2F047DD2B5")), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := with(tok, "derive", "--bdk", tc.bdk, "--ksn", tc.ksn, "--usage", tc.usage)
			if tc.alg != "" {
				args = append(args, "--alg", tc.alg)
			}
			var out deriveOut
			ok(t, &out, args...)
			if out.KCV != tc.wantKCV {
				t.Fatalf("KCV %s, want %s", out.KCV, tc.wantKCV)
			}
			if got := strings.HasPrefix(out.Method, "derived inside the token"); got != tc.inToken {
				t.Fatalf("method %q; want in token: %t", out.Method, tc.inToken)
			}
		})
	}
	t.Run("text_output", func(t *testing.T) {
		r := hsmctl(t, with(tok, "derive", "--bdk", "bdk128", "--ksn", aesIKID+"00000001", "--usage", "data-enc")...)
		if r.code != 0 || !strings.Contains(r.stdout, aesKCV("A35C412EFD41FDB98B69797C02DCD08F")) || !strings.Contains(r.stdout, "AES-CMAC") {
			t.Fatalf("derive text: exit %d, %q", r.code, r.stdout)
		}
	})
	t.Run("bad_input", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"ksn_23_digits", []string{"--bdk", "bdk128", "--ksn", aesIKID + "0000001", "--usage", "data-enc"}, "--ksn: 23 hex digits, want 24 or 20"},
			{"ksn_not_hex", []string{"--bdk", "bdk128", "--ksn", aesIKID + "0000000G", "--usage", "data-enc"}, "--ksn: not hexadecimal"},
			{"unknown_usage", []string{"--bdk", "bdk128", "--ksn", aesIKID + "00000001", "--usage", "sign"}, `--usage "sign": want one of`},
			{"unknown_alg", []string{"--bdk", "bdk128", "--ksn", aesIKID + "00000001", "--usage", "pin", "--alg", "des"}, `--alg "des": want one of`},
			{"zero_counter", []string{"--bdk", "bdk128", "--ksn", aesIKID + "00000000", "--usage", "pin"}, "counter is zero"},
			{"counter_17_bits", []string{"--bdk", "bdk128", "--ksn", aesIKID + "0001FFFF", "--usage", "pin"}, "too many one-bits"},
			{"tdes_ksn_with_aes_alg", []string{"--bdk", "tbdk", "--ksn", "FFFF9876543210E00001", "--usage", "pin", "--alg", "aes128"}, "TDES DUKPT keys are tdes2"},
			{"tdes_ksn_data_both", []string{"--bdk", "tbdk", "--ksn", "FFFF9876543210E00001", "--usage", "data-both"}, "with a TDES KSN"},
			{"aes_ksn_tdes_bdk", []string{"--bdk", "tbdk", "--ksn", aesIKID + "00000001", "--usage", "pin"}, "want AES"},
			{"hmac_for_data", []string{"--bdk", "bdk128", "--ksn", aesIKID + "00000001", "--usage", "data-enc", "--alg", "hmac"}, "HMAC working key"},
			{"derivation_alg_mismatch", []string{"--bdk", "bdk128", "--ksn", aesIKID + "00000001", "--usage", "derivation", "--alg", "aes256"}, "the derivation key has the BDK's algorithm"},
			{"missing_usage", []string{"--bdk", "bdk128", "--ksn", aesIKID + "00000001"}, "--usage is required"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				fails(t, tc.want, with(tok, append([]string{"derive"}, tc.args...)...)...)
			})
		}
	})
}

type encryptOut struct {
	TerminalID string `json:"terminal_id"`
	KSN        string `json:"ksn"`
	MaskedPAN  string `json:"masked_pan"`
	Block      string `json:"block"`
}

type decryptOut struct {
	Algorithm string   `json:"algorithm"`
	KSN       string   `json:"ksn"`
	MaskedPAN string   `json:"masked_pan"`
	Expiry    string   `json:"expiry"`
	Fields    []string `json:"fields"`
}

func TestBlockRoundTrip(t *testing.T) {
	tok := tokenArgs(t)
	bundle, _ := injectVector(t, tok)
	tests := []struct {
		name       string
		args       []string
		wantKSN    string
		wantFields string
	}{
		{"pan_expiry_cvv_counter_3", []string{"--expiry", "2912", "--cvv", "123", "--counter", "3"}, aesIKID + "00000003", "pan,expiry,security_code"},
		{"pan_expiry_default_counter", []string{"--expiry", "3001"}, aesIKID + "00000001", "pan,expiry"},
		{"hex_counter", []string{"--expiry", "3001", "--counter", "0x1FFFE"}, aesIKID + "0001FFFE", "pan,expiry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var enc encryptOut
			ok(t, &enc, append([]string{"encrypt-block", "--keys", bundle, "--pan", testPAN}, tc.args...)...)
			if enc.KSN != tc.wantKSN || enc.MaskedPAN != testPANMasked || enc.TerminalID != "T0000001" {
				t.Fatalf("encrypt-block: %+v", enc)
			}
			var dec decryptOut
			ok(t, &dec, with(tok, "decrypt-block", "--bdk", "bdk", "--block", enc.Block)...)
			if dec.MaskedPAN != testPANMasked || dec.KSN != tc.wantKSN || dec.Algorithm != "AES-DUKPT" ||
				dec.Expiry != tc.args[1] || strings.Join(dec.Fields, ",") != tc.wantFields {
				t.Fatalf("decrypt-block: %+v", dec)
			}
			r := hsmctl(t, with(tok, "decrypt-block", "--bdk", "bdk", "--block", enc.Block)...)
			if r.code != 0 || !strings.Contains(r.stdout, testPANMasked) {
				t.Fatalf("decrypt-block text: exit %d, %q", r.code, r.stdout)
			}
		})
	}
	t.Run("bad_input", func(t *testing.T) {
		var enc encryptOut
		ok(t, &enc, "encrypt-block", "--keys", bundle, "--pan", testPAN, "--expiry", "2912")
		importKey(t, tok, "other", "aes", "bdk", bytes.Repeat([]byte{1}, 16), func(k []byte) string { return cmacKCV(t, k) })
		luhnBad := testPAN[:15] + string('0'+(testPAN[15]-'0'+1)%10)
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"wrong_bdk", []string{"decrypt-block", "--bdk", "other", "--block", enc.Block}, "wrong BDK?"},
			{"trailing_byte", []string{"decrypt-block", "--bdk", "bdk", "--block", enc.Block + "00"}, "trailing bytes"},
			{"truncated", []string{"decrypt-block", "--bdk", "bdk", "--block", enc.Block[:20]}, "truncated"},
			{"block_not_hex", []string{"decrypt-block", "--bdk", "bdk", "--block", "0G" + enc.Block[2:]}, "--block: not hexadecimal"},
			{"luhn", []string{"encrypt-block", "--keys", bundle, "--pan", luhnBad, "--expiry", "2912"}, "--pan: parse PAN: card: PAN fails the Luhn check"},
			{"expiry_month_13", []string{"encrypt-block", "--keys", bundle, "--pan", testPAN, "--expiry", "2913"}, "--expiry"},
			{"cvv_letters", []string{"encrypt-block", "--keys", bundle, "--pan", testPAN, "--expiry", "2912", "--cvv", "12a"}, "--cvv"},
			{"counter_zero", []string{"encrypt-block", "--keys", bundle, "--pan", testPAN, "--expiry", "2912", "--counter", "0"}, "counter is zero"},
			{"counter_not_number", []string{"encrypt-block", "--keys", bundle, "--pan", testPAN, "--expiry", "2912", "--counter", "x"}, "--counter"},
			{"missing_bundle", []string{"encrypt-block", "--keys", filepath.Join(t.TempDir(), "no.json"), "--pan", testPAN, "--expiry", "2912"}, "load key bundle"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := tc.args
				if args[0] == "decrypt-block" {
					args = with(tok, args...)
				}
				msg := fails(t, tc.want, args...)
				if strings.Contains(msg, luhnBad) {
					t.Fatal("error carries the PAN")
				}
			})
		}
	})
}

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown_command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown_flag", []string{"list", "--colour"}, "flag provided but not defined"},
		{"stray_argument", []string{"list", testPAN}, "unexpected argument(s) after the flags"},
		{"bad_format", []string{"gen-component", "--alg", "aes128", "--format", "yaml"}, ""},
		{"inject_missing_flags", []string{"inject", "--bdk", "bdk"}, "--terminal-id is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				r := hsmctl(t, tc.args...)
				if r.code != 1 || !strings.Contains(r.stderr, `--format "yaml"`) {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				return
			}
			fails(t, tc.want, tc.args...)
			// Text mode: the message goes to stderr, nothing to stdout.
			r := hsmctl(t, tc.args...)
			if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("text mode: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
	t.Run("no_command", func(t *testing.T) {
		r := hsmctl(t)
		if r.code != 1 || !strings.Contains(r.stderr, "inject") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("help", func(t *testing.T) {
		r := hsmctl(t, "inject", "-h")
		if r.code != 0 || !strings.Contains(r.stdout, "-fingerprint-components") || r.stderr != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the flags on stdout only", r.code, r.stdout, r.stderr)
		}
	})
	for name, arg := range map[string]string{"top_level_h": "-h", "top_level_dash_dash_help": "--help", "top_level_help_command": "help"} {
		t.Run(name, func(t *testing.T) {
			r := hsmctl(t, arg)
			if r.code != 0 || !strings.Contains(r.stdout, "inject") || r.stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the usage on stdout only", r.code, r.stdout, r.stderr)
			}
		})
	}
}
