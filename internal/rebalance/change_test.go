package rebalance

import (
	"errors"
	"testing"

	"github.com/ringkv/ringkv/internal/membership"
)

// outcome is what a change answered: its status, or its Refusal's code. Any
// other error fails the test.
func outcome(t *testing.T, status string, err error) string {
	t.Helper()
	var r *Refusal
	switch {
	case errors.As(err, &r):
		return r.Code
	case err != nil:
		t.Fatal(err)
	}
	return status
}

// Decommission starts only from a normal node of a cluster with another node
// and no change in progress; it then persists and announces leaving.
func TestDecommissionStartsOnlyWhenItMay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes cluster
		want  string // refusal code, or the answer
	}{
		{"normal", cluster{"a": normal, "b": normal}, "leaving"},
		{"already leaving", cluster{"a": leaving, "b": normal}, "already leaving"},
		{"joining", cluster{"a": joining, "b": normal}, CodeBadState},
		{"another change", cluster{"a": normal, "b": normal, "c": joining}, CodeBusy},
		{"last node", cluster{"a": normal}, CodeLastNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "a", tc.nodes, 0)
			st, err := e.c.Decommission(t.Context())
			if got := outcome(t, st, err); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if tc.want == "leaving" {
				if st := e.members.state("a"); st != membership.Leaving {
					t.Fatalf("announced %s, want leaving", st)
				}
				if st := e.stored(); st != membership.Leaving {
					t.Fatalf("persisted %s, want leaving", st)
				}
			}
		})
	}
}

// RemoveNode takes out only a member that is down, and marks it leaving here
// and on every up peer.
func TestRemoveNodeOnlyTakesOutADeadMember(t *testing.T) {
	for _, tc := range []struct {
		name, id string
		down     bool
		nodes    cluster
		want     string
	}{
		{"dead", "c", true, cluster{"a": normal, "b": normal, "c": normal}, "removing"},
		{"no id", "", true, cluster{"a": normal, "b": normal, "c": normal}, CodeBadRequest},
		{"unknown", "z", true, cluster{"a": normal, "b": normal, "c": normal}, CodeNotFound},
		{"up", "c", false, cluster{"a": normal, "b": normal, "c": normal}, CodeNodeUp},
		{"itself", "a", false, cluster{"a": normal, "b": normal, "c": normal}, CodeNodeUp},
		{"already", "c", true, cluster{"a": normal, "b": normal, "c": leaving}, "already being removed"},
		{"another change", "c", true, cluster{"a": normal, "b": normal, "c": normal, "d": joining}, CodeBusy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "a", tc.nodes, 0)
			e.members.set(func() { e.members.down["c"] = tc.down })
			e.topo.Update(e.members.Members)
			st, err := e.c.RemoveNode(t.Context(), tc.id)
			if got := outcome(t, st, err); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			marked := e.members.Marks()["c"]
			if tc.want == "removing" {
				if marked != membership.Leaving {
					t.Fatalf("c marked %s, want leaving", marked)
				}
				if len(e.peers.marked) != 1 || e.peers.marked[0] != "b c leaving" {
					t.Fatalf("peers told %v, want b told c leaving", e.peers.marked)
				}
			} else if tc.want != "already being removed" && marked != 0 {
				t.Fatalf("refused, yet c marked %s", marked)
			}
		})
	}
}
