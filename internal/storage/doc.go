// Package storage keeps one node's data: the replicated records, the index
// that drives TTL expiry and tombstone GC, and raw sub-keyspaces that other
// components (hinted handoff, node metadata) own.
//
// Store does what every engine shares (validation, key locks, apply-if-newer,
// deadlines, the OnApply hook, counters) and keeps the data in one of two
// engines (engine.go): the memory engine (mem_engine.go, the default) holds
// every record in a memindex.Index and makes writes durable in an
// applog.Log; the Pebble engine (pebble_engine.go) holds them in Pebble with
// a row cache in front, for data larger than memory.
//
// # Pebble key layout
//
// Every Pebble key starts with a one-byte prefix that names its keyspace:
//
//	'r' token(8, BE) key        -> record.Encode()   records
//	'x' deadline(8, BE) token(8, BE) key -> empty    deadline index
//	'h' ...                     -> caller-defined    hints (Keyspace)
//	'm' ...                     -> caller-defined    metadata (Keyspace)
//
// token is ring.Token(key). Ordering records by token first makes every token
// range one contiguous Pebble key range, which SCAN cursors, range streaming and
// the Merkle buckets of anti-entropy all rely on.
//
// The deadline index holds one entry per record that has to change on its own
// at some instant: a live record with an expiry is indexed at ExpireAt (when it
// turns into a tombstone), and a tombstone is indexed at its death time plus
// GCGrace (when it may be purged). The death time is the later of the version's
// physical time and ExpireAt, so a delete dies when it was written and an
// expired record when it expired. Taking the later of the two keeps a record
// that was written already expired around for a full grace period after the
// write, long enough for any older copy still in flight (a hint, a stream) to
// meet it. The index entry is written in the same pebble.Batch as the record,
// so the two never disagree after a crash.
//
// # Concurrency
//
// Writes to one key are serialised by a striped mutex chosen by the key's
// token; writes to different keys run in parallel and Pebble group-commits
// their WAL syncs. ApplyBatch takes the stripes of all its keys, in
// ascending order, and commits its writes as one Pebble batch. Reads take no
// key lock: a Pebble read sees whole batches.
package storage
