package sigcap_test

import (
	"errors"
	"testing"

	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/sigcap"
)

// TestFileActionRoundTrip: the 1304 a gateway packs carries the record
// the center parses, and the 1314 the center packs reads back as its
// action code.
func TestFileActionRoundTrip(t *testing.T) {
	c := sigcap.Chunk{TerminalID: "TERM0001", STAN: "000042", LocalTime: "261124101500", IdempotencyKey: "K-1",
		Format: sigcap.FormatSignpadV1, Offset: 0, Total: 3, Data: []byte("SG\x01")}
	raw, err := sigcap.PackRecord(iso93.Trace{TransmissionTime: "1124101500", STAN: "000001", FunctionCode: "999", IdempotencyKey: "SG-1"}, c)
	if err != nil {
		t.Fatal(err)
	}
	var fa iso93.FileAction
	if err := iso93.UnpackInto(raw, &fa); err != nil {
		t.Fatal(err)
	}
	if fa.FileName != sigcap.FileName || fa.FunctionCode != iso93.FunctionAddRecord {
		t.Fatalf("1304 names %q with function %q", fa.FileName, fa.FunctionCode)
	}
	got, err := sigcap.Parse(fa.DataRecord)
	if err != nil || got.IdempotencyKey != c.IdempotencyKey || string(got.Data) != string(c.Data) {
		t.Fatalf("DE 72 parses to %+v, %v", got, err)
	}
	_, req, err := iso93.Unpack(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []iso93.ActionCode{iso93.ActionApproved, iso93.ActionFormatError} {
		resp, err := sigcap.PackAnswer(req, action)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := sigcap.ParseAnswer(resp); err != nil || back != action {
			t.Fatalf("ParseAnswer = %s, %v; want %s", back, err, action)
		}
	}
	if _, err := sigcap.PackRecord(iso93.Trace{}, sigcap.Chunk{}); !errors.Is(err, sigcap.ErrRecord) {
		t.Fatalf("invalid chunk: %v, want ErrRecord", err)
	}
}
