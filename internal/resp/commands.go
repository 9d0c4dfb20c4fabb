package resp

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/metric"
	"github.com/ringkv/ringkv/internal/record"
)

// command is one entry of the command table.
type command struct {
	name string
	// arity follows Redis: n > 0 means exactly n arguments (name included),
	// n < 0 means at least -n.
	arity int
	// flags are reported by COMMAND, as Redis names them.
	flags []string
	// firstKey, lastKey and step locate keys for COMMAND (lastKey -1 = last arg).
	firstKey, lastKey, step int
	// noAuth commands run before AUTH.
	noAuth bool
	// waitless commands touch only their own connection's state: an event
	// loop may run them without handing the connection to a goroutine.
	waitless bool
	// data commands read or write keys: a loading node refuses them.
	data bool
	// right is what a user needs to run the command; 0: none beyond
	// being authenticated.
	right auth.Rights
	fn    func(c *conn, args [][]byte)
	// count and latency are this command's children of the server's metric
	// vectors; a connection adds to them through its tally.
	count   *metric.Counter
	latency *metric.Histogram
}

// maxCommandName is longer than every command name, so a longer name is unknown
// without a lookup and the lower-casing buffer can live on the stack.
const maxCommandName = 32

func commandTable() map[string]*command {
	cmds := []*command{
		{name: "ping", arity: -1, flags: []string{"fast"}, waitless: true, fn: cmdPing},
		{name: "echo", arity: 2, flags: []string{"fast"}, waitless: true, fn: cmdEcho},
		{name: "hello", arity: -1, flags: []string{"noauth", "fast"}, noAuth: true, waitless: true, fn: cmdHello},
		{name: "auth", arity: -2, flags: []string{"noauth", "fast"}, noAuth: true, waitless: true, fn: cmdAuth},
		{name: "quit", arity: -1, flags: []string{"noauth", "fast"}, noAuth: true, fn: cmdQuit},
		{name: "select", arity: 2, flags: []string{"fast"}, waitless: true, fn: cmdSelect},
		{name: "client", arity: -2, flags: []string{"admin"}, waitless: true, fn: cmdClient},
		{name: "command", arity: -1, flags: []string{"loading"}, fn: cmdCommand},
		{name: "config", arity: -2, flags: []string{"admin"}, right: auth.Admin, fn: cmdConfig},
		{name: "acl", arity: -2, flags: []string{"noscript"}, waitless: true, fn: cmdAcl},
		{name: "info", arity: -1, flags: []string{"loading"}, fn: cmdInfo},
		{name: "dbsize", arity: 1, flags: []string{"readonly", "fast"}, fn: cmdDBSize},
		{name: "cluster", arity: -2, flags: []string{"fast"}, fn: cmdCluster},
		{name: "readonly", arity: 1, flags: []string{"fast"}, waitless: true, fn: cmdReadMode},
		{name: "readwrite", arity: 1, flags: []string{"fast"}, waitless: true, fn: cmdReadMode},
		{name: "ringkv.consistency", arity: -1, flags: []string{"fast"}, fn: cmdConsistency},

		{name: "get", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdGet},
		{name: "set", arity: -3, flags: []string{"write"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdSet},
		{name: "setex", arity: 4, flags: []string{"write"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdSetEx},
		{name: "psetex", arity: 4, flags: []string{"write"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdPSetEx},
		{name: "setnx", arity: 3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdSetNX},
		{name: "getex", arity: -2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdGetEx},
		{name: "getdel", arity: 2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdGetDel},
		{name: "del", arity: -2, flags: []string{"write"}, firstKey: 1, lastKey: -1, step: 1, fn: cmdDel},
		{name: "unlink", arity: -2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: -1, step: 1, fn: cmdDel},
		{name: "exists", arity: -2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: -1, step: 1, fn: cmdExists},
		{name: "type", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdType},
		{name: "mget", arity: -2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: -1, step: 1, fn: cmdMGet},
		{name: "mset", arity: -3, flags: []string{"write"}, firstKey: 1, lastKey: -1, step: 2, fn: cmdMSet},
		{name: "expire", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdExpire},
		{name: "pexpire", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdExpire},
		{name: "expireat", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdExpire},
		{name: "pexpireat", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdExpire},
		{name: "ttl", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdTTL},
		{name: "pttl", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdTTL},
		{name: "expiretime", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdTTL},
		{name: "pexpiretime", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdTTL},
		{name: "persist", arity: 2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdPersist},
		{name: "scan", arity: -2, flags: []string{"readonly"}, fn: cmdScan},
		{name: "keys", arity: 2, flags: []string{"readonly"}, fn: cmdKeys},
		{name: "object", arity: -2, flags: []string{"readonly"}, firstKey: 2, lastKey: 2, step: 1, fn: cmdObject},
		{name: "time", arity: 1, flags: []string{"fast"}, fn: cmdTime},
		// FLUSHALL and FLUSHDB empty the whole cluster: admin only.
		{name: "flushall", arity: -1, flags: []string{"write"}, right: auth.Admin, fn: cmdFlushAll},
		{name: "flushdb", arity: -1, flags: []string{"write"}, right: auth.Admin, fn: cmdFlushAll},

		// Counters (cmd_counter.go).
		{name: "incr", arity: 2, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdIncr},
		{name: "decr", arity: 2, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdDecr},
		{name: "incrby", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdIncrBy},
		{name: "decrby", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdDecrBy},
		{name: "incrbyfloat", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, fn: cmdIncrByFloat},
	}
	cmds = append(cmds, refusedCommands()...)
	m := make(map[string]*command, len(cmds))
	for _, c := range cmds {
		c.data = slices.Contains(c.flags, "readonly") || slices.Contains(c.flags, "write")
		switch {
		case c.right != 0: // a command stricter than its flags say (FLUSHALL)
		case slices.Contains(c.flags, "write"):
			c.right = auth.Write
		case slices.Contains(c.flags, "readonly"):
			c.right = auth.Read
		}
		m[c.name] = c
	}
	return m
}

// lookup finds a command by name in any case, without allocating.
func (s *Server) lookup(name []byte) *command {
	if len(name) > maxCommandName {
		return nil
	}
	var buf [maxCommandName]byte
	for i, ch := range name {
		if ch >= 'A' && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		buf[i] = ch
	}
	return s.commands[string(buf[:len(name)])]
}

// exec runs one command and buffers its reply.
func (c *conn) exec(args [][]byte) {
	s := c.s
	cmd := s.lookup(args[0])
	if cmd == nil {
		if isHTTPVerb(args[0]) {
			// "POST /x" or a "Host:" header line: an HTTP client (or a browser
			// tricked into cross-protocol scripting). Drop it, as Redis does.
			s.m.protocolErrors.Inc()
			s.log.Warn("possible security attack: HTTP request on the RESP port, connection dropped",
				"client", c.raddr.String())
			c.quit = true
			c.w.bw.Reset(&c.io) // discard replies buffered for this client
			return
		}
		c.tally.Call(s.m.unknown)
		c.errorf("unknown", unknownCommand(args))
		return
	}
	c.lastCmd = cmd.name
	c.tally.Call(cmd.count)
	if (cmd.arity > 0 && len(args) != cmd.arity) || len(args) < -cmd.arity {
		c.errorf(cmd.name, "ERR wrong number of arguments for '"+cmd.name+"' command")
		return
	}
	if !c.authed && !cmd.noAuth {
		c.errorf(cmd.name, errNoAuth)
		return
	}
	if !c.rights.Has(cmd.right) {
		c.errorf(cmd.name, "NOPERM this user has no permissions to run the '"+cmd.name+"' command")
		return
	}
	if c.inMulti && !multiEnds(cmd.name) {
		c.errorf(cmd.name, notRun)
		return
	}
	if cmd.data && s.cfg.Loading != nil {
		if err := s.cfg.Loading(); err != nil {
			c.errorf(cmd.name, "LOADING "+err.Error())
			return
		}
	}
	cmd.fn(c, args)
	c.observe(cmd)
}

// observe records the latency of cmd, which ran from the mark until now, and
// moves the mark to now, the start of the next command.
func (c *conn) observe(cmd *command) {
	end := clock.Mono()
	c.tally.Observe(cmd.latency, end-c.mark)
	c.mark = end
}

// errorf writes an error reply and counts it.
func (c *conn) errorf(cmd, msg string) {
	prefix, _, _ := strings.Cut(msg, " ")
	c.s.m.errors.WithLabelValues(cmd, prefix).Inc()
	c.w.Error(msg)
}

// fail writes an error reply for the current command.
func (c *conn) fail(msg string) { c.errorf(c.lastCmd, msg) }

// backendError writes the reply for an error from the Backend.
func (c *conn) backendError(err error) { c.fail(errorReply(err)) }

// readError writes the reply for a Backend error on a read.
func (c *conn) readError(err error) { c.fail(readErrorReply(err)) }

func isHTTPVerb(name []byte) bool {
	return bytes.EqualFold(name, []byte("post")) || bytes.EqualFold(name, []byte("host:"))
}

// unknownCommand builds Redis' message: the name and the first arguments, each
// quoted, cut off once the argument list passes 128 bytes.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(truncate(args[0], 128))
	b.WriteString("', with args beginning with: ")
	n := 0
	for _, a := range args[1:] {
		if n >= 128 {
			break
		}
		a = truncate(a, 128-n)
		b.WriteByte('\'')
		b.Write(a)
		b.WriteString("' ")
		n += len(a) + 3
	}
	return b.String()
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// str views b as a string without copying, for comparisons and parsing only;
// the result must not outlive the read buffer.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func eq(b []byte, s string) bool { return strings.EqualFold(str(b), s) }

// checkKey refuses keys outside the data model's limits (design §2).
func (c *conn) checkKey(key []byte) bool {
	switch {
	case len(key) == 0:
		c.fail(errEmptyKey)
		return false
	case len(key) > c.s.cfg.MaxKeyBytes:
		c.fail("ERR key too large (max " + strconv.Itoa(c.s.cfg.MaxKeyBytes) + " bytes)")
		return false
	}
	return true
}

func (c *conn) checkValue(v []byte) bool {
	if len(v) > c.s.cfg.MaxValueBytes {
		c.fail("ERR value too large (max " + strconv.Itoa(c.s.cfg.MaxValueBytes) + " bytes)")
		return false
	}
	return true
}

// checkKeys checks every key in args[from::step].
func (c *conn) checkKeys(args [][]byte, from, step int) bool {
	for i := from; i < len(args); i += step {
		if !c.checkKey(args[i]) {
			return false
		}
	}
	return true
}

// maxFanout bounds the concurrent backend calls of one multi-key command, so
// one MGET of thousands of keys cannot monopolise the coordinator.
const maxFanout = 32

// fanout calls fn(i) for i in [0, n), up to maxFanout at a time, and waits.
func fanout(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, min(n, maxFanout))
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// liveRecord is a read's result, judged at now.
type liveRecord struct {
	rec  record.Record
	live bool
}

func live(rec record.Record, found bool, nowMS int64) liveRecord {
	if !found || !rec.Live(nowMS) {
		return liveRecord{}
	}
	return liveRecord{rec: rec, live: true}
}
