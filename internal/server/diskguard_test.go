package server

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
)

type countingHinter struct{ n atomic.Int64 }

func (h *countingHinter) Hint(string, []byte, *record.Record) { h.n.Add(1) }

// On a full disk the node's write guard refuses writes, readiness and the
// status's alarms say why, and hints (which bypass the store's guard) are
// dropped.
func TestDiskGuardOnFullDisk(t *testing.T) {
	var avail atomic.Uint64
	avail.Store(1 << 30)
	s := &Server{cfg: config.Default()}
	s.guard = clock.NewGuard(clock.System{}, time.Second)
	s.disk = diskspace.NewGuard(diskspace.Config{Dir: t.TempDir(), Reserve: 10 << 20,
		Statfs: func(string) (uint64, uint64, error) { return avail.Load(), 2 << 30, nil }}, prometheus.NewRegistry())
	t.Cleanup(s.disk.Close)
	h := &countingHinter{}
	hinter := s.guardHints(h)
	rec := &record.Record{Value: []byte("v")}
	write := storage.Guarded{KeyBytes: 1, Bytes: len("k") + len(rec.Value)}

	if err := s.storeGuard(write); err != nil || s.diskReady() != nil {
		t.Fatalf("free disk: guard %v, ready %v", err, s.diskReady())
	}
	hinter.Hint("n2", []byte("k"), rec)
	if h.n.Load() != 1 {
		t.Fatal("a hint on a free disk was not stored")
	}

	avail.Store(1 << 20)
	s.disk.Monitor().Refresh()
	if err := s.storeGuard(storage.Guarded{Tombstone: true, KeyBytes: 1, Bytes: len("k")}); !errors.Is(err, diskspace.ErrDiskFull) {
		t.Fatalf("a delete on a full disk: %v", err)
	}
	if err := s.diskReady(); err == nil || !strings.HasPrefix(err.Error(), "disk full: ") || readyReason(err) != reasonDisk {
		t.Fatalf("readiness on a full disk: %v", err)
	}
	if a := s.alarms(); len(a) != 1 || !strings.HasPrefix(a[0], "disk full") {
		t.Fatalf("alarms on a full disk: %q", a)
	}
	hinter.Hint("n2", []byte("k"), rec)
	if h.n.Load() != 1 {
		t.Fatal("a hint was stored on a full disk")
	}
}
