package mitm

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// ExtraCAs reads the --extra-ca files: each must hold at least one PEM
// certificate, and only certificates are kept (a key pasted by mistake into
// the file never reaches the guest). It returns the certificates and their
// PEM, one bundle in the order given.
func ExtraCAs(paths []string) ([]*x509.Certificate, []byte, error) {
	var certs []*x509.Certificate
	var bundle bytes.Buffer
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("--extra-ca: %w", err)
		}
		n := 0
		for {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("--extra-ca %s: certificate %d: %w", path, n+1, err)
			}
			certs = append(certs, c)
			_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes})
			n++
		}
		if n == 0 {
			return nil, nil, fmt.Errorf("--extra-ca %s: no PEM certificate in the file (want -----BEGIN CERTIFICATE-----)", path)
		}
	}
	return certs, bundle.Bytes(), nil
}

// Roots is the pool that verifies real servers: the system's roots plus
// extra (the --extra-ca certificates).
func Roots(extra []*x509.Certificate) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("system roots: %w", err)
	}
	for _, c := range extra {
		pool.AddCert(c)
	}
	return pool, nil
}
