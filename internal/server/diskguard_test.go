package server

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
)

type countingHinter struct{ n atomic.Int64 }

func (h *countingHinter) Hint(string, []byte, *record.Record) { h.n.Add(1) }

// On a full disk the guard refuses writes, readiness says why, and hints
// (which bypass the store's guard) are dropped and counted.
func TestDiskGuardOnFullDisk(t *testing.T) {
	var avail atomic.Uint64
	avail.Store(1 << 30)
	mon, err := diskspace.New(diskspace.Config{Dir: t.TempDir(), Reserve: 10 << 20,
		Statfs: func(string) (uint64, uint64, error) { return avail.Load(), 2 << 30, nil }})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	s.disk.mon = mon
	s.disk.hintsDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	h := &countingHinter{}
	hinter := s.guardHints(h)
	rec := &record.Record{Value: []byte("v")}

	if err := s.diskGuard(storage.Guarded{Bytes: len("k") + len(rec.Value)}); err != nil || s.diskReady() != nil {
		t.Fatalf("free disk: guard %v, ready %v", err, s.diskReady())
	}
	hinter.Hint("n2", []byte("k"), rec)
	if h.n.Load() != 1 {
		t.Fatal("a hint on a free disk was not stored")
	}

	avail.Store(1 << 20)
	mon.Refresh()
	if err := s.diskGuard(storage.Guarded{Tombstone: true, Bytes: len("k")}); !errors.Is(err, diskspace.ErrDiskFull) {
		t.Fatalf("a delete on a full disk: %v", err)
	}
	if err := s.diskReady(); err == nil || !strings.HasPrefix(err.Error(), "disk full: ") {
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
