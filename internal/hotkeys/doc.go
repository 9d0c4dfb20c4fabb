// Package hotkeys finds the keys that take a disproportionate share of a node's
// requests and offers an opt-in cache for them (design §10).
//
// # Tracking
//
// A Tracker estimates each key's request rate over a sliding window and keeps
// the top keys. The request path calls Observe on every read and write, so
// Observe is built to cost tens of nanoseconds and allocate nothing:
//
//   - Keys already known to be heavy (the candidates, at most 4×K of them) are
//     found in an immutable, open-addressed table and counted exactly with one
//     atomic add.
//   - Every other key goes to a count-min sketch: four counters, one per row,
//     packed in one 64-byte block so that an update touches a single cache line.
//     A key whose sketch estimate for the current sub-window reaches the
//     admission threshold is queued (under a small lock, the only allocation)
//     to become a candidate.
//
// The window is split into sub-windows (rotating buckets); each has its own
// sketch plane and its own slot in every candidate's counters, and the oldest
// is cleared as the window slides, so an old hot key is forgotten one window
// after its traffic stops. Refresh, run every RefreshInterval by Start (or by a
// test after moving a manual clock), rotates the buckets, ranks the candidates
// by their window count (sketch estimate plus exact count), evicts the weakest
// back into the sketch (their counts are folded in, so a key that returns is
// judged on its whole window), and publishes a new snapshot that Top and IsHot
// read without locks. Memory is fixed by the configuration: (Buckets+1) ×
// SketchBlocks × 64 bytes for the sketch plus 4×K candidates.
//
// Estimates are upper bounds up to the sketch's collision noise and to races
// at bucket boundaries (an update racing a rotation may land in a neighbouring
// sub-window or, for a key being evicted, be lost); they rank keys, they are
// not billing counters.
//
// # Cache
//
// A Cache holds recently read records of hot keys on the coordinator, so a
// burst of reads of one key need not reach its replicas every time. It is off
// unless a TTL is configured (--hot-cache-ttl), and its staleness is bounded:
//
//   - A record that Get returns is the result of a read that began less than
//     TTL ago, by the node's clock. A write acknowledged through ANOTHER node
//     before that read began is reflected as the read's consistency level
//     guarantees; a write acknowledged through another node later is not seen
//     by cache hits for up to TTL.
//   - A write through THIS node calls Invalidate once it has completed
//     (acknowledged, failed or timed out alike, since it may have landed) and
//     before it is answered. After Invalidate returns, Get no longer returns any
//     record read before it: the entry is dropped, and a fill whose read began
//     before the invalidation (its Ticket is older) is discarded by Put.
//
// Cached records share their value bytes between callers, who must not modify
// them. Expiry is the caller's business as for any read: a cached record keeps
// its ExpireAt and the caller checks Live.
package hotkeys
