package hsm_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"sync/atomic"
	"testing"

	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/p2pe/dukpt"
)

// benchDecrypt decrypts one block per op under ksnFor(i) and reports
// derivations per op. The ciphertext is not the terminal's (the benchmark
// measures the token, not the plaintext).
func benchDecrypt(b *testing.B, parallel bool, ksnFor func(i uint64) dukpt.AESKSN) {
	tok := hsmtest.Token(b)
	label := importBDK(b, tok, bdk128)
	iv := make([]byte, 16)
	ct := make([]byte, 48)
	start := tok.Stats().Derivations
	var n atomic.Uint64
	op := func() {
		i := n.Add(1)
		if _, err := tok.DecryptDUKPT(label, ksnFor(i), dukpt.UsageDataDecrypt, dukpt.AlgAES128, iv, ct); err != nil {
			b.Fatalf("decrypt: %v", err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				op()
			}
		})
	} else {
		for b.Loop() {
			op()
		}
	}
	b.StopTimer()
	if ops := n.Load(); ops > 0 {
		b.ReportMetric(float64(tok.Stats().Derivations-start)/float64(ops), "derivations/op")
	}
}

// coldKSN gives every op a new device with a typical counter (3 one-bits).
func coldKSN(i uint64) dukpt.AESKSN {
	var id [8]byte
	id[0] = 0xC0
	for j := 0; j < 7; j++ {
		id[1+j] = byte(i >> (8 * j))
	}
	return dukpt.NewAESKSN(id, 0x0B)
}

func BenchmarkDecryptDUKPTCold(b *testing.B) {
	b.Run("serial", func(b *testing.B) { benchDecrypt(b, false, coldKSN) })
	b.Run("parallel", func(b *testing.B) { benchDecrypt(b, true, coldKSN) })
}

// warmKSN spreads ops over 64 devices whose counters each advance by one
// (one device in the serial case advances by one every op).
func warmKSN(devices uint64) func(i uint64) dukpt.AESKSN {
	return func(i uint64) dukpt.AESKSN {
		var id [8]byte
		id[0] = 0xAA
		id[7] = byte(i % devices)
		return dukpt.NewAESKSN(id, uint32(i/devices)+1)
	}
}

func BenchmarkDecryptDUKPTWarm(b *testing.B) {
	b.Run("serial", func(b *testing.B) { benchDecrypt(b, false, warmKSN(1)) })
	b.Run("parallel", func(b *testing.B) { benchDecrypt(b, true, warmKSN(64)) })
}

func BenchmarkHMAC(b *testing.B) {
	tok := hsmtest.Token(b)
	label := hsmtest.Label(b, "hmac")
	if err := tok.GenerateHMAC(label, 32); err != nil {
		b.Fatalf("generate: %v", err)
	}
	data := []byte("4111111111111111")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tok.HMACSHA256(label, data); err != nil {
			b.Fatalf("hmac: %v", err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	tok := hsmtest.Token(b)
	label := hsmtest.Label(b, "ec")
	if err := tok.GenerateECDSA(label); err != nil {
		b.Fatalf("generate: %v", err)
	}
	s, err := tok.Signer(label)
	if err != nil {
		b.Fatalf("signer: %v", err)
	}
	d := sha256.Sum256([]byte("benchmark"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
			b.Fatalf("sign: %v", err)
		}
	}
}
