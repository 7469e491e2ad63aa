package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/posgate/posgate/gateway/forward"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/protocol/pki"
)

// CSRPath is where the gateway writes its certificate signing request.
func CSRPath(cfg Config) string { return filepath.Join(cfg.DataDir, "link", "gateway.csr") }

// OpenToken creates (when cfg.SoftHSMDir is not "-") and opens the gateway's
// token, and makes sure the link identity key exists in it.
func OpenToken(cfg Config) (*hsm.Token, error) {
	h := cfg.HSM
	tok, err := h.Open()
	if err != nil {
		return nil, err
	}
	ok, err := tok.HasKey(h.IdentityLabel)
	if err == nil && !ok {
		err = tok.GenerateECDSA(h.IdentityLabel)
	}
	if err != nil {
		tok.Close()
		return nil, fmt.Errorf("link identity key %q: %w", h.IdentityLabel, err)
	}
	return tok, nil
}

// WriteCSR writes a certificate signing request for the gateway's token-held
// identity key to CSRPath and returns the path.
func WriteCSR(cfg Config, tok *hsm.Token) (string, error) {
	signer, err := tok.Signer(cfg.HSM.IdentityLabel)
	if err != nil {
		return "", fmt.Errorf("identity signer: %w", err)
	}
	csr, err := pki.NewCSR(signer, cfg.GatewayID)
	if err != nil {
		return "", fmt.Errorf("build CSR: %w", err)
	}
	p := CSRPath(cfg)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(p, csr, 0o644); err != nil {
		return "", fmt.Errorf("write CSR: %w", err)
	}
	return p, nil
}

// linkTLS loads the gateway's certificate and the link CA. It returns
// forward.ErrNotEnrolled when either file is missing.
func linkTLS(cfg Config, tok *hsm.Token) (*tls.Config, error) {
	certPEM, err := os.ReadFile(cfg.Center.Cert)
	if errors.Is(err, os.ErrNotExist) {
		return nil, forward.ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("read link certificate: %w", err)
	}
	caPEM, err := os.ReadFile(cfg.Center.CACert)
	if errors.Is(err, os.ErrNotExist) {
		return nil, forward.ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("read link CA: %w", err)
	}
	signer, err := tok.Signer(cfg.HSM.IdentityLabel)
	if err != nil {
		return nil, fmt.Errorf("identity signer: %w", err)
	}
	cert, err := pki.SignerCertificate(certPEM, signer)
	if err != nil {
		return nil, fmt.Errorf("link certificate %s: %w", cfg.Center.Cert, err)
	}
	c, err := pki.ClientTLS(caPEM, cert)
	if err != nil {
		return nil, fmt.Errorf("link TLS: %w", err)
	}
	return c, nil
}

// notEnrolled is the uplink of a gateway without a link certificate.
type notEnrolled struct{}

func (notEnrolled) RoundTrip(context.Context, []byte) ([]byte, error) {
	return nil, forward.ErrNotEnrolled
}
