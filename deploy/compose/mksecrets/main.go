// Command mksecrets makes what the compose cluster (deploy/compose.yaml)
// needs to start protected: a cluster CA, a peer certificate for each of its
// nodes and a gossip key, written into one directory that compose mounts as
// secrets. It uses the same internal/pki that `ringkv demo` and `ringkv cert`
// use; it exists so that `make compose-secrets` and the compose test need
// nothing but Go.
//
//	go run ./deploy/compose/mksecrets -dir deploy/compose/secrets
//
// The directory is made 0700; inside it the node keys are 0644 because
// compose bind-mounts each file into the containers, whose user (uid 65532)
// is not the host user that made them. ca.key stays 0600 and is never
// mounted: it is kept only to sign a certificate for a node added later. An existing directory is left alone, so a
// second run does not orphan the certificates of running nodes.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringkv/ringkv/internal/pki"
)

func main() {
	dir := flag.String("dir", "deploy/compose/secrets", "directory to write into (must not exist yet, or hold a complete earlier run)")
	nodes := flag.String("nodes", "n1,n2,n3", "comma-separated node names; each is also the host name its certificate names")
	validity := flag.Duration("validity", 2*365*24*time.Hour, "how long the certificates are valid")
	flag.Parse()
	if err := run(*dir, strings.Split(*nodes, ","), *validity); err != nil {
		fmt.Fprintln(os.Stderr, "mksecrets:", err)
		os.Exit(1)
	}
}

func run(dir string, nodes []string, validity time.Duration) error {
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err == nil {
		fmt.Printf("%s already holds a CA; left as it is\n", dir)
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	ca, err := pki.NewCA("ringkv-compose-ca", validity)
	if err != nil {
		return err
	}
	if err := ca.WriteCA(dir); err != nil {
		return err
	}
	for _, n := range nodes {
		f, err := ca.IssueFiles(dir, n, []string{n, "localhost", "127.0.0.1"}, pki.Peer, validity)
		if err != nil {
			return err
		}
		if err := os.Chmod(f.Key, 0o644); err != nil {
			return err
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "gossip.keys"), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote the CA, certificates for %s and a gossip key into %s\n", strings.Join(nodes, ", "), dir)
	return nil
}
