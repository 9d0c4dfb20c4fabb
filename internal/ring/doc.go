// Package ring is ringkv's consistent-hash ring: tokens derived from node ids,
// replica placement for a key, and ownership of token ranges. It is pure: no I/O,
// no goroutines, so every node computes the same ring from the same member list.
package ring
