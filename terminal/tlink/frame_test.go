package tlink_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/posgate/posgate/terminal/tlink"
)

func TestChecksum(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want uint16
	}{
		{"check_string", []byte("123456789"), 0x29B1},
		{"empty", nil, 0xFFFF},
		{"worked_example", []byte{0x02, 0x20, 0x00, 0x05, 0x01, 0x00, 0x02, 'A', '1', 0x03}, 0x657A},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tlink.Checksum(tt.in); got != tt.want {
				t.Fatalf("Checksum = %04X, want %04X", got, tt.want)
			}
		})
	}
}

// allBytes is a payload holding every byte value, specials included.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		f    tlink.Frame
		wire []byte // expected wire bytes, when pinned
	}{
		{"worked_example", tlink.Frame{Type: tlink.FrameData, Seq: 2, Kind: tlink.KindStatusRequest, Payload: []byte{0x01, 0x00, 0x02, 'A', '1'}},
			[]byte{0x02, 0x10, 0x22, 0x20, 0x00, 0x05, 0x01, 0x00, 0x10, 0x22, 0x41, 0x31, 0x03, 0x65, 0x7A}},
		{"empty_payload", tlink.Frame{Type: tlink.FrameData, Seq: 0, Kind: tlink.KindStatusRequest, Payload: []byte{}}, nil},
		{"every_byte_value", tlink.Frame{Type: tlink.FrameData, Seq: 0xFF, Kind: tlink.KindFinancialRequest, Payload: allBytes()}, nil},
		{"special_seq_and_kind", tlink.Frame{Type: tlink.FrameData, Seq: tlink.DLE, Kind: tlink.Kind(tlink.NAK), Payload: []byte{tlink.STX, tlink.ETX}}, nil},
		{"ack", tlink.Frame{Type: tlink.FrameAck, Seq: 7}, []byte{0x06, 0x07}},
		{"nak_special_seq", tlink.Frame{Type: tlink.FrameNak, Seq: tlink.ACK}, []byte{0x15, 0x10, 0x26}},
		{"max_payload", tlink.Frame{Type: tlink.FrameData, Seq: 9, Kind: tlink.KindFirmwareChunk, Payload: bytes.Repeat([]byte{0x10, 0x41}, tlink.MaxPayload/2)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, err := tlink.AppendFrame(nil, tt.f)
			if err != nil {
				t.Fatalf("AppendFrame: %v", err)
			}
			if tt.wire != nil && !bytes.Equal(wire, tt.wire) {
				t.Fatalf("wire = % X, want % X", wire, tt.wire)
			}
			var d tlink.Decoder
			n, got, err := d.Next(wire)
			if err != nil || n != len(wire) {
				t.Fatalf("Next = %d, %v; want %d, nil", n, err, len(wire))
			}
			if got.Type != tt.f.Type || got.Seq != tt.f.Seq || got.Kind != tt.f.Kind || !bytes.Equal(got.Payload, tt.f.Payload) {
				t.Fatalf("decoded %v seq %d kind %v len %d, want %v seq %d kind %v len %d",
					got.Type, got.Seq, got.Kind, len(got.Payload), tt.f.Type, tt.f.Seq, tt.f.Kind, len(tt.f.Payload))
			}
			// Byte by byte gives the same frame.
			var d2 tlink.Decoder
			for i := range wire {
				n, got, err = d2.Next(wire[i : i+1])
				if err != nil || n != 1 {
					t.Fatalf("byte %d: Next = %d, %v", i, n, err)
				}
				if (got.Type != 0) != (i == len(wire)-1) {
					t.Fatalf("byte %d: frame complete = %v", i, got.Type != 0)
				}
			}
		})
	}
}

func TestAppendFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		f    tlink.Frame
		want error
	}{
		{"no_type", tlink.Frame{Seq: 1}, tlink.ErrFrameType},
		{"payload_too_long", tlink.Frame{Type: tlink.FrameData, Payload: make([]byte, tlink.MaxPayload+1)}, tlink.ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte{0xAA}
			got, err := tlink.AppendFrame(dst, tt.f)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !bytes.Equal(got, dst) {
				t.Fatalf("dst changed on error")
			}
		})
	}
}

// decodeAll runs a decoder over in and returns the frames and errors seen.
func decodeAll(d *tlink.Decoder, in []byte) (frames []tlink.Frame, errs []error) {
	for len(in) > 0 {
		n, f, err := d.Next(in)
		in = in[n:]
		switch {
		case err != nil:
			errs = append(errs, err)
		case f.Type != 0:
			f.Payload = append([]byte(nil), f.Payload...)
			frames = append(frames, f)
		}
	}
	return frames, errs
}

func mustFrame(t *testing.T, f tlink.Frame) []byte {
	t.Helper()
	b, err := tlink.AppendFrame(nil, f)
	if err != nil {
		t.Fatalf("AppendFrame: %v", err)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecoderResync(t *testing.T) {
	good := mustFrame(t, tlink.Frame{Type: tlink.FrameData, Seq: 5, Kind: tlink.KindFinancialRequest, Payload: []byte("ISO8583")})
	ack := mustFrame(t, tlink.Frame{Type: tlink.FrameAck, Seq: 4})
	corrupt := bytes.Clone(good)
	corrupt[7] ^= 0x01 // a payload byte
	half := good[:len(good)/2]

	tests := []struct {
		name       string
		in         []byte
		wantFrames int
		wantErrs   []error
		wantNoise  int
	}{
		{"noise_before_frame", cat([]byte{0xFF, 0x00, 0x41, tlink.ETX, tlink.DLE}, good), 1, nil, 5},
		{"noise_between_frames", cat(good, []byte("line noise"), good), 2, nil, 10},
		{"half_frame_then_frame", cat(half, good), 1, []error{tlink.ErrAborted}, 0},
		{"half_frame_then_ack", cat(half, ack, good), 2, []error{tlink.ErrAborted}, 0},
		{"corrupted_payload_byte", cat(corrupt, good), 1, []error{tlink.ErrBadCheck}, 0},
		{"bad_escape", cat([]byte{tlink.STX, 0x01, tlink.DLE, 0x41}, good), 1, []error{tlink.ErrBadEscape}, 0},
		{"double_dle", cat([]byte{tlink.STX, 0x01, tlink.DLE, tlink.DLE}, good), 1, []error{tlink.ErrBadEscape}, 0},
		{"length_mismatch", cat(lengthMismatch(t), good), 1, []error{tlink.ErrBadLength}, 0},
		{"short_frame", cat([]byte{tlink.STX, 0x01, tlink.ETX, 0x00, 0x00}, good), 1, []error{tlink.ErrShortFrame}, 0},
		{"etx_in_check", cat([]byte{tlink.STX, 0x01, 0x20, 0x00, 0x00, tlink.ETX, 0x11, tlink.ETX}, good), 1, []error{tlink.ErrBadEscape}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d tlink.Decoder
			frames, errs := decodeAll(&d, tt.in)
			if len(frames) != tt.wantFrames {
				t.Fatalf("got %d frames, want %d (errors %v)", len(frames), tt.wantFrames, errs)
			}
			if len(errs) != len(tt.wantErrs) {
				t.Fatalf("got errors %v, want %v", errs, tt.wantErrs)
			}
			for i, want := range tt.wantErrs {
				if !errors.Is(errs[i], want) {
					t.Fatalf("error %d = %v, want %v", i, errs[i], want)
				}
				var fe *tlink.FrameError
				if !errors.As(errs[i], &fe) {
					t.Fatalf("error %d is %T, want *FrameError", i, errs[i])
				}
			}
			if d.Noise() != tt.wantNoise {
				t.Fatalf("noise = %d, want %d", d.Noise(), tt.wantNoise)
			}
			last := frames[len(frames)-1]
			if last.Seq != 5 || string(last.Payload) != "ISO8583" {
				t.Fatalf("last frame seq %d payload len %d, want the good frame", last.Seq, len(last.Payload))
			}
		})
	}
}

// lengthMismatch builds a frame whose length field says 3 but carries 2
// payload bytes, with a correct check value.
func lengthMismatch(t *testing.T) []byte {
	t.Helper()
	body := []byte{0x01, 0x20, 0x00, 0x03, 'a', 'b'}
	c := tlink.Checksum(append(bytes.Clone(body), tlink.ETX))
	return cat([]byte{tlink.STX}, stuff(body), []byte{tlink.ETX}, stuff([]byte{byte(c >> 8), byte(c)}))
}

// stuff escapes the special bytes of p.
func stuff(p []byte) []byte {
	var out []byte
	for _, b := range p {
		switch b {
		case tlink.STX, tlink.ETX, tlink.ACK, tlink.DLE, tlink.NAK:
			out = append(out, tlink.DLE, b^0x20)
		default:
			out = append(out, b)
		}
	}
	return out
}

func TestDecoderBadCheckReportsSeq(t *testing.T) {
	wire := mustFrame(t, tlink.Frame{Type: tlink.FrameData, Seq: 42, Kind: tlink.KindSale, Payload: []byte("x")})
	wire[len(wire)-1] ^= 0xFF
	var d tlink.Decoder
	_, errs := decodeAll(&d, wire)
	var fe *tlink.FrameError
	if len(errs) != 1 || !errors.As(errs[0], &fe) || !fe.HaveSeq || fe.Seq != 42 || !errors.Is(fe, tlink.ErrBadCheck) {
		t.Fatalf("errors = %v, want one bad-check FrameError for seq 42", errs)
	}
}

func TestDecoderLimit(t *testing.T) {
	wire := mustFrame(t, tlink.Frame{Type: tlink.FrameData, Seq: 1, Kind: tlink.KindPrint, Payload: make([]byte, 11)})
	ok := mustFrame(t, tlink.Frame{Type: tlink.FrameData, Seq: 2, Kind: tlink.KindPrint, Payload: make([]byte, 10)})
	d := tlink.Decoder{Limit: 10}
	frames, errs := decodeAll(&d, cat(wire, ok))
	if len(errs) != 1 || !errors.Is(errs[0], tlink.ErrTooLong) {
		t.Fatalf("errors = %v, want one ErrTooLong", errs)
	}
	if len(frames) != 1 || frames[0].Seq != 2 {
		t.Fatalf("frames = %d, want the 10-byte frame only", len(frames))
	}
}

func TestDecoderReset(t *testing.T) {
	wire := mustFrame(t, tlink.Frame{Type: tlink.FrameData, Seq: 3, Kind: tlink.KindSale, Payload: []byte("abc")})
	tests := []struct {
		name    string
		in      []byte
		wantErr bool
		inFrame bool
	}{
		{"idle", nil, false, false},
		{"half_data_frame", wire[:4], true, true},
		{"half_control_frame", []byte{tlink.ACK}, false, true},
		{"after_full_frame", wire, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d tlink.Decoder
			decodeAll(&d, tt.in)
			if d.InFrame() != tt.inFrame {
				t.Fatalf("InFrame = %v, want %v", d.InFrame(), tt.inFrame)
			}
			err := d.Reset()
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, tlink.ErrAborted)) {
				t.Fatalf("Reset = %v, want error %v", err, tt.wantErr)
			}
			if d.InFrame() {
				t.Fatal("InFrame after Reset")
			}
			frames, errs := decodeAll(&d, wire)
			if len(frames) != 1 || len(errs) != 0 {
				t.Fatalf("after Reset: %d frames, errors %v", len(frames), errs)
			}
		})
	}
}
