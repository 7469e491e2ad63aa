package hsm_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

func newSigner(t *testing.T) (*hsm.Token, string, crypto.Signer) {
	t.Helper()
	tok := hsmtest.Token(t)
	label := hsmtest.Label(t, "ec")
	if err := tok.GenerateECDSA(label); err != nil {
		t.Fatalf("generate: %v", err)
	}
	s, err := tok.Signer(label)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	return tok, label, s
}

func TestSignerSignatures(t *testing.T) {
	tok, label, s := newSigner(t)
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("public key is %T", s.Public())
	}
	d := sha256.Sum256([]byte("message"))
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if !ecdsa.VerifyASN1(pub, d[:], sig) {
		t.Fatalf("signature does not verify")
	}
	if _, err := s.Sign(rand.Reader, d[:20], crypto.SHA256); !errors.Is(err, hsm.ErrInput) {
		t.Errorf("short digest: %v, want ErrInput", err)
	}
	ki, err := tok.KeyInfo(label)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	if ki.Kind != hsm.KindECDSA || !ki.Sensitive || ki.Extractable || ki.Usage != hsm.UseSign {
		t.Errorf("private key info %+v", ki)
	}
	if _, err := tok.Signer("missing-ec"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Errorf("missing key: %v, want ErrKeyNotFound", err)
	}
}

func TestSignerCSR(t *testing.T) {
	_, _, s := newSigner(t)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "gateway-0001"},
	}, s)
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatalf("parse CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
}

// TestSignerTLS runs a TLS 1.3 handshake on loopback whose server key is
// the token key.
func TestSignerTLS(t *testing.T) {
	_, _, s := newSigner(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "center.test"},
		DNSNames:     []string{"center.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	if err != nil {
		t.Fatalf("self-sign: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: s}},
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil {
			done <- err
			return
		}
		_, err = c.Write(buf)
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "center.test", MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", v)
	}
	var _ net.Conn = c
}
