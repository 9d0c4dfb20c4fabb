// Package membership tells a ringkv node who is in the cluster. It wraps
// hashicorp/memberlist (SWIM gossip and failure detection) and adds what the
// ring needs and memberlist lacks: per-node metadata (addresses, zone,
// lifecycle state) and a memory of every node ever seen, so a node that goes
// down keeps its place in the ring until an operator removes it.
package membership
