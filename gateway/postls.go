package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/posgate/posgate/gateway/ecr"
)

// posTLS builds the POS API's HTTPS configuration: the server certificate,
// and client certificates verified against the client CA when given (a POS
// without one authenticates with its API key).
func posTLS(c ecr.TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("POS API TLS certificate: %w", err)
	}
	caPEM, err := os.ReadFile(c.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("POS API client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("POS API client CA %s: no PEM certificate", c.ClientCA)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
