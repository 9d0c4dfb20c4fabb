// Package ring is ringkv's consistent-hash ring: tokens derived from node ids,
// replica placement for a key, and ownership of token ranges. A key's token
// carries its Redis Cluster hash slot in the high bits and node tokens sit on
// slot boundaries, so the ring can be described exactly as slot ranges
// (SlotRanges), which is what CLUSTER SLOTS serves. It is pure: no I/O, no
// goroutines, so every node computes the same ring from the same member list.
package ring
