package iso93

import (
	"errors"
	"fmt"
	"time"

	"github.com/moov-io/iso8583"
)

// NetworkCodec builds and checks the 1804/1814 network management messages
// of the QUIC link's control stream. The zero value is usable and uses
// time.Now. A NetworkCodec is safe for concurrent use if Now is.
type NetworkCodec struct {
	// Now returns the current time for DE 7 (sent in UTC). Nil means
	// time.Now.
	Now func() time.Time
}

func (c NetworkCodec) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// SignOn returns a packed 1804 sign-on (DE 24 = 801) with DE 7 from Now,
// DE 11 = stan and DE 126 = gatewayID. stan must be at most MaxSTAN and
// gatewayID 1 to 32 printable ASCII characters; anything else is refused
// with an error wrapping ErrInvalidField.
func (c NetworkCodec) SignOn(gatewayID string, stan uint32) ([]byte, error) {
	return c.request(FunctionSignOn, gatewayID, stan)
}

// SignOff returns a packed 1804 sign-off (DE 24 = 802); see SignOn.
func (c NetworkCodec) SignOff(gatewayID string, stan uint32) ([]byte, error) {
	return c.request(FunctionSignOff, gatewayID, stan)
}

// Echo returns a packed 1804 echo test (DE 24 = 831); see SignOn.
func (c NetworkCodec) Echo(gatewayID string, stan uint32) ([]byte, error) {
	return c.request(FunctionEchoTest, gatewayID, stan)
}

func (c NetworkCodec) request(function, gatewayID string, stan uint32) ([]byte, error) {
	if stan > MaxSTAN {
		return nil, invalid(FieldSTAN, "STAN %d exceeds %d", stan, MaxSTAN)
	}
	if len(gatewayID) == 0 || len(gatewayID) > 32 {
		return nil, invalid(FieldOriginatorGatewayID, "gateway id is %d characters, want 1..32", len(gatewayID))
	}
	for i := 0; i < len(gatewayID); i++ {
		if !isPrintable(gatewayID[i]) {
			return nil, invalid(FieldOriginatorGatewayID, "gateway id character %d is not printable ASCII", i)
		}
	}
	req := NetworkManagement{Trace: Trace{
		TransmissionTime: TransmissionTime(c.now()),
		STAN:             FormatSTAN(stan),
		FunctionCode:     function,
		GatewayID:        gatewayID,
	}}
	raw, err := Pack(&req, MTINetworkManagement)
	if err != nil {
		return nil, fmt.Errorf("iso93: build 1804 function %s: %w", function, err)
	}
	return raw, nil
}

// CheckReply checks that resp answers the 1804 req: resp is a well-formed
// 1814 with the same STAN and function code and action code 800. It returns
// nil on success; a *FieldError when either message is malformed; an error
// wrapping ErrResponseMismatch when resp answers something else; and a
// *DeclineError carrying the action code otherwise.
func (NetworkCodec) CheckReply(req, resp []byte) error {
	rq, err := Peek(req)
	if err != nil {
		return fmt.Errorf("iso93: check reply: request: %w", err)
	}
	if rq.MTI != MTINetworkManagement {
		return fmt.Errorf("iso93: check reply: request is not a 1804: %w", ErrMTIMismatch)
	}
	_, msg, err := Unpack(resp)
	if err != nil {
		return fmt.Errorf("iso93: check reply: %w", err)
	}
	rs, err := Peek(resp)
	if err != nil {
		return fmt.Errorf("iso93: check reply: %w", err)
	}
	switch {
	case rs.MTI != MTINetworkManagementResponse:
		return fmt.Errorf("iso93: check reply: got MTI %s, want 1814: %w", rs.MTI, ErrResponseMismatch)
	case rs.STAN != rq.STAN:
		return fmt.Errorf("iso93: check reply: STAN differs from the request's: %w", ErrResponseMismatch)
	case rs.FunctionCode != rq.FunctionCode:
		return fmt.Errorf("iso93: check reply: function code %s, want %s: %w", rs.FunctionCode, rq.FunctionCode, ErrResponseMismatch)
	}
	if rs.ActionCode != "" && ActionCode(rs.ActionCode) != ActionNetworkAccepted {
		return &DeclineError{MTI: MTINetworkManagement, Action: ActionCode(rs.ActionCode)}
	}
	if err := Validate(msg); err != nil {
		return fmt.Errorf("iso93: check reply: %w", err)
	}
	return nil
}

// Reply is the center side of the control stream: it answers the 1804 req
// with a packed 1814. A sign-on, sign-off or echo test is answered with
// action code 800 and a nil error. Anything else (malformed bytes, another
// MTI, a missing field, another function code) is answered with a 1814
// carrying 904 and whatever of DE 7, 11 and 24 could be read, and Reply
// returns that reply together with an error saying what was wrong (a
// *FieldError or one wrapping ErrUnknownMTI), so the caller can both answer
// and log.
func (c NetworkCodec) Reply(req []byte) ([]byte, error) {
	msg, err := checkNetworkRequest(req)
	if err == nil {
		var resp *iso8583.Message
		if resp, err = NewResponse(msg, ActionNetworkAccepted); err == nil {
			var raw []byte
			if raw, err = PackMessage(resp); err == nil {
				return raw, nil
			}
		}
	}
	return c.formatErrorReply(req, err)
}

func checkNetworkRequest(req []byte) (*iso8583.Message, error) {
	mti, msg, err := Unpack(req)
	if err != nil {
		return nil, err
	}
	if mti != MTINetworkManagement {
		return nil, &FieldError{Field: FieldMTI, Reason: "control stream carries only 1804", Err: ErrUnknownMTI}
	}
	if err := Validate(msg); err != nil {
		return nil, err
	}
	fc, _ := msg.GetString(FieldFunctionCode)
	switch fc {
	case FunctionSignOn, FunctionSignOff, FunctionEchoTest:
		return msg, nil
	}
	return nil, invalid(FieldFunctionCode, "function code not accepted from a gateway")
}

// formatErrorReply builds the 904 reply, echoing DE 7, 11 and 24 when the
// request is well-formed enough to read them.
func (c NetworkCodec) formatErrorReply(req []byte, reqErr error) ([]byte, error) {
	resp := NewMessage(MTINetworkManagementResponse)
	var l layout
	if walk(req, &l) == nil {
		for _, id := range []int{FieldTransmissionTime, FieldSTAN, FieldFunctionCode} {
			if v := l.value(req, id); v != nil {
				_ = resp.BinaryField(id, v) // String.SetBytes never fails
			}
		}
	}
	if resp.GetField(FieldTransmissionTime) == nil {
		_ = resp.Field(FieldTransmissionTime, TransmissionTime(c.now()))
	}
	_ = resp.Field(FieldActionCode, string(ActionFormatError))
	raw, err := PackMessage(resp)
	if err != nil {
		return nil, errors.Join(reqErr, fmt.Errorf("iso93: pack 904 reply: %w", err))
	}
	return raw, fmt.Errorf("iso93: reply to malformed network management request: %w", reqErr)
}
