package salvage

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage/applog"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/testutil/promtest"
)

var aside = []applog.SalvageReport{{Path: "000001.log", Offset: 4096, MovedTo: "000001.log.corrupt"}}

// fakeRepairs runs each repair to the outcome next in its list: the first
// ones as a repair with a replica down, then clean.
type fakeRepairs struct {
	mu      sync.Mutex
	skipped []int // RangesSkipped of each repair in turn; clean once empty
	last    *apitypes.RepairProgress
	started int
}

func (f *fakeRepairs) TreeReady() bool { return true }

func (f *fakeRepairs) Repair() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started++
	p := apitypes.RepairProgress{ID: uint64(f.started), Done: true, RangesTotal: 8, RangesCompared: 8}
	if len(f.skipped) > 0 {
		p.RangesSkipped, p.RangesCompared, f.skipped = f.skipped[0], 8-f.skipped[0], f.skipped[1:]
	}
	f.last = &p
	return p.ID, nil
}

func (f *fakeRepairs) LastRepair() (apitypes.RepairProgress, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		return apitypes.RepairProgress{}, false
	}
	return *f.last, true
}

// threeNodeRing is the ranges of a ring of three nodes, each replicating
// every range.
func threeNodeRing() []ring.Range {
	return ring.New([]ring.Node{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}}, 8, 3).Ranges()
}

// A salvaged node restores until a repair compared every range with every
// replica: a repair that skipped a down replica does not count, the next
// clean one does.
func TestRestoreUntilACleanRepair(t *testing.T) {
	rep := &fakeRepairs{skipped: []int{2}}
	hold := make(chan struct{})
	reg := prometheus.NewRegistry()
	r := New(Config{Self: "n1", Replicas: 3, Files: aside, Repairs: rep, Ranges: threeNodeRing,
		Registerer: reg, Hold: hold, Poll: time.Millisecond})
	r.Start()
	t.Cleanup(r.Stop)

	err := r.Err()
	if err == nil || err.Error() != "restoring its ranges from replicas after salvaging 000001.log at offset 4096" {
		t.Fatalf("readiness while held: %v", err)
	}
	if err := r.Gate(); !errors.Is(err, replication.ErrUnavailable) || !strings.Contains(err.Error(), "after salvaging") {
		t.Fatalf("client gate while restoring: %v", err)
	}
	if g := promtest.Value(t, reg, "ringkv_salvage_restoring"); g != 1 {
		t.Fatalf("ringkv_salvage_restoring %v while restoring", g)
	}
	close(hold)
	testutil.Eventually(t, 10*time.Second, func() error {
		if r.Restoring() {
			return fmt.Errorf("still restoring: %v", r.Err())
		}
		return nil
	})
	if rep.started != 2 {
		t.Fatalf("%d repairs ran, want 2: the one with a replica down, then a clean one", rep.started)
	}
	if r.Err() != nil || r.Gate() != nil || promtest.Value(t, reg, "ringkv_salvage_restoring") != 0 || promtest.Value(t, reg, "ringkv_salvaged_files") != 1 {
		t.Fatalf("restored: ready %v, gate %v", r.Err(), r.Gate())
	}
}

// With --replicas 1 no copy exists to restore from: the node serves what it
// kept rather than never becoming ready.
func TestRestoreWithoutReplicas(t *testing.T) {
	r := New(Config{Self: "n1", Replicas: 1, Files: aside, Repairs: &fakeRepairs{}, Ranges: threeNodeRing, Poll: time.Millisecond})
	r.Start()
	t.Cleanup(r.Stop)
	testutil.Eventually(t, 10*time.Second, func() error {
		if r.Restoring() {
			return errors.New("still restoring")
		}
		return nil
	})
}

// While restoring, a node refuses the replica reads of other coordinators
// (its replica may lack acknowledged writes) and takes their writes.
func TestRefusesPeerReads(t *testing.T) {
	r := New(Config{Files: aside})
	for _, m := range []uint8{replication.MethodGet, replication.MethodGetBatch, replication.MethodReadBatch, replication.MethodScan} {
		if err := r.RefusesPeer(m); !errors.Is(err, ErrRestoring) {
			t.Errorf("method %d while restoring: %v", m, err)
		}
	}
	for _, m := range []uint8{replication.MethodApply, replication.MethodApplyBatch, replication.MethodCount, peermethod.AERoot} {
		if err := r.RefusesPeer(m); err != nil {
			t.Errorf("method %d refused while restoring: %v", m, err)
		}
	}
	r.restoring.Store(false)
	if err := r.RefusesPeer(replication.MethodGet); err != nil {
		t.Errorf("a restored node refuses reads: %v", err)
	}
}

// A node that salvaged nothing, or whose Restore is nil, passes everything.
func TestNothingSalvaged(t *testing.T) {
	for _, r := range []*Restore{nil, New(Config{})} {
		r.Start()
		if r.Restoring() || r.Err() != nil || r.Gate() != nil || r.RefusesPeer(replication.MethodGet) != nil {
			t.Fatalf("%v: restoring with nothing salvaged", r)
		}
		r.Stop()
	}
}

// OpenError names where the corruption is and the way out, and keeps the
// store's error; other errors pass unchanged.
func TestOpenError(t *testing.T) {
	ce := &applog.CorruptError{Path: "000003.log", Offset: 12, Err: errors.New("bad checksum")}
	err := OpenError(fmt.Errorf("storage: %w", ce))
	var got *applog.CorruptError
	if !errors.As(err, &got) || !strings.Contains(err.Error(), "the data in 000003.log at offset 12 is corrupt") ||
		!strings.Contains(err.Error(), "Restart with --salvage") {
		t.Fatalf("log corruption: %v", err)
	}
	if err := OpenError(pebble.ErrCorruption); !errors.Is(err, pebble.ErrCorruption) || !strings.Contains(err.Error(), "the data in the storage files is corrupt") {
		t.Fatalf("sstable corruption: %v", err)
	}
	other := errors.New("permission denied")
	if err := OpenError(other); !errors.Is(err, other) || err.Error() != other.Error() {
		t.Fatalf("another error: %v", err)
	}
}
