package center

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/posgate/posgate/protocol/pki"
)

// Link certificate lifetimes.
const (
	caValidity      = 10 * 365 * 24 * time.Hour
	gatewayValidity = 2 * 365 * 24 * time.Hour
	serverValidity  = 365 * 24 * time.Hour
)

// CAPaths returns where the link CA's certificate and key live. The CA key is
// a 0600 file in the data directory; moving it into the center's token is
// future work (pki.LoadCASigner already accepts a token signer).
func CAPaths(dataDir string) (certPath, keyPath string) {
	d := filepath.Join(dataDir, "link")
	return filepath.Join(d, "ca.crt"), filepath.Join(d, "ca.key")
}

// LoadOrCreateCA loads the link CA from the data directory, creating it on
// first use.
func LoadOrCreateCA(dataDir string) (*pki.CA, error) {
	certPath, keyPath := CAPaths(dataDir)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		ca, err := pki.LoadCA(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("load link CA from %s: %w", filepath.Dir(certPath), err)
		}
		return ca, nil
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
	case cerr != nil:
		return nil, fmt.Errorf("read link CA certificate: %w", cerr)
	default:
		return nil, fmt.Errorf("read link CA key: %w", kerr)
	}
	ca, err := pki.NewCA("posgate link CA", caValidity)
	if err != nil {
		return nil, fmt.Errorf("create link CA: %w", err)
	}
	keyPEM, err = ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return nil, fmt.Errorf("create link CA: %w", err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write link CA key: %w", err)
	}
	if err := os.WriteFile(certPath, ca.CertPEM(), 0o644); err != nil {
		return nil, fmt.Errorf("write link CA certificate: %w", err)
	}
	return ca, nil
}

// Enrol signs a gateway's certificate signing request with the link CA and
// returns the gateway certificate and the CA certificate (PEM). The CSR's
// common name must equal gatewayID.
func Enrol(dataDir, gatewayID string, csrPEM []byte) (certPEM, caPEM []byte, err error) {
	if err := pki.CheckGatewayID(gatewayID); err != nil {
		return nil, nil, err
	}
	ca, err := LoadOrCreateCA(dataDir)
	if err != nil {
		return nil, nil, err
	}
	certPEM, err = ca.SignGatewayCSR(csrPEM, gatewayID, gatewayValidity)
	if err != nil {
		return nil, nil, fmt.Errorf("enrol gateway %s: %w", gatewayID, err)
	}
	return certPEM, ca.CertPEM(), nil
}
