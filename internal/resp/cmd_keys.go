package resp

import (
	"math"
	"strconv"

	"github.com/ringkv/ringkv/internal/replication"
)

func cmdGet(c *conn, args [][]byte) {
	if !c.checkKey(args[1]) {
		return
	}
	r, ok := c.read(args[1])
	if !ok {
		return
	}
	c.replyValue(r)
}

// read gets key at the connection's level and judges liveness; on error it has
// replied already and ok is false.
func (c *conn) read(key []byte) (r liveRecord, ok bool) {
	ctx, cancel := c.ctx()
	defer cancel()
	rec, found, err := c.s.b.Get(ctx, key, c.level)
	if err != nil {
		c.readError(err)
		return liveRecord{}, false
	}
	return live(rec, found, c.nowMS()), true
}

// write puts m and reports what it replaced; on error it has replied already.
func (c *conn) write(key []byte, m replication.Mutation) (prev liveRecord, ok bool) {
	ctx, cancel := c.ctx()
	defer cancel()
	rec, found, err := c.s.b.Put(ctx, key, m, c.level)
	if err != nil {
		c.backendError(err)
		return liveRecord{}, false
	}
	return live(rec, found, c.nowMS()), true
}

func (c *conn) replyValue(r liveRecord) {
	if !r.live {
		c.w.Null()
		return
	}
	c.w.Bulk(r.rec.Value)
}

// Options of SET and GETEX, as Redis' parseExtendedStringArgumentsOrReply
// knows them.
const (
	optNX = 1 << iota
	optXX
	optGet
	optKeepTTL
	optPersist
	optEX
	optPX
	optEXAT
	optPXAT

	optExpire = optEX | optPX | optEXAT | optPXAT
)

// parseStringOptions parses SET's (forSet) or GETEX's options. It returns the
// flags and the expire argument; on a syntax error it has replied.
func (c *conn) parseStringOptions(opts [][]byte, forSet bool) (flags int, expire []byte, ok bool) {
	for i := 0; i < len(opts); i++ {
		o := opts[i]
		hasNext := i+1 < len(opts)
		var exp int
		switch {
		case forSet && eq(o, "nx") && flags&optXX == 0:
			flags |= optNX
		case forSet && eq(o, "xx") && flags&optNX == 0:
			flags |= optXX
		case forSet && eq(o, "get"):
			flags |= optGet
		case forSet && eq(o, "keepttl") && flags&(optPersist|optExpire) == 0:
			flags |= optKeepTTL
		case !forSet && eq(o, "persist") && flags&(optKeepTTL|optExpire) == 0:
			flags |= optPersist
		case eq(o, "ex"):
			exp = optEX
		case eq(o, "px"):
			exp = optPX
		case eq(o, "exat"):
			exp = optEXAT
		case eq(o, "pxat"):
			exp = optPXAT
		default:
			c.fail(errSyntax)
			return 0, nil, false
		}
		if exp != 0 {
			// The same expire option twice is allowed (the last wins); two
			// different ones, or one with KEEPTTL/PERSIST, are not.
			if !hasNext || flags&(optKeepTTL|optPersist|(optExpire&^exp)) != 0 {
				c.fail(errSyntax)
				return 0, nil, false
			}
			flags |= exp
			i++
			expire = opts[i]
		}
	}
	return flags, expire, true
}

// expireAt turns a SET/GETEX/SETEX expire argument into unix ms, with Redis'
// checks and errors: the number must be positive and the result must not
// overflow. cmd names the command in the error.
func (c *conn) expireAt(arg []byte, flags int, cmd string) (int64, bool) {
	n, ok := parseInt(arg)
	if !ok {
		c.fail(errNotInt)
		return 0, false
	}
	seconds := flags&(optEX|optEXAT) != 0
	if n <= 0 || (seconds && n > math.MaxInt64/1000) {
		c.fail(invalidExpire(cmd))
		return 0, false
	}
	if seconds {
		n *= 1000
	}
	if flags&(optEX|optPX) != 0 {
		now := c.nowMS()
		if n > math.MaxInt64-now {
			c.fail(invalidExpire(cmd))
			return 0, false
		}
		n += now
	}
	return n, true
}

func invalidExpire(cmd string) string { return "ERR invalid expire time in '" + cmd + "' command" }

func cmdSet(c *conn, args [][]byte) {
	key, val := args[1], args[2]
	flags, exp, ok := c.parseStringOptions(args[3:], true)
	if !ok || !c.checkKey(key) || !c.checkValue(val) {
		return
	}
	var at int64
	if flags&optExpire != 0 {
		if at, ok = c.expireAt(exp, flags, "set"); !ok {
			return
		}
	}
	c.set(key, val, at, flags)
}

// set stores val with expiry at (0 = none) under SET's flags and replies.
func (c *conn) set(key, val []byte, at int64, flags int) {
	m := replication.Mutation{Value: val, ExpireAt: at}
	if at != 0 && at <= c.nowMS() {
		// Already expired: store a delete, which is what the key reads as.
		m = replication.Mutation{Tombstone: true}
	}
	if flags&(optNX|optXX|optKeepTTL) == 0 {
		// Unconditional: one round, the write reports the old value for GET.
		prev, ok := c.write(key, m)
		if !ok {
			return
		}
		if flags&optGet != 0 {
			c.replyValue(prev)
			return
		}
		c.w.OK()
		return
	}
	old, ok := c.read(key)
	if !ok {
		return
	}
	if (flags&optNX != 0 && old.live) || (flags&optXX != 0 && !old.live) {
		if flags&optGet != 0 {
			c.replyValue(old)
		} else {
			c.w.Null()
		}
		return
	}
	if flags&optKeepTTL != 0 && old.live && !m.Tombstone {
		m.ExpireAt = old.rec.ExpireAt
	}
	if _, ok := c.write(key, m); !ok {
		return
	}
	if flags&optGet != 0 {
		c.replyValue(old)
		return
	}
	c.w.OK()
}

func cmdSetEx(c *conn, args [][]byte)  { setEx(c, args, optEX, "setex") }
func cmdPSetEx(c *conn, args [][]byte) { setEx(c, args, optPX, "psetex") }

func setEx(c *conn, args [][]byte, unit int, name string) {
	key, val := args[1], args[3]
	if !c.checkKey(key) || !c.checkValue(val) {
		return
	}
	at, ok := c.expireAt(args[2], unit, name)
	if !ok {
		return
	}
	c.set(key, val, at, 0)
}

func cmdSetNX(c *conn, args [][]byte) {
	key, val := args[1], args[2]
	if !c.checkKey(key) || !c.checkValue(val) {
		return
	}
	old, ok := c.read(key)
	if !ok {
		return
	}
	if old.live {
		c.w.Int(0)
		return
	}
	if _, ok := c.write(key, replication.Mutation{Value: val}); ok {
		c.w.Int(1)
	}
}

func cmdGetEx(c *conn, args [][]byte) {
	key := args[1]
	flags, exp, ok := c.parseStringOptions(args[2:], false)
	if !ok || !c.checkKey(key) {
		return
	}
	old, ok := c.read(key)
	if !ok {
		return
	}
	if !old.live {
		// Redis answers nil before looking at the expire argument.
		c.w.Null()
		return
	}
	var m replication.Mutation
	switch {
	case flags&optExpire != 0:
		at, ok := c.expireAt(exp, flags, "getex")
		if !ok {
			return
		}
		m = replication.Mutation{Value: old.rec.Value, ExpireAt: at}
		if at <= c.nowMS() {
			m = replication.Mutation{Tombstone: true}
		}
	case flags&optPersist != 0 && old.rec.ExpireAt != 0:
		m = replication.Mutation{Value: old.rec.Value}
	default:
		c.w.Bulk(old.rec.Value)
		return
	}
	if _, ok := c.write(key, m); ok {
		c.w.Bulk(old.rec.Value)
	}
}

func cmdGetDel(c *conn, args [][]byte) {
	if !c.checkKey(args[1]) {
		return
	}
	prev, ok := c.write(args[1], replication.Mutation{Tombstone: true})
	if ok {
		c.replyValue(prev)
	}
}

// cmdDel serves DEL and UNLINK: a tombstone per distinct key, counting the keys
// that were live. Duplicates are written once, so DEL a a answers 1 like Redis.
func cmdDel(c *conn, args [][]byte) {
	if !c.checkKeys(args, 1, 1) {
		return
	}
	keys := distinct(args[1:])
	prev := make([]liveRecord, len(keys))
	errs := make([]error, len(keys))
	ctx, cancel := c.ctx()
	defer cancel()
	fanout(len(keys), func(i int) {
		rec, found, err := c.s.b.Put(ctx, keys[i], replication.Mutation{Tombstone: true}, c.level)
		prev[i], errs[i] = live(rec, found, c.nowMS()), err
	})
	var n int64
	for i := range keys {
		if errs[i] != nil {
			c.backendError(errs[i])
			return
		}
		if prev[i].live {
			n++
		}
	}
	c.w.Int(n)
}

// distinct returns keys without repeats, in first-seen order; it allocates only
// when there are several keys.
func distinct(keys [][]byte) [][]byte {
	if len(keys) <= 1 {
		return keys
	}
	seen := make(map[string]struct{}, len(keys))
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		if _, dup := seen[str(k)]; !dup {
			seen[str(k)] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}

// readAll reads keys concurrently; on error it has replied.
func (c *conn) readAll(keys [][]byte) ([]liveRecord, bool) {
	recs := make([]liveRecord, len(keys))
	errs := make([]error, len(keys))
	ctx, cancel := c.ctx()
	defer cancel()
	fanout(len(keys), func(i int) {
		rec, found, err := c.s.b.Get(ctx, keys[i], c.level)
		recs[i], errs[i] = live(rec, found, c.nowMS()), err
	})
	for _, err := range errs {
		if err != nil {
			c.readError(err)
			return nil, false
		}
	}
	return recs, true
}

func cmdExists(c *conn, args [][]byte) {
	if !c.checkKeys(args, 1, 1) {
		return
	}
	recs, ok := c.readAll(args[1:])
	if !ok {
		return
	}
	var n int64
	for _, r := range recs {
		if r.live {
			n++
		}
	}
	c.w.Int(n)
}

func cmdType(c *conn, args [][]byte) {
	if !c.checkKey(args[1]) {
		return
	}
	r, ok := c.read(args[1])
	if !ok {
		return
	}
	if r.live {
		c.w.SimpleString("string")
		return
	}
	c.w.SimpleString("none")
}

func cmdMGet(c *conn, args [][]byte) {
	if !c.checkKeys(args, 1, 1) {
		return
	}
	recs, ok := c.readAll(args[1:])
	if !ok {
		return
	}
	c.w.Array(len(recs))
	for _, r := range recs {
		c.replyValue(r)
	}
}

func cmdMSet(c *conn, args [][]byte) {
	if len(args)%2 != 1 {
		c.fail("ERR wrong number of arguments for 'mset' command")
		return
	}
	if !c.checkKeys(args, 1, 2) {
		return
	}
	for i := 2; i < len(args); i += 2 {
		if !c.checkValue(args[i]) {
			return
		}
	}
	// The last value of a repeated key must win, so each key is written once
	// with its last value: concurrent writes of one key would race.
	last := make(map[string]int, len(args)/2)
	for i := 1; i < len(args); i += 2 {
		last[str(args[i])] = i
	}
	idx := make([]int, 0, len(last))
	for i := 1; i < len(args); i += 2 {
		if last[str(args[i])] == i {
			idx = append(idx, i)
		}
	}
	ctx, cancel := c.ctx()
	defer cancel()
	var errs []error
	if bp, ok := c.s.b.(BatchPutter); ok && len(idx) > 1 {
		// One request per replica for all the keys, as a pipeline of SETs:
		// a goroutine and a round trip per key made a 10-key MSET cost
		// twenty times a SET.
		keys := make([][]byte, len(idx))
		muts := make([]replication.Mutation, len(idx))
		for j, i := range idx {
			keys[j], muts[j] = args[i], replication.Mutation{Value: args[i+1]}
		}
		errs = bp.PutBatch(ctx, keys, muts, c.level)
	} else {
		errs = make([]error, len(idx))
		fanout(len(idx), func(j int) {
			i := idx[j]
			_, _, errs[j] = c.s.b.Put(ctx, args[i], replication.Mutation{Value: args[i+1]}, c.level)
		})
	}
	for _, err := range errs {
		if err != nil {
			c.backendError(err)
			return
		}
	}
	c.w.OK()
}

// Options of the EXPIRE family.
const (
	expNX = 1 << iota
	expXX
	expGT
	expLT
)

// cmdExpire serves EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT with Redis 7's
// semantics: 0 when the key is absent or a condition fails, 1 otherwise; a time
// not in the future deletes the key.
func cmdExpire(c *conn, args [][]byte) {
	name := c.lastCmd
	key := args[1]
	var flags int
	for _, o := range args[3:] {
		switch {
		case eq(o, "nx"):
			flags |= expNX
		case eq(o, "xx"):
			flags |= expXX
		case eq(o, "gt"):
			flags |= expGT
		case eq(o, "lt"):
			flags |= expLT
		default:
			c.fail("ERR Unsupported option " + string(o))
			return
		}
	}
	if flags&expNX != 0 && flags&(expXX|expGT|expLT) != 0 {
		c.fail(errNXXXGTLT)
		return
	}
	if flags&expGT != 0 && flags&expLT != 0 {
		c.fail(errGTLT)
		return
	}
	n, ok := parseInt(args[2])
	if !ok {
		c.fail(errNotInt)
		return
	}
	if !c.checkKey(key) {
		return
	}
	// Overflow checks as Redis: negative times are allowed (they delete).
	if name == "expire" || name == "expireat" {
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			c.fail(invalidExpire(name))
			return
		}
		n *= 1000
	}
	if name == "expire" || name == "pexpire" {
		now := c.nowMS()
		if n > math.MaxInt64-now {
			c.fail(invalidExpire(name))
			return
		}
		n += now
	}
	old, ok := c.read(key)
	if !ok {
		return
	}
	if !old.live {
		c.w.Int(0)
		return
	}
	cur := old.rec.ExpireAt // 0: no TTL, an infinite one for GT/LT
	switch {
	case flags&expNX != 0 && cur != 0,
		flags&expXX != 0 && cur == 0,
		flags&expGT != 0 && (cur == 0 || n <= cur),
		flags&expLT != 0 && cur != 0 && n >= cur:
		c.w.Int(0)
		return
	}
	m := replication.Mutation{Value: old.rec.Value, ExpireAt: n}
	if n <= c.nowMS() {
		m = replication.Mutation{Tombstone: true}
	}
	if _, ok := c.write(key, m); ok {
		c.w.Int(1)
	}
}

// cmdTTL serves TTL, PTTL, EXPIRETIME and PEXPIRETIME: -2 for no key, -1 for
// no expiry.
func cmdTTL(c *conn, args [][]byte) {
	name := c.lastCmd
	if !c.checkKey(args[1]) {
		return
	}
	r, ok := c.read(args[1])
	switch {
	case !ok:
		return
	case !r.live:
		c.w.Int(-2)
		return
	case r.rec.ExpireAt == 0:
		c.w.Int(-1)
		return
	}
	at := r.rec.ExpireAt
	switch name {
	case "expiretime":
		c.w.Int(at / 1000)
	case "pexpiretime":
		c.w.Int(at)
	default:
		ttl := max(at-c.nowMS(), 0)
		if name == "ttl" {
			ttl = (ttl + 500) / 1000 // Redis rounds to the nearest second
		}
		c.w.Int(ttl)
	}
}

func cmdPersist(c *conn, args [][]byte) {
	if !c.checkKey(args[1]) {
		return
	}
	old, ok := c.read(args[1])
	if !ok {
		return
	}
	if !old.live || old.rec.ExpireAt == 0 {
		c.w.Int(0)
		return
	}
	if _, ok := c.write(args[1], replication.Mutation{Value: old.rec.Value}); ok {
		c.w.Int(1)
	}
}

// maxScanCount caps the keys one SCAN step asks each replica for: 10,000
// keys of the 8 KiB maximum are 80 MiB, the most one reply should carry.
const maxScanCount = 10000

// cmdScan serves SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]. The cursor is
// the Backend's ring position; MATCH filters what the Backend returns, so a
// step may return fewer keys than COUNT, or none, with a cursor to go on.
func cmdScan(c *conn, args [][]byte) {
	cursor, err := strconv.ParseUint(str(args[1]), 10, 64)
	if err != nil {
		c.fail(errInvalidCurs)
		return
	}
	count := 10
	var pattern []byte
	onlyOther := false // TYPE names a type that never exists here
	for i := 2; i < len(args); i++ {
		if i+1 >= len(args) {
			c.fail(errSyntax)
			return
		}
		o, v := args[i], args[i+1]
		i++
		switch {
		case eq(o, "count"):
			n, ok := parseInt(v)
			if !ok {
				c.fail(errNotInt)
				return
			}
			if n < 1 {
				c.fail(errSyntax)
				return
			}
			// Redis takes any positive COUNT as a hint; so do we, but a page
			// is built in memory on every replica and sent in one frame, so
			// it is capped: a larger COUNT only means more pages.
			count = int(min(n, maxScanCount))
		case eq(o, "match"):
			pattern = v
			if len(v) == 1 && v[0] == '*' {
				pattern = nil
			}
		case eq(o, "type"):
			onlyOther = !eq(v, "string")
		default:
			c.fail(errSyntax)
			return
		}
	}
	if onlyOther {
		// Every key is a string: the full walk would find nothing.
		c.w.Array(2)
		c.w.BulkString("0")
		c.w.Array(0)
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	keys, next, err := c.s.b.Scan(ctx, cursor, count, c.level)
	if err != nil {
		c.readError(err)
		return
	}
	if pattern != nil {
		kept := keys[:0]
		for _, k := range keys {
			if globMatch(pattern, k) {
				kept = append(kept, k)
			}
		}
		keys = kept
	}
	c.w.Array(2)
	var buf [20]byte
	c.w.Bulk(strconv.AppendUint(buf[:0], next, 10))
	c.w.Array(len(keys))
	for _, k := range keys {
		c.w.Bulk(k)
	}
}
