package iso93_test

import (
	"errors"
	"testing"
	"time"

	"github.com/posgate/posgate/protocol/iso93"
)

func TestNetworkCodec(t *testing.T) {
	c := iso93.NetworkCodec{Now: func() time.Time { return testNow }}
	build := map[string]func(string, uint32) ([]byte, error){
		"sign_on":  c.SignOn,
		"sign_off": c.SignOff,
		"echo":     c.Echo,
	}
	wantFC := map[string]string{"sign_on": "801", "sign_off": "802", "echo": "831"}
	for name, fn := range build {
		t.Run(name, func(t *testing.T) {
			req, err := fn("gw-0001", 7)
			if err != nil {
				t.Fatal(err)
			}
			var nm iso93.NetworkManagement
			if err := iso93.UnpackInto(req, &nm); err != nil {
				t.Fatal(err)
			}
			if nm.FunctionCode != wantFC[name] || nm.STAN != "000007" || nm.GatewayID != "gw-0001" || nm.TransmissionTime != "0304050607" {
				t.Fatalf("request = %+v", nm)
			}
			resp, err := c.Reply(req)
			if err != nil {
				t.Fatalf("Reply: %v", err)
			}
			if err := c.CheckReply(req, resp); err != nil {
				t.Fatalf("CheckReply: %v", err)
			}
		})
	}
}

func TestNetworkCodecZeroValue(t *testing.T) {
	var c iso93.NetworkCodec
	req, err := c.Echo("gw", 0)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Reply(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckReply(req, resp); err != nil {
		t.Fatal(err)
	}
}

func TestNetworkCodecRefusesBadInput(t *testing.T) {
	c := iso93.NetworkCodec{Now: func() time.Time { return testNow }}
	tests := []struct {
		name string
		gw   string
		stan uint32
	}{
		{"stan_too_large", "gw", 1_000_000},
		{"empty_gateway_id", "", 1},
		{"gateway_id_too_long", "123456789012345678901234567890123", 1},
		{"gateway_id_control_byte", "gw\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.SignOn(tt.gw, tt.stan); !errors.Is(err, iso93.ErrInvalidField) {
				t.Fatalf("error = %v, want ErrInvalidField", err)
			}
		})
	}
}

func TestNetworkReplyMalformed(t *testing.T) {
	c := iso93.NetworkCodec{Now: func() time.Time { return testNow }}
	signOn, err := c.SignOn("gw-0001", 9)
	if err != nil {
		t.Fatal(err)
	}
	noSTAN := iso93.NewMessage(iso93.MTINetworkManagement)
	_ = noSTAN.Field(iso93.FieldTransmissionTime, "0304050607")
	_ = noSTAN.Field(iso93.FieldFunctionCode, "801")
	noSTANRaw, err := iso93.PackMessage(noSTAN)
	if err != nil {
		t.Fatal(err)
	}
	negFile, err := iso93.Pack(&iso93.NetworkManagement{Trace: iso93.Trace{TransmissionTime: "0304050607", STAN: "000009", FunctionCode: "881"}}, "1804")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		req      []byte
		want     error
		echoSTAN string
	}{
		{"garbage", []byte("hello"), iso93.ErrMalformed, ""},
		{"truncated", signOn[:len(signOn)-2], iso93.ErrMalformed, ""},
		{"missing_stan", noSTANRaw, iso93.ErrMissingField, ""},
		{"not_network_management", validRaw(t), iso93.ErrUnknownMTI, "000123"},
		{"function_not_from_gateway", negFile, iso93.ErrInvalidField, "000009"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Reply(tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Reply error = %v, want %v", err, tt.want)
			}
			h, perr := iso93.Peek(resp)
			if perr != nil {
				t.Fatalf("904 reply is malformed: %v", perr)
			}
			if h.MTI != "1814" || h.ActionCode != "904" || h.STAN != tt.echoSTAN {
				t.Fatalf("reply header = %+v", h)
			}
		})
	}
}

func TestCheckReply(t *testing.T) {
	c := iso93.NetworkCodec{Now: func() time.Time { return testNow }}
	req, err := c.SignOn("gw-0001", 5)
	if err != nil {
		t.Fatal(err)
	}
	resp := func(stan, fc string, action iso93.ActionCode) []byte {
		t.Helper()
		raw, err := iso93.Pack(&iso93.NetworkManagementResponse{Trace: iso93.Trace{TransmissionTime: "0304050607", STAN: stan, FunctionCode: fc}, ActionCode: action}, "1814")
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	echoReq, err := c.Echo("gw-0001", 5)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    []byte
		resp   []byte
		want   error
		action iso93.ActionCode
	}{
		{"accepted", req, resp("000005", "801", "800"), nil, ""},
		{"other_stan", req, resp("000006", "801", "800"), iso93.ErrResponseMismatch, ""},
		{"other_function", req, resp("000005", "831", "800"), iso93.ErrResponseMismatch, ""},
		{"declined", req, resp("000005", "801", "909"), nil, iso93.ActionSystemMalfunction},
		{"not_a_response", req, echoReq, iso93.ErrResponseMismatch, ""},
		{"malformed_response", req, []byte("1814"), iso93.ErrMalformed, ""},
		{"request_not_1804", validRaw(t), resp("000123", "801", "800"), iso93.ErrMTIMismatch, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.CheckReply(tt.req, tt.resp)
			if tt.action != "" {
				de, ok := errors.AsType[*iso93.DeclineError](err)
				if !ok || de.Action != tt.action {
					t.Fatalf("error = %v, want *DeclineError %s", err, tt.action)
				}
				return
			}
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
}
