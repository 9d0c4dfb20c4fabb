package client

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/resp"
)

// fakeNode is a RESP listener standing in for a node at the client's network
// seam: it records every command and answers with handler. It lets tests
// make a node fail in exact ways (an error reply, a dropped connection, no
// answer) that a real node cannot be made to fail on cue.
type fakeNode struct {
	id string
	ln net.Listener
	// handler returns the raw reply to a command (e.g. "+OK\r\n"), or ""
	// to close the connection without answering, or hang for never.
	handler func(args []string) string

	mu       sync.Mutex
	received [][]string // every command, in arrival order
	conns    []net.Conn
}

// hang is a handler result: read the command, never answer.
const hang = "hang"

func newFakeNode(t testing.TB, id string, handler func(args []string) string) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNode{id: id, ln: ln, handler: handler}
	go f.serve()
	t.Cleanup(f.close)
	return f
}

func (f *fakeNode) serve() {
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, nc)
		f.mu.Unlock()
		go f.serveConn(nc)
	}
}

func (f *fakeNode) serveConn(nc net.Conn) {
	defer nc.Close()
	rd := resp.NewReader(nc, resp.Limits{MaxArgs: 1 << 20, MaxBulk: 64 << 20, MaxQuery: 128 << 20})
	bw := bufio.NewWriter(nc)
	for {
		args, err := rd.Next()
		if err != nil {
			return
		}
		if args == nil {
			if bw.Flush() != nil || rd.Fill() != nil {
				return
			}
			continue
		}
		cmd := make([]string, len(args))
		for i, a := range args {
			cmd[i] = string(a)
		}
		f.mu.Lock()
		f.received = append(f.received, cmd)
		f.mu.Unlock()
		var out string
		if strings.EqualFold(cmd[0], "RINGKV.CONSISTENCY") {
			out = "+OK\r\n"
		} else {
			out = f.handler(cmd)
		}
		switch out {
		case "":
			return
		case hang:
			continue
		}
		bw.WriteString(out)
	}
}

// commands returns the commands received named name (any case).
func (f *fakeNode) commands(name string) [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, c := range f.received {
		if strings.EqualFold(c[0], name) {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeNode) all() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.received...)
}

func (f *fakeNode) close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

// fakeCluster serves /v1/cluster for a set of fake nodes; tests change the
// status it serves to move the topology under the client.
type fakeCluster struct {
	srv *httptest.Server
	mu  sync.Mutex
	st  apitypes.ClusterStatus
}

func newFakeCluster(t testing.TB, rf int, nodes ...*fakeNode) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{st: apitypes.ClusterStatus{Self: nodes[0].id, Replicas: rf, VNodes: 16}}
	for _, n := range nodes {
		fc.st.Nodes = append(fc.st.Nodes, apitypes.NodeStatus{ID: n.id, ClientAddr: n.ln.Addr().String(), Up: true, State: "normal"})
	}
	fc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cluster" {
			http.NotFound(w, r)
			return
		}
		fc.mu.Lock()
		defer fc.mu.Unlock()
		_ = json.NewEncoder(w).Encode(fc.st) // the client under test reports a broken answer
	}))
	t.Cleanup(fc.srv.Close)
	return fc
}

func (fc *fakeCluster) update(f func(st *apitypes.ClusterStatus)) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	f(&fc.st)
}

// bulk renders a RESP bulk string reply.
func bulk(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }
