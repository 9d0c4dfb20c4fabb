package membership

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// A mark is a lifecycle state that the cluster, not the node itself, decided
// for a node: an operator removing a dead node cannot wait for it to gossip
// its own state. Marks only move a node forward (leaving, then removed), so
// merging two nodes' marks is taking the later state, and every node ends up
// with the same marks whatever order it hears them in.

// MarkState records on this node that node id is in state s, whatever the
// node itself says, and spreads the mark to the cluster through memberlist's
// push/pull state exchange (which also runs when a node joins, so a restarted
// node learns the marks back). A mark never moves a node backward: marking a
// removed node leaving changes nothing. Only Leaving and Removed can be marked.
// It reports whether the mark changed anything here.
func (m *Membership) MarkState(id string, s State) (bool, error) {
	if s != Leaving && s != Removed {
		return false, fmt.Errorf("membership: cannot mark a node %s", s)
	}
	if id == "" {
		return false, fmt.Errorf("membership: mark with empty node id")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.markLocked(id, s), nil
}

// Marks returns a copy of the marks this node holds.
func (m *Membership) Marks() map[string]State {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]State, len(m.mu.marks))
	for id, s := range m.mu.marks {
		out[id] = s
	}
	return out
}

func (m *Membership) markLocked(id string, s State) bool {
	if m.mu.marks == nil {
		m.mu.marks = map[string]State{}
	}
	if cur, ok := m.mu.marks[id]; ok && cur >= s {
		return false
	}
	m.mu.marks[id] = s
	m.logger.Info("member marked", "member", id, "state", s)
	m.notifyLocked()
	return true
}

// effectiveLocked is the state the cluster should act on for a member: its
// own, or a later one it was marked with.
func (m *Membership) effectiveLocked(id string, own State) State {
	if s, ok := m.mu.marks[id]; ok && s > own {
		return s
	}
	return own
}

// encodeMarks writes marks as: count, then per mark the id (uvarint length
// and bytes) and the state byte, in id order so equal marks encode alike.
func encodeMarks(marks map[string]State) []byte {
	ids := make([]string, 0, len(marks))
	for id := range marks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b := binary.AppendUvarint(nil, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = append(b, byte(marks[id]))
	}
	return b
}

func decodeMarks(b []byte) (map[string]State, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errBadMeta
	}
	b = b[k:]
	out := make(map[string]State, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l >= uint64(len(b)-k) {
			return nil, errBadMeta
		}
		id := string(b[k : k+int(l)])
		s := State(b[k+int(l)])
		if s > Removed {
			return nil, fmt.Errorf("%w: state %d", errBadMeta, s)
		}
		out[id] = s
		b = b[k+int(l)+1:]
	}
	return out, nil
}
