package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/bench"
	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/server"
)

// startRealNode starts one in-memory ringkv node on free ports.
func startRealNode(t *testing.T, edit ...func(*config.Config)) server.Addrs {
	t.Helper()
	c := config.Default()
	c.NodeID, c.InMemory, c.DataDir, c.Replicas = "benchcli", true, "", 1
	c.ClientAddr, c.HTTPAddr, c.PeerAddr, c.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	for _, e := range edit {
		e(&c)
	}
	s, err := server.New(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s.Addrs()
}

func TestBenchCommand(t *testing.T) {
	addr := startRealNode(t).Client
	te := newTestEnv(t)
	code := te.run(t.Context(), "bench", "--addr", addr, "--requests", "400", "--conns", "2",
		"--pipeline", "4", "--keys", "50", "--ratio", "1:1", "--warmup", "0s", "--consistency", "one", "--json")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, te.stderr.String())
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(te.stdout.String()), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, te.stdout.String())
	}
	if tot := res.Total(); tot.Count != 400 || tot.Errors != 0 || res.Consistency != "ONE" || res.Conns != 2 {
		t.Fatalf("result %+v", res)
	}

	te = newTestEnv(t)
	if code := te.run(t.Context(), "bench", "--addr", addr, "--requests", "100", "--warmup", "0s", "-q"); code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, te.stderr.String())
	}
	if out := te.stdout.String(); !strings.Contains(out, "closed loop") || !strings.Contains(out, "P99 ms") {
		t.Fatalf("table output:\n%s", out)
	}
}

func TestBenchCommandRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--ratio", "1:x"},
		{"--dist", "normal"},
		{"--pipeline", "0"},
		{"--zipf-s", "0.5", "--dist", "zipfian"},
		{"--cluster", "maybe"},
	} {
		te := newTestEnv(t)
		if code := te.run(t.Context(), append([]string{"bench"}, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %s)", args, code, exitUsage, te.stderr.String())
		}
	}
}
