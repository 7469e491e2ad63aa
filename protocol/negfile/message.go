package negfile

import (
	"errors"
	"fmt"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/protocol/iso93"
)

// ErrNotNegFile reports a 1304 or 1314 that does not name FileName in
// DE 101.
var ErrNotNegFile = errors.New("negfile: file action does not name the negative file")

// PackInquiry packs the 1304 a gateway sends to ask for the next chunk:
// the trace data elements of tr, DE 24 FunctionReplace (whatever
// tr.FunctionCode says), DE 72 q.Encode() and DE 101 FileName.
func PackInquiry(tr iso93.Trace, q Inquiry) ([]byte, error) {
	tr.FunctionCode = FunctionReplace
	fa := iso93.FileAction{Trace: tr, DataRecord: q.Encode(), FileName: FileName}
	raw, err := iso93.Pack(&fa, iso93.MTIFileAction)
	if err != nil {
		return nil, fmt.Errorf("pack negative-file inquiry: %w", err)
	}
	return raw, nil
}

// ReadInquiry reads the inquiry of an unpacked 1304. It returns an error
// wrapping ErrNotNegFile when DE 101 is not FileName and one wrapping
// ErrBadInquiry when DE 72 is not an inquiry.
func ReadInquiry(msg *iso8583.Message) (Inquiry, error) {
	var fa iso93.FileAction
	if err := msg.Unmarshal(&fa); err != nil || fa.FileName != FileName {
		return Inquiry{}, fmt.Errorf("read 1304: %w", ErrNotNegFile)
	}
	q, err := ParseInquiry(fa.DataRecord)
	if err != nil {
		return Inquiry{}, fmt.Errorf("read 1304: %w", err)
	}
	return q, nil
}

// PackAnswer packs the 1314 answering the 1304 req with action: DE 101
// FileName and, when c is not nil, DE 24 c's function code and DE 72 the
// chunk's wire form. A gateway that is current gets 000 without a chunk.
func PackAnswer(req *iso8583.Message, action iso93.ActionCode, c *Chunk) ([]byte, error) {
	resp, err := iso93.NewResponse(req, action)
	if err != nil {
		return nil, fmt.Errorf("build 1314: %w", err)
	}
	if err := resp.Field(iso93.FieldFileName, FileName); err != nil {
		return nil, fmt.Errorf("set 1314 file name: %w", err)
	}
	if c != nil {
		b, err := Marshal(*c)
		if err != nil {
			return nil, fmt.Errorf("marshal negative-file chunk: %w", err)
		}
		if err := resp.Field(iso93.FieldFunctionCode, c.Op.FunctionCode()); err != nil {
			return nil, fmt.Errorf("set 1314 function code: %w", err)
		}
		if err := resp.Field(iso93.FieldDataRecord, string(b)); err != nil {
			return nil, fmt.Errorf("set 1314 data record: %w", err)
		}
	}
	raw, err := iso93.PackMessage(resp)
	if err != nil {
		return nil, fmt.Errorf("pack 1314: %w", err)
	}
	return raw, nil
}

// Answer is what a gateway reads from a 1314.
type Answer struct {
	Action iso93.ActionCode
	// FunctionCode is DE 24, the function code of the chunk carried.
	FunctionCode string
	// DataRecord is DE 72, the chunk's wire form (for ParseFileAction),
	// empty when the 1314 carries none: the gateway is current.
	DataRecord []byte
}

// ParseAnswer reads a packed 1314. It returns an error wrapping
// ErrNotNegFile when DE 101 is not FileName.
func ParseAnswer(raw []byte) (Answer, error) {
	mti, msg, err := iso93.Unpack(raw)
	if err != nil {
		return Answer{}, err
	}
	if mti != iso93.MTIFileActionResponse {
		return Answer{}, fmt.Errorf("answer is a %s, want %s", mti, iso93.MTIFileActionResponse)
	}
	var r iso93.FileActionResponse
	if err := msg.Unmarshal(&r); err != nil {
		return Answer{}, err
	}
	if r.FileName != FileName {
		return Answer{}, fmt.Errorf("answer names file %q, want %s: %w", r.FileName, FileName, ErrNotNegFile)
	}
	a := Answer{Action: r.ActionCode, FunctionCode: r.FunctionCode}
	if msg.GetField(iso93.FieldDataRecord) != nil {
		s, err := msg.GetString(iso93.FieldDataRecord)
		if err != nil {
			return Answer{}, err
		}
		a.DataRecord = []byte(s)
	}
	return a, nil
}
