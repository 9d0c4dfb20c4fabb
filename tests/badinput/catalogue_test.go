package badinput

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// probe is one attack in the catalogue. run carries it out against the
// cluster, fails t when the node's answer is not a clear error or a dropped
// connection, and returns what it observed for the table. TestCatalogue then
// checks the cluster (cluster.verify) after every probe.
type probe struct {
	port   string // resp, http, peer, gossip
	name   string
	attack string // what the probe sends, for the table and docs/security.md
	run    func(t *testing.T, c *cluster) string
}

// catalogue lists every probe, port by port: first the attacks issue 30
// found against the unprotected cluster, then malformed input of each port.
func catalogue() []probe {
	var all []probe
	for _, group := range [][]probe{peerProbes(), httpProbes(), respProbes(), gossipProbes()} {
		all = append(all, group...)
	}
	return all
}

// TestCatalogue runs every probe against one protected 3-node cluster and
// prints the catalogue's table (go test -v ./tests/badinput).
func TestCatalogue(t *testing.T) {
	c := startCluster(t)
	type row struct {
		p        probe
		observed string
		pass     bool
	}
	var rows []row
	for i, p := range catalogue() {
		var observed string
		pass := t.Run(p.port+"/"+p.name, func(t *testing.T) {
			observed = p.run(t, c)
			c.verify(t, i)
		})
		rows = append(rows, row{p, observed, pass})
	}
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "#\tPORT\tPROBE\tATTACK\tOBSERVED\tRESULT")
	for i, r := range rows {
		result := "pass"
		if !r.pass {
			result = "FAIL"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, r.p.port, r.p.name, r.p.attack, oneLine(r.observed), result)
	}
	w.Flush()
	t.Logf("bad-input catalogue, %d probes; after each: every node alive and serving, RSS <= %d MiB, heap <= %d MiB, %d keys unchanged, 3 nodes normal\n%s"+
		"largest RSS seen %d MiB, largest heap in use %d MiB",
		len(rows), rssBound>>20, heapBound>>20, dataSetSize, b.String(), c.maxRSS>>20, c.maxHeap>>20)
	if path := os.Getenv("RINGKV_BADINPUT_TABLE"); path != "" {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 90 {
		s = s[:87] + "..."
	}
	return s
}

// answer is what a raw connection got back after an attack.
type answer struct {
	data   []byte
	closed bool  // the server closed or reset the connection
	err    error // the read error that ended the wait (a timeout: still open)
}

func (a answer) String() string {
	var parts []string
	if len(a.data) > 0 {
		parts = append(parts, fmt.Sprintf("%q", truncate(a.data, 60)))
	}
	switch {
	case a.closed:
		parts = append(parts, "connection closed")
	case a.err != nil:
		parts = append(parts, "no more answer, connection open")
	}
	return strings.Join(parts, ", ")
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return append(b[:n:n], "..."...)
	}
	return b
}

// readAnswer reads what the server sends within wait, stopping early at
// stop(data) or when the connection ends.
func readAnswer(conn net.Conn, wait time.Duration, stop func([]byte) bool) answer {
	var a answer
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for len(a.data) < 1<<16 {
		n, err := conn.Read(buf)
		a.data = append(a.data, buf[:n]...)
		if err != nil {
			a.err = err
			var ne net.Error
			a.closed = !(errors.As(err, &ne) && ne.Timeout())
			return a
		}
		if stop != nil && stop(a.data) {
			return a
		}
	}
	return a
}

// dial opens a plain TCP connection to addr, closed at the end of the test.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closeAll closes the connections a memory probe held open while it checked
// the nodes' memory.
func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
