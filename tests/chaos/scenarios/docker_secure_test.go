//go:build docker

package scenarios

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ringkv/ringkv/internal/pki"
)

// The Docker cluster runs as production nodes should (issue 30): its nodes
// listen on the network's addresses, not loopback, so each speaks mutual TLS
// on the peer port with a certificate from the run's CA, encrypts its gossip
// with the run's key, and asks clients for a password. The certificates and
// the key live on the host in one directory, mounted read-only into every
// container at /certs.

// chaosPassword is the default user's password on every node.
const chaosPassword = "chaos-default-password"

const containerCerts = "/certs"

// dockerSecrets is the run's CA and gossip key, on the host.
type dockerSecrets struct {
	dir string
	ca  *pki.CA
}

func newDockerSecrets(dir string) (*dockerSecrets, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ca, err := pki.NewCA("chaos-ca", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := ca.WriteCA(dir); err != nil {
		return nil, err
	}
	// The containers run as root and read the files through the bind mount.
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "gossip.key"), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return &dockerSecrets{dir: dir, ca: ca}, nil
}

// nodeArgs issues node i's peer certificate for its address (once: a
// container run again keeps it) and returns the flags that protect it, with
// the paths it sees inside its container.
func (s *dockerSecrets) nodeArgs(i int, ip string) ([]string, error) {
	name := fmt.Sprintf("n%d", i+1)
	if _, err := os.Stat(filepath.Join(s.dir, name+".crt")); os.IsNotExist(err) {
		if _, err := s.ca.IssueFiles(s.dir, name, []string{ip}, pki.Peer, 24*time.Hour); err != nil {
			return nil, err
		}
	}
	in := func(f string) string { return containerCerts + "/" + f }
	return []string{
		"--password", chaosPassword,
		"--peer-tls-cert", in(name + ".crt"), "--peer-tls-key", in(name + ".key"), "--peer-tls-ca", in("ca.crt"),
		"--gossip-key-file", in("gossip.key"),
	}, nil
}

// mount is the docker run flag that shows the directory to a container.
func (s *dockerSecrets) mount() []string {
	return []string{"-v", s.dir + ":" + containerCerts + ":ro"}
}

// bearer sends the password with every request of the harness's HTTP client.
type bearer struct{ next http.RoundTripper }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+chaosPassword)
	return b.next.RoundTrip(r)
}
