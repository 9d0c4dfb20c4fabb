package resp

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
)

func TestErrorReplies(t *testing.T) {
	full := &diskspace.FullError{Dir: "/data", Free: 1 << 20, Reserve: 2 << 20}
	for _, tc := range []struct {
		name      string
		err       error
		read      bool
		want      string
		wantNoSub string
	}{
		{"full disk, no replica took it", fmt.Errorf("%w: QUORUM write reached no replica: %w", replication.ErrUnavailable, full), false,
			"ERR disk full: /data has 1.0 MB free, below the reserve of 2.0 MB; writes refused until space is freed", ""},
		// One replica took it: indeterminate, and the client must know.
		{"full disk, one replica took it", fmt.Errorf("%w: QUORUM write got 1 of 2 acks: %w", replication.ErrTimeout, full), false,
			"TIMEOUT replication: too few replicas answered in time, a write may have been applied", ""},
		{"engine ENOSPC", fmt.Errorf("storage: commit: %w", syscall.ENOSPC), false, "ERR disk full: storage: commit: no space left on device", ""},
		{"read timeout", fmt.Errorf("%w: scan: peer gone", replication.ErrTimeout), true,
			"TIMEOUT replication: too few replicas answered the read in time: scan: peer gone", "write"},
		{"write timeout", fmt.Errorf("%w: QUORUM write got 1 of 2 acks", replication.ErrTimeout), false,
			"TIMEOUT replication: too few replicas answered in time, a write may have been applied", ""},
	} {
		got := errorReply(tc.err)
		if tc.read {
			got = readErrorReply(tc.err)
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want %q…", tc.name, got, tc.want)
		}
		if tc.wantNoSub != "" && strings.Contains(got, tc.wantNoSub) {
			t.Errorf("%s: %q mentions %q", tc.name, got, tc.wantNoSub)
		}
	}
}

// Redis takes any positive SCAN COUNT; each step asks the replicas for at
// most maxScanCount keys.
func TestScanCountCapped(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t, 2)
	for _, n := range []int64{1 << 40, maxScanCount + 1, 7} {
		if err := c.Do(t.Context(), "scan", "0", "count", n).Err(); err != nil {
			t.Fatalf("SCAN COUNT %d: %v", n, err)
		}
		if got, want := ts.b.scanCount.Load(), min(n, maxScanCount); got != want {
			t.Errorf("SCAN COUNT %d asked the backend for %d, want %d", n, got, want)
		}
	}
}

// While Loading says so, commands on keys answer LOADING, pipelined ones
// included; the others run; once it clears, everything runs.
func TestLoadingGate(t *testing.T) {
	var loading atomic.Bool
	loading.Store(true)
	ts := startServer(t, func(c *Config) {
		c.ConcurrentPipeline = true
		c.Loading = func() error {
			if loading.Load() {
				return errors.New("restoring 3 ranges from replicas")
			}
			return nil
		}
	})
	c := ts.client(t, 2)
	ctx := t.Context()
	for _, args := range [][]any{{"get", "k"}, {"set", "k", "v"}, {"scan", "0"}, {"del", "k"}, {"dbsize"}} {
		if err := c.Do(ctx, args...).Err(); err == nil || err.Error() != "LOADING restoring 3 ranges from replicas" {
			t.Errorf("%v while loading: %v", args, err)
		}
	}
	pipe := c.Pipeline()
	g1, g2 := pipe.Get(ctx, "a"), pipe.Get(ctx, "b")
	_, _ = pipe.Exec(ctx) // each command's own error is checked below
	for _, g := range []*redis.StringCmd{g1, g2} {
		if err := g.Err(); err == nil || !strings.HasPrefix(err.Error(), "LOADING") {
			t.Errorf("pipelined GET while loading: %v", err)
		}
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Errorf("PING while loading: %v", err)
	}
	loading.Store(false)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET once loaded: %v", err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET once loaded: %q %v", v, err)
	}
}

// TestErrorReplyOOM: a write refused for --max-memory gets Redis' reply
// word for word, however deep the coordinator wrapped it.
func TestErrorReplyOOM(t *testing.T) {
	const want = "OOM command not allowed when used memory > 'maxmemory'."
	for _, err := range []error{
		storage.ErrOutOfMemory,
		fmt.Errorf("replication: QUORUM write refused: %w", storage.ErrOutOfMemory),
	} {
		if got := errorReply(err); got != want {
			t.Errorf("errorReply(%v) = %q, want %q", err, got, want)
		}
	}
	if got := errorReply(fmt.Errorf("%w: x", replication.ErrTimeout)); got[:8] != "TIMEOUT " {
		t.Errorf("TIMEOUT reply changed: %q", got)
	}
}
