package fwimage_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"

	"github.com/posgate/posgate/firmware-sim/fwimage"
	"github.com/posgate/posgate/terminal/tlink"
)

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func mustVersion(t testing.TB, s string) fwimage.Version {
	t.Helper()
	v, err := fwimage.ParseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name, in string
		want     fwimage.Version
		err      bool
	}{
		{"plain", "1.2.3", fwimage.Version{1, 2, 3}, false},
		{"zeros", "0.0.0", fwimage.Version{}, false},
		{"max", "65535.65535.65535", fwimage.Version{65535, 65535, 65535}, false},
		{"two_parts", "1.2", fwimage.Version{}, true},
		{"leading_zero", "1.02.3", fwimage.Version{}, true},
		{"too_big", "1.2.65536", fwimage.Version{}, true},
		{"empty_part", "1..3", fwimage.Version{}, true},
		{"sign", "1.+2.3", fwimage.Version{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := fwimage.ParseVersion(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("ParseVersion(%q) error %v, want error %v", tt.in, err, tt.err)
			}
			if err != nil {
				if !errors.Is(err, fwimage.ErrVersion) {
					t.Fatalf("error %v does not wrap ErrVersion", err)
				}
				return
			}
			if v != tt.want || v.String() != tt.in {
				t.Fatalf("ParseVersion(%q) = %v", tt.in, v)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	key := testKey(t, 1)
	pub := key.Public().(ed25519.PublicKey)
	img, err := fwimage.Sign(key, mustVersion(t, "2.0.1"), body(5000))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(img); b[i] ^= 1; return b }
	tests := []struct {
		name string
		img  []byte
		pub  ed25519.PublicKey
		want error
	}{
		{"valid", img, pub, nil},
		{"body_byte_flipped", flip(fwimage.HeaderSize + 100), pub, fwimage.ErrDigest},
		{"signature_flipped", flip(len(img) - 1), pub, fwimage.ErrSignature},
		{"version_in_header_changed", flip(11), pub, fwimage.ErrSignature},
		{"digest_in_header_changed", flip(20), pub, fwimage.ErrDigest},
		{"other_vendor_key", img, testKey(t, 2).Public().(ed25519.PublicKey), fwimage.ErrSignature},
		{"truncated", img[:len(img)-1], pub, fwimage.ErrFormat},
		{"extended", append(bytes.Clone(img), 0), pub, fwimage.ErrFormat},
		{"bad_magic", flip(0), pub, fwimage.ErrFormat},
		{"bad_format", flip(4), pub, fwimage.ErrFormat},
		{"bad_flags", flip(5), pub, fwimage.ErrFormat},
		{"empty", nil, pub, fwimage.ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, b, err := fwimage.Verify(tt.pub, tt.img)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify error %v, want %v", err, tt.want)
			}
			if err == nil && (h.Version.String() != "2.0.1" || !bytes.Equal(b, body(5000))) {
				t.Fatalf("Verify returned version %v and a body of %d bytes", h.Version, len(b))
			}
		})
	}
}

func TestCheckUpgrade(t *testing.T) {
	tests := []struct {
		name, installed, next string
		ok                    bool
	}{
		{"newer_patch", "1.2.3", "1.2.4", true},
		{"newer_major", "1.9.9", "2.0.0", true},
		{"same", "1.2.3", "1.2.3", false},
		{"older_minor", "1.2.3", "1.1.9", false},
		{"numeric_not_lexical", "1.9.0", "1.10.0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fwimage.CheckUpgrade(mustVersion(t, tt.installed), mustVersion(t, tt.next))
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, fwimage.ErrDowngrade)) {
				t.Fatalf("CheckUpgrade(%s, %s) = %v", tt.installed, tt.next, err)
			}
		})
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := fwimage.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath := filepath.Join(dir, "vendor.key"), filepath.Join(dir, "vendor.pub")
	if err := fwimage.WriteKeyFiles(privPath, pubPath, priv); err != nil {
		t.Fatal(err)
	}
	if err := fwimage.WriteKeyFiles(privPath, pubPath, priv); err == nil {
		t.Fatal("WriteKeyFiles overwrote an existing key file")
	}
	got, err := fwimage.LoadPrivateKey(privPath)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("LoadPrivateKey: %v, equal %v", err, got.Equal(priv))
	}
	for _, p := range []string{pubPath, privPath} {
		pub, err := fwimage.LoadPublicKey(p)
		if err != nil || !pub.Equal(priv.Public()) {
			t.Fatalf("LoadPublicKey(%s): %v", filepath.Base(p), err)
		}
	}
	if _, err := fwimage.LoadPrivateKey(pubPath); !errors.Is(err, fwimage.ErrKeyFile) {
		t.Fatalf("LoadPrivateKey of a public key file: %v", err)
	}
}

// feed sends img to u in chunks of size n from offset off and returns the
// last ack and error.
func feed(t *testing.T, u *fwimage.Updater, id string, img []byte, off, n, stopAfter int) (tlink.FirmwareAck, error) {
	t.Helper()
	var ack tlink.FirmwareAck
	for sent := 0; off < len(img) && (stopAfter == 0 || sent < stopAfter); sent++ {
		end := min(off+n, len(img))
		var err error
		ack, err = u.Chunk(&tlink.FirmwareChunk{Image: id, Offset: uint32(off), Total: uint32(len(img)), Data: img[off:end]})
		if err != nil || ack.Status != tlink.FirmwareOK {
			return ack, err
		}
		off = int(ack.NextOffset)
	}
	return ack, nil
}

func TestUpdater(t *testing.T) {
	key := testKey(t, 3)
	pub := key.Public().(ed25519.PublicKey)
	factory := mustVersion(t, "1.0.0")
	good, _ := fwimage.Sign(key, mustVersion(t, "1.1.0"), body(10000))
	old, _ := fwimage.Sign(key, mustVersion(t, "0.9.0"), body(3000))
	forged, _ := fwimage.Sign(testKey(t, 4), mustVersion(t, "1.1.0"), body(10000))
	tampered := bytes.Clone(good)
	tampered[fwimage.HeaderSize+9000] ^= 0x80

	tests := []struct {
		name      string
		img       []byte
		want      tlink.FirmwareStatus
		err       error
		installed string
	}{
		{"full", good, tlink.FirmwareInstalled, nil, "1.1.0"},
		{"tampered_body", tampered, tlink.FirmwareBadImage, fwimage.ErrDigest, "1.0.0"},
		{"other_key", forged, tlink.FirmwareBadImage, fwimage.ErrSignature, "1.0.0"},
		{"downgrade", old, tlink.FirmwareBadImage, fwimage.ErrDowngrade, "1.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			u, err := fwimage.OpenUpdater(dir, pub, factory)
			if err != nil {
				t.Fatal(err)
			}
			ack, err := feed(t, u, "img-1", tt.img, 0, 1000, 0)
			if ack.Status != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("last ack %+v, error %v; want status %d, error %v", ack, err, tt.want, tt.err)
			}
			if u.Installed().String() != tt.installed {
				t.Fatalf("installed %s, want %s", u.Installed(), tt.installed)
			}
			if _, _, _, busy := u.Progress(); busy {
				t.Fatal("a transfer is still in progress after the last chunk")
			}
			// The installed version survives a restart.
			u2, err := fwimage.OpenUpdater(dir, pub, factory)
			if err != nil || u2.Installed().String() != tt.installed {
				t.Fatalf("after reopen: installed %v, %v", u2.Installed(), err)
			}
		})
	}
}

func TestUpdaterResume(t *testing.T) {
	key := testKey(t, 5)
	pub := key.Public().(ed25519.PublicKey)
	img, _ := fwimage.Sign(key, mustVersion(t, "3.0.0"), body(20000))
	dir := t.TempDir()
	u, err := fwimage.OpenUpdater(dir, pub, fwimage.Version{Major: 2})
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := feed(t, u, "v3", img, 0, 4096, 3); err != nil || ack.NextOffset != 3*4096 {
		t.Fatalf("first part: %+v %v", ack, err)
	}
	// The terminal restarts; the gateway starts again from 0.
	u, err = fwimage.OpenUpdater(dir, pub, fwimage.Version{Major: 2})
	if err != nil {
		t.Fatal(err)
	}
	if id, next, total, ok := u.Progress(); !ok || id != "v3" || next != 3*4096 || int(total) != len(img) {
		t.Fatalf("progress after restart: %q %d %d %v", id, next, total, ok)
	}
	ack, err := u.Chunk(&tlink.FirmwareChunk{Image: "v3", Offset: 0, Total: uint32(len(img)), Data: img[:4096]})
	if err != nil || ack.Status != tlink.FirmwareResend || ack.NextOffset != 3*4096 {
		t.Fatalf("chunk 0 after restart: %+v %v; want resend from %d", ack, err, 3*4096)
	}
	ack, err = feed(t, u, "v3", img, int(ack.NextOffset), 4096, 0)
	if err != nil || ack.Status != tlink.FirmwareInstalled || u.Installed().String() != "3.0.0" {
		t.Fatalf("resumed transfer: %+v %v, installed %s", ack, err, u.Installed())
	}
}

func TestUpdaterNewImageReplacesPartial(t *testing.T) {
	key := testKey(t, 6)
	pub := key.Public().(ed25519.PublicKey)
	a, _ := fwimage.Sign(key, mustVersion(t, "1.0.1"), body(9000))
	b, _ := fwimage.Sign(key, mustVersion(t, "1.0.2"), body(7000))
	u, err := fwimage.OpenUpdater(t.TempDir(), pub, fwimage.Version{Major: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feed(t, u, "a", a, 0, 1000, 2); err != nil {
		t.Fatal(err)
	}
	ack, err := u.Chunk(&tlink.FirmwareChunk{Image: "b", Offset: 1000, Total: uint32(len(b)), Data: b[1000:2000]})
	if err != nil || ack.Status != tlink.FirmwareResend || ack.NextOffset != 0 {
		t.Fatalf("mid-image chunk of another image: %+v %v", ack, err)
	}
	ack, err = feed(t, u, "b", b, 0, 1000, 0)
	if err != nil || ack.Status != tlink.FirmwareInstalled || u.Installed().String() != "1.0.2" {
		t.Fatalf("second image: %+v %v", ack, err)
	}
}

func FuzzParseHeader(f *testing.F) {
	img, _ := fwimage.Sign(testKey(f, 7), fwimage.Version{1, 2, 3}, []byte("firmware"))
	f.Add(img[:fwimage.HeaderSize])
	f.Add(img)
	f.Add([]byte("PGFW"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := fwimage.ParseHeader(b)
		if err != nil {
			return
		}
		out, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, b[:fwimage.HeaderSize]) {
			t.Fatalf("header does not round-trip:\n in  %x\n out %x", b[:fwimage.HeaderSize], out)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	key := testKey(b, 8)
	pub := key.Public().(ed25519.PublicKey)
	img, _ := fwimage.Sign(key, fwimage.Version{1, 0, 0}, body(1<<20))
	b.ReportAllocs()
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, _, err := fwimage.Verify(pub, img); err != nil {
			b.Fatal(err)
		}
	}
}
