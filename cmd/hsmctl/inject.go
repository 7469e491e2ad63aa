package main

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/p2pe/fingerprint"
	"github.com/posgate/posgate/p2pe/keybundle"
)

// injectResult is what inject prints: identifiers, check values and the
// bundle's path, never a key.
type injectResult struct {
	TerminalID     string `json:"terminal_id"`
	IKID           string `json:"ikid"`
	BDK            string `json:"bdk"`
	IKKCV          string `json:"ik_kcv"`
	IKBits         int    `json:"ik_bits"`
	FingerprintKCV string `json:"fingerprint_kcv"`
	// FingerprintChecks lists what the fingerprint key was checked
	// against: "file" (the KCVs in its components file) and "token" (the
	// KCV of the token's key of the same label).
	FingerprintChecks []string `json:"fingerprint_checks"`
	KCVMethod         string   `json:"kcv_method"`
	Out               string   `json:"out"`
}

func (r injectResult) text(w io.Writer) error {
	checks := strings.Join(r.FingerprintChecks, ", ")
	if checks == "" {
		checks = "none (the components file carries no KCV and the token has no key of its label)"
	}
	return fields(w,
		"terminal", r.TerminalID,
		"IKID", r.IKID,
		"BDK", r.BDK,
		"initial key KCV", fmt.Sprintf("%s (AES-%d; %s)", r.IKKCV, r.IKBits, r.KCVMethod),
		"fingerprint KCV", fmt.Sprintf("%s (%s; checked against: %s)", r.FingerprintKCV, kcvMethodHMAC, checks),
		"key bundle", r.Out+" (mode 0600: load it into the terminal, then destroy it)",
	)
}

// injectBatch is what inject --count prints: one injectResult per
// terminal, in terminal order; never a key.
type injectBatch struct {
	Terminals []injectResult `json:"terminals"`
}

func (b injectBatch) text(w io.Writer) error {
	for _, r := range b.Terminals {
		checks := strings.Join(r.FingerprintChecks, ",")
		if checks == "" {
			checks = "none"
		}
		if _, err := fmt.Fprintf(w, "%s  IKID %s  IK KCV %s  fingerprint KCV %s (checked: %s)  %s\n",
			r.TerminalID, r.IKID, r.IKKCV, r.FingerprintKCV, checks, r.Out); err != nil {
			return err
		}
	}
	return nil
}

// maxBatch bounds inject --count: terminal numbers have 7 digits.
const maxBatch = 9999999

func setupInject(fs *flag.FlagSet, g *globals) func(context.Context) (result, error) {
	bdk := fs.String("bdk", "", "label of the AES BDK in the token")
	tid := fs.String("terminal-id", "", "terminal ID, 8 characters (e.g. T0000001)")
	ikid := fs.String("ikid", "", "the terminal's Initial Key ID, 16 hex digits (BDK ID || derivation ID)")
	fpFile := fs.String("fingerprint-components", "", "PAN fingerprint key components file (JSON written by cardcenter's first run)")
	out := fs.String("out", "", "key bundle to write (mode 0600)")
	force := fs.Bool("force", false, "replace --out (with --count: the bundles in --out-dir) if it exists")
	count := fs.Int("count", 0, "batch mode: inject this many terminals T<first>.. in one token session, instead of --terminal-id/--ikid/--out")
	first := fs.Int("first", 1, "with --count: number of the first terminal (1 is T0000001)")
	bdkID := fs.String("bdk-id", "00000001", "with --count: BDK ID, 8 hex digits; terminal k gets IKID <bdk-id> || k as 8 decimal digits")
	imkFile := fs.String("imk-components", "", "optional: IMK-AC components file a demo/test center's bootstrap writes (center/ceremony/imk-components.json); copied into each bundle's issuer test keys so the simulator can personalise its deck's chip cards — never for a real terminal")
	smiFile := fs.String("smi-components", "", "optional, with --imk-components: IMK-SMI components file a demo/test center's bootstrap writes (center/ceremony/imk-smi-components.json); copied into each bundle so the simulator's chip cards run the center's issuer scripts — never for a real terminal")
	smcFile := fs.String("smc-components", "", "optional, with --imk-components: IMK-SMC components file (center/ceremony/imk-smc-components.json), as --smi-components")
	outDir := fs.String("out-dir", "", "with --count: directory to write <terminal-id>.json bundles into (mode 0600)")
	return func(ctx context.Context) (res result, err error) {
		// targets are the bundles to write, checked before the token is
		// opened.
		type target struct {
			tid string
			id  [8]byte
			out string
		}
		var targets []target
		if *count != 0 {
			if *tid != "" || *ikid != "" || *out != "" {
				return nil, fmt.Errorf("--count replaces --terminal-id, --ikid and --out (use --first, --bdk-id and --out-dir): %w", errUsage)
			}
			if err := required("bdk", *bdk, "fingerprint-components", *fpFile, "out-dir", *outDir); err != nil {
				return nil, err
			}
			if *count < 1 || *first < 1 || *first > maxBatch-*count+1 {
				return nil, fmt.Errorf("--first %d --count %d: terminals are numbered 1 to %d: %w", *first, *count, maxBatch, errInput)
			}
			prefix, err := parseHex("--bdk-id", *bdkID, 4)
			if err != nil {
				return nil, err
			}
			for k := *first; k < *first+*count; k++ {
				t := target{tid: fmt.Sprintf("T%07d", k), out: filepath.Join(*outDir, fmt.Sprintf("T%07d.json", k))}
				deriv, err := hex.DecodeString(fmt.Sprintf("%08d", k))
				if err != nil {
					return nil, fmt.Errorf("derivation ID of terminal %d: %w", k, errInput)
				}
				copy(t.id[:4], prefix)
				copy(t.id[4:], deriv)
				targets = append(targets, t)
			}
		} else {
			if err := required("bdk", *bdk, "terminal-id", *tid, "ikid", *ikid, "fingerprint-components", *fpFile, "out", *out); err != nil {
				return nil, err
			}
			if len(*tid) != 8 {
				return nil, fmt.Errorf("--terminal-id %q: must be 8 characters: %w", *tid, errInput)
			}
			idb, err := parseHex("--ikid", *ikid, 8)
			if err != nil {
				return nil, err
			}
			targets = []target{{tid: *tid, id: [8]byte(idb), out: *out}}
		}
		// Everything that can be checked without the token is checked
		// before it is opened.
		if !*force {
			for _, t := range targets {
				if _, err := os.Lstat(t.out); err == nil {
					return nil, fmt.Errorf("inject %s: %w", t.out, errExists)
				}
			}
		}
		fp, err := readFingerprintComponents(*fpFile)
		if err != nil {
			return nil, err
		}
		fpKey, fpKCV, checks, err := fp.assemble()
		if err != nil {
			return nil, fmt.Errorf("fingerprint components %s: %w", *fpFile, err)
		}
		defer clear(fpKey)
		if *imkFile == "" && (*smiFile != "" || *smcFile != "") {
			return nil, fmt.Errorf("--smi-components and --smc-components need --imk-components: %w", errUsage)
		}
		var issuer *keybundle.IssuerTestKeys
		if *imkFile != "" {
			if issuer, err = keybundle.LoadIMKComponents(*imkFile); err != nil {
				return nil, err
			}
			defer clear(issuer.IMKAC)
			if *smiFile != "" {
				if issuer.IMKSMI, err = keybundle.LoadIssuerKeyComponents("IMK-SMI", *smiFile); err != nil {
					return nil, err
				}
				defer clear(issuer.IMKSMI)
			}
			if *smcFile != "" {
				if issuer.IMKSMC, err = keybundle.LoadIssuerKeyComponents("IMK-SMC", *smcFile); err != nil {
					return nil, err
				}
				defer clear(issuer.IMKSMC)
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}

		tok, err := g.openToken()
		if err != nil {
			return nil, err
		}
		defer closeToken(tok, &err)
		if fp.Label != "" {
			// The center's token holds the same fingerprint key (it was
			// assembled there from these components): compare KCVs.
			has, err := tok.HasKey(fp.Label)
			if err != nil {
				return nil, fmt.Errorf("look up fingerprint key %q: %w", fp.Label, err)
			}
			if has {
				tkcv, err := tok.KCV(fp.Label)
				if err != nil {
					return nil, fmt.Errorf("KCV of the token's fingerprint key %q: %w", fp.Label, err)
				}
				if tkcv != fpKCV {
					return nil, fmt.Errorf("fingerprint components %s assemble to KCV %s but the token's key %q has KCV %s: %w",
						*fpFile, fpKCV, fp.Label, tkcv, hsm.ErrKCVMismatch)
				}
				checks = append(checks, "token")
			}
		}
		var batch injectBatch
		for _, t := range targets {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("inject %s: %w", t.tid, err)
			}
			r, err := injectOne(tok, *bdk, t.tid, t.id, fpKey, issuer, t.out, *force)
			if err != nil {
				if *count != 0 {
					return nil, fmt.Errorf("inject %s (%d of %d written): %w", t.tid, len(batch.Terminals), len(targets), err)
				}
				return nil, err
			}
			r.FingerprintKCV, r.FingerprintChecks = fpKCV, checks
			batch.Terminals = append(batch.Terminals, r)
		}
		if *count == 0 {
			return batch.Terminals[0], nil
		}
		return batch, nil
	}
}

// injectOne derives terminal tid's initial key for IKID id from the BDK
// labelled bdk and writes its bundle to out. The result lacks the
// fingerprint fields, which the caller fills. issuer, when not nil, goes
// into the bundle as its issuer test keys.
func injectOne(tok *hsm.Token, bdk, tid string, id [8]byte, fpKey []byte, issuer *keybundle.IssuerTestKeys, out string, force bool) (injectResult, error) {
	ik, err := tok.AESInitialKeyForInjection(bdk, id)
	if err != nil {
		return injectResult{}, fmt.Errorf("derive the initial key: %w", err)
	}
	defer clear(ik)
	ikKCV, err := softKCV(hsm.KindAES, ik)
	if err != nil {
		return injectResult{}, fmt.Errorf("initial key KCV: %w", err)
	}
	keys := keybundle.Keys{TerminalID: tid, IKID: id, InitialKey: ik, FingerprintKey: fpKey, Issuer: issuer}
	if err := keys.Validate(); err != nil {
		return injectResult{}, fmt.Errorf("key bundle for BDK %q: %w", bdk, err)
	}
	if err := writeBundle(out, keys, force); err != nil {
		return injectResult{}, err
	}
	return injectResult{
		TerminalID: tid, IKID: strings.ToUpper(hex.EncodeToString(id[:])), BDK: bdk,
		IKKCV: ikKCV, IKBits: 8 * len(ik), KCVMethod: kcvMethodAES, Out: out,
	}, nil
}

// writeBundle writes keys to path with mode 0600. Without force the file is
// created exclusively first, so an existing bundle is never overwritten;
// with force an existing file is removed first, so that the new one is
// created 0600 whatever the old one's mode.
func writeBundle(path string, keys keybundle.Keys, force bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write key bundle: %w", err)
	}
	if force {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replace key bundle: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("inject %s: %w", path, errExists)
		}
		return fmt.Errorf("write key bundle: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key bundle: %w", err)
	}
	if err := keybundle.Save(path, keys); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write key bundle: %w", err)
	}
	return nil
}

// fingerprintComponents is the components file cardcenter's first run
// writes (keybundle.Components): the label of the key in the center's
// token, the clear components in hex, optionally one KCV per component,
// and the KCV of the assembled key (HMAC rule of hsm.KCV).
type fingerprintComponents keybundle.Components

// maxComponentsFile bounds what is read of a components file.
const maxComponentsFile = keybundle.MaxComponentsFile

func readFingerprintComponents(path string) (fingerprintComponents, error) {
	f, err := os.Open(path)
	if err != nil {
		return fingerprintComponents{}, fmt.Errorf("read fingerprint components: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxComponentsFile+1))
	defer clear(raw)
	if err != nil {
		return fingerprintComponents{}, fmt.Errorf("read fingerprint components %s: %w", path, err)
	}
	fp, err := parseFingerprintComponents(raw)
	if err != nil {
		return fingerprintComponents{}, fmt.Errorf("fingerprint components %s: %w", path, err)
	}
	return fp, nil
}

// parseFingerprintComponents decodes a components file strictly: known
// fields only, and nothing after the object. Errors never carry the
// components.
func parseFingerprintComponents(raw []byte) (fingerprintComponents, error) {
	c, err := keybundle.ParseComponents(raw)
	if err != nil {
		return fingerprintComponents{}, fmt.Errorf("%w: %w", err, errInput)
	}
	return fingerprintComponents(c), nil
}

// assemble XORs the components into the fingerprint key, checking every
// KCV the file gives. It returns the key (the caller wipes it), its KCV
// and "file" in checks when the file carried at least one KCV.
func (fp fingerprintComponents) assemble() (key []byte, kcv string, checks []string, err error) {
	if len(fp.Components) < 2 {
		return nil, "", nil, fmt.Errorf("%d components, want at least 2: %w", len(fp.Components), errInput)
	}
	if len(fp.KCVs) != 0 && len(fp.KCVs) != len(fp.Components) {
		return nil, "", nil, fmt.Errorf("%d KCVs for %d components: %w", len(fp.KCVs), len(fp.Components), errInput)
	}
	key = make([]byte, fingerprint.KeyLen)
	checked := false
	for i, h := range fp.Components {
		c, err := parseHex(fmt.Sprintf("component %d", i+1), h, fingerprint.KeyLen)
		if err != nil {
			clear(key)
			return nil, "", nil, err
		}
		if len(fp.KCVs) > 0 {
			if err := checkKCV(fmt.Sprintf("component %d", i+1), c, fp.KCVs[i]); err != nil {
				clear(c)
				clear(key)
				return nil, "", nil, err
			}
			checked = true
		}
		subtle.XORBytes(key, key, c)
		clear(c)
	}
	kcv, _ = softKCV(hsm.KindHMAC, key)
	if fp.KCV != "" {
		if err := checkKCV("assembled key", key, fp.KCV); err != nil {
			clear(key)
			return nil, "", nil, err
		}
		checked = true
	}
	if checked {
		checks = []string{"file"}
	}
	return key, kcv, checks, nil
}

// checkKCV compares the HMAC KCV of k with the leading bytes given in want.
func checkKCV(what string, k []byte, want string) error {
	w, err := parseKCV(what+" KCV", want)
	if err != nil {
		return err
	}
	got, _ := softKCV(hsm.KindHMAC, k)
	g, _ := hex.DecodeString(got)
	if subtle.ConstantTimeCompare(g[:len(w)], w) != 1 {
		return fmt.Errorf("%s KCV: %w", what, hsm.ErrKCVMismatch)
	}
	return nil
}
