package server

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ringkv/ringkv/internal/storage"
)

// This file stands in for the storage API of the append-only log engine,
// which lands from the engine branch (internal/storage/applog):
// storage.Options.Salvage, (*storage.Store).Salvaged() []applog.SalvageReport
// and *applog.CorruptError, which the Pebble engine's WAL check returns too.
// Each function says the body it takes once that API is here; nothing else
// in the server changes.

// setSalvage asks the store to set a corrupt file aside at open rather than
// refuse to open.
//
// At merge: opts.Salvage = on
func setSalvage(opts *storage.Options, on bool) { _, _ = opts, on }

// salvagedFiles lists what the store set aside when it opened.
//
// At merge:
//
//	var out []salvageReport
//	for _, r := range st.Salvaged() {
//		out = append(out, salvageReport{File: r.Path, Offset: r.Offset, Aside: r.MovedTo})
//	}
//	return out
func salvagedFiles(st *storage.Store) []salvageReport { _ = st; return nil }

// corruption reports whether err is the store refusing to open over
// corruption, and where: offset -1 when unknown, file "" when unknown.
//
// At merge, before the Pebble check below (which stays for corrupt sstables):
//
//	var ce *applog.CorruptError
//	if errors.As(err, &ce) {
//		return ce.Path, ce.Offset, true
//	}
func corruption(err error) (file string, offset int64, ok bool) {
	if errors.Is(err, pebble.ErrCorruption) {
		return "", -1, true
	}
	return "", 0, false
}
