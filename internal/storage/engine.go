package storage

import (
	"fmt"
	"sync"

	"github.com/ringkv/ringkv/internal/record"
)

// Engine names, the values of Options.Engine and the --engine flag.
const (
	// EngineMemory keeps every record in memory behind a hash index and
	// makes writes durable with an append-only log (mem_engine.go). It is
	// the default: a write is one hash lookup and one log append.
	EngineMemory = "memory"
	// EnginePebble keeps records in Pebble with a row cache in front
	// (pebble_engine.go), for data sets larger than memory.
	EnginePebble = "pebble"
)

// engine is what Store keeps its data in. Store does everything the engines
// share once: validation and Options.Guard, key locks, apply-if-newer
// admission, deadlines, OnApply, counters and the gate. An engine stores
// and finds, and keeps its deadline index.
//
// Store calls read, write and the expiry methods for a key with its key lock
// held (write: the locks of every key it changes), so an engine never sees
// two writes of one key at once; get, scan and the raw keyspaces run without
// key locks and must be safe concurrently with everything. Store calls
// nothing after close.
type engine interface {
	// get returns key's stored record for Store.Get; the record is the
	// caller's to keep. The memory engine's needs no key lock; the Pebble
	// engine's fills its row cache and so runs under the key lock
	// (Store.getPebble).
	get(token uint64, key []byte) (record.Record, bool, error)
	// read is get under key's lock: the read before a write.
	read(token uint64, key []byte) (record.Record, bool, error)
	// peek is read without the record's Value (nil): what a write needs
	// to decide and account for itself, without copying the old value out.
	peek(token uint64, key []byte) (record.Record, bool, error)
	// write makes every change durable (per the SyncMode, when durable is
	// true; expiry changes pass false, see expireEntryLocked) and then
	// visible to get and scan, all of them or none.
	write(cs []change, durable bool) error
	// due takes out of the deadline index up to limit entries due at or
	// before now. An entry may be stale (its record changed since); Store
	// checks it against the record and calls dropDue for those.
	due(now int64, limit int) ([]dueEntry, error)
	dropDue(e dueEntry) error
	// scan calls fn for each record with from <= token < to (to == 0: the
	// end of the ring) in (token, key) order. hold is locked while the
	// engine takes each consistent view (all of it, or one partition), so
	// that the view holds exactly the changes OnApply has reported.
	scan(from, to uint64, hold sync.Locker, fn func(token uint64, key []byte, rec *record.Record) error) error
	// count returns the number of stored records, once, at open.
	count() int64
	// expiring returns the number of stored values with an expiry, once,
	// at open (INFO's keyspace "expires").
	expiring() int64
	// prefetch warms the CPU cache for the records of these tokens.
	prefetch(tokens []uint64)
	// flush makes every write so far durable.
	flush() error
	// memoryUsed is the memory the engine's data holds, for MaxMemory.
	memoryUsed() int64
	metrics(m *Metrics)
	// The raw keyspaces: see Keyspace.
	rawGet(prefix byte, k []byte) ([]byte, bool, error)
	rawSet(prefix byte, k, v []byte) error
	rawDelete(prefix byte, k []byte) error
	rawIterate(prefix byte, from []byte, fn func(k, v []byte) error) error
	close() error
}

// change is one record change handed to engine.write: rec replaces prev
// (found tells whether there was one), or, with rec nil, the record is
// purged.
type change struct {
	token uint64
	key   []byte
	rec   *record.Record
	prev  *record.Record
	found bool
}

// dueEntry is a deadline index entry: key's record must change by itself at
// deadline (ms). ik is the Pebble engine's index key.
type dueEntry struct {
	deadline int64
	token    uint64
	key      []byte
	ik       []byte
}

// newEngine opens the engine opts name.
func newEngine(opts *Options, ctrs *counters) (engine, error) {
	switch opts.Engine {
	case EngineMemory:
		return openMemEngine(opts)
	case EnginePebble:
		return openPebbleEngine(opts, ctrs)
	}
	return nil, fmt.Errorf("storage: unknown engine %q (want %s or %s)", opts.Engine, EngineMemory, EnginePebble)
}

// write hands cs to the engine. It calls the engines' write through their
// concrete types: through the interface the compiler must assume the
// changes escape, and every Apply paid three allocations (its record, the
// previous one and the change) for it.
func (s *Store) write(cs []change, durable bool) error {
	switch e := s.eng.(type) {
	case *memEngine:
		return e.write(cs, durable)
	case *pebbleEngine:
		return e.write(cs, durable)
	}
	panic(fmt.Sprintf("storage: engine %T not in Store.write", s.eng))
}
