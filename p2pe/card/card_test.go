package card_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/p2pe/card"
)

const testPAN = "4111111111111111"

func mustPAN(t *testing.T, s string) card.PAN {
	t.Helper()
	p, err := card.ParsePAN(s)
	if err != nil {
		t.Fatalf("ParsePAN(%s): %v", card.PAN{}.Masked(), err)
	}
	return p
}

func TestLuhn(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"visa_test_card", "4111111111111111", true},
		{"x924_pan", "4012345678909", true},
		{"amex_test_card", "378282246310005", true},
		{"check_digit_off_by_one", "4111111111111112", false},
		{"single_zero", "0", false},
		{"two_zeros", "00", true},
		{"empty", "", false},
		{"letter", "41111111111a1111", false},
		{"space", "4111 1111 1111 1111", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := card.Luhn(tt.in); got != tt.want {
				t.Fatalf("Luhn = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLuhnCheckDigit(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    byte
		wantErr bool
	}{
		{"visa_test_card", "411111111111111", '1', false},
		{"x924_pan", "401234567890", '9', false},
		{"zero_result", "0", '0', false},
		{"empty", "", 0, true},
		{"not_digits", "12a", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := card.LuhnCheckDigit(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("check digit %q, want %q", got, tt.want)
			}
			if err == nil && !card.Luhn(tt.in+string(got)) {
				t.Fatal("number with computed check digit fails Luhn")
			}
		})
	}
}

func TestParsePAN(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
		masked  string
	}{
		{"sixteen_digits", testPAN, nil, "411111******1111"},
		{"thirteen_digits", "4012345678909", nil, "401234***8909"},
		{"nineteen_digits", "6011000990139424" + "000", nil, ""},
		{"too_short", "41111111111", card.ErrPANLength, ""},
		{"too_long", "41111111111111111111", card.ErrPANLength, ""},
		{"bad_luhn", "4111111111111112", card.ErrLuhn, ""},
		{"non_digit", "4111-1111-1111-1111", card.ErrNotDigits, ""},
		{"empty", "", card.ErrNotDigits, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if tt.name == "nineteen_digits" {
				d, err := card.LuhnCheckDigit(in[:18])
				if err != nil {
					t.Fatal(err)
				}
				in = in[:18] + string(d)
			}
			p, err := card.ParsePAN(in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if in != "" && strings.Contains(err.Error(), in) {
					t.Fatal("error text carries the input")
				}
				return
			}
			if p.Digits() != in || p.Len() != len(in) {
				t.Fatal("Digits does not return the parsed number")
			}
			if tt.masked != "" && p.Masked() != tt.masked {
				t.Fatalf("masked %s, want %s", p.Masked(), tt.masked)
			}
			if p.BIN() != in[:6] || p.Last4() != in[len(in)-4:] {
				t.Fatalf("BIN %s last4 %s", p.BIN(), p.Last4())
			}
		})
	}
}

func TestZeroValues(t *testing.T) {
	var p card.PAN
	if !p.IsZero() || p.Masked() != "" || p.BIN() != "" || p.Last4() != "" {
		t.Fatal("zero PAN not empty")
	}
	var e card.Expiry
	if !e.IsZero() || e.Year() != 0 || e.Month() != 0 || e.Expired(time.Now()) {
		t.Fatal("zero expiry not empty")
	}
	var tr card.Track2
	if !tr.IsZero() || tr.ServiceCode() != "" || !tr.Expiry().IsZero() {
		t.Fatal("zero track not empty")
	}
	if _, err := tr.PAN(); !errors.Is(err, card.ErrTrack2) {
		t.Fatalf("zero track PAN err %v", err)
	}
	if !(card.SecurityCode{}).IsZero() {
		t.Fatal("zero security code not empty")
	}
}

// TestNoClearValueThroughFmtOrSlog prints every secret type with every
// common verb and both slog handlers and checks the clear value never shows.
func TestNoClearValueThroughFmtOrSlog(t *testing.T) {
	pan := mustPAN(t, testPAN)
	tr, err := card.ParseTrack2(testPAN + "=25121010000012300000")
	if err != nil {
		t.Fatal(err)
	}
	cvv, err := card.ParseSecurityCode("987")
	if err != nil {
		t.Fatal(err)
	}
	type holder struct {
		P card.PAN
		T card.Track2
		C card.SecurityCode
	}
	values := []struct {
		name   string
		v      any
		secret string
	}{
		{"pan", pan, testPAN},
		{"pan_pointer", &pan, testPAN},
		{"track2", tr, tr.Data()},
		{"security_code", cvv, "987"},
		{"struct_of_all", holder{pan, tr, cvv}, testPAN},
		{"struct_of_all_cvv", holder{pan, tr, cvv}, "987"},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.30s"}
	for _, tt := range values {
		t.Run(tt.name, func(t *testing.T) {
			for _, verb := range verbs {
				if out := fmt.Sprintf(verb, tt.v); strings.Contains(out, tt.secret) {
					t.Errorf("%s shows the clear value", verb)
				}
			}
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", tt.v)
			slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", tt.v)
			if strings.Contains(buf.String(), tt.secret) {
				t.Error("slog shows the clear value")
			}
			j, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(j), tt.secret) {
				t.Error("encoding/json shows the clear value")
			}
		})
	}
	if got := fmt.Sprint(pan); got != "411111******1111" {
		t.Fatalf("PAN prints %s", got)
	}
	if got := fmt.Sprint(tr, cvv); got != "[redacted] [redacted]" {
		t.Fatalf("track and code print %s", got)
	}
}

func TestParseExpiry(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		year    int
		month   time.Month
		wantErr bool
	}{
		{"december", "2512", 2025, time.December, false},
		{"january", "3001", 2030, time.January, false},
		{"month_zero", "2500", 0, 0, true},
		{"month_thirteen", "2513", 0, 0, true},
		{"too_short", "251", 0, 0, true},
		{"letters", "25A1", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := card.ParseExpiry(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, card.ErrExpiry) {
					t.Fatalf("err %v is not ErrExpiry", err)
				}
				if strings.Contains(err.Error(), tt.in) {
					t.Fatal("error carries the expiry")
				}
				return
			}
			if e.Year() != tt.year || e.Month() != tt.month || e.String() != tt.in {
				t.Fatalf("got %d-%d %s", e.Year(), e.Month(), e)
			}
		})
	}
}

func TestExpired(t *testing.T) {
	e, err := card.ParseExpiry("2512")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"last_moment_of_month", time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{"first_day_after", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"long_before", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.Expired(tt.now); got != tt.want {
				t.Fatalf("Expired = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseTrack2(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		service string
		wantErr bool
	}{
		{"equals_separator", testPAN + "=25121010000012300000", "101", false},
		{"d_separator_f_pad", testPAN + "D2512201123F", "201", false},
		{"minimal", testPAN + "=2512101", "101", false},
		{"no_separator", testPAN + "25121010000", "", true},
		{"bad_pan", "4111111111111112=25121010000", "", true},
		{"short_after_separator", testPAN + "=251210", "", true},
		{"bad_month", testPAN + "=25131010000", "", true},
		{"letters_in_discretionary", testPAN + "=2512101ABC", "", true},
		{"too_long", testPAN + "=2512101" + strings.Repeat("0", 14), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := card.ParseTrack2(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), testPAN) || strings.Contains(err.Error(), "4111111111111112") {
					t.Fatal("error carries card data")
				}
				return
			}
			p, err := tr.PAN()
			if err != nil || p.Digits() != testPAN {
				t.Fatalf("track PAN %v, %v", p, err)
			}
			if tr.Expiry().String() != "2512" || tr.ServiceCode() != tt.service {
				t.Fatalf("expiry %s service %s", tr.Expiry(), tr.ServiceCode())
			}
			if tr.Data() != tt.in {
				t.Fatal("Data does not return the parsed track")
			}
		})
	}
}

func TestParseSecurityCode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"three", "123", false},
		{"four", "1234", false},
		{"two", "12", true},
		{"five", "12345", true},
		{"letter", "12a", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := card.ParseSecurityCode(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && c.Digits() != tt.in {
				t.Fatal("Digits does not return the parsed code")
			}
			if err != nil && !errors.Is(err, card.ErrSecurityCode) {
				t.Fatalf("err %v is not ErrSecurityCode", err)
			}
		})
	}
}

func FuzzParsePAN(f *testing.F) {
	for _, s := range []string{testPAN, "4012345678909", "4111111111111112", "", "12ab"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := card.ParsePAN(s)
		if err != nil {
			return
		}
		// Round trip: the digits parse back to the same PAN, and the
		// masked form never shows the middle digits.
		q, err := card.ParsePAN(p.Digits())
		if err != nil || q != p {
			t.Fatalf("re-parse of accepted PAN failed: %v", err)
		}
		m := p.Masked()
		if len(m) != len(s) || m[:6] != s[:6] || m[len(m)-4:] != s[len(s)-4:] || strings.Trim(m[6:len(m)-4], "*") != "" {
			t.Fatalf("bad mask %s", m)
		}
	})
}

func FuzzParseTrack2(f *testing.F) {
	for _, s := range []string{testPAN + "=25121010000012300000", testPAN + "D2512201123F", "=", "D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := card.ParseTrack2(s)
		if err != nil {
			return
		}
		// Round trip: accepted data parses back identically and its parts
		// are themselves valid.
		again, err := card.ParseTrack2(tr.Data())
		if err != nil || again != tr {
			t.Fatalf("re-parse failed: %v", err)
		}
		if _, err := tr.PAN(); err != nil {
			t.Fatalf("track PAN: %v", err)
		}
		if _, err := card.ParseExpiry(tr.Expiry().String()); err != nil {
			t.Fatalf("track expiry: %v", err)
		}
		if fmt.Sprint(tr) != card.Redacted {
			t.Fatal("track prints its data")
		}
	})
}
