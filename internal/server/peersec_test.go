package server

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/pki"
	"github.com/ringkv/ringkv/internal/rebalance"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/transport"
)

// securedCluster starts two nodes with peer mutual TLS and a gossip key,
// and returns them with the CA's directory and the key file.
func securedCluster(t *testing.T) (n1, n2 *Server, ca *pki.CA, dir, keyFile string) {
	t.Helper()
	dir = t.TempDir()
	ca, err := pki.NewCA("test-cluster", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(dir, "gossip.keys")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secured := func(id string, join ...string) *Server {
		f, err := ca.IssueFiles(dir, id, []string{"127.0.0.1"}, pki.Peer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, id, filepath.Join(dir, id), join...)
		cfg.PeerTLSCert, cfg.PeerTLSKey, cfg.PeerTLSCA, cfg.GossipKeyFile = f.Cert, f.Key, f.CA, keyFile
		cfg.MaxKeyBytes, cfg.MaxValueBytes = 64, 1024
		return startServer(t, cfg)
	}
	n1 = secured("n1")
	n2 = secured("n2", n1.Addrs().Gossip)
	for _, s := range []*Server{n1, n2} {
		testutil.Eventually(t, 60*time.Second, func() error { return upAndNormal(s, 2) })
	}
	return n1, n2, ca, dir, keyFile
}

// peerClient is a transport that only dials, with the given TLS config.
func peerClient(t *testing.T, clientTLS *tls.Config) *transport.TCP {
	t.Helper()
	tr, err := transport.Listen(transport.TCPConfig{Addr: "127.0.0.1:0", NodeID: "probe", ClientTLS: clientTLS,
		Handler: func(context.Context, string, uint8, []byte) ([]byte, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func call(t *testing.T, tr *transport.TCP, addr string, method uint8, payload []byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := tr.Call(ctx, addr, method, payload)
	return err
}

func applyPayload(key, value []byte) []byte {
	rec := record.Record{Value: value, Version: record.Version{TS: clock.MakeTimestamp(time.Now().UnixMilli(), 0), Node: "probe"}}
	return rec.AppendEncode(append(binary.AppendUvarint(nil, uint64(len(key))), key...))
}

// The probes of issue 30 against a secured pair of nodes: without a cluster
// certificate nothing is served; with one (a compromised or mistaken peer),
// a live node cannot be marked away and a write past the client limits is
// refused; a node without the gossip key does not join.
func TestSecuredPeerPort(t *testing.T) {
	n1, n2, ca, dir, _ := securedCluster(t)
	peerAddr := n1.Addrs().Peer

	t.Run("no certificate", func(t *testing.T) {
		other, err := pki.NewCA("other", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		odir := t.TempDir()
		if err := other.WriteCA(odir); err != nil {
			t.Fatal(err)
		}
		f, err := other.IssueFiles(odir, "rogue", nil, pki.Peer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, foreign, err := pki.PeerConfigs(f)
		if err != nil {
			t.Fatal(err)
		}
		noCert := foreign.Clone()
		noCert.Certificates = nil
		for name, c := range map[string]*tls.Config{"no TLS": nil, "no cert": noCert, "other CA": foreign} {
			tr := peerClient(t, c)
			for _, probe := range []struct {
				method  uint8
				payload []byte
			}{
				{replication.MethodGet, append([]byte{1}, 'k')},
				{rebalance.MethodMark, rebalance.EncodeMark("n2", uint8(membership.Removed))},
				{replication.MethodApply, applyPayload([]byte("k"), []byte("v"))},
			} {
				err := call(t, tr, peerAddr, probe.method, probe.payload)
				if err == nil || transport.IsRemote(err) {
					t.Errorf("%s: method %d reached the node: %v", name, probe.method, err)
				}
			}
		}
	})

	f, err := ca.IssueFiles(dir, "insider", []string{"127.0.0.1"}, pki.Peer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, insiderTLS, err := pki.PeerConfigs(f)
	if err != nil {
		t.Fatal(err)
	}
	insider := peerClient(t, insiderTLS)

	t.Run("mark a live node", func(t *testing.T) {
		for _, id := range []string{"n2", "n1"} {
			for _, st := range []membership.State{membership.Removed, membership.Leaving} {
				err := call(t, insider, peerAddr, rebalance.MethodMark, rebalance.EncodeMark(id, uint8(st)))
				if !transport.IsRemote(err) || !strings.Contains(err.Error(), "refusing mark") {
					t.Errorf("mark %s %s: err = %v, want the node's refusal", id, st, err)
				}
			}
		}
		if marks := n1.member.Marks(); len(marks) != 0 {
			t.Fatalf("n1 holds marks %v after refusing them", marks)
		}
		if err := upAndNormal(n1, 2); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("oversized peer write", func(t *testing.T) {
		for name, p := range map[string][]byte{
			"key":   applyPayload([]byte(strings.Repeat("k", 100<<10)), []byte("v")),
			"value": applyPayload([]byte("k"), make([]byte, 2048)),
		} {
			err := call(t, insider, peerAddr, replication.MethodApply, p)
			if !transport.IsRemote(err) || !strings.Contains(err.Error(), "exceeds --max-") {
				t.Errorf("%s: err = %v, want the size limit's refusal", name, err)
			}
		}
		if err := call(t, insider, peerAddr, replication.MethodApply, applyPayload([]byte("k"), []byte("v"))); err != nil {
			t.Fatalf("a write within the limits: %v", err)
		}
	})

	t.Run("gossip without the key", func(t *testing.T) {
		f, err := ca.IssueFiles(dir, "n3", []string{"127.0.0.1"}, pki.Peer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, "n3", filepath.Join(dir, "n3"), n1.Addrs().Gossip)
		cfg.PeerTLSCert, cfg.PeerTLSKey, cfg.PeerTLSCA = f.Cert, f.Key, f.CA
		n3 := startServer(t, cfg)
		testutil.Eventually(t, 60*time.Second, func() error {
			if n3.member.JoinFailures() == 0 {
				return errJoinPending
			}
			return nil
		})
		for _, s := range []*Server{n1, n2} {
			for _, m := range s.member.Members() {
				if m.ID == "n3" {
					t.Fatalf("%s lists n3, which has no gossip key", s.cfg.NodeID)
				}
			}
		}
	})
}

var errJoinPending = errors.New("n3's join attempt not refused yet")
