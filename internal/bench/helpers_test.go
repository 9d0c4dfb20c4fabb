package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/server"
	"github.com/ringkv/ringkv/internal/testutil"
)

// tbWriter sends log lines to t.Log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(string(p))
	return len(p), nil
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startCluster starts n real in-memory ringkv nodes in this process on free
// loopback ports, joined into one cluster, and returns their client addresses
// once every node sees all n up and normal.
func startCluster(tb testing.TB, n int, mutate func(*config.Config)) []string {
	tb.Helper()
	var (
		clients, https []string
		join           []string
		password       string
	)
	for i := range n {
		c := config.Default()
		c.NodeID = fmt.Sprintf("bench%d", i+1)
		c.InMemory, c.DataDir = true, ""
		// server.Addrs reports the configured gossip address, not the bound
		// one, so the gossip port is picked here for the others to join.
		c.ClientAddr, c.HTTPAddr, c.PeerAddr, c.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", freeAddr(tb)
		c.Replicas = min(c.Replicas, n)
		c.Join = join
		if mutate != nil {
			mutate(&c)
		}
		if err := c.Validate(); err != nil {
			tb.Fatal(err)
		}
		password = c.Password
		s, err := server.New(c, testLogger(tb))
		if err != nil {
			tb.Fatal(err)
		}
		if err := s.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			ctx, cancel := contextWithTimeout(10 * time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				tb.Logf("shutdown %s: %v", c.NodeID, err)
			}
		})
		a := s.Addrs()
		clients, https = append(clients, a.Client), append(https, a.HTTP)
		if i == 0 {
			join = []string{a.Gossip}
		}
	}
	testutil.Eventually(tb, 30*time.Second, func() error {
		for _, h := range https {
			var st apitypes.ClusterStatus
			if err := getJSON(h, password, &st); err != nil {
				return err
			}
			normal := 0
			for _, nd := range st.Nodes {
				if nd.Up && nd.State == "normal" {
					normal++
				}
			}
			if normal != n {
				return fmt.Errorf("%s sees %d of %d nodes up and normal: %+v", h, normal, n, st.Nodes)
			}
		}
		return nil
	})
	return clients
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// getJSON reads /v1/cluster from addr, as the default user when password is set.
func getJSON(addr, password string, v any) error {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/cluster", nil)
	if err != nil {
		return err
	}
	if password != "" {
		req.Header.Set("Authorization", "Bearer "+password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
