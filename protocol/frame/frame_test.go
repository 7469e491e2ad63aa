package frame_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/posgate/posgate/protocol/frame"
)

func TestReadWrite(t *testing.T) {
	var buf bytes.Buffer
	msgs := [][]byte{[]byte("1200"), bytes.Repeat([]byte{0xAB}, 300), {0}}
	for _, m := range msgs {
		if err := frame.Write(&buf, m); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	for i, want := range msgs {
		got, err := frame.Read(&buf, 0)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %x want %x", i, got, want)
		}
	}
	if _, err := frame.Read(&buf, 0); err != io.EOF {
		t.Fatalf("at end: got %v, want io.EOF", err)
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"empty_frame", []byte{0, 0}, 0, frame.ErrEmpty},
		{"half_header", []byte{0}, 0, frame.ErrTruncated},
		{"short_body", []byte{0, 5, 1, 2}, 0, frame.ErrTruncated},
		{"over_limit", []byte{0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 4, frame.ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := frame.Read(bytes.NewReader(tt.in), tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	if err := frame.Write(io.Discard, nil); !errors.Is(err, frame.ErrEmpty) {
		t.Fatalf("empty body: got %v", err)
	}
	if err := frame.Write(io.Discard, make([]byte, frame.MaxLen+1)); !errors.Is(err, frame.ErrTooLong) {
		t.Fatalf("long body: got %v", err)
	}
}

func TestLengthHeader(t *testing.T) {
	var buf bytes.Buffer
	if _, err := frame.WriteLength(&buf, 300); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x01, 0x2C}; !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("header %x, want %x", buf.Bytes(), want)
	}
	if n, err := frame.ReadLength(&buf); err != nil || n != 300 {
		t.Fatalf("ReadLength = %d, %v; want 300", n, err)
	}
	tests := []struct {
		name string
		n    int
		want error
	}{
		{"zero", 0, frame.ErrEmpty},
		{"too_long", frame.MaxLen + 1, frame.ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := frame.WriteLength(io.Discard, tt.n); !errors.Is(err, tt.want) {
				t.Fatalf("WriteLength(%d) = %v, want %v", tt.n, err, tt.want)
			}
		})
	}
	if _, err := frame.ReadLength(bytes.NewReader([]byte{0, 0})); !errors.Is(err, frame.ErrEmpty) {
		t.Fatalf("zero header: %v, want ErrEmpty", err)
	}
}

// FuzzRead checks that any byte stream either yields frames that re-encode to
// exactly the bytes consumed, or a specific error.
func FuzzRead(f *testing.F) {
	f.Add([]byte{0, 4, '1', '2', '0', '0'})
	f.Add([]byte{0, 0})
	f.Add([]byte{0xFF, 0xFF, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var out []byte
		for {
			body, err := frame.Read(r, 0)
			if err != nil {
				if err == io.EOF {
					if !bytes.Equal(out, in) {
						t.Fatalf("re-encoded %x, input %x", out, in)
					}
					return
				}
				if !errors.Is(err, frame.ErrEmpty) && !errors.Is(err, frame.ErrTruncated) && !errors.Is(err, frame.ErrTooLong) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			out, err = frame.Append(out, body)
			if err != nil {
				t.Fatalf("append read frame: %v", err)
			}
		}
	})
}
