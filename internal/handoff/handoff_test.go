package handoff

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// memKV is an ordered in-memory KV; the production queue runs on Pebble's
// hint keyspace, which the server tests cover.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (kv *memKV) Set(k, v []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.m[string(k)] = bytes.Clone(v)
	return nil
}

func (kv *memKV) Delete(k []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	delete(kv.m, string(k))
	return nil
}

func (kv *memKV) Iterate(from []byte, fn func(k, v []byte) error) error {
	kv.mu.Lock()
	keys := make([]string, 0, len(kv.m))
	for k := range kv.m {
		if k >= string(from) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = kv.m[k]
	}
	kv.mu.Unlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

type sink struct {
	mu   sync.Mutex
	up   map[string]bool
	fail bool
	got  map[string][]record.Record
}

func (s *sink) deliver(_ context.Context, target string, key []byte, rec *record.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("unreachable")
	}
	s.got[target+"/"+string(key)] = append(s.got[target+"/"+string(key)], rec.Clone())
	return nil
}

func (s *sink) isUp(target string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up[target]
}

func rec(ts int64, v string) *record.Record {
	return &record.Record{Value: []byte(v), Version: record.Version{TS: clock.MakeTimestamp(ts, 0), Node: "n1"}}
}

func TestReplayDeliversWithOriginalVersionOnlyToUpTargets(t *testing.T) {
	kv := newMemKV()
	s := &sink{up: map[string]bool{}, got: map[string][]record.Record{}}
	q, err := New(Config{Clock: clock.NewManual(time.UnixMilli(1000))}, kv, s.deliver, s.isUp)
	if err != nil {
		t.Fatal(err)
	}
	q.Hint("n2", []byte("a"), rec(10, "x"))
	q.Hint("n2", []byte("b"), rec(11, "y"))
	q.Hint("n3", []byte("a"), rec(10, "x"))
	if got := q.Backlog(); got["n2"] != 2 || got["n3"] != 1 {
		t.Fatalf("backlog %v", got)
	}
	if n := q.ReplayNow(t.Context()); n != 0 {
		t.Fatalf("delivered %d hints to down targets", n)
	}
	s.up["n2"] = true
	if n := q.ReplayNow(t.Context()); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
	if r := s.got["n2/a"]; len(r) != 1 || r[0].Version != rec(10, "x").Version || string(r[0].Value) != "x" {
		t.Fatalf("n2/a got %+v", r)
	}
	if got := q.Backlog(); got["n2"] != 0 || got["n3"] != 1 {
		t.Fatalf("backlog after replay %v", got)
	}
	if len(kv.m) != 1 {
		t.Fatalf("%d hints left on disk, want 1", len(kv.m))
	}
}

func TestFailedReplayKeepsHints(t *testing.T) {
	kv := newMemKV()
	s := &sink{up: map[string]bool{"n2": true}, fail: true, got: map[string][]record.Record{}}
	q, err := New(Config{}, kv, s.deliver, s.isUp)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		q.Hint("n2", []byte{byte(i)}, rec(int64(i+1), "v"))
	}
	if n := q.ReplayNow(t.Context()); n != 0 {
		t.Fatalf("delivered %d while failing", n)
	}
	if q.Backlog()["n2"] != 100 || len(kv.m) != 100 {
		t.Fatalf("hints lost on failed replay: backlog %v, disk %d", q.Backlog(), len(kv.m))
	}
	s.fail = false
	if n := q.ReplayNow(t.Context()); n != 100 {
		t.Fatalf("delivered %d, want 100", n)
	}
}

func TestHintsSurviveRestartAndExpire(t *testing.T) {
	kv := newMemKV()
	clk := clock.NewManual(time.UnixMilli(1_000_000))
	s := &sink{up: map[string]bool{}, got: map[string][]record.Record{}}
	q, err := New(Config{Clock: clk, MaxWindow: time.Hour}, kv, s.deliver, s.isUp)
	if err != nil {
		t.Fatal(err)
	}
	q.Hint("n2", []byte("old"), rec(1, "v"))
	clk.Advance(30 * time.Minute)
	q.Hint("n2", []byte("new"), rec(2, "v"))

	// A new queue over the same keyspace (a restarted node) sees both.
	q2, err := New(Config{Clock: clk, MaxWindow: time.Hour}, kv, s.deliver, s.isUp)
	if err != nil {
		t.Fatal(err)
	}
	if q2.Backlog()["n2"] != 2 {
		t.Fatalf("backlog after restart %v", q2.Backlog())
	}
	clk.Advance(45 * time.Minute) // "old" is now 75 min old, past the window
	s.up["n2"] = true
	if n := q2.ReplayNow(t.Context()); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
	if _, ok := s.got["n2/old"]; ok {
		t.Fatal("hint past the window was delivered")
	}
	if q2.Backlog()["n2"] != 0 || len(kv.m) != 0 {
		t.Fatalf("left: backlog %v disk %d", q2.Backlog(), len(kv.m))
	}
}

func TestMaxBytesDropsHints(t *testing.T) {
	kv := newMemKV()
	s := &sink{up: map[string]bool{}, got: map[string][]record.Record{}}
	q, err := New(Config{MaxBytes: 200}, kv, s.deliver, s.isUp)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		q.Hint("n2", []byte{byte(i)}, rec(int64(i+1), "0123456789"))
	}
	if n := len(kv.m); n == 0 || n >= 10 {
		t.Fatalf("%d hints stored under a 200-byte cap", n)
	}
	if q.bytes.Load() > 200 {
		t.Fatalf("stored %d bytes over the cap", q.bytes.Load())
	}
}
