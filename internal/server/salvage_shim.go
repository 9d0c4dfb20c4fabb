package server

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ringkv/ringkv/internal/storage"
)

// This file stands in for the storage API of the append-only log engine,
// which lands from another branch: storage.Options.Salvage,
// (*storage.Store).Salvaged() []applog.SalvageReport and *applog.CorruptError.
// Each function says the body it takes once that API is here; nothing else
// in the server changes.

// setSalvage asks the store to set a corrupt file aside at open rather than
// refuse to open.
//
// At merge: opts.Salvage = on
func setSalvage(opts *storage.Options, on bool) { _, _ = opts, on }

// salvagedFiles lists what the store set aside when it opened.
//
// At merge: for each r in st.Salvaged(), a salvageReport{File: r.File,
// Offset: r.Offset, Aside: r.MovedTo} (whatever applog.SalvageReport names
// these fields).
func salvagedFiles(st *storage.Store) []salvageReport { _ = st; return nil }

// corruption reports whether err is the store refusing to open over
// corruption, and where: offset -1 when unknown, file "" when unknown.
//
// At merge: var ce *applog.CorruptError; if errors.As(err, &ce) { return
// ce.File, ce.Offset, true }, before the Pebble check below (kept while
// Pebble remains an engine).
func corruption(err error) (file string, offset int64, ok bool) {
	if errors.Is(err, pebble.ErrCorruption) {
		return "", -1, true
	}
	return "", 0, false
}
