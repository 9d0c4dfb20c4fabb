package resp

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestPipelineOf1000(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		pipe := c.Pipeline()
		for i := range 500 {
			pipe.Set(ctx, fmt.Sprintf("p%d", i), i, 0)
		}
		gets := make([]*redis.StringCmd, 500)
		for i := range 500 {
			gets[i] = pipe.Get(ctx, fmt.Sprintf("p%d", i))
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "replies", len(cmds), 1000)
		for i, g := range gets {
			equal(t, "pipelined GET", g.Val(), strconv.Itoa(i))
		}
	})
}

// Plain GETs and SETs of a pipeline run concurrently, but each key still sees
// its commands in order, and every reply goes back in command order, also
// when other commands and errors sit between them.
func TestPipelineBatchesKeepPerKeyOrder(t *testing.T) {
	eachProtoWith(t, func(c *Config) { c.ConcurrentPipeline = true }, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		pipe := c.Pipeline()
		var gets []*redis.StringCmd
		var want []string
		for round := range 5 {
			for k := range 40 {
				key := fmt.Sprintf("o%d", k%7) // keys repeat within a batch
				v := fmt.Sprintf("r%d-k%d", round, k)
				pipe.Set(ctx, key, v, 0)
				gets = append(gets, pipe.Get(ctx, key))
				want = append(want, v)
			}
			pipe.Incr(ctx, "o0")         // an unknown command between batches
			pipe.Set(ctx, "", "x", 0)    // refused by SET's own checks
			pipe.Del(ctx, "o1", "never") // a non-batched command
			gets = append(gets, pipe.Get(ctx, "o1"))
			want = append(want, "")
		}
		cmds, _ := pipe.Exec(ctx)
		equal(t, "replies", len(cmds), 5*(40*2+4))
		for i, g := range gets {
			got, err := g.Result()
			if want[i] == "" {
				if !errors.Is(err, redis.Nil) {
					t.Fatalf("GET %d after DEL: %q %v", i, got, err)
				}
				continue
			}
			if err != nil || got != want[i] {
				t.Fatalf("GET %d = %q %v, want %q", i, got, err, want[i])
			}
		}
	})
}

// The SETs of a pipeline reach a backend that writes in batches as one call,
// and a write it refuses fails alone, its error in its own reply's place; its
// GETs reach one that reads in batches the same way, replies in order.
func TestPipelineSetsGoThroughPutBatch(t *testing.T) {
	eachProtoWith(t, func(c *Config) { c.ConcurrentPipeline = true }, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		pipe := c.Pipeline()
		var sets []*redis.StatusCmd
		for i := range 16 {
			key := fmt.Sprint("b", i)
			if i == 5 {
				key = "refuse:5"
			}
			sets = append(sets, pipe.Set(ctx, key, fmt.Sprint("v", i), 0))
		}
		get := pipe.Get(ctx, "b3")
		if _, err := pipe.Exec(ctx); err == nil {
			t.Fatal("pipeline with a refused SET reported no error")
		}
		for i, s := range sets {
			err := s.Err()
			if i == 5 {
				if err == nil || !strings.Contains(err.Error(), "refused by the test backend") {
					t.Fatalf("SET %d: err %v, want the backend's refusal", i, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("SET %d: %v", i, err)
			}
		}
		if v, err := get.Result(); err != nil || v != "v3" {
			t.Fatalf("GET b3 = %q %v", v, err)
		}
		ts.b.mu.Lock()
		batches := slices.Clone(ts.b.mu.batches)
		getBatches := slices.Clone(ts.b.mu.getBatches)
		ts.b.mu.Unlock()
		pipe = c.Pipeline()
		var gets []*redis.StringCmd
		for i := range 8 {
			gets = append(gets, pipe.Get(ctx, fmt.Sprint("b", i)))
		}
		if _, err := pipe.Exec(ctx); !errors.Is(err, redis.Nil) {
			t.Fatalf("pipelined GETs: %v, want redis.Nil for the refused key", err)
		}
		for i, g := range gets {
			v, err := g.Result()
			if i == 5 {
				isNil(t, "GET b5 (its SET was refused)", err)
				continue
			}
			if err != nil || v != fmt.Sprint("v", i) {
				t.Fatalf("GET b%d = %q %v", i, v, err)
			}
		}
		// The connection's next batch of GETs reuses the answers' memory:
		// none of the values above may show through for keys that are missing.
		pipe = c.Pipeline()
		gets = gets[:0]
		for i := range 8 {
			gets = append(gets, pipe.Get(ctx, fmt.Sprint("nope", i)))
		}
		_, _ = pipe.Exec(ctx)
		for i, g := range gets {
			isNil(t, fmt.Sprint("GET nope", i, " after a batch that found values"), g.Err())
		}
		ts.b.mu.Lock()
		getBatches = ts.b.mu.getBatches[len(getBatches):]
		ts.b.mu.Unlock()
		if len(getBatches) == 0 || slices.Max(getBatches) < 2 {
			t.Fatalf("GetBatch calls %v: the pipeline's GETs were not batched", getBatches)
		}
		if len(batches) == 0 || slices.Max(batches) < 2 {
			t.Fatalf("PutBatch calls %v: the pipeline's SETs were not batched", batches)
		}
		total := 0
		for _, n := range batches {
			total += n
		}
		equal(t, "SETs through PutBatch", total, 16)
	})
}

// MSET writes its distinct keys in one PutBatch, each with its last value,
// and fails as a whole when one of them is refused.
func TestMSetGoesThroughPutBatch(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		ts.b.mu.Lock()
		ts.b.mu.batches = nil
		ts.b.mu.Unlock()
		if err := c.MSet(ctx, "m1", "a", "m2", "b", "m1", "c", "m3", "d").Err(); err != nil {
			t.Fatal(err)
		}
		ts.b.mu.Lock()
		batches := slices.Clone(ts.b.mu.batches)
		ts.b.mu.Unlock()
		if !slices.Equal(batches, []int{3}) {
			t.Fatalf("PutBatch calls %v, want one of the 3 distinct keys", batches)
		}
		got, err := c.MGet(ctx, "m1", "m2", "m3").Result()
		if err != nil || !slices.Equal(got, []any{"c", "b", "d"}) {
			t.Fatalf("MGET = %v %v, want [c b d]", got, err)
		}
		if err := c.MSet(ctx, "m4", "x", "refuse:m", "y").Err(); err == nil || !strings.Contains(err.Error(), "refused by the test backend") {
			t.Fatalf("MSET with a refused key: %v, want the backend's refusal", err)
		}
	})
}
