package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/testutil"
)

// Issue 29 case 4: a node whose log is overwritten with random bytes refuses
// to start, naming the file and --salvage; started with --salvage it stays
// not ready (and refuses clients) while a replica it must compare with is
// down, and once it has repaired every range from its replicas it is ready
// and holds every acknowledged key in its own replica.
func TestCorruptLogRefusesStartSalvageRestores(t *testing.T) {
	const keys = 2000
	// The memory engine, named rather than left to the default: --salvage
	// is its alone (a Pebble store refuses a corrupt WAL but cannot salvage).
	nodes := startCluster(t, 3, "--engine", "memory", "--repair-interval=0", "--repair-rate=0")
	n1, n2 := nodes[0], nodes[1]
	writeMany(t, nodes[1].redis(withLevel("QUORUM")), "c", keys)
	if err := n1.Stop(); err != nil {
		t.Fatal(err)
	}
	log := biggestLog(t, n1.DataDir)
	corrupt(t, log)

	n1.StartNoWait()
	select {
	case <-n1.Exited():
	case <-time.After(60 * time.Second):
		t.Fatalf("n1 started over a corrupt log:\n%s", n1.LogTail())
	}
	out := n1.LogTail()
	if n1.ExitCode() == 0 || !strings.Contains(out, filepath.Base(log)) || !strings.Contains(out, "--salvage") {
		t.Fatalf("n1 over a corrupt log exited %d; want non-zero, naming %s and --salvage:\n%s",
			n1.ExitCode(), filepath.Base(log), out)
	}

	// With a replica down the restore cannot finish: n1 stays not ready.
	n2.Kill()
	waitDown(t, nodes[2], "n2")
	n1.Flags = append(n1.Flags, "--salvage")
	n1.StartNoWait()
	testutil.Eventually(t, 60*time.Second, func() error {
		code, body, err := nodeReadyz(n1)
		if err != nil || code != 503 || !strings.Contains(body, "restoring") || !strings.Contains(body, "after salvaging") {
			return fmt.Errorf("readyz %d %q %v", code, body, err)
		}
		return nil
	})
	if v, err := metricValue(n1, "ringkv_salvage_restoring"); err != nil || v != 1 {
		t.Fatalf("ringkv_salvage_restoring = %v, %v", v, err)
	}
	if err := n1.redis().Get(t.Context(), "c1").Err(); err == nil || !strings.HasPrefix(err.Error(), "LOADING") {
		t.Fatalf("GET through a restoring node: %v, want LOADING", err)
	}

	n2.Join = []string{nodes[2].Gossip}
	n2.Start()
	n1.WaitReady()
	if v, err := metricValue(n1, "ringkv_salvage_restoring"); err != nil || v != 0 {
		t.Fatalf("ringkv_salvage_restoring once ready = %v, %v", v, err)
	}
	for i := range keys {
		k := fmt.Sprintf("c%d", i)
		if v, ok := localValue(t, n1, k); !ok || v != fmt.Sprintf("v%d", i) {
			t.Fatalf("after the salvage and restore n1's own replica holds %s = %q, %v", k, v, ok)
		}
	}
}

// biggestLog returns the largest log file in dir (the memory engine's
// log-*.seg segments, Pebble's *.log WAL): the one holding the records just
// written.
func biggestLog(t *testing.T, dir string) string {
	t.Helper()
	var best string
	var size int64 = -1
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".seg") || strings.HasSuffix(p, ".log")) {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Size() > size {
			best, size = p, fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if size <= 0 {
		t.Fatalf("no non-empty log file (*.seg, *.log) in %s", dir)
	}
	return best
}

// corrupt overwrites a file with random bytes of the same size.
func corrupt(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, fi.Size())
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
