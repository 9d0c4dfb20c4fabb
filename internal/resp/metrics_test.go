package resp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMetricsRegistered(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t, 2)
	c.Get(t.Context(), "k")
	c.Do(t.Context(), "NOSUCH")
	mfs := must(ts.reg.Gather())
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"ringkv_resp_commands_total", "ringkv_resp_errors_total", "ringkv_resp_command_duration_seconds", "ringkv_resp_connections"} {
		if !names[n] {
			t.Errorf("metric %s not registered; have %v", n, names)
		}
	}
}

// A connection adds up its commands' metrics and publishes them before it
// writes their replies: a client that has read a reply finds every command
// before it counted, in /metrics and in INFO, batched pipelines included.
func TestMetricsCountedBeforeReply(t *testing.T) {
	eachProtoWith(t, func(c *Config) { c.ConcurrentPipeline = true }, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		count := func(name string) (calls, timed uint64) {
			for _, mf := range must(ts.reg.Gather()) {
				for _, m := range mf.GetMetric() {
					if len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != name {
						continue
					}
					switch mf.GetName() {
					case "ringkv_resp_commands_total":
						calls = uint64(m.GetCounter().GetValue())
					case "ringkv_resp_command_duration_seconds":
						timed = m.GetHistogram().GetSampleCount()
					}
				}
			}
			return calls, timed
		}
		getsBefore, _ := count("get")
		setsBefore, setsTimedBefore := count("set")
		// The pipeline ends in a run of GETs: the last series a tally holds
		// is published only by the flush before the replies.
		pipe := c.Pipeline()
		for i := range 10 {
			pipe.Set(ctx, fmt.Sprintf("m%d", i), "v", 0)
		}
		for i := range 10 {
			pipe.Get(ctx, fmt.Sprintf("m%d", i))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		gets, _ := count("get")
		sets, setsTimed := count("set")
		if gets-getsBefore != 10 || sets-setsBefore != 10 || setsTimed-setsTimedBefore != 10 {
			t.Fatalf("after the replies: %d GETs and %d SETs counted, %d SETs timed; want 10 each",
				gets-getsBefore, sets-setsBefore, setsTimed-setsTimedBefore)
		}
		pipe = c.Pipeline()
		for i := range 20 {
			pipe.Get(ctx, fmt.Sprintf("m%d", i))
		}
		info := pipe.Info(ctx, "stats")
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		// INFO ran after the 40 commands of the two pipelines and counts
		// them all.
		_, v, _ := strings.Cut(info.Val(), "total_commands_processed:")
		v, _, _ = strings.Cut(v, "\r\n")
		if n, err := strconv.Atoi(v); err != nil || n < 40 {
			t.Fatalf("INFO total_commands_processed = %q, want at least the 40 commands before it", v)
		}
	})
}
