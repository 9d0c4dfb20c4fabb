package handoff

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/transport"
)

// A hint its target refuses as from the future (across the wire, as a peer's
// error message) is dropped and counted, not retried on every pass, and does
// not hold up the target's other hints behind it.
func TestHintRefusedForClockSkewIsDropped(t *testing.T) {
	kv := newMemKV()
	s := &sink{up: map[string]bool{"n2": true}, got: map[string][]record.Record{}}
	deliver := func(ctx context.Context, target string, key []byte, r *record.Record) error {
		if string(key) == "future" {
			return &transport.RemoteError{Peer: target, Message: clock.ErrClockSkew.Error() + ": 1h ahead"}
		}
		return s.deliver(ctx, target, key, r)
	}
	reg := prometheus.NewRegistry()
	q, err := New(Config{Parallel: 1, Registerer: reg}, kv, deliver, s.isUp)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	q.Hint("n2", []byte("future"), rec(now+3_600_000, "x"))
	for _, k := range []string{"g", "h", "i"} { // after "future" in the queue's order
		q.Hint("n2", []byte(k), rec(now, "v"))
	}
	if n := q.ReplayNow(t.Context()); n != 3 {
		t.Fatalf("delivered %d, want the 3 hints besides the refused one", n)
	}
	if q.Backlog()["n2"] != 0 || len(kv.m) != 0 {
		t.Fatalf("left: backlog %v, %d on disk", q.Backlog(), len(kv.m))
	}
	if got := droppedFor(t, reg, "clock_skew"); got != 1 {
		t.Fatalf("ringkv_hints_dropped_total{reason=clock_skew} = %v, want 1", got)
	}
}

func droppedFor(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ringkv_hints_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
