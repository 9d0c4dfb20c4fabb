// Package salvage brings a node started with --salvage over a corrupt log
// back to serving. The store set the corrupt file aside and kept what came
// before it, so this replica may lack acknowledged writes until a repair
// against its replicas has compared every one of its ranges. Until then the
// node is not ready, refuses client requests (a read it coordinates would
// count its own replica, which may have lost the key, as one of the quorum)
// and refuses peer reads (for the same reason on other coordinators'
// quorums), while it still accepts writes from peers, so nothing new is
// missed.
//
// OpenError tells the operator of a node that refused to open its store over
// corruption where it is and that --salvage is the way out.
package salvage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage/applog"
)

// Repairer is the node's anti-entropy as the restore drives it.
type Repairer interface {
	// TreeReady reports whether the bucket hashes are built, so that a
	// repair can compare ranges.
	TreeReady() bool
	// Repair starts an on-demand repair, or joins the one running, and
	// returns its id.
	Repair() (uint64, error)
	// LastRepair is the progress of the last on-demand repair, if any.
	LastRepair() (apitypes.RepairProgress, bool)
}

// Config configures a Restore.
type Config struct {
	// Self is this node's id, Replicas the replication factor.
	Self     string
	Replicas int
	// Files are what the store set aside when it opened
	// (storage.Store.Salvaged); with none there is nothing to restore.
	Files   []applog.SalvageReport
	Repairs Repairer
	// Ranges returns the current ring's ranges.
	Ranges     func() []ring.Range
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Hold, when set (tests only), is waited on before the restore begins,
	// so a test holds a node in its restoring state as long as it needs.
	Hold <-chan struct{}
	// Poll is how often the restore looks at the repair's progress; 0
	// means DefaultPoll.
	Poll time.Duration
}

// DefaultPoll is how often the restore looks at the repair's progress.
const DefaultPoll = 500 * time.Millisecond

// Restore is a salvaged node's way back to serving. A nil *Restore is a node
// that salvaged nothing.
type Restore struct {
	cfg       Config
	restoring atomic.Bool
	// left is the number of local ranges not yet compared, for readiness;
	// -1 before the ring lists them.
	left atomic.Int64
	stop context.CancelFunc
	done chan struct{}
}

// New records what the store set aside and registers the salvage gauges; a
// node that set something aside is restoring from then on. Start begins the
// repairs.
func New(cfg Config) *Restore {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	r := &Restore{cfg: cfg}
	for _, f := range cfg.Files {
		cfg.Logger.Error("storage salvaged a corrupt file: records after the corruption are dropped from this replica and will be restored from the others",
			"file", f.Path, "offset", f.Offset, "moved_to", f.MovedTo)
	}
	if len(cfg.Files) > 0 {
		r.restoring.Store(true)
		r.left.Store(-1)
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "ringkv", Name: "salvage_restoring",
				Help: "1 while this node, started with --salvage over a corrupt log, restores its ranges from its replicas; else 0.",
			}, func() float64 {
				if r.restoring.Load() {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "ringkv", Name: "salvaged_files",
				Help: "Corrupt storage files set aside at this node's last start.",
			}, func() float64 { return float64(len(cfg.Files)) }),
		)
	}
	return r
}

// Restoring reports whether the node still restores its ranges.
func (r *Restore) Restoring() bool { return r != nil && r.restoring.Load() }

// Err is the readiness of a salvaged node: nil once restored, else what it
// restores and why.
func (r *Restore) Err() error {
	if !r.Restoring() {
		return nil
	}
	names := make([]string, len(r.cfg.Files))
	for i, f := range r.cfg.Files {
		names[i] = describe(f)
	}
	ranges := "its ranges"
	if n := r.left.Load(); n >= 0 {
		ranges = fmt.Sprintf("%d ranges", n)
	}
	return fmt.Errorf("restoring %s from replicas after salvaging %s", ranges, strings.Join(names, ", "))
}

// describe names a file set aside, with where its corruption starts when
// known.
func describe(f applog.SalvageReport) string {
	if f.Offset < 0 {
		return f.Path
	}
	return fmt.Sprintf("%s at offset %d", f.Path, f.Offset)
}

// Gate refuses client data requests while the node restores, unattempted.
func (r *Restore) Gate() error {
	if !r.Restoring() {
		return nil
	}
	return fmt.Errorf("%w: %w", replication.ErrUnavailable, r.Err())
}

// ErrRestoring is what other coordinators' replica reads get while the node
// restores.
var ErrRestoring = errors.New("salvage: node is restoring its data from its replicas after a salvage")

// RefusesPeer refuses the replica reads of other coordinators while this
// replica may lack acknowledged writes: they then read the others. Writes
// pass, so that nothing new is missed.
func (r *Restore) RefusesPeer(method uint8) error {
	if !r.Restoring() {
		return nil
	}
	switch method {
	case replication.MethodGet, replication.MethodGetBatch, replication.MethodReadBatch, replication.MethodScan:
		return ErrRestoring
	}
	return nil
}

// Start runs repairs, while the node restores, until one has compared every
// local range with every other replica without an error; the node is then
// restored.
func (r *Restore) Start() {
	if !r.Restoring() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.run(ctx)
	}()
}

// Stop ends the repairs Start began.
func (r *Restore) Stop() {
	if r != nil && r.stop != nil {
		r.stop()
		<-r.done
	}
}

func (r *Restore) run(ctx context.Context) {
	log := r.cfg.Logger
	if r.cfg.Replicas == 1 {
		// No other copy exists: what the salvage dropped is gone.
		log.Error("salvaged with --replicas 1: no replica to restore from; the records after the corruption are lost")
		r.restoring.Store(false)
		return
	}
	if hold := r.cfg.Hold; hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return
		}
	}
	t0 := time.Now()
	var lastReason string
	tick := time.NewTicker(r.cfg.Poll)
	defer tick.Stop()
	var id uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !r.cfg.Repairs.TreeReady() {
			continue
		}
		local := r.localRanges()
		if id == 0 {
			r.left.Store(int64(local))
			if local == 0 {
				continue // the ring does not list this node's ranges yet
			}
			id, _ = r.cfg.Repairs.Repair() // on an error, 0: asked again
			continue
		}
		p, ok := r.cfg.Repairs.LastRepair()
		if !ok || p.ID != id {
			id = 0
			continue
		}
		if !p.Done {
			r.left.Store(int64(max(local-p.RangesCompared, 0)))
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
			r.left.Store(0)
			r.restoring.Store(false)
			log.Info("salvaged node restored from its replicas; ready",
				"ranges_compared", p.RangesCompared, "records_repaired", p.RecordsRepaired,
				"records_pulled", p.RecordsPulled, "took", time.Since(t0).Round(time.Millisecond))
			return
		}
		if reason != lastReason {
			// Once per distinct reason: a replica down for an hour must not
			// log twice a second.
			log.Warn("salvaged node not restored yet; repairing again", "reason", reason)
			lastReason = reason
		}
		id = 0
	}
}

// localRanges counts the ring ranges this node holds a replica of that some
// other node holds too: the ones a repair can restore.
func (r *Restore) localRanges() int {
	n := 0
	for _, rg := range r.cfg.Ranges() {
		if len(rg.Replicas) > 1 && slices.ContainsFunc(rg.Replicas, func(n ring.Node) bool { return n.ID == r.cfg.Self }) {
			n++
		}
	}
	return n
}
