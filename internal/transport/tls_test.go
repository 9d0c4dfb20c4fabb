package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/pki"
	"github.com/ringkv/ringkv/internal/testutil"
)

// peerTLS makes a CA in a temporary directory and returns a node's peer TLS
// configs issued by it, plus the CA to issue more.
func peerTLS(tb testing.TB, caName string) (*pki.CA, string, func(name string) (server, client *tls.Config)) {
	tb.Helper()
	dir := tb.TempDir()
	ca, err := pki.NewCA(caName, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ca.WriteCA(dir); err != nil {
		tb.Fatal(err)
	}
	issue := func(name string) (*tls.Config, *tls.Config) {
		f, err := ca.IssueFiles(dir, name, []string{"127.0.0.1"}, pki.Peer, time.Hour)
		if err != nil {
			tb.Fatal(err)
		}
		s, c, err := pki.PeerConfigs(f)
		if err != nil {
			tb.Fatal(err)
		}
		return s, c
	}
	return ca, dir, issue
}

// countingHandler counts the requests that reach it.
func countingHandler(n *atomic.Int64) Handler {
	return func(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
		n.Add(1)
		return echo(ctx, from, method, payload)
	}
}

// With peer TLS on, two nodes of one CA talk; a plain client, a TLS client
// with no certificate and a node of another CA reach no handler, and every
// refusal is counted.
func TestTCPMutualTLS(t *testing.T) {
	ca, dir, issue := peerTLS(t, "cluster")
	_, _, foreign := peerTLS(t, "elsewhere")
	var served atomic.Int64
	ss, sc := issue("n1")
	srv := startTCP(t, "n1", countingHandler(&served), func(c *TCPConfig) {
		c.ServerTLS, c.ClientTLS, c.Registerer = ss, sc, prometheus.NewRegistry()
	})

	cs, cc := issue("n2")
	member := startTCP(t, "n2", echo, func(c *TCPConfig) { c.ServerTLS, c.ClientTLS = cs, cc })
	resp, err := member.Call(callCtx(t, 5*time.Second), srv.Addr(), 3, []byte("hi"))
	if err != nil || string(resp) != "\x03hi" {
		t.Fatalf("member call = %q, %v", resp, err)
	}
	if served.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", served.Load())
	}

	t.Run("host-checking client config", func(t *testing.T) {
		// A dialler config that checks host names (pki.ClientConfig) is
		// given the dialled host to check.
		f, err := ca.IssueFiles(dir, "n3", []string{"127.0.0.1"}, pki.Peer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		strict, err := pki.ClientConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := startTCP(t, "n3", echo, func(c *TCPConfig) { c.ClientTLS = strict })
		if _, err := tr.Call(callCtx(t, 5*time.Second), srv.Addr(), 1, []byte("x")); err != nil {
			t.Fatalf("call with a host-checking config: %v", err)
		}
	})

	fs, fc := foreign("x1")
	noCert := cc.Clone()
	noCert.Certificates = nil
	for name, dialTLS := range map[string]*tls.Config{
		"other CA": fc,
		"no cert":  noCert,
	} {
		t.Run(name, func(t *testing.T) {
			tr := startTCP(t, "rogue", echo, func(c *TCPConfig) { c.ServerTLS, c.ClientTLS = fs, dialTLS })
			for method := range uint8(40) {
				if _, err := tr.Call(callCtx(t, 5*time.Second), srv.Addr(), method, []byte("x")); err == nil {
					t.Fatalf("method %d: call succeeded without a cluster certificate", method)
				}
			}
		})
	}
	t.Run("plain TCP", func(t *testing.T) {
		// The peer handshake and a request in the clear, as the attack in
		// issue 30 sent them: no answer, the connection closed.
		nc, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		msg := appendHandshake(nil, handshake{nodeID: "rogue", maxFrame: 1 << 20})
		msg = appendFrame(msg, kindRequest, 1, 2, []byte("key"))
		if _, err := nc.Write(msg); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(nc)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read: %v, want the connection closed", err)
		}
		if len(got) > 0 && got[0] != 0x15 { // a TLS alert record is all it may get
			t.Fatalf("plain client got %q", got)
		}
	})
	t.Run("server of another CA", func(t *testing.T) {
		// The dialler checks the server too: a node of another cluster
		// listening where a member should be gets no request.
		var foreignServed atomic.Int64
		impostor := startTCP(t, "impostor", countingHandler(&foreignServed), func(c *TCPConfig) { c.ServerTLS, c.ClientTLS = fs, fc })
		if _, err := member.Call(callCtx(t, 5*time.Second), impostor.Addr(), 1, []byte("x")); err == nil {
			t.Fatal("call to a server of another CA succeeded")
		}
		if foreignServed.Load() != 0 {
			t.Fatal("impostor served a request")
		}
	})
	if n := served.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want only the two members' calls", n)
	}
	testutil.EventuallyEvery(t, 5*time.Second, time.Millisecond, func() error {
		if got := metricValue(t, srv.metrics.refused); got < 3 {
			return errors.New("refused handshakes not counted")
		}
		return nil
	})
}
