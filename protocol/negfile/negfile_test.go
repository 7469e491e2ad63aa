package negfile_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/posgate/posgate/protocol/negfile"
)

// fp returns a deterministic test fingerprint (not derived from any PAN).
func fp(i int) string {
	s := sha256.Sum256([]byte(fmt.Sprint("test-fp-", i)))
	return hex.EncodeToString(s[:16])
}

func sortedFPs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fp(i)
	}
	slices.Sort(out)
	return out
}

func TestRoundTrip(t *testing.T) {
	fps := sortedFPs(3)
	tests := []struct {
		name  string
		chunk negfile.Chunk
		code  string
	}{
		{"snapshot", negfile.Chunk{Op: negfile.OpSnapshot, Version: 42, Seq: 1, Total: 2, Fingerprints: fps}, "304"},
		{"empty_snapshot", negfile.Chunk{Op: negfile.OpSnapshot, Version: 0, Seq: 1, Total: 1}, "304"},
		{"delta_add", negfile.Chunk{Op: negfile.OpAdd, Base: 41, Version: 42, Seq: 1, Total: 1, Fingerprints: fps[:1]}, "301"},
		{"delta_delete", negfile.Chunk{Op: negfile.OpDelete, Base: 7, Version: 1 << 40, Seq: 3, Total: 3, Fingerprints: []string{fps[2], fps[0]}}, "303"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := negfile.Marshal(tt.chunk)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := negfile.ParseFileAction(tt.code, b)
			if err != nil {
				t.Fatalf("ParseFileAction: %v", err)
			}
			if got.Op != tt.chunk.Op || got.Base != tt.chunk.Base || got.Version != tt.chunk.Version ||
				got.Seq != tt.chunk.Seq || got.Total != tt.chunk.Total || !slices.Equal(got.Fingerprints, tt.chunk.Fingerprints) {
				t.Fatalf("round trip changed the chunk header or records (op %s v%d seq %d/%d, %d records)", got.Op, got.Version, got.Seq, got.Total, len(got.Fingerprints))
			}
			for _, c := range b {
				if c < 0x20 || c > 0x7e {
					t.Fatalf("chunk has a non-printable byte %#x; DE 72 is ans", c)
				}
			}
		})
	}
}

func TestGoldenChunk(t *testing.T) {
	// The wire form is pinned so the center and the gateway cannot drift.
	c := negfile.Chunk{Op: negfile.OpAdd, Base: 1, Version: 2, Seq: 1, Total: 1,
		Fingerprints: []string{"0622241201382a45912fb22828b3f7db"}}
	b, err := negfile.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	// CRC-32C computed independently (bitwise Castagnoli in Python).
	const want = "NF1 846e344b A 1 2 1 1 0622241201382a45912fb22828b3f7db"
	if string(b) != want {
		t.Fatalf("wire form changed: got %q", b)
	}
}

func TestParseRejects(t *testing.T) {
	good, err := negfile.Marshal(negfile.Chunk{Op: negfile.OpSnapshot, Version: 5, Seq: 1, Total: 1, Fingerprints: sortedFPs(2)})
	if err != nil {
		t.Fatal(err)
	}
	flip := bytes.Clone(good)
	flip[len(flip)-1] ^= 1
	reseal := func(body string) []byte {
		// Build a chunk with a correct checksum around a bad body by
		// brute force over the public encoder is impossible, so compute
		// the CRC the same way the format defines it.
		return []byte("NF1 " + crcHex(body) + " " + body)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, negfile.ErrMalformed},
		{"truncated", good[:len(good)-5], negfile.ErrChecksum},
		{"bit_flip", flip, negfile.ErrChecksum},
		{"no_magic", append([]byte("XX1"), good[3:]...), negfile.ErrMalformed},
		{"upper_case_crc", bytes.ToUpper(good[:12]), negfile.ErrMalformed},
		{"leading_zero", reseal("S 0 05 1 1"), negfile.ErrMalformed},
		{"seq_zero", reseal("S 0 5 0 1"), negfile.ErrMalformed},
		{"seq_past_total", reseal("S 0 5 2 1"), negfile.ErrMalformed},
		{"delta_not_forward", reseal("A 5 5 1 1"), negfile.ErrMalformed},
		{"snapshot_with_base", reseal("S 1 5 1 1"), negfile.ErrMalformed},
		{"unknown_op", reseal("Q 0 5 1 1"), negfile.ErrMalformed},
		{"partial_fingerprint", reseal("A 1 5 1 1 0622241201382a45912fb22828b3f7d"), negfile.ErrMalformed},
		{"upper_case_fingerprint", reseal("A 1 5 1 1 0622241201382A45912FB22828B3F7DB"), negfile.ErrMalformed},
		{"trailing_space", reseal("A 1 5 1 1 "), negfile.ErrMalformed},
		{"snapshot_unsorted", reseal("S 0 5 1 1 " + sortedFPs(2)[1] + sortedFPs(2)[0]), negfile.ErrMalformed},
		{"version_overflow", reseal("S 0 18446744073709551616 1 1"), negfile.ErrMalformed},
		{"too_long", make([]byte, negfile.MaxChunkLen+1), negfile.ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := negfile.Parse(tt.in)
			if !errors.Is(err, tt.want) || !errors.Is(err, negfile.ErrMalformed) {
				t.Fatalf("Parse error = %v, want %v wrapping ErrMalformed", err, tt.want)
			}
		})
	}
}

func TestParseFileActionChecksFunctionCode(t *testing.T) {
	b, err := negfile.Marshal(negfile.Chunk{Op: negfile.OpDelete, Base: 1, Version: 2, Seq: 1, Total: 1, Fingerprints: sortedFPs(1)})
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"301", "304", "", "999"} {
		t.Run("code_"+code, func(t *testing.T) {
			if _, err := negfile.ParseFileAction(code, b); !errors.Is(err, negfile.ErrFunctionCode) {
				t.Fatalf("ParseFileAction(%q) = %v, want ErrFunctionCode", code, err)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	fps := sortedFPs(100)
	tests := []struct {
		name          string
		op            negfile.Op
		base, version uint64
		adds, dels    []string
		maxLen        int
		wantChunks    int
	}{
		{"snapshot_de72", negfile.OpSnapshot, 0, 9, fps, nil, negfile.MaxDE72, 4},
		{"snapshot_stream", negfile.OpSnapshot, 0, 9, fps, nil, 64 << 10, 1},
		{"empty_snapshot", negfile.OpSnapshot, 0, 9, nil, nil, negfile.MaxDE72, 1},
		{"delta_mixed", negfile.OpAdd, 8, 9, fps[:40], fps[40:50], negfile.MaxDE72, 3},
		{"empty_delta", negfile.OpAdd, 8, 9, nil, nil, negfile.MaxDE72, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks, err := negfile.Split(tt.op, tt.base, tt.version, tt.adds, tt.dels, tt.maxLen)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if len(chunks) != tt.wantChunks {
				t.Fatalf("Split made %d chunks, want %d", len(chunks), tt.wantChunks)
			}
			var adds, dels []string
			for i, c := range chunks {
				b, err := negfile.Marshal(c)
				if err != nil {
					t.Fatalf("chunk %d: %v", i+1, err)
				}
				if len(b) > tt.maxLen {
					t.Fatalf("chunk %d is %d bytes, limit %d", i+1, len(b), tt.maxLen)
				}
				if c.Seq != uint32(i+1) || c.Total != uint32(len(chunks)) {
					t.Fatalf("chunk %d numbered %d/%d", i+1, c.Seq, c.Total)
				}
				if c.Op == negfile.OpDelete {
					dels = append(dels, c.Fingerprints...)
				} else {
					adds = append(adds, c.Fingerprints...)
				}
			}
			if !slices.Equal(adds, tt.adds) || !slices.Equal(dels, tt.dels) {
				t.Fatalf("chunks carry %d adds and %d deletes, want %d and %d", len(adds), len(dels), len(tt.adds), len(tt.dels))
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range []negfile.Chunk{
		{Op: negfile.OpSnapshot, Version: 3, Seq: 1, Total: 1, Fingerprints: sortedFPs(2)},
		{Op: negfile.OpAdd, Base: 2, Version: 3, Seq: 2, Total: 4, Fingerprints: sortedFPs(1)},
		{Op: negfile.OpDelete, Base: 0, Version: 1, Seq: 1, Total: 1},
	} {
		b, err := negfile.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("NF1 00000000 S 0 1 1 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := negfile.Parse(b)
		if err != nil {
			if !errors.Is(err, negfile.ErrMalformed) {
				t.Fatalf("Parse error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out, err := negfile.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal of a parsed chunk: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip changed %d bytes into %d different bytes", len(b), len(out))
		}
		if _, err := negfile.ParseFileAction(c.Op.FunctionCode(), b); err != nil {
			t.Fatalf("ParseFileAction with the op's own code: %v", err)
		}
	})
}
