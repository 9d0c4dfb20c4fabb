package diskspace

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/testutil/promtest"
)

// On a full disk the guard refuses writes, deletes included, its readiness
// says why, and hints are dropped and counted; freed, it admits them again.
func TestGuardOnFullDisk(t *testing.T) {
	fs := &fakeFS{avail: 1 << 30, total: 2 << 30}
	reg := prometheus.NewRegistry()
	g := NewGuard(Config{Dir: t.TempDir(), Reserve: 10 << 20, Statfs: fs.statfs}, reg)
	if g == nil {
		t.Fatal("no guard over a disk that can be measured")
	}
	t.Cleanup(g.Close)

	if err := g.Check(len("kv")); err != nil || g.Err() != nil || !g.AdmitHint(len("kv")) {
		t.Fatalf("free disk: check %v, ready %v", err, g.Err())
	}
	fs.set(1 << 20)
	g.Monitor().Refresh()
	if err := g.Check(len("k")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("a write on a full disk: %v", err)
	}
	if err := g.Err(); err == nil || !strings.HasPrefix(err.Error(), "disk full: ") {
		t.Fatalf("readiness on a full disk: %v", err)
	}
	if g.AdmitHint(len("kv")) {
		t.Fatal("a hint was admitted on a full disk")
	}
	for name, want := range map[string]float64{
		"ringkv_disk_full_hints_dropped_total": 1, "ringkv_disk_full": 1,
		"ringkv_disk_free_bytes": 1 << 20, "ringkv_disk_reserve_bytes": 10 << 20,
	} {
		if v := promtest.Value(t, reg, name); v != want {
			t.Errorf("%s on a full disk: %v, want %v", name, v, want)
		}
	}

	fs.set(1 << 30)
	g.Monitor().Refresh()
	if err := g.Check(len("k")); err != nil || !g.AdmitHint(len("kv")) {
		t.Fatalf("freed disk: %v", err)
	}
}

// A disk that cannot be measured leaves the node unguarded, not stopped:
// the nil guard admits everything.
func TestGuardUnmeasurable(t *testing.T) {
	fs := &fakeFS{err: errors.New("statfs: not supported")}
	g := NewGuard(Config{Dir: t.TempDir(), Statfs: fs.statfs}, prometheus.NewRegistry())
	if g != nil {
		t.Fatal("a guard over a disk that cannot be measured")
	}
	if g.Check(1<<40) != nil || g.Err() != nil || !g.AdmitHint(1<<40) || g.Monitor() != nil {
		t.Fatal("the nil guard refused something")
	}
	g.Close()
}
