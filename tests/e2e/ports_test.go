package e2e

import (
	"encoding/json"
	"net"
	"testing"

	"github.com/ringkv/ringkv/internal/apitypes"
)

// Nodes whose four listeners are all on port 0, as the harness starts every
// node, name in --addr-file the ports the kernel gave them, and tell the
// cluster the addresses they bound: each node lists every member at exactly
// the addresses that member's file holds, and a write at ALL, which needs
// every peer port, and the gossip that formed the cluster, both work.
func TestPortZeroAddrFileAndAdvertisedAddresses(t *testing.T) {
	nodes := startCluster(t, 2)
	for _, n := range nodes {
		for _, a := range []string{n.Client, n.HTTP, n.Peer, n.Gossip} {
			if host, port, err := net.SplitHostPort(a); err != nil || host != "127.0.0.1" || port == "0" {
				t.Fatalf("%s: --addr-file gave %q, want a bound loopback port", n.ID, a)
			}
		}
	}
	for _, viewer := range nodes {
		resp, err := httpc.Get(viewer.URL("/v1/cluster"))
		if err != nil {
			t.Fatal(err)
		}
		var st apitypes.ClusterStatus
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			want := apitypes.NodeStatus{ID: n.ID, ClientAddr: n.Client, HTTPAddr: n.HTTP, PeerAddr: n.Peer, GossipAddr: n.Gossip}
			found := false
			for _, m := range st.Nodes {
				if m.ID != n.ID {
					continue
				}
				found = true
				got := apitypes.NodeStatus{ID: m.ID, ClientAddr: m.ClientAddr, HTTPAddr: m.HTTPAddr, PeerAddr: m.PeerAddr, GossipAddr: m.GossipAddr}
				if got != want {
					t.Errorf("%s lists %+v, want the addresses of its --addr-file %+v", viewer.ID, got, want)
				}
			}
			if !found {
				t.Errorf("%s does not list %s", viewer.ID, n.ID)
			}
		}
	}
	ctx := t.Context()
	if err := nodes[0].redis(withLevel("ALL")).Set(ctx, "ports", "bound", 0).Err(); err != nil {
		t.Fatalf("SET at ALL: %v", err)
	}
	if v, err := nodes[1].redis(withLevel("ALL")).Get(ctx, "ports").Result(); err != nil || v != "bound" {
		t.Fatalf("GET at ALL through the other node = %q, %v", v, err)
	}
}
