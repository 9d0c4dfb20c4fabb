// Package pki makes and loads the certificates ringkv's TLS needs: a cluster
// CA, node certificates that serve and dial the peer port (mutual TLS), and
// server or client certificates for the client and HTTP ports.
//
// It exists so that `ringkv demo`, `ringkv cert` and the tests make real
// certificates the same way an operator's CA would, and so that every port
// loads its files through one function with one set of TLS settings.
package pki

import (
	"crypto/ecdsa"
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
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority held in memory: its certificate and key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertPEM is Cert, PEM-encoded, as written to ca.crt.
	CertPEM []byte
}

// Usage says what a leaf certificate is for.
type Usage int

const (
	// Server certificates serve TLS (client and HTTP ports).
	Server Usage = 1 << iota
	// Client certificates authenticate to a server.
	Client
	// Peer is both: a node serves its peer port and dials others with the
	// same certificate.
	Peer = Server | Client
)

// NewCA makes a self-signed CA valid for validity from now.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"ringkv"}},
		NotBefore:             now.Add(-time.Hour), // tolerate peers whose clocks lag
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pemBlock("CERTIFICATE", der)}, nil
}

// Issue signs a leaf certificate for commonName, valid for hosts (IP
// addresses or DNS names; none for a pure client certificate), and returns
// it and its key, PEM-encoded.
func (ca *CA) Issue(commonName string, hosts []string, usage Usage, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"ringkv"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if usage&Server != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if usage&Client != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

// Files names a certificate, its key and the CA that verifies the other side.
type Files struct {
	Cert, Key, CA string
}

// IssueFiles issues a certificate as Issue does and writes it to
// dir/name.crt and dir/name.key (mode 0600), returning their paths with the
// CA's (dir/ca.crt, which WriteCA writes).
func (ca *CA) IssueFiles(dir, name string, hosts []string, usage Usage, validity time.Duration) (Files, error) {
	certPEM, keyPEM, err := ca.Issue(name, hosts, usage, validity)
	if err != nil {
		return Files{}, err
	}
	f := Files{
		Cert: filepath.Join(dir, name+".crt"),
		Key:  filepath.Join(dir, name+".key"),
		CA:   filepath.Join(dir, "ca.crt"),
	}
	if err := os.WriteFile(f.Cert, certPEM, 0o644); err != nil {
		return Files{}, err
	}
	if err := os.WriteFile(f.Key, keyPEM, 0o600); err != nil {
		return Files{}, err
	}
	return f, nil
}

// WriteCA writes ca.crt and ca.key into dir (created 0700 if missing).
func (ca *CA) WriteCA(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ca.key"), pemBlock("PRIVATE KEY", keyDER), 0o600)
}

// LoadCA reads the ca.crt and ca.key WriteCA wrote.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", dir, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: %s: CA key is %T, want ECDSA", dir, pair.PrivateKey)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: %s/ca.crt is not a CA certificate", dir)
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// ClientAuth says whether a server asks its clients for certificates.
type ClientAuth int

const (
	// NoClientCert: the server never asks.
	NoClientCert ClientAuth = iota
	// OptionalClientCert: a client may present one; if it does, it must
	// verify against the CA.
	OptionalClientCert
	// RequireClientCert: mutual TLS; a client without a valid certificate
	// is refused in the handshake.
	RequireClientCert
)

// ServerConfig loads f for a listener. f.CA is needed unless auth is
// NoClientCert.
func ServerConfig(f Files, auth ClientAuth) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
	}
	switch auth {
	case NoClientCert:
		return cfg, nil
	case OptionalClientCert:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case RequireClientCert:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("pki: unknown client auth %d", auth)
	}
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, err
	}
	cfg.ClientCAs = pool
	return cfg, nil
}

// ClientConfig loads f for dialling: f.CA verifies the server; f.Cert and
// f.Key, when set, are presented to it.
func ClientConfig(f Files) (*tls.Config, error) {
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if f.Cert != "" || f.Key != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// PeerConfigs loads a node's peer files once for both sides of mutual TLS:
// the listener requires a CA-signed client certificate, and the dialler
// presents the same certificate and verifies the server against the CA.
// Peers dial each other by address, and an operator's certificates may not
// name every address a node is reached at, so the dialler checks the chain
// against the CA and not the host name: membership in the cluster is what
// the CA vouches for.
func PeerConfigs(f Files) (server, client *tls.Config, err error) {
	server, err = ServerConfig(f, RequireClientCert)
	if err != nil {
		return nil, nil, err
	}
	pool := server.ClientCAs
	client = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       server.Certificates,
		RootCAs:            pool,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pki: peer presented no certificate")
			}
			opts := x509.VerifyOptions{
				Roots:         pool,
				Intermediates: x509.NewCertPool(),
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		},
	}
	return server, client, nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, errors.New("pki: no CA file given")
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// WriteBundle makes a new CA in dir and issues from it a server certificate
// for hosts ("server.crt") and a client certificate ("client.crt"): what a
// node's client port with mutual TLS and one client of it need. Tests of
// every TLS port start from it.
func WriteBundle(dir string, hosts []string, validity time.Duration) (server, client Files, err error) {
	ca, err := NewCA("ringkv CA", validity)
	if err != nil {
		return Files{}, Files{}, err
	}
	if err := ca.WriteCA(dir); err != nil {
		return Files{}, Files{}, err
	}
	if server, err = ca.IssueFiles(dir, "server", hosts, Server, validity); err != nil {
		return Files{}, Files{}, err
	}
	if client, err = ca.IssueFiles(dir, "client", nil, Client, validity); err != nil {
		return Files{}, Files{}, err
	}
	return server, client, nil
}
