package membership

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/testutil"
)

func TestMarksEncodeRoundTrip(t *testing.T) {
	in := map[string]State{"a": Leaving, "node-b": Removed, "": Removed}
	out, err := decodeMarks(encodeMarks(in))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(in, out) {
		t.Fatalf("got %v, want %v", out, in)
	}
	enc := encodeMarks(in)
	for i := range len(enc) - 1 {
		if _, err := decodeMarks(enc[:i]); err == nil && i > 0 {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	bad := encodeMarks(map[string]State{"x": Removed})
	bad[len(bad)-1] = 9
	if _, err := decodeMarks(bad); err == nil {
		t.Error("state 9 accepted")
	}
}

// A dead node cannot gossip its own removal: a mark set on one node hides it
// there, only moves forward, and reaches a node that joins later through the
// push/pull exchange of the join.
func TestMarkRemovesDeadNode(t *testing.T) {
	nodes := startCluster(t)
	n1, n3 := nodes[0], nodes[2]
	for _, m := range nodes {
		testutil.Eventually(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3"))) })
	}
	if err := n3.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() error { return expect(n1, up(testMeta("n1")), up(testMeta("n2")), down(testMeta("n3"))) })

	if _, err := n1.MarkState("n3", Normal); err == nil {
		t.Error("marking a node normal accepted")
	}
	if changed, err := n1.MarkState("n3", Leaving); err != nil || !changed {
		t.Fatalf("mark leaving: changed %v, err %v", changed, err)
	}
	leaving := testMeta("n3")
	leaving.State = Leaving
	if err := expect(n1, up(testMeta("n1")), up(testMeta("n2")), down(leaving)); err != nil {
		t.Fatal(err)
	}
	if changed, _ := n1.MarkState("n3", Removed); !changed {
		t.Fatal("mark removed changed nothing")
	}
	if changed, _ := n1.MarkState("n3", Leaving); changed {
		t.Fatal("a mark moved a removed node back to leaving")
	}
	if err := expect(n1, up(testMeta("n1")), up(testMeta("n2"))); err != nil {
		t.Fatal(err)
	}

	n4 := startNode(t, "n4", "", testMeta("n4"), n1.LocalAddr())
	testutil.Eventually(t, 10*time.Second, func() error {
		if n4.Marks()["n3"] != Removed {
			return fmt.Errorf("n4 has not learned n3's removal: %v", n4.Marks())
		}
		for _, m := range n4.Members() {
			if m.ID == "n3" {
				return fmt.Errorf("n4 still lists n3")
			}
		}
		return nil
	})
}
