package bench

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// Op is a request type.
type Op int

// Request types, in the order of Ratio's fields.
const (
	OpGet Op = iota
	OpSet
	OpDel
	numOps
)

func (o Op) String() string {
	switch o {
	case OpGet:
		return "GET"
	case OpSet:
		return "SET"
	case OpDel:
		return "DEL"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// keyDigits is the width of a key's index, as redis-benchmark's __rand_int__.
const keyDigits = 12

// workload draws a connection's request sequence. It is not safe for
// concurrent use: each connection owns one, seeded apart from the others.
type workload struct {
	rng      *rand.Rand
	zipf     *rand.Zipf // nil for the uniform distribution
	keys     uint64
	prefix   string
	cum      [numOps]int // cumulative ratio weights
	total    int
	ttlShare float64
	ttlArg   [2]string // "EX"/"PX" and its amount
	value    []byte
}

func newWorkload(c Config, stream uint64) *workload {
	w := &workload{
		rng:      rand.New(rand.NewPCG(c.Seed, stream)),
		keys:     uint64(c.Keys),
		prefix:   c.KeyPrefix,
		ttlShare: c.TTLShare,
		value:    make([]byte, c.ValueSize),
	}
	if c.Dist == DistZipfian {
		// v = 1 makes P(k) ∝ (1+k)^-s: rank 0 is the hottest key.
		w.zipf = rand.NewZipf(w.rng, c.ZipfS, 1, w.keys-1)
	}
	for i, wt := range [numOps]int{c.Ratio.Get, c.Ratio.Set, c.Ratio.Del} {
		w.total += wt
		w.cum[i] = w.total
	}
	// redis-benchmark fills values with 'x'; doing the same keeps compression
	// (none in either server today) from favouring one tool.
	for i := range w.value {
		w.value[i] = 'x'
	}
	if c.TTL%time.Second == 0 {
		w.ttlArg = [2]string{"EX", strconv.FormatInt(int64(c.TTL/time.Second), 10)}
	} else {
		w.ttlArg = [2]string{"PX", strconv.FormatInt(c.TTL.Milliseconds(), 10)}
	}
	return w
}

// keyIndex draws the next key's index in [0, keys).
func (w *workload) keyIndex() uint64 {
	if w.zipf != nil {
		return w.zipf.Uint64()
	}
	return w.rng.Uint64N(w.keys)
}

// op draws the next request type.
func (w *workload) op() Op {
	n := w.rng.IntN(w.total)
	for i, c := range w.cum {
		if n < c {
			return Op(i)
		}
	}
	return OpGet // unreachable: total > 0
}

// withTTL reports whether the next SET carries an expiry.
func (w *workload) withTTL() bool {
	return w.ttlShare > 0 && w.rng.Float64() < w.ttlShare
}

// appendKey appends key number i in redis-benchmark's format: prefix and a
// zero-padded 12-digit index.
func appendKey(b []byte, prefix string, i uint64) []byte {
	b = append(b, prefix...)
	var d [keyDigits]byte
	for j := keyDigits - 1; j >= 0; j-- {
		d[j] = byte('0' + i%10)
		i /= 10
	}
	return append(b, d[:]...)
}

// keyLen is the length of every key.
func (w *workload) keyLen() int { return len(w.prefix) + keyDigits }

// appendRequest encodes the next request into b as a RESP array and reports
// its type and where in b its key starts (a Redis Cluster routes on it).
func (w *workload) appendRequest(b []byte) ([]byte, Op, int) {
	op := w.op()
	idx := w.keyIndex()
	keyLen := w.keyLen()
	keyAt := 0
	switch op {
	case OpGet, OpDel:
		b = append(b, "*2\r\n"...)
		if op == OpGet {
			b = append(b, "$3\r\nGET\r\n"...)
		} else {
			b = append(b, "$3\r\nDEL\r\n"...)
		}
		b = appendBulkHeader(b, keyLen)
		keyAt = len(b)
		b = appendKey(b, w.prefix, idx)
		b = append(b, "\r\n"...)
	case OpSet:
		ttl := w.withTTL()
		if ttl {
			b = append(b, "*5\r\n$3\r\nSET\r\n"...)
		} else {
			b = append(b, "*3\r\n$3\r\nSET\r\n"...)
		}
		b = appendBulkHeader(b, keyLen)
		keyAt = len(b)
		b = appendKey(b, w.prefix, idx)
		b = append(b, "\r\n"...)
		b = appendBulkHeader(b, len(w.value))
		b = append(b, w.value...)
		b = append(b, "\r\n"...)
		if ttl {
			b = appendBulk(b, w.ttlArg[0])
			b = appendBulk(b, w.ttlArg[1])
		}
	}
	return b, op, keyAt
}

func appendBulkHeader(b []byte, n int) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "\r\n"...)
}

func appendBulk(b []byte, s string) []byte {
	b = appendBulkHeader(b, len(s))
	b = append(b, s...)
	return append(b, "\r\n"...)
}

// appendCommand encodes args as a RESP array.
func appendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = appendBulk(b, a)
	}
	return b
}
