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
//
// The Coordinator drives a node's part in a change: every tick it plans,
// waits until every up node reports the same view of the member states and a
// settle time has passed since, pulls, and then moves the change on (joining
// → normal, leaving → removed, a dead node marked removed). It takes the
// node's membership, topology, peer calls and store as small interfaces and
// its time from a clock.Clock, so its tests run it against fakes and a manual
// clock. InitialState decides, from the state persisted under NodeStateKey,
// what a starting node announces, so a restart resumes a change.
package rebalance
