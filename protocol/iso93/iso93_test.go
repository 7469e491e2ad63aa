package iso93_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/moov-io/iso8583"
	"github.com/posgate/posgate/protocol/iso93"
)

type typedCase struct {
	name string
	mti  string
	v    any
	zero func() any
}

func typedCases(t testing.TB) []typedCase {
	t.Helper()
	orig, err := iso93.OriginalData{MTI: "1200", STAN: "000122", LocalTime: "260304140500", AcquirerID: "12345678901"}.Encode()
	if err != nil {
		t.Fatalf("encode DE 56: %v", err)
	}
	net, err := iso93.FormatNetAmount(-98765)
	if err != nil {
		t.Fatalf("format DE 97: %v", err)
	}
	tr := func(fc string) iso93.Trace { x := testTrace(); x.FunctionCode = fc; return x }
	advice := &iso93.Advice{Trace: tr(iso93.FunctionPreviousApproval), Payment: testPayment(), Card: testCard(), ApprovalCode: "SI0001"}
	advice.ReasonCode = iso93.ReasonStandIn
	reversal := &iso93.Reversal{Trace: tr(iso93.FunctionFullReversal), Payment: testPayment(), OriginalData: orig, Fingerprint: testFingerprint}
	reversal.ReasonCode = iso93.ReasonTimeoutReversal
	fileAction := &iso93.FileAction{Trace: tr(iso93.FunctionAddRecord), DataRecord: "V000042;" + testFingerprint, FileName: "NEGFILE"}
	recon := &iso93.Reconciliation{Trace: tr(iso93.FunctionReconciliation), Currency: "392", CreditsNumber: 2, DebitsNumber: 10, CreditsAmount: 1000, DebitsAmount: 99765, NetAmount: net}
	nm := &iso93.NetworkManagement{Trace: tr(iso93.FunctionEchoTest)}
	auth := typical1100()
	authResp := auth.Response(iso93.ActionApproved)
	authResp.ApprovalCode = "123456"
	authResp.ICCData = []byte{0x91, 0x0A, 1, 2, 3, 4, 5, 6, 7, 8, 0x30, 0x30}
	pan := sale1200()
	pan.Card = iso93.Card{PAN: testPAN, PINData: []byte{1, 2, 3, 4, 5, 6, 7, 8}, ICCData: []byte{0x9F, 0x26, 0x08, 1, 2, 3, 4, 5, 6, 7, 8}}
	return []typedCase{
		{"authorization_request", iso93.MTIAuthorizationRequest, auth, func() any { return new(iso93.AuthorizationRequest) }},
		{"authorization_response", iso93.MTIAuthorizationResponse, authResp, func() any { return new(iso93.AuthorizationResponse) }},
		{"financial_request", iso93.MTIFinancialRequest, sale1200(), func() any { return new(iso93.FinancialRequest) }},
		{"financial_request_center_to_center", iso93.MTIFinancialRequest, pan, func() any { return new(iso93.FinancialRequest) }},
		{"financial_response", iso93.MTIFinancialResponse, sale1210(), func() any { return new(iso93.FinancialResponse) }},
		{"advice", iso93.MTIAdvice, advice, func() any { return new(iso93.Advice) }},
		{"advice_repeat", iso93.MTIAdviceRepeat, advice, func() any { return new(iso93.Advice) }},
		{"advice_response", iso93.MTIAdviceResponse, advice.Response(iso93.ActionApproved), func() any { return new(iso93.AdviceResponse) }},
		{"reversal", iso93.MTIReversal, reversal, func() any { return new(iso93.Reversal) }},
		{"reversal_repeat", iso93.MTIReversalRepeat, reversal, func() any { return new(iso93.Reversal) }},
		{"reversal_response", iso93.MTIReversalResponse, reversal.Response(iso93.ActionReversalAccepted), func() any { return new(iso93.ReversalResponse) }},
		{"file_action", iso93.MTIFileAction, fileAction, func() any { return new(iso93.FileAction) }},
		{"file_action_response", iso93.MTIFileActionResponse, fileAction.Response(iso93.ActionApproved), func() any { return new(iso93.FileActionResponse) }},
		{"reconciliation", iso93.MTIReconciliation, recon, func() any { return new(iso93.Reconciliation) }},
		{"reconciliation_response", iso93.MTIReconciliationResponse, recon.Response(iso93.ActionApproved), func() any { return new(iso93.ReconciliationResponse) }},
		{"network_management", iso93.MTINetworkManagement, nm, func() any { return new(iso93.NetworkManagement) }},
		{"network_management_response", iso93.MTINetworkManagementResponse, nm.Response(iso93.ActionNetworkAccepted), func() any { return new(iso93.NetworkManagementResponse) }},
	}
}

func TestPackUnpackIntoRoundTrip(t *testing.T) {
	for _, tc := range typedCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := iso93.Pack(tc.v, tc.mti)
			if err != nil {
				t.Fatalf("Pack: %v", err)
			}
			got := tc.zero()
			if err := iso93.UnpackInto(raw, got); err != nil {
				t.Fatalf("UnpackInto: %v", err)
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, tc.v)
			}
			h, err := iso93.Peek(raw)
			if err != nil {
				t.Fatalf("Peek: %v", err)
			}
			if h.MTI != tc.mti {
				t.Fatalf("Peek MTI %q, want %q", h.MTI, tc.mti)
			}
			if !strings.HasPrefix(string(raw), tc.mti) {
				t.Fatalf("packed message does not start with the MTI")
			}
		})
	}
}

func TestPackErrors(t *testing.T) {
	noSTAN := typical1100()
	noSTAN.STAN = ""
	badSTAN := typical1100()
	badSTAN.STAN = "12a456"
	longTID := typical1100()
	longTID.TerminalID = "TERM00012"
	badKSN := typical1100()
	badKSN.KSN = testKSN[:11]
	badFP := typical1100()
	badFP.Fingerprint = strings.ToUpper(testFingerprint)
	noCard := typical1100()
	noCard.Card = iso93.Card{}
	bothCard := typical1100()
	bothCard.PAN = testPAN
	wrongFC := typical1100()
	wrongFC.FunctionCode = iso93.FunctionOriginalFinancial
	pinNoPAN := typical1100()
	pinNoPAN.PINData = make([]byte, 8)
	shortPIN := typical1100()
	shortPIN.PINBlock = make([]byte, 8)
	approvedNoCode := typical1100().Response(iso93.ActionApproved)
	badProc := typical1100()
	badProc.ProcessingCode = "010000"
	tests := []struct {
		name  string
		v     any
		mti   string
		field int
		want  error
	}{
		{"missing_stan", noSTAN, "1100", iso93.FieldSTAN, iso93.ErrMissingField},
		{"non_digit_stan", badSTAN, "1100", iso93.FieldSTAN, iso93.ErrInvalidField},
		{"terminal_id_too_long", longTID, "1100", iso93.FieldTerminalID, iso93.ErrInvalidField},
		{"ksn_wrong_length", badKSN, "1100", iso93.FieldKSN, iso93.ErrInvalidField},
		{"fingerprint_upper_case", badFP, "1100", iso93.FieldFingerprint, iso93.ErrInvalidField},
		{"no_card_data", noCard, "1100", iso93.FieldCardData, iso93.ErrMissingField},
		{"pan_and_block", bothCard, "1100", iso93.FieldCardData, iso93.ErrInvalidField},
		{"wrong_function_code", wrongFC, "1100", iso93.FieldFunctionCode, iso93.ErrInvalidField},
		{"pin_data_without_pan", pinNoPAN, "1100", iso93.FieldPINData, iso93.ErrInvalidField},
		{"pin_block_wrong_length", shortPIN, "1100", iso93.FieldPINBlock, iso93.ErrInvalidField},
		{"approved_without_approval_code", approvedNoCode, "1110", iso93.FieldApprovalCode, iso93.ErrInvalidField},
		{"unsupported_processing_code", badProc, "1100", iso93.FieldProcessingCode, iso93.ErrInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := iso93.Pack(tt.v, tt.mti)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Pack error = %v, want %v", err, tt.want)
			}
			fe, ok := errors.AsType[*iso93.FieldError](err)
			if !ok || fe.Field != tt.field {
				t.Fatalf("Pack error = %v, want *FieldError for field %d", err, tt.field)
			}
			if fe.ActionCode() != iso93.ActionFormatError {
				t.Fatalf("ActionCode = %s", fe.ActionCode())
			}
			if strings.Contains(err.Error(), testPAN) {
				t.Fatal("error carries the PAN")
			}
		})
	}
	t.Run("mti_of_other_class", func(t *testing.T) {
		if _, err := iso93.Pack(typical1100(), "1200"); !errors.Is(err, iso93.ErrMTIMismatch) {
			t.Fatalf("error = %v, want ErrMTIMismatch", err)
		}
	})
	t.Run("not_a_message_type", func(t *testing.T) {
		if _, err := iso93.Pack(struct{}{}, "1100"); err == nil {
			t.Fatal("Pack of a foreign type succeeded")
		}
	})
}

// validRaw returns a packed 1100 and the offset of each part, for the
// malformation table.
func validRaw(t *testing.T) []byte {
	t.Helper()
	raw, err := iso93.Pack(typical1100(), "1100")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestUnpackMalformed(t *testing.T) {
	raw := validRaw(t)
	// Offsets in the typical 1100: MTI 0..4, bitmap 4..20 (secondary
	// present), DE 3 at 20; DE 32 is "11" + "12345678901".
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(raw)) }
	tests := []struct {
		name  string
		in    []byte
		field int
	}{
		{"empty", nil, iso93.FieldMTI},
		{"short_mti", []byte("11"), iso93.FieldMTI},
		{"non_digit_mti", mutate(func(b []byte) []byte { b[1] = 'X'; return b }), iso93.FieldMTI},
		{"truncated_bitmap", raw[:8], iso93.FieldBitmap},
		{"truncated_secondary_bitmap", raw[:14], iso93.FieldBitmap},
		{"tertiary_bitmap", mutate(func(b []byte) []byte { b[12] |= 0x80; return b }), iso93.FieldBitmap},
		{"undefined_field", mutate(func(b []byte) []byte { b[4] |= 0x08; return b }), 5}, // DE 5 is not in Spec
		{"length_prefix_not_decimal", mutate(func(b []byte) []byte { b[bytes.Index(b, []byte("11123"))] = 'x'; return b }), iso93.FieldAcquirerID},
		{"length_prefix_over_max", mutate(func(b []byte) []byte { i := bytes.Index(b, []byte("11123")); b[i], b[i+1] = '1', '2'; return b }), iso93.FieldAcquirerID},
		{"non_digit_processing_code", mutate(func(b []byte) []byte { b[21] = 'A'; return b }), iso93.FieldProcessingCode},
		{"truncated_last_field", raw[:len(raw)-1], iso93.FieldOriginatorGatewayID},
		{"trailing_bytes", append(bytes.Clone(raw), '0'), iso93.FieldOriginatorGatewayID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := iso93.Unpack(tt.in)
			fe, ok := errors.AsType[*iso93.FieldError](err)
			if !ok || !errors.Is(err, iso93.ErrMalformed) {
				t.Fatalf("Unpack error = %v, want *FieldError wrapping ErrMalformed", err)
			}
			if fe.Field != tt.field {
				t.Fatalf("field %d (%v), want %d", fe.Field, err, tt.field)
			}
			if _, err := iso93.Peek(tt.in); err == nil {
				t.Fatal("Peek accepted what Unpack rejects")
			}
		})
	}
}

func TestErrorsCarryNoCardData(t *testing.T) {
	// A center-to-center 1200 whose DE 2 is followed by garbage: the
	// error must name the field, not quote it.
	req := sale1200()
	req.Card = iso93.Card{PAN: testPAN}
	raw, err := iso93.Pack(req, "1200")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(testPAN))
	bad := bytes.Clone(raw)
	bad[i+3] = 0x01 // control byte inside the PAN
	_, _, err = iso93.Unpack(bad)
	if err == nil {
		t.Fatal("Unpack accepted a control byte in DE 2")
	}
	for _, s := range []string{testPAN, testPAN[:6] + "\x01", testPAN[len(testPAN)-4:]} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error %q carries card data", iso93.MaskPAN(err.Error()))
		}
	}
	if fe, _ := errors.AsType[*iso93.FieldError](err); fe == nil || fe.Field != iso93.FieldPAN {
		t.Fatalf("error = %v, want field 2", err)
	}
}

func TestPANMasking(t *testing.T) {
	req := sale1200()
	req.Card = iso93.Card{PAN: testPAN}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		t.Run(strings.Trim(verb, "%#+"), func(t *testing.T) {
			out := fmt.Sprintf(verb, req)
			if strings.Contains(out, testPAN) {
				t.Fatalf("%s of a message shows the PAN", verb)
			}
		})
	}
	if got, want := iso93.MaskPAN(testPAN), "476173******0119"; got != want {
		t.Fatalf("MaskPAN = %q, want %q", got, want)
	}
	if got := iso93.MaskPAN("123456"); got != "******" {
		t.Fatalf("MaskPAN(short) = %q", got)
	}
}

func TestDescribeMasks(t *testing.T) {
	req := sale1200()
	req.Card = iso93.Card{PAN: testPAN, PINData: []byte{0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0}}
	raw, err := iso93.Pack(req, "1200")
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := iso93.Unpack(raw)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := iso93.Describe(&buf, msg); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, secret := range []string{testPAN, "123456789ABCDEF0", "123456789abcdef0"} {
		if strings.Contains(out, secret) {
			t.Fatalf("Describe output shows card data:\n%s", strings.ReplaceAll(out, testPAN, iso93.MaskPAN(testPAN)))
		}
	}
	if !strings.Contains(out, "[redacted]") || !strings.Contains(out, "TERM0001") {
		t.Fatalf("Describe output lacks expected content:\n%s", out)
	}
}

func TestNewResponse(t *testing.T) {
	raw := validRaw(t)
	_, req, err := iso93.Unpack(raw)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := iso93.NewResponse(req, iso93.ActionDoNotHonour)
	if err != nil {
		t.Fatal(err)
	}
	if mti, _ := resp.GetMTI(); mti != "1110" {
		t.Fatalf("MTI %s", mti)
	}
	for _, id := range []int{3, 4, 7, 11, 12, 24, 32, 41, 42, 49, 123} {
		a, _ := req.GetString(id)
		b, _ := resp.GetString(id)
		if a != b || a == "" {
			t.Fatalf("field %d not echoed", id)
		}
	}
	for _, id := range []int{120, 121, 122, 22, 126} {
		if resp.GetField(id) != nil {
			t.Fatalf("field %d echoed", id)
		}
	}
	if ac, _ := resp.GetString(39); ac != "100" {
		t.Fatalf("DE 39 = %q", ac)
	}
	rraw, err := iso93.PackMessage(resp)
	if err != nil {
		t.Fatal(err)
	}
	var typed iso93.AuthorizationResponse
	if err := iso93.UnpackInto(rraw, &typed); err != nil {
		t.Fatalf("UnpackInto: %v", err)
	}
	// The typed helper builds the same skeleton.
	want := typical1100().Response(iso93.ActionDoNotHonour)
	if !reflect.DeepEqual(&typed, want) {
		t.Fatalf("NewResponse and Response differ:\n%+v\n%+v", typed, *want)
	}

	repeat := iso93.NewMessage(iso93.MTIAdviceRepeat)
	if r, err := iso93.NewResponse(repeat, iso93.ActionApproved); err != nil {
		t.Fatal(err)
	} else if mti, _ := r.GetMTI(); mti != "1230" {
		t.Fatalf("response to 1221 is %s, want 1230", mti)
	}
	if _, err := iso93.NewResponse(iso93.NewMessage("1110"), iso93.ActionApproved); !errors.Is(err, iso93.ErrUnknownMTI) {
		t.Fatalf("response to a response: %v", err)
	}
}

func TestUnpackIntoWrongType(t *testing.T) {
	raw := validRaw(t)
	var v iso93.FinancialRequest
	if err := iso93.UnpackInto(raw, &v); !errors.Is(err, iso93.ErrMTIMismatch) {
		t.Fatalf("error = %v, want ErrMTIMismatch", err)
	}
}

func TestValidateUnknownMTI(t *testing.T) {
	msg := iso93.NewMessage("1999")
	if err := iso93.Validate(msg); !errors.Is(err, iso93.ErrUnknownMTI) {
		t.Fatalf("error = %v", err)
	}
}

func TestActionCode(t *testing.T) {
	tests := []struct {
		code     iso93.ActionCode
		approved bool
		desc     string
	}{
		{iso93.ActionApproved, true, "approved"},
		{iso93.ActionHonourWithID, true, "honour with identification"},
		{iso93.ActionReversalAccepted, true, "accepted (reversal)"},
		{iso93.ActionNetworkAccepted, true, "accepted (network management)"},
		{iso93.ActionDoNotHonour, false, "do not honour"},
		{iso93.ActionFormatError, false, "format error"},
		{iso93.ActionRequestInProgress, false, "request in progress"},
		{"555", false, "action code 555"},
		{"", false, "invalid action code"},
		{"12x", false, "invalid action code"},
	}
	for _, tt := range tests {
		t.Run("code_"+string(tt.code), func(t *testing.T) {
			if tt.code.Approved() != tt.approved {
				t.Fatalf("Approved = %v", !tt.approved)
			}
			if d := tt.code.Description(); d != tt.desc {
				t.Fatalf("Description = %q, want %q", d, tt.desc)
			}
		})
	}
}

func TestOriginalData(t *testing.T) {
	o := iso93.OriginalData{MTI: "1100", STAN: "000001", LocalTime: "260304140607", AcquirerID: "123"}
	s, err := o.Encode()
	if err != nil || s != "110000000126030414060703123" {
		t.Fatalf("Encode = %q, %v", s, err)
	}
	back, err := iso93.ParseOriginalData(s)
	if err != nil || back != o {
		t.Fatalf("Parse = %+v, %v", back, err)
	}
	for _, bad := range []string{"", "1100000001260304140607", "11000000012603041406070312", "1100000001260304140607031234", "11000000012603041406070312X"} {
		if _, err := iso93.ParseOriginalData(bad); !errors.Is(err, iso93.ErrInvalidField) {
			t.Errorf("Parse(%q) error = %v", bad, err)
		}
	}
	if _, err := (iso93.OriginalData{MTI: "11", STAN: "000001", LocalTime: "260304140607"}).Encode(); err == nil {
		t.Error("Encode accepted a 2-digit MTI")
	}
}

func TestNetAmount(t *testing.T) {
	tests := []struct {
		name string
		net  int64
		want string
	}{
		{"credit", 1234, "C0000000000001234"},
		{"zero", 0, "C0000000000000000"},
		{"debit", -1234, "D0000000000001234"},
		{"max", 9999999999999999, "C9999999999999999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := iso93.FormatNetAmount(tt.net)
			if err != nil || s != tt.want {
				t.Fatalf("Format = %q, %v", s, err)
			}
			v, err := iso93.ParseNetAmount(s)
			if err != nil || v != tt.net {
				t.Fatalf("Parse = %d, %v", v, err)
			}
		})
	}
	if _, err := iso93.FormatNetAmount(-1 << 63); err == nil {
		t.Error("Format accepted MinInt64")
	}
	for _, bad := range []string{"", "X0000000000000001", "C000000000000001", "C00000000000000a1"} {
		if _, err := iso93.ParseNetAmount(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

// fieldValues returns every field of msg as a string, for comparisons.
func fieldValues(t testing.TB, msg *iso8583.Message) map[int]string {
	t.Helper()
	out := map[int]string{}
	for id, f := range msg.GetFields() {
		if id == iso93.FieldBitmap {
			continue
		}
		b, err := f.Bytes()
		if err != nil {
			t.Fatalf("field %d: %v", id, err)
		}
		out[id] = string(b)
	}
	return out
}
