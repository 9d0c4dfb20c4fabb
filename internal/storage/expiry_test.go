package storage

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/testutil"
)

type hookCall struct {
	key      string
	old, new *record.Record
}

// changeLog records OnApply calls.
type changeLog struct {
	mu      sync.Mutex
	changes []hookCall
}

func (l *changeLog) onApply(_ uint64, key []byte, old, new record.Record) {
	clone := func(r record.Record) *record.Record {
		if r.Version.IsZero() {
			return nil
		}
		c := r.Clone()
		return &c
	}
	l.mu.Lock()
	l.changes = append(l.changes, hookCall{string(key), clone(old), clone(new)})
	l.mu.Unlock()
}

func (l *changeLog) last() hookCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changes[len(l.changes)-1]
}

func TestExpiryLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		const grace = time.Hour
		clk := clock.NewManual(epoch)
		var log changeLog
		s := openTest(t, Options{Engine: engine, Clock: clk, GCGrace: grace, OnApply: log.onApply})

		live := withTTL(val(0, "a", "v"), 10_000) // expires 10 s after epoch
		mustApply(t, s, "ttl", live)
		mustApply(t, s, "forever", val(0, "a", "v"))
		mustApply(t, s, "deleted", del(0, "a"))
		checkIndex(t, s)

		step := func(d time.Duration, wantHandled int) {
			t.Helper()
			clk.Advance(d)
			n, err := s.ExpireNow()
			if err != nil || n != wantHandled {
				t.Fatalf("after %v: ExpireNow = %d, %v; want %d", d, n, err, wantHandled)
			}
			checkIndex(t, s)
		}

		step(9999*time.Millisecond, 0) // 1 ms before expiry: nothing due
		if r, _ := mustGet(t, s, "ttl"); r.Tombstone || string(r.Value) != "v" {
			t.Fatalf("converted before expiry: %s", fmtRecord(r))
		}

		step(time.Millisecond, 1) // at ExpireAt: converted
		r, found := mustGet(t, s, "ttl")
		if !found || !r.Tombstone || r.Value != nil || r.Version != live.Version || r.ExpireAt != live.ExpireAt {
			t.Fatalf("expired record = %s, want a tombstone with the same version and expiry", fmtRecord(r))
		}
		if c := log.last(); c.key != "ttl" || c.old == nil || !sameRecord(*c.old, live) || c.new == nil || !sameRecord(*c.new, r) {
			t.Fatalf("OnApply for expiry = %+v", c)
		}
		// An older copy arriving late (a hint, a stream) loses to the tombstone.
		if res := mustApply(t, s, "ttl", val(0, "a", "older")); res.Applied {
			t.Fatal("an older value beat the expiry tombstone")
		}

		// The delete dies at its write (epoch), the expired record at ExpireAt.
		step(grace-10*time.Second, 1)
		if _, found := mustGet(t, s, "deleted"); found {
			t.Fatal("tombstone not purged after its grace")
		}
		if c := log.last(); c.key != "deleted" || c.new != nil || c.old == nil || !c.old.Tombstone {
			t.Fatalf("OnApply for purge = %+v", c)
		}
		if _, found := mustGet(t, s, "ttl"); !found {
			t.Fatal("expired record purged before ExpireAt+grace")
		}
		step(10*time.Second, 1)
		if _, found := mustGet(t, s, "ttl"); found {
			t.Fatal("expired record not purged at ExpireAt+grace")
		}
		if r, found := mustGet(t, s, "forever"); !found || !r.Live(clk.Now().UnixMilli()) {
			t.Fatal("record without expiry was touched")
		}
		m := s.Metrics()
		if m.Expired != 1 || m.GCPurged != 2 || m.Records != 1 || s.ApproxCount() != 1 {
			t.Fatalf("metrics = %+v", m)
		}
	})
}

// TestExpiryAfterOverwrite checks that a record changed before its deadline
// is judged by its new state, not the stale index entry.
func TestExpiryAfterOverwrite(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		tests := []struct {
			name      string
			overwrite record.Record
			wantLive  bool
		}{
			{"expiry removed", val(1, "a", "persist"), true},
			{"expiry pushed later", withTTL(val(1, "a", "later"), 60_000), true},
			{"expiry brought earlier", withTTL(val(1, "a", "sooner"), 5_000), false},
			{"deleted", del(1, "a"), false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				clk := clock.NewManual(epoch)
				s := openTest(t, Options{Engine: engine, Clock: clk, GCGrace: time.Hour})
				mustApply(t, s, "k", withTTL(val(0, "a", "v"), 10_000))
				mustApply(t, s, "k", tt.overwrite)
				checkIndex(t, s)

				clk.Advance(20 * time.Second)
				if _, err := s.ExpireAll(); err != nil {
					t.Fatal(err)
				}
				checkIndex(t, s)
				r, found := mustGet(t, s, "k")
				if !found || r.Version != tt.overwrite.Version {
					t.Fatalf("Get = %s, want version %s", fmtRecord(r), tt.overwrite.Version)
				}
				if got := r.Live(clk.Now().UnixMilli()); got != tt.wantLive || r.Tombstone == tt.wantLive {
					t.Fatalf("Get = %s, want live=%t", fmtRecord(r), tt.wantLive)
				}
				if tt.wantLive && string(r.Value) != string(tt.overwrite.Value) {
					t.Fatalf("value = %q, want %q", r.Value, tt.overwrite.Value)
				}
			})
		}
	})
}

func TestExpiryBatchBound(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		clk := clock.NewManual(epoch)
		s := openTest(t, Options{Engine: engine, Clock: clk, ExpiryBatch: 1000})
		const keys = 5000
		for i := range keys {
			mustApply(t, s, fmt.Sprintf("k%d", i), withTTL(val(0, "a", "v"), 1000+int64(i%7)))
		}
		clk.Advance(2 * time.Second)

		n, err := s.ExpireNow()
		if err != nil || n != 1000 {
			t.Fatalf("one pass handled %d (err %v), want the batch of 1000", n, err)
		}
		if m := s.Metrics(); m.Expired != 1000 {
			t.Fatalf("Expired = %d after one pass", m.Expired)
		}
		rest, err := s.ExpireAll()
		if err != nil || rest != keys-1000 {
			t.Fatalf("ExpireAll handled %d (err %v), want %d", rest, err, keys-1000)
		}
		dead := 0
		_ = s.Scan(0, func(_ uint64, _ []byte, r *record.Record) error {
			if r.Tombstone {
				dead++
			}
			return nil
		})
		if dead != keys {
			t.Fatalf("%d of %d records converted", dead, keys)
		}
		checkIndex(t, s)
	})
}

// TestBackgroundExpiry runs the real cycle: a backlog several batches deep
// drains without anyone calling ExpireNow.
func TestBackgroundExpiry(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		clk := clock.NewManual(epoch)
		s := openTest(t, Options{Engine: engine, Clock: clk, ExpiryInterval: 5 * time.Millisecond, ExpiryBatch: 10, GCGrace: time.Minute})
		const keys = 95
		for i := range keys {
			mustApply(t, s, fmt.Sprintf("k%d", i), withTTL(val(0, "a", "v"), 1000))
		}
		clk.Advance(time.Second)
		testutil.EventuallyEvery(t, 10*time.Second, 5*time.Millisecond, func() error {
			if m := s.Metrics(); m.Expired != keys {
				return fmt.Errorf("expired %d of %d", m.Expired, keys)
			}
			return nil
		})
		clk.Advance(time.Minute)
		testutil.EventuallyEvery(t, 10*time.Second, 5*time.Millisecond, func() error {
			if n := s.ApproxCount(); n != 0 {
				return fmt.Errorf("%d records left", n)
			}
			return nil
		})
		checkIndex(t, s)
	})
}
