package badinput

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ringkv/ringkv/internal/testproc"
	"github.com/ringkv/ringkv/internal/testutil"
)

// intruderIn fails t if n lists a member whose id is not one of the cluster's.
func (c *cluster) intruderIn(t *testing.T) {
	t.Helper()
	for _, n := range c.nodes {
		st, err := c.status(n)
		if err != nil {
			t.Errorf("%s: %v", n.ID, err)
			continue
		}
		for _, m := range st.Nodes {
			if m.ID != "n1" && m.ID != "n2" && m.ID != "n3" {
				t.Errorf("%s lists a member %s (%s) that is not the cluster's", n.ID, m.ID, m.State)
			}
		}
	}
}

// memberlistJoin joins n1's gossip address with a bare memberlist holding
// key (nil: none), as a tool built on the same library would.
func memberlistJoin(key []byte) func(t *testing.T, c *cluster) string {
	return func(t *testing.T, c *cluster) string {
		cfg := memberlist.DefaultLocalConfig()
		cfg.Name = "intruder"
		cfg.BindAddr, cfg.BindPort, cfg.AdvertisePort = "127.0.0.1", 0, 0
		cfg.LogOutput = io.Discard
		cfg.SecretKey = key
		ml, err := memberlist.Create(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer ml.Shutdown()
		n, err := ml.Join([]string{c.nodes[0].Gossip})
		if err == nil || n > 0 {
			t.Errorf("joined %d node(s) without the cluster's key (err %v)", n, err)
		}
		c.intruderIn(t)
		if err == nil {
			return "joined"
		}
		return "join refused: " + err.Error()
	}
}

func gossipProbes() []probe {
	otherKey := make([]byte, 32)
	rand.Read(otherKey)
	return []probe{
		{"gossip", "node-without-key", "a ringkv node with no gossip key and no peer certificate joins n1",
			func(t *testing.T, c *cluster) string {
				in := testproc.NewNode(t, ringkvBin, "intruder")
				in.Flags = []string{"--in-memory"}
				in.Join = []string{c.nodes[0].Gossip}
				in.StartNoWait()
				defer in.Kill()
				// memberlist's join is over when the node says which way it went.
				testutil.Eventually(t, 60*time.Second, func() error {
					if l := in.Log(); strings.Contains(l, "no seed answered") || strings.Contains(l, "joined cluster") {
						return nil
					}
					if !in.Alive() {
						t.Fatalf("the intruder exited:\n%s", in.LogTail())
					}
					return errors.New("the intruder has neither joined nor given up")
				})
				if strings.Contains(in.Log(), "joined cluster") {
					t.Errorf("a node without the gossip key joined the cluster")
				}
				c.intruderIn(t)
				return "its join failed: no seed answered"
			}},
		{"gossip", "memberlist-no-key", "a bare memberlist with no key joins n1", memberlistJoin(nil)},
		{"gossip", "memberlist-wrong-key", "a bare memberlist with another 32-byte key joins n1", memberlistJoin(otherKey)},
		{"gossip", "garbage-packets", "1000 random UDP packets and 10 TCP streams of random bytes to each gossip port",
			func(t *testing.T, c *cluster) string {
				before := make([]int, len(c.nodes))
				for i, n := range c.nodes {
					before[i] = n.logLines()
					udp, err := net.Dial("udp", n.Gossip)
					if err != nil {
						t.Fatal(err)
					}
					junk := make([]byte, 512)
					for range 1000 {
						rand.Read(junk)
						udp.Write(junk[:1+int(junk[0])*2])
					}
					udp.Close()
					for range 10 {
						conn := dial(t, n.Gossip)
						rand.Read(junk)
						conn.Write(junk)
						readAnswer(conn, 200*time.Millisecond, nil)
						conn.Close()
					}
				}
				// Each node logs once per interval with a count, not once a packet.
				time.Sleep(time.Second) // let the nodes write what they log
				var grew []string
				for i, n := range c.nodes {
					g := n.logLines() - before[i]
					if g > 40 {
						t.Errorf("%s wrote %d log lines for 1010 bad gossip packets and streams", n.ID, g)
					}
					grew = append(grew, fmt.Sprintf("%s +%d", n.ID, g))
				}
				return "log lines: " + strings.Join(grew, ", ")
			}},
	}
}
