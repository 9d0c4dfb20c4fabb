package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/storage/applog"
)

// salvageState is a node started with --salvage over a corrupt log: the
// store set the corrupt file aside and kept what came before it, so this
// replica may lack acknowledged writes until a repair against its replicas
// has compared every one of its ranges. Until then the node is not ready,
// refuses client requests (a read it coordinates would count its own
// replica, which may have lost the key, as one of the quorum) and refuses
// peer reads (for the same reason on other coordinators' quorums), while it
// still accepts writes from peers, so nothing new is missed.
type salvageState struct {
	files     []salvageReport
	restoring atomic.Bool
	// left is the number of local ranges not yet compared, for /readyz.
	left atomic.Int64
	stop context.CancelFunc
	done chan struct{}
}

// salvageReport is one file the store set aside at open.
type salvageReport struct {
	File   string // the corrupt file, as it was named
	Offset int64  // where its corruption starts; -1 if unknown
	Aside  string // where the store moved it
}

func (r salvageReport) String() string {
	if r.Offset < 0 {
		return r.File
	}
	return fmt.Sprintf("%s at offset %d", r.File, r.Offset)
}

// storageOpenError turns the store's refusal to open over corruption into an
// error that names the file and offset and tells the operator the way out.
func (s *Server) storageOpenError(err error) error {
	file, off, ok := corruption(err)
	if !ok {
		return fmt.Errorf("server: opening storage: %w", err)
	}
	where := "the storage files"
	if file != "" {
		where = file
		if off >= 0 {
			where = fmt.Sprintf("%s at offset %d", file, off)
		}
	}
	return fmt.Errorf("server: opening storage: %w\n"+
		"the data in %s is corrupt beyond a torn tail; refusing to start rather than drop it in silence.\n"+
		"Restart with --salvage to set the corrupt file aside, keep the records before the corruption and "+
		"restore this node's ranges from its replicas before it reports ready (memory engine; a Pebble store "+
		"cannot be salvaged: move its data directory aside, start empty and run `ringkv repair`; "+
		"docs/operations.md, \"A corrupt log\")",
		err, where)
}

// corruption reports whether err is the store refusing to open over
// corruption, and where: offset -1 when unknown, file "" when unknown. The
// memory engine's log, and the Pebble engine's WAL check, name the file and
// offset; Pebble's own check of its sstables does not.
func corruption(err error) (file string, offset int64, ok bool) {
	var ce *applog.CorruptError
	if errors.As(err, &ce) {
		return ce.Path, ce.Offset, true
	}
	if errors.Is(err, pebble.ErrCorruption) {
		return "", -1, true
	}
	return "", 0, false
}

// noteSalvage records what the store set aside at open; a node that set
// something aside starts restoring.
func (s *Server) noteSalvage() {
	s.salv.files = storeSalvaged(s.store)
	if len(s.salv.files) == 0 {
		return
	}
	for _, f := range s.salv.files {
		s.log.Error("storage salvaged a corrupt file: records after the corruption are dropped from this replica and will be restored from the others",
			"file", f.File, "offset", f.Offset, "moved_to", f.Aside)
	}
	s.salv.restoring.Store(true)
	s.salv.left.Store(-1)
}

// storeSalvaged is salvagedFiles, through a variable a test can replace to
// make a node believe its store salvaged a file.
var storeSalvaged = salvagedFiles

// salvagedFiles lists what the store set aside when it opened.
func salvagedFiles(st *storage.Store) []salvageReport {
	var out []salvageReport
	for _, r := range st.Salvaged() {
		out = append(out, salvageReport{File: r.Path, Offset: r.Offset, Aside: r.MovedTo})
	}
	return out
}

// salvageMetrics registers the salvage gauges.
func (s *Server) salvageMetrics() {
	s.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "ringkv", Name: "salvage_restoring",
			Help: "1 while this node, started with --salvage over a corrupt log, restores its ranges from its replicas; else 0.",
		}, func() float64 {
			if s.salv.restoring.Load() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "ringkv", Name: "salvaged_files",
			Help: "Corrupt storage files set aside at this node's last start.",
		}, func() float64 { return float64(len(s.salv.files)) }),
	)
}

// salvageReady is the readiness check of a salvaged node.
func (s *Server) salvageReady() error {
	if !s.salv.restoring.Load() {
		return nil
	}
	names := make([]string, len(s.salv.files))
	for i, f := range s.salv.files {
		names[i] = f.String()
	}
	n := s.salv.left.Load()
	ranges := "its ranges"
	if n >= 0 {
		ranges = fmt.Sprintf("%d ranges", n)
	}
	return &notReady{reason: reasonSalvage,
		err: fmt.Errorf("restoring %s from replicas after salvaging %s", ranges, strings.Join(names, ", "))}
}

// errRestoring is what client requests get while the node restores.
var errRestoring = errors.New("server: node is restoring its data from its replicas after a salvage")

// salvageGate refuses client data requests while the node restores.
func (s *Server) salvageGate() error {
	if !s.salv.restoring.Load() {
		return nil
	}
	return fmt.Errorf("%w: %w", replication.ErrUnavailable, s.salvageReady())
}

// salvageRefusesPeer refuses the replica reads of other coordinators while
// this replica may lack acknowledged writes: they then read the others.
func (s *Server) salvageRefusesPeer(method uint8) error {
	if !s.salv.restoring.Load() {
		return nil
	}
	switch method {
	case replication.MethodGet, replication.MethodGetBatch, replication.MethodReadBatch, replication.MethodScan:
		return errRestoring
	}
	return nil
}

// startRestore runs repairs until one has compared every local range with
// every other replica without an error, then reports the node ready.
func (s *Server) startRestore() {
	if !s.salv.restoring.Load() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.salv.stop, s.salv.done = cancel, make(chan struct{})
	go func() {
		defer close(s.salv.done)
		s.restore(ctx)
	}()
}

func (s *Server) stopRestore() {
	if s.salv.stop != nil {
		s.salv.stop()
		<-s.salv.done
	}
}

// restorePoll is how often the restore loop looks at the repair's progress.
const restorePoll = 500 * time.Millisecond

// restoreHold, when set (tests only), is waited on before the restore
// begins, so a test holds a node in its restoring state as long as it needs.
var restoreHold chan struct{}

func (s *Server) restore(ctx context.Context) {
	if s.cfg.Replicas == 1 {
		// No other copy exists: what the salvage dropped is gone.
		s.log.Error("salvaged with --replicas 1: no replica to restore from; the records after the corruption are lost")
		s.salv.restoring.Store(false)
		return
	}
	if hold := restoreHold; hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return
		}
	}
	t0 := time.Now()
	var lastReason string
	tick := time.NewTicker(restorePoll)
	defer tick.Stop()
	var id uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		svc := s.ae.svc.Load()
		if svc == nil || !svc.Tree().Ready() {
			continue
		}
		local := s.localRanges()
		if id == 0 {
			s.salv.left.Store(int64(local))
			if local == 0 {
				continue // the ring does not list this node's ranges yet
			}
			id = svc.Repair().ID
			continue
		}
		p, ok := svc.LastRepair()
		if !ok || p.ID != id {
			id = 0
			continue
		}
		if !p.Done {
			s.salv.left.Store(int64(max(local-p.RangesCompared, 0)))
			continue
		}
		reason := ""
		switch {
		case p.RangesTotal == 0:
			reason = "no other replica of its ranges is up"
		case p.RangesSkipped > 0:
			reason = fmt.Sprintf("%d comparisons skipped: a replica is down", p.RangesSkipped)
		case p.Errors > 0:
			reason = fmt.Sprintf("%d comparisons failed: %s", p.Errors, p.LastError)
		}
		if reason == "" {
			s.salv.left.Store(0)
			s.salv.restoring.Store(false)
			s.log.Info("salvaged node restored from its replicas; ready",
				"ranges_compared", p.RangesCompared, "records_repaired", p.RecordsRepaired,
				"records_pulled", p.RecordsPulled, "took", time.Since(t0).Round(time.Millisecond))
			return
		}
		if reason != lastReason {
			// Once per distinct reason: a replica down for an hour must not
			// log twice a second.
			s.log.Warn("salvaged node not restored yet; repairing again", "reason", reason)
			lastReason = reason
		}
		id = 0
	}
}

// localRanges counts the ring ranges this node holds a replica of.
func (s *Server) localRanges() int {
	n := 0
	for _, rg := range s.topo.Current().Ring.Ranges() {
		if slices.ContainsFunc(rg.Replicas, func(r ring.Node) bool { return r.ID == s.cfg.NodeID }) && len(rg.Replicas) > 1 {
			n++
		}
	}
	return n
}

// alarms lists what `ringkv status` shows as wrong with this node.
func (s *Server) alarms() []string {
	var out []string
	if err := s.diskReady(); err != nil {
		out = append(out, err.Error())
	}
	if err := s.salvageReady(); err != nil {
		out = append(out, err.Error())
	}
	return out
}
