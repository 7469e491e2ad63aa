package dtmfrelay_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/posgate/posgate/protocol/dtmfrelay"
	"github.com/posgate/posgate/protocol/rtpevent"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		body string
		want dtmfrelay.Relay
	}{
		{"cisco", "Signal=5\r\nDuration=160\r\n", dtmfrelay.Relay{Digit: '5', Duration: 160}},
		{"no_final_crlf", "Signal=5\r\nDuration=160", dtmfrelay.Relay{Digit: '5', Duration: 160}},
		{"lf_only_and_spaces", "signal = #\nduration= 250 \n", dtmfrelay.Relay{Digit: '#', Duration: 250}},
		{"star", "Signal=*\r\nDuration=100\r\n", dtmfrelay.Relay{Digit: '*', Duration: 100}},
		{"lower_case_letter", "Signal=d\r\n", dtmfrelay.Relay{Digit: 'D'}},
		{"event_code_10_is_star", "Signal=10\r\nDuration=90\r\n", dtmfrelay.Relay{Digit: '*', Duration: 90}},
		{"event_code_11_is_hash", "Signal=11\r\n", dtmfrelay.Relay{Digit: '#'}},
		{"event_code_15_is_D", "Signal=15\r\n", dtmfrelay.Relay{Digit: 'D'}},
		{"other_keys_skipped", "Signal=0\r\nVolume=10\r\nDuration=65535\r\n\r\n", dtmfrelay.Relay{Digit: '0', Duration: 65535}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dtmfrelay.Parse([]byte(tt.body))
			if err != nil || got != tt.want {
				t.Fatalf("Parse = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty", "", dtmfrelay.ErrBody},
		{"no_signal", "Duration=160\r\n", dtmfrelay.ErrBody},
		{"no_equals", "Signal 5\r\n", dtmfrelay.ErrBody},
		{"empty_signal", "Signal=\r\n", dtmfrelay.ErrBody},
		{"signal_twice", "Signal=1\r\nSignal=2\r\n", dtmfrelay.ErrBody},
		{"duration_twice", "Signal=1\r\nDuration=1\r\nDuration=2\r\n", dtmfrelay.ErrBody},
		{"duration_not_number", "Signal=1\r\nDuration=-5\r\n", dtmfrelay.ErrBody},
		{"duration_too_big", "Signal=1\r\nDuration=65536\r\n", dtmfrelay.ErrBody},
		{"duration_six_digits", "Signal=1\r\nDuration=000160\r\n", dtmfrelay.ErrBody},
		{"control_byte", "Signal=1\x00\r\n", dtmfrelay.ErrBody},
		{"non_ascii", "Signal=１\r\n", dtmfrelay.ErrBody},
		{"empty_key", "=5\r\nSignal=1\r\n", dtmfrelay.ErrBody},
		{"too_long", "Signal=1\r\n" + string(bytes.Repeat([]byte("X=1\r\n"), 200)), dtmfrelay.ErrBody},
		{"flash", "Signal=!\r\n", dtmfrelay.ErrUnknownSignal},
		{"event_code_16", "Signal=16\r\n", dtmfrelay.ErrUnknownSignal},
		{"letter_E", "Signal=E\r\n", dtmfrelay.ErrUnknownSignal},
		{"two_digits", "Signal=55x\r\n", dtmfrelay.ErrUnknownSignal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dtmfrelay.Parse([]byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			for _, line := range strings.Split(tt.body, "\r\n") {
				if line != "" && strings.Contains(err.Error(), line) {
					t.Fatalf("error %q echoes the body", err)
				}
			}
		})
	}
}

func TestAppend(t *testing.T) {
	b, err := dtmfrelay.Append(nil, dtmfrelay.Relay{Digit: '#', Duration: 160})
	if err != nil || string(b) != "Signal=#\r\nDuration=160\r\n" {
		t.Fatalf("%q, %v", b, err)
	}
	for _, d := range rtpevent.Digits {
		r := dtmfrelay.Relay{Digit: byte(d), Duration: 80}
		b, err := dtmfrelay.Append(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := dtmfrelay.Parse(b); err != nil || got != r {
			t.Fatalf("round trip %+v: %+v, %v", r, got, err)
		}
	}
	if _, err := dtmfrelay.Append(nil, dtmfrelay.Relay{Digit: 'a'}); !errors.Is(err, dtmfrelay.ErrUnknownSignal) {
		t.Fatalf("lower-case digit: %v", err)
	}
}

func TestLogValueHidesDigit(t *testing.T) {
	v := dtmfrelay.Relay{Digit: '7', Duration: 160}.LogValue().String()
	if bytes.ContainsRune([]byte(v), '7') {
		t.Fatalf("LogValue shows the digit: %s", v)
	}
}

// FuzzParse: a body either fails with one of the sentinel errors or parses
// to a Relay whose canonical encoding parses back to the same Relay.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"Signal=5\r\nDuration=160\r\n", "signal=11\n", "Signal=!\r\n", "X=1\r\nSignal= a \r\nDuration=0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := dtmfrelay.Parse(body)
		if err != nil {
			if !errors.Is(err, dtmfrelay.ErrBody) && !errors.Is(err, dtmfrelay.ErrUnknownSignal) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !rtpevent.IsDigit(r.Digit) {
			t.Fatalf("digit %q outside the alphabet", r.Digit)
		}
		b, err := dtmfrelay.Append(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := dtmfrelay.Parse(b)
		if err != nil || again != r {
			t.Fatalf("round trip %+v -> %q -> %+v, %v", r, b, again, err)
		}
	})
}
