// Package peermethod is the one table of peer request methods: every method
// number a node sends on the peer transport, with the component that serves
// it. The numbers are the wire protocol between nodes of different versions:
// never renumber, only add. Each component's package names its methods after
// these constants and documents their payloads; the server routes a request
// to the owner its number falls to.
package peermethod

// Owner is the component that serves a range of methods.
type Owner string

// The owners, each with a block of 16 numbers, so that one can add methods
// without touching another's.
const (
	Replication Owner = "replication" // 0..15: coordinator ↔ replica
	AntiEntropy Owner = "antientropy" // 16..31: Merkle comparison and repair
	Rebalance   Owner = "rebalance"   // 32..47: range streaming, topology marks
	Stats       Owner = "stats"       // 64..79: dashboard figures (internal/server)
)

// Replication: internal/replication.
const (
	Apply      uint8 = 1  // key + record → applied, prev
	Get        uint8 = 2  // key → record
	Scan       uint8 = 3  // cursor + count → keys, covered-up-to
	Count      uint8 = 4  // → approximate record count
	ApplyBatch uint8 = 5  // writes → one status per write
	GetBatch   uint8 = 6  // keys → one record per key (older coordinators)
	ReadBatch  uint8 = 7  // keys, each whole or as a digest → one answer per key
	Time       uint8 = 8  // → the replica's wall clock, for the clock check
	Flush      uint8 = 14 // FLUSHALL's version barrier → applied
)

// Anti-entropy: internal/antientropy.
const (
	AERoot    uint8 = 16 // range → ready, root, leaf count
	AELeaves  uint8 = 17 // range → leaf hashes
	AEDigests uint8 = 18 // range + leaf indices → (key, record without value) per record
	AEFetch   uint8 = 19 // keys → (key, record) for those found, up to a size cap
	AEPush    uint8 = 20 // (key, record)... → number applied
	AERehash  uint8 = 21 // range + leaf indices → nothing; recompute those buckets
)

// Rebalance: internal/rebalance (wire types), served by internal/server.
const (
	RebalancePage   uint8 = 32 // segment + cursor + byte budget → records, next cursor
	RebalanceStatus uint8 = 33 // → view fingerprint, ranges left to pull
	RebalanceMark   uint8 = 34 // node id + state → mark it cluster-wide
)

// Stats: the dashboard (internal/server/dashboard.go).
const (
	NodeStats uint8 = 64 // → the node's dashboard figures
)

// Method is one row of the table.
type Method struct {
	Num   uint8
	Name  string
	Owner Owner
}

// All lists every method, for the collision test and for logs.
var All = []Method{
	{Apply, "Apply", Replication},
	{Get, "Get", Replication},
	{Scan, "Scan", Replication},
	{Count, "Count", Replication},
	{ApplyBatch, "ApplyBatch", Replication},
	{GetBatch, "GetBatch", Replication},
	{ReadBatch, "ReadBatch", Replication},
	{Time, "Time", Replication},
	{Flush, "Flush", Replication},
	{AERoot, "AERoot", AntiEntropy},
	{AELeaves, "AELeaves", AntiEntropy},
	{AEDigests, "AEDigests", AntiEntropy},
	{AEFetch, "AEFetch", AntiEntropy},
	{AEPush, "AEPush", AntiEntropy},
	{AERehash, "AERehash", AntiEntropy},
	{RebalancePage, "RebalancePage", Rebalance},
	{RebalanceStatus, "RebalanceStatus", Rebalance},
	{RebalanceMark, "RebalanceMark", Rebalance},
	{NodeStats, "NodeStats", Stats},
}

// OwnerOf returns the component whose block holds m; false for a number no
// block holds.
func OwnerOf(m uint8) (Owner, bool) {
	switch {
	case m < 16:
		return Replication, true
	case m < 32:
		return AntiEntropy, true
	case m < 48:
		return Rebalance, true
	case m >= 64 && m < 80:
		return Stats, true
	}
	return "", false
}
