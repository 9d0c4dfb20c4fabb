package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
)

// TestApplyBatchMatchesApply drives two stores with the same random writes,
// one through ApplyBatch and one through Apply, write after write, and
// requires the same result for every write, the same OnApply calls per key,
// and the same stored records and deadline index after every batch and
// after expiry. The writes repeat keys within a batch, go stale, delete,
// expire and carry TTLs, so that every branch of the batch path has its
// sequential answer to match. Half the writes come with their token, as a
// coordinator's do, the rest for ApplyBatch to take; GetAt with the token
// reads what Get reads.
func TestApplyBatchMatchesApply(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		const grace = time.Minute
		clk := clock.NewManual(epoch)
		var batchLog, seqLog changeLog
		// The old record's Value is not part of OnApply's promise for
		// batches (Options.OnApply); everything else is compared.
		noOldValue := func(l *changeLog) func(uint64, []byte, record.Record, record.Record) {
			return func(token uint64, key []byte, old, new record.Record) {
				old.Value = nil
				l.onApply(token, key, old, new)
			}
		}
		batched := openTest(t, Options{Engine: engine, Clock: clk, GCGrace: grace, OnApply: noOldValue(&batchLog)})
		seq := openTest(t, Options{Engine: engine, Clock: clk, GCGrace: grace, OnApply: noOldValue(&seqLog)})
		r := rand.New(rand.NewPCG(6, 1))

		randomWrite := func(round int) Write {
			key := fmt.Appendf(nil, "k%02d", r.IntN(24))
			// Versions move on with the rounds, but collide and go stale.
			ms := int64(round*10 + r.IntN(60))
			var rec record.Record
			switch r.IntN(5) {
			case 0:
				rec = del(ms, "a")
			case 1:
				// Some already expired when written.
				rec = val(ms, "a", "ttl")
				rec.ExpireAt = clk.Now().UnixMilli() + int64(r.IntN(4000)-1000)
			default:
				rec = val(ms, []string{"a", "b"}[r.IntN(2)], fmt.Sprintf("v%d", r.IntN(100)))
			}
			w := Write{Key: key, Rec: rec}
			if r.IntN(2) == 0 {
				w.Token = ring.Token(key)
			}
			return w
		}
		applied := 0
		for round := range 300 {
			ws := make([]Write, 1+r.IntN(20))
			for i := range ws {
				ws[i] = randomWrite(round)
			}
			want := make([]Write, len(ws))
			for i, w := range ws {
				res, err := seq.Apply(w.Key, w.Rec)
				want[i] = Write{Key: w.Key, Result: res, Err: err}
			}
			batched.ApplyBatch(ws)
			for i, w := range ws {
				g, e := w.Result, want[i].Result
				if w.Err != nil || want[i].Err != nil {
					t.Fatalf("round %d write %d (%q): errors %v (batch) and %v (sequential)", round, i, w.Key, w.Err, want[i].Err)
				}
				// An applied write's Prev comes without its Value.
				gp, ep := g.Prev, e.Prev
				if g.Applied {
					gp.Value, ep.Value = nil, nil
				}
				if g.Applied != e.Applied || g.PrevFound != e.PrevFound || (e.PrevFound && !sameRecord(gp, ep)) {
					t.Fatalf("round %d write %d (%q): batch %+v, sequential %+v", round, i, w.Key, g, e)
				}
				if g.Applied {
					applied++
				}
				got, gotFound, gerr := batched.GetAt(ring.Token(w.Key), w.Key)
				rec, found, err := batched.Get(w.Key)
				if gerr != nil || err != nil || gotFound != found || found && !sameRecord(got, rec) {
					t.Fatalf("round %d write %d (%q): GetAt %+v %t %v, Get %+v %t %v", round, i, w.Key, got, gotFound, gerr, rec, found, err)
				}
			}
			if round%50 == 0 {
				clk.Advance(time.Duration(r.IntN(3000)) * time.Millisecond)
				for _, s := range []*Store{batched, seq} {
					if _, err := s.ExpireNow(); err != nil {
						t.Fatal(err)
					}
				}
			}
			sameContents(t, batched, seq)
		}
		clk.Advance(grace + time.Hour)
		for _, s := range []*Store{batched, seq} {
			if _, err := s.ExpireNow(); err != nil {
				t.Fatal(err)
			}
		}
		sameContents(t, batched, seq)
		if got, want := batched.ApproxCount(), seq.ApproxCount(); got != want {
			t.Errorf("ApproxCount: batch %d, sequential %d", got, want)
		}
		if !slices.EqualFunc(perKey(&batchLog), perKey(&seqLog), slices.Equal) {
			t.Errorf("OnApply calls differ:\nbatch      %v\nsequential %v", perKey(&batchLog), perKey(&seqLog))
		}
		if applied < 1000 {
			t.Fatalf("only %d writes applied: the workload does not exercise the batch path", applied)
		}
	})
}

// sameContents requires a and b to hold the same records, and each a
// consistent deadline index.
func sameContents(t *testing.T, a, b *Store) {
	t.Helper()
	dump := func(s *Store) []string {
		var out []string
		err := s.Scan(0, func(_ uint64, key []byte, rec *record.Record) error {
			out = append(out, string(key)+"="+fmtRecord(*rec))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if da, db := dump(a), dump(b); !slices.Equal(da, db) {
		t.Fatalf("stores differ:\nbatch      %v\nsequential %v", da, db)
	}
	checkIndex(t, a)
}

// perKey lists each key's OnApply calls in order, keys sorted: calls for
// different keys have no order to compare.
func perKey(l *changeLog) [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	byKey := map[string][]string{}
	for _, c := range l.changes {
		f := func(r *record.Record) string {
			if r == nil {
				return "-"
			}
			return fmtRecord(*r)
		}
		byKey[c.key] = append(byKey[c.key], f(c.old)+">"+f(c.new))
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([][]string, len(keys))
	for i, k := range keys {
		out[i] = append([]string{k}, byKey[k]...)
	}
	return out
}

// TestApplyBatchRefusesAlone: an invalid write fails by itself, and the rest
// of its batch is stored; after Close every write fails with ErrClosed.
func TestApplyBatchRefusesAlone(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		s := openTest(t, Options{Engine: engine})
		ws := []Write{
			{Key: []byte("good1"), Rec: val(1, "a", "x")},
			{Key: nil, Rec: val(1, "a", "x")},
			{Key: []byte("zero"), Rec: record.Record{Value: []byte("x")}},
			{Key: []byte("neg"), Rec: withTTL(val(1, "a", "x"), -epoch.UnixMilli()-1)},
			{Key: []byte("good2"), Rec: val(1, "a", "y")},
		}
		s.ApplyBatch(ws)
		for i, w := range ws {
			bad := i >= 1 && i <= 3
			if bad != errors.Is(w.Err, ErrInvalidRecord) {
				t.Errorf("write %d (%q): err %v", i, w.Key, w.Err)
			}
			if !bad && !w.Result.Applied {
				t.Errorf("write %d (%q) not applied", i, w.Key)
			}
		}
		for _, k := range []string{"good1", "good2"} {
			if _, found := mustGet(t, s, k); !found {
				t.Errorf("%s not stored", k)
			}
		}
		if got := s.ApproxCount(); got != 2 {
			t.Errorf("ApproxCount = %d, want 2", got)
		}

		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		ws = []Write{{Key: []byte("a"), Rec: val(2, "a", "x")}, {Key: []byte("b"), Rec: val(2, "a", "x")}}
		s.ApplyBatch(ws)
		for i, w := range ws {
			if !errors.Is(w.Err, ErrClosed) {
				t.Errorf("after Close, write %d: err %v, want ErrClosed", i, w.Err)
			}
		}
	})
}

// ApplyBatch hands OnPrefetch the tokens of the writes it will apply, once
// and before any OnApply call, so that the hook's memory (the anti-entropy
// bucket hashes) can load while the batch's lookups run.
func TestApplyBatchPrefetchesForOnApply(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		var events []string
		var prefetched [][]uint64
		s := openTest(t, Options{Engine: engine,
			OnPrefetch: func(tokens []uint64) {
				events = append(events, "prefetch")
				prefetched = append(prefetched, slices.Clone(tokens))
			},
			OnApply: func(token uint64, key []byte, old, new record.Record) {
				events = append(events, "apply "+string(key))
			},
		})
		s.ApplyBatch([]Write{
			{Key: []byte("a"), Rec: val(1, "n1", "x")},
			{Key: nil, Rec: val(1, "n1", "x")}, // refused: not applied, not prefetched
			{Key: []byte("b"), Token: ring.Token([]byte("b")), Rec: val(1, "n1", "y")},
		})
		want := []uint64{ring.Token([]byte("a")), ring.Token([]byte("b"))}
		if len(prefetched) != 1 || !slices.Equal(prefetched[0], want) {
			t.Fatalf("OnPrefetch got %v, want one call with %v", prefetched, want)
		}
		if len(events) != 3 || events[0] != "prefetch" {
			t.Fatalf("hook calls %q, want the prefetch before both applies", events)
		}
		// A single write goes through Apply: nothing to overlap.
		s.ApplyBatch([]Write{{Key: []byte("c"), Rec: val(1, "n1", "z")}})
		if len(prefetched) != 1 {
			t.Fatalf("a one-write batch prefetched: %v", prefetched[1:])
		}
	})
}
