// Package antientropy keeps the replicas of every ring range identical in the
// background (design §6): each node hashes the records it stores into a fixed
// grid of buckets, updated in O(1) on every apply, and two replicas of a range
// compare a root, then the bucket hashes, then exchange only the records of the
// buckets that differ.
//
// # Buckets
//
// The grid is global: bucket b holds the tokens whose top 16 bits are b, and
// its hash is the XOR of RecordHash(key, version) (hashOf: with a counter's
// state) over the records stored there. Because a bucket is defined by token alone, not by the ring, a
// membership change never invalidates a hash: the same Tree serves every ring
// the node will ever see, and a join or decommission costs no rebuild. A ring
// range covers a run of whole buckets plus, at each end, part of a bucket it
// shares with its neighbour; those two partial leaves are hashed on demand by a
// scan of just that sub-range (at 65536 buckets they hold 1/65536 of the node's
// records each). The leaves of a range (whole buckets and the partial ends) are
// a pure function of the range's bounds, so both replicas agree on them
// without negotiation. The hash of a record ignores its value and its
// tombstone flag: an expiry conversion keeps the version, so it leaves the
// hash unchanged, exactly as the record's meaning is unchanged.
//
// # Rebuild and concurrent applies
//
// The tree lives in memory and is rebuilt by a scan when the node starts. The
// Tree is installed before the scan, so every apply from then on XORs its
// delta into its bucket. The scan then visits the buckets in chunks: for each
// bucket it remembers the hash v0 and the bucket's change counter, scans the
// chunk (one Pebble snapshot), and XORs (v0 ^ scanned) into the bucket, which
// leaves it at "scanned, plus every delta that arrived during the scan". If the
// counter moved during the scan, the bucket is rescanned on its own. A write
// committed before the snapshot but notified after the counter check would be
// counted twice; storage rules it out by taking every scan's snapshot while
// no change sits between its commit and its notification, so a snapshot holds
// exactly the notified changes (TestRebuildDuringWrites caught the double
// count under -race on a loaded box). Any drift that remains (a bug, a
// corrupted leaf) heals itself: when a bucket differs from a peer's but the
// record-level exchange finds no record to repair, both sides rehash it.
//
// # Tombstones
//
// A tombstone is kept gc-grace after its death (package storage). A node that
// was down longer than that may hold values whose deletes the others have
// already purged, and anti-entropy would spread them back: CheckRejoin refuses
// to start such a node, and the operator wipes and repairs it.
package antientropy
