package transport

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ringkv/ringkv/internal/testutil"
)

// memCluster attaches nodes a, b and c, each counting the requests it served.
type memCluster struct {
	net    *MemNetwork
	nodes  map[string]*MemTransport
	served map[string]*atomic.Int64
}

func newMemCluster(tb testing.TB, seed int64) *memCluster {
	tb.Helper()
	mc := &memCluster{net: NewMemNetwork(seed), nodes: map[string]*MemTransport{}, served: map[string]*atomic.Int64{}}
	for _, addr := range []string{"a", "b", "c"} {
		mc.listen(tb, addr)
	}
	return mc
}

func (mc *memCluster) listen(tb testing.TB, addr string) {
	tb.Helper()
	if mc.served[addr] == nil {
		mc.served[addr] = new(atomic.Int64)
	}
	served := mc.served[addr]
	tr := mc.net.Listen(addr, func(ctx context.Context, from string, method uint8, p []byte) ([]byte, error) {
		served.Add(1)
		if method == 255 {
			return nil, errors.New("refused by " + addr)
		}
		return fmt.Appendf(nil, "%s->%s:%s", from, addr, p), nil
	})
	tb.Cleanup(func() { _ = tr.Close() })
	mc.nodes[addr] = tr
}

func (mc *memCluster) call(tb testing.TB, from, to string, d time.Duration) ([]byte, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), d)
	defer cancel()
	return mc.nodes[from].Call(ctx, to, 1, []byte("x"))
}

func wantOK(tb testing.TB, mc *memCluster, from, to string) {
	tb.Helper()
	resp, err := mc.call(tb, from, to, 5*time.Second)
	if want := from + "->" + to + ":x"; err != nil || string(resp) != want {
		tb.Fatalf("%s->%s: Call = %q, %v; want %q", from, to, resp, err, want)
	}
}

func wantNotSent(tb testing.TB, mc *memCluster, from, to string) {
	tb.Helper()
	served := mc.served[to]
	if served == nil {
		served = new(atomic.Int64)
	}
	before := served.Load()
	_, err := mc.call(tb, from, to, 5*time.Second)
	if !errors.Is(err, ErrUnreachable) || !NotSent(err) {
		tb.Fatalf("%s->%s: err = %v, want NotSent ErrUnreachable", from, to, err)
	}
	if served.Load() != before {
		tb.Fatalf("%s->%s: refused request reached the handler", from, to)
	}
}

// wantLost expects a call that reaches the handler but whose response is lost:
// the caller times out, not knowing whether it was applied.
func wantLost(tb testing.TB, mc *memCluster, from, to string) {
	tb.Helper()
	before := mc.served[to].Load()
	_, err := mc.call(tb, from, to, 50*time.Millisecond)
	if !isDeadline(err) || NotSent(err) {
		tb.Fatalf("%s->%s: err = %v, want DeadlineExceeded, not NotSent", from, to, err)
	}
	testutil.EventuallyEvery(tb, 5*time.Second, time.Millisecond, func() error {
		if got := mc.served[to].Load() - before; got != 1 {
			return fmt.Errorf("%s->%s: handler ran %d times, want once", from, to, got)
		}
		return nil
	})
}

func TestMemNetworkCall(t *testing.T) {
	mc := newMemCluster(t, 1)
	wantOK(t, mc, "a", "b")

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := mc.nodes["a"].Call(ctx, "b", 255, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "refused by b" || re.Peer != "b" || NotSent(err) {
		t.Errorf("handler error: err = %v, want RemoteError from b", err)
	}
	wantNotSent(t, mc, "a", "nowhere")
}

func TestMemNetworkPayloadIsCopied(t *testing.T) {
	n := NewMemNetwork(1)
	got := make(chan []byte, 1)
	srv := n.Listen("srv", func(_ context.Context, _ string, _ uint8, p []byte) ([]byte, error) {
		got <- p
		return nil, nil
	})
	defer srv.Close()
	cli := n.Listen("cli", echo)
	defer cli.Close()
	p := []byte("original")
	if _, err := cli.Call(t.Context(), "srv", 0, p); err != nil {
		t.Fatal(err)
	}
	copy(p, "CHANGED!")
	if s := string(<-got); s != "original" {
		t.Errorf("handler saw %q after the caller reused its buffer", s)
	}
}

func TestMemNetworkPartition(t *testing.T) {
	mc := newMemCluster(t, 1)
	mc.net.Partition("a", "b")
	wantNotSent(t, mc, "a", "b")
	wantNotSent(t, mc, "b", "a")
	wantOK(t, mc, "a", "c")
	wantOK(t, mc, "c", "b")
	mc.net.Heal()
	wantOK(t, mc, "a", "b")
	wantOK(t, mc, "b", "a")
}

func TestMemNetworkPartitionOneWay(t *testing.T) {
	mc := newMemCluster(t, 1)
	mc.net.PartitionOneWay("a", "b")
	wantNotSent(t, mc, "a", "b")
	// b's request reaches a, but a's response to b cannot pass.
	wantLost(t, mc, "b", "a")
	wantOK(t, mc, "c", "b")
	mc.net.Heal()
	wantOK(t, mc, "a", "b")
}

func TestMemNetworkIsolate(t *testing.T) {
	mc := newMemCluster(t, 1)
	mc.net.Isolate("a")
	mc.listen(t, "d") // isolation covers nodes that join later
	for _, other := range []string{"b", "c", "d"} {
		wantNotSent(t, mc, "a", other)
		wantNotSent(t, mc, other, "a")
	}
	wantOK(t, mc, "b", "c")
	mc.net.Heal()
	wantOK(t, mc, "a", "d")
}

func TestMemNetworkDownUp(t *testing.T) {
	mc := newMemCluster(t, 1)
	mc.net.Down("b")
	wantNotSent(t, mc, "a", "b")
	wantNotSent(t, mc, "b", "c")
	mc.net.Heal() // healing partitions does not revive a process
	wantNotSent(t, mc, "a", "b")
	mc.net.Up("b")
	wantOK(t, mc, "a", "b")
}

func TestMemNetworkDropLooksLikeTimeout(t *testing.T) {
	mc := newMemCluster(t, 42)
	mc.net.SetDropRate(1)
	const calls = 40
	for range calls {
		_, err := mc.call(t, "a", "b", 20*time.Millisecond)
		if !isDeadline(err) || NotSent(err) {
			t.Fatalf("dropped call: err = %v, want DeadlineExceeded, not NotSent", err)
		}
	}
	// Some requests were lost on the way, some after the handler ran: the
	// caller sees the same timeout either way.
	testutil.EventuallyEvery(t, 5*time.Second, time.Millisecond, func() error {
		if got := mc.served["b"].Load(); got == 0 || got == calls {
			return fmt.Errorf("handler ran for %d of %d dropped calls, want some but not all", got, calls)
		}
		return nil
	})
	mc.net.SetDropRate(0)
	wantOK(t, mc, "a", "b")
}

func TestMemNetworkDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mc := newMemCluster(t, 7)
		mc.net.SetDelay(10*time.Millisecond, 30*time.Millisecond)
		for range 20 {
			start := time.Now()
			wantOK(t, mc, "a", "b")
			// Under synctest time is virtual, so this is exact, not a guess.
			if rtt := time.Since(start); rtt < 20*time.Millisecond || rtt > 60*time.Millisecond {
				t.Fatalf("round trip took %v, want two delays in [10ms, 30ms]", rtt)
			}
		}
		// A deadline shorter than the delay times out with the outcome unknown.
		_, err := mc.call(t, "a", "b", 5*time.Millisecond)
		if !isDeadline(err) || NotSent(err) {
			t.Fatalf("err = %v, want DeadlineExceeded, not NotSent", err)
		}
		mc.net.SetDelay(0, 0)
		start := time.Now()
		wantOK(t, mc, "a", "b")
		if rtt := time.Since(start); rtt != 0 {
			t.Fatalf("round trip took %v without delay", rtt)
		}
	})
}

func TestMemNetworkCloseAndRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mc := newMemCluster(t, 1)
		mc.net.SetDelay(time.Second, time.Second)
		errc := make(chan error, 1)
		go func() {
			_, err := mc.nodes["a"].Call(t.Context(), "b", 1, nil)
			errc <- err
		}()
		synctest.Wait()
		_ = mc.nodes["a"].Close()
		if err := <-errc; !errors.Is(err, ErrClosed) || NotSent(err) {
			t.Fatalf("outstanding call: err = %v, want ErrClosed, not NotSent", err)
		}
		if _, err := mc.nodes["a"].Call(t.Context(), "b", 1, nil); !errors.Is(err, ErrClosed) || !NotSent(err) {
			t.Fatalf("call after Close: err = %v, want NotSent ErrClosed", err)
		}
		mc.net.SetDelay(0, 0)

		_ = mc.nodes["b"].Close()
		wantNotSent(t, mc, "c", "b")
		mc.listen(t, "b") // restart on the same address
		wantOK(t, mc, "c", "b")
	})
}

func TestMemNetworkListenTwicePanics(t *testing.T) {
	n := NewMemNetwork(1)
	tr := n.Listen("a", echo)
	defer tr.Close()
	defer func() {
		if recover() == nil {
			t.Errorf("second Listen on a live address did not panic")
		}
	}()
	n.Listen("a", echo)
}

// TestMemNetworkPauseHoldsRequestsUntilResume: a paused node answers nothing,
// and the requests it held run once it resumes, as after SIGCONT.
func TestMemNetworkPauseHoldsRequestsUntilResume(t *testing.T) {
	n := NewMemNetwork(1)
	a := n.Listen("a", nil)
	b := n.Listen("b", func(context.Context, string, uint8, []byte) ([]byte, error) { return []byte("pong"), nil })
	defer a.Close()
	defer b.Close()
	n.Pause("b")
	if n.Reachable("a", "b") {
		t.Error("a paused node is reachable; gossip would not see it frozen")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Call(ctx, "b", 1, nil); err == nil {
		t.Fatal("a paused node answered")
	}
	got := make(chan string, 1)
	go func() {
		resp, err := a.Call(context.Background(), "b", 1, nil)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(resp)
	}()
	n.Resume("b")
	if r := <-got; r != "pong" {
		t.Fatalf("after resume the held request got %q, want pong", r)
	}
}
