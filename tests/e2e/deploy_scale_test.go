package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/testproc"
)

// The scaling steps docs/deploy.md gives for the Kubernetes StatefulSet, run
// with processes: a cluster formed with --initial-cluster moves to --join one
// node at a time (each keeps its data and is ready again with the others up);
// a node added with --join and no data streams its ranges and becomes a
// normal member; decommissioned with --wait, it leaves the ring, and every
// write acknowledged before is still read at QUORUM.
func TestDeployGuideScaleUpAndDown(t *testing.T) {
	nodes := formationNodes(t, 3)
	testproc.StartAll(procs(nodes))
	ctx := t.Context()
	const keys = 200
	for i := range keys {
		if err := nodes[i%3].redis(withLevel("QUORUM")).Set(ctx, fmt.Sprint("scale:", i), i, 0).Err(); err != nil {
			t.Fatalf("QUORUM SET scale:%d: %v", i, err)
		}
	}
	readAll := func(through *node) {
		t.Helper()
		c := through.redis(withLevel("QUORUM"))
		for i := range keys {
			if got, err := c.Get(ctx, fmt.Sprint("scale:", i)).Result(); err != nil || got != fmt.Sprint(i) {
				t.Fatalf("QUORUM GET scale:%d through %s = %q, %v", i, through.ID, got, err)
			}
		}
	}

	// kubectl set env RINGKV_INITIAL_CLUSTER- RINGKV_JOIN=<ringkv-0>,<ringkv-1>:
	// the StatefulSet restarts its pods one at a time.
	seeds := []string{nodes[0].Gossip, nodes[1].Gossip}
	for _, n := range nodes {
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		n.InitialCluster = nil
		n.Join = seeds
		n.Start()
		for _, m := range nodes {
			waitUp(t, m, 3)
		}
	}
	readAll(nodes[2])

	// kubectl scale --replicas=4: a new, empty node joins.
	n4 := newNode(t, "n4")
	n4.Join = seeds
	n4.Start()
	for _, n := range append(slices.Clone(nodes), n4) {
		waitUp(t, n, 4)
	}
	readAll(n4)

	// Decommission it before scaling back down.
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if out, err := operatorCommand(dctx, "decommission", "--addr", n4.HTTP, "--wait", "--timeout", "90s").CombinedOutput(); err != nil {
		t.Fatalf("decommission n4: %v: %s", err, out)
	}
	waitRing(t, 30*time.Second, nodes, "n1", "n2", "n3")
	if err := n4.Stop(); err != nil {
		t.Fatal(err)
	}
	readAll(nodes[0])
}
