package server

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/pki"
	"github.com/ringkv/ringkv/internal/storage"
)

// Node-to-node trust (issue 30): the peer port's mutual TLS and the gossip
// keyring keep other processes out; the checks here hold what an admitted
// peer asks for to what a client or the node's own admin API may do.

// peerTLSConfigs are the two sides of the peer port's mutual TLS; both nil
// when it is off.
type peerTLSConfigs struct{ server, client *tls.Config }

// peerSecurity loads the peer certificates and the gossip keys the config
// names.
func (s *Server) peerSecurity() (peerTLSConfigs, [][]byte, error) {
	cfg := s.cfg
	var p peerTLSConfigs
	if cfg.PeerTLS() {
		var err error
		p.server, p.client, err = pki.PeerConfigs(pki.Files{Cert: cfg.PeerTLSCert, Key: cfg.PeerTLSKey, CA: cfg.PeerTLSCA})
		if err != nil {
			return p, nil, fmt.Errorf("server: --peer-tls-cert/--peer-tls-key/--peer-tls-ca: %w", err)
		}
	}
	var keys [][]byte
	if cfg.GossipKeyFile != "" {
		var err error
		if keys, err = config.ReadGossipKeys(cfg.GossipKeyFile); err != nil {
			return p, nil, err
		}
	}
	return p, keys, nil
}

// registerGossipMetrics exports the gossip input memberlist refused, whose
// log lines are sampled.
func (s *Server) registerGossipMetrics() error {
	m := s.member
	return s.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "ringkv", Subsystem: "membership", Name: "bad_gossip_total",
		Help: "Gossip packets and streams from other hosts that memberlist refused or could not read (no or another key, garbage); logged at most once per interval per kind.",
	}, func() float64 { return float64(m.BadGossip()) }))
}

// checkWireMark refuses a mark from a peer that would take a live node out
// of the ring. The cluster's own marks are of dead nodes (removenode marks
// a down node leaving, then removed); a live node leaves only through its
// own admin API (decommission), by changing its own state. A peer asking
// otherwise is mistaken or hostile, and obeying it empties the ring (issue
// 30: marks of every node removed left the cluster with no owners).
// Suspect and dead nodes can be marked: that is removenode's job.
func (s *Server) checkWireMark(from, id string, st membership.State) error {
	switch {
	case id == s.cfg.NodeID:
		return fmt.Errorf("server: refusing mark %s %s from peer %s: a node leaves the cluster only through its own admin API (ringkv decommission)", id, st, from)
	case s.member.Alive(id):
		return fmt.Errorf("server: refusing mark %s %s from peer %s: %s is alive in this node's gossip; decommission a live node through its admin API, removenode is for dead ones", id, st, from, id)
	}
	return nil
}

// sizeGuard holds every stored write to the client limits, whichever path
// brought it: a peer's apply, batch, hint, stream or repair must not store
// what a client could not (issue 30: a 100 KB key came in over the peer
// port past --max-key-bytes).
func (s *Server) sizeGuard(w storage.Guarded) error {
	if w.KeyBytes > s.cfg.MaxKeyBytes {
		return fmt.Errorf("%w: key of %d bytes exceeds --max-key-bytes %d", errTooLarge, w.KeyBytes, s.cfg.MaxKeyBytes)
	}
	if v := w.Bytes - w.KeyBytes; v > s.cfg.MaxValueBytes {
		return fmt.Errorf("%w: value of %d bytes exceeds --max-value-bytes %d", errTooLarge, v, s.cfg.MaxValueBytes)
	}
	return nil
}

var errTooLarge = errors.New("server: write refused")
