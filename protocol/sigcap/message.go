package sigcap

import (
	"fmt"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/protocol/iso93"
)

// PackRecord packs the 1304 that carries one record: the trace data
// elements of tr, DE 24 iso93.FunctionAddRecord (whatever tr.FunctionCode
// says), DE 72 c's record and DE 101 FileName. An invalid c is refused with
// an error wrapping ErrRecord.
func PackRecord(tr iso93.Trace, c Chunk) ([]byte, error) {
	rec, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	tr.FunctionCode = iso93.FunctionAddRecord
	fa := iso93.FileAction{Trace: tr, DataRecord: rec, FileName: FileName}
	raw, err := iso93.Pack(&fa, iso93.MTIFileAction)
	if err != nil {
		return nil, fmt.Errorf("pack 1304: %w", err)
	}
	return raw, nil
}

// PackAnswer packs the 1314 answering the SIGCAP 1304 req with action and
// DE 101 FileName.
func PackAnswer(req *iso8583.Message, action iso93.ActionCode) ([]byte, error) {
	resp, err := iso93.NewResponse(req, action)
	if err != nil {
		return nil, fmt.Errorf("build 1314: %w", err)
	}
	if err := resp.Field(iso93.FieldFileName, FileName); err != nil {
		return nil, fmt.Errorf("set 1314 file name: %w", err)
	}
	raw, err := iso93.PackMessage(resp)
	if err != nil {
		return nil, fmt.Errorf("pack 1314: %w", err)
	}
	return raw, nil
}

// ParseAnswer reads a packed 1314 answering a SIGCAP 1304 and returns its
// action code.
func ParseAnswer(raw []byte) (iso93.ActionCode, error) {
	mti, msg, err := iso93.Unpack(raw)
	if err != nil {
		return "", err
	}
	if mti != iso93.MTIFileActionResponse {
		return "", fmt.Errorf("signature answer is a %s, want %s", mti, iso93.MTIFileActionResponse)
	}
	var r iso93.FileActionResponse
	if err := msg.Unmarshal(&r); err != nil {
		return "", err
	}
	return r.ActionCode, nil
}
