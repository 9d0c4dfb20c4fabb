package rebalance

import (
	"errors"

	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/storage"
)

// NodeStateKey holds, in the metadata keyspace (PrefixMeta), the lifecycle
// state this node last took, so a restart resumes a join or a decommission
// instead of starting over as a normal node that lacks data.
var NodeStateKey = []byte("node-state")

// Boot is what InitialState needs to know of a starting node.
type Boot struct {
	// Meta is the metadata keyspace the state is kept in.
	Meta *storage.Keyspace
	// Empty is whether the store holds no record.
	Empty bool
	// Join is whether the node was told to --join an existing cluster.
	Join bool
	// Form, for a node with no state and an empty store, starts forming a
	// new cluster if --initial-cluster asks for one, and reports whether it
	// does; nil never forms.
	Form func() (bool, error)
	// Resume, for a node that took a state before, resumes a formation it
	// was waiting on; nil resumes nothing.
	Resume func() error
}

// InitialState decides the state the node announces when it starts gossiping,
// and persists it. A node that took a state before resumes it. A node with an
// empty store started with --initial-cluster forms a new cluster: it is
// normal, and waits for the other named members. A node with an empty store
// that is told to --join an existing cluster is new: it joins, streaming its
// ranges. Anything else (the first node of a new cluster, a node that held
// data before this feature kept its state) is normal. A node started
// alongside a fresh cluster joins too, and its streams are empty.
func InitialState(b Boot) (membership.State, error) {
	v, ok, err := b.Meta.Get(NodeStateKey)
	if err != nil {
		return 0, err
	}
	if ok && len(v) == 1 {
		st := membership.State(v[0])
		if st == membership.Removed {
			return 0, errors.New("rebalance: this node was decommissioned or removed; wipe its data directory to add it again")
		}
		if b.Resume != nil {
			return st, b.Resume()
		}
		return st, nil
	}
	st := membership.Normal
	if b.Empty {
		forming := false
		if b.Form != nil {
			if forming, err = b.Form(); err != nil {
				return 0, err
			}
		}
		if !forming && b.Join {
			st = membership.Joining
		}
	}
	return st, saveState(b.Meta, st)
}

func saveState(meta *storage.Keyspace, st membership.State) error {
	return meta.Set(NodeStateKey, []byte{byte(st)})
}
