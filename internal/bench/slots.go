package bench

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/ringkv/ringkv/internal/ring"
)

// numSlots is the Redis Cluster's hash slot count.
const numSlots = ring.Slots

// keySlot is the hash slot of key: CRC16 of the key mod 16384 or, when the key
// holds a non-empty {hash tag}, of the text between the first '{' and the
// first '}' after it, so that keys sharing a tag share a slot.
func keySlot(key []byte) uint16 {
	// The ring's own slot function: ringkv derives its tokens from it, so
	// the client and the servers cannot disagree on a key's slot.
	return uint16(ring.Slot(key))
}

// slotMap is one worker's view of which master serves each slot: an index
// into addrs. Each worker owns its copy, so a redirect it follows updates it
// without locking; the copies differ only while a slot moves.
type slotMap struct {
	addrs []string
	owner [numSlots]uint16
}

// nodeIndex returns addr's index in m.addrs, adding it if it is new (a node
// the topology did not list, learnt from a redirect).
func (m *slotMap) nodeIndex(addr string) int {
	for i, a := range m.addrs {
		if a == addr {
			return i
		}
	}
	m.addrs = append(m.addrs, addr)
	return len(m.addrs) - 1
}

func (m *slotMap) clone() *slotMap {
	c := *m
	c.addrs = append([]string(nil), m.addrs...)
	return &c
}

// parseSlots builds a slotMap from a CLUSTER SLOTS reply: an array of
// [start, end, master, replicas...] where each node is [host, port, ...].
// An empty host means the node is reachable at the host the reply came from
// (seedHost), as the specification says. Every slot must have a master: a
// cluster with unassigned slots would answer part of the load with errors.
func parseSlots(v any, seedHost string) (*slotMap, error) {
	ranges, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("bench: CLUSTER SLOTS: reply is %T, want an array", v)
	}
	m := &slotMap{}
	var covered [numSlots]bool
	for _, rv := range ranges {
		r, ok := rv.([]any)
		if !ok || len(r) < 3 {
			return nil, fmt.Errorf("bench: CLUSTER SLOTS: range %v: want [start end master ...]", rv)
		}
		start, ok1 := r[0].(int64)
		end, ok2 := r[1].(int64)
		node, ok3 := r[2].([]any)
		if !ok1 || !ok2 || !ok3 || len(node) < 2 || start < 0 || end >= numSlots || start > end {
			return nil, fmt.Errorf("bench: CLUSTER SLOTS: range %v: bad start, end or master", rv)
		}
		host, ok1 := node[0].(string)
		port, ok2 := node[1].(int64)
		if !ok1 || !ok2 || host == "?" {
			return nil, fmt.Errorf("bench: CLUSTER SLOTS: master of slots %d-%d has no usable endpoint: %v", start, end, node)
		}
		if host == "" {
			host = seedHost
		}
		idx := m.nodeIndex(net.JoinHostPort(host, strconv.FormatInt(port, 10)))
		for s := start; s <= end; s++ {
			m.owner[s] = uint16(idx)
			covered[s] = true
		}
	}
	for s, ok := range covered {
		if !ok {
			return nil, fmt.Errorf("bench: CLUSTER SLOTS: slot %d has no master; is the cluster fully set up?", s)
		}
	}
	return m, nil
}

// redirect is a -MOVED or -ASK error reply.
type redirect struct {
	ask  bool
	slot int
	addr string
}

// parseRedirect reads "MOVED <slot> <host:port>" or "ASK <slot> <host:port>".
func parseRedirect(msg string) (redirect, bool) {
	var rd redirect
	switch {
	case strings.HasPrefix(msg, "MOVED "):
	case strings.HasPrefix(msg, "ASK "):
		rd.ask = true
	default:
		return rd, false
	}
	f := strings.Fields(msg)
	if len(f) != 3 {
		return rd, false
	}
	slot, err := strconv.Atoi(f[1])
	if err != nil || slot < 0 || slot >= numSlots {
		return rd, false
	}
	host, port, err := net.SplitHostPort(f[2])
	if err != nil || port == "" {
		return rd, false
	}
	rd.slot, rd.addr = slot, net.JoinHostPort(host, port)
	return rd, true
}
