package resp

import (
	"context"
	"math"
	"strconv"

	"github.com/ringkv/ringkv/internal/replication"
)

// Incrementer is a Backend with counters (design §2, counters): Incr adds
// delta to key's counter, which increments made at once through other
// nodes do not overwrite, and returns the new value.
type Incrementer interface {
	Incr(ctx context.Context, key []byte, delta int64, lvl replication.Level) (int64, error)
}

const (
	errOverflow    = "ERR increment or decrement would overflow"
	errDecrOverflw = "ERR decrement would overflow"
	errNotFloat    = "ERR value is not a valid float"
	errNaNInf      = "ERR increment would produce NaN or Infinity"
)

func cmdIncr(c *conn, args [][]byte) { c.incrBy(args[1], 1) }
func cmdDecr(c *conn, args [][]byte) { c.incrBy(args[1], -1) }

func cmdIncrBy(c *conn, args [][]byte) {
	n, ok := parseInt(args[2])
	if !ok {
		c.fail(errNotInt)
		return
	}
	c.incrBy(args[1], n)
}

func cmdDecrBy(c *conn, args [][]byte) {
	n, ok := parseInt(args[2])
	if !ok {
		c.fail(errNotInt)
		return
	}
	if n == math.MinInt64 {
		c.fail(errDecrOverflw) // as Redis: -MinInt64 is no int64
		return
	}
	c.incrBy(args[1], -n)
}

// incrBy runs INCR and its family on the backend's counters.
func (c *conn) incrBy(key []byte, delta int64) {
	if !c.checkKey(key) {
		return
	}
	b, ok := c.s.b.(Incrementer)
	if !ok {
		c.fail("ERR this server has no counters")
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	v, err := b.Incr(ctx, key, delta, c.level)
	if err != nil {
		c.backendError(err)
		return
	}
	c.w.Int(v)
}

// cmdIncrByFloat is INCRBYFLOAT as a last-write-wins read-modify-write of
// the string: not a counter, so increments made at once through
// different nodes can overwrite each other (docs/design.md, counters). On
// a counter it reads the counter's value and replaces the counter by a
// string.
func cmdIncrByFloat(c *conn, args [][]byte) {
	key := args[1]
	if !c.checkKey(key) {
		return
	}
	incr, ok := parseFloat(args[2])
	if !ok {
		c.fail(errNotFloat)
		return
	}
	r, ok := c.read(key)
	if !ok {
		return
	}
	var cur float64
	if r.live {
		if cur, ok = parseFloat(r.rec.Value); !ok {
			c.fail(errNotFloat)
			return
		}
	}
	v := cur + incr
	if math.IsNaN(v) || math.IsInf(v, 0) {
		c.fail(errNaNInf)
		return
	}
	// Redis' human form: no exponent, no trailing zeros.
	out := strconv.AppendFloat(nil, v, 'f', -1, 64)
	m := replication.Mutation{Value: out}
	if r.live {
		m.ExpireAt = r.rec.ExpireAt // a TTL is kept, as in Redis
	}
	if _, ok := c.write(key, m); ok {
		c.w.Bulk(out)
	}
}

// parseFloat parses a float as Redis' string2ld does: no spaces around it,
// no NaN.
func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 5000 || isSpace(b[0]) || isSpace(b[len(b)-1]) {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}
