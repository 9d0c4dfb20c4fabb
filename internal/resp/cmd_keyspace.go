package resp

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringkv/ringkv/internal/record"
)

// maxKeysReply bounds the keys one KEYS reply holds: the reply is built in
// memory, so a pattern that matches most of a large keyspace is refused
// rather than allowed to exhaust the node. SCAN has no such limit.
const maxKeysReply = 1 << 20

// cmdKeys serves KEYS pattern over the whole cluster: a full SCAN walk of the
// ring, every range from its replicas, filtered by the pattern here. Like
// Redis' KEYS it is costly, in proportion to the whole keyspace whatever the
// pattern matches: it is for debugging small data sets, and SCAN is for the
// rest.
func cmdKeys(c *conn, args [][]byte) {
	pattern := args[1]
	all := len(pattern) == 1 && pattern[0] == '*'
	var out [][]byte
	cursor := uint64(0)
	for {
		ctx, cancel := c.ctx()
		keys, next, err := c.s.b.Scan(ctx, cursor, maxScanCount, c.level)
		cancel()
		if err != nil {
			c.readError(err)
			return
		}
		for _, k := range keys {
			if all || globMatch(pattern, k) {
				out = append(out, k)
			}
		}
		if len(out) > maxKeysReply {
			c.fail("ERR KEYS matched more than " + strconv.Itoa(maxKeysReply) + " keys; use SCAN with MATCH to walk them in pages")
			return
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	c.w.Array(len(out))
	for _, k := range out {
		c.w.Bulk(k)
	}
}

// cmdTime serves TIME from the node's wall clock, the one TTL arithmetic
// uses: seconds and microseconds, as bulk strings.
func cmdTime(c *conn, _ [][]byte) {
	now := c.s.b.Now()
	c.w.Array(2)
	c.w.BulkString(strconv.FormatInt(now.Unix(), 10))
	c.w.BulkString(strconv.Itoa(now.Nanosecond() / 1000))
}

// objectEncoding is Redis' encoding name for a live string record: "int" for
// a value that reads as a 64-bit integer, "embstr" up to 44 bytes, "raw"
// beyond. A counter record (INCR's CRDT) is "int", as Redis answers for a key
// INCR made.
func objectEncoding(rec record.Record) string {
	if rec.Counter != nil {
		return "int"
	}
	v := rec.Value
	if len(v) > 0 && len(v) <= 20 {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && strconv.FormatInt(n, 10) == string(v) {
			return "int"
		}
	}
	if len(v) <= 44 {
		return "embstr"
	}
	return "raw"
}

// cmdObject serves OBJECT ENCODING, REFCOUNT and HELP. There is no LRU or
// LFU bookkeeping to report for IDLETIME and FREQ.
func cmdObject(c *conn, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "help":
		lines := []string{
			"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"ENCODING <key>",
			"    Return the kind of internal representation used in order to store the value",
			"    associated with a <key>.",
			"REFCOUNT <key>",
			"    Return the number of references of the value associated with the specified",
			"    <key>: always 1 here.",
			"HELP",
			"    Print this help.",
		}
		c.w.Array(len(lines))
		for _, l := range lines {
			c.w.SimpleString(l)
		}
		return
	case "encoding", "refcount":
	case "idletime", "freq":
		c.fail("ERR OBJECT " + strings.ToUpper(sub) + " is not served: ringkv keeps no per-key access time or frequency; the hot keys are at /v1/hotkeys")
		return
	default:
		c.fail("ERR unknown subcommand '" + string(truncate(args[1], 128)) + "'. Try OBJECT HELP.")
		return
	}
	if len(args) != 3 {
		c.fail("ERR wrong number of arguments for 'object|" + sub + "' command")
		return
	}
	if !c.checkKey(args[2]) {
		return
	}
	r, ok := c.read(args[2])
	if !ok {
		return
	}
	switch {
	case !r.live:
		c.w.Null()
	case sub == "encoding":
		c.w.BulkString(objectEncoding(r.rec))
	default:
		c.w.Int(1)
	}
}

// clientList serves CLIENT LIST [TYPE normal] [ID id ...]. Other connections
// are reported from what they published (name, user, library); the fields
// their own goroutines change on every command (buffers, last command) are
// given as Redis gives them for an idle client.
func (c *conn) clientList(opts [][]byte) {
	var ids map[int64]bool
	for i := 0; i < len(opts); i++ {
		switch {
		case eq(opts[i], "type") && i+1 < len(opts):
			i++
			if !eq(opts[i], "normal") {
				switch strings.ToLower(string(opts[i])) {
				case "master", "replica", "slave", "pubsub":
					c.w.Verbatim("") // no such clients here
					return
				}
				c.fail("ERR Unknown client type '" + string(truncate(opts[i], 128)) + "'")
				return
			}
		case eq(opts[i], "id") && i+1 < len(opts):
			ids = map[int64]bool{}
			for i++; i < len(opts); i++ {
				n, ok := parseInt(opts[i])
				if !ok || n <= 0 {
					c.fail("ERR Invalid client ID")
					return
				}
				ids[n] = true
			}
		default:
			c.fail(errSyntax)
			return
		}
	}
	s := c.s
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.mu.conns))
	for o := range s.mu.conns {
		if ids == nil || ids[o.id] {
			conns = append(conns, o)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(conns, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	var b strings.Builder
	for _, o := range conns {
		if o == c {
			b.WriteString(strings.Replace(c.info(), "cmd=client|info", "cmd=client|list", 1))
			continue
		}
		b.WriteString(o.listLine())
	}
	c.w.Verbatim(b.String())
}

// listLine is another connection's CLIENT LIST line; see clientList.
func (c *conn) listLine() string {
	sh := c.shown.Load()
	var b strings.Builder
	b.WriteString("id=" + strconv.FormatInt(c.id, 10))
	b.WriteString(" addr=" + c.raddr.String())
	b.WriteString(" laddr=" + c.laddr.String())
	b.WriteString(" fd=-1 name=" + sh.name)
	b.WriteString(" age=" + strconv.FormatInt(int64(time.Since(c.created)/time.Second), 10))
	b.WriteString(" idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0")
	b.WriteString(" argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=NULL")
	b.WriteString(" user=" + sh.user + " redir=-1 resp=" + strconv.Itoa(sh.proto))
	b.WriteString(" lib-name=" + sh.libName + " lib-ver=" + sh.libVer + "\n")
	return b.String()
}
