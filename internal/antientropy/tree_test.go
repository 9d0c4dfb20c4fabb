package antientropy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"testing/quick"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
)

// op is one random change to a store: a write, an overwrite with an older or
// newer version, a delete, or a GC-style purge through expiry.
type op struct {
	Key  uint8
	Kind uint8
	TS   uint16
}

// Incremental updates through OnApply, a rebuild from a scan, and a naive hash
// of the store's content must agree after any sequence of changes.
func TestIncrementalMatchesRebuildAndNaive(t *testing.T) {
	f := func(ops []op) bool {
		h := &hook{}
		s := openStore(t, h)
		live := NewTree()
		h.set(live.OnApply)
		for _, o := range ops {
			key := fmt.Sprintf("k%d", o.Key%32)
			var rec record.Record
			switch o.Kind % 3 {
			case 0, 1:
				rec = value(int64(o.TS), fmt.Sprint(o.TS))
			case 2:
				rec = tomb(int64(o.TS))
			}
			mustApply(t, s, key, rec)
		}
		want := naiveBuckets(t, s)
		checkTree(t, live, want)
		rebuilt := NewTree()
		if err := rebuilt.Rebuild(s); err != nil {
			t.Fatal(err)
		}
		checkTree(t, rebuilt, want)
		return rebuilt.Ready()
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 30}); err != nil {
		t.Fatal(err)
	}
}

// A rebuild that runs while writes land leaves the tree equal to the store.
func TestRebuildDuringWrites(t *testing.T) {
	h := &hook{}
	s := openStore(t, h)
	for i := range 2000 {
		mustApply(t, s, fmt.Sprintf("pre%d", i), value(int64(i), "v"))
	}
	tr := NewTree()
	h.set(tr.OnApply) // installed before the scan, as the server does
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			mustApply(t, s, fmt.Sprintf("pre%d", i), value(int64(5000+i), "w"))
			mustApply(t, s, fmt.Sprintf("new%d", i), value(int64(i), "v"))
		}
	}()
	if err := tr.Rebuild(s); err != nil {
		t.Fatal(err)
	}
	<-done
	checkTree(t, tr, naiveBuckets(t, s))
}

// Expiry keeps the version, so converting a record to a tombstone in place
// changes no hash; the GC purge takes it out.
func TestExpiryAndPurgeHashes(t *testing.T) {
	h := &hook{}
	wall := clock.NewManual(time.UnixMilli(base))
	s, err := storage.Open(storage.Options{InMemory: true, ExpiryInterval: -1, GCGrace: time.Second,
		Clock: wall, OnApply: h.onApply, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tr := NewTree()
	h.set(tr.OnApply)
	r := value(0, "x")
	r.ExpireAt = base + 10
	mustApply(t, s, "gone", r)
	mustApply(t, s, "kept", value(0, "y"))
	b := BucketOf(tokenOf("gone"))
	before := tr.Bucket(b)
	if before == 0 {
		t.Fatal("record not hashed")
	}

	wall.Advance(20 * time.Millisecond)
	if n, err := s.ExpireNow(); err != nil || n != 1 {
		t.Fatalf("ExpireNow: %d %v, want the conversion", n, err)
	}
	if got, _, _ := s.Get([]byte("gone")); !got.Tombstone {
		t.Fatal("record not converted")
	}
	if tr.Bucket(b) != before {
		t.Fatal("expiry conversion changed the bucket hash")
	}

	wall.Advance(2 * time.Second)
	if n, err := s.ExpireNow(); err != nil || n != 1 {
		t.Fatalf("ExpireNow: %d %v, want the purge", n, err)
	}
	if _, found, _ := s.Get([]byte("gone")); found {
		t.Fatal("tombstone not purged")
	}
	if tr.Bucket(b) == before {
		t.Fatal("purge left the bucket hash unchanged")
	}
	checkTree(t, tr, naiveBuckets(t, s))
}

// The leaves of a range cover exactly its tokens, in order, each inside one
// bucket, and whole exactly when they span their bucket.
func TestLeavesCoverRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := [][2]uint64{
		{0, math.MaxUint64}, {math.MaxUint64, 0}, {5, 5}, {math.MaxUint64, math.MaxUint64},
		{0, 0}, {bucketSpan - 1, 2*bucketSpan - 1}, {10, 11},
	}
	for range 200 {
		cases = append(cases, [2]uint64{rng.Uint64(), rng.Uint64()})
	}
	for _, c := range cases {
		start, end := c[0], c[1]
		leaves := leavesOf(start, end)
		var covered float64 // in tokens, as a float: the whole ring overflows uint64
		next := start + 1
		for i, l := range leaves {
			if l.lo != next {
				t.Fatalf("(%d,%d] leaf %d starts at %d, want %d", start, end, i, l.lo, next)
			}
			if BucketOf(l.lo) != l.bucket || BucketOf(l.hi) != l.bucket || l.hi < l.lo {
				t.Fatalf("(%d,%d] leaf %d = %+v crosses buckets", start, end, i, l)
			}
			whole := l.lo == uint64(l.bucket)<<bucketShift && l.hi == uint64(l.bucket)<<bucketShift|(bucketSpan-1)
			if whole != l.whole {
				t.Fatalf("(%d,%d] leaf %+v: whole=%v", start, end, l, l.whole)
			}
			covered += float64(l.hi-l.lo) + 1
			next = l.hi + 1
		}
		if next != end+1 {
			t.Fatalf("(%d,%d] leaves end at %d", start, end, next-1)
		}
		want := float64(end - start)
		if start == end {
			want = math.Pow(2, 64)
		}
		if math.Abs(covered-want) > want*1e-9+1 {
			t.Fatalf("(%d,%d] leaves cover %g tokens, want %g", start, end, covered, want)
		}
	}
}

// RecordHash hashes one byte string however it is computed: the one-shot path
// for short keys and the streaming one for long keys must agree, as every
// node must (a mixed cluster compares these hashes).
func TestRecordHashOneShotMatchesStreaming(t *testing.T) {
	stream := func(key []byte, v record.Version) uint64 {
		var d xxhash.Digest
		d.Reset()
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(key)))
		d.Write(n[:])
		d.Write(key)
		binary.BigEndian.PutUint64(n[:], uint64(v.TS))
		d.Write(n[:])
		d.WriteString(v.Node)
		return d.Sum64()
	}
	for _, kl := range []int{0, 1, 100, 200, 239, 240, 241, 1000} {
		key := bytes.Repeat([]byte{'k'}, kl)
		v := record.Version{TS: 1735689600123 << 16, Node: "node-1"}
		if got, want := RecordHash(key, v), stream(key, v); got != want {
			t.Errorf("key of %d bytes: RecordHash %x, streaming %x", kl, got, want)
		}
	}
}
