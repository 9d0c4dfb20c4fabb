package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/storage/applog"
	"github.com/ringkv/ringkv/internal/testutil"
)

func testConfig(t *testing.T, id, dir string, join ...string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.NodeID, cfg.DataDir, cfg.Join = id, dir, join
	cfg.ClientAddr, cfg.HTTPAddr, cfg.PeerAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RepairInterval = 0
	cfg.RepairRate = 0
	cfg.HintedHandoff = false
	cfg.EventLoops = -1
	return cfg
}

func startServer(t *testing.T, cfg config.Config) *Server {
	t.Helper()
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

func upAndNormal(s *Server, want int) error {
	n := 0
	for _, m := range s.Status().Nodes {
		if m.Up && m.State == "normal" {
			n++
		}
	}
	if n != want {
		return fmt.Errorf("%s sees %d nodes up and normal, want %d", s.cfg.NodeID, n, want)
	}
	return nil
}

// A node started over a salvaged store is not ready and refuses client
// requests until a repair restored its ranges; QUORUM reads through the
// others stay right meanwhile, though one of the two other replicas missed
// the writes; once restored the node's own replica holds every acknowledged
// key. (Whether those reads would have asked the salvaged node is up to the
// coordinator's replica order, so they do not prove its refusal of peer
// reads; internal/salvage's TestRefusesPeerReads does.)
func TestSalvagedNodeRestoresBeforeReady(t *testing.T) {
	const keys = 300
	root := t.TempDir()
	n1cfg := testConfig(t, "n1", filepath.Join(root, "n1"))
	n1 := startServer(t, n1cfg)
	seed := n1.Addrs().Gossip
	n2 := startServer(t, testConfig(t, "n2", filepath.Join(root, "n2"), seed))
	n3cfg := testConfig(t, "n3", filepath.Join(root, "n3"), seed)
	n3 := startServer(t, n3cfg)
	for _, s := range []*Server{n1, n2, n3} {
		testutil.Eventually(t, 60*time.Second, func() error { return upAndNormal(s, 3) })
	}
	ctx := t.Context()

	// n3 misses the writes: they land on n1 and n2 only.
	n3gossip := n3.Addrs().Gossip
	n3.Shutdown(ctx)
	testutil.Eventually(t, 60*time.Second, func() error { return upAndNormal(n2, 2) })
	for i := range keys {
		k := fmt.Appendf(nil, "k%d", i)
		if _, _, err := n2.coord.Put(ctx, k, replication.Mutation{Value: fmt.Appendf(nil, "v%d", i)}, replication.Quorum); err != nil {
			t.Fatalf("write %s: %v", k, err)
		}
	}
	n3cfg.GossipAddr, n3cfg.Join = n3gossip, nil
	n3 = startServer(t, n3cfg)

	// n1 loses everything, as a salvage that cut its log at the start would.
	n1gossip := n1.Addrs().Gossip
	n1.Shutdown(ctx)
	if err := os.RemoveAll(n1cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	salvaged := storeSalvaged
	storeSalvaged = func(*storage.Store) []applog.SalvageReport {
		return []applog.SalvageReport{{Path: "000001.log", Offset: 4096, MovedTo: "000001.log.corrupt"}}
	}
	hold := make(chan struct{})
	restoreHold = hold // n1 restores only once the reads below are done
	t.Cleanup(func() { storeSalvaged, restoreHold = salvaged, nil })
	// No --join: an empty node that joins streams its ranges, which would
	// restore it without the salvage's repair; a salvaged node keeps its state.
	n1cfg.GossipAddr, n1cfg.Join = n1gossip, nil
	n1 = startServer(t, n1cfg)
	for _, s := range []*Server{n1, n2, n3} {
		testutil.Eventually(t, 60*time.Second, func() error { return upAndNormal(s, 3) })
	}
	// Asked once the cluster is up: readiness answers its first failing
	// check, and until n1 sees its peers that is quorum, not the salvage.
	if err := n1.readyCheck(); err == nil || !strings.Contains(err.Error(), "after salvaging 000001.log at offset 4096") || readyReason(err) != reasonSalvage {
		t.Fatalf("readyCheck of a salvaged node: %v", err)
	}
	gate := n1.clientGate(n1.coord)
	if _, _, err := gate.Get(ctx, []byte("k1"), replication.Quorum); !errors.Is(err, replication.ErrUnavailable) {
		t.Fatalf("a client read through a restoring node: %v, want unavailable", err)
	}
	if _, _, err := gate.GetLocal([]byte("k1")); !errors.Is(err, replication.ErrUnavailable) {
		t.Fatalf("a client read of a restoring node's own replica: %v, want unavailable", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for i := range keys {
		wg.Go(func() {
			rec, found, err := n3.coord.Get(ctx, fmt.Appendf(nil, "k%d", i), replication.Quorum)
			if err != nil || !found || string(rec.Value) != fmt.Sprintf("v%d", i) {
				errs <- fmt.Errorf("QUORUM read of k%d through n3 while n1 restores: %q %v %v", i, rec.Value, found, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n1.salvageReady() == nil {
		t.Fatal("n1 finished restoring while held")
	}
	close(hold)

	testutil.Eventually(t, 60*time.Second, n1.readyCheck)
	for i := range keys {
		rec, found, err := n1.coord.GetLocal(fmt.Appendf(nil, "k%d", i))
		if err != nil || !found || string(rec.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("n1's own replica after the restore: k%d = %q %v %v", i, rec.Value, found, err)
		}
	}
}
