package iso93

// Header is what the forwarding path needs from a message, read by Peek
// without unpacking it. Absent fields are empty strings (nil for KSN).
type Header struct {
	MTI            string
	STAN           string // DE 11
	TerminalID     string // DE 41
	FunctionCode   string // DE 24
	Fingerprint    string // DE 122
	IdempotencyKey string // DE 123
	ActionCode     string // DE 39
	KSN            []byte // DE 121; aliases the raw message passed to Peek
}

// Peek reads the MTI and bitmap of raw, walks every present field using the
// length rules of Spec (derived from Spec's own prefixers and encoders, so
// they cannot disagree) and returns the header fields, without building a
// moov message. It validates the structure and character sets exactly as
// Unpack does, so Peek fails whenever Unpack fails and, when both succeed,
// their values agree. It does not call Validate. Header.KSN aliases raw;
// the strings do not. Errors are *FieldError values wrapping ErrMalformed.
// Peek is safe for concurrent use.
func Peek(raw []byte) (Header, error) {
	var l layout
	if err := walk(raw, &l); err != nil {
		return Header{}, err
	}
	// Copy all string fields into one allocation and slice it.
	parts := [...][]byte{
		raw[l.mti.off:l.mti.end],
		l.value(raw, FieldSTAN),
		l.value(raw, FieldTerminalID),
		l.value(raw, FieldFunctionCode),
		l.value(raw, FieldFingerprint),
		l.value(raw, FieldIdempotencyKey),
		l.value(raw, FieldActionCode),
	}
	var buf [256]byte
	all := buf[:0]
	for _, p := range parts {
		all = append(all, p...)
	}
	s := string(all)
	var strs [len(parts)]string
	at := 0
	for i, p := range parts {
		strs[i] = s[at : at+len(p)]
		at += len(p)
	}
	return Header{
		MTI:            strs[0],
		STAN:           strs[1],
		TerminalID:     strs[2],
		FunctionCode:   strs[3],
		Fingerprint:    strs[4],
		IdempotencyKey: strs[5],
		ActionCode:     strs[6],
		KSN:            l.value(raw, FieldKSN),
	}, nil
}
