// Package fwimage is the signed firmware image of the simulated JET-S-class
// terminal: the image format (a fixed header naming the version, the body
// length and its SHA-256, then the body, then an Ed25519 signature by the
// vendor's key over header and body), signing and verification, the vendor
// key files, and the terminal side of the chunked, resumable transfer over
// the terminal link (Updater).
//
// Image layout (all integers big-endian):
//
//	offset size field
//	0      4    magic "PGFW"
//	4      1    format, 1
//	5      1    flags, 0
//	6      2    version major
//	8      2    version minor
//	10     2    version patch
//	12     4    body length n
//	16     32   SHA-256 of the body
//	48     n    body
//	48+n   64   Ed25519 signature over bytes 0..48+n
//
// docs/termsim.md describes the format and the transfer.
package fwimage

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Layout constants.
const (
	Magic         = "PGFW"
	FormatVersion = 1
	HeaderSize    = 48
	SignatureSize = ed25519.SignatureSize
	// Overhead is the size of an image beyond its body.
	Overhead = HeaderSize + SignatureSize
	// MaxBody is the largest body a terminal accepts (16 MiB).
	MaxBody = 16 << 20
)

// Sentinel errors. Verification errors say which check failed; none carries
// image bytes or key material.
var (
	// ErrFormat means the bytes are not an image of this format: bad
	// magic, format, flags, or a length that disagrees with the size.
	ErrFormat = errors.New("fwimage: malformed image")
	// ErrDigest means the body does not hash to the header's SHA-256.
	ErrDigest = errors.New("fwimage: body digest mismatch")
	// ErrSignature means the signature does not verify under the vendor key.
	ErrSignature = errors.New("fwimage: bad signature")
	// ErrDowngrade means the image's version is not newer than the
	// installed one.
	ErrDowngrade = errors.New("fwimage: version not newer than installed")
	// ErrVersion means a version string is not MAJOR.MINOR.PATCH.
	ErrVersion = errors.New("fwimage: bad version")
	// ErrKeyFile means a key file could not be read as an Ed25519 key.
	ErrKeyFile = errors.New("fwimage: bad key file")
	// ErrRefused is returned by Push when the terminal discards the image.
	ErrRefused = errors.New("fwimage: terminal refused the image")
)

// Version is a firmware version MAJOR.MINOR.PATCH, ordered numerically.
type Version struct {
	Major, Minor, Patch uint16
}

// ParseVersion parses "MAJOR.MINOR.PATCH" with each part 0..65535.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH: %w", s, ErrVersion)
	}
	var n [3]uint16
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 16)
		if err != nil || p == "" || (len(p) > 1 && p[0] == '0') {
			return Version{}, fmt.Errorf("version %q: part %d must be a number 0..65535 without leading zeros: %w", s, i+1, ErrVersion)
		}
		n[i] = uint16(v)
	}
	return Version{n[0], n[1], n[2]}, nil
}

// String returns "MAJOR.MINOR.PATCH".
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than w.
func (v Version) Compare(w Version) int {
	for _, d := range [][2]uint16{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Header is the fixed head of an image.
type Header struct {
	Version Version
	Length  uint32   // body length
	Digest  [32]byte // SHA-256 of the body
}

// ImageSize returns the size of the whole image the header announces.
func (h Header) ImageSize() int { return Overhead + int(h.Length) }

// AppendBinary appends the 48-byte wire form of h to b.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Magic...)
	b = append(b, FormatVersion, 0)
	b = binary.BigEndian.AppendUint16(b, h.Version.Major)
	b = binary.BigEndian.AppendUint16(b, h.Version.Minor)
	b = binary.BigEndian.AppendUint16(b, h.Version.Patch)
	b = binary.BigEndian.AppendUint32(b, h.Length)
	return append(b, h.Digest[:]...), nil
}

// ParseHeader decodes the first HeaderSize bytes of b. It checks magic,
// format, flags and that the length is at most MaxBody; it does not look at
// the body.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("header of %d bytes, want %d: %w", len(b), HeaderSize, ErrFormat)
	}
	if string(b[:4]) != Magic {
		return Header{}, fmt.Errorf("magic is not %q: %w", Magic, ErrFormat)
	}
	if b[4] != FormatVersion {
		return Header{}, fmt.Errorf("format %d, want %d: %w", b[4], FormatVersion, ErrFormat)
	}
	if b[5] != 0 {
		return Header{}, fmt.Errorf("flags %#02x, want 0: %w", b[5], ErrFormat)
	}
	var h Header
	h.Version = Version{binary.BigEndian.Uint16(b[6:]), binary.BigEndian.Uint16(b[8:]), binary.BigEndian.Uint16(b[10:])}
	h.Length = binary.BigEndian.Uint32(b[12:])
	if h.Length > MaxBody {
		return Header{}, fmt.Errorf("body length %d over the limit %d: %w", h.Length, MaxBody, ErrFormat)
	}
	copy(h.Digest[:], b[16:48])
	return h, nil
}

// Sign builds the image of body as version v, signed with key.
func Sign(key ed25519.PrivateKey, v Version, body []byte) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign image: private key of %d bytes: %w", len(key), ErrKeyFile)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("sign image: body of %d bytes over the limit %d: %w", len(body), MaxBody, ErrFormat)
	}
	h := Header{Version: v, Length: uint32(len(body)), Digest: sha256.Sum256(body)}
	img := make([]byte, 0, Overhead+len(body))
	img, _ = h.AppendBinary(img)
	img = append(img, body...)
	return append(img, ed25519.Sign(key, img)...), nil
}

// Verify checks img completely: structure, body digest and the signature
// under pub, and returns its header and body (aliasing img). It does not
// compare versions; see CheckUpgrade.
func Verify(pub ed25519.PublicKey, img []byte) (Header, []byte, error) {
	h, err := ParseHeader(img)
	if err != nil {
		return Header{}, nil, fmt.Errorf("verify image: %w", err)
	}
	if len(img) != h.ImageSize() {
		return Header{}, nil, fmt.Errorf("verify image: %d bytes, header announces %d: %w", len(img), h.ImageSize(), ErrFormat)
	}
	body := img[HeaderSize : HeaderSize+int(h.Length)]
	sum := sha256.Sum256(body)
	if subtle.ConstantTimeCompare(sum[:], h.Digest[:]) != 1 {
		return Header{}, nil, fmt.Errorf("verify image %s: %w", h.Version, ErrDigest)
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, img[:HeaderSize+int(h.Length)], img[HeaderSize+int(h.Length):]) {
		return Header{}, nil, fmt.Errorf("verify image %s: %w", h.Version, ErrSignature)
	}
	return h, body, nil
}

// CheckUpgrade returns nil when next may replace installed: it must be
// strictly newer (a reinstall of the same version is refused too).
func CheckUpgrade(installed, next Version) error {
	if next.Compare(installed) <= 0 {
		return fmt.Errorf("image %s, installed %s: %w", next, installed, ErrDowngrade)
	}
	return nil
}

// GenerateKey returns a new vendor signing key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// WriteKeyFiles writes priv as a PKCS #8 PEM file (mode 0600) at privPath
// and its public key as a PKIX PEM file (mode 0644) at pubPath. It refuses
// to overwrite an existing file.
func WriteKeyFiles(privPath, pubPath string, priv ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// LoadPrivateKey reads a PKCS #8 PEM Ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key file %s: not PKCS #8: %w", path, ErrKeyFile)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key file %s: not an Ed25519 key: %w", path, ErrKeyFile)
	}
	return priv, nil
}

// LoadPublicKey reads a PKIX PEM Ed25519 public key, or derives it from a
// private key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) {
		priv, err := LoadPrivateKey(path)
		if err != nil {
			return nil, err
		}
		return priv.Public().(ed25519.PublicKey), nil
	}
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("key file %s: not PKIX: %w", path, ErrKeyFile)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key file %s: not an Ed25519 key: %w", path, ErrKeyFile)
	}
	return pub, nil
}

func readPEM(path, typ string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != typ {
		return nil, fmt.Errorf("key file %s: no %s PEM block: %w", path, typ, ErrKeyFile)
	}
	return b.Bytes, nil
}

// KCV returns the 3-byte check value the terminal reports for the firmware
// verification key: the first 3 bytes of SHA-256 of the raw public key.
func KCV(pub ed25519.PublicKey) [3]byte {
	s := sha256.Sum256(pub)
	return [3]byte{s[0], s[1], s[2]}
}
