package membership

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/testutil"
)

// startKeyed starts a node with the given gossip keys, joining join.
func startKeyed(tb testing.TB, id string, keys [][]byte, join ...string) *Membership {
	tb.Helper()
	m, err := New(Config{NodeID: id, BindAddr: "127.0.0.1:0", Join: join, Meta: testMeta(id), Keys: keys,
		Logger: testLogger(tb).With("node", id), Profile: ProfileLocal})
	if err != nil {
		tb.Fatal(err)
	}
	return startMember(tb, m)
}

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// A node with no gossip key or the wrong one cannot join a keyed cluster,
// and the cluster never lists it (issue 30: a keyless fourth node joined and
// became normal). Nodes that share a key, or hold the other's key second
// (a rotation under way), join.
func TestKeyringKeepsOutNodesWithoutTheKey(t *testing.T) {
	a := startKeyed(t, "a", [][]byte{key(1)})
	b := startKeyed(t, "b", [][]byte{key(1)}, a.LocalAddr())
	for name, keys := range map[string][][]byte{
		"no key":    nil,
		"wrong key": {key(9)},
	} {
		t.Run(name, func(t *testing.T) {
			id := "x-" + strings.ReplaceAll(name, " ", "-")
			x := startKeyed(t, id, keys, a.LocalAddr())
			// Its join attempt has been made and refused.
			testutil.Eventually(t, 10*time.Second, func() error {
				if x.JoinFailures() == 0 {
					return errors.New("join not refused yet")
				}
				return nil
			})
			for _, m := range []*Membership{a, b, x} {
				for _, mem := range m.Members() {
					if (m == x) != (mem.ID == id) {
						t.Fatalf("%s lists %s: a node without the key got in", m.LocalID(), mem.ID)
					}
				}
			}
		})
	}
	// Rotation: c already encrypts with the new key 2 but still accepts 1;
	// a and b, holding only 1, cannot read c's packets, so c first needs a
	// node that holds both.
	d := startKeyed(t, "d", [][]byte{key(1), key(2)}, a.LocalAddr())
	c := startKeyed(t, "c", [][]byte{key(2), key(1)}, d.LocalAddr())
	for _, m := range []*Membership{d, c} {
		testutil.Eventually(t, 10*time.Second, func() error {
			for _, id := range []string{"c", "d"} {
				found := false
				for _, mem := range m.Members() {
					found = found || (mem.ID == id && mem.Up)
				}
				if !found {
					return fmt.Errorf("%s does not list %s up", m.LocalID(), id)
				}
			}
			return nil
		})
	}
}

// A flood of garbage packets on the gossip port is logged once per
// interval, with a count, and counted in full.
func TestBadGossipIsSampled(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, string(p))
		return len(p), nil
	})
	m, err := New(Config{NodeID: "a", BindAddr: "127.0.0.1:0", Meta: testMeta("a"), Keys: [][]byte{key(1)},
		Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})), Profile: ProfileLocal})
	if err != nil {
		t.Fatal(err)
	}
	startMember(t, m)
	nc, err := net.Dial("udp", m.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const packets = 200
	for i := range packets {
		if _, err := fmt.Fprintf(nc, "garbage %d", i); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := m.BadGossip(); n < packets/2 {
			return fmt.Errorf("counted %d bad packets of %d sent", n, packets)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 || len(lines) > 3 {
		t.Fatalf("%d garbage packets made %d log lines, want 1 to 3:\n%s", m.BadGossip(), len(lines), strings.Join(lines, ""))
	}
}

func TestAlive(t *testing.T) {
	a := startKeyed(t, "a", nil)
	if !a.Alive("a") {
		t.Fatal("a does not see itself alive")
	}
	if a.Alive("nobody") {
		t.Fatal("an unknown node counts as alive")
	}
}
