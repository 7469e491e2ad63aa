package sigcap_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/posgate/posgate/protocol/sigcap"
)

var meta = sigcap.Chunk{TerminalID: "T0000042", STAN: "000123", LocalTime: "260101120000",
	IdempotencyKey: "T0000042-FFFF0123456789-ab12cd34", Format: sigcap.FormatSignpadV1}

func TestSplitAndParse(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		chunks int
	}{
		{"one_byte", 1, 1},
		{"exactly_one_chunk", sigcap.ChunkBytes, 1},
		{"two_chunks", sigcap.ChunkBytes + 1, 2},
		{"max", sigcap.MaxTotal, (sigcap.MaxTotal + sigcap.ChunkBytes - 1) / sigcap.ChunkBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := bytes.Repeat([]byte{0xC3, 0x10, 0x7F}, tt.size)[:tt.size]
			cs, err := sigcap.Split(meta, data)
			if err != nil || len(cs) != tt.chunks {
				t.Fatalf("Split = %d chunks, %v; want %d", len(cs), err, tt.chunks)
			}
			var back []byte
			for _, c := range cs {
				s, err := c.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if len(s) > 999 {
					t.Fatalf("record of %d characters exceeds DE 72", len(s))
				}
				p, err := sigcap.Parse(s)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if !reflect.DeepEqual(p, c) {
					t.Fatalf("parsed %+v, want %+v", p, c)
				}
				back = append(back, p.Data...)
			}
			if !bytes.Equal(back, data) {
				t.Fatal("chunks do not rebuild the signature")
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := sigcap.Chunk{TerminalID: "T1", STAN: "000001", LocalTime: "260101120000", IdempotencyKey: "k", Format: 1, Offset: 0, Total: 3, Data: []byte{1, 2, 3}}.Marshal()
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"bad_magic", strings.Replace(good, "SIG1", "SIG2", 1)},
		{"double_space", strings.Replace(good, " ", "  ", 1)},
		{"leading_zero_total", strings.Replace(good, " 0 3 ", " 0 03 ", 1)},
		{"past_total", strings.Replace(good, " 0 3 ", " 1 3 ", 1)},
		{"format_two", strings.Replace(good, " k 1 ", " k 2 ", 1)},
		{"stan_short", strings.Replace(good, "000001", "00001", 1)},
		{"bad_base64", good[:len(good)-1] + "!"},
		{"total_too_big", strings.Replace(good, " 0 3 ", " 0 65537 ", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := sigcap.Parse(tt.in); !errors.Is(err, sigcap.ErrRecord) {
				t.Fatalf("Parse = %v, want ErrRecord", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	cs, _ := sigcap.Split(meta, bytes.Repeat([]byte("SG\x01"), 300))
	for _, c := range cs {
		s, _ := c.Marshal()
		f.Add(s)
	}
	f.Add("SIG1 a 000001 260101120000 k 1 0 1 AA==")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := sigcap.Parse(s)
		if err != nil {
			if !errors.Is(err, sigcap.ErrRecord) {
				t.Fatalf("error %v does not wrap ErrRecord", err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil || out != s {
			t.Fatalf("round trip: %q, %v; want %q", out, err, s)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	cs, _ := sigcap.Split(meta, bytes.Repeat([]byte{0x42}, sigcap.ChunkBytes))
	s, _ := cs[0].Marshal()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sigcap.Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
