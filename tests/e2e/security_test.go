package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/pki"
)

// Every node the tests start runs as a production node should (issue 30):
// mutual TLS on the peer port with a certificate from the tests' CA, an
// encrypted gossip keyring, and a password on the client and HTTP ports.
// The client ports stay plain: they listen on loopback.

// e2ePassword is the default user's password on every node.
const e2ePassword = "e2e-default-password"

var (
	// testCA signs every node's peer certificate; caFile is its ca.crt.
	testCA *pki.CA
	caFile string
	// gossipKeyFile holds the cluster's gossip key.
	gossipKeyFile string
)

// setUpSecrets makes the CA and gossip key in dir, once for the package.
func setUpSecrets(dir string) error {
	ca, err := pki.NewCA("e2e-ca", 24*time.Hour)
	if err != nil {
		return err
	}
	if err := ca.WriteCA(dir); err != nil {
		return err
	}
	key := make([]byte, 32)
	rand.Read(key)
	gossipKeyFile = filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(gossipKeyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	testCA, caFile = ca, filepath.Join(dir, "ca.crt")
	return nil
}

// operatorCommand runs a ringkv command that talks to a node (status,
// repair, decommission, removenode) logged in as an operator's shell would
// be, through RINGKV_PASSWORD.
func operatorCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "RINGKV_PASSWORD="+e2ePassword)
	return cmd
}

// securityArgs are the flags that protect a node: its own peer certificate,
// issued into a directory of the test so that tests running at once with
// the same node ids do not share files.
func securityArgs(t testing.TB, id string) []string {
	t.Helper()
	f, err := testCA.IssueFiles(t.TempDir(), id, []string{"127.0.0.1"}, pki.Peer, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		"--password", e2ePassword,
		"--peer-tls-cert", f.Cert, "--peer-tls-key", f.Key, "--peer-tls-ca", caFile,
		"--gossip-key-file", gossipKeyFile,
	}
}

// httpc is the HTTP client of the tests: it sends the password with every
// request, as an operator's tooling does.
var httpc = &http.Client{Transport: bearer{http.DefaultTransport}}

type bearer struct{ next http.RoundTripper }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+e2ePassword)
	return b.next.RoundTrip(r)
}
