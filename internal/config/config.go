// Package config holds the one configuration struct of a ringkv node: its
// defaults (each with its reason), its validation, and its binding to command
// line flags, RINGKV_* environment variables and a YAML file, in that order of
// precedence. Config-file keys and environment names are derived from the flag
// names, so there is one name per setting everywhere.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
)

// SyncMode says when a node fsyncs its write-ahead log (design §7).
type SyncMode string

// Storage engines, the values of --engine; storage.EngineMemory and
// storage.EnginePebble spelled here so config does not import storage.
const (
	EngineMemory = "memory"
	EnginePebble = "pebble"
)

// Sync modes.
const (
	// SyncAlways fsyncs before every acknowledgement.
	SyncAlways SyncMode = "always"
	// SyncPeriodic fsyncs every 100 ms and relies on replication in between.
	SyncPeriodic SyncMode = "periodic"
)

// Log formats.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// Limits Validate enforces beyond "positive". They reject settings that are
// certainly mistakes (a unit slip, a missing suffix) rather than tune anything.
const (
	// maxKeyBytesLimit: every key is copied into the TTL index, hints and
	// anti-entropy exchanges, so keys past 1 MiB are a design error, not data.
	maxKeyBytesLimit = 1 << 20
	// maxValueBytesLimit matches Redis' proto-max-bulk-len: a larger value could
	// not be written by a Redis client anyway, and would stall replication.
	maxValueBytesLimit = 512 << 20
	// maxVNodesLimit keeps the ring small enough to rebuild on every membership
	// change; 64 already gives a balanced ring.
	maxVNodesLimit = 4096
	// maxNodeIDBytes bounds the id, which travels in every record's version.
	maxNodeIDBytes = 128
	// maxHotKeysK: the tracker counts 4×K keys exactly and ranks them four
	// times a second; past ten thousand that is a slip, not a need.
	maxHotKeysK = 10000
)

// Config is the configuration of one ringkv node (`ringkv server`). Field tags
// give each field's flag name, which is also its YAML key and, upper-cased with
// '-' turned into '_' and prefixed by RINGKV_, its environment variable.
type Config struct {
	// ConfigFile is the YAML file the other settings were read from, if any.
	ConfigFile string `flag:"config"`

	NodeID     string   `flag:"node-id"`
	DataDir    string   `flag:"data-dir"`
	InMemory   bool     `flag:"in-memory"`
	ClientAddr string   `flag:"client-addr"`
	HTTPAddr   string   `flag:"http-addr"`
	PeerAddr   string   `flag:"peer-addr"`
	GossipAddr string   `flag:"gossip-addr"`
	Join       []string `flag:"join"`
	// InitialCluster names every member of a cluster formed from scratch,
	// as id=gossip-host:port entries (see initialcluster.go).
	InitialCluster []string `flag:"initial-cluster"`
	Zone           string   `flag:"zone"`

	// AddrFile is where the node writes the addresses it bound, once it
	// listens on all four (cli/addrfile.go): how whoever started it with
	// port 0 learns its ports.
	AddrFile string `flag:"addr-file"`

	Sync SyncMode `flag:"sync"`
	// DiskReserve is the free space below which the data disk counts as
	// full and writes are refused; 0 picks it from the disk's size.
	DiskReserve int64 `flag:"disk-reserve"`
	// Salvage starts a node whose log is corrupt: the corrupt file is set
	// aside and the node stays not ready until a repair from its replicas.
	Salvage bool          `flag:"salvage"`
	GCGrace time.Duration `flag:"gc-grace"`

	Engine    string `flag:"engine"`
	MaxMemory int64  `flag:"max-memory"`

	MaxKeyBytes   int `flag:"max-key-bytes"`
	MaxValueBytes int `flag:"max-value-bytes"`

	Replicas       int               `flag:"replicas"`
	VNodes         int               `flag:"vnodes"`
	Consistency    replication.Level `flag:"consistency"`
	RequestTimeout time.Duration     `flag:"request-timeout"`

	HintedHandoff bool          `flag:"hinted-handoff"`
	MaxHintWindow time.Duration `flag:"max-hint-window"`
	MaxHintBytes  int64         `flag:"max-hint-bytes"`
	MaxClockSkew  time.Duration `flag:"max-clock-skew"`

	RepairInterval time.Duration `flag:"repair-interval"`
	RepairRate     int           `flag:"repair-rate"`
	AllowStaleData bool          `flag:"allow-stale-data"`

	StreamRate int64 `flag:"stream-rate"`

	HotKeysWindow  time.Duration `flag:"hot-keys-window"`
	HotKeysK       int           `flag:"hot-keys-k"`
	HotKeysMinRate float64       `flag:"hot-keys-min-rate"`
	HotCacheTTL    time.Duration `flag:"hot-cache-ttl"`

	Password    string `flag:"password"`
	UsersFile   string `flag:"users-file"`
	MetricsOpen bool   `flag:"metrics-open"`
	// Insecure lets a listener beyond loopback run without protection:
	// the client and HTTP ports without --password or --users-file, the
	// peer port without TLS, gossip without a key. Without it such a node
	// refuses to start.
	Insecure bool `flag:"insecure"`

	// Peer mutual TLS and the gossip key (see security.go).
	PeerTLSCert   string `flag:"peer-tls-cert"`
	PeerTLSKey    string `flag:"peer-tls-key"`
	PeerTLSCA     string `flag:"peer-tls-ca"`
	GossipKeyFile string `flag:"gossip-key-file"`

	// TLS on the client (RESP) and HTTP ports: a certificate and key to
	// serve, and a CA that verifies client certificates when presented
	// (TLSRequireClientCert: and requires them).
	TLSCert              string `flag:"tls-cert"`
	TLSKey               string `flag:"tls-key"`
	TLSCA                string `flag:"tls-ca"`
	TLSRequireClientCert bool   `flag:"tls-require-client-cert"`

	// MaxClientMemory caps the query buffers of all client connections
	// together, as Redis' maxmemory-clients; 0 picks min(1 GiB, 10% of RAM).
	MaxClientMemory int64 `flag:"max-client-memory"`
	// ClientIdleTimeout closes a client connection that sends nothing this
	// long; ClientReadTimeout bounds how long one command or HTTP request
	// may take to arrive once it has begun.
	ClientIdleTimeout time.Duration `flag:"client-idle-timeout"`
	ClientReadTimeout time.Duration `flag:"client-read-timeout"`

	EventLoops int  `flag:"event-loops"`
	HugePages  bool `flag:"huge-pages"`

	LowPriorityBackground bool `flag:"low-priority-background"`

	LogLevel  slog.Level `flag:"log-level"`
	LogFormat string     `flag:"log-format"`

	ShutdownTimeout time.Duration `flag:"shutdown-timeout"`

	// DebugEndpoints mounts test-only HTTP controls (the clock offset the
	// fault suite skews a node with). Hidden from --help: never for production.
	DebugEndpoints bool `flag:"debug-endpoints"`
}

// Default returns the configuration a node runs with when nothing is set.
func Default() Config {
	return Config{
		// The hostname is unique in the common deployments (one node per host,
		// one per StatefulSet pod) and stable across restarts, which a node id
		// must be: the ring tokens derive from it.
		NodeID: defaultNodeID(),
		// Relative to the working directory so a first `ringkv server` works
		// without root and without touching anything outside the directory.
		DataDir: "./ringkv-data",
		// Durable by default; in-memory is for demos and tests.
		InMemory: false,
		// Loopback by default: a node must be exposed deliberately (§11). 7379 is
		// Redis' 6379 shifted so both can run on one machine.
		ClientAddr: "127.0.0.1:7379",
		// Next to the client port by the same +1000 rule, easy to remember.
		HTTPAddr: "127.0.0.1:8379",
		// Client port + 1, so a node's ports sit together.
		PeerAddr: "127.0.0.1:7380",
		// memberlist's customary port.
		GossipAddr: "127.0.0.1:7946",
		// None: the ports are the ones configured, unless one is 0.
		AddrFile: "",
		// No seeds: a lone node forms a cluster of one.
		Join: nil,
		// No named members: a node with no data and no --join is the first
		// node of a cluster that others join one by one.
		InitialCluster: nil,
		// No zone: replicas are placed by ring order alone.
		Zone: "",
		// 0: min(256 MiB, 5% of the data filesystem), at least 1 MiB. Enough
		// for the engine to finish an append, a flush or a rewrite it began,
		// and small enough not to waste a small disk (diskspace package).
		DiskReserve: 0,
		// Off: salvaging drops the corrupt file's records from this replica,
		// which the operator must choose knowingly (docs/operations.md).
		Salvage: false,
		// Replication covers the 100 ms between fsyncs, as Cassandra's and
		// Redis' defaults do; fsync per write costs an order of magnitude.
		Sync: SyncPeriodic,
		// Records in memory behind a hash index with an append-only log: a
		// write is a hash lookup and a log append (issue 28). Pebble is for
		// data sets larger than memory.
		Engine: EngineMemory,
		// No limit, as Redis' maxmemory 0: the operator sizes the box.
		MaxMemory: 0,
		// Must outlive hints and one anti-entropy period so a stale replica
		// cannot resurrect a deleted key (design §2): the 3 h hint window plus
		// an hour, one value with the store's own default.
		GCGrace: storage.DefaultGCGrace,
		// 8 KiB holds any sensible key and bounds index and hint entries.
		MaxKeyBytes: 8 << 10,
		// 16 MiB keeps one value well below what stalls a replication stream.
		MaxValueBytes: 16 << 20,
		// Three copies survive one failure at QUORUM for both reads and writes.
		Replicas: 3,
		// 64 tokens per node spread ownership within a few percent while the
		// ring stays small enough to recompute on every membership change.
		VNodes: 64,
		// QUORUM reads see QUORUM writes (R+W>N) while one replica is down.
		Consistency: replication.Quorum,
		// Long enough for a replica's fsync under load, short enough that a
		// client retries before its own timeout (go-redis defaults to 3 s).
		RequestTimeout: 2 * time.Second,
		// Cassandra's max_hint_window: outages longer than this are repaired by
		// anti-entropy rather than an unbounded hint backlog.
		MaxHintWindow: 3 * time.Hour,
		// Caps the disk a long outage of a peer can take on each coordinator.
		MaxHintBytes: 1 << 30,
		// Hints bring a returning replica up to date in seconds instead of
		// waiting for read repair or anti-entropy; off only for tests that
		// need a stale replica.
		HintedHandoff: true,
		// NTP keeps clocks within milliseconds; 500 ms tolerates a bad host while
		// refusing writes from one whose clock would push versions far ahead.
		MaxClockSkew: 500 * time.Millisecond,
		// Anti-entropy pass every 10 minutes: comparing roots of ranges in
		// sync costs a few KiB per range, and 10 minutes stays far inside the
		// hour that gc-grace keeps beyond the hint window (design §2).
		RepairInterval: 10 * time.Minute,
		// 20k records/s repairs a wiped 1M-key replica in under a minute while
		// leaving most of a node's write capacity to clients.
		RepairRate: 20000,
		// Refuse: a node away longer than gc-grace can resurrect deleted keys.
		AllowStaleData: false,
		// 32 MiB/s moves a 100 GiB node in under an hour while leaving most
		// of a 1 Gbit/s link and of the disk to client traffic.
		StreamRate: 32 << 20,
		// Ten seconds: a key's rate is not one burst, and a key that cools
		// leaves the list within seconds.
		HotKeysWindow: 10 * time.Second,
		// A hundred keys is a screenful in `ringkv hotkeys`.
		HotKeysK: 100,
		// Below a hundred requests a second one key costs its replicas
		// nothing worth spreading or caching.
		HotKeysMinRate: 100,
		// Off: a cached read may miss a write made through another node for
		// up to the TTL, which an operator must choose knowingly (§10).
		HotCacheTTL: 0,
		// No password: the default listeners are loopback only (§11).
		Password: "",
		// No users file: --password alone is the single-user setup.
		UsersFile: "",
		// Closed: /metrics needs a user with the admin right, as it tells
		// an attacker the cluster's shape and load.
		MetricsOpen: false,
		// Off: as Redis' protected mode, a node reachable beyond loopback
		// must have authentication, or say so with --insecure.
		Insecure: false,
		// No TLS: the default listeners are loopback only (§11).
		TLSCert: "", TLSKey: "", TLSCA: "", TLSRequireClientCert: false,
		// 0: min(1 GiB, 10% of RAM), enough for dozens of maximal commands
		// in flight while a flood of half-sent ones cannot exhaust the host.
		MaxClientMemory: 0,
		// Redis closes no idle clients by default; we do, after long enough
		// that pooled clients (go-redis keeps idle conns 30 min) see few
		// closures, so that abandoned connections do not pile up forever.
		ClientIdleTimeout: time.Hour,
		// A maximal 16 MiB value arrives in 30 s at 0.6 MB/s; a client that
		// is slower than that is more likely holding buffers on purpose.
		ClientReadTimeout: 30 * time.Second,
		// Info logs lifecycle events, not requests.
		LogLevel: slog.LevelInfo,
		// Text reads well in a terminal; set json for log shippers.
		LogFormat: LogFormatText,
		// Kubernetes' default terminationGracePeriodSeconds: a node finishes
		// its drain before the kubelet kills it.
		ShutdownTimeout: 30 * time.Second,
		// 0: half the CPUs. A loop runs a single node's GETs inline, which
		// cut their CPU by a third (docs/performance.md).
		EventLoops: 0,
		// On: Pebble's memtables and caches live on the Go heap, and with
		// 4 KiB pages a write's skiplist walk misses the TLB at every step
		// (a quarter to a third of a SET's CPU, docs/performance.md). The
		// kernel grants huge pages only where its mode allows; --huge-pages
		// false leaves the heap as the runtime maps it.
		HugePages: true,
		// On: a memtable flush or a compaction is a burst of CPU that, at
		// the node's priority, queues every request behind it when the
		// CPUs are short; the 3-node cluster's p99 at 25K requests/s went
		// from 62-104 ms in a run with a flush to 7-8 ms (docs/performance.md).
		LowPriorityBackground: true,
		// Off: the debug endpoints let anyone who reaches the HTTP port move
		// this node's clock, which only a fault-injection test may do.
		DebugEndpoints: false,
	}
}

func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "ringkv"
	}
	return h
}

// Validate reports every setting that makes no sense, joined in one error.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: --%s: %s", flag, fmt.Sprintf(format, args...)))
	}

	switch {
	case c.NodeID == "":
		bad("node-id", "must not be empty")
	case len(c.NodeID) > maxNodeIDBytes:
		bad("node-id", "%d bytes, at most %d allowed", len(c.NodeID), maxNodeIDBytes)
	case strings.IndexFunc(c.NodeID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		bad("node-id", "%q contains spaces or control characters", c.NodeID)
	}
	if !c.InMemory && c.DataDir == "" {
		bad("data-dir", "must not be empty unless --in-memory is set")
	}

	addrs := []struct{ flag, addr string }{
		{"client-addr", c.ClientAddr}, {"http-addr", c.HTTPAddr},
		{"peer-addr", c.PeerAddr}, {"gossip-addr", c.GossipAddr},
	}
	seen := map[string]string{}
	for _, a := range addrs {
		port, err := checkAddr(a.addr)
		if err != nil {
			bad(a.flag, "%v", err)
			continue
		}
		// Port 0 asks the kernel for a free port, so it never clashes.
		if port == 0 {
			continue
		}
		if other, ok := seen[a.addr]; ok {
			bad(a.flag, "%q is also --%s", a.addr, other)
		}
		seen[a.addr] = a.flag
	}
	for _, j := range c.Join {
		if _, err := checkAddr(j); err != nil {
			bad("join", "%v", err)
		}
	}
	if err := c.checkInitialCluster(); err != nil {
		bad("initial-cluster", "%v", err)
	}

	if c.Sync != SyncAlways && c.Sync != SyncPeriodic {
		bad("sync", "%q, want %s or %s", c.Sync, SyncAlways, SyncPeriodic)
	}
	if c.DiskReserve < 0 {
		bad("disk-reserve", "%d, must not be negative (0 picks it from the disk's size)", c.DiskReserve)
	}
	if c.Engine != EngineMemory && c.Engine != EnginePebble {
		bad("engine", "%q, want %s or %s", c.Engine, EngineMemory, EnginePebble)
	}
	if c.MaxMemory < 0 {
		bad("max-memory", "%d, must not be negative", c.MaxMemory)
	}
	if c.GCGrace <= 0 {
		bad("gc-grace", "%v, must be positive", c.GCGrace)
	}
	if c.MaxKeyBytes <= 0 || c.MaxKeyBytes > maxKeyBytesLimit {
		bad("max-key-bytes", "%d, want 1..%d", c.MaxKeyBytes, maxKeyBytesLimit)
	}
	if c.MaxValueBytes <= 0 || c.MaxValueBytes > maxValueBytesLimit {
		bad("max-value-bytes", "%d, want 1..%d", c.MaxValueBytes, maxValueBytesLimit)
	}
	if c.Replicas < 1 {
		bad("replicas", "%d, must be at least 1", c.Replicas)
	}
	if c.VNodes < 1 || c.VNodes > maxVNodesLimit {
		bad("vnodes", "%d, want 1..%d", c.VNodes, maxVNodesLimit)
	}
	if _, err := replication.ParseLevel(c.Consistency.String()); err != nil {
		bad("consistency", "%v", err)
	}
	if c.RequestTimeout <= 0 {
		bad("request-timeout", "%v, must be positive", c.RequestTimeout)
	}
	if c.MaxHintWindow <= 0 {
		bad("max-hint-window", "%v, must be positive", c.MaxHintWindow)
	}
	if c.MaxHintBytes <= 0 {
		bad("max-hint-bytes", "%d, must be positive", c.MaxHintBytes)
	}
	if c.StreamRate <= 0 {
		bad("stream-rate", "%d, must be positive", c.StreamRate)
	}
	if c.RepairInterval < 0 {
		bad("repair-interval", "%v, must not be negative (0 disables continuous anti-entropy)", c.RepairInterval)
	}
	if c.RepairRate < 0 {
		bad("repair-rate", "%d, must not be negative (0 is unlimited)", c.RepairRate)
	}
	if c.HotKeysWindow < time.Second {
		bad("hot-keys-window", "%v, must be at least 1s", c.HotKeysWindow)
	}
	if c.HotKeysK < 1 || c.HotKeysK > maxHotKeysK {
		bad("hot-keys-k", "%d, want 1..%d", c.HotKeysK, maxHotKeysK)
	}
	if !(c.HotKeysMinRate > 0) {
		bad("hot-keys-min-rate", "%v, must be positive", c.HotKeysMinRate)
	}
	if c.HotCacheTTL < 0 {
		bad("hot-cache-ttl", "%v, must not be negative (0 turns the cache off)", c.HotCacheTTL)
	}
	if c.MaxClockSkew <= 0 {
		bad("max-clock-skew", "%v, must be positive", c.MaxClockSkew)
	}
	if c.LogFormat != LogFormatText && c.LogFormat != LogFormatJSON {
		bad("log-format", "%q, want %s or %s", c.LogFormat, LogFormatText, LogFormatJSON)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "%v, must be positive", c.ShutdownTimeout)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert", "--tls-cert and --tls-key go together")
	}
	if c.TLSCert == "" && (c.TLSCA != "" || c.TLSRequireClientCert) {
		bad("tls-ca", "client certificates need TLS: set --tls-cert and --tls-key")
	}
	if c.TLSRequireClientCert && c.TLSCA == "" {
		bad("tls-require-client-cert", "needs --tls-ca to verify client certificates with")
	}
	if c.MaxClientMemory < 0 {
		bad("max-client-memory", "%d, must not be negative (0 picks min(1GiB, 10%% of RAM))", c.MaxClientMemory)
	}
	if c.ClientIdleTimeout <= 0 {
		bad("client-idle-timeout", "%v, must be positive", c.ClientIdleTimeout)
	}
	if c.ClientReadTimeout <= 0 {
		bad("client-read-timeout", "%v, must be positive", c.ClientReadTimeout)
	}
	if c.EventLoops < -1 || c.EventLoops > 1024 {
		bad("event-loops", "%d, want -1 (none), 0 (half the CPUs) or a count up to 1024", c.EventLoops)
	}
	c.checkPeerSecurity(bad)
	if c.Password == "" && c.UsersFile == "" && !c.Insecure {
		// Protected mode, as Redis': a port anyone on the network can reach
		// with no credentials is a mistake until the operator says otherwise.
		for _, a := range []struct{ flag, addr string }{{"client-addr", c.ClientAddr}, {"http-addr", c.HTTPAddr}} {
			if !isLoopback(a.addr) {
				bad(a.flag, "%s is not a loopback address and neither --password nor --users-file is set: "+
					"anyone who can reach it could read and write every key; set one of them, or --insecure to run unprotected", a.addr)
			}
		}
	}
	return errors.Join(errs...)
}

// Warnings lists settings that are valid but probably not what the operator
// wants; the server logs them at startup.
func (c *Config) Warnings() []string {
	var w []string
	if c.Password == "" && c.UsersFile == "" {
		for _, a := range []struct{ flag, addr string }{{"client-addr", c.ClientAddr}, {"http-addr", c.HTTPAddr}} {
			if !isLoopback(a.addr) {
				w = append(w, fmt.Sprintf("--%s %s is not a loopback address and no --password or --users-file is set (--insecure): anyone who can reach it can read and write every key", a.flag, a.addr))
			}
		}
	}
	if c.Consistency == replication.One && c.Replicas > 1 {
		w = append(w, fmt.Sprintf("--consistency ONE with --replicas %d: R+W <= N, so a read may miss an acknowledged write", c.Replicas))
	}
	if c.MaxHintWindow >= c.GCGrace {
		w = append(w, fmt.Sprintf("--max-hint-window %v is not below --gc-grace %v: hints older than gc-grace must be dropped, or replaying them could resurrect deleted keys", c.MaxHintWindow, c.GCGrace))
	}
	return w
}

// checkAddr checks a host:port listen or dial address and returns its port.
func checkAddr(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", addr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q: port %q is not a number in 0..65535", addr, p)
	}
	return int(port), nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
