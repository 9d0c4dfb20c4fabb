package server

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/topology"
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
			s := &Server{cfg: config.Config{NodeID: "n1"}, topo: topology.New("n1", 3, 8, 0, nil)}
			s.topo.Update(members(tc.up, membership.Normal))
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

// While a node joins, its ack is required on top of the level's count: the
// ranges it gains count as short once it is down.
func TestQuorumReadyPendingReplica(t *testing.T) {
	s := &Server{cfg: config.Config{NodeID: "n1"}, topo: topology.New("n1", 3, 8, 0, nil)}
	view := func(n4Up bool) func() []membership.Member {
		return func() []membership.Member {
			out := members(map[string]bool{"n1": true, "n2": true, "n3": true}, membership.Normal)()
			return append(out, membership.Member{Meta: membership.Meta{ID: "n4", State: membership.Joining}, Up: n4Up})
		}
	}
	s.topo.Update(view(true))
	if err := s.quorumReady(); err != nil {
		t.Fatalf("joining node up: %v", err)
	}
	s.topo.Update(view(false))
	err := s.quorumReady()
	if err == nil || readyReason(err) != reasonQuorum {
		t.Fatalf("joining node down: %v, want a quorum reason", err)
	}
	t.Log(err)
}

// A node forming its cluster waits for every named member, up and normal,
// refuses clients meanwhile, and records the formation once complete, so a
// restart does not wait again.
func TestFormation(t *testing.T) {
	st, err := storage.Open(storage.Options{Dir: "n1", InMemory: true, ExpiryInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Config{NodeID: "n1", InitialCluster: []string{"n1=127.0.0.1:1", "n2=127.0.0.1:2", "n3=127.0.0.1:3"}}
	s := &Server{cfg: cfg, store: st, topo: topology.New("n1", 3, 8, 0, nil), log: slog.New(slog.DiscardHandler)}
	if forming, err := s.startFormation(); err != nil || !forming {
		t.Fatalf("startFormation: %v, %v", forming, err)
	}
	gate := s.clientGate(nil)

	s.topo.Update(members(map[string]bool{"n1": true, "n2": true, "n3": false}, membership.Normal))
	err = s.formationReady()
	if err == nil || err.Error() != "forming: waiting for n3" || readyReason(err) != reasonForming {
		t.Fatalf("formationReady with n3 down: %v", err)
	}
	if err := gate.admit(); !errors.Is(err, replication.ErrUnavailable) || !strings.Contains(err.Error(), "cluster forming: waiting for n3") {
		t.Fatalf("admit while forming: %v", err)
	}
	s.topo.Update(members(map[string]bool{"n1": true, "n2": true, "n3": true}, membership.Joining))
	if err := s.formationReady(); err == nil {
		t.Fatal("formed with members that are joining, not normal")
	}

	s.topo.Update(members(map[string]bool{"n1": true, "n2": true, "n3": true}, membership.Normal))
	if err := s.formationReady(); err != nil {
		t.Fatalf("formationReady with every member up: %v", err)
	}
	if err := gate.admit(); err != nil {
		t.Fatalf("admit once formed: %v", err)
	}
	restarted := &Server{cfg: cfg, store: st, topo: topology.New("n1", 3, 8, 0, nil), log: slog.New(slog.DiscardHandler)}
	if err := restarted.resumeFormation(); err != nil || restarted.form.forming.Load() {
		t.Fatalf("a restart after formation forms again: %v", err)
	}

	// A removed node: the gate refuses with ErrNotMember.
	s.topo.Update(members(map[string]bool{"n2": true, "n3": true}, membership.Normal))
	if err := gate.admit(); !errors.Is(err, replication.ErrNotMember) {
		t.Fatalf("admit on a removed node: %v", err)
	}
}

// A node killed while forming keeps waiting after its restart.
func TestFormationResumes(t *testing.T) {
	st, err := storage.Open(storage.Options{Dir: "n1", InMemory: true, ExpiryInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Config{NodeID: "n1", InitialCluster: []string{"n1=127.0.0.1:1", "n2=127.0.0.1:2"}}
	s := &Server{cfg: cfg, store: st, topo: topology.New("n1", 3, 8, 0, nil), log: slog.New(slog.DiscardHandler)}
	if _, err := s.startFormation(); err != nil {
		t.Fatal(err)
	}
	restarted := &Server{cfg: cfg, store: st, topo: topology.New("n1", 3, 8, 0, nil), log: slog.New(slog.DiscardHandler)}
	if err := restarted.resumeFormation(); err != nil || !restarted.form.forming.Load() {
		t.Fatalf("restart mid-formation: forming=%v, %v", restarted.form.forming.Load(), err)
	}
}
