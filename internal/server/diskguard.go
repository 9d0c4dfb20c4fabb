package server

import (
	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
)

// startDiskGuard starts the data disk's guard (diskspace.Guard) before
// storage opens, so that a node restarted on a full disk refuses writes from
// its first request on. An in-memory node, or one on a test's filesystem
// (WithFS), has no disk to guard.
func (s *Server) startDiskGuard() {
	if s.cfg.InMemory || s.seams.fs != nil {
		return
	}
	s.disk = diskspace.NewGuard(diskspace.Config{
		Dir: s.cfg.DataDir, Reserve: uint64(s.cfg.DiskReserve),
		Logger: s.log.With("component", "diskspace"),
	}, s.reg)
}

// diskReady is the readiness check for the data disk.
func (s *Server) diskReady() error {
	if err := s.disk.Err(); err != nil {
		return &notReady{reason: reasonDisk, err: err}
	}
	return nil
}

// guardHints keeps hints off a full disk: the hint queue writes to the store
// directly, not through the write guard (storeGuard).
func (s *Server) guardHints(h replication.Hinter) replication.Hinter {
	if s.disk == nil {
		return h
	}
	return diskHints{h: h, disk: s.disk}
}

type diskHints struct {
	h    replication.Hinter
	disk *diskspace.Guard
}

func (d diskHints) Hint(target string, key []byte, rec *record.Record) {
	if d.disk.AdmitHint(len(key) + len(rec.Value)) {
		d.h.Hint(target, key, rec)
	}
}
