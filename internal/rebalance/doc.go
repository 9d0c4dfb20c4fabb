// Package rebalance moves token ranges between nodes when the ring changes:
// a node joining, a node being decommissioned, a dead node being removed.
//
// Streaming is pull-based. Every node compares the ring in force (the
// current owners) with the ring it is heading to (the future owners) and
// Plan lists the ranges it will own but does not own yet. It pulls each one,
// page by page, from the replicas that give it up, or from every live
// current replica when one of those is down, and applies what it receives
// with storage's apply-if-newer, so a page applied twice or out of order does
// no harm. Progress is persisted per range and source in the store's metadata
// keyspace, so a pull resumes where it stopped after either side restarts.
//
// Why those sources suffice: an acknowledged QUORUM write is on a majority of
// the current replica set. If it is not on a replica leaving the set, it is on
// a majority of those staying, which are all in the future set; if it is, the
// puller copies it from there. Either way a majority of the future set holds
// it once the pull completes. When a leaving replica is down that argument
// fails, so the puller merges every live current replica instead, and needs a
// majority of them.
package rebalance
