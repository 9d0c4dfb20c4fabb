package record

import "sync/atomic"

// nodeNames caches the node ids Decode has seen. A cluster has a handful of
// nodes, and every record carries one of their ids: without the cache each
// decoded record (a replica's answer, a read from disk, a hint, a streamed
// range) allocated its own copy of a string the process already held.
var nodeNames [64]atomic.Pointer[string]

// internNode returns b as a string, shared with earlier calls for the same
// bytes while its slot holds them. Two ids that share a slot take turns in
// it: each miss costs the allocation Decode paid anyway.
func internNode(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h := uint32(2166136261) // FNV-1a
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &nodeNames[h%uint32(len(nodeNames))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
