package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/posgate/posgate/hsm"
)

// gen-bdk

type genBDKResult struct {
	Label     string `json:"label"`
	Alg       string `json:"alg"`
	KCV       string `json:"kcv"`
	KCVMethod string `json:"kcv_method"`
	// InToken is false for a TDES BDK, whose value was generated in
	// process memory (see Note).
	InToken bool   `json:"generated_in_token"`
	Note    string `json:"note,omitempty"`
}

func (r genBDKResult) text(w io.Writer) error {
	kv := []string{"label", r.Label, "algorithm", r.Alg, "KCV", r.KCV + " (" + r.KCVMethod + ")"}
	if r.Note != "" {
		kv = append(kv, "note", r.Note)
	}
	return fields(w, kv...)
}

// tdesBDKNote is printed by gen-bdk --alg tdes.
const tdesBDKNote = "TDES BDK: PKCS#11 cannot make the BDK's C0C0 variant inside the token, so the 16-byte value was drawn from the token's RNG into process memory, imported as the BDK and its variant object, and wiped"

func setupGenBDK(fs *flag.FlagSet, g *globals) func(context.Context) (result, error) {
	label := fs.String("label", "", "label of the new BDK")
	alg := fs.String("alg", "aes128", "aes128, aes256 or tdes (legacy readers)")
	return func(ctx context.Context) (res result, err error) {
		if err := required("label", *label); err != nil {
			return nil, err
		}
		bits, err := oneOf("alg", *alg, map[string]int{"aes128": 128, "aes256": 256, "tdes": 0})
		if err != nil {
			return nil, err
		}
		tok, err := g.openToken()
		if err != nil {
			return nil, err
		}
		defer closeToken(tok, &err)
		r := genBDKResult{Label: *label, Alg: *alg}
		if bits > 0 {
			if err := tok.GenerateAES(*label, bits, hsm.UsageBDK); err != nil {
				return nil, err
			}
			r.InToken, r.KCVMethod = true, kcvMethodAES
		} else {
			v, err := tok.Random(16)
			if err != nil {
				return nil, fmt.Errorf("random TDES BDK: %w", err)
			}
			setDESParity(v)
			err = tok.ImportTDESBDK(*label, v)
			clear(v)
			if err != nil {
				return nil, err
			}
			r.KCVMethod, r.Note = kcvMethodTDES, tdesBDKNote
		}
		if r.KCV, err = tok.KCV(*label); err != nil {
			return nil, fmt.Errorf("KCV of %q: %w", *label, err)
		}
		return r, nil
	}
}

// setDESParity gives every byte of a DES key odd parity.
func setDESParity(k []byte) {
	for i, b := range k {
		b &^= 1
		ones := 0
		for x := b; x != 0; x >>= 1 {
			ones += int(x & 1)
		}
		if ones%2 == 0 {
			b |= 1
		}
		k[i] = b
	}
}

// gen-component

type componentAlg struct {
	kind       hsm.KeyKind
	n          int
	importKind string
}

var componentAlgs = map[string]componentAlg{
	"aes128":  {hsm.KindAES, 16, "aes"},
	"aes192":  {hsm.KindAES, 24, "aes"},
	"aes256":  {hsm.KindAES, 32, "aes"},
	"tdes":    {hsm.KindTDES, 16, "tdes or tdes-bdk"},
	"hmac256": {hsm.KindHMAC, 32, "hmac"},
}

type genComponentResult struct {
	Alg        string `json:"alg"`
	Component  string `json:"component"`
	KCV        string `json:"kcv"`
	KCVMethod  string `json:"kcv_method"`
	ImportKind string `json:"import_kind"`
}

func (r genComponentResult) text(w io.Writer) error {
	// Grouped by four digits, the way custodians copy components.
	var groups []string
	for i := 0; i < len(r.Component); i += 4 {
		groups = append(groups, r.Component[i:min(i+4, len(r.Component))])
	}
	return fields(w,
		"algorithm", r.Alg,
		"component", strings.Join(groups, " "),
		"KCV", r.KCV+" ("+r.KCVMethod+")",
		"import with", "hsmctl import --kind "+r.ImportKind+" --component-file FILE --kcv "+r.KCV+" ...",
	)
}

func setupGenComponent(fs *flag.FlagSet, g *globals) func(context.Context) (result, error) {
	alg := fs.String("alg", "", "aes128, aes192, aes256, tdes or hmac256")
	return func(ctx context.Context) (result, error) {
		if err := required("alg", *alg); err != nil {
			return nil, err
		}
		a, err := oneOf("alg", *alg, componentAlgs)
		if err != nil {
			return nil, err
		}
		// A clear component exists to be printed, so it is made and
		// checked in software: the token is not needed.
		c := make([]byte, a.n)
		defer clear(c)
		if _, err := rand.Read(c); err != nil {
			return nil, fmt.Errorf("random component: %w", err)
		}
		if a.kind == hsm.KindTDES {
			setDESParity(c)
		}
		kcv, err := softKCV(a.kind, c)
		if err != nil {
			return nil, err
		}
		return genComponentResult{Alg: *alg, Component: strings.ToUpper(hex.EncodeToString(c)), KCV: kcv,
			KCVMethod: kcvMethod(a.kind), ImportKind: a.importKind}, nil
	}
}

// import

// componentList collects --component and --component-file in command-line
// order, so that the n-th --kcv belongs to the n-th component whichever
// flag gave it.
type componentList struct {
	values [][]byte
}

func (l *componentList) String() string { return fmt.Sprintf("%d component(s)", len(l.values)) }

func (l *componentList) add(b []byte, err error) error {
	if err != nil {
		return err
	}
	l.values = append(l.values, b)
	return nil
}

type componentFlag struct{ l *componentList }

func (f componentFlag) String() string { return "" }
func (f componentFlag) Set(s string) error {
	return f.l.add(parseHex(fmt.Sprintf("component %d", len(f.l.values)+1), s))
}

type componentFileFlag struct{ l *componentList }

func (f componentFileFlag) String() string { return "" }
func (f componentFileFlag) Set(path string) error {
	n := len(f.l.values) + 1
	raw, err := os.ReadFile(path)
	defer clear(raw)
	if err != nil {
		return fmt.Errorf("component %d: %w", n, err)
	}
	return f.l.add(parseHex(fmt.Sprintf("component %d (%s)", n, path), string(raw)))
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

var importKinds = map[string]hsm.KeyKind{
	"aes": hsm.KindAES, "tdes": hsm.KindTDES, "tdes-bdk": hsm.KindTDESBDK, "hmac": hsm.KindHMAC,
}

var importUsages = map[string]hsm.Usage{
	"bdk":     hsm.UsageBDK,
	"imk":     hsm.UseDerive,
	"general": hsm.UsageGeneral,
	"mac":     hsm.UsageMAC,
	"encrypt": hsm.UseEncrypt | hsm.UseDecrypt,
}

type importResult struct {
	Label      string `json:"label"`
	Kind       string `json:"kind"`
	Components int    `json:"components"`
	KCV        string `json:"kcv"`
	KCVMethod  string `json:"kcv_method"`
	FinalKCV   bool   `json:"final_kcv_checked"`
}

func (r importResult) text(w io.Writer) error {
	final := "not given"
	if r.FinalKCV {
		final = "matched"
	}
	return fields(w,
		"label", r.Label,
		"kind", r.Kind,
		"components", fmt.Sprintf("%d, each KCV matched", r.Components),
		"assembled key KCV", fmt.Sprintf("%s (%s; --final-kcv %s)", r.KCV, r.KCVMethod, final),
	)
}

func setupImport(fs *flag.FlagSet, g *globals) func(context.Context) (result, error) {
	label := fs.String("label", "", "label of the new key")
	kind := fs.String("kind", "", "aes, tdes, tdes-bdk (legacy DUKPT BDK) or hmac")
	usage := fs.String("usage", "", "usage of an aes, tdes or hmac key: bdk (AES DUKPT BDK, derive only), imk (EMV issuer master key IMK-AC, AES or TDES, derive only), general (AES default: encrypt, decrypt, CMAC), mac (HMAC default), encrypt (TDES default: encrypt, decrypt)")
	var comps componentList
	fs.Var(componentFlag{&comps}, "component", "a clear component in hex (repeat; prefer --component-file, which keeps it out of shell history)")
	fs.Var(componentFileFlag{&comps}, "component-file", "a file holding one clear component in hex (repeat)")
	var kcvs stringList
	fs.Var(&kcvs, "kcv", "KCV of the next component, 4 or 6 hex digits (one per component, in order)")
	finalKCV := fs.String("final-kcv", "", "KCV of the assembled key (recommended)")
	return func(ctx context.Context) (res result, err error) {
		defer func() {
			for _, c := range comps.values {
				clear(c)
			}
		}()
		if err := required("label", *label, "kind", *kind); err != nil {
			return nil, err
		}
		k, err := oneOf("kind", *kind, importKinds)
		if err != nil {
			return nil, err
		}
		var usages []hsm.Usage
		if *usage != "" {
			u, err := oneOf("usage", *usage, importUsages)
			if err != nil {
				return nil, err
			}
			switch {
			case k == hsm.KindTDESBDK:
				return nil, fmt.Errorf("--usage with --kind tdes-bdk: a TDES BDK is always encrypt-only: %w", errInput)
			case k == hsm.KindAES && u == hsm.UsageMAC, k == hsm.KindHMAC && u != hsm.UsageMAC:
				return nil, fmt.Errorf("--usage %s does not apply to --kind %s: %w", *usage, *kind, errInput)
			}
			usages = []hsm.Usage{u}
		}
		if len(comps.values) < 2 {
			return nil, fmt.Errorf("%d component(s) given, want at least 2 (--component or --component-file): %w", len(comps.values), errUsage)
		}
		if len(kcvs) != len(comps.values) {
			return nil, fmt.Errorf("%d --kcv for %d components: give each component's KCV, in order: %w", len(kcvs), len(comps.values), errUsage)
		}
		var checks [][]byte
		for i, s := range kcvs {
			b, err := parseKCV(fmt.Sprintf("--kcv of component %d", i+1), s)
			if err != nil {
				return nil, err
			}
			checks = append(checks, b)
		}
		if *finalKCV != "" {
			b, err := parseKCV("--final-kcv", *finalKCV)
			if err != nil {
				return nil, err
			}
			checks = append(checks, b)
		}
		tok, err := g.openToken()
		if err != nil {
			return nil, err
		}
		defer closeToken(tok, &err)
		if err := tok.ImportKeyFromComponents(*label, k, comps.values, checks, usages...); err != nil {
			return nil, err
		}
		kcv, err := tok.KCV(*label)
		if err != nil {
			return nil, fmt.Errorf("KCV of %q: %w", *label, err)
		}
		return importResult{Label: *label, Kind: *kind, Components: len(comps.values), KCV: kcv,
			KCVMethod: kcvMethod(k), FinalKCV: *finalKCV != ""}, nil
	}
}
