// Package memindex is the in-memory hash index behind the memory engine: it
// maps a key's ring token and the key to opaque value bytes (the engine's
// encoded record) and keeps the garbage collector's work independent of how
// many keys it holds.
//
// # Layout
//
// The index is split into 1<<ShardBits shards by the token's high bits, so
// the tokens of one shard form one contiguous slice of the ring and a token
// range is enumerated by visiting the shards that intersect it: no sorted
// structure over all keys is kept, and the few shards visited are sorted on
// the fly.
//
// A shard is an open-addressing table of 8-byte slots (16 bits of the
// token, a location) with linear probing, and slabs ("chunks") that hold
// each entry as token(8) uvarint(len(key)) uvarint(len(val)) key val. A
// location is a chunk number and an offset, not a pointer: neither the tables nor the chunks contain a Go
// pointer, and on Linux both are mapped outside the Go heap (anonymous mmap),
// so a million keys cost the garbage collector nothing to mark and do not
// raise the heap target that paces it. A Go map of a million []byte values
// holds two million pointers the collector visits on every cycle.
//
// Keys with equal tokens get one slot each; a probe that meets a slot with its
// token's tag compares the token and key in the chunk and goes on when they
// differ. Tags and 64-bit tokens collide so rarely that a probe almost always
// touches one chunk entry, the one it wants.
//
// # Memory reclamation
//
// An overwrite or a delete leaves the old entry's bytes dead in its chunk.
// A shard compacts on its own, under its own lock, when its dead bytes exceed
// its live bytes and a floor: it copies the live entries into fresh chunks,
// rebuilds its table and unmaps the old chunks. Copying at most the live bytes
// once per as many dead bytes bounds the work to one copied byte per byte
// overwritten. A chunk whose entries all died is unmapped at once; a shard
// that empties gives back its table too. A shard's first chunk is small and
// grows, by compaction, up to ChunkSize, so the thousands of shards of a
// small data set do not each map a full chunk.
//
// Entries larger than a quarter of ChunkSize get a chunk of their own, which
// is unmapped when the entry dies, so a large value neither wastes the tail of
// a shared chunk nor waits for a compaction.
//
// # Concurrency
//
// Each shard has a read-write lock. Get and Range take it shared; Put and
// Delete exclusive. The engine above serialises writes to one key, so the
// shard lock only orders writes of different keys that share a shard. Chunks
// and tables are only ever unmapped under the exclusive lock, which is why
// readers need the lock even though they never write.
//
// Bytes handed out never alias chunk memory: Get copies into the caller's
// buffer, and Range passes slices of its own copy.
package memindex
