package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/ringkv/ringkv/internal/replication"
)

// EnvPrefix starts the name of every environment variable ringkv reads.
const EnvPrefix = "RINGKV_"

// ownedAnnotation marks the flags AddFlags registers, so Load applies the
// environment and file only to them and never to flags others add to the same
// set (cobra's --help, for one).
const ownedAnnotation = "ringkv/config"

// EnvName returns the environment variable for a flag: RINGKV_ followed by the
// flag name upper-cased, with '-' turned into '_'.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// AddFlags registers one flag per field on fs, bound to c's fields, with c's
// current values as defaults; call it on Default() to show real defaults in
// --help.
func (c *Config) AddFlags(set *pflag.FlagSet) {
	// Register on a set of our own first so that only these flags get marked.
	fs := pflag.NewFlagSet("config", pflag.ContinueOnError)
	fs.SortFlags = false // Hand them over in registration order, grouped by topic.
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML file with settings, keyed by flag name (flags and environment override it)")

	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "unique, stable id of this node; ring tokens derive from it")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the node's data")
	fs.BoolVar(&c.InMemory, "in-memory", c.InMemory, "keep all data in memory, lost at exit (demos, tests)")
	fs.StringVar(&c.ClientAddr, "client-addr", c.ClientAddr, "listen address for Redis (RESP) clients")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "listen address for the HTTP API, /metrics and health checks")
	fs.StringVar(&c.PeerAddr, "peer-addr", c.PeerAddr, "listen address for node-to-node replication traffic")
	fs.StringVar(&c.GossipAddr, "gossip-addr", c.GossipAddr, "listen address for membership gossip")
	fs.StringVar(&c.AddrFile, "addr-file", c.AddrFile, "once listening, write the bound client, HTTP, peer and gossip addresses to this file as JSON (for listen addresses with port 0)")
	fs.StringSliceVar(&c.Join, "join", c.Join, "comma-separated gossip addresses of existing nodes to join")
	fs.StringSliceVar(&c.InitialCluster, "initial-cluster", c.InitialCluster, "every member of a new cluster as id=gossip-host:port,...: nodes with no data wait for all of them, then start together with the full ring")
	fs.StringVar(&c.Zone, "zone", c.Zone, "failure zone (rack, AZ); replicas spread across zones")

	fs.StringVar((*string)(&c.Sync), "sync", string(c.Sync), "when to fsync: always (before each ack) or periodic (every 100ms)")
	fs.Var(newBytesValue(&c.DiskReserve), "disk-reserve", "free space kept on the data disk; below it writes are refused until space is freed (bytes; KiB, MiB, GiB suffixes; 0: min(256MiB, 5% of the disk))")
	fs.BoolVar(&c.Salvage, "salvage", c.Salvage, "start even if the storage log is corrupt: set the corrupt file aside and stay not ready until this node's ranges are repaired from their replicas")
	fs.DurationVar(&c.GCGrace, "gc-grace", c.GCGrace, "how long tombstones are kept before they are purged")
	fs.StringVar(&c.Engine, "engine", c.Engine, "storage engine: memory (all data in RAM, append-only log) or pebble (data larger than memory)")
	fs.Var((*memoryValue)(&c.MaxMemory), "max-memory", "refuse writes of new data past this much memory, as Redis' maxmemory (0: no limit; 2gb, 512mb, 1GiB)")
	fs.Var(newBytesValue(&c.MaxKeyBytes), "max-key-bytes", "largest key accepted (bytes; KiB, MiB, GiB suffixes allowed)")
	fs.Var(newBytesValue(&c.MaxValueBytes), "max-value-bytes", "largest value accepted (bytes; KiB, MiB, GiB suffixes allowed)")

	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "number of copies of each key (N)")
	fs.IntVar(&c.VNodes, "vnodes", c.VNodes, "ring tokens per node")
	fs.Var((*levelValue)(&c.Consistency), "consistency", "default consistency level: ONE, QUORUM or ALL")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "deadline for one client request across its replicas")

	fs.BoolVar(&c.HintedHandoff, "hinted-handoff", c.HintedHandoff, "keep hints for replicas that miss a write and replay them when they return")
	fs.DurationVar(&c.MaxHintWindow, "max-hint-window", c.MaxHintWindow, "stop storing hints for a replica down longer than this")
	fs.Var(newBytesValue(&c.MaxHintBytes), "max-hint-bytes", "disk space hints may take on this node (bytes; KiB, MiB, GiB suffixes allowed)")
	fs.DurationVar(&c.MaxClockSkew, "max-clock-skew", c.MaxClockSkew, "refuse writes whose version is this far ahead of the local clock")
	fs.DurationVar(&c.RepairInterval, "repair-interval", c.RepairInterval, "pause between anti-entropy passes over this node's ranges (0: only on `ringkv repair`)")
	fs.IntVar(&c.RepairRate, "repair-rate", c.RepairRate, "records per second anti-entropy may repair (0: unlimited)")
	fs.BoolVar(&c.AllowStaleData, "allow-stale-data", c.AllowStaleData, "start even if this node was down longer than --gc-grace (may resurrect deleted keys)")
	fs.DurationVar(&c.HotKeysWindow, "hot-keys-window", c.HotKeysWindow, "span over which hot-key request rates are measured")
	fs.IntVar(&c.HotKeysK, "hot-keys-k", c.HotKeysK, "number of top keys by request rate this node tracks and reports")
	fs.Float64Var(&c.HotKeysMinRate, "hot-keys-min-rate", c.HotKeysMinRate, "requests per second at which a top key counts as hot (read spreading, cache)")
	fs.DurationVar(&c.HotCacheTTL, "hot-cache-ttl", c.HotCacheTTL, "serve reads of hot keys from a coordinator cache this old at most; writes through other nodes go unseen that long (0: off)")
	fs.Var(newBytesValue(&c.StreamRate), "stream-rate", "bytes per second this node pulls when streaming ranges on join, decommission or removenode (KiB, MiB, GiB suffixes allowed)")

	fs.StringVar(&c.Password, "password", c.Password, "password of the \"default\" user, who has every right (empty: none); prefer RINGKV_PASSWORD or --config, as other users can read command lines")
	fs.StringVar(&c.UsersFile, "users-file", c.UsersFile, "YAML file of users with bcrypt-hashed passwords (ringkv hash-password) and rights: read, write, admin")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "certificate (PEM) the client (RESP) and HTTP ports serve TLS with; with --tls-key")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "private key (PEM) of --tls-cert")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "CA (PEM) that verifies client certificates on the client and HTTP ports when a client presents one")
	fs.BoolVar(&c.TLSRequireClientCert, "tls-require-client-cert", c.TLSRequireClientCert, "refuse clients without a certificate from --tls-ca (mutual TLS)")
	fs.Var((*memoryValue)(&c.MaxClientMemory), "max-client-memory", "cap on all client connections' query buffers together; past it the largest are closed, as Redis' maxmemory-clients (0: min(1GiB, 10% of RAM))")
	fs.DurationVar(&c.ClientIdleTimeout, "client-idle-timeout", c.ClientIdleTimeout, "close a client or HTTP connection that sends nothing this long")
	fs.DurationVar(&c.ClientReadTimeout, "client-read-timeout", c.ClientReadTimeout, "close a client connection whose command, or an HTTP request whose headers and body, took longer than this to arrive")
	fs.BoolVar(&c.MetricsOpen, "metrics-open", c.MetricsOpen, "serve /metrics without credentials (no series carries a key name); by default it needs the admin right")

	fs.StringVar(&c.PeerTLSCert, "peer-tls-cert", c.PeerTLSCert, "certificate (PEM) this node serves the peer port with and dials peers with; with --peer-tls-key and --peer-tls-ca the peer port speaks only mutual TLS")
	fs.StringVar(&c.PeerTLSKey, "peer-tls-key", c.PeerTLSKey, "private key (PEM) of --peer-tls-cert")
	fs.StringVar(&c.PeerTLSCA, "peer-tls-ca", c.PeerTLSCA, "CA certificate (PEM) every peer's certificate must be signed by")
	fs.StringVar(&c.GossipKeyFile, "gossip-key-file", c.GossipKeyFile, "file of base64 gossip keys, one a line (16, 24 or 32 bytes): the first encrypts, all are accepted; gossip without a key is refused")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "let a node listen beyond loopback without protection (client and HTTP ports without credentials, peer port without peer TLS, gossip without a key); without it such a node refuses to start")

	fs.IntVar(&c.EventLoops, "event-loops", c.EventLoops, "event loops that serve client connections inline while they only read (Linux; 0: half the CPUs, -1: a goroutine per connection)")
	fs.BoolVar(&c.HugePages, "huge-pages", c.HugePages, "advise the heap the node grows into for transparent huge pages when the kernel grants them only on request (Linux, mode madvise)")
	fs.BoolVar(&c.LowPriorityBackground, "low-priority-background", c.LowPriorityBackground, "run storage flushes and compactions at the lowest CPU priority, so requests go first when the CPUs are short (Linux, nice 19)")

	fs.Var((*logLevelValue)(&c.LogLevel), "log-level", "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful shutdown may take before connections are cut")
	fs.BoolVar(&c.DebugEndpoints, "debug-endpoints", c.DebugEndpoints, "mount test-only /debug HTTP controls (clock offset); never in production")
	// Hidden: an operator reading --help should not be tempted by a switch
	// whose only use is letting the fault suite skew this node's clock.
	_ = fs.MarkHidden("debug-endpoints")

	fs.VisitAll(func(f *pflag.Flag) {
		f.Annotations = map[string][]string{ownedAnnotation: {"true"}}
	})
	set.AddFlagSet(fs)
}

// Load completes the flags AddFlags bound to c after fs has been parsed: each
// flag not set on the command line takes its value from the environment
// (RINGKV_<FLAG>), else from the YAML file named by --config or RINGKV_CONFIG,
// else keeps its default. Then it validates c. lookupEnv is os.LookupEnv
// outside tests; nil means os.LookupEnv.
func (c *Config) Load(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) error {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if !fs.Changed("config") {
		if v, ok := lookupEnv(EnvName("config")); ok {
			if err := fs.Set("config", v); err != nil {
				return fmt.Errorf("config: %s: %w", EnvName("config"), err)
			}
		}
	}
	var file map[string]string
	if c.ConfigFile != "" {
		var err error
		if file, err = readFile(c.ConfigFile); err != nil {
			return err
		}
		for k := range file {
			if f := fs.Lookup(k); f == nil || k == "config" || f.Annotations[ownedAnnotation] == nil {
				return fmt.Errorf("config: %s: unknown key %q", c.ConfigFile, k)
			}
		}
	}

	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Annotations[ownedAnnotation] == nil || f.Name == "config" || f.Changed {
			return
		}
		if v, ok := lookupEnv(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s=%q: %w", EnvName(f.Name), v, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s: %s: %q: %w", c.ConfigFile, f.Name, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if c.InMemory && !fs.Changed("data-dir") {
		// The default directory is for a durable node; an in-memory one
		// writes nothing and must not need, or create, a directory.
		c.DataDir = ""
	}
	return c.Validate()
}

// readFile reads a flat YAML mapping of flag names to scalars (or, for list
// flags, sequences of scalars) and returns each value in its flag syntax.
func readFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // An empty file sets nothing.
		}
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: %s: want a mapping of flag names to values", path)
	}
	out := make(map[string]string, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config: %s:%d: key is not a string", path, k.Line)
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("config: %s:%d: key %q given twice", path, k.Line, k.Value)
		}
		s, err := scalarOrList(v)
		if err != nil {
			return nil, fmt.Errorf("config: %s:%d: %s: %w", path, v.Line, k.Value, err)
		}
		out[k.Value] = s
	}
	return out, nil
}

func scalarOrList(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "", nil
		}
		return n.Value, nil
	case yaml.SequenceNode:
		items := make([]string, 0, len(n.Content))
		for _, it := range n.Content {
			if it.Kind != yaml.ScalarNode {
				return "", errors.New("list items must be plain values")
			}
			if strings.ContainsAny(it.Value, ",\"") {
				return "", fmt.Errorf("list item %q must not contain ',' or '\"'", it.Value)
			}
			items = append(items, it.Value)
		}
		return strings.Join(items, ","), nil
	}
	return "", errors.New("want a value or a list of values")
}

// levelValue binds a replication.Level to a flag.
type levelValue replication.Level

func (l *levelValue) String() string { return replication.Level(*l).String() }
func (l *levelValue) Type() string   { return "level" }
func (l *levelValue) Set(s string) error {
	lvl, err := replication.ParseLevel(s)
	if err != nil {
		return err
	}
	*l = levelValue(lvl)
	return nil
}

// logLevelValue binds a slog.Level to a flag.
type logLevelValue slog.Level

func (l *logLevelValue) String() string { return strings.ToLower(slog.Level(*l).String()) }
func (l *logLevelValue) Type() string   { return "level" }
func (l *logLevelValue) Set(s string) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	*l = logLevelValue(lvl)
	return nil
}

// bytesValue binds a byte count to a flag that takes a plain number or one with
// a binary suffix (8KiB, 16MiB, 1GiB). Decimal suffixes (MB) are refused: one
// spelling per quantity avoids a silent 5% error.
type bytesValue[T int | int64] struct{ p *T }

func newBytesValue[T int | int64](p *T) *bytesValue[T] { return &bytesValue[T]{p: p} }

func (b *bytesValue[T]) Type() string   { return "bytes" }
func (b *bytesValue[T]) String() string { return FormatBytes(int64(*b.p)) }
func (b *bytesValue[T]) Set(s string) error {
	n, err := ParseBytes(s)
	if err != nil {
		return err
	}
	if int64(T(n)) != n {
		return fmt.Errorf("%q: too large", s)
	}
	*b.p = T(n)
	return nil
}

// memoryValue is --max-memory: a byte count as bytesValue takes it, or in
// Redis' maxmemory spelling (2gb, 512mb, 100kb, case-insensitive), which
// Redis reads as binary units; operators copy it from redis.conf.
type memoryValue int64

func (m *memoryValue) Type() string   { return "bytes" }
func (m *memoryValue) String() string { return FormatBytes(int64(*m)) }
func (m *memoryValue) Set(s string) error {
	n, err := ParseMemory(s)
	if err != nil {
		return err
	}
	*m = memoryValue(n)
	return nil
}

// ParseMemory parses a memory size: what ParseBytes takes, or digits with a
// Redis suffix kb, mb, gb or tb (any case; binary units, as Redis).
func ParseMemory(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"tb", 40}, {"gb", 30}, {"mb", 20}, {"kb", 10}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil || n < 0 {
				break
			}
			if n > math.MaxInt64>>u.shift {
				return 0, fmt.Errorf("%q: too large", s)
			}
			return n << u.shift, nil
		}
	}
	n, err := ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a size such as 2gb, 512mb or 1GiB", s)
	}
	return n, nil
}

var byteUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// ParseBytes parses a byte count: digits, optionally followed by B, KiB, MiB,
// GiB or TiB (a space before the suffix is allowed).
func ParseBytes(s string) (int64, error) {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a byte count such as 8192, 64KiB or 16MiB", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n << shift, nil
}

// FormatBytes writes n in the largest binary unit that divides it exactly, so
// that ParseBytes(FormatBytes(n)) == n.
func FormatBytes(n int64) string {
	for _, u := range byteUnits[:len(byteUnits)-1] {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
