package badinput

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/pki"
	"github.com/ringkv/ringkv/internal/rebalance"
	"github.com/ringkv/ringkv/internal/record"
)

// Peer methods as the server numbers them (internal/server: replication
// from 0, rebalance from 32). The wire protocol never renumbers them.
const (
	peerApply = 1
	peerGet   = 2
	peerPage  = 32 + rebalance.MethodPage
	peerMark  = 32 + rebalance.MethodMark
)

// The peer wire format (internal/transport/wire.go), written out here so the
// probes speak it as a stranger would, without the transport package.
var peerMagic = []byte("RKVT")

func peerHandshake(id string, maxFrame uint32) []byte {
	b := append([]byte{}, peerMagic...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint32(b, maxFrame)
	b = append(b, byte(len(id)))
	return append(b, id...)
}

func peerFrame(kind byte, id uint64, method uint8, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(1+8+1+len(payload)))
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, id)
	b = append(b, method)
	return append(b, payload...)
}

func peerRequest(method uint8, payload []byte) []byte { return peerFrame(1, 7, method, payload) }

// applyPayload is a replication apply of key=value stamped now.
func applyPayload(key, value []byte) []byte {
	rec := record.Record{Value: value, Version: record.Version{TS: clock.MakeTimestamp(time.Now().UnixMilli(), 0), Node: "n1"}}
	b := binary.AppendUvarint(nil, uint64(len(key)))
	b = append(b, key...)
	return rec.AppendEncode(b)
}

// pageAll asks for every record of the ring, up to 1 MiB.
func pageAll() []byte {
	b := binary.BigEndian.AppendUint64(nil, 0)
	b = binary.BigEndian.AppendUint64(b, ^uint64(0))
	b = binary.BigEndian.AppendUint64(b, 0)
	return binary.BigEndian.AppendUint32(b, 1<<20)
}

// plainPeerAttack speaks the peer protocol in the clear, as the issue's
// attacker did. With mutual TLS the node must never answer in the peer
// protocol: its handshake starts with the magic, a TLS alert does not.
func plainPeerAttack(method uint8, payload func(c *cluster) []byte) func(t *testing.T, c *cluster) string {
	return func(t *testing.T, c *cluster) string {
		conn := dial(t, c.nodes[0].Peer)
		conn.Write(append(peerHandshake("attacker", 1<<20), peerRequest(method, payload(c))...))
		a := readAnswer(conn, 5*time.Second, nil)
		if bytes.Contains(a.data, peerMagic) {
			t.Errorf("the peer port answered in the clear: %s", a)
		}
		if !a.closed {
			t.Errorf("the connection stayed open: %s", a)
		}
		return a.String()
	}
}

// peerTLS dials addr's peer port with cfg and completes the TLS handshake,
// returning the error the client saw (TLS 1.3 reports a refused client
// certificate on the first read).
func peerTLS(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	raw := dial(t, addr)
	conn := tls.Client(raw, cfg)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := conn.Handshake(); err != nil {
		return conn, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// foreignTLSAttack connects with TLS the cluster's CA did not sign for and
// asks to mark n1 removed.
func foreignTLSAttack(cfg func(t *testing.T, c *cluster) *tls.Config) func(t *testing.T, c *cluster) string {
	return func(t *testing.T, c *cluster) string {
		conn, err := peerTLS(t, c.nodes[0].Peer, cfg(t, c))
		if err != nil {
			return "TLS handshake refused: " + err.Error()
		}
		conn.Write(append(peerHandshake("attacker", 1<<20), peerRequest(peerMark, rebalance.EncodeMark("n1", uint8(membership.Removed)))...))
		a := readAnswer(conn, 5*time.Second, nil)
		if bytes.Contains(a.data, peerMagic) {
			t.Errorf("the peer port answered a client without a cluster certificate: %s", a)
		}
		if !a.closed {
			t.Errorf("the connection stayed open: %s", a)
		}
		return "TLS refused after handshake: " + a.String()
	}
}

// member is a peer with a certificate from the cluster's own CA: an insider,
// or a node whose key leaked. Mutual TLS lets it in; what it may do is
// still held to the rules a node follows.
type member struct {
	t    *testing.T
	conn *tls.Conn
}

func (c *cluster) memberCert(t *testing.T, name string) *tls.Config {
	t.Helper()
	f, err := c.sec.ca.IssueFiles(t.TempDir(), name, []string{"127.0.0.1"}, pki.Peer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.CA = c.sec.caFile
	_, client, err := pki.PeerConfigs(f)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func (c *cluster) dialMember(t *testing.T, addr string) *member {
	t.Helper()
	conn, err := peerTLS(t, addr, c.memberCert(t, "n9"))
	if err != nil {
		t.Fatalf("a cluster certificate was refused: %v", err)
	}
	m := &member{t: t, conn: conn}
	conn.Write(peerHandshake("n9", 4<<20))
	// The node's handshake: magic, version, max frame, id length, id.
	hdr := m.read(10)
	if !bytes.Equal(hdr[:4], peerMagic) {
		t.Fatalf("peer handshake %q", hdr)
	}
	m.read(int(hdr[9]))
	return m
}

func (m *member) read(n int) []byte {
	m.t.Helper()
	b := make([]byte, n)
	m.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(m.conn, b); err != nil {
		m.t.Fatalf("reading from the peer port: %v", err)
	}
	return b
}

// call sends one request and returns the response's kind and payload.
func (m *member) call(method uint8, payload []byte) (kind byte, resp []byte) {
	m.t.Helper()
	m.conn.Write(peerRequest(method, payload))
	hdr := m.read(14)
	n := binary.BigEndian.Uint32(hdr[:4])
	return hdr[4], m.read(int(n) - 10)
}

func peerProbes() []probe {
	return []probe{
		{"peer", "plain-read", "peer handshake in the clear, then GET of a data key (method 2)",
			plainPeerAttack(peerGet, func(*cluster) []byte { return []byte(dataKey(1)) })},
		{"peer", "plain-page", "peer handshake in the clear, then a page of every record (method 32)",
			plainPeerAttack(peerPage, func(*cluster) []byte { return pageAll() })},
		{"peer", "plain-write", "peer handshake in the clear, then an apply overwriting a data key (method 1)",
			plainPeerAttack(peerApply, func(*cluster) []byte { return applyPayload([]byte(dataKey(2)), []byte("owned")) })},
		{"peer", "plain-mark-removed", "peer handshake in the clear, then mark n1 removed (method 34)",
			plainPeerAttack(peerMark, func(*cluster) []byte { return rebalance.EncodeMark("n1", uint8(membership.Removed)) })},
		{"peer", "tls-no-client-cert", "TLS without a client certificate, then mark n1 removed",
			foreignTLSAttack(func(_ *testing.T, c *cluster) *tls.Config {
				return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
			})},
		{"peer", "tls-foreign-ca", "TLS with a node certificate from another CA, then mark n1 removed",
			foreignTLSAttack(func(t *testing.T, _ *cluster) *tls.Config {
				dir := t.TempDir()
				ca, err := pki.NewCA("intruder-ca", time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if err := ca.WriteCA(dir); err != nil {
					t.Fatal(err)
				}
				f, err := ca.IssueFiles(dir, "n1", []string{"127.0.0.1"}, pki.Peer, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				_, client, err := pki.PeerConfigs(f)
				if err != nil {
					t.Fatal(err)
				}
				client.VerifyConnection = nil // the attacker trusts any server
				return client
			})},
		{"peer", "member-mark-live-removed", "cluster certificate: mark live n2 removed, sent to n1",
			func(t *testing.T, c *cluster) string {
				m := c.dialMember(t, c.nodes[0].Peer)
				kind, resp := m.call(peerMark, rebalance.EncodeMark("n2", uint8(membership.Removed)))
				if kind != 3 {
					t.Errorf("marking a live node removed: answer kind %d %q, want an error", kind, truncate(resp, 80))
				}
				return fmt.Sprintf("error frame %q", truncate(resp, 80))
			}},
		{"peer", "member-oversized-key", "cluster certificate: apply a 100 KB key (limit 8 KiB)",
			func(t *testing.T, c *cluster) string {
				m := c.dialMember(t, c.nodes[0].Peer)
				key := bytes.Repeat([]byte("k"), 100<<10)
				kind, resp := m.call(peerApply, applyPayload(key, []byte("v")))
				if kind != 3 {
					t.Errorf("a 100 KB key over the peer port: answer kind %d, want an error", kind)
				}
				return fmt.Sprintf("error frame %q", truncate(resp, 80))
			}},
		{"peer", "member-future-write", "cluster certificate: apply stamped a day ahead (clock guard)",
			func(t *testing.T, c *cluster) string {
				m := c.dialMember(t, c.nodes[0].Peer)
				rec := record.Record{Value: []byte("from the future"), Version: record.Version{TS: clock.MakeTimestamp(time.Now().Add(24*time.Hour).UnixMilli(), 0), Node: "n1"}}
				key := []byte(dataKey(3))
				p := rec.AppendEncode(append(binary.AppendUvarint(nil, uint64(len(key))), key...))
				kind, resp := m.call(peerApply, p)
				if kind != 3 {
					t.Errorf("a write stamped a day ahead: answer kind %d, want an error", kind)
				}
				return fmt.Sprintf("error frame %q", truncate(resp, 80))
			}},
		{"peer", "frames-64MiB", "cluster certificate: 12 connections declare 64 MiB frames, send 2 bytes",
			func(t *testing.T, c *cluster) string {
				var conns []*member
				for range 12 {
					m := c.dialMember(t, c.nodes[0].Peer)
					hdr := binary.BigEndian.AppendUint32(nil, 64<<20)
					m.conn.Write(append(hdr, 1, 0))
					conns = append(conns, m)
				}
				time.Sleep(500 * time.Millisecond) // let the node read what it was sent
				c.checkMemory(t, "with 12 frames of 64 MiB declared")
				closed := 0
				for _, m := range conns {
					if a := readAnswer(m.conn, 100*time.Millisecond, nil); a.closed {
						closed++
					}
					m.conn.Close()
				}
				return fmt.Sprintf("memory bounded; %d of 12 connections closed by the node", closed)
			}},
		{"peer", "garbage", "64 KiB of random bytes, no TLS",
			func(t *testing.T, c *cluster) string {
				conn := dial(t, c.nodes[1].Peer)
				junk := make([]byte, 64<<10)
				rand.Read(junk)
				conn.Write(junk)
				a := readAnswer(conn, 5*time.Second, nil)
				if !a.closed || bytes.Contains(a.data, peerMagic) {
					t.Errorf("garbage on the peer port: %s", a)
				}
				return a.String()
			}},
		{"peer", "member-bad-magic", "cluster certificate, then a handshake with a wrong magic",
			memberMalformed(func(*cluster) []byte { return []byte("HTTP/1.1 200\r\n\r\n") })},
		{"peer", "member-bad-version", "cluster certificate, then a handshake of protocol version 99",
			memberMalformed(func(*cluster) []byte {
				h := peerHandshake("n9", 1<<20)
				h[4] = 99
				return h
			})},
		{"peer", "member-bad-frame", "cluster certificate, good handshake, a frame of unknown kind 9 and one of length 3",
			memberMalformed(func(*cluster) []byte {
				b := append(peerHandshake("n9", 1<<20), peerFrame(9, 1, peerGet, []byte("k"))...)
				return append(b, 0, 0, 0, 3, 1, 2, 3)
			})},
	}
}

// memberMalformed sends bytes after a good TLS handshake with a cluster
// certificate; the node must close the connection.
func memberMalformed(data func(*cluster) []byte) func(t *testing.T, c *cluster) string {
	return func(t *testing.T, c *cluster) string {
		conn, err := peerTLS(t, c.nodes[2].Peer, c.memberCert(t, "n9"))
		if err != nil {
			t.Fatalf("a cluster certificate was refused: %v", err)
		}
		conn.Write(data(c))
		a := readAnswer(conn, 5*time.Second, nil)
		// The node's own handshake may come first; nothing else may.
		rest := a.data
		if len(rest) >= 10 && bytes.Equal(rest[:4], peerMagic) && len(rest) >= 10+int(rest[9]) {
			rest = rest[10+int(rest[9]):]
		}
		if len(rest) > 0 || !a.closed {
			t.Errorf("malformed peer input: %s", a)
		}
		return a.String()
	}
}
