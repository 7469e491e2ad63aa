// Package pki is the certificate authority of the gateway-to-center link
// (protocol/link). The center holds the CA; it issues client certificates to
// gateways (from a CSR whose key stays in the gateway's PKCS#11 token) and
// server certificates to its own link endpoints, and both ends build their
// TLS 1.3 configurations from it.
//
// The CA key is an ECDSA P-256 key. For now it lives in a file (mode 0600) in
// the center's data directory, written from KeyPEM; moving it into the
// center's token is future work, for which LoadCASigner already accepts any
// crypto.Signer.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// ALPN is the application protocol of the link. It equals link.ALPN; it is
// repeated here so that this package does not import the QUIC stack.
const ALPN = "posgate-link/1"

// MaxIDLen is the longest gateway ID (certificate CommonName) accepted.
const MaxIDLen = 64

// clockSkew is how far before "now" certificates start to be valid, so that
// a peer whose clock is slightly behind still accepts a fresh certificate.
const clockSkew = 5 * time.Minute

var (
	// ErrBadPEM is returned when input is not the PEM block expected.
	ErrBadPEM = errors.New("pki: bad PEM input")
	// ErrBadCSR is returned for a CSR that does not parse or whose signature
	// does not verify.
	ErrBadCSR = errors.New("pki: bad certificate request")
	// ErrIDMismatch is returned when a CSR's CommonName is not the gateway ID
	// it is being signed for.
	ErrIDMismatch = errors.New("pki: CSR common name does not match gateway ID")
	// ErrBadID is returned for a gateway ID that is empty, too long or uses
	// characters other than letters, digits, '.', '_' and '-'.
	ErrBadID = errors.New("pki: invalid gateway ID")
	// ErrKeyType is returned for a public or private key of a type or size
	// the link does not accept.
	ErrKeyType = errors.New("pki: unsupported key type")
	// ErrValidity is returned for a validity period that is not positive or
	// that would end after the CA certificate expires.
	ErrValidity = errors.New("pki: invalid validity period")
	// ErrNotCA is returned by LoadCA for a certificate that is not a CA
	// certificate, or whose key does not match the certificate.
	ErrNotCA = errors.New("pki: not a usable CA certificate and key")
	// ErrNotExportable is returned by KeyPEM when the CA key is held by a
	// signer (a token) that does not expose it.
	ErrNotExportable = errors.New("pki: CA key is not exportable")
	// ErrNoHosts is returned by IssueServer when no host name or IP is given.
	ErrNoHosts = errors.New("pki: no server host names")
)

// CA is the link certificate authority. It is safe for concurrent use once
// constructed, provided Now is not changed while it is in use.
type CA struct {
	// Now returns the current time; nil means time.Now. Certificates are
	// valid from Now() minus a few minutes of clock-skew allowance. Tests
	// set it to issue certificates that are already expired.
	Now func() time.Time

	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// NewCA generates an ECDSA P-256 CA key and a self-signed CA certificate with
// the given CommonName, valid for validity from now.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if commonName == "" {
		return nil, fmt.Errorf("new CA: empty common name: %w", ErrBadID)
	}
	if validity <= 0 {
		return nil, fmt.Errorf("new CA: validity %v: %w", validity, ErrValidity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("new CA: self-sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA: parse own certificate: %w", err)
	}
	return &CA{cert: cert, certPEM: encodePEM("CERTIFICATE", der), key: key}, nil
}

// LoadCA loads a CA from its PEM certificate and its PEM private key (PKCS#8
// "PRIVATE KEY" as written by KeyPEM, or SEC 1 "EC PRIVATE KEY"). The key must
// be ECDSA and match the certificate, which must be a CA certificate.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	der, err := decodePEM(keyPEM, "PRIVATE KEY", "EC PRIVATE KEY")
	if err != nil {
		return nil, fmt.Errorf("load CA key: %w", err)
	}
	var key crypto.Signer
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("load CA key: %T: %w", k, ErrKeyType)
		}
		key = ek
	} else if ek, err2 := x509.ParseECPrivateKey(der); err2 == nil {
		key = ek
	} else {
		return nil, fmt.Errorf("load CA key: %w: %w", ErrBadPEM, err)
	}
	return LoadCASigner(certPEM, key)
}

// LoadCASigner loads a CA whose private key is held by signer, for example a
// key in a PKCS#11 token. KeyPEM of such a CA returns ErrNotExportable unless
// signer is an *ecdsa.PrivateKey.
func LoadCASigner(certPEM []byte, signer crypto.Signer) (*CA, error) {
	if signer == nil {
		return nil, fmt.Errorf("load CA: nil signer: %w", ErrNotCA)
	}
	der, err := decodePEM(certPEM, "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w: %w", ErrBadPEM, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load CA certificate %q: %w", cert.Subject.CommonName, ErrNotCA)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load CA %q: key does not match certificate: %w", cert.Subject.CommonName, ErrNotCA)
	}
	return &CA{cert: cert, certPEM: encodePEM("CERTIFICATE", der), key: signer}, nil
}

// Certificate returns the parsed CA certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM form: the trust anchor both ends
// of the link are configured with.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// KeyPEM returns the CA private key as a PKCS#8 "PRIVATE KEY" PEM block. The
// caller stores it with mode 0600. It returns ErrNotExportable for a CA whose
// key is a non-exportable signer.
func (ca *CA) KeyPEM() ([]byte, error) {
	k, ok := ca.key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, ErrNotExportable
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal CA key: %w", err)
	}
	return encodePEM("PRIVATE KEY", der), nil
}

// SignGatewayCSR issues a client certificate for gatewayID from a PEM
// "CERTIFICATE REQUEST". It checks the CSR's self-signature and that its
// Subject CommonName equals gatewayID (ErrIDMismatch otherwise); the
// certificate carries that CommonName, the CSR's public key, and the
// client-auth extended key usage only. SANs and extensions requested in the
// CSR are ignored.
func (ca *CA) SignGatewayCSR(csrPEM []byte, gatewayID string, validity time.Duration) (certPEM []byte, err error) {
	if err := CheckGatewayID(gatewayID); err != nil {
		return nil, fmt.Errorf("sign gateway CSR: %w", err)
	}
	der, err := decodePEM(csrPEM, "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")
	if err != nil {
		return nil, fmt.Errorf("sign gateway CSR: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("sign gateway CSR: %w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign gateway CSR: check signature: %w: %w", ErrBadCSR, err)
	}
	if csr.Subject.CommonName != gatewayID {
		// The CSR's name came from outside; it is reported by length only.
		return nil, fmt.Errorf("sign gateway CSR for %q (CSR name of %d bytes): %w",
			gatewayID, len(csr.Subject.CommonName), ErrIDMismatch)
	}
	if err := checkLeafKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("sign gateway CSR for %q: %w", gatewayID, err)
	}
	der, err = ca.issue(leafTemplate(gatewayID, x509.ExtKeyUsageClientAuth), csr.PublicKey, validity)
	if err != nil {
		return nil, fmt.Errorf("sign gateway CSR for %q: %w", gatewayID, err)
	}
	return encodePEM("CERTIFICATE", der), nil
}

// IssueGateway generates an ECDSA P-256 key in software and issues a
// client certificate for gatewayID. It is for tests and demos; production
// gateways keep their key in a token and use NewCSR and SignGatewayCSR.
func (ca *CA) IssueGateway(gatewayID string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := CheckGatewayID(gatewayID); err != nil {
		return nil, nil, fmt.Errorf("issue gateway certificate: %w", err)
	}
	return ca.issueWithKey(leafTemplate(gatewayID, x509.ExtKeyUsageClientAuth), validity)
}

// IssueServer generates an ECDSA P-256 key and issues a server certificate
// (server-auth extended key usage) for hosts: entries that parse as IP
// addresses become IP SANs, the others DNS SANs. The CommonName is hosts[0].
func (ca *CA) IssueServer(hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("issue server certificate: %w", ErrNoHosts)
	}
	tmpl := leafTemplate(hosts[0], x509.ExtKeyUsageServerAuth)
	for _, h := range hosts {
		if h == "" {
			return nil, nil, fmt.Errorf("issue server certificate: empty host: %w", ErrNoHosts)
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issueWithKey(tmpl, validity)
}

func (ca *CA) issueWithKey(tmpl *x509.Certificate, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %q: generate key: %w", tmpl.Subject.CommonName, err)
	}
	der, err := ca.issue(tmpl, key.Public(), validity)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %q: %w", tmpl.Subject.CommonName, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %q: marshal key: %w", tmpl.Subject.CommonName, err)
	}
	return encodePEM("CERTIFICATE", der), encodePEM("PRIVATE KEY", kder), nil
}

func (ca *CA) now() time.Time {
	if ca.Now != nil {
		return ca.Now()
	}
	return time.Now()
}

func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, validity time.Duration) ([]byte, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("validity %v: %w", validity, ErrValidity)
	}
	now := ca.now()
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		return nil, fmt.Errorf("validity %v ends after the CA expires on %s: %w",
			validity, ca.cert.NotAfter.UTC().Format(time.RFC3339), ErrValidity)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return der, nil
}

func leafTemplate(cn string, eku x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{eku},
		BasicConstraintsValid: true,
	}
}

// checkLeafKey accepts the key types TLS 1.3 client authentication uses
// here: ECDSA P-256/P-384 and Ed25519.
func checkLeafKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return fmt.Errorf("ECDSA curve %s: %w", k.Curve.Params().Name, ErrKeyType)
	case ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("%T: %w", pub, ErrKeyType)
	}
}

// CheckGatewayID reports whether id is usable as a gateway ID (certificate
// CommonName): 1 to MaxIDLen bytes of ASCII letters, digits, '.', '_' or '-'.
func CheckGatewayID(id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("gateway ID of %d bytes (1..%d allowed): %w", len(id), MaxIDLen, ErrBadID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("gateway ID has a byte 0x%02x at %d: %w", c, i, ErrBadID)
		}
	}
	return nil
}

// NewCSR makes a PEM "CERTIFICATE REQUEST" for gatewayID signed by signer,
// which may be any crypto.Signer (the gateway's identity key lives in its
// PKCS#11 token). The key must be ECDSA P-256/P-384 or Ed25519.
func NewCSR(signer crypto.Signer, gatewayID string) ([]byte, error) {
	if err := CheckGatewayID(gatewayID); err != nil {
		return nil, fmt.Errorf("new CSR: %w", err)
	}
	if err := checkLeafKey(signer.Public()); err != nil {
		return nil, fmt.Errorf("new CSR for %q: %w", gatewayID, err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: gatewayID},
	}, signer)
	if err != nil {
		return nil, fmt.Errorf("new CSR for %q: %w", gatewayID, err)
	}
	return encodePEM("CERTIFICATE REQUEST", der), nil
}

// ServerTLS returns the center's link TLS configuration: TLS 1.3 only, ALPN
// set, the server certificate from certPEM/keyPEM, and client certificates
// required and verified against the CA in caCertPEM.
func ServerTLS(caCertPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	pool, err := certPool(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("server TLS: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server TLS: load key pair: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}

// ClientTLS returns a gateway's link TLS configuration: TLS 1.3 only, ALPN
// set, cert as the client certificate (its PrivateKey may be any
// crypto.Signer, such as a token key), and the center's certificate verified
// against the CA in caCertPEM.
func ClientTLS(caCertPEM []byte, cert tls.Certificate) (*tls.Config, error) {
	pool, err := certPool(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}, nil
}

// SignerCertificate builds a tls.Certificate from a PEM certificate and a
// private key held by signer (for example in a PKCS#11 token). It checks that
// the certificate's public key is signer's.
func SignerCertificate(certPEM []byte, signer crypto.Signer) (tls.Certificate, error) {
	if signer == nil {
		return tls.Certificate{}, fmt.Errorf("signer certificate: nil signer: %w", ErrKeyType)
	}
	der, err := decodePEM(certPEM, "CERTIFICATE")
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("signer certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("signer certificate: %w: %w", ErrBadPEM, err)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("signer certificate %q: key does not match: %w", leaf.Subject.CommonName, ErrKeyType)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: signer, Leaf: leaf}, nil
}

func certPool(caCertPEM []byte) (*x509.CertPool, error) {
	der, err := decodePEM(caCertPEM, "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w: %w", ErrBadPEM, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

// decodePEM returns the DER of the first PEM block, which must have one of
// the given types.
func decodePEM(data []byte, types ...string) ([]byte, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block: %w", ErrBadPEM)
	}
	for _, t := range types {
		if block.Type == t {
			return block.Bytes, nil
		}
	}
	return nil, fmt.Errorf("PEM block type %q, want %q: %w", block.Type, types[0], ErrBadPEM)
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}
