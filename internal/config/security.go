package config

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
)

// PeerTLS reports whether the peer port is to speak mutual TLS.
func (c *Config) PeerTLS() bool {
	return c.PeerTLSCert != "" || c.PeerTLSKey != "" || c.PeerTLSCA != ""
}

// checkPeerSecurity checks the node-to-node settings: the peer TLS files
// come as a set, and a peer or gossip port that other hosts can reach must
// be protected unless --insecure says the operator means it (issue 30: an
// open peer port gave anyone every key and the power to empty the ring).
func (c *Config) checkPeerSecurity(bad func(flag, format string, args ...any)) {
	if c.PeerTLS() && (c.PeerTLSCert == "" || c.PeerTLSKey == "" || c.PeerTLSCA == "") {
		bad("peer-tls-cert", "--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together: set all three or none")
	}
	if c.Insecure {
		return
	}
	if !c.PeerTLS() && !isLoopback(c.PeerAddr) {
		bad("peer-addr", "%s is not a loopback address and the peer port has no --peer-tls-cert/--peer-tls-key/--peer-tls-ca: anyone who reaches it can read, write and remove nodes; set them, or --insecure to run it open", c.PeerAddr)
	}
	if c.GossipKeyFile == "" && !isLoopback(c.GossipAddr) {
		bad("gossip-addr", "%s is not a loopback address and gossip has no --gossip-key-file: anyone who reaches it can join the cluster; set one, or --insecure to run it open", c.GossipAddr)
	}
}

// ReadGossipKeys reads a --gossip-key-file: one base64 key a line, 16, 24 or
// 32 bytes once decoded, blank lines and lines starting with # ignored. The
// first key is the one this node encrypts with; all are accepted, which is
// how a key is rotated (see docs/operations.md).
func ReadGossipKeys(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: --gossip-key-file: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(string(line))
		if err != nil {
			return nil, fmt.Errorf("config: --gossip-key-file %s line %d: not base64: %w", path, n, err)
		}
		switch len(k) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("config: --gossip-key-file %s line %d: key is %d bytes, want 16, 24 or 32", path, n, len(k))
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config: --gossip-key-file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("config: --gossip-key-file %s holds no key", path)
	}
	return keys, nil
}
