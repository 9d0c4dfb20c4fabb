package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/bench"
	"github.com/ringkv/ringkv/internal/pki"
)

func newBenchCommand(e *env) *cobra.Command {
	var cr creds
	c := bench.DefaultConfig()
	var (
		addrs, ratio string
		jsonOut      bool
		quiet        bool
		tlsFiles     pki.Files
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load a ringkv cluster (or any Redis server) and report throughput and latency",
		Long: `Drive one or more RESP servers with GET/SET/DEL over a keyspace and print
ops/s, errors and latency percentiles per request type.

Without --rate it runs a closed loop: every connection keeps --pipeline requests
in flight, which finds the throughput ceiling. With --rate it runs an open loop
at that many requests per second in total, and latency counts from when each
request was due (coordinated omission corrected, as wrk2 does), which is the
latency clients see at that load; only a delay of bench's own timer, while its
connection had nothing in flight, is left out.

Against a Redis Cluster it asks the first address for CLUSTER SLOTS, sends each
request to its key's slot's master (one connection per master for each of
--conns, pipelined per node) and follows -MOVED and -ASK. ringkv answers
CLUSTER SLOTS too, so each request goes straight to its key's primary. A
server that does not answer it (a plain redis-server) is driven as given;
--cluster on makes that an error, --cluster off never asks.

A live line goes to stderr every second; the result goes to stdout.`,
		Example: `  ringkv bench --addr 127.0.0.1:7379,127.0.0.1:7389 --pipeline 16
  ringkv bench --rate 25000 --ratio 50:50:0 --duration 30s --json
  ringkv bench --addr 127.0.0.1:6379 --consistency "" --dist zipfian
  ringkv bench --addr 127.0.0.1:7000 --consistency "" --cluster on --rate 20000`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if c.Ratio, err = bench.ParseRatio(ratio); err != nil {
				return usageError{err: err, cmd: cmd.CommandPath()}
			}
			c.Addrs = nil
			for a := range strings.SplitSeq(addrs, ",") {
				if a = strings.TrimSpace(a); a != "" {
					c.Addrs = append(c.Addrs, a)
				}
			}
			if !cmd.Flags().Changed("duration") && cmd.Flags().Changed("requests") {
				c.Duration = 0 // --requests alone ends the run by count
			}
			c.Consistency = strings.ToUpper(c.Consistency)
			if !quiet {
				c.Progress = cmd.ErrOrStderr()
			}
			if err := c.Validate(); err != nil {
				return usageError{err: err, cmd: cmd.CommandPath()}
			}
			cr := resolveCreds(cmd, e, cr)
			c.User, c.Password = cr.user, cr.password
			if tlsFiles != (pki.Files{}) {
				if tlsFiles.CA == "" {
					return usageError{err: errNeedTLSCA, cmd: cmd.CommandPath()}
				}
				if c.TLS, err = pki.ClientConfig(tlsFiles); err != nil {
					return err
				}
			}
			res, err := bench.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			if jsonOut {
				return res.WriteJSON(cmd.OutOrStdout())
			}
			return res.WriteTable(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&addrs, "addr", strings.Join(c.Addrs, ","), "comma-separated RESP addresses; connections are spread over them")
	f.StringVar(&c.Cluster, "cluster", c.Cluster, "Redis Cluster routing: auto (when the first address answers CLUSTER SLOTS), on, or off")
	f.IntVar(&c.Keys, "keys", c.Keys, "keyspace size: keys key:000000000000 .. key:<keys-1>, as redis-benchmark -r")
	f.StringVar(&c.Dist, "dist", c.Dist, "key distribution: uniform or zipfian")
	f.Float64Var(&c.ZipfS, "zipf-s", c.ZipfS, "zipfian exponent (> 1; larger is more skewed)")
	f.StringVar(&ratio, "ratio", c.Ratio.String(), "request mix get:set:del by weight")
	f.IntVar(&c.ValueSize, "value-size", c.ValueSize, "bytes per SET value")
	f.Float64Var(&c.TTLShare, "ttl-share", c.TTLShare, "share of SETs (0..1) sent with an expiry")
	f.DurationVar(&c.TTL, "ttl", c.TTL, "expiry of the SETs --ttl-share picks (whole seconds use EX, else PX)")
	f.StringVar(&c.Consistency, "consistency", "QUORUM", `RINGKV.CONSISTENCY sent on each connection: ONE, QUORUM, ALL, or "" for plain Redis`)
	f.IntVar(&c.Pipeline, "pipeline", c.Pipeline, "requests in flight per connection")
	f.IntVar(&c.Conns, "conns", c.Conns, "connections")
	f.DurationVar(&c.Duration, "duration", c.Duration, "measured run time, after --warmup")
	f.Int64Var(&c.Requests, "requests", c.Requests, "measured requests in all (ends the run alone unless --duration is set too)")
	f.Float64Var(&c.Rate, "rate", c.Rate, "open loop: requests per second over all connections (0: closed loop)")
	f.DurationVar(&c.Warmup, "warmup", c.Warmup, "load run before measuring, not counted")
	f.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the key and request sequence")
	f.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	f.BoolVarP(&quiet, "quiet", "q", false, "no live progress line")
	addCredFlags(cmd, &cr)
	f.StringVar(&tlsFiles.CA, "tls-ca", "", "CA (PEM) that verifies the servers' certificates; set, every connection uses TLS")
	f.StringVar(&tlsFiles.Cert, "tls-cert", "", "client certificate (PEM) to present, for servers that require one")
	f.StringVar(&tlsFiles.Key, "tls-key", "", "private key (PEM) of --tls-cert")
	return cmd
}
