// Package emv decodes the EMV status bit fields a chip transaction
// carries (TVR 95, TSI 9B, AIP 82, AUC 9F07, CID 9F27, CVM Results 9F34
// and the CVM List 8E) into readable flags, and declares ATCGuard, the
// issuer's replay check on the application transaction counter.
//
// The subpackages do the rest: tlv (BER-TLV), tags (the data-element
// dictionary and masked printing), dol (data object lists), de55 (ISO 8583
// DE 55), cryptogram (pure-Go EMV key derivation and cryptograms) and card
// (a simulated chip card). Issuer-side cryptogram verification runs in the
// PKCS#11 token: hsm.EMVIssuer. docs/emv.md describes the whole.
//
// The bit-field types are small values, safe for concurrent use once
// built; MemoryATCGuard is safe for concurrent use.
package emv
