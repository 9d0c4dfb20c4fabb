package cli

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ringkv/ringkv/internal/pki"
)

// demoValidity outlasts any demo session; the CA dies with the directory.
const demoValidity = 30 * 24 * time.Hour

// demoSecrets are what the demo's nodes protect their peer and gossip ports
// with: a peer certificate per node from a CA of the demo's own, and a
// gossip key.
type demoSecrets struct {
	peer      []pki.Files
	gossipKey string
}

// makeDemoSecrets writes a CA, n node certificates (node1.crt, ...) and a
// gossip key into dir, as an operator would with `ringkv cert`.
func makeDemoSecrets(dir string, n int) (demoSecrets, error) {
	var s demoSecrets
	ca, err := pki.NewCA("ringkv-demo-ca", demoValidity)
	if err != nil {
		return s, err
	}
	if err := ca.WriteCA(dir); err != nil {
		return s, err
	}
	for i := range n {
		f, err := ca.IssueFiles(dir, fmt.Sprintf("node%d", i+1), []string{"127.0.0.1", "localhost"}, pki.Peer, demoValidity)
		if err != nil {
			return s, err
		}
		s.peer = append(s.peer, f)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return s, err
	}
	s.gossipKey = filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(s.gossipKey, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return s, err
	}
	return s, nil
}
