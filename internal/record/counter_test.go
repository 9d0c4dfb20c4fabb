package record

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/ringkv/ringkv/internal/clock"
)

// randomCounterRecord returns a record of one key as a cluster could hold
// it: mostly counters of one of two incarnations, sometimes a plain value or
// a tombstone, with versions that collide now and then.
func randomCounterRecord(r *rand.Rand) Record {
	nodes := []string{"n1", "n2", "n3"}
	v := Version{TS: clock.MakeTimestamp(1000+int64(r.IntN(4)), 0), Node: nodes[r.IntN(3)]}
	switch r.IntN(6) {
	case 0:
		return Record{Version: v, Value: []byte(strconv.Itoa(r.IntN(10)))}
	case 1:
		return Record{Version: v, Tombstone: true}
	}
	inc := Version{TS: clock.MakeTimestamp(900+int64(r.IntN(2)), 0), Node: "n1"}
	c := Counter{Incarnation: inc, Base: int64(inc.TS.Physical() % 7)}
	for _, n := range nodes {
		if r.IntN(3) > 0 {
			c.Entries = append(c.Entries, CounterEntry{Node: n, P: uint64(r.IntN(5)), N: uint64(r.IntN(3))})
		}
	}
	rec := Record{Version: v}
	if r.IntN(4) == 0 {
		rec.ExpireAt = 5000 + int64(r.IntN(2))
	}
	rec.SetCounter(&c)
	return rec
}

func mustEqual(t *testing.T, what string, a, b Record) {
	t.Helper()
	if !Equal(&a, &b) {
		t.Fatalf("%s: %v/%q/%x != %v/%q/%x", what, a.Version, a.Value, a.Counter, b.Version, b.Value, b.Counter)
	}
}

// TestMergeLattice checks that Merge is a join: commutative, associative
// and idempotent, over counters, plain values and tombstones mixed. The
// associativity that replicas rely on holds for records whose order the
// store could see: each of a, b and c is one write (or a join of writes).
func TestMergeLattice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		a, b := randomCounterRecord(r), randomCounterRecord(r)
		mustEqual(t, "commutative", Merge(&a, &b), Merge(&b, &a))
		mustEqual(t, "idempotent", Merge(&a, &a), a)
		ab := Merge(&a, &b)
		mustEqual(t, "absorbs", Merge(&ab, &a), ab)
		if Mergeable(&a, &b) {
			if ab.Version.Compare(a.Version) < 0 || ab.Version.Compare(b.Version) < 0 {
				t.Fatalf("merge version %v below an input's (%v, %v)", ab.Version, a.Version, b.Version)
			}
		}
	}
	for range 20000 {
		// Associativity among counters of one incarnation: any grouping
		// of the same increments gives the same record.
		a, b, c := randomCounterRecord(r), randomCounterRecord(r), randomCounterRecord(r)
		if !Mergeable(&a, &b) || !Mergeable(&b, &c) {
			continue
		}
		ab, bc := Merge(&a, &b), Merge(&b, &c)
		mustEqual(t, "associative", Merge(&ab, &c), Merge(&a, &bc))
	}
}

// TestMergeCountsEveryNode: increments through different nodes from the
// same start all count once merged, in any order, any number of times.
func TestMergeCountsEveryNode(t *testing.T) {
	start := Record{Version: Version{TS: 10, Node: "n1"}, Value: []byte("5")}
	var recs []Record
	for i, n := range []string{"n1", "n2", "n3"} {
		c, ok := CounterFrom(&start, true, 0)
		if !ok {
			t.Fatal("5 is an integer")
		}
		if _, err := c.Add(n, int64(i+1)); err != nil {
			t.Fatal(err)
		}
		rec := Record{Version: Version{TS: clock.Timestamp(20 + i), Node: n}}
		rec.SetCounter(&c)
		recs = append(recs, rec)
	}
	got := recs[2]
	for _, i := range []int{0, 1, 0, 2, 1} {
		got = Merge(&got, &recs[i])
	}
	if string(got.Value) != "11" { // 5 + 1 + 2 + 3
		t.Fatalf("merged value %q, want 11", got.Value)
	}
	// A SET newer than every counter replaces them all.
	set := Record{Version: Version{TS: 30, Node: "n2"}, Value: []byte("x")}
	if m := Merge(&got, &set); string(m.Value) != "x" || m.Counter != nil {
		t.Fatalf("a newer SET did not replace the counter: %q", m.Value)
	}
	// A counter born after a DEL does not merge with the one before it.
	del := Record{Version: Version{TS: 31, Node: "n2"}, Tombstone: true}
	c, _ := CounterFrom(&del, true, 0)
	if _, err := c.Add("n3", 1); err != nil {
		t.Fatal(err)
	}
	after := Record{Version: Version{TS: 32, Node: "n3"}}
	after.SetCounter(&c)
	if Mergeable(&after, &got) {
		t.Fatal("counters of two incarnations merge")
	}
	if m := Merge(&got, &after); string(m.Value) != "1" {
		t.Fatalf("the counter after DEL is %q, want 1", m.Value)
	}
}

func TestCounterEncoding(t *testing.T) {
	c := Counter{Incarnation: Version{TS: 7, Node: "n1"}, Base: -3,
		Entries: []CounterEntry{{Node: "a", P: 1, N: 2}, {Node: "b", P: math.MaxUint64, N: 0}}}
	rec := Record{Version: Version{TS: 9, Node: "a"}, ExpireAt: 77}
	rec.SetCounter(&c)
	got, err := Decode(rec.Encode())
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "round trip", got, rec)
	back, err := DecodeCounter(got.Counter)
	if err != nil || back.Base != -3 || back.Incarnation != c.Incarnation || len(back.Entries) != 2 || back.Entries[1].P != math.MaxUint64 {
		t.Fatalf("counter round trip: %+v, %v", back, err)
	}

	// What a decoder from before counters checks: flags it does not know.
	enc := rec.Encode()
	if enc[1]&^flagTombstone == 0 {
		t.Fatal("a counter carries no flag an old decoder refuses")
	}

	bad := []Counter{
		{Entries: []CounterEntry{{Node: "b"}, {Node: "a"}}}, // out of order
		{Entries: []CounterEntry{{Node: "a"}, {Node: "a"}}}, // repeated
		{Entries: []CounterEntry{{Node: ""}}},               // no node
	}
	for _, b := range bad {
		if _, err := DecodeCounter(b.AppendEncode(nil)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%+v decoded: %v", b, err)
		}
	}
	for n := range len(enc) {
		// Every truncation is refused, never a panic.
		_, _ = Decode(enc[:n])
	}
	if _, err := DecodeCounter(append(c.AppendEncode(nil), 0)); err == nil {
		t.Error("trailing bytes decoded")
	}
}

func TestCounterAdd(t *testing.T) {
	c := Counter{Base: math.MaxInt64 - 1}
	if v, err := c.Add("a", 1); err != nil || v != math.MaxInt64 {
		t.Fatalf("Add = %d, %v", v, err)
	}
	if _, err := c.Add("a", 1); !errors.Is(err, ErrOverflow) {
		t.Fatalf("past MaxInt64: %v", err)
	}
	if v, err := c.Add("b", math.MinInt64); err != nil || v != -1 {
		t.Fatalf("Add(MinInt64) = %d, %v", v, err)
	}
	if c.Entries[1].N != 1<<63 {
		t.Fatalf("N = %d", c.Entries[1].N)
	}
	d := Counter{Base: math.MinInt64}
	if _, err := d.Add("a", -1); !errors.Is(err, ErrOverflow) {
		t.Fatalf("below MinInt64: %v", err)
	}
	// Concurrent increments each in range can sum past int64: the value
	// reads as the exact decimal, and a further INCR is refused.
	e := Counter{Entries: []CounterEntry{{Node: "a", P: math.MaxInt64}, {Node: "b", P: 1}}}
	rec := Record{Version: Version{TS: 1, Node: "a"}}
	rec.SetCounter(&e)
	if string(rec.Value) != "9223372036854775808" {
		t.Fatalf("value %q", rec.Value)
	}
	if _, err := e.Add("a", 1); !errors.Is(err, ErrOverflow) {
		t.Fatalf("INCR of an out-of-range sum: %v", err)
	}
}

func TestParseInt(t *testing.T) {
	for _, ok := range []string{"0", "-1", "42", "9223372036854775807", "-9223372036854775808"} {
		if _, good := ParseInt([]byte(ok)); !good {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", " 1", "1 ", "+1", "01", "-0", "1.5", "abc", "9223372036854775808"} {
		if _, good := ParseInt([]byte(bad)); good {
			t.Errorf("%q accepted", bad)
		}
	}
}
