package record

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"

	"github.com/ringkv/ringkv/internal/clock"
)

// Counter is the state of a counter record (INCR and its family): a
// PN-counter, as Riak's counters are. Each coordinator node counts the
// increments (P) and decrements (N) it applied in an entry only it ever
// raises, so two replicas' states merge by taking each entry's maximum and
// every increment made through any node is counted once, whatever order
// the replicas see them in.
//
// A counter is born on the record it replaced: Incarnation is that record's
// version (zero when there was none) and Base the integer its string held
// (0 for a delete or nothing). Two counters merge only when they share an
// incarnation; otherwise they are two different lives of the key, and the
// newer version wins as for any write (a SET or DEL between them).
type Counter struct {
	Incarnation Version
	Base        int64
	// Entries are sorted by Node, one per node.
	Entries []CounterEntry
}

// CounterEntry is one coordinator's totals; both only grow.
type CounterEntry struct {
	Node string
	P, N uint64
}

// ErrCounter marks a counter state that does not parse.
var ErrCounter = errors.New("record: corrupt counter state")

// AppendEncode appends the counter's encoding:
//
//	incarnation ts(8, BE) len(node)(uvarint) node base(8, BE)
//	count(uvarint) {len(node)(uvarint) node P(uvarint) N(uvarint)}...
func (c *Counter) AppendEncode(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Incarnation.TS))
	dst = binary.AppendUvarint(dst, uint64(len(c.Incarnation.Node)))
	dst = append(dst, c.Incarnation.Node...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Base))
	dst = binary.AppendUvarint(dst, uint64(len(c.Entries)))
	for _, e := range c.Entries {
		dst = binary.AppendUvarint(dst, uint64(len(e.Node)))
		dst = append(dst, e.Node...)
		dst = binary.AppendUvarint(dst, e.P)
		dst = binary.AppendUvarint(dst, e.N)
	}
	return dst
}

// DecodeCounter parses an encoding made by Counter.AppendEncode. It refuses
// every other encoding of the same state (entries out of order or repeated,
// varints longer than needed), so one state has one encoding and equal
// states compare and hash equal.
func DecodeCounter(b []byte) (Counter, error) {
	var c Counter
	d := counterReader{buf: b}
	c.Incarnation.TS = clock.Timestamp(d.u64())
	c.Incarnation.Node = internNode(d.bytes())
	c.Base = int64(d.u64())
	n := d.uvarint()
	// Each entry takes at least 3 bytes: a corrupt count cannot allocate.
	if d.err == nil && n > uint64(len(d.buf)/3) {
		d.err = ErrCounter
	}
	if d.err == nil {
		c.Entries = make([]CounterEntry, 0, n)
	}
	for i := uint64(0); d.err == nil && i < n; i++ {
		e := CounterEntry{Node: internNode(d.bytes()), P: d.uvarint(), N: d.uvarint()}
		if d.err == nil && (e.Node == "" || len(c.Entries) > 0 && c.Entries[len(c.Entries)-1].Node >= e.Node) {
			d.err = ErrCounter
		}
		c.Entries = append(c.Entries, e)
	}
	if d.err == nil && len(d.buf) != 0 {
		d.err = ErrCounter
	}
	if d.err != nil {
		return Counter{}, fmt.Errorf("%w: %w", ErrCorrupt, d.err)
	}
	return c, nil
}

type counterReader struct {
	buf []byte
	err error
}

func (r *counterReader) u64() uint64 {
	if r.err != nil || len(r.buf) < 8 {
		r.err = ErrCounter
		return 0
	}
	v := binary.BigEndian.Uint64(r.buf)
	r.buf = r.buf[8:]
	return v
}

func (r *counterReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 || n != uvarintLen(v) {
		r.err = ErrCounter
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *counterReader) bytes() []byte {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.buf)) {
		r.err = ErrCounter
	}
	if r.err != nil {
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

// Sum returns the counter's value, which may lie outside int64 when
// concurrent increments through different nodes, each within range where it
// was made, add up past it.
func (c *Counter) Sum() *big.Int {
	s := big.NewInt(c.Base)
	var t big.Int
	for _, e := range c.Entries {
		s.Add(s, t.SetUint64(e.P))
		s.Sub(s, t.SetUint64(e.N))
	}
	return s
}

// Int64 returns the counter's value, ok false when it is outside int64.
func (c *Counter) Int64() (v int64, ok bool) {
	s := c.Sum()
	if !s.IsInt64() {
		return 0, false
	}
	return s.Int64(), true
}

// ErrOverflow is an increment that would take the counter out of int64.
var ErrOverflow = errors.New("increment or decrement would overflow")

// Add adds delta to node's entry and returns the new value. The counter
// is left unchanged when the result would leave int64, or the node's total
// of increments or decrements would leave uint64.
func (c *Counter) Add(node string, delta int64) (int64, error) {
	cur, ok := c.Int64()
	if !ok || (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
		return 0, ErrOverflow
	}
	i, found := slices.BinarySearchFunc(c.Entries, node, func(e CounterEntry, n string) int { return cmp.Compare(e.Node, n) })
	if !found {
		c.Entries = slices.Insert(c.Entries, i, CounterEntry{Node: node})
	}
	e := &c.Entries[i]
	switch {
	case delta > 0:
		if e.P > math.MaxUint64-uint64(delta) {
			return 0, ErrOverflow
		}
		e.P += uint64(delta)
	case delta < 0:
		d := uint64(-(delta + 1)) + 1 // -MinInt64 without overflow
		if e.N > math.MaxUint64-d {
			return 0, ErrOverflow
		}
		e.N += d
	}
	return cur + delta, nil
}

// mergeCounters returns the per-node maximum of a's and b's entries; the
// two share an incarnation, hence a base.
func mergeCounters(a, b *Counter) Counter {
	out := Counter{Incarnation: a.Incarnation, Base: a.Base, Entries: make([]CounterEntry, 0, max(len(a.Entries), len(b.Entries)))}
	i, j := 0, 0
	for i < len(a.Entries) || j < len(b.Entries) {
		switch {
		case j == len(b.Entries) || i < len(a.Entries) && a.Entries[i].Node < b.Entries[j].Node:
			out.Entries = append(out.Entries, a.Entries[i])
			i++
		case i == len(a.Entries) || b.Entries[j].Node < a.Entries[i].Node:
			out.Entries = append(out.Entries, b.Entries[j])
			j++
		default:
			ea, eb := a.Entries[i], b.Entries[j]
			out.Entries = append(out.Entries, CounterEntry{Node: ea.Node, P: max(ea.P, eb.P), N: max(ea.N, eb.N)})
			i++
			j++
		}
	}
	return out
}

// IsCounter reports whether r is a counter record.
func (r *Record) IsCounter() bool { return r.Counter != nil }

// SetCounter makes r the live counter record of c: its state and, as its
// value, the decimal that every read returns.
func (r *Record) SetCounter(c *Counter) {
	r.Counter = c.AppendEncode(nil)
	r.Value = c.Sum().Append(nil, 10)
	r.Tombstone = false
}

// incarnationOf returns the incarnation a counter record's state names,
// ok false when it has no parsable state.
func incarnationOf(r *Record) (Version, bool) {
	if r.Counter == nil || r.Tombstone {
		return Version{}, false
	}
	// The incarnation leads the encoding: read it without decoding the
	// entries.
	var d counterReader
	d.buf = r.Counter
	v := Version{TS: clock.Timestamp(d.u64()), Node: string(d.bytes())}
	return v, d.err == nil
}

// Mergeable reports whether a and b are counter records of the same
// incarnation, whose states Merge joins instead of picking one.
func Mergeable(a, b *Record) bool {
	ia, ok := incarnationOf(a)
	if !ok {
		return false
	}
	ib, ok := incarnationOf(b)
	return ok && ia == ib
}

// Merge returns the join of two counter records of the same incarnation
// (see Mergeable): the per-node maximum of their entries, under the newer
// of their versions, with the expiry the newer one carries. It is
// commutative, associative and idempotent, so replicas that see the same
// writes in any order, any number of times, converge on the same record.
// Records that are not Mergeable, or whose state does not parse, are
// resolved by last-write-wins (Compare): the winner is returned.
func Merge(a, b *Record) Record {
	if !Mergeable(a, b) {
		if Compare(a, b) >= 0 {
			return *a
		}
		return *b
	}
	ca, erra := DecodeCounter(a.Counter)
	cb, errb := DecodeCounter(b.Counter)
	if erra != nil || errb != nil {
		if Compare(a, b) >= 0 {
			return *a
		}
		return *b
	}
	m := mergeCounters(&ca, &cb)
	out := *a
	if CompareMeta(b, a) > 0 {
		out = *b
	}
	out.SetCounter(&m)
	return out
}

// Equal reports whether a and b are the same record: version, kind, expiry,
// value and counter state.
func Equal(a, b *Record) bool {
	return Compare(a, b) == 0 && (a.Counter == nil) == (b.Counter == nil)
}

// CounterFrom starts a counter on prev, the record an INCR found (found
// false: none): on a live string that holds an integer, from that integer,
// as Redis does; on a delete, an expired record or nothing, from 0. A live
// counter is returned as it is. ok is false for a live string that is not
// an integer in range, which INCR refuses.
func CounterFrom(prev *Record, found bool, nowMS int64) (c Counter, ok bool) {
	if !found {
		return Counter{}, true
	}
	if !prev.Live(nowMS) {
		return Counter{Incarnation: prev.Version}, true
	}
	if prev.Counter != nil {
		c, err := DecodeCounter(prev.Counter)
		if err != nil {
			return Counter{}, false
		}
		// A state copied out of the stored record, so that Add may grow it.
		c.Entries = slices.Clone(c.Entries)
		return c, true
	}
	base, ok := ParseInt(prev.Value)
	if !ok {
		return Counter{}, false
	}
	return Counter{Incarnation: prev.Version, Base: base}, true
}

// ParseInt parses v as Redis does for INCR: a decimal int64 with no
// spaces, no leading '+' and no leading zeros.
func ParseInt(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, false
	}
	// Redis accepts only the canonical form (string2ll): "007", "+1" and
	// "-0" are not integers to INCR.
	var buf [20]byte
	if !bytes.Equal(strconv.AppendInt(buf[:0], n, 10), v) {
		return 0, false
	}
	return n, true
}
