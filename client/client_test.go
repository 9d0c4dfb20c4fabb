package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/apitypes"
)

// echoGet answers GET k with "<node>:<k>", SET with OK and anything else
// with an error.
func echoGet(id string) func([]string) string {
	return func(args []string) string {
		switch strings.ToUpper(args[0]) {
		case "GET":
			return bulk(id + ":" + args[1])
		case "SET":
			return "+OK\r\n"
		}
		return "-ERR unknown command\r\n"
	}
}

// fakeNodes starts n fake nodes named f1..fn with handler h(id).
func fakeNodes(t *testing.T, n int, h func(id string) func([]string) string) []*fakeNode {
	t.Helper()
	var out []*fakeNode
	for i := range n {
		id := fmt.Sprintf("f%d", i+1)
		out = append(out, newFakeNode(t, id, h(id)))
	}
	return out
}

func TestRoutesToPrimaryReplica(t *testing.T) {
	nodes := fakeNodes(t, 4, echoGet)
	fc := newFakeCluster(t, 2, nodes...)
	c := newTestClient(t, []string{fc.srv.URL}, nil)
	topo := c.topo.Load()
	for i := range 200 {
		key := fmt.Sprintf("key-%d", i)
		v, err := c.Get(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		want := topo.replicas(key)[0]
		if string(v) != want+":"+key {
			t.Fatalf("GET %s answered by %q, want the primary %s", key, v, want)
		}
	}
	// Each node got only the keys it is the primary of, and in all 200.
	total := 0
	for _, n := range nodes {
		for _, cmd := range n.commands("GET") {
			if p := topo.replicas(cmd[1])[0]; p != n.id {
				t.Errorf("node %s got GET %s, whose primary is %s", n.id, cmd[1], p)
			}
			total++
		}
	}
	if total != 200 {
		t.Errorf("nodes got %d GETs, want 200", total)
	}
}

func TestRoutesAroundDownPrimary(t *testing.T) {
	nodes := fakeNodes(t, 3, echoGet)
	fc := newFakeCluster(t, 2, nodes...)
	fc.update(func(st *apitypes.ClusterStatus) { st.Nodes[0].Up = false })
	c := newTestClient(t, []string{fc.srv.URL}, nil)
	topo := c.topo.Load()
	for i := range 100 {
		key := fmt.Sprintf("key-%d", i)
		v, err := c.Get(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		reps := topo.replicas(key)
		want := reps[0]
		if want == "f1" {
			want = reps[1]
		}
		if !strings.HasPrefix(string(v), want+":") {
			t.Fatalf("GET %s answered by %q, want %s", key, v, want)
		}
	}
	if n := len(nodes[0].all()); n != 0 {
		t.Errorf("the down node got %d commands", n)
	}
}

// keyWithPrimary finds a key whose replicas are, in order, ids.
func keyWithPrimary(t *testing.T, c *Client, ids ...string) string {
	t.Helper()
	topo := c.topo.Load()
	for i := range 100000 {
		k := fmt.Sprintf("k%d", i)
		reps := topo.replicas(k)
		if len(reps) >= len(ids) && strings.Join(reps[:len(ids)], ",") == strings.Join(ids, ",") {
			return k
		}
	}
	t.Fatalf("no key with replicas %v", ids)
	return ""
}

func TestReadRetriesOnAnotherReplica(t *testing.T) {
	failures := map[string]func([]string) string{
		"timeout reply":     func([]string) string { return "-TIMEOUT replication: read quorum not reached\r\n" },
		"unavailable reply": func([]string) string { return "-UNAVAILABLE replication: not enough live replicas\r\n" },
		"dropped conn":      func([]string) string { return "" },
	}
	for name, fail := range failures {
		t.Run(name, func(t *testing.T) {
			nodes := fakeNodes(t, 3, func(id string) func([]string) string {
				if id == "f1" {
					return fail
				}
				return echoGet(id)
			})
			fc := newFakeCluster(t, 3, nodes...)
			c := newTestClient(t, []string{fc.srv.URL}, nil)
			key := keyWithPrimary(t, c, "f1", "f2")
			v, err := c.Get(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			if want := "f2:" + key; string(v) != want {
				t.Fatalf("GET = %q, want %q from the second replica", v, want)
			}
			if n1, n2 := len(nodes[0].commands("GET")), len(nodes[1].commands("GET")); n1 != 1 || n2 != 1 {
				t.Errorf("GETs: primary %d, second replica %d; want 1 each", n1, n2)
			}
		})
	}
}

func TestReadNotRetriedOnRequestError(t *testing.T) {
	nodes := fakeNodes(t, 3, func(string) func([]string) string {
		return func([]string) string { return "-ERR key too large\r\n" }
	})
	fc := newFakeCluster(t, 3, nodes...)
	c := newTestClient(t, []string{fc.srv.URL}, nil)
	_, err := c.Get(t.Context(), "k")
	var se *ServerError
	if !errors.As(err, &se) || se.Prefix != "ERR" || se.Message != "key too large" {
		t.Fatalf("err = %v, want a ServerError ERR key too large", err)
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotFound) {
		t.Errorf("err %v matches a sentinel it should not", err)
	}
	total := 0
	for _, n := range nodes {
		total += len(n.commands("GET"))
	}
	if total != 1 {
		t.Errorf("GET sent %d times, want once", total)
	}
}

func TestWriteIsNeverRetried(t *testing.T) {
	cases := []struct {
		name string
		fail func([]string) string
		want error
	}{
		{"timeout reply", func([]string) string { return "-TIMEOUT replication: write quorum not reached\r\n" }, ErrTimeout},
		{"unavailable reply", func([]string) string { return "-UNAVAILABLE replication: not enough live replicas\r\n" }, ErrUnavailable},
		{"dropped after receiving", func([]string) string { return "" }, ErrTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nodes := fakeNodes(t, 3, func(id string) func([]string) string {
				if id == "f1" {
					return tc.fail
				}
				return echoGet(id)
			})
			fc := newFakeCluster(t, 3, nodes...)
			c := newTestClient(t, []string{fc.srv.URL}, nil)
			key := keyWithPrimary(t, c, "f1")
			err := c.Set(t.Context(), key, []byte("v"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Set err = %v, want %v", err, tc.want)
			}
			total := 0
			for _, n := range nodes {
				total += len(n.commands("SET"))
			}
			if total != 1 {
				t.Errorf("SET sent %d times, want exactly once", total)
			}
		})
	}
}

func TestUnsentWriteGoesToNextReplica(t *testing.T) {
	nodes := fakeNodes(t, 3, echoGet)
	fc := newFakeCluster(t, 3, nodes...)
	c := newTestClient(t, []string{fc.srv.URL}, nil)
	key := keyWithPrimary(t, c, "f1", "f2")
	nodes[0].close() // f1 refuses connections: nothing can be sent to it
	if err := c.Set(t.Context(), key, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if n := len(nodes[1].commands("SET")); n != 1 {
		t.Errorf("second replica got %d SETs, want 1", n)
	}
	if n := len(nodes[2].commands("SET")); n != 0 {
		t.Errorf("third replica got %d SETs, want 0", n)
	}
}

func TestContextDeadlineIsIndeterminate(t *testing.T) {
	nodes := fakeNodes(t, 1, func(string) func([]string) string {
		return func([]string) string { return hang }
	})
	fc := newFakeCluster(t, 1, nodes...)
	c := newTestClient(t, []string{fc.srv.URL}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := c.Set(ctx, "k", []byte("v"))
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout and DeadlineExceeded", err)
	}
}

func TestReadTimeoutClosesHungConnection(t *testing.T) {
	var mu sync.Mutex
	hung := true
	nodes := fakeNodes(t, 1, func(id string) func([]string) string {
		return func(args []string) string {
			mu.Lock()
			defer mu.Unlock()
			if hung {
				return hang
			}
			return echoGet(id)(args)
		}
	})
	fc := newFakeCluster(t, 1, nodes...)
	c := newTestClient(t, []string{fc.srv.URL}, func(cfg *Config) {
		cfg.ReadTimeout = 200 * time.Millisecond
		cfg.PoolSize = 1
	})
	_, err := c.Get(t.Context(), "k") // no deadline: the read timeout ends it
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	mu.Lock()
	hung = false
	mu.Unlock()
	// A fresh connection replaces the dead one.
	if v, err := c.Get(t.Context(), "k"); err != nil || string(v) != "f1:k" {
		t.Fatalf("after the hang: %q, %v", v, err)
	}
}

func TestConsistencyPerCall(t *testing.T) {
	nodes := fakeNodes(t, 1, echoGet)
	fc := newFakeCluster(t, 1, nodes...)
	c := newTestClient(t, []string{fc.srv.URL}, func(cfg *Config) { cfg.PoolSize = 1 })
	ctx := t.Context()
	for _, l := range []Level{One, One, DefaultLevel, All, Quorum} {
		if _, err := c.Get(ctx, "k", WithConsistency(l)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, cmd := range nodes[0].all() {
		got = append(got, strings.Join(cmd, " "))
	}
	want := []string{
		"RINGKV.CONSISTENCY ONE", "GET k", "GET k",
		"RINGKV.CONSISTENCY QUORUM", "GET k", // the default
		"RINGKV.CONSISTENCY ALL", "GET k",
		"RINGKV.CONSISTENCY QUORUM", "GET k",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("commands:\n got %q\nwant %q", got, want)
	}
}

func TestPipelinesConcurrentCalls(t *testing.T) {
	nodes := fakeNodes(t, 1, echoGet)
	fc := newFakeCluster(t, 1, nodes...)
	c := newTestClient(t, []string{fc.srv.URL}, func(cfg *Config) { cfg.PoolSize = 1; cfg.MaxPipeline = 8 })
	var wg sync.WaitGroup
	errs := make(chan error, 500)
	for i := range 500 {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", i)
			v, err := c.Get(t.Context(), key)
			if err == nil && string(v) != "f1:"+key {
				err = fmt.Errorf("GET %s = %q: replies out of step", key, v)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	nodes[0].mu.Lock()
	conns := len(nodes[0].conns)
	nodes[0].mu.Unlock()
	if conns != 1 {
		t.Errorf("%d connections, want 1 with PoolSize 1", conns)
	}
}

func TestFollowsTopologyChanges(t *testing.T) {
	nodes := fakeNodes(t, 3, echoGet)
	fc := newFakeCluster(t, 1, nodes[:2]...)
	c := newTestClient(t, []string{fc.srv.URL}, func(cfg *Config) { cfg.RefreshInterval = 50 * time.Millisecond })
	fc.update(func(st *apitypes.ClusterStatus) {
		st.Nodes = append(st.Nodes, apitypes.NodeStatus{ID: "f3", ClientAddr: nodes[2].ln.Addr().String(), Up: true, State: "normal"})
	})
	deadline := time.Now().Add(30 * time.Second)
	for len(c.topo.Load().ids) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the client did not pick up the third node")
		}
		time.Sleep(20 * time.Millisecond)
	}
	key := keyWithPrimary(t, c, "f3")
	if v, err := c.Get(t.Context(), key); err != nil || string(v) != "f3:"+key {
		t.Fatalf("GET %s = %q, %v; want it from the new node", key, v, err)
	}
}

func TestClosedClient(t *testing.T) {
	nodes := fakeNodes(t, 1, echoGet)
	fc := newFakeCluster(t, 1, nodes...)
	c := newTestClient(t, []string{fc.srv.URL}, nil)
	c.Close()
	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
}

func TestNewFailsWithoutSeeds(t *testing.T) {
	if _, err := New(t.Context(), Config{}); err == nil {
		t.Fatal("New with no seeds succeeded")
	}
	_, err := New(t.Context(), Config{Seeds: []string{"127.0.0.1:1"}})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("New with an unreachable seed: %v, want ErrUnavailable", err)
	}
}
