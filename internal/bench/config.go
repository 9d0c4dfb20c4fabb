package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Key distributions.
const (
	DistUniform = "uniform"
	DistZipfian = "zipfian"
)

// Ratio is the relative weight of GET, SET and DEL in the mix; 50:50:0 sends
// as many GETs as SETs and no DEL.
type Ratio struct{ Get, Set, Del int }

// ParseRatio reads "get:set:del" (a missing del means 0), e.g. "50:50:0" or "9:1".
func ParseRatio(s string) (Ratio, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Ratio{}, fmt.Errorf("bench: ratio %q: want get:set[:del]", s)
	}
	var w [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return Ratio{}, fmt.Errorf("bench: ratio %q: %q is not a non-negative integer", s, p)
		}
		w[i] = n
	}
	r := Ratio{Get: w[0], Set: w[1], Del: w[2]}
	if r.Get+r.Set+r.Del == 0 {
		return Ratio{}, fmt.Errorf("bench: ratio %q: all weights are zero", s)
	}
	return r, nil
}

func (r Ratio) String() string { return fmt.Sprintf("%d:%d:%d", r.Get, r.Set, r.Del) }

// Config describes one benchmark run. Start from DefaultConfig.
type Config struct {
	// Addrs are the RESP addresses; connections are spread over them
	// round-robin. Against a Redis Cluster only the first is used, as the
	// seed the topology is asked of.
	Addrs []string
	// TLS, when set, is how every connection is made: the servers speak
	// TLS (ringkv's --tls-cert, redis-server's tls-port).
	TLS *tls.Config
	// Cluster is ClusterAuto, ClusterOn or ClusterOff (empty means auto).
	Cluster string
	// Keys is the size of the keyspace: keys are KeyPrefix + a 12-digit index
	// in [0, Keys), the format redis-benchmark's -r uses, so both tools touch
	// the same keys.
	Keys      int
	KeyPrefix string
	// Dist picks key indexes: DistUniform or DistZipfian with exponent ZipfS
	// (> 1; index 0 is the hottest key).
	Dist  string
	ZipfS float64
	Ratio Ratio
	// ValueSize is the length of every SET value.
	ValueSize int
	// TTLShare is the share of SETs (0..1) sent with an expiry of TTL.
	TTLShare float64
	TTL      time.Duration
	// Consistency, when not empty, is sent as RINGKV.CONSISTENCY on every
	// connection before the run; leave it empty for redis-server.
	Consistency string
	// User and Password, when Password is set, are sent as AUTH on every
	// connection first (AUTH password alone when User is empty).
	User, Password string
	// Pipeline is the number of requests a connection keeps in flight.
	Pipeline int
	// Conns is the number of connections, each served by one goroutine.
	Conns int
	// Duration bounds the measured run; Requests bounds it by count instead.
	// When both are set, whichever comes first ends it.
	Duration time.Duration
	Requests int64
	// Rate, when positive, runs an open loop at this many requests per second
	// over all connections; zero runs a closed loop (as fast as replies come).
	Rate float64
	// Warmup runs the workload this long before measuring; nothing done in it
	// is counted.
	Warmup time.Duration
	// Seed makes the key and op sequence reproducible.
	Seed uint64
	// DialTimeout bounds connecting and the consistency handshake.
	DialTimeout time.Duration
	// Progress receives a live line every ProgressInterval; nil prints none.
	Progress         io.Writer
	ProgressInterval time.Duration
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger

	// sleep, when set, replaces the open loop's wait for its schedule, so a
	// test can make the wait oversleep.
	sleep func(ctx context.Context, d time.Duration)
}

// DefaultConfig returns the defaults, each chosen for a reason noted inline.
func DefaultConfig() Config {
	return Config{
		Addrs: []string{"127.0.0.1:7379"}, // a default `ringkv server`
		// A Redis Cluster is driven as one only when it says it is one, so
		// the same command line loads ringkv, redis-server and the cluster.
		Cluster: ClusterAuto,
		// Large enough that most requests miss every cache line the server
		// keeps hot, small enough to preload in seconds.
		Keys:      1_000_000,
		KeyPrefix: "key:", // redis-benchmark's key format
		Dist:      DistUniform,
		ZipfS:     1.2, // a skew in the range production key popularity shows
		Ratio:     Ratio{Get: 50, Set: 50},
		ValueSize: 100, // the value size of the comparison the issue asks for
		TTL:       time.Hour,
		Pipeline:  1,
		Conns:     50, // redis-benchmark's default client count
		Duration:  10 * time.Second,
		// A second separates the measurement from connection setup and from
		// the server's first allocations.
		Warmup:           time.Second,
		Seed:             1,
		DialTimeout:      5 * time.Second,
		ProgressInterval: time.Second,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("bench: "+format, args...)) }
	if len(c.Addrs) == 0 {
		bad("no address")
	}
	for _, a := range c.Addrs {
		if strings.TrimSpace(a) == "" {
			bad("empty address")
		}
	}
	switch c.Cluster {
	case "", ClusterAuto, ClusterOn, ClusterOff:
	default:
		bad("cluster mode %q: want %s, %s or %s", c.Cluster, ClusterAuto, ClusterOn, ClusterOff)
	}
	if c.Keys < 1 {
		bad("keys %d: want at least 1", c.Keys)
	}
	switch c.Dist {
	case DistUniform:
	case DistZipfian:
		if c.ZipfS <= 1 {
			bad("zipf exponent %v: want > 1", c.ZipfS)
		}
	default:
		bad("distribution %q: want %s or %s", c.Dist, DistUniform, DistZipfian)
	}
	if c.Ratio.Get < 0 || c.Ratio.Set < 0 || c.Ratio.Del < 0 || c.Ratio.Get+c.Ratio.Set+c.Ratio.Del == 0 {
		bad("ratio %v: want non-negative weights, not all zero", c.Ratio)
	}
	if c.ValueSize < 0 {
		bad("value size %d: want >= 0", c.ValueSize)
	}
	if c.TTLShare < 0 || c.TTLShare > 1 {
		bad("ttl share %v: want 0..1", c.TTLShare)
	}
	if c.TTLShare > 0 && c.TTL < time.Millisecond {
		bad("ttl %v: want at least 1ms", c.TTL)
	}
	if c.Pipeline < 1 {
		bad("pipeline %d: want at least 1", c.Pipeline)
	}
	if c.Conns < 1 {
		bad("conns %d: want at least 1", c.Conns)
	}
	if c.Duration < 0 || c.Requests < 0 || c.Warmup < 0 || c.Rate < 0 {
		bad("duration, requests, warmup and rate must not be negative")
	}
	if c.Duration == 0 && c.Requests == 0 {
		bad("neither a duration nor a request count: the run would never end")
	}
	if c.DialTimeout <= 0 {
		bad("dial timeout %v: want > 0", c.DialTimeout)
	}
	if c.Progress != nil && c.ProgressInterval <= 0 {
		bad("progress interval %v: want > 0", c.ProgressInterval)
	}
	return errors.Join(errs...)
}
