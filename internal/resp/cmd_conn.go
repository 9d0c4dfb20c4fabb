package resp

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/version"
)

// redisVersion is the Redis version whose replies this package reproduces;
// clients read it from HELLO and INFO to pick features.
const redisVersion = "7.0.0"

func cmdPing(c *conn, args [][]byte) {
	switch len(args) {
	case 1:
		c.w.SimpleString("PONG")
	case 2:
		c.w.Bulk(args[1])
	default:
		c.fail("ERR wrong number of arguments for 'ping' command")
	}
}

func cmdEcho(c *conn, args [][]byte) { c.w.Bulk(args[1]) }

func cmdQuit(c *conn, _ [][]byte) {
	c.w.OK()
	c.quit = true
}

func cmdSelect(c *conn, args [][]byte) {
	n, ok := parseInt(args[1])
	switch {
	case !ok:
		c.fail(errNotInt)
	case n < math32Min || n > math32Max:
		c.fail("ERR value is out of range, value must between -2147483648 and 2147483647")
	case n != 0:
		// One keyspace per cluster: there is no other database to select.
		c.fail(errDBIndex)
	default:
		c.w.OK()
	}
}

const (
	math32Min = -1 << 31
	math32Max = 1<<31 - 1
)

// login verifies the credentials and, when they hold, authenticates the
// connection as their user; otherwise it writes the error reply. A nil user
// is the default one, as AUTH <password> means.
func (c *conn) login(user, pass []byte) bool {
	if user == nil {
		user = []byte(auth.DefaultUser)
	}
	if !c.s.cfg.Auth.Enabled() && str(user) != auth.DefaultUser {
		// Like Redis with its nopass default user: no other user exists.
		c.fail(errWrongPass)
		return false
	}
	id, err := c.s.cfg.Auth.Verify(user, pass, remoteIP(c.raddr), "resp")
	switch {
	case errors.Is(err, auth.ErrTooMany):
		c.fail("ERR " + err.Error())
		return false
	case err != nil:
		c.fail(errWrongPass)
		return false
	}
	c.user, c.rights = id.Name, id.Rights
	c.publish()
	if !c.authed {
		c.authed = true
		c.rd.SetLimits(c.limits())
	}
	return true
}

// remoteIP is a client's address without its port, for the failed-login limit.
func remoteIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr()
}

func cmdAuth(c *conn, args [][]byte) {
	var user, pass []byte
	switch len(args) {
	case 2:
		if !c.s.cfg.Auth.Enabled() {
			c.fail(errNoPassword)
			return
		}
		pass = args[1]
	case 3:
		user, pass = args[1], args[2]
	default:
		c.fail(errSyntax)
		return
	}
	if c.login(user, pass) {
		c.w.OK()
	}
}

// authQuick reports whether the AUTH or HELLO ... AUTH in args can be checked
// without a bcrypt, so an event loop may run it without stalling the other
// connections it serves.
func (c *conn) authQuick(args [][]byte) bool {
	a := c.s.cfg.Auth
	if !a.Enabled() {
		return true
	}
	if eq(args[0], "auth") {
		switch len(args) {
		case 2:
			return true // the default user
		case 3:
			return a.Quick(args[1], args[2])
		}
		return true // a syntax error
	}
	for i := 2; i+2 < len(args); i++ {
		if eq(args[i], "auth") {
			return a.Quick(args[i+1], args[i+2])
		}
	}
	return true
}

// cmdAcl serves ACL WHOAMI, the one ACL subcommand clients use to ask who
// they are; users come from --users-file, not from ACL SETUSER.
func cmdAcl(c *conn, args [][]byte) {
	switch sub := strings.ToLower(string(args[1])); {
	case sub == "whoami" && len(args) == 2:
		c.w.BulkString(c.user)
	case sub == "whoami":
		c.fail("ERR wrong number of arguments for 'acl|whoami' command")
	default:
		c.fail("ERR unknown subcommand '" + string(truncate(args[1], 128)) + "'. Try ACL HELP.")
	}
}

// cmdHello serves HELLO [protover [AUTH user pass] [SETNAME name]].
func cmdHello(c *conn, args [][]byte) {
	proto := int64(c.w.proto)
	if len(args) >= 2 {
		n, ok := parseInt(args[1])
		if !ok {
			c.fail(errHelloVersion)
			return
		}
		if n < 2 || n > 3 {
			c.fail(errNoProto)
			return
		}
		proto = n
	}
	var user, pass, name []byte
	hasAuth, hasName := false, false
	for i := 2; i < len(args); i++ {
		more := len(args) - i - 1
		switch {
		case eq(args[i], "auth") && more >= 2:
			user, pass, hasAuth = args[i+1], args[i+2], true
			i += 2
		case eq(args[i], "setname") && more >= 1:
			name, hasName = args[i+1], true
			i++
		default:
			c.fail("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
			return
		}
	}
	if hasAuth && !c.login(user, pass) {
		return
	}
	if !c.authed {
		c.fail(errHelloNoAuth)
		return
	}
	if hasName {
		if !validName(name) {
			c.fail(errClientName)
			return
		}
		c.name = string(name)
		c.publish()
	}
	c.w.proto = int(proto)
	c.publish()
	c.w.Map(7)
	c.w.BulkString("server")
	c.w.BulkString("redis")
	c.w.BulkString("version")
	c.w.BulkString(redisVersion)
	c.w.BulkString("proto")
	c.w.Int(proto)
	c.w.BulkString("id")
	c.w.Int(c.id)
	c.w.BulkString("mode")
	c.w.BulkString("standalone")
	c.w.BulkString("role")
	c.w.BulkString("master")
	c.w.BulkString("modules")
	c.w.Array(0)
}

// validName is Redis' rule for client names: printable ASCII, no spaces.
func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

// clientArity is the exact arity of each CLIENT subcommand served.
var clientArity = map[string]int{"id": 2, "getname": 2, "info": 2, "setname": 3, "setinfo": 4, "list": -2}

func cmdClient(c *conn, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	n, known := clientArity[sub]
	switch {
	case !known:
		c.fail("ERR unknown subcommand '" + string(truncate(args[1], 128)) + "'. Try CLIENT HELP.")
		return
	case (n > 0 && len(args) != n) || len(args) < -n:
		c.fail("ERR wrong number of arguments for 'client|" + sub + "' command")
		return
	}
	switch sub {
	case "list":
		c.clientList(args[2:])
	case "id":
		c.w.Int(c.id)
	case "getname":
		if c.name == "" {
			c.w.Null()
			return
		}
		c.w.BulkString(c.name)
	case "setname":
		if !validName(args[2]) {
			c.fail(errClientName)
			return
		}
		c.name = string(args[2])
		c.publish()
		c.w.OK()
	case "setinfo":
		attr := strings.ToLower(string(args[2]))
		if attr != "lib-name" && attr != "lib-ver" {
			c.fail("ERR Unrecognized option '" + string(truncate(args[2], 128)) + "'")
			return
		}
		if !validName(args[3]) {
			c.fail("ERR " + attr + " cannot contain spaces, newlines or special characters.")
			return
		}
		if attr == "lib-name" {
			c.libName = string(args[3])
		} else {
			c.libVer = string(args[3])
		}
		c.publish()
		c.w.OK()
	case "info":
		c.w.Verbatim(c.info())
	}
}

// info is the connection's CLIENT INFO line, in Redis' field order. Fields that
// describe Redis internals we do not have are reported as Redis would for an
// idle client.
func (c *conn) info() string {
	var b strings.Builder
	b.WriteString("id=" + strconv.FormatInt(c.id, 10))
	b.WriteString(" addr=" + c.raddr.String())
	b.WriteString(" laddr=" + c.laddr.String())
	b.WriteString(" fd=-1 name=" + c.name)
	b.WriteString(" age=" + strconv.FormatInt(int64(time.Since(c.created)/time.Second), 10))
	b.WriteString(" idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1")
	b.WriteString(" qbuf=" + strconv.Itoa(c.rd.Buffered()))
	b.WriteString(" qbuf-free=" + strconv.Itoa(len(c.rd.buf)-c.rd.w))
	b.WriteString(" argv-mem=0 multi-mem=0 rbs=" + strconv.Itoa(len(c.rd.buf)))
	b.WriteString(" rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|info user=" + c.user + " redir=-1")
	b.WriteString(" resp=" + strconv.Itoa(c.w.proto))
	b.WriteString(" lib-name=" + c.libName + " lib-ver=" + c.libVer)
	b.WriteString(" ringkv-consistency=" + c.level.String() + "\n")
	return b.String()
}

// cmdCommand serves COMMAND, COMMAND COUNT, COMMAND LIST, COMMAND INFO and
// COMMAND DOCS. DOCS answers an empty map, which redis-cli accepts (it then
// uses its built-in help).
func cmdCommand(c *conn, args [][]byte) {
	if len(args) == 1 {
		c.w.Array(len(c.s.commands))
		for _, name := range c.commandNames() {
			c.commandEntry(c.s.commands[name])
		}
		return
	}
	switch sub := strings.ToLower(string(args[1])); sub {
	case "count":
		c.w.Int(int64(len(c.s.commands)))
	case "list":
		names := c.commandNames()
		c.w.Array(len(names))
		for _, n := range names {
			c.w.BulkString(n)
		}
	case "docs":
		c.w.Map(0)
	case "info":
		names := args[2:]
		if len(names) == 0 {
			cmdCommand(c, args[:1])
			return
		}
		c.w.Array(len(names))
		for _, n := range names {
			if cmd := c.s.lookup(n); cmd != nil {
				c.commandEntry(cmd)
			} else {
				c.w.Null()
			}
		}
	default:
		c.fail("ERR unknown subcommand '" + string(truncate(args[1], 128)) + "'. Try COMMAND HELP.")
	}
}

func (c *conn) commandNames() []string {
	return slices.Sorted(maps.Keys(c.s.commands))
}

// commandEntry writes Redis 7's ten-element COMMAND reply for one command.
func (c *conn) commandEntry(cmd *command) {
	c.w.Array(10)
	c.w.BulkString(cmd.name)
	c.w.Int(int64(cmd.arity))
	c.w.Set(len(cmd.flags))
	for _, f := range cmd.flags {
		c.w.SimpleString(f)
	}
	c.w.Int(int64(cmd.firstKey))
	c.w.Int(int64(cmd.lastKey))
	c.w.Int(int64(cmd.step))
	c.w.Set(0) // ACL categories
	c.w.Set(0) // tips
	c.w.Array(0)
	c.w.Array(0)
}

// cmdConfig serves CONFIG GET for the few parameters clients ask about
// (redis-benchmark reads save and appendonly at start); nothing is settable.
func cmdConfig(c *conn, args [][]byte) {
	switch sub := strings.ToLower(string(args[1])); sub {
	case "get":
		if len(args) < 3 {
			c.fail("ERR wrong number of arguments for 'config|get' command")
			return
		}
		params := c.configParams()
		names := slices.Sorted(maps.Keys(params))
		var found []string
		for _, n := range names {
			for _, p := range args[2:] {
				if globMatch([]byte(strings.ToLower(string(p))), []byte(n)) {
					found = append(found, n)
					break
				}
			}
		}
		c.w.Map(len(found))
		for _, n := range found {
			c.w.BulkString(n)
			c.w.BulkString(params[n])
		}
	case "set":
		if len(args) < 4 || len(args)%2 != 0 {
			c.fail("ERR wrong number of arguments for 'config|set' command")
			return
		}
		c.fail("ERR Unknown option or number of arguments for CONFIG SET - '" + string(truncate(args[2], 128)) + "'")
	case "resetstat":
		c.w.OK()
	default:
		c.fail("ERR unknown subcommand '" + string(truncate(args[1], 128)) + "'. Try CONFIG HELP.")
	}
}

func (c *conn) configParams() map[string]string {
	cfg := &c.s.cfg
	return map[string]string{
		"save":               "",
		"appendonly":         "no",
		"databases":          "1",
		"maxclients":         strconv.Itoa(cfg.MaxClients),
		"timeout":            strconv.FormatInt(int64(cfg.IdleTimeout/time.Second), 10),
		"proto-max-bulk-len": strconv.Itoa(cfg.MaxBulkBytes),
		"requirepass":        "", // never disclosed
	}
}

// cmdInfo serves INFO [section ...]. The sections are Redis' where the numbers
// exist here, plus "ringkv" with the fields the node supplies through Config.Info.
func cmdInfo(c *conn, args [][]byte) {
	want := func(section string) bool {
		if len(args) == 1 {
			return true
		}
		for _, a := range args[1:] {
			if eq(a, section) || eq(a, "all") || eq(a, "everything") || eq(a, "default") {
				return true
			}
		}
		return false
	}
	s := c.s
	var b strings.Builder
	section := func(title string, kv ...string) {
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + title + "\r\n")
		for i := 0; i+1 < len(kv); i += 2 {
			b.WriteString(kv[i] + ":" + kv[i+1] + "\r\n")
		}
	}
	if want("server") {
		up := time.Since(s.started)
		build := version.Get()
		section("Server",
			"redis_version", redisVersion,
			"redis_mode", "standalone",
			"ringkv_compat", "resp",
			"ringkv_version", build.Version,
			"ringkv_commit", build.Commit,
			"ringkv_build_date", build.Date,
			"tcp_port", portOf(s.Addr()),
			"uptime_in_seconds", strconv.FormatInt(int64(up/time.Second), 10),
			"uptime_in_days", strconv.FormatInt(int64(up/(24*time.Hour)), 10))
	}
	if want("clients") {
		section("Clients",
			"connected_clients", strconv.Itoa(s.numConns()),
			"maxclients", strconv.Itoa(s.cfg.MaxClients))
	}
	if want("stats") {
		section("Stats",
			"total_connections_received", strconv.FormatInt(s.accepted.Load(), 10),
			"total_commands_processed", strconv.FormatUint(s.m.commands.Sum(), 10))
	}
	if want("memory") && s.cfg.MemoryInfo != nil {
		fields := s.cfg.MemoryInfo()
		kv := make([]string, 0, 2*len(fields))
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			kv = append(kv, k, fields[k])
		}
		section("Memory", kv...)
	}
	if want("replication") {
		// Every ringkv node takes writes; its replication is its own (the
		// Ringkv section's replicas), never Redis' master-replica kind.
		section("Replication",
			"role", "master",
			"connected_slaves", "0",
			"master_failover_state", "no-failover",
			"master_repl_offset", "0")
	}
	if want("cluster") {
		// Every node serves every slot's keys; cluster clients read the
		// map from CLUSTER SLOTS.
		section("Cluster", "cluster_enabled", "1")
	}
	if want("keyspace") {
		ctx, cancel := c.ctx()
		n, x, err := keyspace(ctx, s.b)
		cancel()
		if err == nil && n > 0 {
			// avg_ttl is 0, as Redis reports it when it has not sampled one.
			section("Keyspace", "db0", "keys="+strconv.FormatInt(n, 10)+",expires="+strconv.FormatInt(x, 10)+",avg_ttl=0")
		} else {
			section("Keyspace")
		}
	}
	if want("ringkv") && s.cfg.Info != nil {
		fields := s.cfg.Info()
		kv := make([]string, 0, 2*len(fields))
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			kv = append(kv, k, fields[k])
		}
		section("Ringkv", kv...)
	}
	c.w.Verbatim(b.String())
}

// Keyspacer is implemented by a Backend that also counts the keys with an
// expiry; INFO reports expires=0 for one that does not.
type Keyspacer interface {
	Keyspace(ctx context.Context) (keys, expires int64, err error)
}

func keyspace(ctx context.Context, b Backend) (keys, expires int64, err error) {
	if k, ok := b.(Keyspacer); ok {
		return k.Keyspace(ctx)
	}
	keys, err = b.DBSize(ctx)
	return keys, 0, err
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return "0"
}

func cmdDBSize(c *conn, _ [][]byte) {
	ctx, cancel := c.ctx()
	defer cancel()
	n, err := c.s.b.DBSize(ctx)
	if err != nil {
		c.readError(err)
		return
	}
	c.w.Int(n)
}

// cmdConsistency serves RINGKV.CONSISTENCY [ONE|QUORUM|ALL]: the level this
// connection's reads and writes use from now on.
func cmdConsistency(c *conn, args [][]byte) {
	switch len(args) {
	case 1:
		c.w.SimpleString(c.level.String())
	case 2:
		lvl, err := replication.ParseLevel(string(args[1]))
		if err != nil {
			c.fail("ERR unknown consistency level '" + string(truncate(args[1], 128)) + "', want ONE, QUORUM or ALL")
			return
		}
		c.level = lvl
		c.w.OK()
	default:
		c.fail("ERR wrong number of arguments for 'ringkv.consistency' command")
	}
}
