package server

import (
	"crypto/tls"
	"fmt"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/pki"
)

// clientTLS loads the client and HTTP ports' TLS settings, or returns nil
// when --tls-cert is not set. Both ports share one config: a client that
// trusts the node's certificate on one trusts it on the other.
func clientTLS(cfg config.Config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	auth := pki.NoClientCert
	switch {
	case cfg.TLSRequireClientCert:
		auth = pki.RequireClientCert
	case cfg.TLSCA != "":
		auth = pki.OptionalClientCert
	}
	tc, err := pki.ServerConfig(pki.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA}, auth)
	if err != nil {
		return nil, fmt.Errorf("server: client TLS (--tls-cert, --tls-key, --tls-ca): %w", err)
	}
	return tc, nil
}

// maxClientMemoryCap is --max-client-memory's automatic value (0): 10% of
// the host's memory, at most 1 GiB, at least 64 MiB so that a few maximal
// commands still fit on a small host.
func maxClientMemoryCap(set int64) int64 {
	if set > 0 {
		return set
	}
	const most, least = 1 << 30, 64 << 20
	total := totalRAM()
	if total <= 0 {
		return most
	}
	return min(most, max(least, total/10))
}
