package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/ring"
)

// topology is one snapshot of the cluster as a node reported it: the ring
// computed from the members exactly as the servers compute it, and each
// member's addresses and liveness. It is immutable and swapped whole.
type topology struct {
	ring  *ring.Ring
	nodes map[string]nodeInfo
	// ids lists the members in id order, for requests any node can serve.
	ids []string
	// from is the node that answered, for logs.
	from string
}

type nodeInfo struct {
	id, clientAddr, httpAddr string
	up                       bool
}

// fetchTopology asks the nodes at addrs (HTTP addresses; scheme for those
// without one) in turn for /v1/cluster and returns the first answer. The
// nodes ask for the same credentials on HTTP as on RESP, so the client sends
// the connections' ones.
func fetchTopology(ctx context.Context, hc *http.Client, scheme, user, password string, addrs []string) (*topology, error) {
	var errs []error
	for _, a := range addrs {
		t, err := fetchOne(ctx, hc, scheme, user, password, a)
		if err == nil {
			return t, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: no node answered with the cluster topology: %w", ErrUnavailable, errors.Join(errs...))
}

func fetchOne(ctx context.Context, hc *http.Client, scheme, user, password, addr string) (*topology, error) {
	url := addr
	if !strings.Contains(url, "://") {
		url = scheme + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(url, "/")+"/v1/cluster", nil)
	if err != nil {
		return nil, err
	}
	if password != "" {
		if user == "" {
			user = "default"
		}
		req.SetBasicAuth(user, password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	var st apitypes.ClusterStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET %s: decoding: %w", req.URL, err)
	}
	return newTopology(st)
}

// newTopology builds the client's view from a node's cluster status. The ring
// must equal the servers': the same members (all but removed and joining
// ones), zones,
// vnodes and replication factor, given to the same ring.New.
func newTopology(st apitypes.ClusterStatus) (*topology, error) {
	if st.VNodes < 1 || st.Replicas < 1 {
		return nil, fmt.Errorf("cluster status from %q has vnodes %d, replicas %d", st.Self, st.VNodes, st.Replicas)
	}
	t := &topology{nodes: make(map[string]nodeInfo, len(st.Nodes)), from: st.Self}
	var members []ring.Node
	for _, n := range st.Nodes {
		if n.State == "removed" || n.ID == "" {
			continue
		}
		if _, dup := t.nodes[n.ID]; dup {
			return nil, fmt.Errorf("cluster status from %q lists node %q twice", st.Self, n.ID)
		}
		t.nodes[n.ID] = nodeInfo{id: n.ID, clientAddr: n.ClientAddr, httpAddr: n.HTTPAddr, up: n.Up}
		// A joining node gets no reads until its ranges are streamed to it;
		// the servers place requests on the ring without it, and so must we.
		if n.State == "joining" {
			continue
		}
		t.ids = append(t.ids, n.ID)
		members = append(members, ring.Node{ID: n.ID, Zone: n.Zone})
	}
	if len(members) == 0 {
		// Only joining nodes: nothing can serve yet.
		return nil, fmt.Errorf("cluster status from %q lists no nodes", st.Self)
	}
	slices.Sort(t.ids)
	t.ring = ring.New(members, st.VNodes, st.Replicas)
	return t, nil
}

// replicas returns the ids of key's replicas, primary first.
func (t *topology) replicas(key string) []string {
	nodes := t.ring.ReplicasForToken(ring.Token([]byte(key)))
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}
