// Package applog is the memory engine's durability: a group-committed,
// checksummed, append-only log of opaque entries in segment files, plus
// snapshot files that let compaction drop old segments.
//
// # On-disk format
//
// The log directory holds
//
//	LOCK                    held while a Log is open (one process per directory)
//	log-000000000001.seg    segments, numbered from 1, appended in order
//	snap-000000000007.snap  at most one snapshot: every live entry of segments <= 7
//	*.tmp                   a snapshot being written; removed on open
//	*.corrupt-<unix time>   a file Salvage set aside; never read again, never deleted
//
// Every segment and snapshot starts with a 32-byte header:
//
//	[4]  magic "RKVL"
//	[2]  format version (1), little-endian like every integer here
//	[1]  kind: 1 segment, 2 snapshot
//	[1]  zero
//	[8]  number: the segment's own number, or the snapshot's upTo
//	[8]  segment only: the valid length of segment number-1, 0 when unknown
//	[4]  zero
//	[4]  CRC-32C of the 28 bytes before it
//
// followed by frames
//
//	[4] length of the payload   [4] CRC-32C over the length bytes and the payload   payload
//
// A snapshot ends with a 16-byte footer: [8] entry count, [4] magic "RKVE",
// [4] CRC-32C of the 12 bytes before it, so that a snapshot cut short at a frame
// boundary is still detected.
//
// # Why a segment records its predecessor's length
//
// vfs.FS has no truncate, and truncating in place is the one step of recovery
// that destroys bytes. Instead the log never appends to a file it did not
// create in this process: Open starts a new segment, and a failed write or fsync
// rotates to a new one. The new segment's header records how many bytes of the
// previous segment are valid (the previous segment is fsynced first), so the
// torn or failed bytes past that point are never read again, and are reclaimed
// when compaction deletes the segment. This is the "truncation" the log's
// metrics and warnings speak of.
//
// # Replay
//
// Entries are last-writer-wins records to the engine, so replay order does not
// matter: the snapshot (if any), then every segment after its upTo. Only one
// kind of damage is repaired without the operator: a torn tail of the last
// segment, that is a final frame that is incomplete or fails its checksum with
// no valid frame after it, or with only a crash hole (a run of zero sectors, the
// unsynced blocks a power loss leaves) between it and a later valid frame. It is
// dropped, logged at WARN with file, offset and bytes, and counted. Anything
// else returns *CorruptError and changes nothing on disk, unless
// Options.Salvage asks to keep the valid prefix and set the file aside.
package applog
