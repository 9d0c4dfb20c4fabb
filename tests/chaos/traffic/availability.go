package traffic

import (
	"slices"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Availability counts outcomes and latencies per phase and consistency level.
// The runner moves it from phase to phase (baseline, "<fault> during",
// "<fault> after"), so each fault's cost shows next to the calm before it. It
// is safe for concurrent use.
type Availability struct {
	mu struct {
		sync.Mutex
		phase  string
		order  []string
		phases map[string]map[string]*Stats
	}
}

// Stats are one phase's figures at one level.
type Stats struct {
	OK, Failed, Indeterminate int
	// Latency in microseconds, 1 µs to 1 min at 3 significant digits.
	Latency *hdrhistogram.Histogram
}

// NewAvailability starts in phase.
func NewAvailability(phase string) *Availability {
	a := &Availability{}
	a.mu.phases = map[string]map[string]*Stats{}
	a.SetPhase(phase)
	return a
}

// SetPhase files the following observations under phase.
func (a *Availability) SetPhase(phase string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.phase = phase
	if _, ok := a.mu.phases[phase]; !ok {
		a.mu.phases[phase] = map[string]*Stats{}
		a.mu.order = append(a.mu.order, phase)
	}
}

// Observe records one operation.
func (a *Availability) Observe(level string, o Outcome, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	byLevel := a.mu.phases[a.mu.phase]
	s := byLevel[level]
	if s == nil {
		s = &Stats{Latency: hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)}
		byLevel[level] = s
	}
	switch o {
	case OK:
		s.OK++
	case Failed:
		s.Failed++
	default:
		s.Indeterminate++
	}
	_ = s.Latency.RecordValue(max(d.Microseconds(), 1)) // out of range only past a minute
}

// Row is one line of the availability table.
type Row struct {
	Phase, Level              string
	OK, Failed, Indeterminate int
	P50, P99                  time.Duration
}

// Rows returns the figures in phase order, levels sorted.
func (a *Availability) Rows() []Row {
	a.mu.Lock()
	defer a.mu.Unlock()
	var rows []Row
	for _, p := range a.mu.order {
		levels := make([]string, 0, len(a.mu.phases[p]))
		for l := range a.mu.phases[p] {
			levels = append(levels, l)
		}
		slices.Sort(levels)
		for _, l := range levels {
			s := a.mu.phases[p][l]
			rows = append(rows, Row{
				Phase: p, Level: l, OK: s.OK, Failed: s.Failed, Indeterminate: s.Indeterminate,
				P50: time.Duration(s.Latency.ValueAtQuantile(50)) * time.Microsecond,
				P99: time.Duration(s.Latency.ValueAtQuantile(99)) * time.Microsecond,
			})
		}
	}
	return rows
}
