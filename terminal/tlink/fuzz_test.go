package tlink_test

import (
	"bytes"
	"encoding"
	"errors"
	"testing"

	"github.com/posgate/posgate/terminal/tlink"
)

// FuzzDecode feeds arbitrary bytes to the decoder. Every frame it returns
// must re-encode to exactly the bytes it was decoded from; every error must
// be a *FrameError with a frame sentinel; and a good frame sent after the
// noise must always come out (resynchronisation).
func FuzzDecode(f *testing.F) {
	good, _ := tlink.AppendFrame(nil, tlink.Frame{Type: tlink.FrameData, Seq: 0x10, Kind: tlink.KindFinancialRequest, Payload: []byte{0x02, 0x03, 0x06, 0x10, 0x15, 0x20}})
	ack, _ := tlink.AppendFrame(nil, tlink.Frame{Type: tlink.FrameAck, Seq: 0x02})
	f.Add(good)
	f.Add(ack)
	f.Add(append(bytes.Clone(good[:5]), good...))
	f.Add([]byte{tlink.STX, tlink.DLE, 0x22, 0x20, 0x00, 0x05, 0x01, 0x00, tlink.DLE, 0x22, 'A', '1', tlink.ETX, 0x65, 0x7A})
	f.Add([]byte{tlink.STX, 0x01, tlink.ETX, 0x00})
	f.Add([]byte("\x15\x10"))
	sentinels := []error{tlink.ErrBadCheck, tlink.ErrBadLength, tlink.ErrTooLong, tlink.ErrBadEscape, tlink.ErrAborted, tlink.ErrShortFrame}
	f.Fuzz(func(t *testing.T, in []byte) {
		d := tlink.Decoder{Limit: 1024}
		pos := 0
		rest := in
		for len(rest) > 0 {
			n, fr, err := d.Next(rest)
			if n < 0 || n > len(rest) || (n == 0 && err == nil) {
				t.Fatalf("Next consumed %d of %d", n, len(rest))
			}
			rest = rest[n:]
			pos += n
			if err != nil {
				var fe *tlink.FrameError
				if !errors.As(err, &fe) {
					t.Fatalf("error %T is not a *FrameError", err)
				}
				known := false
				for _, s := range sentinels {
					known = known || errors.Is(err, s)
				}
				if !known {
					t.Fatalf("error %v wraps no frame sentinel", err)
				}
				continue
			}
			if fr.Type == 0 {
				continue
			}
			wire, err := tlink.AppendFrame(nil, fr)
			if err != nil {
				t.Fatalf("re-encode decoded frame: %v", err)
			}
			if pos < len(wire) || !bytes.Equal(in[pos-len(wire):pos], wire) {
				t.Fatalf("frame re-encodes to % X, not to the bytes it came from", wire)
			}
		}
		// Resynchronisation: the good frame after any noise decodes.
		frames, _ := decodeAll(&d, good)
		if len(frames) == 0 || frames[len(frames)-1].Seq != 0x10 || len(frames[len(frames)-1].Payload) != 6 {
			t.Fatalf("good frame after noise not decoded: %d frames", len(frames))
		}
	})
}

// payload is a pointer to a payload type.
type payload[T any] interface {
	*T
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

// fuzzPayload checks the round trip of one payload type: whatever decodes
// re-encodes to the same bytes, and errors wrap ErrPayload or
// ErrMissingField.
func fuzzPayload[T any, P payload[T]](f *testing.F, seeds ...P) {
	for _, s := range seeds {
		b, err := s.MarshalBinary()
		if err != nil {
			f.Fatalf("seed: %v", err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x01, 0x00})
	f.Add([]byte{0x01, 0x00, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		var v T
		p := P(&v)
		if err := p.UnmarshalBinary(in); err != nil {
			if !errors.Is(err, tlink.ErrPayload) && !errors.Is(err, tlink.ErrMissingField) {
				t.Fatalf("error %v wraps neither ErrPayload nor ErrMissingField", err)
			}
			return
		}
		out, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded payload does not encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("round trip changed the bytes:\n in  % X\n out % X", in, out)
		}
	})
}

func FuzzPayloadTxnCommand(f *testing.F) {
	fuzzPayload(f, &tlink.TxnCommand{Ref: "S1", Amount: 1000, Currency: "392"}, &tlink.TxnCommand{Ref: "V1", OrigRef: "S1"})
}

func FuzzPayloadTxnResult(f *testing.F) {
	fuzzPayload(f, &sampleResult)
}

func FuzzPayloadRefOnly(f *testing.F) {
	fuzzPayload(f, &tlink.RefOnly{}, &tlink.RefOnly{Ref: "q1"})
}

func FuzzPayloadDisplay(f *testing.F) {
	fuzzPayload(f, &tlink.Display{Text: "ご利用ありがとうございます", Seconds: 5})
}

func FuzzPayloadPrint(f *testing.F) {
	fuzzPayload(f, &tlink.Print{Ref: "p1", Text: "TOTAL JPY 1,000\n"})
}

func FuzzPayloadPrintResult(f *testing.F) {
	fuzzPayload(f, &tlink.PrintResult{Ref: "p1", Status: tlink.PrintPaperOut})
}

func FuzzPayloadStatus(f *testing.F) {
	fuzzPayload(f, &sampleStatus)
}

func FuzzPayloadLastTxn(f *testing.F) {
	fuzzPayload(f, &tlink.LastTxn{Ref: "q1"}, &tlink.LastTxn{Ref: "q2", Command: tlink.KindSale, Txn: &sampleResult})
}

func FuzzPayloadKeyStatus(f *testing.F) {
	fuzzPayload(f, &sampleKeys)
}

func FuzzPayloadFirmwareChunk(f *testing.F) {
	fuzzPayload(f, &tlink.FirmwareChunk{Ref: "c1", Image: "v2.1.0", Offset: 1024, Total: 4096, Data: []byte{0, 1, 2, 3}})
}

func FuzzPayloadFirmwareAck(f *testing.F) {
	fuzzPayload(f, &tlink.FirmwareAck{Ref: "c1", Image: "v2.1.0", NextOffset: 1028, Status: tlink.FirmwareOK})
}
