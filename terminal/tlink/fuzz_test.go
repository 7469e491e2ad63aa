package tlink_test

import (
	"bytes"
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

// payloads makes an empty payload of each TLV payload type, by the index
// FuzzPayload takes; seeds gives each type's seed values.
var payloads = []struct {
	name  string
	new   func() codec
	seeds []codec
}{
	{"txn_command", func() codec { return new(tlink.TxnCommand) }, []codec{
		&tlink.TxnCommand{Ref: "S1", Amount: 1000, Currency: "392"}, &tlink.TxnCommand{Ref: "V1", OrigRef: "S1"}}},
	{"txn_result", func() codec { return new(tlink.TxnResult) }, []codec{&sampleResult}},
	{"ref_only", func() codec { return new(tlink.RefOnly) }, []codec{&tlink.RefOnly{}, &tlink.RefOnly{Ref: "q1"}}},
	{"display", func() codec { return new(tlink.Display) }, []codec{&tlink.Display{Text: "ご利用ありがとうございます", Seconds: 5}}},
	{"print", func() codec { return new(tlink.Print) }, []codec{&tlink.Print{Ref: "p1", Text: "TOTAL JPY 1,000\n"}}},
	{"print_result", func() codec { return new(tlink.PrintResult) }, []codec{&tlink.PrintResult{Ref: "p1", Status: tlink.PrintPaperOut}}},
	{"status", func() codec { return new(tlink.Status) }, []codec{&sampleStatus}},
	{"last_txn", func() codec { return new(tlink.LastTxn) }, []codec{
		&tlink.LastTxn{Ref: "q1"}, &tlink.LastTxn{Ref: "q2", Command: tlink.KindSale, Txn: &sampleResult}}},
	{"key_status", func() codec { return new(tlink.KeyStatus) }, []codec{&sampleKeys}},
	{"firmware_chunk", func() codec { return new(tlink.FirmwareChunk) }, []codec{
		&tlink.FirmwareChunk{Ref: "c1", Image: "v2.1.0", Offset: 1024, Total: 4096, Data: []byte{0, 1, 2, 3}}}},
	{"firmware_ack", func() codec { return new(tlink.FirmwareAck) }, []codec{
		&tlink.FirmwareAck{Ref: "c1", Image: "v2.1.0", NextOffset: 1028, Status: tlink.FirmwareOK}}},
	{"signature", func() codec { return new(tlink.Signature) }, []codec{
		&sampleSig, &tlink.Signature{Ref: "S9", STAN: "000001", Format: tlink.SignatureSignpadV1, Offset: 7, Total: 9, Data: []byte{1, 2}}}},
	{"signature_ack", func() codec { return new(tlink.SignatureAck) }, []codec{
		&tlink.SignatureAck{Ref: "S1", Status: tlink.SignatureComplete, NextOffset: 5}}},
}

// FuzzPayload checks the round trip of every payload type (which one: the
// first argument, modulo the number of types): whatever decodes re-encodes
// to the same bytes, and errors wrap ErrPayload or ErrMissingField.
func FuzzPayload(f *testing.F) {
	for i, p := range payloads {
		for _, s := range p.seeds {
			b, err := s.MarshalBinary()
			if err != nil {
				f.Fatalf("%s seed: %v", p.name, err)
			}
			f.Add(uint8(i), b)
		}
		f.Add(uint8(i), []byte{0x01, 0x00})
		f.Add(uint8(i), []byte{0x01, 0x00, 0x01, 0x00})
	}
	f.Fuzz(func(t *testing.T, which uint8, in []byte) {
		p := payloads[int(which)%len(payloads)]
		v := p.new()
		if err := v.UnmarshalBinary(in); err != nil {
			if !errors.Is(err, tlink.ErrPayload) && !errors.Is(err, tlink.ErrMissingField) {
				t.Fatalf("%s: error %v wraps neither ErrPayload nor ErrMissingField", p.name, err)
			}
			return
		}
		out, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: decoded payload does not encode: %v", p.name, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("%s: round trip changed the bytes:\n in  % X\n out % X", p.name, in, out)
		}
	})
}
