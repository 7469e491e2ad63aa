package link

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"github.com/posgate/posgate/protocol/iso93"
	"github.com/quic-go/quic-go"
)

// memStream is an in-memory streamIO: the request is read from in, the
// response collects in out. Reads past in behave like a FIN.
type memStream struct {
	in          *bytes.Reader
	out         bytes.Buffer
	closed      bool
	readCancel  quic.StreamErrorCode
	writeCancel quic.StreamErrorCode
	canceled    bool
}

func (m *memStream) Read(p []byte) (int, error)  { return m.in.Read(p) }
func (m *memStream) Write(p []byte) (int, error) { return m.out.Write(p) }
func (m *memStream) Close() error                { m.closed = true; return nil }
func (m *memStream) CancelRead(c quic.StreamErrorCode) {
	m.readCancel, m.canceled = c, true
}
func (m *memStream) CancelWrite(c quic.StreamErrorCode) {
	m.writeCancel, m.canceled = c, true
}
func (m *memStream) SetReadDeadline(time.Time) error  { return nil }
func (m *memStream) SetWriteDeadline(time.Time) error { return nil }
func (m *memStream) Context() context.Context         { return context.Background() }

var identity = HandlerFunc(func(_ context.Context, _ Peer, req []byte) ([]byte, error) { return req, nil })

func serveMem(in []byte, max int) *memStream {
	m := &memStream{in: bytes.NewReader(in)}
	serveStream(context.Background(), m, identity, Peer{GatewayID: "gw"},
		streamLimits{maxMessage: max, streamTimeout: time.Second, handlerTimeout: time.Second},
		slog.New(slog.DiscardHandler))
	return m
}

func TestServeStream(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		max    int
		wantOK bool
	}{
		{"one_frame", []byte{0, 3, 'a', 'b', 'c'}, 0, true},
		{"at_limit", []byte{0, 2, 'a', 'b'}, 2, true},
		{"over_limit", []byte{0, 3, 'a', 'b', 'c'}, 2, false},
		{"empty_frame", []byte{0, 0}, 0, false},
		{"nothing", nil, 0, false},
		{"truncated", []byte{0, 4, 'a'}, 0, false},
		{"trailing", []byte{0, 1, 'a', 0}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := serveMem(tt.in, tt.max)
			if tt.wantOK {
				if !bytes.Equal(m.out.Bytes(), tt.in) || !m.closed || m.canceled {
					t.Fatalf("out %x closed %v canceled %v", m.out.Bytes(), m.closed, m.canceled)
				}
				return
			}
			if m.out.Len() != 0 || m.writeCancel != StreamBadFrame || m.readCancel != StreamBadFrame {
				t.Fatalf("bad input: out %d bytes, cancel codes %#x/%#x", m.out.Len(), m.readCancel, m.writeCancel)
			}
		})
	}
}

// FuzzServeStream feeds arbitrary bytes as a request stream to an identity
// handler. Exactly one well-formed frame must come back unchanged on a
// cleanly closed stream; anything else must be reset as a bad frame with
// nothing written.
func FuzzServeStream(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c'}, uint16(0))
	f.Add([]byte{0, 0}, uint16(0))
	f.Add([]byte{0xFF, 0xFF, 1}, uint16(16))
	f.Add([]byte{0, 1, 'a', 0, 1, 'b'}, uint16(0))
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, max16 uint16) {
		max := int(max16)
		limit := max
		if limit == 0 {
			limit = 0xFFFF
		}
		valid := len(in) >= 3
		if valid {
			n := int(binary.BigEndian.Uint16(in))
			valid = n > 0 && n <= limit && len(in) == 2+n
		}
		m := serveMem(in, max)
		if valid {
			if !bytes.Equal(m.out.Bytes(), in) || !m.closed || m.canceled {
				t.Fatalf("valid frame of %d bytes: out %d bytes, closed %v, canceled %v", len(in), m.out.Len(), m.closed, m.canceled)
			}
			return
		}
		if m.out.Len() != 0 || m.closed || m.writeCancel != StreamBadFrame {
			t.Fatalf("invalid input of %d bytes: out %d bytes, closed %v, cancel %#x", len(in), m.out.Len(), m.closed, m.writeCancel)
		}
	})
}

func TestNextSTANWraps(t *testing.T) {
	c := &Client{}
	c.stan.Store(iso93.MaxSTAN - 1)
	for _, want := range []uint32{iso93.MaxSTAN, 1, 2} {
		if got := c.nextSTAN(); got != want {
			t.Fatalf("got %d, want %d", got, want)
		}
	}
}
