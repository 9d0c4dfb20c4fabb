package config

import (
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ringkv/ringkv/internal/replication"
)

// testDefault is Default with a fixed node id, so tests do not depend on the host.
func testDefault() Config {
	c := Default()
	c.NodeID = "n1"
	return c
}

func TestDefaultIsValid(t *testing.T) {
	c := testDefault()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if Default().NodeID == "" {
		t.Fatal("Default has no node id")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"in-memory without data dir", func(c *Config) { c.InMemory, c.DataDir = true, "" }, ""},
		{"port zero twice", func(c *Config) { c.ClientAddr, c.PeerAddr = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"all interfaces with a password", func(c *Config) { c.ClientAddr, c.Password = ":7379", "pw" }, ""},
		{"all interfaces with users", func(c *Config) { c.ClientAddr, c.UsersFile = ":7379", "/etc/u.yaml" }, ""},
		{"all interfaces, insecure", func(c *Config) { c.ClientAddr, c.Insecure = ":7379", true }, ""},
		{"all interfaces, no auth", func(c *Config) { c.ClientAddr = ":7379" }, "--insecure"},
		{"http beyond loopback, no auth", func(c *Config) { c.HTTPAddr = "10.0.0.1:8379" }, "--http-addr"},
		{"localhost, no auth", func(c *Config) { c.HTTPAddr = "localhost:8379" }, ""},
		{"one replica", func(c *Config) { c.Replicas = 1 }, ""},
		{"empty node id", func(c *Config) { c.NodeID = "" }, "--node-id"},
		{"node id with space", func(c *Config) { c.NodeID = "a b" }, "--node-id"},
		{"node id too long", func(c *Config) { c.NodeID = strings.Repeat("n", 129) }, "--node-id"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"address without port", func(c *Config) { c.ClientAddr = "localhost" }, "--client-addr"},
		{"port out of range", func(c *Config) { c.HTTPAddr = "127.0.0.1:70000" }, "--http-addr"},
		{"named port", func(c *Config) { c.PeerAddr = "127.0.0.1:http" }, "--peer-addr"},
		{"same address twice", func(c *Config) { c.GossipAddr = c.ClientAddr }, "--gossip-addr"},
		{"bad join", func(c *Config) { c.Join = []string{"10.0.0.1:7946", "10.0.0.2"} }, "--join"},
		{"bad sync", func(c *Config) { c.Sync = "sometimes" }, "--sync"},
		{"bad engine", func(c *Config) { c.Engine = "rocks" }, "--engine"},
		{"negative max memory", func(c *Config) { c.MaxMemory = -1 }, "--max-memory"},
		{"zero gc grace", func(c *Config) { c.GCGrace = 0 }, "--gc-grace"},
		{"zero key limit", func(c *Config) { c.MaxKeyBytes = 0 }, "--max-key-bytes"},
		{"huge key limit", func(c *Config) { c.MaxKeyBytes = 2 << 20 }, "--max-key-bytes"},
		{"negative value limit", func(c *Config) { c.MaxValueBytes = -1 }, "--max-value-bytes"},
		{"huge value limit", func(c *Config) { c.MaxValueBytes = 1 << 30 }, "--max-value-bytes"},
		{"tls", func(c *Config) { c.TLSCert, c.TLSKey = "s.crt", "s.key" }, ""},
		{"mutual tls", func(c *Config) {
			c.TLSCert, c.TLSKey, c.TLSCA, c.TLSRequireClientCert = "s.crt", "s.key", "ca.crt", true
		}, ""},
		{"tls cert without key", func(c *Config) { c.TLSCert = "s.crt" }, "--tls-cert"},
		{"tls ca without cert", func(c *Config) { c.TLSCA = "ca.crt" }, "--tls-ca"},
		{"client certs required without ca", func(c *Config) {
			c.TLSCert, c.TLSKey, c.TLSRequireClientCert = "s.crt", "s.key", true
		}, "--tls-require-client-cert"},
		{"negative client memory", func(c *Config) { c.MaxClientMemory = -1 }, "--max-client-memory"},
		{"zero idle timeout", func(c *Config) { c.ClientIdleTimeout = 0 }, "--client-idle-timeout"},
		{"zero read timeout", func(c *Config) { c.ClientReadTimeout = 0 }, "--client-read-timeout"},
		{"zero replicas", func(c *Config) { c.Replicas = 0 }, "--replicas"},
		{"zero vnodes", func(c *Config) { c.VNodes = 0 }, "--vnodes"},
		{"too many vnodes", func(c *Config) { c.VNodes = 100000 }, "--vnodes"},
		{"no level", func(c *Config) { c.Consistency = 0 }, "--consistency"},
		{"zero request timeout", func(c *Config) { c.RequestTimeout = 0 }, "--request-timeout"},
		{"negative hint window", func(c *Config) { c.MaxHintWindow = -time.Second }, "--max-hint-window"},
		{"zero hint bytes", func(c *Config) { c.MaxHintBytes = 0 }, "--max-hint-bytes"},
		{"zero clock skew", func(c *Config) { c.MaxClockSkew = 0 }, "--max-clock-skew"},
		{"negative repair interval", func(c *Config) { c.RepairInterval = -time.Second }, "--repair-interval"},
		{"negative repair rate", func(c *Config) { c.RepairRate = -1 }, "--repair-rate"},
		{"short hot-keys window", func(c *Config) { c.HotKeysWindow = 100 * time.Millisecond }, "--hot-keys-window"},
		{"zero hot-keys k", func(c *Config) { c.HotKeysK = 0 }, "--hot-keys-k"},
		{"NaN hot-keys min rate", func(c *Config) { c.HotKeysMinRate = math.NaN() }, "--hot-keys-min-rate"},
		{"negative hot cache ttl", func(c *Config) { c.HotCacheTTL = -time.Second }, "--hot-cache-ttl"},
		{"bad log format", func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
		{"zero shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "--shutdown-timeout"},
		{"event loops below -1", func(c *Config) { c.EventLoops = -2 }, "--event-loops"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testDefault()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want an error about %s", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := testDefault()
	c.Replicas, c.VNodes, c.Sync = 0, 0, "x"
	err := c.Validate()
	for _, flag := range []string{"--replicas", "--vnodes", "--sync"} {
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("error %v does not mention %s", err, flag)
		}
	}
}

func TestWarnings(t *testing.T) {
	c := testDefault()
	c.GCGrace = 10 * time.Hour
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("loopback, QUORUM, gc-grace > hint window: warnings %q", w)
	}
	c.ClientAddr = "0.0.0.0:7379"
	c.Insecure = true
	c.Consistency = replication.One
	c.GCGrace = time.Hour
	w := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"--client-addr", "--consistency ONE", "--max-hint-window"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %s", w, want)
		}
	}
	c.Password = "secret"
	if strings.Contains(strings.Join(c.Warnings(), "\n"), "--client-addr") {
		t.Error("warns about an open listener although a password is set")
	}
}

// parse registers the flags of c on a fresh set, parses args and loads.
func parse(t *testing.T, c *Config, args []string, env map[string]string) error {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return c.Load(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ringkv.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "replicas: 5\nvnodes: 32\nzone: file-zone\njoin: [a:1, b:2]\n")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		{"default", nil, nil, func(*Config) {}},
		{"file", []string{"--config", file}, nil, func(c *Config) {
			c.Replicas, c.VNodes, c.Zone, c.Join = 5, 32, "file-zone", []string{"a:1", "b:2"}
		}},
		{"file named by env", nil, map[string]string{"RINGKV_CONFIG": file}, func(c *Config) {
			c.Replicas, c.VNodes, c.Zone, c.Join = 5, 32, "file-zone", []string{"a:1", "b:2"}
		}},
		{"env over file", []string{"--config", file}, map[string]string{"RINGKV_REPLICAS": "7", "RINGKV_JOIN": "c:3"}, func(c *Config) {
			c.Replicas, c.VNodes, c.Zone, c.Join = 7, 32, "file-zone", []string{"c:3"}
		}},
		{"flag over env over file", []string{"--config", file, "--replicas", "9", "--zone=flag-zone"},
			map[string]string{"RINGKV_REPLICAS": "7", "RINGKV_ZONE": "env-zone", "RINGKV_VNODES": "16"}, func(c *Config) {
				c.Replicas, c.VNodes, c.Zone, c.Join = 9, 16, "flag-zone", []string{"a:1", "b:2"}
			}},
		{"flag equal to default still wins", []string{"--config", file, "--replicas", "3"}, map[string]string{"RINGKV_REPLICAS": "7"}, func(c *Config) {
			c.Replicas, c.VNodes, c.Zone, c.Join = 3, 32, "file-zone", []string{"a:1", "b:2"}
		}},
		{"dashes become underscores", nil, map[string]string{"RINGKV_MAX_CLOCK_SKEW": "2s", "RINGKV_IN_MEMORY": "true", "RINGKV_MAX_VALUE_BYTES": "1MiB"}, func(c *Config) {
			c.MaxClockSkew, c.InMemory, c.MaxValueBytes, c.DataDir = 2*time.Second, true, 1<<20, ""
		}},
		// An in-memory node needs no directory: the default one is dropped,
		// one given explicitly (it names the store) is kept.
		{"in-memory drops the default data dir", []string{"--in-memory"}, nil, func(c *Config) {
			c.InMemory, c.DataDir = true, ""
		}},
		{"in-memory keeps an explicit data dir", []string{"--in-memory", "--data-dir", "/srv/x"}, nil, func(c *Config) {
			c.InMemory, c.DataDir = true, "/srv/x"
		}},
		{"disk reserve and salvage", []string{"--disk-reserve", "64MiB", "--salvage"}, nil, func(c *Config) {
			c.DiskReserve, c.Salvage = 64<<20, true
		}},
		{"unrelated env ignored", nil, map[string]string{"RINGKV_HELP": "true", "REPLICAS": "1"}, func(*Config) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testDefault()
			if err := parse(t, &c, tc.args, tc.env); err != nil {
				t.Fatal(err)
			}
			want := testDefault()
			tc.want(&want)
			c.ConfigFile, want.ConfigFile = "", ""
			if !reflect.DeepEqual(c, want) {
				t.Fatalf("got  %+v\nwant %+v", c, want)
			}
		})
	}
}

func TestFileWithEveryKey(t *testing.T) {
	file := writeFile(t, `
node-id: node-7
data-dir: /var/lib/ringkv
in-memory: true
client-addr: 0.0.0.0:6000
http-addr: 0.0.0.0:6001
peer-addr: 10.0.0.7:6002
gossip-addr: 10.0.0.7:6003
addr-file: /run/ringkv/addrs.json
join:
  - 10.0.0.1:6003
  - 10.0.0.2:6003
initial-cluster:
  - node-7=10.0.0.7:6003
  - node-8=10.0.0.8:6003
zone: eu-west-1a
sync: always
disk-reserve: 32MiB
salvage: true
gc-grace: 24h
engine: pebble
max-memory: 2gb
max-key-bytes: 1KiB
max-value-bytes: 4194304
replicas: 5
vnodes: 128
consistency: all
request-timeout: 1500ms
hinted-handoff: false
max-hint-window: 1h
max-hint-bytes: 2GiB
max-clock-skew: 250ms
repair-interval: 1m
repair-rate: 500
allow-stale-data: true
stream-rate: 8MiB
hot-keys-window: 30s
hot-keys-k: 20
hot-keys-min-rate: 250.5
hot-cache-ttl: 50ms
password: hunter2
peer-tls-cert: /etc/ringkv/peer.crt
peer-tls-key: /etc/ringkv/peer.key
peer-tls-ca: /etc/ringkv/ca.crt
gossip-key-file: /etc/ringkv/gossip.keys
users-file: /etc/ringkv/users.yaml
metrics-open: true
insecure: true
tls-cert: /etc/ringkv/server.crt
tls-key: /etc/ringkv/server.key
tls-ca: /etc/ringkv/ca.crt
tls-require-client-cert: true
max-client-memory: 256mb
client-idle-timeout: 10m
client-read-timeout: 5s
event-loops: 3
huge-pages: false
low-priority-background: false
log-level: debug
log-format: json
shutdown-timeout: 10s
debug-endpoints: true
`)
	c := testDefault()
	if err := parse(t, &c, []string{"--config", file}, nil); err != nil {
		t.Fatal(err)
	}
	want := Config{
		ConfigFile: file,
		NodeID:     "node-7", DataDir: "/var/lib/ringkv", InMemory: true,
		ClientAddr: "0.0.0.0:6000", HTTPAddr: "0.0.0.0:6001", PeerAddr: "10.0.0.7:6002", GossipAddr: "10.0.0.7:6003",
		Join: []string{"10.0.0.1:6003", "10.0.0.2:6003"}, Zone: "eu-west-1a", AddrFile: "/run/ringkv/addrs.json",
		InitialCluster: []string{"node-7=10.0.0.7:6003", "node-8=10.0.0.8:6003"},
		Sync:           SyncAlways, DiskReserve: 32 << 20, Salvage: true, GCGrace: 24 * time.Hour, Engine: EnginePebble, MaxMemory: 2 << 30,
		MaxKeyBytes: 1024, MaxValueBytes: 4 << 20,
		Replicas: 5, VNodes: 128, Consistency: replication.All, RequestTimeout: 1500 * time.Millisecond,
		HintedHandoff: false, MaxHintWindow: time.Hour, MaxHintBytes: 2 << 30, MaxClockSkew: 250 * time.Millisecond,
		RepairInterval: time.Minute, RepairRate: 500, AllowStaleData: true,
		StreamRate: 8 << 20, HotKeysWindow: 30 * time.Second, HotKeysK: 20, HotKeysMinRate: 250.5, HotCacheTTL: 50 * time.Millisecond,
		Password: "hunter2", UsersFile: "/etc/ringkv/users.yaml", MetricsOpen: true,
		PeerTLSCert: "/etc/ringkv/peer.crt", PeerTLSKey: "/etc/ringkv/peer.key", PeerTLSCA: "/etc/ringkv/ca.crt",
		GossipKeyFile: "/etc/ringkv/gossip.keys", Insecure: true,
		TLSCert: "/etc/ringkv/server.crt", TLSKey: "/etc/ringkv/server.key", TLSCA: "/etc/ringkv/ca.crt", TLSRequireClientCert: true,
		MaxClientMemory: 256 << 20, ClientIdleTimeout: 10 * time.Minute, ClientReadTimeout: 5 * time.Second,
		EventLoops: 3, HugePages: false, LowPriorityBackground: false, LogLevel: slog.LevelDebug, LogFormat: LogFormatJSON, ShutdownTimeout: 10 * time.Second,
		DebugEndpoints: true,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}

	// The file above must name every setting, so a new field gets a file test.
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	new(Config).AddFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && !strings.Contains(mustRead(t, file), "\n"+f.Name+":") {
			t.Errorf("file test lacks key %s", f.Name)
		}
	})
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFlagTagsMatchFlags(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	new(Config).AddFlags(fs)
	var tags []string
	for f := range reflect.TypeFor[Config]().Fields() {
		tag := f.Tag.Get("flag")
		if tag == "" {
			t.Errorf("field %s has no flag tag", f.Name)
		}
		if fs.Lookup(tag) == nil {
			t.Errorf("field %s: no flag --%s", f.Name, tag)
		}
		tags = append(tags, tag)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !slices.Contains(tags, f.Name) {
			t.Errorf("flag --%s binds no field", f.Name)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"unknown key", "replicas: 3\nreplica: 3\n", nil, `unknown key "replica"`},
		{"config key in file", "config: other.yaml\n", nil, `unknown key "config"`},
		{"bad value in file", "gc-grace: soon\n", nil, "gc-grace"},
		{"nested value", "zone: {a: b}\n", nil, "zone"},
		{"not a mapping", "- a\n- b\n", nil, "mapping"},
		{"duplicate key", "vnodes: 1\nvnodes: 2\n", nil, "vnodes"},
		{"bad env", "", map[string]string{"RINGKV_REPLICAS": "three"}, "RINGKV_REPLICAS"},
		{"invalid result", "replicas: 0\n", nil, "--replicas"},
		{"bad level", "consistency: TWO\n", nil, "consistency"},
		{"bad bytes", "max-value-bytes: 16MB\n", nil, "max-value-bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testDefault()
			err := parse(t, &c, []string{"--config", writeFile(t, tc.file)}, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %s", err, tc.want)
			}
		})
	}
	c := testDefault()
	if err := parse(t, &c, []string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, nil); err == nil {
		t.Fatal("missing config file accepted")
	}
	c = testDefault()
	if err := parse(t, &c, []string{"--config", writeFile(t, "")}, nil); err != nil {
		t.Fatalf("empty config file: %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"8192", 8192}, {"8KiB", 8192}, {"16 MiB", 16 << 20}, {"1GiB", 1 << 30}, {"2TiB", 2 << 40}, {"10B", 10},
	} {
		got, err := ParseBytes(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if back, err := ParseBytes(FormatBytes(got)); err != nil || back != got {
			t.Errorf("FormatBytes(%d) = %q does not parse back", got, FormatBytes(got))
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "16MB", "MiB", "9999999999TiB", "1 GB"} {
		if n, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", in, n)
		}
	}
}

// TestDebugEndpointsHidden holds the debug switch out of --help while it still
// parses: only the fault suite turns it on.
func TestDebugEndpointsHidden(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c := testDefault()
	new(Config).AddFlags(fs)
	f := fs.Lookup("debug-endpoints")
	if f == nil || !f.Hidden {
		t.Fatalf("--debug-endpoints: %+v, want a hidden flag", f)
	}
	if strings.Contains(fs.FlagUsages(), "debug-endpoints") {
		t.Fatal("--debug-endpoints shows in the usage text")
	}
	if c.DebugEndpoints {
		t.Fatal("debug endpoints on by default")
	}
	if err := parse(t, &c, []string{"--debug-endpoints"}, nil); err != nil {
		t.Fatal(err)
	}
	if !c.DebugEndpoints {
		t.Fatal("--debug-endpoints did not set the field")
	}
}

func TestInitialCluster(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []string
		wantErr string
	}{
		{"unset", nil, ""},
		{"three", []string{"n1=10.0.0.1:7946", "n2=10.0.0.2:7946", "n3=10.0.0.3:7946"}, ""},
		{"no address", []string{"n1", "n2=10.0.0.2:7946"}, "want id=host:port"},
		{"bad port", []string{"n1=10.0.0.1:x"}, "port"},
		{"duplicate id", []string{"n1=10.0.0.1:7946", "n1=10.0.0.2:7946"}, "named twice"},
		{"shared address", []string{"n1=10.0.0.1:7946", "n2=10.0.0.1:7946"}, "share the address"},
		{"self missing", []string{"n2=10.0.0.2:7946", "n3=10.0.0.3:7946"}, "does not name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.NodeID = "n1"
			c.InitialCluster = tc.entries
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				m, _ := c.InitialMembers()
				if len(m) != len(tc.entries) {
					t.Fatalf("parsed %v from %v", m, tc.entries)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "--initial-cluster") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate: %v, want --initial-cluster ... %s", err, tc.wantErr)
			}
		})
	}
}

func TestParseMemory(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"2gb", 2 << 30, true}, {"2GB", 2 << 30, true}, {"512mb", 512 << 20, true},
		{"100kb", 100 << 10, true}, {"1GiB", 1 << 30, true}, {"4096", 4096, true},
		{"", 0, false}, {"-1gb", 0, false}, {"2 bananas", 0, false}, {"99999999999tb", 0, false},
	} {
		got, err := ParseMemory(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d (ok %t)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
