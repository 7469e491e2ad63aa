package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/posgate/posgate/hsm"
)

// initResult is what init prints.
type initResult struct {
	Token       string `json:"token"`
	SoftHSMConf string `json:"softhsm_conf"`
	Keys        int    `json:"keys"`
}

func (r initResult) text(w io.Writer) error {
	return fields(w,
		"token", r.Token+" (ready; the user PIN logs in)",
		"SoftHSM config", r.SoftHSMConf+" (set SOFTHSM2_CONF to it to use the token from other tools)",
		"keys", fmt.Sprint(r.Keys),
	)
}

func setupInit(fs *flag.FlagSet, g *globals) func(context.Context) (result, error) {
	return func(ctx context.Context) (res result, err error) {
		if g.softhsmDir == "" {
			return nil, fmt.Errorf("init needs --softhsm-dir: hsmctl initialises SoftHSM2 tokens only; initialise a hardware HSM with its vendor's tools: %w", errUsage)
		}
		conf, err := hsm.InitSoftHSM(g.softhsmDir, g.token, g.soPIN, g.pin)
		if err != nil {
			return nil, err
		}
		if err := hsm.UseSoftHSMConf(conf); err != nil {
			return nil, err
		}
		// Logging in proves the PIN: InitSoftHSM reuses an existing token
		// without checking it.
		tok, err := hsm.Open(hsm.Config{ModulePath: g.module, TokenLabel: g.token, PIN: g.pin, PoolSize: 1})
		if err != nil {
			return nil, fmt.Errorf("open token %q: %w", g.token, err)
		}
		defer closeToken(tok, &err)
		keys, err := tok.ListKeys()
		if err != nil {
			return nil, err
		}
		return initResult{Token: g.token, SoftHSMConf: conf, Keys: len(keys)}, nil
	}
}

// keyEntry is one key of list. Besides CKA_SENSITIVE and CKA_EXTRACTABLE,
// PKCS#11 has CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE, but package
// hsm's KeyInfo does not read them, so list cannot show them.
type keyEntry struct {
	Label       string   `json:"label"`
	Kind        string   `json:"kind"`
	Bits        int      `json:"bits"`
	KCV         string   `json:"kcv"`
	KCVMethod   string   `json:"kcv_method,omitempty"`
	Sensitive   bool     `json:"sensitive"`
	Extractable bool     `json:"extractable"`
	Usage       []string `json:"usage"`
}

type listResult struct {
	Token string     `json:"token"`
	Keys  []keyEntry `json:"keys"`
}

func (r listResult) text(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LABEL\tKIND\tBITS\tKCV\tSENSITIVE\tEXTRACTABLE\tUSAGE")
	for _, k := range r.Keys {
		kcv := k.KCV
		if kcv == "" {
			kcv = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%t\t%t\t%s\n", k.Label, k.Kind, k.Bits, kcv, k.Sensitive, k.Extractable, strings.Join(k.Usage, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d key(s) in token %s. KCVs: AES %s; TDES %s; HMAC %s.\n", len(r.Keys), r.Token, kcvMethodAES, kcvMethodTDES, kcvMethodHMAC)
	return err
}

var usageNames = []struct {
	u    hsm.Usage
	name string
}{
	{hsm.UseEncrypt, "encrypt"}, {hsm.UseDecrypt, "decrypt"}, {hsm.UseSign, "sign"}, {hsm.UseVerify, "verify"},
	{hsm.UseDerive, "derive"}, {hsm.UseWrap, "wrap"}, {hsm.UseUnwrap, "unwrap"},
}

func usageList(u hsm.Usage) []string {
	out := []string{}
	for _, n := range usageNames {
		if u&n.u != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func setupList(fs *flag.FlagSet, g *globals) func(context.Context) (result, error) {
	return func(ctx context.Context) (res result, err error) {
		tok, err := g.openToken()
		if err != nil {
			return nil, err
		}
		defer closeToken(tok, &err)
		keys, err := tok.ListKeys()
		if err != nil {
			return nil, err
		}
		r := listResult{Token: g.token, Keys: []keyEntry{}}
		for _, k := range keys {
			e := keyEntry{Label: k.Label, Kind: k.Kind.String(), Bits: k.Bits, KCV: k.KCV,
				Sensitive: k.Sensitive, Extractable: k.Extractable, Usage: usageList(k.Usage)}
			if k.KCV != "" {
				e.KCVMethod = kcvMethod(k.Kind)
			}
			r.Keys = append(r.Keys, e)
		}
		return r, nil
	}
}
