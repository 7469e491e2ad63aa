package emv

import "fmt"

// Bit names one bit of a multi-byte EMV bit field: the byte number
// (1-based, as the specifications count) in the high 8 bits and the mask
// in the low 8 bits. TVRExpiredApplication is 0x0240: byte 2, bit 7.
type Bit uint16

func (b Bit) index() int { return int(b>>8) - 1 }
func (b Bit) mask() byte { return byte(b) }

type bitName struct {
	bit  Bit
	name string
}

func flags(v []byte, names []bitName) []string {
	var out []string
	for _, n := range names {
		i := n.bit.index()
		if i >= 0 && i < len(v) && v[i]&n.bit.mask() != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func has(v []byte, b Bit) bool {
	i := b.index()
	return i >= 0 && i < len(v) && v[i]&b.mask() != 0
}

func set(v []byte, b Bit) {
	if i := b.index(); i >= 0 && i < len(v) {
		v[i] |= b.mask()
	}
}

// TVR is Terminal Verification Results (tag 95), EMV Book 3 Annex C5.
type TVR [5]byte

// TVR bits.
const (
	TVROfflineDataAuthNotPerformed Bit = 0x0180
	TVRSDAFailed                   Bit = 0x0140
	TVRICCDataMissing              Bit = 0x0120
	TVRCardOnExceptionFile         Bit = 0x0110
	TVRDDAFailed                   Bit = 0x0108
	TVRCDAFailed                   Bit = 0x0104
	TVRSDASelected                 Bit = 0x0102
	TVRDifferentAppVersions        Bit = 0x0280
	TVRExpiredApplication          Bit = 0x0240
	TVRApplicationNotYetEffective  Bit = 0x0220
	TVRServiceNotAllowed           Bit = 0x0210
	TVRNewCard                     Bit = 0x0208
	TVRCardholderVerificationFail  Bit = 0x0380
	TVRUnrecognisedCVM             Bit = 0x0340
	TVRPINTryLimitExceeded         Bit = 0x0320
	TVRPINPadNotPresent            Bit = 0x0310
	TVRPINNotEntered               Bit = 0x0308
	TVROnlinePINEntered            Bit = 0x0304
	TVRFloorLimitExceeded          Bit = 0x0480
	TVRLowerOfflineLimitExceeded   Bit = 0x0440
	TVRUpperOfflineLimitExceeded   Bit = 0x0420
	TVRRandomlySelectedOnline      Bit = 0x0410
	TVRMerchantForcedOnline        Bit = 0x0408
	TVRDefaultTDOLUsed             Bit = 0x0580
	TVRIssuerAuthenticationFailed  Bit = 0x0540
	TVRScriptFailedBeforeFinalAC   Bit = 0x0520
	TVRScriptFailedAfterFinalAC    Bit = 0x0510
	TVRRelayThresholdExceeded      Bit = 0x0508
	TVRRelayTimeLimitsExceeded     Bit = 0x0504
)

var tvrNames = []bitName{
	{TVROfflineDataAuthNotPerformed, "offline data authentication was not performed"},
	{TVRSDAFailed, "SDA failed"},
	{TVRICCDataMissing, "ICC data missing"},
	{TVRCardOnExceptionFile, "card appears on terminal exception file"},
	{TVRDDAFailed, "DDA failed"},
	{TVRCDAFailed, "CDA failed"},
	{TVRSDASelected, "SDA selected"},
	{TVRDifferentAppVersions, "ICC and terminal have different application versions"},
	{TVRExpiredApplication, "expired application"},
	{TVRApplicationNotYetEffective, "application not yet effective"},
	{TVRServiceNotAllowed, "requested service not allowed for card product"},
	{TVRNewCard, "new card"},
	{TVRCardholderVerificationFail, "cardholder verification was not successful"},
	{TVRUnrecognisedCVM, "unrecognised CVM"},
	{TVRPINTryLimitExceeded, "PIN try limit exceeded"},
	{TVRPINPadNotPresent, "PIN entry required and PIN pad not present or not working"},
	{TVRPINNotEntered, "PIN entry required, PIN pad present, but PIN was not entered"},
	{TVROnlinePINEntered, "online PIN entered"},
	{TVRFloorLimitExceeded, "transaction exceeds floor limit"},
	{TVRLowerOfflineLimitExceeded, "lower consecutive offline limit exceeded"},
	{TVRUpperOfflineLimitExceeded, "upper consecutive offline limit exceeded"},
	{TVRRandomlySelectedOnline, "transaction selected randomly for online processing"},
	{TVRMerchantForcedOnline, "merchant forced transaction online"},
	{TVRDefaultTDOLUsed, "default TDOL used"},
	{TVRIssuerAuthenticationFailed, "issuer authentication failed"},
	{TVRScriptFailedBeforeFinalAC, "script processing failed before final GENERATE AC"},
	{TVRScriptFailedAfterFinalAC, "script processing failed after final GENERATE AC"},
	{TVRRelayThresholdExceeded, "relay resistance threshold exceeded"},
	{TVRRelayTimeLimitsExceeded, "relay resistance time limits exceeded"},
}

// Flags lists the set bits' names in specification order; RFU bits are
// not listed.
func (t TVR) Flags() []string { return flags(t[:], tvrNames) }

// Has reports whether bit b is set.
func (t TVR) Has(b Bit) bool { return has(t[:], b) }

// Set sets bit b.
func (t *TVR) Set(b Bit) { set(t[:], b) }

// TSI is Transaction Status Information (tag 9B), EMV Book 3 Annex C6.
type TSI [2]byte

// TSI bits.
const (
	TSIOfflineDataAuthPerformed Bit = 0x0180
	TSICardholderVerification   Bit = 0x0140
	TSICardRiskManagement       Bit = 0x0120
	TSIIssuerAuthentication     Bit = 0x0110
	TSITerminalRiskManagement   Bit = 0x0108
	TSIScriptProcessing         Bit = 0x0104
)

var tsiNames = []bitName{
	{TSIOfflineDataAuthPerformed, "offline data authentication was performed"},
	{TSICardholderVerification, "cardholder verification was performed"},
	{TSICardRiskManagement, "card risk management was performed"},
	{TSIIssuerAuthentication, "issuer authentication was performed"},
	{TSITerminalRiskManagement, "terminal risk management was performed"},
	{TSIScriptProcessing, "script processing was performed"},
}

// Flags lists the set bits' names.
func (t TSI) Flags() []string { return flags(t[:], tsiNames) }

// Has reports whether bit b is set.
func (t TSI) Has(b Bit) bool { return has(t[:], b) }

// Set sets bit b.
func (t *TSI) Set(b Bit) { set(t[:], b) }

// AIP is the Application Interchange Profile (tag 82), EMV Book 3 Annex
// C1, with the contactless byte-2 bits of EMV Book C-2.
type AIP [2]byte

// AIP bits.
const (
	AIPSDA                     Bit = 0x0140
	AIPDDA                     Bit = 0x0120
	AIPCardholderVerification  Bit = 0x0110
	AIPTerminalRiskManagement  Bit = 0x0108
	AIPIssuerAuthentication    Bit = 0x0104
	AIPOnDeviceCVM             Bit = 0x0102
	AIPCDA                     Bit = 0x0101
	AIPEMVModeContactless      Bit = 0x0280
	AIPRelayResistanceProtocol Bit = 0x0201
)

var aipNames = []bitName{
	{AIPSDA, "SDA supported"},
	{AIPDDA, "DDA supported"},
	{AIPCardholderVerification, "cardholder verification is supported"},
	{AIPTerminalRiskManagement, "terminal risk management is to be performed"},
	{AIPIssuerAuthentication, "issuer authentication is supported"},
	{AIPOnDeviceCVM, "on-device cardholder verification is supported"},
	{AIPCDA, "CDA supported"},
	{AIPEMVModeContactless, "EMV mode is supported (contactless)"},
	{AIPRelayResistanceProtocol, "relay resistance protocol is supported"},
}

// Flags lists the set bits' names.
func (a AIP) Flags() []string { return flags(a[:], aipNames) }

// Has reports whether bit b is set.
func (a AIP) Has(b Bit) bool { return has(a[:], b) }

// Set sets bit b.
func (a *AIP) Set(b Bit) { set(a[:], b) }

// AUC is Application Usage Control (tag 9F07), EMV Book 3 Annex C2.
type AUC [2]byte

// AUC bits.
const (
	AUCDomesticCash          Bit = 0x0180
	AUCInternationalCash     Bit = 0x0140
	AUCDomesticGoods         Bit = 0x0120
	AUCInternationalGoods    Bit = 0x0110
	AUCDomesticServices      Bit = 0x0108
	AUCInternationalServices Bit = 0x0104
	AUCATMs                  Bit = 0x0102
	AUCNonATMTerminals       Bit = 0x0101
	AUCDomesticCashback      Bit = 0x0280
	AUCInternationalCashback Bit = 0x0240
)

var aucNames = []bitName{
	{AUCDomesticCash, "valid for domestic cash transactions"},
	{AUCInternationalCash, "valid for international cash transactions"},
	{AUCDomesticGoods, "valid for domestic goods"},
	{AUCInternationalGoods, "valid for international goods"},
	{AUCDomesticServices, "valid for domestic services"},
	{AUCInternationalServices, "valid for international services"},
	{AUCATMs, "valid at ATMs"},
	{AUCNonATMTerminals, "valid at terminals other than ATMs"},
	{AUCDomesticCashback, "domestic cashback allowed"},
	{AUCInternationalCashback, "international cashback allowed"},
}

// Flags lists the set bits' names.
func (a AUC) Flags() []string { return flags(a[:], aucNames) }

// Has reports whether bit b is set.
func (a AUC) Has(b Bit) bool { return has(a[:], b) }

// Set sets bit b.
func (a *AUC) Set(b Bit) { set(a[:], b) }

// CryptogramType is the kind of application cryptogram in bits 8-7 of
// the Cryptogram Information Data (9F27).
type CryptogramType byte

// Cryptogram types.
const (
	AAC  CryptogramType = 0x00 // application authentication cryptogram: declined
	TC   CryptogramType = 0x40 // transaction certificate: approved offline
	ARQC CryptogramType = 0x80 // authorisation request cryptogram: go online
	RFU  CryptogramType = 0xC0 // reserved
)

// String returns "AAC", "TC", "ARQC" or "RFU".
func (c CryptogramType) String() string {
	switch c {
	case AAC:
		return "AAC"
	case TC:
		return "TC"
	case ARQC:
		return "ARQC"
	}
	return "RFU"
}

// CID is the Cryptogram Information Data (9F27), EMV Book 3 section 6.5.5.
type CID byte

// Type returns the cryptogram type.
func (c CID) Type() CryptogramType { return CryptogramType(c & 0xC0) }

// AdviceRequired reports bit 4.
func (c CID) AdviceRequired() bool { return c&0x08 != 0 }

// Flags lists the cryptogram type, "advice required" and the reason code
// of bits 3-1 when non-zero.
func (c CID) Flags() []string {
	out := []string{c.Type().String()}
	if c.AdviceRequired() {
		out = append(out, "advice required")
	}
	switch c & 0x07 {
	case 0:
	case 1:
		out = append(out, "service not allowed")
	case 2:
		out = append(out, "PIN try limit exceeded")
	case 3:
		out = append(out, "issuer authentication failed")
	default:
		out = append(out, fmt.Sprintf("reason code %d (RFU)", c&0x07))
	}
	return out
}
