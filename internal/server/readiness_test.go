package server

import (
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/membership"
)

func members(up map[string]bool, state membership.State) func() []membership.Member {
	return func() []membership.Member {
		var out []membership.Member
		for id, u := range up {
			out = append(out, membership.Member{Meta: membership.Meta{ID: id, State: state}, Up: u})
		}
		return out
	}
}

// quorumReady counts the ranges this node replicates that lack a majority of
// replicas up: with RF 3, one of three nodes down leaves every range a
// majority, two down leave none.
func TestQuorumReady(t *testing.T) {
	for _, tc := range []struct {
		name string
		up   map[string]bool
		want string // "" for ready
	}{
		{"all up", map[string]bool{"n1": true, "n2": true, "n3": true}, ""},
		{"one down", map[string]bool{"n1": true, "n2": true, "n3": false}, ""},
		{"two down", map[string]bool{"n1": true, "n2": false, "n3": false}, "quorum: quorum unavailable for 24 of its 24 ranges"},
		{"alone", map[string]bool{"n1": true}, ""},
		// RF 3 on 5 nodes: n1 replicates only some ranges, and only those
		// with two of their replicas down count.
		{"five, two down", map[string]bool{"n1": true, "n2": true, "n3": true, "n4": false, "n5": false}, "quorum unavailable for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{cfg: config.Config{NodeID: "n1"}, topo: newTopology("n1", 3, 8, 0)}
			s.topo.update(members(tc.up, membership.Normal))
			err := s.quorumReady()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("quorumReady: %v, want ready", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("quorumReady: %v, want %q", err, tc.want)
			case err != nil && readyReason(err) != reasonQuorum:
				t.Fatalf("reason %q", readyReason(err))
			}
		})
	}
}

// A node that is no longer among the members was removed: the view says so,
// and the client gate refuses with that.
func TestTopologySelfGone(t *testing.T) {
	topo := newTopology("n1", 3, 8, 0)
	if topo.cur.Load().selfGone {
		t.Fatal("an empty view says this node was removed")
	}
	topo.update(members(map[string]bool{"n1": true, "n2": true}, membership.Normal))
	if topo.cur.Load().selfGone {
		t.Fatal("a member is gone")
	}
	topo.update(members(map[string]bool{"n2": true, "n3": true}, membership.Normal))
	if !topo.cur.Load().selfGone {
		t.Fatal("a node missing from the members is not gone")
	}
}

// Once formed, the partial rings seen while members appeared stop adding
// pending replicas to writes.
func TestTopologyForgetPrevious(t *testing.T) {
	topo := newTopology("n1", 3, 8, 60e9)
	all := map[string]bool{"n1": true, "n2": true, "n3": true, "n4": true, "n5": true}
	topo.update(members(map[string]bool{"n1": true, "n2": true, "n3": true}, membership.Normal))
	topo.update(members(all, membership.Normal))
	pending := 0
	for i := range 200 {
		pending += len(topo.Pending([]byte{byte(i), 'k'}))
	}
	if pending == 0 {
		t.Fatal("no key has a pending replica from the previous ring; the test proves nothing")
	}
	topo.forgetPrevious()
	for i := range 200 {
		if p := topo.Pending([]byte{byte(i), 'k'}); len(p) != 0 {
			t.Fatalf("key %d still has pending replicas %v", i, p)
		}
	}
	if len(topo.Nodes()) != 5 || len(topo.Replicas([]byte("k"))) != 3 {
		t.Fatalf("forgetPrevious changed the members: %v", topo.Nodes())
	}
}
