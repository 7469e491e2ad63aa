package tlv_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/posgate/posgate/emv/tlv"
)

// FuzzDecode checks that everything Decode accepts is canonical (it
// encodes back to the same bytes) and that DecodeCard's result survives an
// Encode/Decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"",
		"9F2608C2C12B1AD1A3A5BC9F2701809F101307010103A0A802010A010000000000CBFA3D6A9F3704BBA4CD5B9F36020001950500000480009A032601219C01009F02060000000012005F2A020392820239009F1A0203929F03060000000000009F330360F0C89F34034203009F3501229F1E0831323334353637388407A00000000310109F090200969F410400000001",
		"77119F2701805A064761739001015F2A020392",
		"9F1081800000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
		"00700A005F2403301231009F070000",
		"9F3602000100",
	} {
		f.Add(unhexF(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if list, err := tlv.Decode(data); err == nil {
			enc, err := tlv.Encode(list)
			if err != nil {
				t.Fatalf("encode of decoded input: %v", err)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("Encode(Decode(x)) != x: %d bytes vs %d", len(enc), len(data))
			}
		}
		list, err := tlv.DecodeCard(data)
		if err != nil {
			return
		}
		enc, err := tlv.Encode(list)
		if err != nil {
			t.Fatalf("encode of card-decoded input: %v", err)
		}
		again, err := tlv.Decode(enc)
		if err != nil {
			t.Fatalf("decode of encoding: %v", err)
		}
		if len(list) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(again, list) {
			t.Fatalf("Decode(Encode(list)) differs from list")
		}
	})
}

func unhexF(f *testing.F, s string) []byte { return unhex(f, s) }

func BenchmarkDecodeTypicalDE55(b *testing.B) {
	data := unhex(b, "9F2608C2C12B1AD1A3A5BC9F2701809F101307010103A0A802010A010000000000CBFA3D6A9F3704BBA4CD5B9F36020001950500000480009A032601219C01009F02060000000012005F2A020392820239009F1A0203929F03060000000000009F330360F0C89F34034203009F3501229F1E0831323334353637388407A00000000310109F090200969F410400000001")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := tlv.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
