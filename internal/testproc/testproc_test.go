package testproc

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// Unanswered's address accepts a connection and closes it without a byte,
// and stays taken for TCP and UDP while the test runs.
func TestUnansweredClosesEveryConnection(t *testing.T) {
	addr := Unanswered(t)
	for range 3 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || len(b) != 0 {
			t.Fatalf("read %q, %v; want the connection closed at once", b, err)
		}
	}
	for _, network := range []string{"tcp", "udp"} {
		var err error
		if network == "tcp" {
			var l net.Listener
			if l, err = net.Listen(network, addr); err == nil {
				l.Close()
			}
		} else {
			var p net.PacketConn
			if p, err = net.ListenPacket(network, addr); err == nil {
				p.Close()
			}
		}
		if err == nil {
			t.Errorf("%s %s could be bound by another: it is not held", network, addr)
		}
	}
}

func TestMetric(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "# HELP x\nringkv_node_ready 1\n"+
			`ringkv_resp_commands_total{command="get"} 12`+"\n"+
			`ringkv_resp_commands_total{command="getex"} 3`+"\n")
	}))
	defer srv.Close()
	for _, tc := range []struct {
		series string
		want   float64
		found  bool
	}{
		{"ringkv_node_ready", 1, true},
		{`ringkv_resp_commands_total{command="get"}`, 12, true},
		{`ringkv_resp_commands_total{command="set"}`, 0, false},
		{"ringkv_node", 0, false}, // a prefix of a name is not the series
	} {
		v, found, err := Metric(srv.Client(), srv.URL, tc.series)
		if err != nil || v != tc.want || found != tc.found {
			t.Errorf("%s = %v, %v, %v; want %v, %v", tc.series, v, found, err, tc.want, tc.found)
		}
	}
	if got := RESPCommands(t, srv.Client(), srv.URL, "getex"); got != 3 {
		t.Errorf("RESPCommands getex = %d, want 3", got)
	}
}

// The picked ports sit below the ephemeral range, and a redis-server
// started on them answers as itself, in cluster mode too.
func TestRedisServer(t *testing.T) {
	low := ephemeralLow()
	for range 50 {
		if p := pickPort(t); p >= low || p < 1024 {
			t.Fatalf("picked port %d, want one in 1024..%d", p, low-1)
		}
	}
	for _, cluster := range []bool{false, true} {
		addr := RedisServer(t, cluster)
		_, port, _ := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); p >= low {
			t.Fatalf("redis-server on %s, in the ephemeral range", addr)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("CLUSTER INFO\r\n"))
		b := make([]byte, 256)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(b)
		c.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		// A plain server refuses CLUSTER; one in cluster mode describes itself.
		if isCluster := b[0] == '$'; isCluster != cluster {
			t.Fatalf("cluster %v: CLUSTER INFO answered %q", cluster, b[:n])
		}
	}
}
