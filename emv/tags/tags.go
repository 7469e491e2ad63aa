// Package tags is the EMV data-element dictionary posgate knows: for each
// tag its name, format, length bounds, where the value comes from and
// whether it is card data that must never be shown in clear. Describe
// prints a TLV list for logs and tools with sensitive values masked.
//
// Sources: EMV 4.4 Book 3 Annex A1 (data element dictionary), EMV
// Contactless Books C-2 and C-3 for the kernel-specific tags. Lengths are
// in bytes of the value as it travels in BER-TLV.
//
// The dictionary is read-only; every function is safe for concurrent use.
package tags

import (
	"errors"
	"fmt"

	"github.com/posgate/posgate/emv/tlv"
)

// Format is the EMV data format of a value.
type Format int

// Formats (EMV Book 3 section 4.3).
const (
	// Binary (b): arbitrary bytes.
	Binary Format = iota + 1
	// Numeric (n): BCD digits, right-justified, left-padded with 0 nibbles.
	Numeric
	// CompressedNumeric (cn): BCD digits, left-justified, right-padded
	// with F nibbles.
	CompressedNumeric
	// Alphanumeric (an): ASCII letters and digits.
	Alphanumeric
	// AlphanumericSpecial (ans): printable ASCII.
	AlphanumericSpecial
	// Constructed: a template of further data objects.
	Constructed
)

// String returns the EMV abbreviation: b, n, cn, an, ans or template.
func (f Format) String() string {
	switch f {
	case Binary:
		return "b"
	case Numeric:
		return "n"
	case CompressedNumeric:
		return "cn"
	case Alphanumeric:
		return "an"
	case AlphanumericSpecial:
		return "ans"
	case Constructed:
		return "template"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Source says who produces a data element.
type Source int

// Sources.
const (
	Card Source = iota + 1
	Terminal
	Issuer
)

// String returns "card", "terminal" or "issuer".
func (s Source) String() string {
	switch s {
	case Card:
		return "card"
	case Terminal:
		return "terminal"
	case Issuer:
		return "issuer"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// Info describes one data element.
type Info struct {
	Tag      tlv.Tag
	Name     string
	Format   Format
	Min, Max int // value length bounds in bytes
	Source   Source
	// Sensitive marks card data (PAN, track data, cardholder name,
	// discretionary data) whose value must never be logged or shown.
	Sensitive bool
}

// Tags of the dictionary, named as in EMV Book 3 Annex A1.
const (
	AID                          tlv.Tag = 0x4F
	ApplicationLabel             tlv.Tag = 0x50
	Track1Data                   tlv.Tag = 0x56
	Track2Equivalent             tlv.Tag = 0x57
	PAN                          tlv.Tag = 0x5A
	CardholderName               tlv.Tag = 0x5F20
	ExpirationDate               tlv.Tag = 0x5F24
	EffectiveDate                tlv.Tag = 0x5F25
	IssuerCountryCode            tlv.Tag = 0x5F28
	TransactionCurrencyCode      tlv.Tag = 0x5F2A
	LanguagePreference           tlv.Tag = 0x5F2D
	ServiceCode                  tlv.Tag = 0x5F30
	PANSequenceNumber            tlv.Tag = 0x5F34
	TransactionCurrencyExponent  tlv.Tag = 0x5F36
	ApplicationTemplate          tlv.Tag = 0x61
	FCITemplate                  tlv.Tag = 0x6F
	RecordTemplate               tlv.Tag = 0x70
	IssuerScript1                tlv.Tag = 0x71
	IssuerScript2                tlv.Tag = 0x72
	ResponseTemplate2            tlv.Tag = 0x77
	ResponseTemplate1            tlv.Tag = 0x80
	AIP                          tlv.Tag = 0x82
	DFName                       tlv.Tag = 0x84
	IssuerScriptCommand          tlv.Tag = 0x86
	ApplicationPriority          tlv.Tag = 0x87
	SFI                          tlv.Tag = 0x88
	AuthorisationResponseCode    tlv.Tag = 0x8A
	CDOL1                        tlv.Tag = 0x8C
	CDOL2                        tlv.Tag = 0x8D
	CVMList                      tlv.Tag = 0x8E
	CAPublicKeyIndex             tlv.Tag = 0x8F
	IssuerPublicKeyCertificate   tlv.Tag = 0x90
	IssuerAuthenticationData     tlv.Tag = 0x91
	IssuerPublicKeyRemainder     tlv.Tag = 0x92
	SignedStaticData             tlv.Tag = 0x93
	AFL                          tlv.Tag = 0x94
	TVR                          tlv.Tag = 0x95
	TDOL                         tlv.Tag = 0x97
	TransactionDate              tlv.Tag = 0x9A
	TSI                          tlv.Tag = 0x9B
	TransactionType              tlv.Tag = 0x9C
	FCIProprietary               tlv.Tag = 0xA5
	AcquirerIdentifier           tlv.Tag = 0x9F01
	AmountAuthorised             tlv.Tag = 0x9F02
	AmountOther                  tlv.Tag = 0x9F03
	TerminalAID                  tlv.Tag = 0x9F06
	AUC                          tlv.Tag = 0x9F07
	CardAppVersion               tlv.Tag = 0x9F08
	TerminalAppVersion           tlv.Tag = 0x9F09
	IACDefault                   tlv.Tag = 0x9F0D
	IACDenial                    tlv.Tag = 0x9F0E
	IACOnline                    tlv.Tag = 0x9F0F
	IssuerApplicationData        tlv.Tag = 0x9F10
	IssuerCodeTableIndex         tlv.Tag = 0x9F11
	ApplicationPreferredName     tlv.Tag = 0x9F12
	LastOnlineATC                tlv.Tag = 0x9F13
	LowerConsecutiveOfflineLimit tlv.Tag = 0x9F14
	MerchantCategoryCode         tlv.Tag = 0x9F15
	MerchantIdentifier           tlv.Tag = 0x9F16
	PINTryCounter                tlv.Tag = 0x9F17
	TerminalCountryCode          tlv.Tag = 0x9F1A
	TerminalFloorLimit           tlv.Tag = 0x9F1B
	TerminalIdentification       tlv.Tag = 0x9F1C
	TerminalRiskData             tlv.Tag = 0x9F1D
	IFDSerialNumber              tlv.Tag = 0x9F1E
	Track1Discretionary          tlv.Tag = 0x9F1F
	Track2Discretionary          tlv.Tag = 0x9F20
	TransactionTime              tlv.Tag = 0x9F21
	UpperConsecutiveOfflineLimit tlv.Tag = 0x9F23
	ApplicationCryptogram        tlv.Tag = 0x9F26
	CID                          tlv.Tag = 0x9F27
	IssuerPublicKeyExponent      tlv.Tag = 0x9F32
	TerminalCapabilities         tlv.Tag = 0x9F33
	CVMResults                   tlv.Tag = 0x9F34
	TerminalType                 tlv.Tag = 0x9F35
	ATC                          tlv.Tag = 0x9F36
	UnpredictableNumber          tlv.Tag = 0x9F37
	PDOL                         tlv.Tag = 0x9F38
	POSEntryMode                 tlv.Tag = 0x9F39
	AdditionalTerminalCaps       tlv.Tag = 0x9F40
	TransactionSequenceCounter   tlv.Tag = 0x9F41
	ApplicationCurrencyCode      tlv.Tag = 0x9F42
	ApplicationCurrencyExponent  tlv.Tag = 0x9F44
	DataAuthenticationCode       tlv.Tag = 0x9F45
	ICCPublicKeyCertificate      tlv.Tag = 0x9F46
	ICCPublicKeyExponent         tlv.Tag = 0x9F47
	ICCPublicKeyRemainder        tlv.Tag = 0x9F48
	DDOL                         tlv.Tag = 0x9F49
	SDATagList                   tlv.Tag = 0x9F4A
	SignedDynamicData            tlv.Tag = 0x9F4B
	ICCDynamicNumber             tlv.Tag = 0x9F4C
	MerchantNameLocation         tlv.Tag = 0x9F4E
	TransactionCategoryCode      tlv.Tag = 0x9F53
	IssuerScriptResults          tlv.Tag = 0x9F5B
	TTQ                          tlv.Tag = 0x9F66
	CardAuthRelatedData          tlv.Tag = 0x9F69
	Track2DataContactless        tlv.Tag = 0x9F6B
	CTQ                          tlv.Tag = 0x9F6C
	FormFactorIndicator          tlv.Tag = 0x9F6E
	CustomerExclusiveData        tlv.Tag = 0x9F7C
	FCIIssuerDiscretionary       tlv.Tag = 0xBF0C
)

var dictionary = []Info{
	{AID, "Application Identifier (AID) - card", Binary, 5, 16, Card, false},
	{ApplicationLabel, "Application Label", AlphanumericSpecial, 1, 16, Card, false},
	{Track1Data, "Track 1 Data", AlphanumericSpecial, 0, 76, Card, true},
	{Track2Equivalent, "Track 2 Equivalent Data", Binary, 0, 19, Card, true},
	{PAN, "Application Primary Account Number (PAN)", CompressedNumeric, 0, 10, Card, true},
	{CardholderName, "Cardholder Name", AlphanumericSpecial, 2, 26, Card, true},
	{ExpirationDate, "Application Expiration Date", Numeric, 3, 3, Card, false},
	{EffectiveDate, "Application Effective Date", Numeric, 3, 3, Card, false},
	{IssuerCountryCode, "Issuer Country Code", Numeric, 2, 2, Card, false},
	{TransactionCurrencyCode, "Transaction Currency Code", Numeric, 2, 2, Terminal, false},
	{LanguagePreference, "Language Preference", Alphanumeric, 2, 8, Card, false},
	{ServiceCode, "Service Code", Numeric, 2, 2, Card, false},
	{PANSequenceNumber, "Application PAN Sequence Number", Numeric, 1, 1, Card, false},
	{TransactionCurrencyExponent, "Transaction Currency Exponent", Numeric, 1, 1, Terminal, false},
	{ApplicationTemplate, "Application Template", Constructed, 0, 252, Card, false},
	{FCITemplate, "File Control Information (FCI) Template", Constructed, 0, 252, Card, false},
	{RecordTemplate, "READ RECORD Response Message Template", Constructed, 0, 252, Card, false},
	{IssuerScript1, "Issuer Script Template 1", Constructed, 0, 128, Issuer, false},
	{IssuerScript2, "Issuer Script Template 2", Constructed, 0, 128, Issuer, false},
	{ResponseTemplate2, "Response Message Template Format 2", Constructed, 0, 253, Card, false},
	{ResponseTemplate1, "Response Message Template Format 1", Binary, 0, 253, Card, false},
	{AIP, "Application Interchange Profile", Binary, 2, 2, Card, false},
	{DFName, "Dedicated File (DF) Name", Binary, 5, 16, Card, false},
	{IssuerScriptCommand, "Issuer Script Command", Binary, 0, 261, Issuer, false},
	{ApplicationPriority, "Application Priority Indicator", Binary, 1, 1, Card, false},
	{SFI, "Short File Identifier (SFI)", Binary, 1, 1, Card, false},
	{AuthorisationResponseCode, "Authorisation Response Code", Alphanumeric, 2, 2, Issuer, false},
	{CDOL1, "Card Risk Management Data Object List 1 (CDOL1)", Binary, 0, 252, Card, false},
	{CDOL2, "Card Risk Management Data Object List 2 (CDOL2)", Binary, 0, 252, Card, false},
	{CVMList, "Cardholder Verification Method (CVM) List", Binary, 10, 252, Card, false},
	{CAPublicKeyIndex, "Certification Authority Public Key Index", Binary, 1, 1, Card, false},
	{IssuerPublicKeyCertificate, "Issuer Public Key Certificate", Binary, 0, 248, Card, false},
	{IssuerAuthenticationData, "Issuer Authentication Data", Binary, 8, 16, Issuer, false},
	{IssuerPublicKeyRemainder, "Issuer Public Key Remainder", Binary, 0, 248, Card, false},
	{SignedStaticData, "Signed Static Application Data", Binary, 0, 248, Card, false},
	{AFL, "Application File Locator (AFL)", Binary, 4, 252, Card, false},
	{TVR, "Terminal Verification Results", Binary, 5, 5, Terminal, false},
	{TDOL, "Transaction Certificate Data Object List (TDOL)", Binary, 0, 252, Card, false},
	{TransactionDate, "Transaction Date", Numeric, 3, 3, Terminal, false},
	{TSI, "Transaction Status Information", Binary, 2, 2, Terminal, false},
	{TransactionType, "Transaction Type", Numeric, 1, 1, Terminal, false},
	{FCIProprietary, "FCI Proprietary Template", Constructed, 0, 252, Card, false},
	{AcquirerIdentifier, "Acquirer Identifier", Numeric, 6, 6, Terminal, false},
	{AmountAuthorised, "Amount, Authorised (Numeric)", Numeric, 6, 6, Terminal, false},
	{AmountOther, "Amount, Other (Numeric)", Numeric, 6, 6, Terminal, false},
	{TerminalAID, "Application Identifier (AID) - terminal", Binary, 5, 16, Terminal, false},
	{AUC, "Application Usage Control", Binary, 2, 2, Card, false},
	{CardAppVersion, "Application Version Number - card", Binary, 2, 2, Card, false},
	{TerminalAppVersion, "Application Version Number - terminal", Binary, 2, 2, Terminal, false},
	{IACDefault, "Issuer Action Code - Default", Binary, 5, 5, Card, false},
	{IACDenial, "Issuer Action Code - Denial", Binary, 5, 5, Card, false},
	{IACOnline, "Issuer Action Code - Online", Binary, 5, 5, Card, false},
	{IssuerApplicationData, "Issuer Application Data", Binary, 0, 32, Card, false},
	{IssuerCodeTableIndex, "Issuer Code Table Index", Numeric, 1, 1, Card, false},
	{ApplicationPreferredName, "Application Preferred Name", AlphanumericSpecial, 1, 16, Card, false},
	{LastOnlineATC, "Last Online ATC Register", Binary, 2, 2, Card, false},
	{LowerConsecutiveOfflineLimit, "Lower Consecutive Offline Limit", Binary, 1, 1, Card, false},
	{MerchantCategoryCode, "Merchant Category Code", Numeric, 2, 2, Terminal, false},
	{MerchantIdentifier, "Merchant Identifier", AlphanumericSpecial, 15, 15, Terminal, false},
	{PINTryCounter, "Personal Identification Number (PIN) Try Counter", Binary, 1, 1, Card, false},
	{TerminalCountryCode, "Terminal Country Code", Numeric, 2, 2, Terminal, false},
	{TerminalFloorLimit, "Terminal Floor Limit", Binary, 4, 4, Terminal, false},
	{TerminalIdentification, "Terminal Identification", Alphanumeric, 8, 8, Terminal, false},
	{TerminalRiskData, "Terminal Risk Management Data", Binary, 1, 8, Terminal, false},
	{IFDSerialNumber, "Interface Device (IFD) Serial Number", Alphanumeric, 8, 8, Terminal, false},
	{Track1Discretionary, "Track 1 Discretionary Data", AlphanumericSpecial, 0, 54, Card, true},
	{Track2Discretionary, "Track 2 Discretionary Data", CompressedNumeric, 0, 16, Card, true},
	{TransactionTime, "Transaction Time", Numeric, 3, 3, Terminal, false},
	{UpperConsecutiveOfflineLimit, "Upper Consecutive Offline Limit", Binary, 1, 1, Card, false},
	{ApplicationCryptogram, "Application Cryptogram", Binary, 8, 8, Card, false},
	{CID, "Cryptogram Information Data", Binary, 1, 1, Card, false},
	{IssuerPublicKeyExponent, "Issuer Public Key Exponent", Binary, 1, 3, Card, false},
	{TerminalCapabilities, "Terminal Capabilities", Binary, 3, 3, Terminal, false},
	{CVMResults, "Cardholder Verification Method (CVM) Results", Binary, 3, 3, Terminal, false},
	{TerminalType, "Terminal Type", Numeric, 1, 1, Terminal, false},
	{ATC, "Application Transaction Counter (ATC)", Binary, 2, 2, Card, false},
	{UnpredictableNumber, "Unpredictable Number", Binary, 4, 4, Terminal, false},
	{PDOL, "Processing Options Data Object List (PDOL)", Binary, 0, 252, Card, false},
	{POSEntryMode, "Point-of-Service (POS) Entry Mode", Numeric, 1, 1, Terminal, false},
	{AdditionalTerminalCaps, "Additional Terminal Capabilities", Binary, 5, 5, Terminal, false},
	{TransactionSequenceCounter, "Transaction Sequence Counter", Numeric, 2, 4, Terminal, false},
	{ApplicationCurrencyCode, "Application Currency Code", Numeric, 2, 2, Card, false},
	{ApplicationCurrencyExponent, "Application Currency Exponent", Numeric, 1, 1, Card, false},
	{DataAuthenticationCode, "Data Authentication Code", Binary, 2, 2, Card, false},
	{ICCPublicKeyCertificate, "ICC Public Key Certificate", Binary, 0, 248, Card, false},
	{ICCPublicKeyExponent, "ICC Public Key Exponent", Binary, 1, 3, Card, false},
	{ICCPublicKeyRemainder, "ICC Public Key Remainder", Binary, 0, 248, Card, false},
	{DDOL, "Dynamic Data Authentication Data Object List (DDOL)", Binary, 0, 252, Card, false},
	{SDATagList, "Static Data Authentication Tag List", Binary, 0, 252, Card, false},
	{SignedDynamicData, "Signed Dynamic Application Data", Binary, 0, 248, Card, false},
	{ICCDynamicNumber, "ICC Dynamic Number", Binary, 2, 8, Card, false},
	{MerchantNameLocation, "Merchant Name and Location", AlphanumericSpecial, 0, 252, Terminal, false},
	{TransactionCategoryCode, "Transaction Category Code", Alphanumeric, 1, 1, Terminal, false},
	{IssuerScriptResults, "Issuer Script Results", Binary, 0, 252, Terminal, false},
	{TTQ, "Terminal Transaction Qualifiers (TTQ)", Binary, 4, 4, Terminal, false},
	{CardAuthRelatedData, "Card Authentication Related Data", Binary, 0, 16, Card, false},
	{Track2DataContactless, "Track 2 Data (contactless)", Binary, 0, 19, Card, true},
	{CTQ, "Card Transaction Qualifiers (CTQ)", Binary, 2, 2, Card, false},
	{FormFactorIndicator, "Form Factor Indicator / Third Party Data", Binary, 0, 32, Card, false},
	{CustomerExclusiveData, "Customer Exclusive Data", Binary, 0, 32, Card, false},
	{FCIIssuerDiscretionary, "FCI Issuer Discretionary Data", Constructed, 0, 222, Card, false},
}

var byTag = func() map[tlv.Tag]Info {
	m := make(map[tlv.Tag]Info, len(dictionary))
	for _, i := range dictionary {
		if _, dup := m[i.Tag]; dup {
			panic("tags: duplicate dictionary entry " + i.Tag.String()) // programming error in the table above
		}
		m[i.Tag] = i
	}
	return m
}()

// Lookup returns the dictionary entry of tag.
func Lookup(tag tlv.Tag) (Info, bool) {
	i, ok := byTag[tag]
	return i, ok
}

// All returns every dictionary entry in dictionary order. The slice is a
// copy.
func All() []Info { return append([]Info(nil), dictionary...) }

// IsSensitive reports whether tag's value is card data that must be
// masked. Tags missing from the dictionary count as sensitive: their
// content is unknown.
func IsSensitive(tag tlv.Tag) bool {
	i, ok := byTag[tag]
	return !ok || i.Sensitive
}

// Errors of Check.
var (
	// ErrLength means a value's length is outside its element's bounds.
	ErrLength = errors.New("tags: value length out of range")
	// ErrFormat means a value does not match its element's format (a
	// non-BCD nibble in n, bad F padding in cn, non-printable ans).
	ErrFormat = errors.New("tags: value does not match its format")
)

// Check validates a value against the dictionary entry of its tag: length
// bounds and format. Unknown tags pass. Errors name the tag, never the
// value.
func Check(x tlv.TLV) error {
	i, ok := byTag[x.Tag]
	if !ok || i.Format == Constructed {
		return nil
	}
	if len(x.Value) < i.Min || len(x.Value) > i.Max {
		return fmt.Errorf("%s (%s): %d bytes, want %d..%d: %w", x.Tag, i.Name, len(x.Value), i.Min, i.Max, ErrLength)
	}
	if !formatOK(i.Format, x.Value) {
		return fmt.Errorf("%s (%s): not %s: %w", x.Tag, i.Name, i.Format, ErrFormat)
	}
	return nil
}

func formatOK(f Format, v []byte) bool {
	switch f {
	case Numeric:
		for _, b := range v {
			if b>>4 > 9 || b&0xF > 9 {
				return false
			}
		}
	case CompressedNumeric:
		pad := false
		for _, b := range v {
			for _, n := range [2]byte{b >> 4, b & 0xF} {
				switch {
				case n == 0xF:
					pad = true
				case pad || n > 9:
					return false
				}
			}
		}
	case Alphanumeric:
		for _, b := range v {
			if !(b >= '0' && b <= '9' || b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z') {
				return false
			}
		}
	case AlphanumericSpecial:
		for _, b := range v {
			if b < 0x20 || b > 0x7E {
				return false
			}
		}
	}
	return true
}
