package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

func TestApplyIfNewer(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		type step struct {
			rec     record.Record
			applied bool
		}
		tests := []struct {
			name  string
			steps []step
			want  record.Record // the record Get returns at the end
		}{
			{
				name:  "first write is stored",
				steps: []step{{val(1, "a", "v1"), true}},
				want:  val(1, "a", "v1"),
			},
			{
				name:  "newer timestamp wins",
				steps: []step{{val(1, "a", "v1"), true}, {val(2, "a", "v2"), true}},
				want:  val(2, "a", "v2"),
			},
			{
				name:  "older timestamp is refused",
				steps: []step{{val(2, "a", "v2"), true}, {val(1, "a", "v1"), false}},
				want:  val(2, "a", "v2"),
			},
			{
				name: "logical counter orders writes in one millisecond",
				steps: []step{
					{record.Record{Value: []byte("x"), Version: record.Version{TS: ts(5, 1), Node: "a"}}, true},
					{record.Record{Value: []byte("y"), Version: record.Version{TS: ts(5, 0), Node: "z"}}, false},
				},
				want: record.Record{Value: []byte("x"), Version: record.Version{TS: ts(5, 1), Node: "a"}},
			},
			{
				name:  "timestamp tie is broken by node id",
				steps: []step{{val(3, "b", "from-b"), true}, {val(3, "a", "from-a"), false}, {val(3, "c", "from-c"), true}},
				want:  val(3, "c", "from-c"),
			},
			{
				name:  "same write applied twice is refused the second time",
				steps: []step{{val(3, "a", "v"), true}, {val(3, "a", "v"), false}},
				want:  val(3, "a", "v"),
			},
			{
				name:  "tombstone beats older value",
				steps: []step{{val(1, "a", "v1"), true}, {del(2, "a"), true}},
				want:  del(2, "a"),
			},
			{
				name:  "older write after delete is refused",
				steps: []step{{val(1, "a", "v1"), true}, {del(5, "a"), true}, {val(4, "b", "late"), false}},
				want:  del(5, "a"),
			},
			{
				name:  "newer write after delete resurrects the key",
				steps: []step{{del(5, "a"), true}, {val(6, "a", "back"), true}},
				want:  val(6, "a", "back"),
			},
			{
				name:  "tombstone wins a tie with a value of the same version",
				steps: []step{{val(3, "a", "v"), true}, {del(3, "a"), true}, {val(3, "a", "v"), false}},
				want:  del(3, "a"),
			},
			{
				name:  "tombstone older than the value is refused",
				steps: []step{{val(3, "a", "v"), true}, {del(2, "a"), false}},
				want:  val(3, "a", "v"),
			},
			{
				name:  "empty value is a value",
				steps: []step{{val(1, "a", ""), true}},
				want:  val(1, "a", ""),
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := openTest(t, Options{Engine: engine, Clock: clock.NewManual(epoch)})
				var last record.Record
				for i, st := range tt.steps {
					res := mustApply(t, s, "k", st.rec)
					if res.Applied != st.applied {
						t.Fatalf("step %d %s: Applied = %t, want %t", i, fmtRecord(st.rec), res.Applied, st.applied)
					}
					if (i > 0) != res.PrevFound {
						t.Fatalf("step %d: PrevFound = %t", i, res.PrevFound)
					}
					if i > 0 && !sameRecord(res.Prev, last) {
						t.Fatalf("step %d: Prev = %s, want %s", i, fmtRecord(res.Prev), fmtRecord(last))
					}
					if res.Applied {
						last = st.rec
					}
				}
				got, found := mustGet(t, s, "k")
				if !found || !sameRecord(got, tt.want) {
					t.Fatalf("Get = %s (found %t), want %s", fmtRecord(got), found, fmtRecord(tt.want))
				}
				if n := s.ApproxCount(); n != 1 {
					t.Fatalf("ApproxCount = %d, want 1", n)
				}
				checkIndex(t, s)
			})
		}
	})
}

func TestGetMissing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		s := openTest(t, Options{Engine: engine})
		if _, found := mustGet(t, s, "nope"); found {
			t.Fatal("Get of a missing key reported found")
		}
	})
}

func TestGetReturnsTombstones(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		s := openTest(t, Options{Engine: engine, Clock: clock.NewManual(epoch)})
		mustApply(t, s, "k", val(1, "a", "v"))
		mustApply(t, s, "k", del(2, "a"))
		got, found := mustGet(t, s, "k")
		if !found || !got.Tombstone || got.Value != nil || got.Version != del(2, "a").Version {
			t.Fatalf("Get = %s (found %t), want the tombstone", fmtRecord(got), found)
		}
		if got.Live(epoch.UnixMilli() + 10) {
			t.Fatal("tombstone reads as live")
		}
	})
}

func TestValuesNotAliased(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		for _, inMem := range []bool{true, false} {
			t.Run(fmt.Sprintf("inMemory=%t", inMem), func(t *testing.T) {
				opts := Options{Engine: engine, Clock: clock.NewManual(epoch)}
				if !inMem {
					opts.Dir = t.TempDir()
				}
				s := openTest(t, opts)
				in := []byte("original")
				mustApply(t, s, "k", record.Record{Value: in, Version: record.Version{TS: ts(1, 0), Node: "a"}})
				in[0] = 'X' // the caller reuses its buffer after Apply
				got, _ := mustGet(t, s, "k")
				if string(got.Value) != "original" {
					t.Fatalf("stored value follows the caller's buffer: %q", got.Value)
				}

				// Churn the engine's memory (overwrites; with Pebble a
				// flush to an sstable) and check the value returned earlier
				// is unchanged.
				res := mustApply(t, s, "k", val(2, "a", "replaced"))
				for i := range 1000 {
					mustApply(t, s, fmt.Sprintf("other-%d", i), val(3, "a", strings.Repeat("z", 100)))
				}
				if pe, ok := s.eng.(*pebbleEngine); ok {
					if err := pe.db.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				if string(got.Value) != "original" || string(res.Prev.Value) != "original" {
					t.Fatalf("returned values changed: Get %q, Prev %q", got.Value, res.Prev.Value)
				}

				// Returned values are shared with the row cache (read-only by
				// contract); a later write must not change one already returned.
				got2, _ := mustGet(t, s, "k")
				mustApply(t, s, "k", val(4, "a", "third"))
				if string(got2.Value) != "replaced" {
					t.Fatalf("a later write changed a returned value: %q", got2.Value)
				}
				got3, _ := mustGet(t, s, "k")
				if string(got3.Value) != "third" {
					t.Fatalf("Get after overwrite: %q", got3.Value)
				}
			})
		}
	})
}

func TestApplyDeadRecords(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		const grace = time.Minute
		now := int64(10 * time.Minute / time.Millisecond) // the clock, ms after epoch
		tests := []struct {
			name        string
			stored      *record.Record
			in          record.Record
			wantApplied bool
			wantFound   bool
			wantTomb    bool
		}{
			{
				name:        "expired value is stored as a tombstone",
				in:          withTTL(val(now-1000, "a", "v"), now-500),
				wantApplied: true, wantFound: true, wantTomb: true,
			},
			{
				name:        "expired value beats an older stored value",
				stored:      ptr(val(now-5000, "a", "old")),
				in:          withTTL(val(now-1000, "a", "v"), now-500),
				wantApplied: true, wantFound: true, wantTomb: true,
			},
			{
				name: "tombstone past its GC deadline with nothing stored is dropped",
				in:   del(now-grace.Milliseconds()-1, "a"),
			},
			{
				name: "value expired past GC deadline with nothing stored is dropped",
				in:   withTTL(val(now-3*grace.Milliseconds(), "a", "v"), now-2*grace.Milliseconds()),
			},
			{
				name:        "tombstone past its GC deadline still replaces an older value",
				stored:      ptr(val(now-3*grace.Milliseconds(), "a", "old")),
				in:          del(now-2*grace.Milliseconds(), "a"),
				wantApplied: true, wantFound: true, wantTomb: true,
			},
			{
				name:        "tombstone within grace is stored",
				in:          del(now-grace.Milliseconds()+1, "a"),
				wantApplied: true, wantFound: true, wantTomb: true,
			},
			{
				name:        "tombstone carrying a value is stored without it",
				in:          record.Record{Tombstone: true, Value: []byte("junk"), Version: record.Version{TS: ts(now, 0), Node: "a"}},
				wantApplied: true, wantFound: true, wantTomb: true,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := openTest(t, Options{Engine: engine, Clock: clock.NewManual(epoch.Add(time.Duration(now) * time.Millisecond)), GCGrace: grace})
				if tt.stored != nil {
					mustApply(t, s, "k", *tt.stored)
				}
				res := mustApply(t, s, "k", tt.in)
				if res.Applied != tt.wantApplied {
					t.Fatalf("Applied = %t, want %t", res.Applied, tt.wantApplied)
				}
				got, found := mustGet(t, s, "k")
				if found != tt.wantFound {
					t.Fatalf("found = %t, want %t", found, tt.wantFound)
				}
				if found && (got.Tombstone != tt.wantTomb || got.Value != nil || got.Version != tt.in.Version) {
					t.Fatalf("Get = %s, want a tombstone at %s", fmtRecord(got), tt.in.Version)
				}
				if !tt.wantFound && s.Metrics().DeadDropped != 1 {
					t.Fatalf("DeadDropped = %d, want 1", s.Metrics().DeadDropped)
				}
				checkIndex(t, s)
			})
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestApplyRefusesInvalid(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		s := openTest(t, Options{Engine: engine})
		tests := []struct {
			name string
			key  string
			rec  record.Record
		}{
			{"empty key", "", val(1, "a", "v")},
			{"zero version", "k", record.Record{Value: []byte("v")}},
			{"negative expiry", "k", record.Record{Value: []byte("v"), Version: record.Version{TS: ts(1, 0), Node: "a"}, ExpireAt: -1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := s.Apply([]byte(tt.key), tt.rec); !errors.Is(err, ErrInvalidRecord) {
					t.Fatalf("Apply err = %v, want ErrInvalidRecord", err)
				}
			})
		}
		if n := s.ApproxCount(); n != 0 {
			t.Fatalf("ApproxCount = %d after refused writes", n)
		}
	})
}

// TestConcurrentApplyOneKey races writers of random versions on one key: the
// newest must win, and OnApply must see an unbroken chain of changes.
func TestConcurrentApplyOneKey(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		var (
			mu    sync.Mutex
			chain []record.Record
			bad   []string
		)
		s := openTest(t, Options{Engine: engine,
			Clock: clock.NewManual(epoch),
			OnApply: func(_ uint64, key []byte, old, new record.Record) {
				mu.Lock()
				defer mu.Unlock()
				hadOld := !old.Version.IsZero()
				switch {
				case len(chain) == 0 && hadOld:
					bad = append(bad, "first change has an old record")
				case len(chain) > 0 && (!hadOld || !sameRecord(old, chain[len(chain)-1])):
					bad = append(bad, "old record is not the previous new record")
				case new.Version.IsZero() || (hadOld && !record.Newer(&new, &old)):
					bad = append(bad, "change to a record that is not newer")
				}
				chain = append(chain, new.Clone())
			},
		})
		const writers, perWriter = 8, 200
		var (
			wg     sync.WaitGroup
			maxMu  sync.Mutex
			newest record.Record
		)
		for w := range writers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				for i := range perWriter {
					r := val(int64(rng.IntN(1000)), fmt.Sprintf("n%d", w), fmt.Sprintf("w%d-%d", w, i))
					if _, err := s.Apply([]byte("k"), r); err != nil {
						t.Error(err)
						return
					}
					maxMu.Lock()
					if newest.Version.IsZero() || record.Newer(&r, &newest) {
						newest = r
					}
					maxMu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(bad) > 0 {
			t.Fatalf("OnApply saw %d bad changes, first: %s", len(bad), bad[0])
		}
		got, _ := mustGet(t, s, "k")
		if !sameRecord(got, newest) || !sameRecord(chain[len(chain)-1], newest) {
			t.Fatalf("stored %s, want newest %s", fmtRecord(got), fmtRecord(newest))
		}
		m := s.Metrics()
		if m.Applies != uint64(len(chain)) || m.Applies+m.StaleApplies != writers*perWriter {
			t.Fatalf("Applies %d StaleApplies %d, OnApply calls %d", m.Applies, m.StaleApplies, len(chain))
		}
	})
}

func TestScanOrderAndStop(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		s := openTest(t, Options{Engine: engine})
		const n = 300
		for i := range n {
			mustApply(t, s, fmt.Sprintf("key-%d", i), val(int64(i), "a", fmt.Sprintf("v%d", i)))
		}
		mustApply(t, s, "key-7", del(1000, "a")) // tombstones are scanned too

		type entry struct {
			token uint64
			key   string
		}
		scan := func(from, to uint64, limit int) []entry {
			t.Helper()
			var got []entry
			err := s.ScanRange(from, to, func(token uint64, key []byte, rec *record.Record) error {
				got = append(got, entry{token, string(key)})
				if want := fmt.Sprintf("v%s", strings.TrimPrefix(string(key), "key-")); !rec.Tombstone && string(rec.Value) != want {
					return fmt.Errorf("key %q has value %q", key, rec.Value)
				}
				if len(got) == limit {
					return ErrStop
				}
				return nil
			})
			if err != nil {
				t.Fatalf("ScanRange: %v", err)
			}
			return got
		}

		all := scan(0, 0, -1)
		if len(all) != n {
			t.Fatalf("scan saw %d records, want %d", len(all), n)
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.token > b.token || (a.token == b.token && a.key >= b.key) {
				t.Fatalf("scan out of order at %d: %v then %v", i, a, b)
			}
		}

		if got := scan(0, 0, 10); len(got) != 10 || got[9] != all[9] {
			t.Fatalf("ErrStop after 10: got %d records", len(got))
		}

		mid := all[n/2].token
		if got := scan(mid, 0, -1); len(got) != n-n/2 || got[0] != all[n/2] {
			t.Fatalf("scan from the middle token: got %d records starting %v", len(got), got[0])
		}
		lo, hi := all[n/4].token, all[3*n/4].token
		got := scan(lo, hi, -1)
		if len(got) != n/2 || got[0] != all[n/4] || got[len(got)-1] != all[3*n/4-1] {
			t.Fatalf("range scan [%x, %x) got %d records", lo, hi, len(got))
		}
		if got := scan(hi, lo, -1); len(got) != 0 {
			t.Fatalf("empty range scanned %d records", len(got))
		}

		boom := errors.New("boom")
		if err := s.Scan(0, func(uint64, []byte, *record.Record) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("Scan returned %v, want the callback's error", err)
		}
	})
}

func TestKeyspace(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		s := openTest(t, Options{Engine: engine})
		hints, meta := s.Keyspace(PrefixHints), s.Keyspace(PrefixMeta)
		mustApply(t, s, "shared", val(1, "a", "record"))

		for i := range 20 {
			if err := hints.Set(fmt.Appendf(nil, "h%02d", i), fmt.Appendf(nil, "hint-%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := meta.Set([]byte("shared"), []byte("meta")); err != nil {
			t.Fatal(err)
		}

		v, ok, err := meta.Get([]byte("shared"))
		if err != nil || !ok || string(v) != "meta" {
			t.Fatalf("meta.Get = %q %t %v", v, ok, err)
		}
		if _, ok, _ := hints.Get([]byte("shared")); ok {
			t.Fatal("a meta key is visible in the hints keyspace")
		}
		if r, _ := mustGet(t, s, "shared"); string(r.Value) != "record" {
			t.Fatalf("record clobbered by keyspace write: %s", fmtRecord(r))
		}
		if n := s.ApproxCount(); n != 1 {
			t.Fatalf("ApproxCount = %d, want 1 (keyspace entries are not records)", n)
		}
		scanned := 0
		_ = s.Scan(0, func(uint64, []byte, *record.Record) error { scanned++; return nil })
		if scanned != 1 {
			t.Fatalf("Scan saw %d records, want 1", scanned)
		}

		var keys []string
		err = hints.Iterate([]byte("h05"), func(k, v []byte) error {
			keys = append(keys, string(k))
			if !strings.HasSuffix(string(v), strings.TrimLeft(string(k[1:]), "0")) && string(k) != "h00" {
				return fmt.Errorf("key %q has value %q", k, v)
			}
			if len(keys) == 5 {
				return ErrStop
			}
			return nil
		})
		if err != nil || strings.Join(keys, ",") != "h05,h06,h07,h08,h09" {
			t.Fatalf("Iterate from h05 = %v, %v", keys, err)
		}

		// Draining a queue: delete each entry from inside the iteration.
		n := 0
		err = hints.Iterate(nil, func(k, _ []byte) error {
			n++
			return hints.Delete(k)
		})
		if err != nil || n != 20 {
			t.Fatalf("draining iterate visited %d, err %v", n, err)
		}
		if err := hints.Iterate(nil, func(k, _ []byte) error { return fmt.Errorf("left over %q", k) }); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := meta.Get([]byte("shared")); !ok {
			t.Fatal("draining hints removed a meta key")
		}

		// The last prefix has no successor byte; its upper bound is open.
		top := s.Keyspace(0xff)
		if err := top.Set([]byte("z"), []byte("1")); err != nil {
			t.Fatal(err)
		}
		if err := top.Iterate(nil, func(k, _ []byte) error {
			if string(k) != "z" {
				return fmt.Errorf("unexpected key %q", k)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}

		for _, p := range []byte{prefixRecord, prefixDeadline} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("Keyspace(%q) did not panic", p)
					}
				}()
				s.Keyspace(p)
			}()
		}
	})
}

func TestParseSyncMode(t *testing.T) {
	tests := []struct {
		in      string
		want    SyncMode
		wantErr bool
	}{
		{"always", SyncAlways, false},
		{"periodic", SyncPeriodic, false},
		{"", 0, true},
		{"Always", 0, true},
		{"sometimes", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSyncMode(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("ParseSyncMode(%q) = %v, %v", tt.in, got, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

func TestClosed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		s := openTest(t, Options{Engine: engine})
		mustApply(t, s, "k", val(1, "a", "v"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close = %v", err)
		}
		if _, err := s.Apply([]byte("k"), val(2, "a", "v")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Apply after Close = %v", err)
		}
		if _, _, err := s.Get([]byte("k")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Get after Close = %v", err)
		}
		// A missing key of a complete row cache, answered without Pebble.
		if _, _, err := s.Get([]byte("missing")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Get of a missing key after Close = %v", err)
		}
		if err := s.Scan(0, func(uint64, []byte, *record.Record) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Fatalf("Scan after Close = %v", err)
		}
		if _, err := s.ExpireNow(); !errors.Is(err, ErrClosed) {
			t.Fatalf("ExpireNow after Close = %v", err)
		}
		if err := s.Keyspace(PrefixMeta).Set([]byte("a"), nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Keyspace.Set after Close = %v", err)
		}
		if m := s.Metrics(); m.Records != 1 || m.Applies != 1 {
			t.Fatalf("Metrics after Close = %+v", m)
		}
	})
}

func TestMetricsRegistry(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		reg := prometheus.NewRegistry()
		dir := t.TempDir()
		for round := range 2 { // the second Open proves Close unregistered
			s, err := Open(Options{Engine: engine, Dir: dir, Registerer: reg, Logger: testLogger(t), ExpiryInterval: -1})
			if err != nil {
				t.Fatalf("round %d: Open: %v", round, err)
			}
			mustApply(t, s, fmt.Sprintf("k%d", round), val(1, "a", "v"))
			mustApply(t, s, fmt.Sprintf("k%d", round), val(0, "a", "stale"))
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					switch {
					case m.GetCounter() != nil:
						got[mf.GetName()] = m.GetCounter().GetValue()
					case m.GetGauge() != nil:
						got[mf.GetName()] = m.GetGauge().GetValue()
					}
				}
			}
			want := map[string]float64{
				"ringkv_storage_records":             float64(round + 1),
				"ringkv_storage_applies_total":       1,
				"ringkv_storage_stale_applies_total": 1,
			}
			for name, v := range want {
				if got[name] != v {
					t.Errorf("round %d: %s = %v, want %v", round, name, got[name], v)
				}
			}
			if _, ok := got["ringkv_storage_disk_usage_bytes"]; !ok {
				t.Errorf("round %d: disk usage not exported", round)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestOpenValidates(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		tests := []struct {
			name string
			opts Options
		}{
			{"no dir", Options{}},
			{"negative grace", Options{InMemory: true, GCGrace: -time.Second}},
			{"bad sync mode", Options{InMemory: true, Sync: SyncMode(7)}},
			{"negative max memory", Options{InMemory: true, MaxMemory: -1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.opts.Engine = engine
				tt.opts.Logger = testLogger(t)
				if s, err := Open(tt.opts); err == nil {
					_ = s.Close()
					t.Fatal("Open succeeded")
				}
			})
		}
	})
}
