package auth

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// maxSources bounds the sources remembered for the failed-login limit. Past
// it, sources with nothing to remember are forgotten, and if every one still
// has, new sources share one bucket: an attacker with many addresses is then
// limited as one, which is what he is.
const maxSources = 1 << 16

// source is one client address's failed logins.
type source struct {
	lim *rate.Limiter
	// failures and refused count since the last log line about the source.
	failures, refused int
	lastUser          string
	lastLog           time.Time
}

// sources limits and logs failed logins per client address.
type sources struct {
	cfg Config
	mu  sync.Mutex
	m   map[netip.Addr]*source
	// overflow serves every new source once m is full.
	overflow *source
}

func newSources(cfg Config) *sources {
	s := &sources{cfg: cfg, m: map[netip.Addr]*source{}}
	s.overflow = s.newSource()
	return s
}

func (s *sources) newSource() *source {
	return &source{lim: rate.NewLimiter(rate.Limit(s.cfg.FailRate), s.cfg.FailBurst)}
}

// key is the address a limit applies to: an IPv6 client is limited by its
// /64, which one host usually holds whole.
func key(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// get returns src's entry, making one if needed; s.mu is held.
func (s *sources) get(src netip.Addr, create bool) *source {
	k := key(src)
	if e := s.m[k]; e != nil {
		return e
	}
	if !create {
		return nil
	}
	if len(s.m) >= maxSources {
		s.sweep()
		if len(s.m) >= maxSources {
			return s.overflow
		}
	}
	e := s.newSource()
	s.m[k] = e
	return e
}

// sweep forgets the sources whose bucket is full again and that have
// nothing left to log.
func (s *sources) sweep() {
	now := s.cfg.now()
	for k, e := range s.m {
		if e.failures == 0 && e.refused == 0 && e.lim.TokensAt(now) >= float64(s.cfg.FailBurst) {
			delete(s.m, k)
		}
	}
}

// allowed reports whether src may try a password now: its failures have not
// used up its bucket. Trying takes nothing from the bucket; failing does.
func (s *sources) allowed(src netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(src, false)
	if e == nil {
		if len(s.m) < maxSources {
			return true
		}
		e = s.overflow
	}
	return e.lim.TokensAt(s.cfg.now()) >= 1
}

// failed notes a failed or refused login from src and logs the source's
// failures once per LogEvery, with their count: a brute force makes a line
// every few seconds, not one per attempt.
func (s *sources) failed(src netip.Addr, name []byte, proto string, refused bool, log *slog.Logger) {
	now := s.cfg.now()
	s.mu.Lock()
	e := s.get(src, true)
	if refused {
		e.refused++
	} else {
		e.lim.AllowN(now, 1)
		e.failures++
	}
	e.lastUser = string(truncate(name, 64))
	if !e.lastLog.IsZero() && now.Sub(e.lastLog) < s.cfg.LogEvery {
		s.mu.Unlock()
		return
	}
	failures, refusedN, user := e.failures, e.refused, e.lastUser
	e.failures, e.refused, e.lastLog = 0, 0, now
	s.mu.Unlock()
	log.Warn("failed logins", "source", src.String(), "port", proto, "failed", failures,
		"refused_too_many", refusedN, "last_user", user, "interval", s.cfg.LogEvery)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

type metrics struct {
	failures *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "auth", Name: "failures_total",
			Help: "Logins refused for a wrong password or an unknown user, by port.",
		}, []string{"port"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "auth", Name: "rate_limited_total",
			Help: "Logins refused unchecked because their source failed too often lately, by port.",
		}, []string{"port"}),
	}
	if reg != nil {
		reg.MustRegister(m.failures, m.refused)
	}
	return m
}
