package cli

import (
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/pki"
)

// certCmd runs `ringkv cert args...` and returns its exit code and output.
func certCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	te := newTestEnv(t)
	code = te.run(t.Context(), append([]string{"cert"}, args...)...)
	return code, te.stdout.String(), te.stderr.String()
}

func mustCert(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := certCmd(t, args...)
	if code != exitOK {
		t.Fatalf("cert %v: exit %d: %s", args, code, errOut)
	}
	return out
}

// handshake runs one TLS handshake over real loopback TCP and returns the
// error each side saw. The server echoes one byte so that a refusal the
// server decides after its side of the handshake (TLS 1.3 checks the client's
// certificate then) reaches the client too.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		if err := c.(*tls.Conn).Handshake(); err != nil {
			done <- err
			return
		}
		_, err = io.Copy(c, io.LimitReader(c, 1))
		done <- err
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), client)
	if err == nil {
		defer c.Close()
		if _, err = c.Write([]byte{1}); err == nil {
			_, err = io.ReadFull(c, make([]byte, 1))
		}
	}
	return <-done, err
}

func TestCertMakesWorkingCertificates(t *testing.T) {
	dir := t.TempDir()
	out := mustCert(t, "ca", "--dir", dir)
	if !strings.Contains(out, filepath.Join(dir, "ca.crt")) {
		t.Errorf("ca output %q does not name ca.crt", out)
	}
	out = mustCert(t, "node", "--dir", dir, "--name", "n1", "--host", "127.0.0.1")
	if !strings.Contains(out, "--peer-tls-cert "+filepath.Join(dir, "n1.crt")) {
		t.Errorf("node output %q does not give the peer flags", out)
	}
	mustCert(t, "node", "--dir", dir, "--name", "n2")
	mustCert(t, "server", "--dir", dir, "--name", "srv", "--host", "127.0.0.1,localhost")
	mustCert(t, "client", "--dir", dir, "--name", "alice")

	for _, name := range []string{"ca", "n1", "n2", "srv", "alice"} {
		st, err := os.Stat(filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s.key mode %v, want 0600", name, st.Mode().Perm())
		}
	}

	files := func(name string) pki.Files {
		return pki.Files{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"), CA: filepath.Join(dir, "ca.crt")}
	}
	// Two nodes speak mutual TLS with each other.
	n1Server, _, err := pki.PeerConfigs(files("n1"))
	if err != nil {
		t.Fatal(err)
	}
	_, n2Client, err := pki.PeerConfigs(files("n2"))
	if err != nil {
		t.Fatal(err)
	}
	if se, ce := handshake(t, n1Server, n2Client); se != nil || ce != nil {
		t.Fatalf("node to node: server %v, client %v", se, ce)
	}

	// A client certificate is accepted by a server that requires one, and
	// the server certificate verifies for the host it names.
	srv, err := pki.ServerConfig(files("srv"), pki.RequireClientCert)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := pki.ClientConfig(files("alice"))
	if err != nil {
		t.Fatal(err)
	}
	alice.ServerName = "localhost"
	if se, ce := handshake(t, srv, alice); se != nil || ce != nil {
		t.Fatalf("client to server: server %v, client %v", se, ce)
	}

	// A node certificate from another CA is refused by the first cluster.
	other := t.TempDir()
	mustCert(t, "ca", "--dir", other)
	mustCert(t, "node", "--dir", other, "--name", "intruder")
	_, intruder, err := pki.PeerConfigs(pki.Files{Cert: filepath.Join(other, "intruder.crt"), Key: filepath.Join(other, "intruder.key"), CA: filepath.Join(other, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	se, ce := handshake(t, n1Server, intruder)
	if se == nil || ce == nil {
		t.Fatalf("a foreign node's handshake: server %v, client %v; want both to fail", se, ce)
	}
}

func TestCertErrors(t *testing.T) {
	dir := t.TempDir()
	empty := t.TempDir()
	mustCert(t, "ca", "--dir", dir)
	mustCert(t, "client", "--dir", dir, "--name", "bob")
	caBefore, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ca"}, exitUsage, "--dir is required"},
		{[]string{"ca", "--dir", dir}, exitError, "pass --force"},
		{[]string{"node", "--dir", dir}, exitUsage, "--name is required"},
		{[]string{"node", "--dir", dir, "--name", "../x"}, exitUsage, "plain name"},
		{[]string{"node", "--dir", dir, "--name", "ca"}, exitUsage, "plain name"},
		{[]string{"server", "--dir", dir, "--name", "s"}, exitUsage, "--host is required"},
		{[]string{"client", "--dir", dir, "--name", "bob"}, exitError, "pass --force"},
		{[]string{"client", "--dir", dir, "--name", "carol", "--host", "x"}, exitUsage, "unknown flag"},
		{[]string{"node", "--dir", empty, "--name", "n1"}, exitError, "ringkv cert ca --dir"},
		{[]string{"node", "--dir", dir, "--name", "n1", "--validity", "-1h"}, exitUsage, "--validity"},
	} {
		code, _, errOut := certCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("cert %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	caAfter, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if string(caBefore) != string(caAfter) {
		t.Fatal("a refused `cert ca` replaced the CA key")
	}
	if _, err := os.Stat(filepath.Join(empty, "n1.crt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a node certificate was written without a CA: %v", err)
	}

	// --force replaces the CA.
	mustCert(t, "ca", "--dir", dir, "--force")
	if caNew, err := os.ReadFile(filepath.Join(dir, "ca.key")); err != nil || string(caNew) == string(caBefore) {
		t.Fatalf("cert ca --force kept the old key (err %v)", err)
	}
}
