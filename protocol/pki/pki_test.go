package pki_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/posgate/posgate/protocol/pki"
)

const day = 24 * time.Hour

// opaqueSigner hides the concrete key type, as a PKCS#11 token key does.
type opaqueSigner struct{ k crypto.Signer }

func (s opaqueSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s opaqueSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, d, o)
}

func newCA(t testing.TB, cn string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(cn, 365*day)
	if err != nil {
		t.Fatalf("new CA: %v", err)
	}
	return ca
}

func parseCert(t testing.TB, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return c
}

func verify(ca *pki.CA, c *x509.Certificate, eku x509.ExtKeyUsage, at time.Time) error {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	_, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{eku}, CurrentTime: at})
	return err
}

func p256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignGatewayCSR(t *testing.T) {
	ca := newCA(t, "link CA")
	other := newCA(t, "other CA")
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)

	tests := []struct {
		name   string
		signer crypto.Signer
		csrCN  string
		id     string
		want   error
	}{
		{"p256_signer", opaqueSigner{p256(t)}, "gw-0001", "gw-0001", nil},
		{"p384_key", p384, "gw-0002", "gw-0002", nil},
		{"ed25519_key", edKey, "gw-0003", "gw-0003", nil},
		{"cn_mismatch", p256(t), "gw-0001", "gw-0002", pki.ErrIDMismatch},
		{"bad_id", p256(t), "gw 1", "gw 1", pki.ErrBadID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := pki.NewCSR(tt.signer, tt.csrCN)
			if err != nil {
				if errors.Is(err, tt.want) {
					return
				}
				t.Fatalf("new CSR: %v", err)
			}
			certPEM, err := ca.SignGatewayCSR(csr, tt.id, 30*day)
			if !errors.Is(err, tt.want) {
				t.Fatalf("sign: got %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				return
			}
			c := parseCert(t, certPEM)
			if c.Subject.CommonName != tt.id {
				t.Fatalf("CN %q, want %q", c.Subject.CommonName, tt.id)
			}
			if !c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.signer.Public()) {
				t.Fatalf("certificate key is not the CSR key")
			}
			if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || c.IsCA {
				t.Fatalf("EKU %v IsCA %v, want client-auth only leaf", c.ExtKeyUsage, c.IsCA)
			}
			if err := verify(ca, c, x509.ExtKeyUsageClientAuth, time.Now()); err != nil {
				t.Fatalf("verify against own CA: %v", err)
			}
			if err := verify(ca, c, x509.ExtKeyUsageServerAuth, time.Now()); err == nil {
				t.Fatalf("client certificate verified for server auth")
			}
			if err := verify(other, c, x509.ExtKeyUsageClientAuth, time.Now()); err == nil {
				t.Fatalf("verified against a foreign CA")
			}
			if err := verify(ca, c, x509.ExtKeyUsageClientAuth, time.Now().Add(31*day)); err == nil {
				t.Fatalf("verified after expiry")
			}
		})
	}
}

func TestSignGatewayCSRRejects(t *testing.T) {
	ca := newCA(t, "link CA")
	good, err := pki.NewCSR(p256(t), "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(good)
	tampered := bytes.Clone(block.Bytes)
	tampered[len(tampered)-3] ^= 0x55 // inside the signature
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       []byte
		validity time.Duration
		want     error
	}{
		{"not_pem", []byte("garbage"), day, pki.ErrBadPEM},
		{"wrong_block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}), day, pki.ErrBadPEM},
		{"bad_der", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x01}}), day, pki.ErrBadCSR},
		{"bad_signature", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), day, pki.ErrBadCSR},
		{"zero_validity", good, 0, pki.ErrValidity},
		{"beyond_ca", good, 400 * day, pki.ErrValidity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.SignGatewayCSR(tt.in, "gw-1", tt.validity)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("rsa_key", func(t *testing.T) {
		if _, err := pki.NewCSR(rsaKey, "gw-1"); !errors.Is(err, pki.ErrKeyType) {
			t.Fatalf("got %v, want ErrKeyType", err)
		}
	})
}

func TestIssueServer(t *testing.T) {
	ca := newCA(t, "link CA")
	certPEM, keyPEM, err := ca.IssueServer([]string{"center.example", "127.0.0.1", "::1"}, 30*day)
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	if err := verify(ca, c, x509.ExtKeyUsageServerAuth, time.Now()); err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, h := range []string{"center.example", "127.0.0.1", "::1"} {
		if err := c.VerifyHostname(h); err != nil {
			t.Errorf("host %s: %v", h, err)
		}
	}
	if err := c.VerifyHostname("other.example"); err == nil {
		t.Errorf("certificate valid for a host it was not issued for")
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("key pair: %v", err)
	}
	if _, _, err := ca.IssueServer(nil, day); !errors.Is(err, pki.ErrNoHosts) {
		t.Fatalf("no hosts: got %v", err)
	}
}

func TestLoadCA(t *testing.T) {
	ca := newCA(t, "link CA")
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := pki.LoadCA(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	certPEM, _, err := loaded.IssueGateway("gw-7", day)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(ca, parseCert(t, certPEM), x509.ExtKeyUsageClientAuth, time.Now()); err != nil {
		t.Fatalf("certificate from loaded CA does not verify against original: %v", err)
	}

	other := newCA(t, "other")
	otherKey, _ := other.KeyPEM()
	leafCert, leafKey, _ := ca.IssueGateway("gw-8", day)
	tests := []struct {
		name      string
		cert, key []byte
		want      error
	}{
		{"key_of_other_ca", ca.CertPEM(), otherKey, pki.ErrNotCA},
		{"leaf_not_ca", leafCert, leafKey, pki.ErrNotCA},
		{"garbage_key", ca.CertPEM(), []byte("x"), pki.ErrBadPEM},
		{"garbage_cert", []byte("x"), keyPEM, pki.ErrBadPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := pki.LoadCA(tt.cert, tt.key); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("nil_signer", func(t *testing.T) {
		if _, err := pki.LoadCASigner(ca.CertPEM(), nil); !errors.Is(err, pki.ErrNotCA) {
			t.Fatalf("got %v, want ErrNotCA", err)
		}
		if _, err := pki.SignerCertificate(leafCert, nil); !errors.Is(err, pki.ErrKeyType) {
			t.Fatalf("SignerCertificate: got %v, want ErrKeyType", err)
		}
	})
	t.Run("signer_not_exportable", func(t *testing.T) {
		// Re-load the CA through an opaque signer, as a token key would be.
		b, _ := pem.Decode(keyPEM)
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		sca, err := pki.LoadCASigner(ca.CertPEM(), opaqueSigner{k.(crypto.Signer)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sca.KeyPEM(); !errors.Is(err, pki.ErrNotExportable) {
			t.Fatalf("KeyPEM: got %v", err)
		}
		if _, _, err := sca.IssueGateway("gw-9", day); err != nil {
			t.Fatalf("issue with signer CA: %v", err)
		}
	})
}

// handshake runs a TLS handshake over an in-memory pipe and returns the
// server's and client's errors.
func handshake(t *testing.T, srv, cli *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(a, srv)
		err := s.HandshakeContext(ctx)
		a.Close()
		done <- err
	}()
	c := tls.Client(b, cli)
	clientErr = c.HandshakeContext(ctx)
	if clientErr == nil {
		// In TLS 1.3 the client finishes before the server has checked its
		// certificate; a read surfaces the server's verdict.
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, clientErr = c.Read(make([]byte, 1))
		if errors.Is(clientErr, io.EOF) {
			clientErr = nil
		}
	}
	b.Close()
	return <-done, clientErr
}

func TestMutualTLS(t *testing.T) {
	ca := newCA(t, "link CA")
	foreign := newCA(t, "foreign CA")
	srvCert, srvKey, err := ca.IssueServer([]string{"center.test"}, 30*day)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := pki.ServerTLS(ca.CertPEM(), srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCert := func(t *testing.T, issuer *pki.CA) tls.Certificate {
		k := p256(t)
		csr, err := pki.NewCSR(k, "gw-1")
		if err != nil {
			t.Fatal(err)
		}
		certPEM, err := issuer.SignGatewayCSR(csr, "gw-1", 30*day)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pki.SignerCertificate(certPEM, opaqueSigner{k})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	expiredCA := newCA(t, "link CA 2")
	expiredCA.Now = func() time.Time { return time.Now().Add(-40 * day) }
	expiredSrvTLS, _ := pki.ServerTLS(expiredCA.CertPEM(), srvCert, srvKey)

	tests := []struct {
		name   string
		srv    *tls.Config
		cert   *tls.Certificate
		wantOK bool
	}{
		{"signed_by_ca", srvTLS, ptr(clientCert(t, ca)), true},
		{"no_client_cert", srvTLS, nil, false},
		{"foreign_ca", srvTLS, ptr(clientCert(t, foreign)), false},
		{"expired", expiredSrvTLS, ptr(clientCert(t, expiredCA)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c tls.Certificate
			if tt.cert != nil {
				c = *tt.cert
			}
			cli, err := pki.ClientTLS(ca.CertPEM(), c)
			if err != nil {
				t.Fatal(err)
			}
			if tt.cert == nil {
				cli.Certificates = nil
			}
			cli.ServerName = "center.test"
			serr, cerr := handshake(t, tt.srv, cli)
			if tt.wantOK && (serr != nil || cerr != nil) {
				t.Fatalf("handshake failed: server %v, client %v", serr, cerr)
			}
			if !tt.wantOK && serr == nil {
				t.Fatalf("server accepted the client (client err %v)", cerr)
			}
		})
	}

	t.Run("server_from_foreign_ca", func(t *testing.T) {
		fc, fk, _ := foreign.IssueServer([]string{"center.test"}, day)
		fsrv, _ := pki.ServerTLS(ca.CertPEM(), fc, fk)
		cli, _ := pki.ClientTLS(ca.CertPEM(), clientCert(t, ca))
		cli.ServerName = "center.test"
		if _, cerr := handshake(t, fsrv, cli); cerr == nil {
			t.Fatalf("client accepted a server certificate from a foreign CA")
		}
	})
	t.Run("configs", func(t *testing.T) {
		cli, _ := pki.ClientTLS(ca.CertPEM(), clientCert(t, ca))
		for _, c := range []*tls.Config{srvTLS, cli} {
			if c.MinVersion != tls.VersionTLS13 || len(c.NextProtos) != 1 || c.NextProtos[0] != pki.ALPN {
				t.Fatalf("config MinVersion %x NextProtos %v", c.MinVersion, c.NextProtos)
			}
		}
		if srvTLS.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Fatalf("ClientAuth %v", srvTLS.ClientAuth)
		}
		if _, err := pki.ClientTLS([]byte("nope"), tls.Certificate{}); !errors.Is(err, pki.ErrBadPEM) {
			t.Fatalf("bad CA PEM: %v", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestCheckGatewayID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"plain", "GW-tokyo_01.a", true},
		{"empty", "", false},
		{"space", "gw 1", false},
		{"slash", "gw/1", false},
		{"non_ascii", "gw-é", false},
		{"max_len", string(bytes.Repeat([]byte{'a'}, pki.MaxIDLen)), true},
		{"too_long", string(bytes.Repeat([]byte{'a'}, pki.MaxIDLen+1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pki.CheckGatewayID(tt.id)
			if (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// FuzzSignGatewayCSR feeds arbitrary bytes as a CSR. Whatever is accepted
// must come back as a certificate that verifies against the CA, names the
// requested gateway and carries exactly the CSR's public key.
func FuzzSignGatewayCSR(f *testing.F) {
	ca, err := pki.NewCA("fuzz CA", 365*day)
	if err != nil {
		f.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := pki.NewCSR(k, "gw-1")
	other, _ := pki.NewCSR(k, "gw-2")
	f.Add(good)
	f.Add(other)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		certPEM, err := ca.SignGatewayCSR(in, "gw-1", day)
		if err != nil {
			if certPEM != nil {
				t.Fatalf("certificate returned with error")
			}
			return
		}
		b, _ := pem.Decode(in)
		csr, err := x509.ParseCertificateRequest(b.Bytes)
		if err != nil {
			t.Fatalf("accepted a CSR that does not parse: %v", err)
		}
		c := parseCert(t, certPEM)
		if c.Subject.CommonName != "gw-1" {
			t.Fatalf("issued for another name")
		}
		if !c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(csr.PublicKey) {
			t.Fatalf("issued for another key")
		}
		if err := verify(ca, c, x509.ExtKeyUsageClientAuth, time.Now()); err != nil {
			t.Fatalf("issued certificate does not verify: %v", err)
		}
	})
}
