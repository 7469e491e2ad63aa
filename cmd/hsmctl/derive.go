package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/p2pe/dukpt"
)

// usageDerivation is the flag name of X9.24-3 usage 8000, the derivation
// (transaction) key.
const usageDerivation = "derivation"

var deriveUsages = map[string]dukpt.KeyUsage{
	"pin":           dukpt.UsagePINEncryption,
	"mac-gen":       dukpt.UsageMACGenerate,
	"mac-verify":    dukpt.UsageMACVerify,
	"mac-both":      dukpt.UsageMACBoth,
	"data-enc":      dukpt.UsageDataEncrypt,
	"data-dec":      dukpt.UsageDataDecrypt,
	"data-both":     dukpt.UsageDataBoth,
	"key-enc":       dukpt.UsageKeyEncryption,
	usageDerivation: dukpt.UsageIntermediate,
}

var deriveAlgs = map[string]dukpt.KeyAlgorithm{
	"aes128": dukpt.AlgAES128,
	"aes192": dukpt.AlgAES192,
	"aes256": dukpt.AlgAES256,
	"tdes2":  dukpt.Alg2TDEA,
	"tdes3":  dukpt.Alg3TDEA,
	"hmac":   dukpt.AlgHMAC256,
}

// Where derive computed the key, stated in its output.
const (
	methodInToken = "derived inside the token (C_DeriveKey, CKM_AES_ECB_ENCRYPT_DATA); KCV computed by the token"
	methodAESIK   = "the token has no API exposing the derivation key: the initial key was derived in the token, exported as for injection, and the derivation key and its KCV computed from it in process memory"
	methodTDES    = "legacy TDES path: IPEK computed by encryption under the BDK and its variant inside the token; the key and its KCV computed from the IPEK in process memory"
)

type deriveResult struct {
	BDK       string `json:"bdk"`
	KSN       string `json:"ksn"`
	Scheme    string `json:"scheme"` // "AES DUKPT" or "TDES DUKPT"
	Usage     string `json:"usage"`
	Alg       string `json:"alg"`
	KCV       string `json:"kcv"`
	KCVMethod string `json:"kcv_method"`
	Method    string `json:"method"`
}

func (r deriveResult) text(w io.Writer) error {
	return fields(w,
		"BDK", r.BDK,
		"KSN", r.KSN+" ("+r.Scheme+")",
		"key", r.Usage+", "+r.Alg,
		"KCV", r.KCV+" ("+r.KCVMethod+")",
		"method", r.Method,
	)
}

func setupDerive(fs *flag.FlagSet, g *globals) func(context.Context) (result, error) {
	bdk := fs.String("bdk", "", "label of the BDK in the token (AES BDK for a 24-digit KSN, TDES BDK for a 20-digit one)")
	ksnHex := fs.String("ksn", "", "KSN: 24 hex digits (AES DUKPT) or 20 (TDES DUKPT)")
	usage := fs.String("usage", "", "pin, mac-gen, mac-verify, mac-both, data-enc, data-dec, data-both, key-enc or derivation")
	alg := fs.String("alg", "", "working key algorithm: aes128 (AES default), aes192, aes256, tdes2 (TDES default), tdes3 or hmac")
	return func(ctx context.Context) (res result, err error) {
		if err := required("bdk", *bdk, "ksn", *ksnHex, "usage", *usage); err != nil {
			return nil, err
		}
		u, err := oneOf("usage", *usage, deriveUsages)
		if err != nil {
			return nil, err
		}
		algSet := *alg != ""
		if *alg != "" {
			if _, err := oneOf("alg", *alg, deriveAlgs); err != nil {
				return nil, err
			}
		}
		raw, err := parseHex("--ksn", *ksnHex, dukpt.AESKSNLen, dukpt.TDESKSNLen)
		if err != nil {
			return nil, err
		}
		if len(raw) == dukpt.TDESKSNLen {
			if algSet && *alg != "tdes2" {
				return nil, fmt.Errorf("--alg %s with a TDES KSN: TDES DUKPT keys are tdes2: %w", *alg, errInput)
			}
			return deriveTDES(g, *bdk, dukpt.TDESKSN(raw), *usage, u)
		}
		if !algSet {
			*alg = "aes128"
		}
		return deriveAES(g, *bdk, dukpt.AESKSN(raw), *usage, u, *alg, algSet)
	}
}

func deriveAES(g *globals, bdk string, ksn dukpt.AESKSN, usageName string, u dukpt.KeyUsage, algName string, algSet bool) (res result, err error) {
	if err := ksn.Validate(); err != nil {
		return nil, fmt.Errorf("--ksn %s: %w", ksn, err)
	}
	a := deriveAlgs[algName]
	r := deriveResult{BDK: bdk, KSN: ksn.String(), Scheme: "AES DUKPT", Usage: usageName, Alg: algName}
	tok, err := g.openToken()
	if err != nil {
		return nil, err
	}
	defer closeToken(tok, &err)

	if u == dukpt.UsageIntermediate {
		// The derivation key has the BDK's algorithm; package hsm keeps
		// it in the token with derive usage only and exposes no KCV of it.
		ik, err := tok.AESInitialKeyForInjection(bdk, ksn.InitialKeyID())
		if err != nil {
			return nil, fmt.Errorf("derive the initial key: %w", err)
		}
		defer clear(ik)
		bdkAlg := map[int]string{16: "aes128", 24: "aes192", 32: "aes256"}[len(ik)]
		if algSet && algName != bdkAlg {
			return nil, fmt.Errorf("--alg %s: the derivation key has the BDK's algorithm, %s: %w", algName, bdkAlg, errInput)
		}
		tk, err := dukpt.AESTransactionKey(ik, ksn)
		if err != nil {
			return nil, fmt.Errorf("derivation key for KSN %s: %w", ksn, err)
		}
		defer clear(tk)
		r.Alg = bdkAlg
		if r.KCV, err = softKCV(hsm.KindAES, tk); err != nil {
			return nil, err
		}
		r.KCVMethod, r.Method = kcvMethodAES, methodAESIK
		return r, nil
	}

	k, err := tok.AESDUKPTKey(bdk, ksn, u, a)
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := k.Destroy(); derr != nil && err == nil {
			err = fmt.Errorf("destroy the working key: %w", derr)
		}
	}()
	r.Method = methodInToken
	r.KCV, r.KCVMethod, err = derivedKCV(k, u, a)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// derivedKCV computes the KCV of a working key in the token by the rules
// of hsm.Token.KCV, with whatever operation the key's usage allows: CMAC
// directly for AES MAC keys, CMAC of the zero block built from two ECB
// encryptions for the other AES keys (same value), TDES-ECB of zeros, or
// HMAC over 16 zero bytes.
func derivedKCV(k *hsm.DerivedKey, u dukpt.KeyUsage, a dukpt.KeyAlgorithm) (kcv, method string, err error) {
	mac := u == dukpt.UsageMACGenerate || u == dukpt.UsageMACVerify || u == dukpt.UsageMACBoth
	switch a {
	case dukpt.AlgAES128, dukpt.AlgAES192, dukpt.AlgAES256:
		var m []byte
		if mac {
			m, err = k.MAC(make([]byte, 16))
		} else {
			m, err = cmacZeroBlock(func(dst, src []byte) error {
				out, err := k.Encrypt(nil, src)
				if err == nil {
					copy(dst, out)
				}
				return err
			})
		}
		if err != nil {
			return "", "", fmt.Errorf("KCV of the working key: %w", err)
		}
		return kcvHex(m), kcvMethodAES, nil
	case dukpt.Alg2TDEA, dukpt.Alg3TDEA:
		if mac {
			return "", "", fmt.Errorf("KCV of a TDES MAC working key: the token key may only sign and package hsm has no TDES MAC: %w", errUnsupported)
		}
		out, err := k.Encrypt(nil, make([]byte, 8))
		if err != nil {
			return "", "", fmt.Errorf("KCV of the working key: %w", err)
		}
		return kcvHex(out), kcvMethodTDES, nil
	case dukpt.AlgHMAC256:
		m, err := k.MAC(make([]byte, 16))
		if err != nil {
			return "", "", fmt.Errorf("KCV of the working key: %w", err)
		}
		return kcvHex(m), kcvMethodHMAC, nil
	}
	return "", "", fmt.Errorf("algorithm %04X: %w", uint16(a), dukpt.ErrAlgorithm)
}

func deriveTDES(g *globals, bdk string, ksn dukpt.TDESKSN, usageName string, u dukpt.KeyUsage) (res result, err error) {
	if err := ksn.Validate(); err != nil {
		return nil, fmt.Errorf("--ksn %s: %w", ksn, err)
	}
	if u != dukpt.UsageIntermediate {
		if _, err := dukpt.TDESVariantMask(u); err != nil {
			return nil, fmt.Errorf("--usage %s with a TDES KSN (TDES DUKPT has pin, mac-gen, mac-verify, data-enc, data-dec and derivation): %w", usageName, errInput)
		}
	}
	tok, err := g.openToken()
	if err != nil {
		return nil, err
	}
	defer closeToken(tok, &err)
	ipek, err := tok.TDESInitialKeyForInjection(bdk, ksn)
	if err != nil {
		return nil, err
	}
	defer clear(ipek)
	var key []byte
	if u == dukpt.UsageIntermediate {
		key, err = dukpt.TDESTransactionKey(ipek, ksn)
	} else {
		key, err = dukpt.TDESWorkingKey(ipek, ksn, u)
	}
	if err != nil {
		return nil, fmt.Errorf("TDES DUKPT key for KSN %s: %w", ksn, err)
	}
	defer clear(key)
	kcv, err := softKCV(hsm.KindTDES, key)
	if err != nil {
		return nil, err
	}
	return deriveResult{BDK: bdk, KSN: ksn.String(), Scheme: "TDES DUKPT", Usage: usageName, Alg: "tdes2",
		KCV: kcv, KCVMethod: kcvMethodTDES, Method: methodTDES}, nil
}
